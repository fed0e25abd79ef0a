/* SPDX-License-Identifier: MIT */
/*
 * The robust process-shared reader-writer lock (lock.c). Internal: nothing here is exported.
 * Its users (blob.h, for buffers and arrays) embed struct smem_lock_shm in their layout.
 *
 * The algorithm, its memory orders and its crash semantics are described at the top of
 * lock.c; the byte layout is specified in docs/LAYOUT.md ("Lock").
 */
#ifndef SMEM_LOCK_H
#define SMEM_LOCK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/*
 * Reader slots: one cache line of 8 words per participant slot. Word 0 is shared by the
 * participant's threads (atomic read-modify-write); words 1..7 each belong to one thread of
 * the participant, which updates it with plain atomic stores (no locked instruction).
 */
#define SMEM_LOCK_SUBSLOTS	8u
#define SMEM_LOCK_READER_SLOTS	(SMEM_LIVE_SLOTS * SMEM_LOCK_SUBSLOTS)

/* The lock in shared memory: 16448 bytes, 64-byte aligned, all zero = unlocked. */
struct smem_lock_shm {
	_Atomic uint64_t state;		/*   0: writer id << 32 | INCONSISTENT | WAITERS | readers */
	_Atomic uint32_t seq;		/*   8: futex word, bumped by releasers that saw WAITERS */
	uint32_t reserved0;		/*  12: zero */
	_Atomic uint64_t recoveries;	/*  16: dead holders recovered so far (statistics) */
	uint8_t reserved1[40];		/*  24: zero */
	/* 64: [participant slot * 8 + sub]: owner id << 32 | number of read holds */
	_Atomic uint64_t readers[SMEM_LOCK_READER_SLOTS];
};

_Static_assert(offsetof(struct smem_lock_shm, state) == 0, "layout");
_Static_assert(offsetof(struct smem_lock_shm, seq) == 8, "layout");
_Static_assert(offsetof(struct smem_lock_shm, recoveries) == 16, "layout");
_Static_assert(offsetof(struct smem_lock_shm, readers) == 64, "layout");
_Static_assert(sizeof(struct smem_lock_shm) == 64 + 8 * SMEM_LOCK_READER_SLOTS, "layout");

/* state word */
#define SMEM_LOCK_READERS_MASK	0x00ffffffull		/* read holds (24 bits) */
#define SMEM_LOCK_RESERVED	0x3f000000ull		/* zero; cleared by writers */
#define SMEM_LOCK_WAITERS	(1ull << 30)		/* somebody sleeps on seq */
#define SMEM_LOCK_INCONSISTENT	(1ull << 31)		/* a writer died holding the lock */
#define SMEM_LOCK_WRITER_SHIFT	32			/* owner id of the writer, 0 = none */
#define SMEM_LOCK_WRITER_MASK	(0xffffffffull << SMEM_LOCK_WRITER_SHIFT)

/* Lock modes, as held by a thread (smem__lock_held). */
enum { SMEM_LOCK_NONE = 0, SMEM_LOCK_READ = 1, SMEM_LOCK_WRITE = 2 };

/* Longest sleep between two looks at the holders' liveness. */
#define SMEM_LOCK_SLEEP_NS	(10ull * 1000 * 1000)

/*
 * A handle's private view of a lock. Threads of one process may share it: the per-thread
 * record of what is held lives in thread-local storage, keyed by @serial.
 */
struct smem__lock {
	struct smem_lock_shm *shm;	/* in the mapping */
	struct smem_region *r;		/* for liveness (r->live_id, r->live_fd) */
	uint64_t serial;		/* unique in the process; never reused */
	uint32_t id;			/* our owner id (r->live_id at attach) */
	uint32_t slot;			/* our participant slot: id & 0xff, private and trusted */
	_Atomic uint32_t sub_used;	/* bit n: sub-slot n is some thread's own (n >= 1) */
	_Atomic unsigned fork_gen;	/* process generation the id belongs to (see fork) */
	struct smem__lock *next;	/* registry of attached locks (fork handling) */
	struct smem__lock **pprev;
};

/* Creator, before publication: an all-zero lock. */
void smem__lock_init(struct smem_lock_shm *l);

/*
 * Attach @lk to the lock @l inside region @r: joins the region's participants (liveness) and
 * claims our reader slot. Returns 0, -EUSERS, -EINVAL (read-only region) or a system error.
 * Not concurrent with other calls on @lk.
 */
int smem__lock_attach(struct smem__lock *lk, struct smem_region *r, struct smem_lock_shm *l);
/*
 * Detach: if the calling thread holds the lock through @lk it is released first. Holds by
 * other threads are not released: to peers they look like holders that died. NULL-safe.
 */
void smem__lock_detach(struct smem__lock *lk);

/*
 * Acquire for reading / writing within @timeout_ms (poll(2) style). Returns 0, or
 * -EOWNERDEAD (acquired; a previous holder died, data may be inconsistent), -ETIMEDOUT,
 * -EDEADLK (the calling thread already holds this lock through this handle), -ENOLCK (the
 * thread holds too many smem locks), -EAGAIN (reader count at its maximum), -EPROTO (the lock
 * word was found corrupted in a way that cannot be repaired while we wait).
 * Thread-safe: threads of a process may share @lk.
 */
static inline int smem__lock_rdlock(struct smem__lock *lk, int timeout_ms);
static inline int smem__lock_wrlock(struct smem__lock *lk, int timeout_ms);
/*
 * Release what the calling thread holds through @lk. Returns 0, -EPERM (holds nothing), or
 * -EPROTO (released, but the shared state had been corrupted or taken from us).
 */
static inline int smem__lock_unlock(struct smem__lock *lk);
/*
 * For calls that lock for their own duration: acquire @mode unless the calling thread already
 * holds enough through @lk (then 0 and *tok = NULL). Returns as smem__lock_rdlock/wrlock, and
 * -EDEADLK for a write wanted under a held read. On 0 / -EOWNERDEAD, pass *tok to
 * smem__lock_leave() from the same thread, with no other lock call of that thread between.
 */
static inline int smem__lock_enter(struct smem__lock *lk, int mode, int timeout_ms, void **tok);
static inline void smem__lock_leave(struct smem__lock *lk, void *tok);
/* What the calling thread holds through @lk: SMEM_LOCK_NONE, _READ or _WRITE. */
int smem__lock_held(const struct smem__lock *lk);

/*
 * ---- the uncontended paths, inline in the callers ----------------------------------------
 *
 * The same protocol as lock.c (described there), cut down to the case where nothing is in
 * the way: the calling thread's last-used hold record (smem__t_last) is this handle's, and
 * the state is free of writers and of INCONSISTENT (read) or entirely zero (write). Anything
 * else, before any shared effect or after a withdrawn announcement, goes to the complete
 * out-of-line path (the _slow functions), which checks everything again from the start.
 *
 * A hold record that smem__t_last points at was made in this process after the handle
 * joined it (the atfork child handler forgets the records; the first lock call of a thread
 * goes the slow way, which rejoins after fork), so the fast path needs no fork check.
 */
struct smem__tentry {
	uint64_t serial;	/* of the handle (smem__lock.serial); 0 = none */
	uint8_t mode;		/* SMEM_LOCK_NONE, _READ, _WRITE */
	uint8_t sub;		/* reader sub-slot: 0 shared (atomic RMW), 1..7 the thread's own */
};

extern _Thread_local struct smem__tentry *smem__t_last __attribute__((tls_model("initial-exec")));

int smem__lock_rdlock_slow(struct smem__lock *lk, int timeout_ms);
int smem__lock_wrlock_slow(struct smem__lock *lk, int timeout_ms);
int smem__lock_unlock_slow(struct smem__lock *lk);
int smem__lock_enter_slow(struct smem__lock *lk, int mode, int timeout_ms, void **tok);
int smem__lock_leave_slow(struct smem__lock *lk, struct smem__tentry *e);

/* Our reader sub-slot: indexed with our private slot number and a sub-slot 0..7. */
static inline _Atomic uint64_t *smem__lock_sub_slot(const struct smem__lock *lk, unsigned sub)
{
	return &lk->shm->readers[lk->slot * SMEM_LOCK_SUBSLOTS + (sub & (SMEM_LOCK_SUBSLOTS - 1))];
}

/* Add @d to our sub-slot's count: a plain store when the sub-slot is the thread's own. */
static inline void smem__lock_slot_add(_Atomic uint64_t *slot, unsigned sub, int d,
				       memory_order mo)
{
	if (sub == 0)
		atomic_fetch_add_explicit(slot, (uint64_t)(int64_t)d, mo);
	else
		atomic_store_explicit(slot, atomic_load_explicit(slot, memory_order_relaxed) +
				      (uint64_t)(int64_t)d, mo);
}

/* The calling thread's hold record for @lk if it is the one it used last, else NULL. */
static inline struct smem__tentry *smem__lock_last(const struct smem__lock *lk)
{
	struct smem__tentry *e = smem__t_last;

	return smem__likely(e != NULL && e->serial == lk->serial) ? e : NULL;
}

/* One clean read acquire (lock.c: rd_try): true if held now; else nothing changed. */
static inline bool smem__lock_rd_fast(struct smem__lock *lk, struct smem__tentry *e)
{
	struct smem_lock_shm *l = lk->shm;
	_Atomic uint64_t *slot = smem__lock_sub_slot(lk, e->sub);
	uint64_t s;

	/* Announce before the CAS (see rd_try: the writer's scan must see it). */
	smem__lock_slot_add(slot, e->sub, 1, memory_order_relaxed);
	s = atomic_load_explicit(&l->state, memory_order_relaxed);
	/* Acquire (seq_cst): pairs with the release in the writer's unlock CAS. */
	if (smem__likely(!(s & (SMEM_LOCK_WRITER_MASK | SMEM_LOCK_INCONSISTENT)) &&
			 (s & SMEM_LOCK_READERS_MASK) < SMEM_LOCK_READERS_MASK &&
			 atomic_compare_exchange_strong_explicit(&l->state, &s, s + 1,
								 memory_order_seq_cst,
								 memory_order_relaxed))) {
		e->mode = SMEM_LOCK_READ;
		return true;
	}
	smem__lock_slot_add(slot, e->sub, -1, memory_order_relaxed);
	return false;
}

/* One clean write acquire (free, no flags): true if held now; else nothing changed. */
static inline bool smem__lock_wr_fast(struct smem__lock *lk, struct smem__tentry *e)
{
	uint64_t s = 0;

	/* Acquire (seq_cst): pairs with every unlock's release. */
	if (smem__likely(atomic_compare_exchange_strong_explicit(
			&lk->shm->state, &s, (uint64_t)lk->id << SMEM_LOCK_WRITER_SHIFT,
			memory_order_seq_cst, memory_order_relaxed))) {
		e->mode = SMEM_LOCK_WRITE;
		return true;
	}
	return false;
}

/* Release @e's hold if nobody waits and nothing is odd (lock.c: rd_unlock, wr_unlock). */
static inline bool smem__lock_unlock_fast(struct smem__lock *lk, struct smem__tentry *e)
{
	struct smem_lock_shm *l = lk->shm;
	uint64_t s;

	if (e->mode == SMEM_LOCK_READ) {
		s = atomic_load_explicit(&l->state, memory_order_relaxed);
		/* Release: our reads happen before a writer's acquire of the drained count. */
		if (smem__likely((s & SMEM_LOCK_READERS_MASK) != 0 && !(s & SMEM_LOCK_WAITERS) &&
				 atomic_compare_exchange_strong_explicit(&l->state, &s, s - 1,
									 memory_order_seq_cst,
									 memory_order_relaxed))) {
			e->mode = SMEM_LOCK_NONE;
			/* After the state: a live slot never counts less than its share. */
			smem__lock_slot_add(smem__lock_sub_slot(lk, e->sub), e->sub, -1,
					    memory_order_release);
			return true;
		}
		return false;
	}
	s = (uint64_t)lk->id << SMEM_LOCK_WRITER_SHIFT;
	/* Release: pairs with the next acquirer's CAS. */
	if (smem__likely(e->mode == SMEM_LOCK_WRITE &&
			 atomic_compare_exchange_strong_explicit(&l->state, &s, 0,
								 memory_order_seq_cst,
								 memory_order_relaxed))) {
		e->mode = SMEM_LOCK_NONE;
		return true;
	}
	return false;
}

static inline int smem__lock_rdlock(struct smem__lock *lk, int timeout_ms)
{
	struct smem__tentry *e = smem__lock_last(lk);

	if (smem__likely(e != NULL && e->mode == SMEM_LOCK_NONE) && smem__lock_rd_fast(lk, e))
		return 0;
	return smem__lock_rdlock_slow(lk, timeout_ms);
}

static inline int smem__lock_wrlock(struct smem__lock *lk, int timeout_ms)
{
	struct smem__tentry *e = smem__lock_last(lk);

	if (smem__likely(e != NULL && e->mode == SMEM_LOCK_NONE) && smem__lock_wr_fast(lk, e))
		return 0;
	return smem__lock_wrlock_slow(lk, timeout_ms);
}

static inline int smem__lock_unlock(struct smem__lock *lk)
{
	struct smem__tentry *e = smem__lock_last(lk);

	if (smem__likely(e != NULL) && smem__lock_unlock_fast(lk, e))
		return 0;
	return smem__lock_unlock_slow(lk);
}

static inline int smem__lock_enter(struct smem__lock *lk, int mode, int timeout_ms, void **tok)
{
	struct smem__tentry *e = smem__lock_last(lk);

	if (smem__likely(e != NULL && e->mode == SMEM_LOCK_NONE) &&
	    (mode == SMEM_LOCK_WRITE ? smem__lock_wr_fast(lk, e) : smem__lock_rd_fast(lk, e))) {
		*tok = e;
		return 0;
	}
	return smem__lock_enter_slow(lk, mode, timeout_ms, tok);
}

static inline void smem__lock_leave(struct smem__lock *lk, void *tok)
{
	if (tok && !smem__lock_unlock_fast(lk, tok))
		smem__lock_leave_slow(lk, tok);
}

#endif
