/* SPDX-License-Identifier: MIT */
/*
 * The ring's shared-memory layout and its internal contract with other modules (rpc.c) and
 * the tests. Nothing here is exported. The protocol itself is described at the top of ring.c
 * and in docs/LAYOUT.md ("Ring").
 */
#ifndef SMEM_RING_INT_H
#define SMEM_RING_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smem/ring.h>
#include "internal.h"

#define SMEM_RING_MAGIC		0x31474e49524d454dull	/* "MEMRING1" little-endian */
#define SMEM_RING_VERSION	2u		/* 2: the sleepers flag in data_seq/room_seq */
#define SMEM_RING_MAX_NODES	(1u << 24)	/* keeps 32-bit sequence differences unambiguous */
#define SMEM_RING_MAX_NODE_SIZE	0xffffffc0u	/* node_size rounded up to 64 still fits 32 bits */
#define SMEM_RING_HDR_SIZE	512u		/* struct smem_ring_shm */
#define SMEM_RING_NODE_SIZE	64u		/* struct smem_ring_node */

/*
 * A node's control line. state = seq << 32 | owner: seq is the low 32 bits of the ring
 * position the node is waiting for (Vyukov's bounded MPMC sequence), owner the live id of the
 * participant holding it (0: nobody). See ring.c for the state machine.
 */
struct smem_ring_node {
	_Atomic uint64_t state;		/*  0 */
	_Atomic uint32_t len;		/*  8: message length, written before commit */
	uint32_t reserved0;		/* 12: zero */
	uint8_t reserved1[48];		/* 16: zero; keeps one node per cache line */
};
_Static_assert(sizeof(struct smem_ring_node) == SMEM_RING_NODE_SIZE, "layout");
_Static_assert(offsetof(struct smem_ring_node, state) == 0, "layout");
_Static_assert(offsetof(struct smem_ring_node, len) == 8, "layout");

/*
 * Bit 31 of data_seq/room_seq: somebody announced a sleep on the word since the last wake.
 * Waiters set it (and sleep on the value with it set); the first committer/releaser that sees
 * it clears it, bumps the count in bits 0-30 and makes the one FUTEX_WAKE; the next ones see
 * it clear and make no system call (WAITING in ring.c).
 */
#define SMEM__RING_SLEEPERS	0x80000000u

/* The ring's object area starts with this (at region data_off), then nodes, then payloads. */
struct smem_ring_shm {
	/* line 0: geometry, written by the creator before publication, never after */
	uint64_t magic;			/*   0: SMEM_RING_MAGIC */
	uint32_t version;		/*   8: SMEM_RING_VERSION */
	uint32_t node_count;		/*  12 */
	uint32_t node_size;		/*  16: payload bytes per node */
	uint32_t node_stride;		/*  20: node_size rounded up to 64 */
	uint64_t nodes_off;		/*  24: SMEM_RING_HDR_SIZE */
	uint64_t data_off;		/*  32: nodes_off + 64 * node_count */
	uint64_t obj_size;		/*  40: data_off + node_stride * node_count */
	uint8_t reserved0[16];		/*  48 */
	/* line 1: producers */
	_Atomic uint64_t tail;		/*  64: next position to reserve for writing */
	uint8_t reserved1[56];
	/* line 2: consumers */
	_Atomic uint64_t head;		/* 128: next position to reserve for reading */
	uint8_t reserved2[56];
	/* line 3: event count for "data available" (readers sleep here) */
	_Atomic uint32_t data_seq;	/* 192: futex word: a count, and SMEM__RING_SLEEPERS */
	_Atomic uint32_t data_waiters;	/* 196: readers announced to sleep (for observers) */
	_Atomic uint64_t data_wake_ns;	/* 200: CLOCK_MONOTONIC when a wake on data_seq returned */
	uint8_t reserved3[48];
	/* line 4: event count for "room available" (writers sleep here) */
	_Atomic uint32_t room_seq;	/* 256: as data_seq, for writers */
	_Atomic uint32_t room_waiters;	/* 260: writers announced to sleep (for observers) */
	_Atomic uint64_t room_wake_ns;	/* 264: as data_wake_ns, for room_seq */
	uint8_t reserved4[48];
	/* line 5: ring-wide counters, rarely written */
	_Atomic uint64_t drops_recovered;	/* 320: dead writers' claims stepped over */
	_Atomic uint64_t nodes_reclaimed;	/* 328: dead readers' claims released */
	_Atomic uint64_t corruptions;		/* 336: invalid values found */
	_Atomic uint64_t aborted;		/* 344: zero-copy writes aborted */
	uint8_t reserved5[32];
	uint8_t reserved6[128];		/* 384: lines 6-7 */
};
_Static_assert(sizeof(struct smem_ring_shm) == SMEM_RING_HDR_SIZE, "layout");
_Static_assert(offsetof(struct smem_ring_shm, node_count) == 12, "layout");
_Static_assert(offsetof(struct smem_ring_shm, node_size) == 16, "layout");
_Static_assert(offsetof(struct smem_ring_shm, node_stride) == 20, "layout");
_Static_assert(offsetof(struct smem_ring_shm, nodes_off) == 24, "layout");
_Static_assert(offsetof(struct smem_ring_shm, data_off) == 32, "layout");
_Static_assert(offsetof(struct smem_ring_shm, obj_size) == 40, "layout");
_Static_assert(offsetof(struct smem_ring_shm, tail) == 64, "layout");
_Static_assert(offsetof(struct smem_ring_shm, head) == 128, "layout");
_Static_assert(offsetof(struct smem_ring_shm, data_seq) == 192, "layout");
_Static_assert(offsetof(struct smem_ring_shm, data_waiters) == 196, "layout");
_Static_assert(offsetof(struct smem_ring_shm, room_seq) == 256, "layout");
_Static_assert(offsetof(struct smem_ring_shm, data_wake_ns) == 200, "layout");
_Static_assert(offsetof(struct smem_ring_shm, room_waiters) == 260, "layout");
_Static_assert(offsetof(struct smem_ring_shm, room_wake_ns) == 264, "layout");
_Static_assert(offsetof(struct smem_ring_shm, drops_recovered) == 320, "layout");
_Static_assert(offsetof(struct smem_ring_shm, aborted) == 344, "layout");

/* ---- the contract with rpc.c ------------------------------------------------------------ */

/*
 * Announce that the caller is about to sleep until the ring has a message to read
 * (for_write=false) or room to write (for_write=true). Returns 0 with *word and *val set: the
 * caller may sleep with FUTEX_WAIT(*word, *val) (in io_uring or futex_waitv; shared futex,
 * 32-bit); -EAGAIN: the condition already holds, do not sleep; -ESHUTDOWN. Every 0 return
 * must be paired with smem__ring_wait_done(). Writers/readers that make the condition true
 * wake such waiters (they count as sleepers).
 *
 * A node held by a participant that died is recovered here when it has been seen stuck for a
 * while (a liveness check, one fcntl), so callers should sleep with a bounded timeout
 * (SMEM__RING_RECHECK_MS) and call again, as the ring's own waits do.
 */
int smem__ring_wait_prepare(struct smem_ring *r, bool for_write, _Atomic uint32_t **word,
			    uint32_t *val);
void smem__ring_wait_done(struct smem_ring *r, bool for_write);
/* When a wake on the word smem__ring_wait_prepare() gave last returned (0: never, see wake()). */
_Atomic uint64_t *smem__ring_wake_ns(struct smem_ring *r, bool for_write);
struct smem_region *smem__ring_region(const struct smem_ring *r);

/* Longest sleep between two looks at the ring while a peer holds a node we wait for. */
#define SMEM__RING_RECHECK_MS	5

/* ---- the adaptive spin (SMEM_RING_SPIN_AUTO; ring.h and WAITING in ring.c) -------------- */

/* Longest spin of an auto wait on nodes of @node_size bytes: 1 ns per byte, clamped. */
static inline uint32_t smem__ring_spin_cap(uint32_t node_size)
{
	if (node_size < SMEM_RING_SPIN_DEFAULT_NS)
		return SMEM_RING_SPIN_DEFAULT_NS;
	return node_size < SMEM_RING_SPIN_MAX_NS ? node_size : SMEM_RING_SPIN_MAX_NS;
}

/* ---- for the tests and tools ------------------------------------------------------------ */

/* The spin budget (ns) of the next wait of this handle for data (reads) or room (writes). */
uint32_t smem__ring_spin_budget(const struct smem_ring *r, bool for_write);

/* The shared area (for tests that inspect or corrupt it). */
struct smem_ring_shm *smem__ring_shm(const struct smem_ring *r);
/* Our owner id in the ring (the live id of the handle). */
uint32_t smem__ring_owner_id(const struct smem_ring *r);

/*
 * Size of the object area for a geometry, or 0 when invalid (-EINVAL cases of create).
 * smem__ring_format() lays out a zeroed area of that size; smem__ring_attach() makes a handle
 * over a region that holds a formatted ring (validating it like an open does) and takes
 * ownership of @reg (closed by smem_ring_close()). Used by create/open, and by tests to run a
 * ring over a hand-made mapping.
 */
size_t smem__ring_obj_size(uint32_t node_count, uint32_t node_size);
int smem__ring_format(void *obj, size_t obj_size, uint32_t node_count, uint32_t node_size);
int smem__ring_attach(struct smem_region *reg, struct smem_ring **ret);
/*
 * Validate the geometry line of the ring in @reg (any handle, read-only ones too: smemctl
 * inspects with this) and copy it to *geo, as smem__ring_attach() does. 0 or -EPROTO.
 */
int smem__ring_geometry(const struct smem_region *reg, struct smem_ring_shm *geo);

#endif
