/* SPDX-License-Identifier: MIT */
/*
 * The service's slot table in shared memory, which every client can write: claiming a slot,
 * giving it back, and the server's check of a slot before it trusts it.
 *
 * A slot's own word is the owner's live id (live.c) in its high half and a generation in its
 * low half. A client claims a free slot (live id 0) with one CAS that also bumps the
 * generation, so a slot freed and claimed again is never mistaken for its previous use, and
 * the rings of each use have names of their own. The owner's liveness is the kernel's (an OFD
 * lock), so a client killed at any point leaves a slot whose owner the server sees dead.
 *
 * Nothing read from the table is used as an index or a size: indices come from the private
 * slot count taken at open (checked against the region's real size), the generation only
 * makes names, live ids are checked by live.c (a malformed id is a dead one), and the channel's
 * control block is checked before the server attaches it and treated as hostile afterwards by
 * the RPC layers (rpc_peer.c).
 */
#include <stdio.h>
#include <string.h>

#include "service_int.h"

void (*smem__svc_connect_hook)(int stage);

void smem__svc_rpc_opts(const struct smem_service_opts *o, struct smem_rpc_opts *r)
{
	memset(r, 0, sizeof(*r));
	if (o) {
		r->base = o->base;
		r->max_message = o->max_message;
		r->spin_ns = o->spin_ns;
		r->reply_timeout_ms = o->reply_timeout_ms;
	}
	/* No library thread at either end: the server serves in its loop, clients in calls. */
	r->service = SMEM_RPC_SERVICE_DISPATCH;
}

size_t smem__svc_size(uint32_t nslots)
{
	return sizeof(struct smem_svc_hdr) + (size_t)nslots * sizeof(struct smem_svc_slot);
}

int smem__svc_map(void *obj, size_t obj_size, struct smem__svc_map *m)
{
	struct smem_svc_hdr *h = obj;
	uint32_t n;

	if (obj_size < sizeof(*h) || h->magic != SMEM_SVC_MAGIC || h->version != SMEM_SVC_VERSION)
		return -EPROTO;
	n = h->nslots;	/* read once: this copy is the one every index is checked against */
	if (n == 0 || n > SMEM_SERVICE_MAX_CLIENTS || smem__svc_size(n) > obj_size)
		return -EPROTO;
	m->hdr = h;
	m->slots = (struct smem_svc_slot *)(h + 1);
	m->nslots = n;
	return 0;
}

void smem__svc_ring_name(char *buf, size_t len, const char *name, uint32_t slot, uint32_t gen,
			 bool m2s)
{
	snprintf(buf, len, "%s.%u.%u.%s", name, slot, gen, m2s ? "m2s" : "s2m");
}

int smem__svc_claim(struct smem__svc_map *m, uint32_t live_id, uint32_t *gen)
{
	uint32_t i;

	for (i = 0; i < m->nslots; i++) {
		struct smem_svc_slot *s = &m->slots[i];
		uint64_t own = atomic_load_explicit(&s->own, memory_order_acquire), mine;
		uint32_t g;

		if (smem__svc_own_id(own) != 0)
			continue;
		g = smem__svc_own_gen(own) + 1;
		if (g == 0)
			g = 1;	/* generation 0 never names rings: it is a fresh table's */
		mine = (uint64_t)live_id << 32 | g;
		/* Acquire: pairs with the release of smem__svc_release(), the previous user's. */
		if (!atomic_compare_exchange_strong_explicit(&s->own, &own, mine,
							     memory_order_acq_rel,
							     memory_order_relaxed))
			continue;
		atomic_store_explicit(&s->state, SMEM_SVC_FILLING, memory_order_relaxed);
		atomic_store_explicit(&s->calls, 0, memory_order_relaxed);
		/* The server sweeps the table when joins moved: it will free the slot if we die
		 * before publishing it. The bell wakes a server (or its poller) to look. */
		atomic_fetch_add_explicit(&m->hdr->joins, 1, memory_order_release);
		smem__rpc_bell_ring(&m->hdr->bell, &m->hdr->bell_sleepers);
		*gen = g;
		return (int)i;
	}
	return -EUSERS;
}

void smem__svc_release(struct smem__svc_map *m, uint32_t i)
{
	struct smem_svc_slot *s;
	uint64_t own;

	if (i >= m->nslots)
		return;
	s = &m->slots[i];
	own = atomic_load_explicit(&s->own, memory_order_relaxed);
	atomic_store_explicit(&s->state, SMEM_SVC_FREE, memory_order_relaxed);
	/* Release: the state above is seen by whoever claims the slot next. The generation
	 * stays: the next claimant bumps it. */
	atomic_store_explicit(&s->own, (uint64_t)smem__svc_own_gen(own), memory_order_release);
}

int smem__svc_slot_look(const struct smem__svc_map *m, const struct smem_region *reg,
			uint32_t i, uint64_t *own)
{
	const struct smem_svc_slot *s = &m->slots[i];
	uint32_t owner, state;

	/* Acquire: pairs with the claim's CAS; then the state's release (READY). */
	*own = atomic_load_explicit(&s->own, memory_order_acquire);
	owner = smem__svc_own_id(*own);
	if (!owner)
		return SMEM__SVC_SKIP;
	state = atomic_load_explicit(&s->state, memory_order_acquire);
	if (!smem__live_alive(reg, owner) ||
	    (state == SMEM_SVC_REFUSED &&
	     (atomic_load_explicit(&s->ctl.end[SMEM_RPC_MASTER].flags, memory_order_acquire) &
	      SMEM_RPC_END_CLOSED)))
		return SMEM__SVC_FREE_IT;
	return state == SMEM_SVC_READY ? SMEM__SVC_ATTACH_IT : SMEM__SVC_WAIT;
}

int smem__svc_slot_check(const struct smem_svc_slot *s, uint32_t owner, uint32_t gen,
			 uint32_t server)
{
	const struct smem_rpc_ctl *ctl = &s->ctl;
	const struct smem_rpc_ctl_end *m = &ctl->end[SMEM_RPC_MASTER];
	const struct smem_rpc_ctl_end *sl = &ctl->end[SMEM_RPC_SLAVE];

	if (ctl->magic != SMEM_RPC_CTL_MAGIC || ctl->version != SMEM_RPC_CTL_VERSION)
		return -EPROTO;
	/* Acquire: pairs with the client's release of its session (its records are complete). */
	if (atomic_load_explicit(&ctl->session, memory_order_acquire) != gen ||
	    atomic_load_explicit(&ctl->ring_gen, memory_order_relaxed) != gen)
		return -EPROTO;
	if (atomic_load_explicit(&m->live_id, memory_order_relaxed) != owner ||
	    atomic_load_explicit(&m->session, memory_order_relaxed) != gen ||
	    atomic_load_explicit(&sl->live_id, memory_order_relaxed) != server ||
	    atomic_load_explicit(&sl->session, memory_order_relaxed) != gen)
		return -EPROTO;
	return 0;
}
