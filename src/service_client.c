/* SPDX-License-Identifier: MIT */
/*
 * A service's client: connect (claim a slot, make the channel's rings, publish), call, and
 * disconnect. The channel is an ordinary RPC channel (rpc_int.h) whose control block is the
 * slot's: the client is its master, the server its slave, in session = the slot's generation.
 *
 * Connecting writes the whole channel before the server may look: the client's own record as
 * master, a copy of the server's record (from the service header) as slave, so that the RPC
 * layers watch the server's liveness from the first call (a server that dies before it
 * attaches the slot still fails the client's calls with -ECONNRESET); then the session with
 * release, then the slot's state READY with release, then the doorbell. The client's channel
 * rings the doorbell after every packet it commits (smem__rpc_bell()).
 *
 * A client killed at any point leaves either a slot whose owner is dead (the server frees it)
 * or a channel whose peer is dead (the server's channel fails, and it frees the slot). Rings
 * made by a client that died before publishing are dropped by the broker with its holds.
 */
#include <stdlib.h>
#include <string.h>

#include "service_int.h"

struct smem_service_client {
	struct smem_region *reg;
	struct smem__svc_map map;
	struct smem_rpc *ch;
	uint32_t slot;
};

/* Is the server there to serve us? */
static bool server_up(struct smem_service_client *c)
{
	struct smem_svc_hdr *h = c->map.hdr;
	uint32_t id = atomic_load_explicit(&h->server.live_id, memory_order_acquire);

	return !(atomic_load_explicit(&h->flags, memory_order_acquire) & SMEM_SVC_CLOSED) && id &&
	       smem__live_alive(c->reg, id);
}

/* Make the slot's rings and channel (the slot claimed, in generation @gen). */
static int channel_make(struct smem_service_client *c, const char *name, uint32_t gen,
			const struct smem_service_opts *o)
{
	uint32_t node_count = o && o->node_count ? o->node_count : SMEM__RPC_DEFAULT_NODES;
	uint32_t node_size = o && o->node_size ? o->node_size : SMEM__RPC_DEFAULT_NODE_SIZE;
	const struct smem_opts *base = o ? &o->base : NULL;
	struct smem_svc_slot *s = &c->map.slots[c->slot];
	struct smem_rpc_ctl *ctl = &s->ctl;
	char n1[SMEM_NAME_MAX + 1], n2[SMEM_NAME_MAX + 1];
	struct smem_ring *tx = NULL, *rx = NULL;
	const struct smem_rpc_ctl_end *srv = &c->map.hdr->server;
	struct smem_rpc_opts ro;
	int rc;

	smem__svc_ring_name(n1, sizeof(n1), name, c->slot, gen, true);
	smem__svc_ring_name(n2, sizeof(n2), name, c->slot, gen, false);
	rc = smem_ring_create(n1, node_count, node_size, base, &tx);
	if (rc)
		return rc;
	rc = smem_ring_create(n2, node_count, node_size, base, &rx);
	if (rc) {
		smem_ring_close(tx);
		return rc;
	}
	smem__svc_rpc_opts(o, &ro);	/* no handler: -ENOSYS at once */
	memset(ctl, 0, sizeof(*ctl));
	ctl->magic = SMEM_RPC_CTL_MAGIC;
	ctl->version = SMEM_RPC_CTL_VERSION;
	atomic_store_explicit(&ctl->ring_gen, gen, memory_order_relaxed);
	smem__rpc_end_fill(&ctl->end[SMEM_RPC_MASTER], c->reg->live_id,
			   ro.max_message ? ro.max_message : SMEM__RPC_DEFAULT_MAX_MESSAGE, gen);
	/* The server's record, field by field: the RPC layers check it as any peer's. */
	ctl->end[SMEM_RPC_SLAVE].pid = srv->pid;
	ctl->end[SMEM_RPC_SLAVE].pidns_dev = srv->pidns_dev;
	ctl->end[SMEM_RPC_SLAVE].pidns_ino = srv->pidns_ino;
	ctl->end[SMEM_RPC_SLAVE].max_message = srv->max_message;
	atomic_store_explicit(&ctl->end[SMEM_RPC_SLAVE].session, gen, memory_order_relaxed);
	atomic_store_explicit(&ctl->end[SMEM_RPC_SLAVE].live_id,
			      atomic_load_explicit(&srv->live_id, memory_order_relaxed),
			      memory_order_relaxed);
	/* Release: the records above are complete for whoever acquires the session. */
	atomic_store_explicit(&ctl->session, gen, memory_order_release);
	rc = smem__rpc_attach(c->reg, ctl, SMEM_RPC_MASTER, gen, tx, rx, &ro, &c->ch);
	if (rc)
		return rc;	/* the rings went with it */
	c->ch->svc_slot = (int32_t)c->slot;
	c->ch->bell = &c->map.hdr->bell;
	c->ch->bell_sleepers = &c->map.hdr->bell_sleepers;
	return 0;
}

int smem_service_connect(const char *name, const struct smem_service_opts *o,
			 struct smem_service_client **ret)
{
	const struct smem_opts *base = o ? &o->base : NULL;
	struct smem_service_client *c;
	uint32_t gen = 0;
	int rc;

	rc = smem__name_check(name);
	if (rc)
		return rc;
	if (!ret || strlen(name) > SMEM_NAME_MAX - SMEM__RPC_NAME_ROOM ||
	    (o && ((o->node_count && o->node_count < 2) ||
		   (o->node_size && (o->node_size < SMEM__RPC_MIN_NODE_SIZE ||
				     o->node_size > SMEM__RPC_MAX_NODE_SIZE)) ||
		   o->reply_timeout_ms < 0 || o->max_message > SMEM_RPC_MAX_MESSAGE ||
		   (o->base.flags & SMEM_RDONLY))))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = smem__region_open(name, SMEM_KIND_SERVICE, base, &c->reg);
	if (rc)
		goto fail;
	rc = smem__svc_map(c->reg->obj, c->reg->obj_size, &c->map);
	if (rc)
		goto fail;
	rc = smem__live_join(c->reg);
	if (rc)
		goto fail;
	if (!server_up(c)) {
		rc = -ECONNREFUSED;
		goto fail;
	}
	rc = smem__svc_claim(&c->map, c->reg->live_id, &gen);
	if (rc < 0)
		goto fail;
	c->slot = (uint32_t)rc;
	if (smem__svc_connect_hook)
		smem__svc_connect_hook(1);
	rc = channel_make(c, name, gen, o);
	if (rc) {
		smem__svc_release(&c->map, c->slot);
		goto fail;
	}
	if (smem__svc_connect_hook)
		smem__svc_connect_hook(2);
	/* Release: the channel above is complete for the server that acquires the state. */
	atomic_store_explicit(&c->map.slots[c->slot].state, SMEM_SVC_READY, memory_order_release);
	atomic_fetch_add_explicit(&c->map.hdr->joins, 1, memory_order_release);
	smem__rpc_bell(c->ch);
	*ret = c;
	return 0;
fail:
	smem_region_close(c->reg);
	free(c);
	return rc;
}

int smem_service_call(struct smem_service_client *c, const void *req, size_t len, void **resp,
		      size_t *resp_len, int timeout_ms)
{
	int rc;

	if (!c)
		return -EINVAL;
	rc = smem_rpc_call(c->ch, req, len, resp, resp_len, timeout_ms);
	/* A server that refused our slot closed its end of the channel: say why. seq_cst:
	 * the server stores REFUSED before it marks its end closed. */
	if ((rc == -ESHUTDOWN || rc == -ECONNRESET) &&
	    atomic_load(&c->map.slots[c->slot].state) == SMEM_SVC_REFUSED) {
		uint32_t e = c->map.slots[c->slot].error;	/* shared: only a known range */

		rc = e > 0 && e < 4096 ? -(int)e : -EPROTO;
	}
	return rc;
}

struct smem_rpc *smem_service_channel(struct smem_service_client *c)
{
	return c ? c->ch : NULL;
}

void smem_service_disconnect(struct smem_service_client *c)
{
	struct smem_svc_hdr *h;

	if (!c)
		return;
	h = c->map.hdr;
	/* Marks our end closed (before our liveness slot goes): the server frees the slot. */
	smem_rpc_close(c->ch);
	smem__rpc_bell_ring(&h->bell, &h->bell_sleepers);	/* wake the server to look */
	smem_region_close(c->reg);
	free(c);
}
