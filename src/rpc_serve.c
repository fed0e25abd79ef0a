/* SPDX-License-Identifier: MIT */
/*
 * Serving: the loops that run a channel's handlers, and the reply a handler fills. This file
 * owns the service thread (the default: one per channel, started by smem_rpc_open()) and the
 * dispatch API (smem_rpc_dispatch(), and smem_rpc_serve() for many channels in one loop and
 * one sleep). Both wait in the wait engine's loop (an RPC waiter, rpc_int.h): they spin for
 * spin_ns, making progress (rpc_progress.c), then sleep on everything that could give them
 * work.
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

/*
 * The service thread's wait (an RPC waiter, rpc_int.h): it ends when a request ran, when the
 * channel is stopping, or when the thread must change how it waits (@poller, below), and the
 * thread's loop starts the next one.
 */
struct service_wait {
	struct smem__rpc_waiter rw;	/* first */
	struct smem_rpc *ch;
	uint32_t entries;		/* SMEM__RPC_POLLERS_ENTRIES last seen */
	bool poller;			/* waiting beside a caller of ours: no spin, sev only */
	uint64_t recheck;		/* ... for this long (doubling while the same one waits) */
};

static bool stopping(const struct smem_rpc *ch)
{
	return atomic_load_explicit(&ch->stopping, memory_order_acquire);
}

static int sv_poll(struct smem__waiter *w)
{
	struct service_wait *sw = (struct service_wait *)w;
	struct smem_rpc *ch = sw->ch;
	uint32_t pw;

	if (smem__rpc_progress(ch) > 0 || stopping(ch))
		return 1;
	if (!sw->poller) {
		pw = atomic_load_explicit(&ch->pollers, memory_order_relaxed);
		if (SMEM__RPC_POLLERS_ACTIVE(pw) || SMEM__RPC_POLLERS_ENTRIES(pw) != sw->entries) {
			sw->poller = true;	/* stop spinning: the next wait is a poller's */
			return 1;
		}
	}
	return -EAGAIN;
}

static int sv_fill(struct smem__rpc_waiter *rw, uint64_t *bound)
{
	struct service_wait *sw = (struct service_wait *)rw;
	struct smem_rpc *ch = sw->ch;
	uint32_t v, sv, pw;

	/* Snapshots before the look they guard. */
	v = atomic_load(&ch->ev);
	sv = atomic_load(&ch->sev);
	if (smem__rpc_progress(ch) > 0 || stopping(ch))
		return 1;
	pw = atomic_load_explicit(&ch->pollers, memory_order_relaxed);
	if (SMEM__RPC_POLLERS_ACTIVE(pw) || SMEM__RPC_POLLERS_ENTRIES(pw) != sw->entries) {
		/*
		 * Another thread of ours waits on this channel (a caller), or did within the last
		 * SMEM__RPC_POLLER_RECHECK_NS: it pumps the ring, answers what needs no handler,
		 * and bumps sev for requests only this thread may run. Polling or watching the ring
		 * beside it would cost the peer a futex wake per message and us a wakeup (and,
		 * pinned to its core, time the caller needs): sleep on sev, without spinning, for
		 * SMEM__RPC_POLLER_RECHECK_NS at most, since pollers leave without waking us.
		 * Between two of its calls (none active), also watch the ring as usual, in case it
		 * was the last.
		 */
		/*
		 * A caller that is still inside the same wait (a long call) is not about to
		 * leave: recheck less and less often, and have the last poller to leave wake us
		 * (sev_on_leave), so that a blocked caller does not cost a wakeup a millisecond.
		 */
		if (sw->poller && SMEM__RPC_POLLERS_ACTIVE(pw) &&
		    SMEM__RPC_POLLERS_ENTRIES(pw) == sw->entries) {
			sw->recheck = smem__rpc_min(sw->recheck * 2,
						    SMEM__RPC_POLLER_RECHECK_MAX_NS);
			atomic_store(&ch->sev_on_leave, true);	/* seq_cst: see poll_leave() */
			if (!SMEM__RPC_POLLERS_ACTIVE(atomic_load(&ch->pollers)))
				rw->ws.ready = true;	/* it left meanwhile: look again */
		} else {
			sw->recheck = SMEM__RPC_POLLER_RECHECK_NS;
			atomic_store_explicit(&ch->sev_on_leave, false, memory_order_relaxed);
		}
		sw->entries = SMEM__RPC_POLLERS_ENTRIES(pw);
		sw->poller = true;
		smem__rpc_ws_sev(&rw->ws, ch, sv);
		if (!SMEM__RPC_POLLERS_ACTIVE(pw))
			(void)smem__rpc_ws_channel(&rw->ws, ch, v);
		else
			smem__rpc_ws_peer(&rw->ws, ch);
		smem__rpc_ws_word(&rw->ws, ch, &ch->ctl->event, atomic_load(&ch->ctl->event));
		if (smem__rpc_may_run_queue(ch))
			rw->ws.ready = true;
		*bound = sw->recheck;
		return -EAGAIN;
	}
	atomic_store_explicit(&ch->sev_on_leave, false, memory_order_relaxed);
	if (sw->poller) {
		sw->poller = false;
		return 1;	/* the callers left: wait again, spinning first */
	}
	*bound = smem__rpc_ws_channel(&rw->ws, ch, v);
	/* A master whose slave left waits for a new slave: watch the control region. */
	smem__rpc_ws_word(&rw->ws, ch, &ch->ctl->event, atomic_load(&ch->ctl->event));
	return -EAGAIN;
}

void *smem__rpc_service_main(void *arg)
{
	struct smem_rpc *ch = arg;
	struct service_wait sw;

	smem__rpc_tl_service = ch;	/* handlers (and nested calls) on this thread may serve ch */
	sw.ch = ch;
	sw.entries = 0;
	sw.poller = false;
	sw.recheck = SMEM__RPC_POLLER_RECHECK_NS;
	while (!stopping(ch)) {
		if (sv_poll(&sw.rw.w) != -EAGAIN)
			continue;
		smem__rpc_waiter_init(&sw.rw, sv_poll, sv_fill, ch, sw.poller ? 0 : ch->spin_ns,
				      UINT64_MAX);
		(void)smem__wait_for(&sw.rw.w);
	}
	return NULL;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

/* smem_rpc_serve()'s wait over its channels (an RPC waiter, rpc_int.h). */
struct serve_wait {
	struct smem__rpc_waiter rw;	/* first */
	struct smem_rpc *const *chs;
	unsigned n;
	uint32_t evs[SMEM__RPC_MAX_WAIT_CHANNELS];
	bool snap;			/* take evs[] before each channel's look */
};

/* One look at every channel: requests run (> 0), every channel failed, or -EAGAIN. */
static int serve_look(struct serve_wait *sv)
{
	unsigned k, live = 0;
	int handled = 0;

	for (k = 0; k < sv->n; k++) {
		struct smem_rpc *ch = sv->chs[k];

		if (sv->snap)
			sv->evs[k] = atomic_load(&ch->ev);
		handled += smem__rpc_progress(ch);
		if (atomic_load_explicit(&ch->state, memory_order_acquire) == 0 ||
		    ch->role == SMEM_RPC_MASTER)
			live++;
	}
	if (handled)
		return handled;
	if (!live)
		return atomic_load(&sv->chs[0]->state);	/* every channel failed */
	return -EAGAIN;
}

static int serve_poll(struct smem__waiter *w)
{
	struct serve_wait *sv = (struct serve_wait *)w;

	sv->snap = false;
	return serve_look(sv);
}

static int serve_fill(struct smem__rpc_waiter *rw, uint64_t *bound)
{
	struct serve_wait *sv = (struct serve_wait *)rw;
	unsigned k;
	int ret;

	sv->snap = true;
	ret = serve_look(sv);
	if (ret != -EAGAIN)
		return ret;
	for (k = 0; k < sv->n; k++) {
		struct smem_rpc *ch = sv->chs[k];

		*bound = smem__rpc_min(*bound, smem__rpc_ws_channel(&rw->ws, ch, sv->evs[k]));
		if (ch->role == SMEM_RPC_MASTER)
			smem__rpc_ws_word(&rw->ws, ch, &ch->ctl->event,
					  atomic_load(&ch->ctl->event));
	}
	return -EAGAIN;
}

int smem_rpc_serve(struct smem_rpc *const *chs, unsigned n, int timeout_ms)
{
	struct serve_wait sv;
	unsigned k;
	int ret;

	if (!chs || n == 0 || n > SMEM__RPC_MAX_WAIT_CHANNELS)
		return -EINVAL;
	for (k = 0; k < n; k++)
		if (!chs[k] || chs[k]->service != SMEM_RPC_SERVICE_DISPATCH)
			return -EINVAL;
	sv.chs = chs;
	sv.n = n;
	sv.snap = false;
	ret = serve_look(&sv);
	if (ret != -EAGAIN || timeout_ms == 0)
		return ret == -EAGAIN ? 0 : ret;
	smem__rpc_waiter_init(&sv.rw, serve_poll, serve_fill, chs[0], chs[0]->spin_ns,
			      smem__deadline(timeout_ms));
	ret = smem__wait_for(&sv.rw.w);
	return ret == -ETIMEDOUT ? 0 : ret;
}

int smem_rpc_dispatch(struct smem_rpc *ch, int timeout_ms)
{
	return smem_rpc_serve(&ch, 1, timeout_ms);
}
