/* SPDX-License-Identifier: MIT */
/*
 * The region header: the first page of every smem memfd. Declared once, with fixed-width
 * types, explicit padding and build-time checks of every offset (docs/LAYOUT.md describes it).
 * Each object kind lays out its own area at hdr.data_off; see blob.h, ring.c, rpc.c.
 */
#ifndef SMEM_LAYOUT_H
#define SMEM_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SMEM_MAGIC		0x314745524d454d53ull	/* "SMEMREG1" little-endian */
#define SMEM_LAYOUT_MAJOR	1
#define SMEM_LAYOUT_MINOR	0
#define SMEM_HDR_SIZE		4096u
#define SMEM_CACHELINE		64u

/* Object kinds (hdr.kind). */
enum {
	SMEM_KIND_REGION = 1,
	SMEM_KIND_BUFFER = 2,
	SMEM_KIND_ARRAY = 3,
	SMEM_KIND_RING = 4,
	SMEM_KIND_RPC = 5,
	SMEM_KIND_TOPIC = 6,		/* a topic's control memfd (topic_int.h) */
	SMEM_KIND_TOPIC_SAMPLES = 7,	/* a topic's sample pool, read-only to subscribers */
	SMEM_KIND_SERVICE = 8,		/* a service: its slot table (service_int.h) */
	SMEM_KIND_MAX = 8,
};

/*
 * Participant slots: a process (each handle, in fact) that takes part in a lock or a ring
 * claims a slot, and proves it is alive by holding an OFD write lock on byte SMEM_LIVE_LOCK_BASE
 * + slot of the memfd through a private open file description (see live.c). The generation
 * makes an owner id unique over time: owner id = gen << 8 | slot, never 0.
 */
#define SMEM_LIVE_SLOTS		256u
#define SMEM_LIVE_LOCK_BASE	0u

struct smem_live_slot {
	_Atomic uint32_t gen;		/* bumped by each new claimant; 0 = never claimed */
	uint32_t pid;			/* claimant's pid in its own namespace: a hint for humans */
};

struct smem_region_hdr {
	_Atomic uint64_t magic;		/*   0: SMEM_MAGIC, stored last with release */
	uint16_t layout_major;		/*   8 */
	uint16_t layout_minor;		/*  10 */
	uint32_t kind;			/*  12: SMEM_KIND_* */
	uint64_t total_size;		/*  16: size of the memfd */
	uint64_t data_off;		/*  24: offset of the object area (SMEM_HDR_SIZE) */
	uint64_t data_size;		/*  32: size of the object area */
	uint32_t flags;			/*  40: reserved, 0 */
	_Atomic uint32_t shutdown;	/*  44: futex word, 1 once the creator closed */
	uint64_t create_time_ns;	/*  48: CLOCK_REALTIME at creation */
	uint32_t creator_uid;		/*  56 */
	uint32_t creator_pid;		/*  60: in the creator's namespace; a hint only */
	uint8_t reserved0[960];		/*  64: zero */
	struct smem_live_slot live[SMEM_LIVE_SLOTS];	/* 1024 .. 3072 */
	uint8_t reserved1[1024];	/* 3072: zero */
};

_Static_assert(offsetof(struct smem_region_hdr, magic) == 0, "layout");
_Static_assert(offsetof(struct smem_region_hdr, layout_major) == 8, "layout");
_Static_assert(offsetof(struct smem_region_hdr, layout_minor) == 10, "layout");
_Static_assert(offsetof(struct smem_region_hdr, kind) == 12, "layout");
_Static_assert(offsetof(struct smem_region_hdr, total_size) == 16, "layout");
_Static_assert(offsetof(struct smem_region_hdr, data_off) == 24, "layout");
_Static_assert(offsetof(struct smem_region_hdr, data_size) == 32, "layout");
_Static_assert(offsetof(struct smem_region_hdr, flags) == 40, "layout");
_Static_assert(offsetof(struct smem_region_hdr, shutdown) == 44, "layout");
_Static_assert(offsetof(struct smem_region_hdr, create_time_ns) == 48, "layout");
_Static_assert(offsetof(struct smem_region_hdr, creator_uid) == 56, "layout");
_Static_assert(offsetof(struct smem_region_hdr, creator_pid) == 60, "layout");
_Static_assert(offsetof(struct smem_region_hdr, live) == 1024, "layout");
_Static_assert(sizeof(struct smem_live_slot) == 8, "layout");
_Static_assert(sizeof(struct smem_region_hdr) == SMEM_HDR_SIZE, "layout");

#endif
