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

struct smem_rpc_poll {
	struct smem__waitfd *wfd;	/* first: smem__poller_alloc() */
	struct smem_rpc *ch;
	bool armed;			/* ws holds announcements to withdraw */
	uint32_t snap;			/* the event word when we last armed (or said ready) */
	struct smem__rpc_ws ws;
};

int smem_rpc_poll_open(struct smem_rpc *ch, struct smem_rpc_poll **ret)
{
	struct smem_rpc_poll *p;
	void *mem;
	int err;

	if (!ch || !ret)
		return -EINVAL;
	err = smem__poller_alloc(sizeof(*p), &mem);
	if (err)
		return err;
	p = mem;
	p->ch = ch;
	/* The first arm says "ready": the caller has not looked since we exist. */
	p->snap = atomic_load(&ch->ev) - 1;
	*ret = p;
	return 0;
}

int smem_rpc_poll_fd(const struct smem_rpc_poll *p)
{
	return p ? smem__waitfd_fd(p->wfd) : -EINVAL;
}

bool smem_rpc_poll_threaded(const struct smem_rpc_poll *p)
{
	return p && smem__waitfd_threaded(p->wfd);
}

void smem_rpc_poll_disarm(struct smem_rpc_poll *p)
{
	uint32_t fired;
	unsigned i;

	if (!p)
		return;
	smem__waitfd_disarm(p->wfd);
	if (!p->armed)
		return;
	fired = smem__waitfd_fired(p->wfd);
	smem__rpc_ws_done(&p->ws, -1);
	p->armed = false;
	/* The peer's pidfd fired: look at its liveness now (a death fails the channel). */
	for (i = 0; i < p->ws.npid; i++)
		if (p->ws.pidbase[i] < 32 && (fired >> p->ws.pidbase[i] & 1))
			smem__rpc_refresh(p->ws.pidch[i], true);
}

int smem_rpc_poll_arm(struct smem_rpc_poll *p)
{
	struct smem_rpc *ch;
	uint64_t bound;
	uint32_t v;
	int rc;

	if (!p)
		return -EINVAL;
	ch = p->ch;
	smem_rpc_poll_disarm(p);
	/* seq_cst: the snapshot comes before every look at the conditions below. */
	v = atomic_load(&ch->ev);
	if (v != p->snap) {
		p->snap = v;
		return 1;
	}
	smem__rpc_ws_init(&p->ws);
	bound = smem__rpc_ws_channel(&p->ws, ch, v);
	/* A master whose slave left waits for a new slave: watch the control region. */
	if (ch->role == SMEM_RPC_MASTER)
		smem__rpc_ws_word(&p->ws, ch, &ch->ctl->event, atomic_load(&ch->ctl->event));
	p->armed = true;
	if (p->ws.ready || p->ws.set.err || p->ws.set.n > SMEM__WAITFD_MAX) {
		smem_rpc_poll_disarm(p);
		return 1;	/* something holds already: go and look */
	}
	/*
	 * The bound is a liveness poll (a peer without a pidfd) or the ring-recovery net; the
	 * latter matters only for a peer that died holding a node, whose pidfd fires anyway.
	 */
	rc = smem__waitfd_arm(p->wfd, p->ws.it, p->ws.set.n,
			      bound < SMEM__RPC_MAX_SLEEP_NS ? bound : UINT64_MAX);
	if (rc)
		smem_rpc_poll_disarm(p);
	return rc;
}

void smem_rpc_poll_close(struct smem_rpc_poll *p)
{
	if (!p)
		return;
	smem_rpc_poll_disarm(p);
	smem__poller_free(p);
}
