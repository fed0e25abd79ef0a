/* SPDX-License-Identifier: MIT */
/*
 * Pollable channel waits (smem_rpc_poll_*, rpc.h): an fd that an event loop polls for "this
 * channel may have work": a request to dispatch, a call completed, the peer gone, a new slave.
 * The loop then calls smem_rpc_dispatch() / smem_rpc_wait() / smem_rpc_call_done() with a
 * timeout of 0, and arms again.
 *
 * Arming is the sleep a dispatch loop would take (rpc_serve.c), handed to the wait engine's
 * pollable waits (smem__waitfd, wait_fd.c) instead of a blocking sleep: the same wait set
 * (smem__rpc_ws_channel(): the channel's event word, the receive ring's data word with the
 * ring's announcement, the peer's pidfd; for a master the control region's event word) armed
 * in a private io_uring. Its announcements stay up until the next arm or disarm, so the peer
 * pays a futex wake per commit only while a poller is armed.
 *
 * The event word's snapshot is the one subtle point. The ring parts of the set re-check their
 * condition after announcing, but a call completion or a queued request is only an event-word
 * bump, which the caller's own look (before arming) may have missed if another thread made
 * it. So the poller keeps the value it armed with last: an arm that finds the word moved
 * since then reports "ready" (the caller looks again) and takes the new value; otherwise it
 * arms on the value it has, and any later bump fires the fd.
 */
#include <stdlib.h>

#include "internal.h"
#include "rpc_int.h"

/* ---- the part every poller shares (service_poll.c too) ------------------------------------ */

int smem__rpc_pollset_alloc(size_t size, uint32_t snap, void **ret)
{
	struct smem__rpc_pollset *ps;
	void *mem;
	int err;

	err = smem__poller_alloc(size, &mem);	/* ps->wfd: the shell's first member */
	if (err)
		return err;
	ps = mem;
	ps->armed = false;
	ps->snap = snap;
	*ret = mem;
	return 0;
}

bool smem__rpc_pollset_moved(struct smem__rpc_pollset *ps, uint32_t v)
{
	if (v == ps->snap)
		return false;
	ps->snap = v;
	return true;
}

void smem__rpc_pollset_disarm(struct smem__rpc_pollset *ps)
{
	uint32_t fired;
	unsigned i;

	smem__waitfd_disarm(ps->wfd);
	if (!ps->armed)
		return;
	fired = smem__waitfd_fired(ps->wfd);
	smem__rpc_ws_done(&ps->ws, -1);
	ps->armed = false;
	/* A peer's pidfd fired: look at its liveness now (a death fails the channel). */
	for (i = 0; i < ps->ws.npid; i++)
		if (ps->ws.pidbase[i] < 32 && (fired >> ps->ws.pidbase[i] & 1))
			smem__rpc_refresh(ps->ws.pidch[i], true);
}

int smem__rpc_pollset_arm(struct smem__rpc_pollset *ps, uint64_t bound)
{
	int rc;

	ps->armed = true;
	if (ps->ws.ready || ps->ws.set.err || ps->ws.set.n > SMEM__WAITFD_MAX) {
		smem__rpc_pollset_disarm(ps);
		return 1;	/* something holds already: go and look */
	}
	rc = smem__waitfd_arm(ps->wfd, ps->ws.it, ps->ws.set.n, bound);
	if (rc)
		smem__rpc_pollset_disarm(ps);
	return rc;
}

void smem__rpc_pollset_free(struct smem__rpc_pollset *ps)
{
	if (!ps)
		return;
	smem__rpc_pollset_disarm(ps);
	smem__poller_free(ps);
}

/* ---- a channel's poller ------------------------------------------------------------------- */

struct smem_rpc_poll {
	/* first; snap: the event word when we last armed (or said ready) */
	struct smem__rpc_pollset ps;
	struct smem_rpc *ch;
};

int smem_rpc_poll_open(struct smem_rpc *ch, struct smem_rpc_poll **ret)
{
	struct smem_rpc_poll *p;
	void *mem;
	int err;

	if (!ch || !ret)
		return -EINVAL;
	/* The first arm says "ready": the caller has not looked since we exist. */
	err = smem__rpc_pollset_alloc(sizeof(*p), atomic_load(&ch->ev) - 1, &mem);
	if (err)
		return err;
	p = mem;
	p->ch = ch;
	*ret = p;
	return 0;
}

int smem_rpc_poll_fd(const struct smem_rpc_poll *p)
{
	return p ? smem__waitfd_fd(p->ps.wfd) : -EINVAL;
}

bool smem_rpc_poll_threaded(const struct smem_rpc_poll *p)
{
	return p && smem__waitfd_threaded(p->ps.wfd);
}

void smem_rpc_poll_disarm(struct smem_rpc_poll *p)
{
	if (p)
		smem__rpc_pollset_disarm(&p->ps);
}

int smem_rpc_poll_arm(struct smem_rpc_poll *p)
{
	struct smem_rpc *ch;
	uint64_t bound;

	if (!p)
		return -EINVAL;
	ch = p->ch;
	smem__rpc_pollset_disarm(&p->ps);
	/* seq_cst: the snapshot comes before every look at the conditions below. */
	if (smem__rpc_pollset_moved(&p->ps, atomic_load(&ch->ev)))
		return 1;
	smem__rpc_ws_init(&p->ps.ws);
	bound = smem__rpc_ws_channel(&p->ps.ws, ch, p->ps.snap);
	/* A master whose slave left waits for a new slave: watch the control region. */
	if (ch->role == SMEM_RPC_MASTER)
		smem__rpc_ws_word(&p->ps.ws, ch, &ch->ctl->event, atomic_load(&ch->ctl->event));
	/*
	 * The bound is a liveness poll (a peer without a pidfd) or the ring-recovery net; the
	 * latter matters only for a peer that died holding a node, whose pidfd fires anyway.
	 */
	return smem__rpc_pollset_arm(&p->ps, bound < SMEM__RPC_MAX_SLEEP_NS ? bound : UINT64_MAX);
}

void smem_rpc_poll_close(struct smem_rpc_poll *p)
{
	if (p)
		smem__rpc_pollset_free(&p->ps);
}
