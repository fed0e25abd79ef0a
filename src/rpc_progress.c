/* SPDX-License-Identifier: MIT */
/*
 * The progress engine: everything a thread waiting on a channel does for it without sleeping,
 * and what it sleeps on when there is nothing to do. A caller, the service thread and a
 * dispatch loop all make progress the same way (smem__rpc_progress()): look at the peer, pump
 * the receive ring, flush CANCEL packets that found no room, and run the queued requests this
 * thread may run: a handler runs here, outside any lock, and its reply leaves through the
 * transmit path. A thread waiting in a nested call keeps serving, so handlers can call back
 * through the same channel without deadlock (up to SMEM__RPC_MAX_NESTING deep on one thread).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rpc_int.h"

static void handle_request(struct smem_rpc *ch, struct smem__rpc_req *q)
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
	if (q->session != smem__rpc_my_session(ch))
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
			SMEM__RPC_STAT_ADD(ch, responses_sent, 1);
	} else {
		rc = smem__rpc_send(ch, SMEM_RPC_ERROR, id, q->id, rc, reply.msg,
				    strlen(reply.msg), SMEM__RPC_REPLY_DEADLINE);
		if (rc == 0)
			SMEM__RPC_STAT_ADD(ch, errors_sent, 1);
	}
	if (rc == -ETIMEDOUT)
		SMEM__RPC_STAT_ADD(ch, timeouts, 1);
	free(reply.data);
}

/* Run up to @max queued requests (when this thread may). Returns how many. */
static int run_queue(struct smem_rpc *ch, unsigned max)
{
	struct smem__rpc_req *q;
	int n = 0;

	/* The length hint first: progress on an empty queue costs one load, not a call. */
	while ((unsigned)n < max && atomic_load_explicit(&ch->qlen, memory_order_relaxed) &&
	       (q = smem__rpc_queue_pop(ch))) {
		handle_request(ch, q);
		smem__rpc_req_recycle(ch, q);
		n++;
	}
	return n;
}

int smem__rpc_progress_max(struct smem_rpc *ch, unsigned max)
{
	smem__rpc_refresh(ch, false);
	smem__rpc_try_pump(ch);
	if (atomic_load_explicit(&ch->ncancels, memory_order_relaxed))
		smem__rpc_flush_cancels(ch);
	return run_queue(ch, max);
}

int smem__rpc_progress(struct smem_rpc *ch)
{
	return smem__rpc_progress_max(ch, UINT_MAX);
}

/* Add what a thread waiting on @ch sleeps on; returns the longest it may sleep. */
uint64_t smem__rpc_ws_channel(struct smem__rpc_ws *ws, struct smem_rpc *ch, uint32_t v)
{
	/*
	 * The receive ring first: what usually ends an idle wait is the peer's next packet, and
	 * the wait engine's last resort (one FUTEX_WAIT, the other words looked at between
	 * slices: wait.h) sleeps on the first word.
	 */
	if (atomic_load_explicit(&ch->state, memory_order_acquire) == 0 ||
	    ch->role == SMEM_RPC_MASTER)
		smem__rpc_ws_rx(ws, ch);
	smem__rpc_ws_ev(ws, ch, v);
	smem__rpc_ws_peer(ws, ch);
	if (smem__rpc_may_run_queue(ch))
		ws->ready = true;
	return smem__rpc_peer_poll_bound(ch);
}
