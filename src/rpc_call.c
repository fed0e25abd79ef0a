/* SPDX-License-Identifier: MIT */
/*
 * The call API: synchronous and asynchronous calls, waiting for any or all of many calls
 * across channels, and their results. This file owns the call objects the caller holds and
 * the caller's waiting loop.
 *
 * A call enters the pending-call table (rpc_pending.c) before its request leaves, since the
 * response may beat the sender back; whoever delivers the response (any pumping thread)
 * completes it. A caller waits by making progress on its channels itself (rpc_progress.c:
 * look at the peer, pump, serve) in the wait engine's loop (an RPC waiter, rpc_int.h), which
 * spins for spin_ns before it sleeps on all of them at once. A synchronous call's object lives
 * on the caller's stack; an asynchronous one's is the channel's spare, or malloc'd
 * (rpc_pool.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rpc_int.h"

static _Thread_local char tl_errmsg[SMEM_RPC_ERRMSG_MAX];

/* ---- calls ---------------------------------------------------------------------------------- */

static void call_init(struct smem_rpc_call *c, struct smem_rpc *ch, uint64_t deadline,
		      bool on_stack)
{
	c->ch = ch;
	c->deadline = deadline;
	atomic_store_explicit(&c->done, 0, memory_order_relaxed);	/* not shared yet */
	c->status = 0;
	c->resp = NULL;
	c->resp_len = 0;
	c->in_table = false;
	c->on_stack = on_stack;
	c->next = NULL;
	c->msg[0] = '\0';
}

/*
 * Forget a call: out of the table (a response that comes later is discarded and counted), its
 * response freed, the object kept as the channel's spare (or freed). A completed call left the
 * table under the lock before its done flag was set, so it needs no lock here.
 */
static void call_release(struct smem_rpc_call *c)
{
	if (!smem__rpc_call_is_done(c))
		smem__rpc_call_forget(c->ch, c);
	free(c->resp);
	c->resp = NULL;
	if (!c->on_stack)
		smem__rpc_call_recycle(c->ch, c);
}

/* Send a request as call @c (the caller's object, or NULL to allocate one). */
static int call_start(struct smem_rpc *ch, const void *req, size_t len, int timeout_ms,
		      struct smem_rpc_call *c, struct smem_rpc_call **ret)
{
	uint64_t peer_max;
	bool on_stack = c != NULL;
	int rc;

	if (!ch || (!req && len) || !ret)
		return -EINVAL;
	rc = smem__rpc_refresh(ch, false);
	if (rc)
		return rc;
	peer_max = atomic_load_explicit(&ch->peer_max, memory_order_relaxed);
	if (len > SMEM_RPC_MAX_MESSAGE || (peer_max && len > peer_max))
		return -EMSGSIZE;
	if (!c && !(c = smem__rpc_call_new(ch)))
		return -ENOMEM;
	call_init(c, ch, smem__deadline(timeout_ms), on_stack);
	/* Relaxed: ids need only be unique. */
	c->id = atomic_fetch_add_explicit(&ch->next_id, 1, memory_order_relaxed);
	/* In the table before the request leaves: the response may beat us back. */
	rc = smem__rpc_call_add(ch, c);
	if (rc == 0)
		rc = smem__rpc_send(ch, SMEM_RPC_REQUEST, c->id, 0, 0, req, len, c->deadline);
	if (rc) {
		if (smem__rpc_call_is_done(c) && c->status)
			rc = c->status;	/* failed meanwhile: the channel's reason is better */
		call_release(c);
		if (rc == -ETIMEDOUT)
			SMEM__RPC_STAT_ADD(ch, timeouts, 1);
		return rc;
	}
	SMEM__RPC_STAT_ADD(ch, requests_sent, 1);
	*ret = c;
	return 0;
}

/* A caller's wait for calls, possibly of several channels (an RPC waiter, rpc_int.h). */
struct call_wait {
	struct smem__rpc_waiter rw;	/* first */
	struct smem_rpc_call *const *calls;
	unsigned n;
	bool all;
	struct smem_rpc *const *chs;
	unsigned nch;
};

/* How many calls are done, if that ends the wait; else -EAGAIN. */
static int calls_done(const struct call_wait *cw)
{
	unsigned i, done = 0;

	for (i = 0; i < cw->n; i++)
		done += smem__rpc_call_is_done(cw->calls[i]);
	return done == cw->n || (!cw->all && done > 0) ? (int)done : -EAGAIN;
}

/* One look: this thread pumps every channel (and serves what it may), then the calls. */
static int cw_poll(struct smem__waiter *w)
{
	struct call_wait *cw = (struct call_wait *)w;
	unsigned k;

	for (k = 0; k < cw->nch; k++)
		smem__rpc_progress(cw->chs[k]);
	return calls_done(cw);
}

static int cw_fill(struct smem__rpc_waiter *rw, uint64_t *bound)
{
	struct call_wait *cw = (struct call_wait *)rw;
	uint32_t evs[SMEM__RPC_MAX_WAIT_CHANNELS];
	uint64_t now;
	unsigned i, k;
	int ret;

	/* Each event word's snapshot before the look it guards. */
	for (k = 0; k < cw->nch; k++) {
		evs[k] = atomic_load(&cw->chs[k]->ev);
		smem__rpc_progress(cw->chs[k]);
	}
	/* Calls past their own deadline time out; the earliest other one bounds the sleep. */
	now = smem__now_ns();
	for (i = 0; i < cw->n; i++) {
		struct smem_rpc_call *c = cw->calls[i];

		smem__rpc_call_expire(c, now);
		if (!smem__rpc_call_is_done(c) && c->deadline != UINT64_MAX)
			*bound = smem__rpc_min(*bound, c->deadline > now ? c->deadline - now : 0);
	}
	ret = calls_done(cw);
	if (ret != -EAGAIN)
		return ret;
	for (k = 0; k < cw->nch; k++)
		*bound = smem__rpc_min(*bound, smem__rpc_ws_channel(&rw->ws, cw->chs[k], evs[k]));
	return -EAGAIN;
}

/* Wait for calls, possibly of several channels; this thread pumps them all meanwhile. */
static int wait_calls(struct smem_rpc_call *const *calls, unsigned n, bool all,
		      uint64_t deadline)
{
	struct smem_rpc *chs[SMEM__RPC_MAX_WAIT_CHANNELS] = { NULL };
	struct call_wait cw;
	unsigned nch = 0, i, k;
	int rc;

	for (i = 0; i < n; i++) {
		for (k = 0; k < nch && chs[k] != calls[i]->ch; k++)
			;
		if (k == nch) {
			if (nch == SMEM__RPC_MAX_WAIT_CHANNELS)
				return -EINVAL;
			chs[nch++] = calls[i]->ch;
		}
	}
	cw.calls = calls;
	cw.n = n;
	cw.all = all;
	cw.chs = chs;
	cw.nch = nch;
	for (k = 0; k < nch; k++)
		smem__rpc_poll_enter(chs[k]);
	rc = cw_poll(&cw.rw.w);
	if (rc == -EAGAIN) {
		/* The peer answers within microseconds when it is busy: the engine spins first. */
		smem__rpc_waiter_init(&cw.rw, cw_poll, cw_fill, chs[0], chs[0]->spin_ns, deadline);
		rc = smem__wait_for(&cw.rw.w);
	}
	for (k = 0; k < nch; k++)
		smem__rpc_poll_leave(chs[k]);
	return rc;
}

int smem_rpc_call_async(struct smem_rpc *ch, const void *req, size_t len, int timeout_ms,
			struct smem_rpc_call **ret)
{
	return call_start(ch, req, len, timeout_ms, NULL, ret);
}

bool smem_rpc_call_done(const struct smem_rpc_call *call)
{
	return call && smem__rpc_call_is_done(call);
}

int smem_rpc_call_result(struct smem_rpc_call *call, void **resp, size_t *resp_len)
{
	if (!call)
		return -EINVAL;
	if (!smem__rpc_call_is_done(call))
		return -EINPROGRESS;
	if (call->status) {
		snprintf(tl_errmsg, sizeof(tl_errmsg), "%s", call->msg);
		return call->status;
	}
	if (resp) {
		*resp = call->resp;
		call->resp = NULL;
	}
	if (resp_len)
		*resp_len = call->resp_len;
	if (resp)
		call->resp_len = 0;
	return 0;
}

void smem_rpc_call_free(struct smem_rpc_call *call)
{
	if (call)
		call_release(call);
}

int smem_rpc_wait(struct smem_rpc_call *const *calls, unsigned n, unsigned flags,
		  int timeout_ms)
{
	unsigned i;

	if (!calls || n == 0 || n > 1024 || (flags & ~SMEM_RPC_WAIT_ALL))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!calls[i])
			return -EINVAL;
	return wait_calls(calls, n, flags & SMEM_RPC_WAIT_ALL, smem__deadline(timeout_ms));
}

int smem_rpc_call(struct smem_rpc *ch, const void *req, size_t len, void **resp,
		  size_t *resp_len, int timeout_ms)
{
	struct smem_rpc_call call, *c;	/* a synchronous call allocates nothing */
	int rc;

	tl_errmsg[0] = '\0';
	rc = call_start(ch, req, len, timeout_ms, &call, &c);
	if (rc)
		return rc;
	rc = wait_calls(&c, 1, true, c->deadline);
	if (rc == -ETIMEDOUT) {
		/* Our own deadline: make the call's outcome say so too. */
		smem__rpc_call_expire(c, c->deadline);
	}
	rc = smem_rpc_call_result(c, resp, resp_len);
	call_release(c);
	return rc;
}

void smem_rpc_free_response(void *resp)
{
	free(resp);
}

const char *smem_rpc_last_error_message(void)
{
	return tl_errmsg;
}
