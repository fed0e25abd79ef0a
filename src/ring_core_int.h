/* SPDX-License-Identifier: MIT */
/*
 * What the ring's own files share: the private handle, the claim-state helpers and the fork
 * check. ring.c holds the protocol (its block comment is the reference for everything here),
 * ring_wait.c waiting from outside the ring's calls (the contract with rpc, the eventfd
 * bridge), ring_open.c the handle's life (create, open, close, fork) and its accessors.
 * The shared layout and the contract with other modules are in ring_int.h.
 */
#ifndef SMEM_RING_CORE_INT_H
#define SMEM_RING_CORE_INT_H

#include <pthread.h>
#include <sys/types.h>

#include "ring_int.h"
#include "wait.h"

#define SMEM__RING_RECHECK_NS	((uint64_t)SMEM__RING_RECHECK_MS * 1000000ull)
/* The longest sleep: notices peers dying while holding a node. */
#define SMEM__RING_IDLE_SLEEP_NS	50000000ull

enum { SLOT_NONE = 0, SLOT_WRITE = 0x5752u, SLOT_READ = 0x5244u };

/* A claim by somebody else that blocks us, and what to do if its owner is dead. */
struct smem__ring_obs {
	bool held;
	bool drop;		/* fix drops a writer's message (else frees a reader's node) */
	uint64_t pos;		/* position whose node we looked at */
	uint64_t state;		/* what we saw */
	uint64_t fix;		/* state to install if the owner is dead */
};

/* Last claim seen blocking this handle, per direction (racy between threads: harmless). */
struct smem__ring_stuck {
	_Atomic uint64_t state;
	_Atomic uint64_t pos;
	_Atomic uint64_t since;
};

struct smem_ring {
	struct smem_region *reg;
	struct smem_ring_shm *shm;
	struct smem_ring_node *nodes;
	unsigned char *data;
	_Atomic uint32_t *shutdown;	/* the region header's shutdown word */
	/* private copies of the geometry, validated once */
	uint32_t n, size, stride;
	uint64_t mask;			/* n - 1 when n is a power of two, else 0 */
	uint32_t id;			/* our owner id (a forked child takes its own, see fork) */
	_Atomic unsigned fork_gen;	/* the process generation id belongs to */
	_Atomic uint32_t spin_ns;	/* smem_ring_set_spin(): SMEM_RING_SPIN_AUTO or fixed */
	uint32_t spin_cap;		/* auto: longest spin, from node size (smem__ring_spin_cap) */
	_Atomic uint32_t learned[2];	/* auto: spin budget learned by reads [0], writes [1] */
	struct smem__ring_stuck wstuck, rstuck;
	_Atomic uint64_t written, nread, full_waits, empty_waits, sleeps, wakes;
	/* the eventfd bridge (smem_ring_fd) */
	pthread_mutex_t fd_lock;
	int efd;
	bool bridge_on;
	unsigned bridge_gen;		/* the process generation the bridge thread runs in */
	_Atomic bool bridge_stop;
	pthread_t bridge;
};

struct smem__ring_op {
	bool write;
	bool peek;		/* read: only report the next length */
	size_t cap;		/* read: -EMSGSIZE above this, nothing consumed */
	uint64_t pos;		/* out: the position claimed */
	uint32_t idx;		/* out: its node (pos % node_count, computed once) */
	ssize_t len;		/* out (peek): the length */
};

static inline uint64_t mkst(uint64_t seq, uint32_t owner)
{
	return (uint64_t)(uint32_t)seq << 32 | owner;
}

static inline uint32_t st_seq(uint64_t s)
{
	return (uint32_t)(s >> 32);
}

static inline uint32_t st_owner(uint64_t s)
{
	return (uint32_t)s;
}

static inline uint32_t idx_of(const struct smem_ring *r, uint64_t pos)
{
	return (uint32_t)(r->mask ? pos & r->mask : pos % r->n);
}

static inline struct smem_ring_node *smem__ring_node_at(const struct smem_ring *r, uint64_t pos)
{
	return &r->nodes[idx_of(r, pos)];
}

static inline unsigned char *smem__ring_payload(const struct smem_ring *r, uint32_t idx)
{
	return r->data + (size_t)idx * r->stride;
}

static inline void smem__ring_stat_inc(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline bool smem__ring_is_shutdown(const struct smem_ring *r)
{
	/* Acquire: pairs with the release store of the owner's close. */
	return atomic_load_explicit(r->shutdown, memory_order_acquire) != 0;
}

/*
 * The spin policy of the next wait in direction @dir (0 reads, 1 writes): smem_ring_set_spin()'s
 * fixed budget, or SMEM_RING_SPIN_AUTO: learned per direction, between the base spin and the
 * handle's cap (see HOW LONG TO SPIN in ring.c).
 */
_Static_assert(SMEM_RING_SPIN_AUTO == SMEM__SPIN_AUTO, "the public and the engine's AUTO");
static inline struct smem__spin smem__ring_spin(struct smem_ring *r, int dir)
{
	struct smem__spin sp = {
		.ns = atomic_load_explicit(&r->spin_ns, memory_order_relaxed),
		.base = SMEM_RING_SPIN_DEFAULT_NS,
		.cap = r->spin_cap,
		.learned = &r->learned[dir],
	};

	return sp;
}

/*
 * smem__ring_wait_prepare() that also tells whether a claim by somebody else blocks the condition
 * (*held): the caller must then look again within SMEM__RING_RECHECK_NS (ring_poll.c arms a
 * timeout), since nobody will wake it if that claim's owner is dead.
 */
int smem__ring_wait_prepare_held(struct smem_ring *r, bool for_write, _Atomic uint32_t **word,
				 uint32_t *val, bool *held);

/* ---- fork (ring_open.c) ------------------------------------------------------------------ */

/* Join under an id of our own in a forked child (generation @gen). 0 or -EUSERS. */
int smem__ring_rejoin(struct smem_ring *r, unsigned gen);

/* 0, or the error of joining under an id of our own in a forked child (-EUSERS). */
static inline int smem__ring_check_fork(struct smem_ring *r)
{
	unsigned gen = smem__fork_generation();

	/* Acquire: pairs with the release in smem__ring_rejoin(): r->id is this process's. */
	if (smem__likely(atomic_load_explicit(&r->fork_gen, memory_order_acquire) == gen))
		return 0;
	return smem__ring_rejoin(r, gen);
}

/* ---- the protocol (ring.c), for ring_wait.c and ring_open.c ----------------------------- */

/* One attempt at @op, never a system call: 0, -EAGAIN (with *ob telling who blocks), -EPROTO. */
int smem__ring_try(struct smem_ring *r, struct smem__ring_op *op, struct smem__ring_obs *ob);
/* Recover the claim in *ob if its owner has been dead a while; true when the node changed. */
bool smem__ring_recover(struct smem_ring *r, struct smem__ring_stuck *st,
			const struct smem__ring_obs *ob);
/* Bump the event count @seq and wake its sleepers. */
void smem__ring_wake(struct smem_ring *r, _Atomic uint32_t *seq);

/*
 * A waiter announces itself: it counts itself in @waiters (diagnostics: smemctl, tests) and
 * sets SMEM__RING_SLEEPERS in the event count @seqw, and returns the value to sleep on (the
 * flag included); the ring is re-checked after this (the WAITING part of the protocol).
 */
static inline uint32_t smem__ring_announce(_Atomic uint32_t *waiters, _Atomic uint32_t *seqw)
{
	uint32_t v;

	/* Relaxed: a count for observers; the handshake is the flag below. */
	atomic_fetch_add_explicit(waiters, 1, memory_order_relaxed);
	/*
	 * seq_cst: the Dekker half of the waiter, pairing with the seq_cst state CAS + seq_cst
	 * load of @seqw by committers/releasers (wake_if() in ring.c): either the committer's
	 * load sees the flag, or the re-check after this sees the committer's new state.
	 * Acquire half: pairs with wake()'s release, so a value bumped by a wake comes with the
	 * state change that led to it.
	 */
	v = atomic_fetch_or_explicit(seqw, SMEM__RING_SLEEPERS, memory_order_seq_cst);
	/*
	 * The re-check's loads are acquire, not seq_cst: this fence puts them after the flag in
	 * the single total order, which the handshake needs (C11 fence rules).
	 */
	atomic_thread_fence(memory_order_seq_cst);
	return v | SMEM__RING_SLEEPERS;
}

#endif
