/* SPDX-License-Identifier: MIT */
/*
 * Running handlers. Requests reassembled by the pump wait in the channel's queue; they run
 * outside any lock on the threads allowed to serve the channel: the service thread (default),
 * or in dispatch mode any thread inside dispatch/serve/call/wait. A thread waiting in a nested
 * call keeps serving, so handlers can call back through the same channel without deadlock
 * (up to MAX_NESTING deep on one thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ring_int.h"
#include "rpc_int.h"

_Thread_local int smem__rpc_tl_depth;
_Thread_local const struct smem_rpc *smem__rpc_tl_service;	/* set on a channel's service thread */

static bool may_serve(const struct smem_rpc *ch)
{
	if (!ch->handler)
		return true;	/* -ENOSYS replies cost nothing: anybody sends them */
	if (smem__rpc_tl_depth >= MAX_NESTING)
		return false;
	if (ch->service == SMEM_RPC_SERVICE_DISPATCH)
		return true;
	return smem__rpc_tl_service == ch;
}

void smem__rpc_queue_push(struct smem_rpc *ch, struct inreq *q)
{
	pthread_mutex_lock(&ch->lock);
	if (ch->q_tail)
		ch->q_tail->next = q;
	else
		ch->q_head = q;
	ch->q_tail = q;
	/* Relaxed: a hint for lock-free looks; the ev bump below is what wakes anybody. */
	atomic_store_explicit(&ch->qlen, atomic_load_explicit(&ch->qlen, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	pthread_mutex_unlock(&ch->lock);
	smem__rpc_ev_bump(ch);
	if (ch->service == SMEM_RPC_SERVICE_THREAD && smem__rpc_tl_service != ch)
		smem__rpc_sev_bump(ch);	/* a poller pumped it: the service thread runs it */
}

static void req_destroy(struct inreq *q)
{
	if (q->cap == 0)
		free(q->data);
	free(q);
}

void smem__rpc_queue_free(struct inreq *q)
{
	struct inreq *next;

	for (; q; q = next) {
		next = q->next;
		req_destroy(q);
	}
}

/* A handled request: its entry or its buffer kept as a spare (or freed). */
static void req_free(struct smem_rpc *ch, struct inreq *q)
{
	if (q->cap == 0) {
		smem__rpc_buf_put(ch, q->data, q->bufcap);
		free(q);
		return;
	}
	/* Release: our use of *q happens before the pump's (req_new()'s acquire). */
	q = atomic_exchange_explicit(&ch->spare_req, q, memory_order_acq_rel);
	if (q)
		req_destroy(q);
}

/* ---- serving -------------------------------------------------------------------------------- */

int smem_rpc_reply_set(struct smem_rpc_reply *reply, const void *data, size_t len)
{
	void *p;

	if (!reply || (!data && len))
		return -EINVAL;
	p = smem_rpc_reply_alloc(reply, len);
	if (!p && len)
		return len > reply->max ? -EMSGSIZE : -ENOMEM;
	if (len)
		memcpy(p, data, len);
	return 0;
}

void *smem_rpc_reply_alloc(struct smem_rpc_reply *reply, size_t len)
{
	void *p = NULL;

	if (!reply || len > reply->max)
		return NULL;
	if (len) {
		p = malloc(len);
		if (!p)
			return NULL;
	}
	free(reply->data);
	reply->data = p;
	reply->len = len;
	return p;
}

void smem_rpc_reply_error(struct smem_rpc_reply *reply, const char *message)
{
	if (reply)
		snprintf(reply->msg, sizeof(reply->msg), "%s", message ? message : "");
}

static void handle_request(struct smem_rpc *ch, struct inreq *q)
{
	struct smem_rpc_request req = {
		.channel = ch, .id = q->id, .data = q->len ? q->data : NULL, .len = q->len,
	};
	uint64_t peer_max = atomic_load_explicit(&ch->peer_max, memory_order_relaxed);
	struct smem_rpc_reply reply;
	uint64_t id;
	int rc;

	reply.data = NULL;
	reply.len = 0;
	reply.max = peer_max ? peer_max : ch->max_message;
	reply.msg[0] = '\0';
	if (q->session != my_session(ch))
		return;	/* its sender is gone: nobody to answer */
	if (!ch->handler) {
		rc = -ENOSYS;
	} else {
		smem__rpc_tl_depth++;
		rc = ch->handler(ch->handler_arg, &req, &reply);
		smem__rpc_tl_depth--;
		if (rc > 0)
			rc = -EPROTO;
		if (rc < -4095)
			rc = -EPROTO;
	}
	/* Relaxed: ids need only be unique. */
	id = atomic_fetch_add_explicit(&ch->next_id, 1, memory_order_relaxed);
	if (rc == 0) {
		rc = smem__rpc_send(ch, SMEM_RPC_RESPONSE, id, q->id, 0, reply.data, reply.len,
				    SMEM__RPC_REPLY_DEADLINE);
		if (rc == 0)
			STAT_ADD(ch, responses_sent, 1);
	} else {
		rc = smem__rpc_send(ch, SMEM_RPC_ERROR, id, q->id, rc, reply.msg,
				    strlen(reply.msg), SMEM__RPC_REPLY_DEADLINE);
		if (rc == 0)
			STAT_ADD(ch, errors_sent, 1);
	}
	if (rc == -ETIMEDOUT)
		STAT_ADD(ch, timeouts, 1);
	free(reply.data);
}

/* Run queued requests (when this thread may). Returns how many. */
static int run_queue(struct smem_rpc *ch)
{
	struct inreq *q;
	int n = 0;

	/* An empty queue costs one load; a request queued after it bumps ev (no lost wakeup). */
	while (atomic_load_explicit(&ch->qlen, memory_order_relaxed) && may_serve(ch)) {
		pthread_mutex_lock(&ch->lock);
		q = ch->q_head;
		if (q) {
			ch->q_head = q->next;
			if (!ch->q_head)
				ch->q_tail = NULL;
			atomic_store_explicit(&ch->qlen,
					      atomic_load_explicit(&ch->qlen, memory_order_relaxed) - 1,
					      memory_order_relaxed);
		}
		pthread_mutex_unlock(&ch->lock);
		if (!q)
			break;
		handle_request(ch, q);
		req_free(ch, q);
		n++;
	}
	return n;
}

static bool queue_nonempty(struct smem_rpc *ch)
{
	bool r;

	if (!atomic_load_explicit(&ch->qlen, memory_order_relaxed))
		return false;
	pthread_mutex_lock(&ch->lock);
	r = ch->q_head != NULL;
	pthread_mutex_unlock(&ch->lock);
	return r;
}

/* Everything a waiting thread does for a channel without sleeping. Returns requests run. */
int smem__rpc_progress(struct smem_rpc *ch)
{
	smem__rpc_refresh(ch, false);
	smem__rpc_try_pump(ch);
	if (atomic_load_explicit(&ch->ncancels, memory_order_relaxed))
		smem__rpc_flush_cancels(ch);
	return run_queue(ch);
}

/* Are there queued requests this thread may run? */
bool smem__rpc_may_run_queue(struct smem_rpc *ch)
{
	return may_serve(ch) && queue_nonempty(ch);
}

/* Add what a thread waiting on @ch sleeps on; returns the longest it may sleep. */
uint64_t smem__rpc_ws_channel(struct smem__rpc_ws *ws, struct smem_rpc *ch, uint32_t v)
{
	smem__rpc_ws_ev(ws, ch, v);
	if (atomic_load_explicit(&ch->state, memory_order_acquire) == 0 ||
	    ch->role == SMEM_RPC_MASTER)
		smem__rpc_ws_rx(ws, ch);
	smem__rpc_ws_peer(ws, ch);
	if (smem__rpc_may_run_queue(ch))
		ws->ready = true;
	return smem__rpc_peer_poll_bound(ch);
}

void *smem__rpc_service_main(void *arg)
{
	struct smem_rpc *ch = arg;
	uint64_t bound, idle_since = 0, now = 0;
	struct smem__rpc_ws ws;
	unsigned spins = 0;
	uint32_t v, sv, pw, entries = 0;

	smem__rpc_tl_service = ch;	/* handlers (and nested calls) on this thread may serve ch */

	while (!atomic_load_explicit(&ch->stopping, memory_order_acquire)) {
		v = atomic_load(&ch->ev);
		sv = atomic_load(&ch->sev);
		if (smem__rpc_progress(ch) > 0)
			idle_since = 0;
		if (atomic_load_explicit(&ch->stopping, memory_order_acquire))
			break;
		pw = atomic_load_explicit(&ch->pollers, memory_order_relaxed);
		if (POLLERS_ACTIVE(pw) || POLLERS_ENTRIES(pw) != entries) {
			/*
			 * Another thread of ours waits on this channel (a caller), or did within
			 * the last POLLER_RECHECK_NS: it pumps the ring, answers what needs no
			 * handler, and bumps sev for requests only this thread may run. Polling
			 * or watching the ring beside it would cost the peer a futex wake per
			 * message and us a wakeup (and, pinned to its core, time the caller
			 * needs): sleep on sev, without spinning, for POLLER_RECHECK_NS at most,
			 * since pollers leave without waking us. Between two of its calls
			 * (none active), also watch the ring as usual, in case it was the last.
			 */
			entries = POLLERS_ENTRIES(pw);
			smem__rpc_ws_init(&ws);
			smem__rpc_ws_sev(&ws, ch, sv);
			if (!POLLERS_ACTIVE(pw))
				(void)smem__rpc_ws_channel(&ws, ch, v);
			else
				smem__rpc_ws_peer(&ws, ch);
			smem__rpc_ws_word(&ws, ch, &ch->ctl->event, atomic_load(&ch->ctl->event));
			if (smem__rpc_may_run_queue(ch))
				ws.ready = true;
			smem__rpc_ws_sleep(&ws, ch, POLLER_RECHECK_NS);
			idle_since = 0;
			continue;
		}
		if (idle_since && (++spins & 7)) {
			cpu_relax();	/* polling: the clock every 8th look only */
			continue;
		}
		now = smem__now_ns();
		if (!idle_since)
			idle_since = now;
		if (now - idle_since < ch->spin_ns) {
			cpu_relax();
			continue;
		}
		idle_since = 0;
		smem__rpc_ws_init(&ws);
		bound = smem__rpc_ws_channel(&ws, ch, v);
		/* A master whose slave left waits for a new slave: watch the control region. */
		smem__rpc_ws_word(&ws, ch, &ch->ctl->event, atomic_load(&ch->ctl->event));
		smem__rpc_ws_sleep(&ws, ch, bound);
	}
	return NULL;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

int smem_rpc_serve(struct smem_rpc *const *chs, unsigned n, int timeout_ms)
{
	uint64_t deadline = smem__deadline(timeout_ms), bound, spin_until, now;
	uint32_t evs[MAX_WAIT_CHANNELS];
	struct smem__rpc_ws ws;
	unsigned k, live, spins;
	int handled;

	if (!chs || n == 0 || n > MAX_WAIT_CHANNELS)
		return -EINVAL;
	for (k = 0; k < n; k++)
		if (!chs[k] || chs[k]->service != SMEM_RPC_SERVICE_DISPATCH)
			return -EINVAL;
	spin_until = smem__now_ns() + chs[0]->spin_ns;
	for (spins = 0;; spins++) {
		handled = 0;
		live = 0;
		for (k = 0; k < n; k++) {
			evs[k] = atomic_load(&chs[k]->ev);
			handled += smem__rpc_progress(chs[k]);
			if (atomic_load_explicit(&chs[k]->state, memory_order_acquire) == 0 ||
			    chs[k]->role == SMEM_RPC_MASTER)
				live++;
		}
		if (handled)
			return handled;
		if (!live)
			return atomic_load(&chs[0]->state);	/* every channel failed */
		if (spins & 7) {
			cpu_relax();	/* polling: the clock every 8th look only */
			continue;
		}
		now = smem__now_ns();
		bound = deadline == UINT64_MAX ? UINT64_MAX : deadline > now ? deadline - now : 0;
		if (bound == 0)
			return 0;
		if (now < spin_until) {
			cpu_relax();
			continue;
		}
		smem__rpc_ws_init(&ws);
		for (k = 0; k < n; k++) {
			bound = min_u64(bound, smem__rpc_ws_channel(&ws, chs[k], evs[k]));
			if (chs[k]->role == SMEM_RPC_MASTER)
				smem__rpc_ws_word(&ws, chs[k], &chs[k]->ctl->event,
						  atomic_load(&chs[k]->ctl->event));
		}
		smem__rpc_ws_sleep(&ws, chs[0], bound);
	}
}

int smem_rpc_dispatch(struct smem_rpc *ch, int timeout_ms)
{
	return smem_rpc_serve(&ch, 1, timeout_ms);
}

