/* SPDX-License-Identifier: MIT */
/*
 * Serving: the loops that run a channel's handlers, and the reply a handler fills. This file
 * owns the service thread (the default: one per channel, started by smem_rpc_open()) and the
 * dispatch API (smem_rpc_dispatch(), and smem_rpc_serve() for many channels in one loop and
 * one sleep). Both spin for spin_ns, making progress (rpc_progress.c), then sleep on
 * everything that could give them work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rpc_int.h"

/* ---- replies --------------------------------------------------------------------------------- */

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

/* ---- the service thread ---------------------------------------------------------------------- */

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
			smem__rpc_sleep(&ws, ch, POLLER_RECHECK_NS);
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
		smem__rpc_sleep(&ws, ch, bound);
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
		smem__rpc_sleep(&ws, chs[0], bound);
	}
}

int smem_rpc_dispatch(struct smem_rpc *ch, int timeout_ms)
{
	return smem_rpc_serve(&ch, 1, timeout_ms);
}
