/* SPDX-License-Identifier: MIT */
/*
 * A pollable fd for a service's server (smem_service_poll_*, service.h): readable when the
 * service may have work (a request from any client, a client connecting, leaving or dying),
 * for event loops that call smem_service_serve(svc, 0) and arm again. The design is
 * smem_rpc_poll's (rpc_poll.c) over the server's own sleep: arming hands the wait engine's
 * pollable waits (wait_fd.c) the doorbell word, announced in bell_sleepers so that clients
 * wake it, plus the pidfds of the first clients; a timeout stands in for the rest (sweeps of
 * half-connected slots, liveness of clients without a pidfd in the set).
 *
 * No wakeup is lost: the poller keeps the bell's value from its previous arm. Every packet
 * a client commits is followed by a bump of the bell; a packet bumped before that value was
 * taken was seen by the serve() the caller made since (after the previous arm said "look" or
 * its fd fired). So an arm that finds the bell moved says "look" (1) and takes the new value;
 * otherwise it arms on the value it has, and any later bump fires the fd. Requests left
 * queued past a client's fair share, a sweep that is due, or a failed channel also say
 * "look".
 */
#include <stdlib.h>

#include "service_int.h"

struct smem_service_poll {
	/* first; snap: the bell when we last armed (or said "look") */
	struct smem__rpc_pollset ps;
	struct smem_service *svc;
};

int smem_service_poll_open(struct smem_service *svc, struct smem_service_poll **ret)
{
	struct smem_service_poll *p;
	void *mem;
	int err;

	if (!svc || !ret)
		return -EINVAL;
	/* The first arm says "look": the caller has not served since we exist. */
	err = smem__rpc_pollset_alloc(sizeof(*p), atomic_load(&svc->map.hdr->bell) - 1, &mem);
	if (err)
		return err;
	p = mem;
	p->svc = svc;
	*ret = p;
	return 0;
}

int smem_service_poll_fd(const struct smem_service_poll *p)
{
	return p ? smem__waitfd_fd(p->ps.wfd) : -EINVAL;
}

void smem_service_poll_disarm(struct smem_service_poll *p)
{
	if (p)
		smem__rpc_pollset_disarm(&p->ps);
}

/* Work for serve() now, without waiting? */
static bool work_now(const struct smem_service *svc)
{
	uint32_t i;

	if (atomic_load_explicit(&svc->map.hdr->joins, memory_order_acquire) != svc->seen_joins)
		return true;	/* a sweep is due */
	for (i = 0; i < svc->map.nslots; i++) {
		struct smem_rpc *ch = svc->chs[i];

		if (ch && (atomic_load_explicit(&ch->state, memory_order_acquire) ||
			   smem__rpc_may_run_queue(ch)))
			return true;	/* a channel to drop, or requests past a fair share */
	}
	return false;
}

int smem_service_poll_arm(struct smem_service_poll *p)
{
	struct smem_service *svc;
	struct smem__rpc_ws *ws;
	uint64_t bound = UINT64_MAX;
	uint32_t i, npid = 0;

	if (!p)
		return -EINVAL;
	svc = p->svc;
	ws = &p->ps.ws;
	smem__rpc_pollset_disarm(&p->ps);
	/* seq_cst: the snapshot comes before every look below. */
	if (smem__rpc_pollset_moved(&p->ps, atomic_load(&svc->map.hdr->bell)) || work_now(svc))
		return 1;
	smem__rpc_ws_init(ws);
	smem__rpc_ws_event(ws, &svc->map.hdr->bell, &svc->map.hdr->bell_sleepers, p->ps.snap);
	if (svc->unattached)
		bound = SMEM__SVC_SWEEP_NS;
	for (i = 0; i < svc->map.nslots; i++) {
		struct smem_rpc *ch = svc->chs[i];

		if (!ch)
			continue;
		if (npid + 1 < SMEM__WAITFD_MAX) {
			npid++;
			smem__rpc_ws_peer(ws, ch);
			if (smem__rpc_peer_poll_bound(ch) < SMEM__RPC_MAX_SLEEP_NS)
				bound = smem__rpc_min(bound, SMEM__RPC_LIVE_POLL_NS);
		} else {
			bound = smem__rpc_min(bound, SMEM__RPC_LIVE_POLL_NS);	/* liveness by polling */
		}
	}
	return smem__rpc_pollset_arm(&p->ps, bound);
}

void smem_service_poll_close(struct smem_service_poll *p)
{
	if (p)
		smem__rpc_pollset_free(&p->ps);
}
