/* SPDX-License-Identifier: MIT */
/*
 * The pending-call table: the calls of a channel still waiting for their response, a hash of
 * chains under ch->lock keyed by message id. This file owns a call's life between its request
 * leaving and its completion: adding it (before the request leaves, since the response may
 * beat the sender back), resolving it with a response or error, expiring it, failing every
 * call when the channel fails, and taking out a call its caller gave up on.
 *
 * A call is completed under the lock: out of the table first, then its status, then a release
 * store of c->done, which its caller acquires (smem__rpc_call_is_done()); so a completed call
 * is never in the table and needs no lock afterwards. Completions bump the channel's event
 * word, which is what wakes a caller.
 */
#include <string.h>

#include "internal.h"
#include "rpc_int.h"

static unsigned bucket(uint64_t id)
{
	return (unsigned)((id * 0x9e3779b97f4a7c15ull) >> 56) & (SMEM__RPC_CALL_BUCKETS - 1);
}

static struct smem_rpc_call *call_find(struct smem_rpc *ch, uint64_t id)
{
	struct smem_rpc_call *c;

	for (c = ch->calls[bucket(id)]; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void call_remove(struct smem_rpc *ch, struct smem_rpc_call *c)
{
	struct smem_rpc_call **pp;

	if (!c->in_table)
		return;
	for (pp = &ch->calls[bucket(c->id)]; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->in_table = false;
	c->next = NULL;
}

/* Complete @c (under ch->lock). Release: pairs with the acquire in smem__rpc_call_is_done(). */
static void call_complete(struct smem_rpc *ch, struct smem_rpc_call *c, int status)
{
	call_remove(ch, c);
	c->status = status;
	atomic_store_explicit(&c->done, 1, memory_order_release);
}

int smem__rpc_call_add(struct smem_rpc *ch, struct smem_rpc_call *c)
{
	unsigned b = bucket(c->id);
	int rc;

	pthread_mutex_lock(&ch->lock);
	rc = atomic_load_explicit(&ch->state, memory_order_relaxed);
	if (rc == 0) {
		c->next = ch->calls[b];
		ch->calls[b] = c;
		c->in_table = true;
	}
	pthread_mutex_unlock(&ch->lock);
	return rc;
}

void smem__rpc_call_forget(struct smem_rpc *ch, struct smem_rpc_call *c)
{
	if (smem__rpc_call_is_done(c))
		return;	/* left the table under the lock before done was set */
	pthread_mutex_lock(&ch->lock);
	call_remove(ch, c);
	pthread_mutex_unlock(&ch->lock);
}

void smem__rpc_call_expire(struct smem_rpc_call *c, uint64_t now)
{
	struct smem_rpc *ch = c->ch;
	bool expired = false;

	if (c->deadline == UINT64_MAX || now < c->deadline || smem__rpc_call_is_done(c))
		return;
	pthread_mutex_lock(&ch->lock);
	if (!smem__rpc_call_is_done(c)) {
		call_complete(ch, c, -ETIMEDOUT);
		expired = true;
	}
	pthread_mutex_unlock(&ch->lock);
	if (expired)
		SMEM__RPC_STAT_ADD(ch, timeouts, 1);
}

unsigned smem__rpc_calls_fail(struct smem_rpc *ch, int err)
{
	unsigned b, n = 0;

	for (b = 0; b < SMEM__RPC_CALL_BUCKETS; b++)
		while (ch->calls[b]) {
			call_complete(ch, ch->calls[b], err);
			n++;
		}
	return n;
}

bool smem__rpc_call_pending(struct smem_rpc *ch, uint64_t id)
{
	bool found;

	pthread_mutex_lock(&ch->lock);
	found = call_find(ch, id) != NULL;
	pthread_mutex_unlock(&ch->lock);
	return found;
}

bool smem__rpc_call_resolve(struct smem_rpc *ch, uint8_t type, uint64_t response_to,
			    int32_t error, void **buf, size_t len)
{
	struct smem_rpc_call *c;

	pthread_mutex_lock(&ch->lock);
	c = call_find(ch, response_to);
	if (c) {
		if (type == SMEM_RPC_RESPONSE) {
			c->resp = *buf;
			c->resp_len = len;
			*buf = NULL;
			call_complete(ch, c, 0);
		} else {
			size_t n = smem__rpc_min(len, sizeof(c->msg) - 1);

			if (n)
				memcpy(c->msg, *buf, n);
			c->msg[n] = '\0';
			call_complete(ch, c, error);
		}
	}
	pthread_mutex_unlock(&ch->lock);
	if (c)
		smem__rpc_ev_bump(ch);
	return c != NULL;
}
