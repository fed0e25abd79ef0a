/* SPDX-License-Identifier: MIT */
/*
 * A service's server: create, attach the clients that connect, serve them all from one loop
 * and one sleep, free what departed clients leave, close.
 *
 * Discovery. A client publishes its slot (state READY) and bumps hdr.joins and the doorbell;
 * the server sweeps the table when joins moved (and every 50 ms while some slot is claimed
 * but not attached, to free the slots of clients that died before publishing). A READY slot
 * is checked (service_slot.c), its rings are opened, and its channel is built on the slot's
 * control block (smem__rpc_attach()) as the slave. A slot that fails is REFUSED: its client
 * gets the error (-EPROTO for a corrupt slot) and the slot stays its own until it leaves.
 *
 * Serving. Each round visits the attached channels round-robin from a rotating start and
 * makes progress on each (rpc_progress.c: peer, pump, handlers), running at most
 * SMEM_SERVICE_FAIR_SHARE requests of each: a client that floods waits for its next round
 * while the others are served. A channel that failed (its client died or disconnected) is
 * closed and its slot freed.
 *
 * Sleeping. The doorbell protocol is the event-word protocol of rpc_wait.c over a word in
 * shared memory: the server snapshots hdr.bell before a round's looks, announces itself in
 * bell_sleepers, and sleeps on (bell, snapshot); a client commits a packet, then bumps bell and
 * wakes the server only if it announced itself. So a busy server costs its clients no system
 * call, and an idle one sleeps on one word, plus the pidfds of up to 16 clients (whose
 * death then wakes it; the others' liveness is polled every SMEM__RPC_LIVE_POLL_NS while it
 * sleeps). The sleep is the wait engine's loop (an RPC waiter, rpc_int.h): spin, then sleep.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service_int.h"

static int hdr_init(void *obj, size_t size, void *arg)
{
	struct smem_svc_hdr *h = obj;
	uint32_t n = *(const uint32_t *)arg;

	if (size < smem__svc_size(n))
		return -EINVAL;
	h->magic = SMEM_SVC_MAGIC;
	h->version = SMEM_SVC_VERSION;
	h->nslots = n;
	return 0;
}

static void svc_free(struct smem_service *svc)
{
	smem_region_close(svc->reg);
	free(svc->chs);
	free(svc->owns);
	free(svc);
}

int smem_service_create(const char *name, const struct smem_service_opts *o,
			struct smem_service **ret)
{
	const struct smem_opts *base = o ? &o->base : NULL;
	struct smem_service *svc;
	uint32_t n = o && o->max_clients ? o->max_clients : SMEM_SVC_DEFAULT_CLIENTS;
	int rc;

	rc = smem__name_check(name);
	if (rc)
		return rc;
	if (!ret || strlen(name) > SMEM_NAME_MAX - SMEM__RPC_NAME_ROOM || n > SMEM_SERVICE_MAX_CLIENTS ||
	    (o && (o->reply_timeout_ms < 0 || o->max_message > SMEM_RPC_MAX_MESSAGE ||
		   (o->base.flags & SMEM_RDONLY))))
		return -EINVAL;
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	svc->chs = calloc(n, sizeof(*svc->chs));
	svc->owns = calloc(n, sizeof(*svc->owns));
	if (!svc->chs || !svc->owns) {
		rc = -ENOMEM;
		goto fail;
	}
	snprintf(svc->name, sizeof(svc->name), "%s", name);
	smem__svc_rpc_opts(o, &svc->ro);
	svc->ro.handler = o ? o->handler : NULL;
	svc->ro.handler_arg = o ? o->handler_arg : NULL;
	svc->spin_ns = !o || !o->spin_ns ? SMEM__RPC_DEFAULT_SPIN_NS :
		       o->spin_ns == SMEM_RPC_NO_SPIN ? 0 : o->spin_ns;
	rc = smem__region_create(name, SMEM_KIND_SERVICE, smem__svc_size(n), hdr_init, &n, base,
				 &svc->reg);
	if (rc)
		goto fail;
	rc = smem__svc_map(svc->reg->obj, svc->reg->obj_size, &svc->map);
	if (rc == 0)
		rc = smem__live_join(svc->reg);
	if (rc)
		goto fail;
	smem__rpc_end_fill(&svc->map.hdr->server, 0,
			   o && o->max_message ? o->max_message : SMEM__RPC_DEFAULT_MAX_MESSAGE, 0);
	/* Release: the record above is complete for a client that acquires the live id. */
	atomic_store_explicit(&svc->map.hdr->server.live_id, svc->reg->live_id,
			      memory_order_release);
	*ret = svc;
	return 0;
fail:
	svc_free(svc);
	return rc;
}

/* ---- attaching and freeing clients ------------------------------------------------------- */

/* The server will not serve slot @i (its owner is alive): tell the client @err. */
static void refuse(struct smem_service *svc, uint32_t i, int err)
{
	struct smem_svc_slot *s = &svc->map.slots[i];
	struct smem_rpc_ctl_end *me = &s->ctl.end[SMEM_RPC_SLAVE];

	s->error = (uint32_t)-err;
	/* seq_cst: before our end is marked closed (smem_service_call() reads it after). */
	atomic_store(&s->state, SMEM_SVC_REFUSED);
	atomic_fetch_or_explicit(&me->flags, SMEM_RPC_END_CLOSED, memory_order_release);
}

static void attach(struct smem_service *svc, uint32_t i, uint64_t own)
{
	struct smem_svc_slot *s = &svc->map.slots[i];
	uint32_t gen = smem__svc_own_gen(own), owner = smem__svc_own_id(own);
	char n1[SMEM_NAME_MAX + 1], n2[SMEM_NAME_MAX + 1];
	struct smem_ring *tx = NULL, *rx = NULL;
	struct smem_rpc *ch;
	int rc;

	rc = smem__svc_slot_check(s, owner, gen, svc->reg->live_id);
	if (rc == 0) {
		smem__svc_ring_name(n1, sizeof(n1), svc->name, i, gen, true);
		smem__svc_ring_name(n2, sizeof(n2), svc->name, i, gen, false);
		rc = smem_ring_open(n1, &svc->ro.base, &rx);
		if (rc == 0)
			rc = smem_ring_open(n2, &svc->ro.base, &tx);
		if (rc) {
			smem_ring_close(rx);
			/* Rings missing while their maker lives (or of another kind): corrupt. */
			rc = rc == -ENOENT || rc == -EMEDIUMTYPE ? -EPROTO : rc;
		}
	}
	if (rc == 0)
		rc = smem__rpc_attach(svc->reg, &s->ctl, SMEM_RPC_SLAVE, gen, tx, rx, &svc->ro,
				      &ch);
	if (rc) {
		if (smem__live_alive(svc->reg, owner))
			refuse(svc, i, rc);
		else
			smem__svc_release(&svc->map, i);
		return;
	}
	ch->svc_slot = (int32_t)i;
	svc->chs[i] = ch;
	svc->owns[i] = own;
	svc->nclients++;
	atomic_store_explicit(&s->state, SMEM_SVC_ATTACHED, memory_order_relaxed);
}

/* Close slot @i's channel (it failed): free the slot, or refuse it if its owner is still in. */
static void drop(struct smem_service *svc, uint32_t i)
{
	struct smem_svc_slot *s = &svc->map.slots[i];
	uint64_t own = atomic_load_explicit(&s->own, memory_order_acquire);
	uint32_t owner = smem__svc_own_id(own);
	bool left = own != svc->owns[i] || !smem__live_alive(svc->reg, owner) ||
		    (atomic_load_explicit(&s->ctl.end[SMEM_RPC_MASTER].flags,
					  memory_order_acquire) & SMEM_RPC_END_CLOSED);

	/* A live client whose channel failed had its control block scribbled on. */
	if (!left)
		refuse(svc, i, -EPROTO);
	smem_rpc_close(svc->chs[i]);
	svc->chs[i] = NULL;
	svc->nclients--;
	if (left)
		smem__svc_release(&svc->map, i);
}

/* Attach published slots; free the slots of owners that died before being attached. */
static void sweep(struct smem_service *svc)
{
	uint32_t i, unattached = 0;

	for (i = 0; i < svc->map.nslots; i++) {
		uint64_t own;

		if (svc->chs[i])
			continue;
		switch (smem__svc_slot_look(&svc->map, svc->reg, i, &own)) {
		case SMEM__SVC_SKIP:
			continue;
		case SMEM__SVC_FREE_IT:
			smem__svc_release(&svc->map, i);
			continue;
		case SMEM__SVC_ATTACH_IT:
			attach(svc, i, own);
			break;
		default:
			break;
		}
		if (!svc->chs[i])
			unattached++;
	}
	svc->unattached = unattached;
}

/* ---- serving ------------------------------------------------------------------------------ */

/* One round: each attached channel, round-robin, up to its fair share. Requests run. */
static int round_robin(struct smem_service *svc)
{
	uint32_t k, i, n = svc->map.nslots;
	int handled = 0, r;

	for (k = 0; k < n && svc->nclients; k++) {
		struct smem_rpc *ch;

		i = svc->rr + k < n ? svc->rr + k : svc->rr + k - n;
		ch = svc->chs[i];
		if (!ch)
			continue;
		r = smem__rpc_progress_max(ch, SMEM_SERVICE_FAIR_SHARE);
		if (r > 0) {
			handled += r;
			atomic_fetch_add_explicit(&svc->map.slots[i].calls, (uint64_t)r,
						  memory_order_relaxed);
		}
		if (atomic_load_explicit(&ch->state, memory_order_acquire))
			drop(svc, i);
	}
	svc->rr = svc->rr + 1 < n ? svc->rr + 1 : 0;
	return handled;
}

/*
 * smem_service_serve()'s wait (an RPC waiter, rpc_int.h, as smem_rpc_serve()'s): its poll is
 * one serve round, its fill one more round after a fresh snapshot of the bell, then the sleep
 * set: the bell, the pidfds of up to SMEM__SVC_PIDFDS clients, a bound for the liveness of
 * the others (SMEM__RPC_LIVE_POLL_NS) and for the sweep of half-connected slots.
 */
struct svc_wait {
	struct smem__rpc_waiter rw;	/* first */
	struct smem_service *svc;
	uint32_t bell;			/* the doorbell as of the last round's start */
};

/* One round: a sweep if one is due, then every client's channel. Requests run, or -EAGAIN. */
static int serve_round(struct svc_wait *sw)
{
	struct smem_service *svc = sw->svc;
	uint32_t joins;
	int handled;

	/* seq_cst: the snapshot comes before every look of the round (see the top). */
	sw->bell = atomic_load(&svc->map.hdr->bell);
	joins = atomic_load_explicit(&svc->map.hdr->joins, memory_order_acquire);
	if (joins != svc->seen_joins ||
	    (svc->unattached && smem__rpc_coarse_ns() >= svc->next_sweep)) {
		svc->seen_joins = joins;
		svc->next_sweep = smem__rpc_coarse_ns() + SMEM__SVC_SWEEP_NS;
		sweep(svc);
	}
	handled = round_robin(svc);
	return handled ? handled : -EAGAIN;
}

static int serve_poll(struct smem__waiter *w)
{
	return serve_round((struct svc_wait *)w);
}

static int serve_fill(struct smem__rpc_waiter *rw, uint64_t *bound)
{
	struct svc_wait *sw = (struct svc_wait *)rw;
	struct smem_service *svc = sw->svc;
	struct smem__rpc_ws *ws = &rw->ws;
	uint32_t i, npid = 0;
	int ret;

	ret = serve_round(sw);
	if (ret != -EAGAIN)
		return ret;
	*bound = smem__rpc_min(*bound, svc->unattached ? SMEM__SVC_SWEEP_NS :
							 SMEM__RPC_MAX_SLEEP_NS);
	smem__rpc_ws_event(ws, &svc->map.hdr->bell, &svc->map.hdr->bell_sleepers, sw->bell);
	for (i = 0; i < svc->map.nslots; i++) {
		struct smem_rpc *ch = svc->chs[i];

		if (!ch)
			continue;
		if (smem__rpc_may_run_queue(ch))
			ws->ready = true;	/* past its fair share: no sleep */
		if (npid < SMEM__SVC_PIDFDS) {
			npid++;
			smem__rpc_ws_peer(ws, ch);
			*bound = smem__rpc_min(*bound, smem__rpc_peer_poll_bound(ch));
		} else {
			*bound = smem__rpc_min(*bound, SMEM__RPC_LIVE_POLL_NS);
		}
	}
	return -EAGAIN;
}

int smem_service_serve(struct smem_service *svc, int timeout_ms)
{
	struct svc_wait sw;
	int ret;

	if (!svc)
		return -EINVAL;
	sw.svc = svc;
	ret = serve_round(&sw);
	if (ret != -EAGAIN || timeout_ms == 0)
		return ret == -EAGAIN ? 0 : ret;
	smem__rpc_waiter_init(&sw.rw, serve_poll, serve_fill, NULL, svc->spin_ns,
			      smem__deadline(timeout_ms));
	ret = smem__wait_for(&sw.rw.w);
	return ret == -ETIMEDOUT ? 0 : ret;
}

int smem_service_clients(const struct smem_service *svc)
{
	return svc ? (int)svc->nclients : -EINVAL;
}

int smem_service_request_client(const struct smem_rpc_request *req)
{
	if (!req || !req->channel || req->channel->svc_slot < 0)
		return -EINVAL;
	return req->channel->svc_slot;
}

void smem_service_close(struct smem_service *svc)
{
	uint32_t i, me;

	if (!svc)
		return;
	me = svc->reg->live_id;
	atomic_fetch_or_explicit(&svc->map.hdr->flags, SMEM_SVC_CLOSED, memory_order_release);
	for (i = 0; i < svc->map.nslots; i++) {
		struct smem_rpc_ctl_end *e = &svc->map.slots[i].ctl.end[SMEM_RPC_SLAVE];

		if (svc->chs[i]) {
			smem_rpc_close(svc->chs[i]);	/* marks our end closed */
			continue;
		}
		/* Clients not attached yet hold a copy of our record: they see us close too. */
		if (atomic_load_explicit(&e->live_id, memory_order_relaxed) == me)
			atomic_fetch_or_explicit(&e->flags, SMEM_RPC_END_CLOSED,
						 memory_order_release);
	}
	svc_free(svc);
}
