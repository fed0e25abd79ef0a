/* SPDX-License-Identifier: MIT */
/*
 * The caller's side of an RPC channel: pending calls, sending messages, and the call/wait API.
 *
 * A call is in the channel's table (a hash of chains under ch->lock) before its request
 * leaves, since the response may beat the sender back; whoever delivers the response (any
 * pumping thread) completes the call under the lock and publishes it with a release store of
 * c->done, which the caller acquires. A caller waits by making progress on its channels itself
 * (refresh, pump, serve) and spins for spin_ns before sleeping on all of them at once
 * (rpc_wait.c).
 *
 * A sender that finds the ring full waits for room (the deadline of its call bounds it:
 * nothing is ever dropped) and pumps meanwhile, so two sides sending to each other cannot
 * wedge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ring_int.h"
#include "rpc_int.h"

static _Thread_local char tl_errmsg[SMEM_RPC_ERRMSG_MAX];

/* ---- pending calls (under ch->lock) ---------------------------------------------------- */

static unsigned bucket(uint64_t id)
{
	return (unsigned)((id * 0x9e3779b97f4a7c15ull) >> 56) & (CALL_BUCKETS - 1);
}

static void call_insert(struct smem_rpc *ch, struct smem_rpc_call *c)
{
	unsigned b = bucket(c->id);

	c->next = ch->calls[b];
	ch->calls[b] = c;
	c->in_table = true;
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

/* Complete @c (in the table, under ch->lock). Release: pairs with the acquire in call_done. */
static void call_complete(struct smem_rpc *ch, struct smem_rpc_call *c, int status)
{
	call_remove(ch, c);
	c->status = status;
	atomic_store_explicit(&c->done, 1, memory_order_release);
}


unsigned smem__rpc_calls_fail(struct smem_rpc *ch, int err)
{
	unsigned b, n = 0;

	for (b = 0; b < CALL_BUCKETS; b++)
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
			size_t n = min_u64(len, sizeof(c->msg) - 1);

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

/* ---- sending -------------------------------------------------------------------------------- */

/*
 * Reserve a node of the send ring by *deadline (SMEM__RPC_REPLY_DEADLINE: reply_timeout_ms
 * from the first time the ring is found full), pumping the receive ring while we wait. A full
 * ring is polled for spin_ns first: a busy peer frees a node within microseconds, and then
 * nobody makes a system call.
 */
static int reserve_room_wait(struct smem_rpc *ch, struct smem_ring_slot *slot,
			     uint64_t *deadline);

static int reserve_room(struct smem_rpc *ch, struct smem_ring_slot *slot, uint64_t *deadline)
{
	int rc = smem_ring_reserve_write(ch->tx, slot, 0);

	if (rc != -ETIMEDOUT && rc != -EAGAIN)
		return rc == -ESHUTDOWN ? (smem__rpc_refresh(ch, true) ?: -ESHUTDOWN) : rc;
	/* Full: wait, pumping (so the service thread need not watch the ring meanwhile). */
	smem__rpc_poll_enter(ch);
	rc = reserve_room_wait(ch, slot, deadline);
	smem__rpc_poll_leave(ch);
	return rc;
}

static int reserve_room_wait(struct smem_rpc *ch, struct smem_ring_slot *slot,
			     uint64_t *deadline)
{
	uint64_t t0 = 0, now, spin_until = 0;
	struct smem__rpc_ws ws;
	unsigned spins;
	uint32_t v;
	int rc;

	for (spins = 0;; spins++) {
		v = atomic_load(&ch->ev);
		rc = smem_ring_reserve_write(ch->tx, slot, 0);
		if (rc == 0)
			break;
		if (rc != -ETIMEDOUT && rc != -EAGAIN)
			return rc == -ESHUTDOWN ? (smem__rpc_refresh(ch, true) ?: -ESHUTDOWN) : rc;
		if (t0 && (spins & 7) && now < spin_until) {
			smem__rpc_try_pump(ch);	/* polling: the clock every 8th look only */
			cpu_relax();
			continue;
		}
		now = smem__now_ns();
		if (!t0) {
			t0 = now;
			spin_until = now + ch->spin_ns;
			if (*deadline == SMEM__RPC_REPLY_DEADLINE)
				*deadline = now + (uint64_t)ch->reply_timeout_ms * 1000000ull;
		}
		rc = smem__rpc_refresh(ch, false);
		if (rc)
			return rc;
		if (*deadline != UINT64_MAX && now >= *deadline)
			return -ETIMEDOUT;
		smem__rpc_try_pump(ch);
		if (now < spin_until) {
			cpu_relax();
			continue;
		}
		smem__rpc_ws_init(&ws);
		smem__rpc_ws_ring(&ws, ch, ch->tx, true);
		smem__rpc_ws_ev(&ws, ch, v);
		smem__rpc_ws_rx(&ws, ch);
		smem__rpc_ws_peer(&ws, ch);
		smem__rpc_ws_sleep(&ws, NULL, min_u64(smem__remaining_ns(*deadline),
						      smem__rpc_peer_poll_bound(ch)));
	}
	if (t0)
		stat_max(&ch->st.max_wait_write_ns, smem__now_ns() - t0);
	return 0;
}

/* Write the CANCEL packet of an abandoned message if the ring has room now. 0 or -EAGAIN. */
static int write_cancel(struct smem_rpc *ch, uint64_t id, uint64_t response_to,
			uint32_t session)
{
	struct smem_rpc_pkt_hdr h;
	struct smem_ring_slot slot;

	if (smem_ring_reserve_write(ch->tx, &slot, 0) != 0)
		return -EAGAIN;
	if (slot.cap < SMEM_RPC_HDR_SIZE) {
		smem_ring_abort(ch->tx, &slot);
		return -EAGAIN;
	}
	smem__rpc_pkt_fill(&h, SMEM_RPC_CANCEL, session, id, response_to, 0, 0, 1, 0, 0);
	memcpy(slot.data, &h, sizeof(h));
	if (smem_ring_commit(ch->tx, &slot, SMEM_RPC_HDR_SIZE) != 0)
		return -EAGAIN;
	STAT_ADD(ch, packets_sent, 1);
	return 0;
}

/* A message was abandoned after some of its packets left: cancel it now or when room comes. */
static void cancel_message(struct smem_rpc *ch, uint64_t id, uint64_t response_to,
			   uint32_t session)
{
	unsigned n;

	if (write_cancel(ch, id, response_to, session) == 0)
		return;
	pthread_mutex_lock(&ch->lock);
	n = atomic_load_explicit(&ch->ncancels, memory_order_relaxed);
	if (n == MAX_CANCELS) {
		/* The oldest is left to the receiver's expiry of stale partial messages. */
		memmove(&ch->cancels[0], &ch->cancels[1], sizeof(ch->cancels[0]) * (n - 1));
		n--;
	}
	ch->cancels[n].msg_id = id;
	ch->cancels[n].response_to = response_to;
	ch->cancels[n].session = session;
	atomic_store_explicit(&ch->ncancels, n + 1, memory_order_relaxed);
	pthread_mutex_unlock(&ch->lock);
}

void smem__rpc_flush_cancels(struct smem_rpc *ch)
{
	unsigned n, i = 0;

	pthread_mutex_lock(&ch->lock);
	n = atomic_load_explicit(&ch->ncancels, memory_order_relaxed);
	for (; i < n; i++) {
		/* Packets of an ended session are dropped by the receiver anyway. */
		if (ch->cancels[i].session == my_session(ch) &&
		    write_cancel(ch, ch->cancels[i].msg_id, ch->cancels[i].response_to,
				 ch->cancels[i].session) != 0)
			break;
	}
	memmove(&ch->cancels[0], &ch->cancels[i], sizeof(ch->cancels[0]) * (n - i));
	atomic_store_explicit(&ch->ncancels, n - i, memory_order_relaxed);
	pthread_mutex_unlock(&ch->lock);
}

int smem__rpc_send(struct smem_rpc *ch, uint8_t type, uint64_t id, uint64_t response_to,
		   int32_t error, const void *data, size_t len, uint64_t deadline)
{
	uint32_t count = smem__rpc_packet_count(len, ch->per), i, chunk = 0;
	uint32_t session = my_session(ch);
	struct smem_rpc_pkt_hdr h;
	struct smem_ring_slot slot;
	int rc = 0;

	if (count == 0 || len > SMEM_RPC_MAX_MESSAGE)
		return -EMSGSIZE;
	if (atomic_load_explicit(&ch->ncancels, memory_order_relaxed))
		smem__rpc_flush_cancels(ch);
	for (i = 0; i < count; i++) {
		rc = reserve_room(ch, &slot, &deadline);
		if (rc)
			break;
		if (slot.cap < SMEM_RPC_HDR_SIZE + (size_t)ch->per) {
			smem_ring_abort(ch->tx, &slot);
			rc = -EPROTO;
			break;
		}
		/* Straight into the node: the payload is copied once, by this memcpy. */
		chunk = smem__rpc_chunk_len(len, ch->per, i);
		smem__rpc_pkt_fill(&h, type, session, id, response_to, len, i, count, chunk, error);
		memcpy(slot.data, &h, sizeof(h));
		if (chunk)
			memcpy((uint8_t *)slot.data + SMEM_RPC_HDR_SIZE,
			       (const uint8_t *)data + (size_t)i * ch->per, chunk);
		rc = smem_ring_commit(ch->tx, &slot, SMEM_RPC_HDR_SIZE + chunk);
		if (rc)
			break;
	}
	/* Counted once per message: packets 0..i-1 left (all full but maybe the last). */
	if (i) {
		STAT_ADD(ch, packets_sent, i);
		STAT_ADD(ch, bytes_sent, rc ? (uint64_t)i * ch->per : len);
		stat_max(&ch->st.max_packet_sent, i > 1 ? ch->per : chunk);
		STAT_SET(ch, last_packet_sent, (int64_t)(rc ? ch->per : chunk));
	}
	if (rc) {
		if (i > 0)
			cancel_message(ch, id, response_to, session);
		return rc;
	}
	STAT_SET(ch, last_message_sent, (int64_t)len);
	return 0;
}

/* ---- calls ---------------------------------------------------------------------------------- */

/* A call object: the channel's spare if it has one (a steady stream allocates nothing). */
static struct smem_rpc_call *call_new(struct smem_rpc *ch)
{
	/* Acquire: pairs with the exchange in call_release(); the spare is ours alone. */
	struct smem_rpc_call *c = atomic_exchange_explicit(&ch->spare_call, NULL,
							    memory_order_acquire);

	return c ? c : malloc(sizeof(*c));
}

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

static bool call_is_done(const struct smem_rpc_call *c)
{
	/* Acquire: pairs with the release in call_complete(). */
	return atomic_load_explicit(&c->done, memory_order_acquire) != 0;
}

/*
 * Forget a call: out of the table (a response that comes later is discarded and counted), its
 * response freed, the object kept as the channel's spare (or freed). A completed call left the
 * table under the lock before its done flag was set, so it needs no lock here.
 */
static void call_release(struct smem_rpc_call *c)
{
	struct smem_rpc *ch = c->ch;
	struct smem_rpc_call *old;

	if (!call_is_done(c)) {
		pthread_mutex_lock(&ch->lock);
		call_remove(ch, c);
		pthread_mutex_unlock(&ch->lock);
	}
	free(c->resp);
	c->resp = NULL;
	if (c->on_stack)
		return;
	/* Release: our writes to *c happen before the next owner's (call_new's acquire). */
	old = atomic_exchange_explicit(&ch->spare_call, c, memory_order_acq_rel);
	free(old);
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
	if (!c && !(c = call_new(ch)))
		return -ENOMEM;
	call_init(c, ch, smem__deadline(timeout_ms), on_stack);
	/* Relaxed: ids need only be unique. */
	c->id = atomic_fetch_add_explicit(&ch->next_id, 1, memory_order_relaxed);
	/* In the table before the request leaves: the response may beat us back. */
	pthread_mutex_lock(&ch->lock);
	rc = atomic_load_explicit(&ch->state, memory_order_relaxed);
	if (rc == 0)
		call_insert(ch, c);
	pthread_mutex_unlock(&ch->lock);
	if (rc == 0)
		rc = smem__rpc_send(ch, SMEM_RPC_REQUEST, c->id, 0, 0, req, len, c->deadline);
	if (rc) {
		if (call_is_done(c) && c->status)
			rc = c->status;	/* failed meanwhile: the channel's reason is better */
		call_release(c);
		if (rc == -ETIMEDOUT)
			STAT_ADD(ch, timeouts, 1);
		return rc;
	}
	STAT_ADD(ch, requests_sent, 1);
	*ret = c;
	return 0;
}

/* Time out @c if its deadline passed. */
static void call_expire(struct smem_rpc_call *c, uint64_t now)
{
	struct smem_rpc *ch = c->ch;
	bool expired = false;

	if (c->deadline == UINT64_MAX || now < c->deadline || call_is_done(c))
		return;
	pthread_mutex_lock(&ch->lock);
	if (!call_is_done(c)) {
		call_complete(ch, c, -ETIMEDOUT);
		expired = true;
	}
	pthread_mutex_unlock(&ch->lock);
	if (expired)
		STAT_ADD(ch, timeouts, 1);
}

static int wait_loop(struct smem_rpc_call *const *calls, unsigned n, bool all,
		     uint64_t deadline, struct smem_rpc *const *chs, unsigned nch)
{
	uint32_t evs[MAX_WAIT_CHANNELS];
	unsigned i, k, done;
	struct smem__rpc_ws ws;
	uint64_t now, bound, spin_until;
	unsigned spins;

	spin_until = 0;
	for (spins = 0;; spins++) {
		for (k = 0; k < nch; k++) {
			evs[k] = atomic_load(&chs[k]->ev);
			smem__rpc_progress(chs[k]);
		}
		for (i = done = 0; i < n; i++)
			done += call_is_done(calls[i]);
		if (done == n || (!all && done > 0))
			return (int)done;
		/* Polling: the clock (deadlines, the end of the spin) every 8th look only. */
		if (spin_until && (spins & 7)) {
			cpu_relax();
			continue;
		}
		now = smem__now_ns();
		if (!spin_until)
			spin_until = now + chs[0]->spin_ns;
		bound = deadline == UINT64_MAX ? UINT64_MAX :
			(deadline > now ? deadline - now : 0);
		for (i = done = 0; i < n; i++) {
			call_expire(calls[i], now);
			if (call_is_done(calls[i]))
				done++;
			else if (calls[i]->deadline != UINT64_MAX)
				bound = min_u64(bound, calls[i]->deadline > now ?
						       calls[i]->deadline - now : 0);
		}
		if (done == n || (!all && done > 0))
			return (int)done;
		if (deadline != UINT64_MAX && now >= deadline)
			return -ETIMEDOUT;
		if (now < spin_until && bound > 0) {
			/* The peer answers within microseconds when it is busy: poll first. */
			cpu_relax();
			continue;
		}
		smem__rpc_ws_init(&ws);
		for (k = 0; k < nch; k++)
			bound = min_u64(bound, smem__rpc_ws_channel(&ws, chs[k], evs[k]));
		smem__rpc_ws_sleep(&ws, chs[0], bound);
	}
}

/* Wait for calls, possibly of several channels; this thread pumps them all meanwhile. */
static int wait_calls(struct smem_rpc_call *const *calls, unsigned n, bool all,
		      uint64_t deadline)
{
	struct smem_rpc *chs[MAX_WAIT_CHANNELS] = { NULL };
	unsigned nch = 0, i, k;
	int rc;

	for (i = 0; i < n; i++) {
		for (k = 0; k < nch && chs[k] != calls[i]->ch; k++)
			;
		if (k == nch) {
			if (nch == MAX_WAIT_CHANNELS)
				return -EINVAL;
			chs[nch++] = calls[i]->ch;
		}
	}
	for (k = 0; k < nch; k++)
		smem__rpc_poll_enter(chs[k]);
	rc = wait_loop(calls, n, all, deadline, chs, nch);
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
	return call && call_is_done(call);
}

int smem_rpc_call_result(struct smem_rpc_call *call, void **resp, size_t *resp_len)
{
	if (!call)
		return -EINVAL;
	if (!call_is_done(call))
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
		call_expire(c, c->deadline);
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

