/* SPDX-License-Identifier: MIT */
/*
 * Services (include/smem/service.h): the service region's layout (docs/LAYOUT.md, "Service")
 * and what the service files offer each other. The files, lowest first:
 *
 *   service_slot.c    the slot table in shared memory: claim, check, free (hostile memory)
 *   service_client.c  a client: connect, call, disconnect
 *   service.c         the server: create, attach clients, serve them round-robin, close
 *
 * Region: kind SMEM_KIND_SERVICE, one struct smem_svc_hdr followed by nslots struct
 * smem_svc_slot. A client's channel lives in its slot: the slot's struct smem_rpc_ctl is the
 * channel's control block (the client is its master, the server its slave) and the rings are
 * "<name>.<slot>.<gen>.m2s" (client to server) and ".s2m", created by the client.
 */
#ifndef SMEM_SERVICE_INT_H
#define SMEM_SERVICE_INT_H

#include <smem/service.h>

#include "internal.h"
#include "rpc_int.h"

#define SMEM_SVC_MAGIC		0x315653524d454d53ull	/* "SMEMRSV1" little-endian */
#define SMEM_SVC_VERSION	1u
#define SMEM_SVC_CLOSED		1u	/* hdr.flags: the server closed */

/* Slot states (slot.state). */
enum {
	SMEM_SVC_FREE = 0,	/* nobody: own's live id is 0 */
	SMEM_SVC_FILLING = 1,	/* claimed: the client is making its rings */
	SMEM_SVC_READY = 2,	/* published: for the server to attach */
	SMEM_SVC_ATTACHED = 3,	/* the server serves it */
	SMEM_SVC_REFUSED = 4,	/* the server found it corrupt: the client gets -EPROTO */
};

struct smem_svc_hdr {
	uint64_t magic;			/*   0: SMEM_SVC_MAGIC (before the region is published) */
	uint32_t version;		/*   8: SMEM_SVC_VERSION */
	uint32_t nslots;		/*  12: slots in the table */
	_Atomic uint32_t bell;		/*  16: doorbell: bumped by clients after each packet */
	_Atomic uint32_t bell_sleepers;	/*  20: the server sleeping on bell (0 or 1) */
	_Atomic uint32_t joins;		/*  24: bumped by each client publishing its slot */
	_Atomic uint32_t flags;		/*  28: SMEM_SVC_CLOSED */
	struct smem_rpc_ctl_end server;	/*  32: the server's record (live id, pid, ...) */
	uint8_t reserved[32];		/*  96: zero */
};

struct smem_svc_slot {
	_Atomic uint64_t own;		/*   0: owner's live id << 32 | gen; live id 0: free */
	_Atomic uint32_t state;		/*   8: SMEM_SVC_* */
	uint32_t error;			/*  12: REFUSED: the errno the server refused it with */
	_Atomic uint64_t calls;		/*  16: requests the server ran for this client */
	uint8_t reserved1[40];		/*  24: zero */
	struct smem_rpc_ctl ctl;	/*  64: the channel's control block */
};

_Static_assert(sizeof(struct smem_svc_hdr) == 128, "layout");
_Static_assert(offsetof(struct smem_svc_hdr, bell) == 16, "layout");
_Static_assert(offsetof(struct smem_svc_hdr, bell_sleepers) == 20, "layout");
_Static_assert(offsetof(struct smem_svc_hdr, joins) == 24, "layout");
_Static_assert(offsetof(struct smem_svc_hdr, flags) == 28, "layout");
_Static_assert(offsetof(struct smem_svc_hdr, server) == 32, "layout");
_Static_assert(sizeof(struct smem_svc_slot) == 256, "layout");
_Static_assert(offsetof(struct smem_svc_slot, state) == 8, "layout");
_Static_assert(offsetof(struct smem_svc_slot, calls) == 16, "layout");
_Static_assert(offsetof(struct smem_svc_slot, ctl) == 64, "layout");

#define SMEM_SVC_DEFAULT_CLIENTS	64u

static inline uint32_t smem__svc_own_id(uint64_t own)
{
	return (uint32_t)(own >> 32);
}

static inline uint32_t smem__svc_own_gen(uint64_t own)
{
	return (uint32_t)own;
}

/* ---- service_slot.c: the table --------------------------------------------------------- */

/*
 * A mapped service region, as a process sees it: the private copy of the slot count taken
 * (and checked against the region's size) at open, and the slots. Every index is checked
 * against nslots; nothing read from shared memory is used as an index or a size.
 */
struct smem__svc_map {
	struct smem_svc_hdr *hdr;
	struct smem_svc_slot *slots;
	uint32_t nslots;
};

/* The RPC options of a service's channels (either end; no handler) from the service's. */
void smem__svc_rpc_opts(const struct smem_service_opts *o, struct smem_rpc_opts *r);
/* Object area size for @nslots slots. */
size_t smem__svc_size(uint32_t nslots);
/* Check a region's object area and fill @m. 0 or -EPROTO. */
int smem__svc_map(void *obj, size_t obj_size, struct smem__svc_map *m);
/* Ring name of a slot's channel ("<name>.<slot>.<gen>.m2s" / ".s2m"). */
void smem__svc_ring_name(char *buf, size_t len, const char *name, uint32_t slot, uint32_t gen,
			 bool m2s);
/*
 * Claim a free slot for @live_id (a CAS on its own word, which bumps its generation). The
 * slot index, or -EUSERS when none is free.
 */
int smem__svc_claim(struct smem__svc_map *m, uint32_t live_id, uint32_t *gen);
/* Give slot @i back (its owner left, died, or never finished): free for the next claimant. */
void smem__svc_release(struct smem__svc_map *m, uint32_t i);
/*
 * The server's check of a published slot before it attaches it: its channel's control block
 * names @owner as master and @server as slave in session @gen. 0 or -EPROTO.
 */
int smem__svc_slot_check(const struct smem_svc_slot *s, uint32_t owner, uint32_t gen,
			 uint32_t server);

/* What the server does with a slot it has no channel for (smem__svc_slot_look()). */
enum {
	SMEM__SVC_SKIP = 0,	/* free */
	SMEM__SVC_WAIT = 1,	/* claimed by a live client that has not published it */
	SMEM__SVC_FREE_IT = 2,	/* its owner died, or was refused and left: free it */
	SMEM__SVC_ATTACH_IT = 3,	/* published by a live client: check and attach it */
};
/* Look at slot @i (< m->nslots) of the table in @reg; *own is the owner word read. */
int smem__svc_slot_look(const struct smem__svc_map *m, const struct smem_region *reg,
			uint32_t i, uint64_t *own);

/* ---- service.c: the server ---------------------------------------------------------------- */

#define SMEM__SVC_SWEEP_NS	(50ull * 1000 * 1000)	/* claimed, unattached slots: look again */
#define SMEM__SVC_PIDFDS	16u	/* clients whose pidfd the server's sleep carries */

struct smem_service {
	struct smem_region *reg;
	struct smem__svc_map map;
	char name[SMEM_NAME_MAX + 1];
	struct smem_rpc_opts ro;	/* the server's side of each channel */
	struct smem_rpc **chs;		/* [nslots]: the attached channels */
	uint64_t *owns;			/* [nslots]: the slot's own word when attached */
	uint32_t nclients;
	uint32_t rr;			/* where the next round starts */
	uint32_t seen_joins;
	uint32_t unattached;		/* claimed slots without a channel, at the last sweep */
	uint64_t next_sweep;
	uint32_t spin_ns;
};

/* For tests: called by smem_service_connect() at stage 1 (slot claimed, no rings yet) and
 * stage 2 (rings made, slot not yet published). NULL in production. */
extern void (*smem__svc_connect_hook)(int stage);

#endif
