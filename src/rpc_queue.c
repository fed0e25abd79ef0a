/* SPDX-License-Identifier: MIT */
/*
 * The request queue: requests the receive path reassembled wait here, in order, for a thread that
 * may run their handler. This file owns the queue (under ch->lock; qlen is a lock-free hint beside
 * it) and the rule of who may take from it: the channel's service thread (the default), or in
 * dispatch mode any thread inside dispatch/serve/call/wait, up to SMEM__RPC_MAX_NESTING handlers
 * deep on one thread; a side without a handler lets anybody answer (-ENOSYS costs nothing). Pushing
 * wakes whoever may run the request: the channel's event word, and the service thread's own word
 * when the pusher is some other thread of the process.
 */
#include "internal.h"
#include "rpc_int.h"

_Thread_local int smem__rpc_tl_depth;
_Thread_local const struct smem_rpc *smem__rpc_tl_service;

bool smem__rpc_may_serve(const struct smem_rpc *ch)
{
	if (!ch->handler)
		return true;	/* -ENOSYS replies cost nothing: anybody sends them */
	if (smem__rpc_tl_depth >= SMEM__RPC_MAX_NESTING)
		return false;
	if (ch->service == SMEM_RPC_SERVICE_DISPATCH)
		return true;
	return smem__rpc_tl_service == ch;
}

void smem__rpc_queue_push(struct smem_rpc *ch, struct smem__rpc_req *q)
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

struct smem__rpc_req *smem__rpc_queue_pop(struct smem_rpc *ch)
{
	struct smem__rpc_req *q;

	/* An empty queue costs one load; a request queued after it bumps ev (no lost wakeup). */
	if (!atomic_load_explicit(&ch->qlen, memory_order_relaxed) || !smem__rpc_may_serve(ch))
		return NULL;
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
	return q;
}

bool smem__rpc_may_run_queue(struct smem_rpc *ch)
{
	bool r;

	if (!atomic_load_explicit(&ch->qlen, memory_order_relaxed) || !smem__rpc_may_serve(ch))
		return false;
	pthread_mutex_lock(&ch->lock);
	r = ch->q_head != NULL;
	pthread_mutex_unlock(&ch->lock);
	return r;
}

struct smem__rpc_req *smem__rpc_queue_take_all(struct smem_rpc *ch)
{
	struct smem__rpc_req *q = ch->q_head;

	ch->q_head = ch->q_tail = NULL;
	atomic_store_explicit(&ch->qlen, 0, memory_order_relaxed);
	return q;
}

void smem__rpc_queue_free(struct smem__rpc_req *q)
{
	struct smem__rpc_req *next;

	for (; q; q = next) {
		next = q->next;
		smem__rpc_req_destroy(q);
	}
}
