/* SPDX-License-Identifier: MIT */
/*
 * A robust, process-shared, writer-preferring reader-writer lock in shared memory.
 *
 * Shared state (struct smem_lock_shm, src/lock.h; docs/LAYOUT.md "Lock"):
 *
 *   state    64 bits: writer owner id (high 32, 0 = none) | INCONSISTENT | WAITERS | readers
 *   seq      32-bit futex word that sleepers wait on; releasers bump it
 *   readers  a cache line per participant slot, 8 words of owner id << 32 | read holds: word 0
 *            shared by the participant's threads, words 1..7 each one thread's own
 *
 * Owner ids are the participant ids of live.c (gen << 8 | slot): the kernel knows whether the
 * participant still lives (an OFD lock it holds), so a dead holder is found without trusting
 * pids or anything else written in shared memory.
 *
 * Writer: CAS the writer field from 0 to its id, keeping the reader count. From that moment no
 * reader can enter (writer preference: a waiting writer blocks new readers). It then waits for
 * the reader count to drain to 0; "writer != 0 and readers == 0" means the writer holds the lock.
 * Unlock clears the writer field (and WAITERS) in one CAS. Uncontended: one CAS each way.
 *
 * Reader: first announce in its reader sub-slot (a plain store if the thread owns the word, a
 * fetch_add on the shared word 0 otherwise), then CAS the state's reader count up if no
 * writer is set; if a writer is set, withdraw the announcement and wait. Unlock: decrement the
 * state's count first, the sub-slot afterwards. So, for a live participant, the sum of its
 * words >= its share of the state's count at every instant. Every change of state is an RMW,
 * so a reader's successful CAS (release) heads a release sequence that the draining writer's
 * CAS (acquire) reads from: the writer's later scan sees the announcement. A reader whose CAS
 * comes after the writer's sees the writer and fails. Uncontended read lock + unlock: two
 * locked instructions (the state CASes), like a pthread rwlock.
 *
 * Sleeping (the ck_ec pattern): a waiter reads seq, re-reads state and checks it is still the
 * value that blocked it, sets WAITERS in state with a CAS, then futex-waits on seq for at most
 * SMEM_LOCK_SLEEP_NS. A releaser clears WAITERS in the same CAS that releases, and only if it
 * saw WAITERS does it bump seq and FUTEX_WAKE everybody. All these are seq_cst: either the
 * waiter's CAS precedes the release (the releaser sees WAITERS and wakes), or it follows (the
 * CAS fails because state changed, and the waiter retries). Nobody sleeping: no system call.
 * A sleeper that dies leaves WAITERS set; the next release clears it with one spare wake.
 * The spin before (SPIN_NS) and the loop of looks and sleeps are the wait engine's
 * (smem__wait_for, wait.h); this file gives it the looks and that arming (struct lock_wait).
 *
 * Recovery. A waiter whose sleep ran out without a wake-up (or whose timeout is about to end)
 * looks at the holders:
 *  - a writer id that is not alive (smem__live_alive: killed, closed, or an id that never
 *    existed) is cleared with one CAS, which also sets INCONSISTENT if the dead writer held the
 *    lock (readers == 0). The CAS makes recovery happen once. The next acquirer, reader or
 *    writer, clears INCONSISTENT in the CAS that acquires and returns -EOWNERDEAD: exactly one
 *    acquirer is told; everyone after it sees 0. A dead writer that was only draining (readers
 *    != 0) never held the lock and is cleared without adding INCONSISTENT (a flag already
 *    there stays). Only a CAS after which its maker holds the lock clears the flag: a writer
 *    that claims the writer field while readers remain leaves it in the state, and clears it
 *    once the count has drained (then it holds, and is told); so the flag survives a draining
 *    writer's timeout or death.
 *  - a draining writer scans the reader slots: if no slot with a non-zero count belongs to a
 *    live participant, whatever is left in the state's reader count belongs to the dead (a
 *    reader killed while holding, or between its announcement and its CAS, or a count
 *    orphaned when its slot was reclaimed, or a corrupted count). The writer zeroes the count
 *    in the CAS that makes it the holder, returns -EOWNERDEAD, and clears the dead slots.
 * A reader does not wait for readers, so a dead reader is reported to the writer that removes
 * its count. A process killed in the one instruction between the state CAS and the slot
 * decrement of a read unlock, or between the two halves of a write unlock, may cause one
 * spurious -EOWNERDEAD; never a missed one.
 *
 * Hostile memory: every field is re-read and checked; indices into the reader table come from
 * our private copy of our slot; liveness of an id comes from the kernel, so a forged id at
 * worst looks dead (and is recovered) or names a live peer (who could hold the lock anyway).
 * No wait is longer than the caller's timeout; a corrupted count is recovered like a dead one.
 *
 * Per-thread state: a thread records which locks it holds (by handle serial and mode) in
 * thread-local storage, which turns recursion into -EDEADLK and unlock-without-lock into
 * -EPERM, and lets threads of one process share a handle. A pointer to the record used last
 * makes the lookup one load and one compare when a thread uses one lock repeatedly.
 *
 * Fast paths (lock.h, inline in buffer.c and array.c): when the thread's last record is this
 * handle's and the lock is free of writers and flags, a read acquire is the announcement, a
 * load and one CAS; a read release one CAS and the slot store; a write acquire or release
 * one CAS. No clock is read and no call is made. Anything else (another record, a writer, a
 * flag, WAITERS, a failed CAS) leaves no shared effect behind and takes the complete path
 * below, which reads the clock only once it has to wait.
 *
 * fork: a child inherits the handle and with it the parent's liveness description, which would
 * keep a dead parent looking alive. An atfork child handler closes the inherited liveness fds
 * of every attached lock, and the child joins again with an id of its own on its first lock
 * call. Locks the parent held are not held by the child: the same handler forgets the records
 * of the forking thread (the child's only thread), so the child's first call of every handle
 * takes the complete path, which rejoins.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "lock.h"
#include "wait.h"

#define READERS(s)	((s) & SMEM_LOCK_READERS_MASK)
#define WRITER(s)	((uint32_t)((s) >> SMEM_LOCK_WRITER_SHIFT))
#define WRITER_MASK	(0xffffffffull << SMEM_LOCK_WRITER_SHIFT)
#define SLOT_COUNT(v)	((uint32_t)(v))
#define SLOT_OWNER(v)	((uint32_t)((v) >> 32))
/* Spin this long before sleeping: about 64 pauses on current x86; holders' sections are short. */
#define SPIN_NS		4000u
/* A look's result for "the reader count is at its limit" (the caller's -EAGAIN). */
#define READERS_FULL	1
#define MAX_ENTRIES	16
#define SUB_OWN_MASK	(((1u << SMEM_LOCK_SUBSLOTS) - 1) & ~1u)

/* ---- registry of attached locks, and fork ------------------------------------------- */

static pthread_mutex_t reg_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct smem__lock *reg_head;
static _Atomic uint64_t next_serial = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void t_forget_all(void);

static void atfork_prepare(void)
{
	pthread_mutex_lock(&reg_mutex);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&reg_mutex);
}

/*
 * In the child: live.c's child handler (a higher rank, so it ran first: fork.h) has dropped our
 * copy of every inherited liveness description (so that the parent dies when it dies), and the
 * process generation has changed; the child rejoins lazily (lock_prepare).
 * The handler runs in the child's only thread, the one whose holds the child inherited: it
 * forgets them here, so the lock path need not check a generation per thread.
 */
static void atfork_child(void)
{
	t_forget_all();
	pthread_mutex_unlock(&reg_mutex);
}

static const struct smem__fork_ops lock_fork_ops = {
	.prepare = atfork_prepare,
	.parent = atfork_parent,
	.child = atfork_child,
};

static void atfork_register(void)
{
	smem__fork_register(SMEM__FORK_LOCK, &lock_fork_ops);
}

/* Claim our line of reader slots for @lk->id: a previous claimant of the slot is dead. */
static void claim_reader_slot(struct smem__lock *lk)
{
	unsigned i;

	/*
	 * Release: our id is visible before any count we add (the scan reads count and owner in
	 * one load anyway). A count the dead previous claimant left in the state is orphaned:
	 * a draining writer removes it (see readers_all_dead).
	 */
	for (i = 0; i < SMEM_LOCK_SUBSLOTS; i++)
		atomic_store_explicit(&lk->shm->readers[lk->slot * SMEM_LOCK_SUBSLOTS + i],
				      (uint64_t)lk->id << 32, memory_order_release);
	atomic_store_explicit(&lk->sub_used, 0, memory_order_relaxed);
}

/* After a fork, the child takes part under an id of its own. Called with reg_mutex held. */
static int rejoin(struct smem__lock *lk, unsigned gen)
{
	int err;

	smem__live_leave(lk->r);	/* no-op if the atfork handler did it */
	err = smem__live_join(lk->r);
	if (err)
		return err;
	lk->id = lk->r->live_id;
	lk->slot = lk->id & 0xffu;
	claim_reader_slot(lk);
	/* Release: pairs with the acquire in lock_prepare; id and slot are visible first. */
	atomic_store_explicit(&lk->fork_gen, gen, memory_order_release);
	return 0;
}

/* ---- what the calling thread holds ---------------------------------------------------- */

/*
 * Per thread, per handle: what the thread holds through the handle, and which reader sub-slot
 * the thread uses for it. Entries stay cached after unlock (mode NONE) and are evicted when
 * the table is full. Serials are never reused, so an entry of a closed handle is just stale.
 * t_last points at the entry used last: the common case (one lock used over and over) finds
 * its entry with one load and one compare.
 *
 * initial-exec: a TLS access is then one %fs-relative load in the shared library too, not a
 * __tls_get_addr call (the library's TLS is small enough for glibc's static TLS surplus if it
 * is ever dlopen()ed).
 */
#define SMEM_TLS _Thread_local __attribute__((tls_model("initial-exec")))

#define tentry smem__tentry
#define t_last smem__t_last

static SMEM_TLS struct tentry t_ent[MAX_ENTRIES];
static SMEM_TLS unsigned t_nent;
SMEM_TLS struct tentry *t_last;	/* declared in lock.h for the inline fast paths */

/* In a forked child (atfork_child): the parent's holds are not the child's. */
static void t_forget_all(void)
{
	t_nent = 0;
	t_last = NULL;
}

static __attribute__((noinline)) struct tentry *ent_scan(uint64_t serial)
{
	unsigned i;

	for (i = 0; i < t_nent; i++)
		if (t_ent[i].serial == serial)
			return t_last = &t_ent[i];
	return NULL;
}

static inline struct tentry *ent_find(uint64_t serial)
{
	struct tentry *e = t_last;

	if (smem__likely(e != NULL && e->serial == serial))
		return e;
	return ent_scan(serial);
}

/* A sub-slot of our own for the calling thread, or 0 (shared) when all 7 are taken. */
static unsigned claim_sub(struct smem__lock *lk)
{
	uint32_t used = atomic_load_explicit(&lk->sub_used, memory_order_relaxed), avail;

	while ((avail = ~used & SUB_OWN_MASK) != 0) {
		unsigned n = (unsigned)__builtin_ctz(avail);

		if (atomic_compare_exchange_weak_explicit(&lk->sub_used, &used, used | 1u << n,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return n;
	}
	return 0;
}

/* The calling thread's entry for @lk, made if needed; NULL if the table is full of holds. */
static struct tentry *ent_get(struct smem__lock *lk)
{
	struct tentry *e = ent_find(lk->serial);
	unsigned i;

	if (smem__likely(e != NULL))
		return e;
	if (t_nent < MAX_ENTRIES) {
		e = &t_ent[t_nent++];
	} else {
		for (i = 0; i < MAX_ENTRIES && t_ent[i].mode != SMEM_LOCK_NONE; i++)
			;
		if (i == MAX_ENTRIES)
			return NULL;
		e = &t_ent[i];	/* its handle's sub-slot bit stays taken: harmless */
	}
	e->serial = lk->serial;
	e->mode = SMEM_LOCK_NONE;
	e->sub = (uint8_t)claim_sub(lk);
	return t_last = e;
}

/* lock_prepare when the handle must rejoin after fork or the thread has no entry yet. */
static __attribute__((noinline)) int lock_prepare_slow(struct smem__lock *lk,
						       struct tentry **ep)
{
	struct tentry *e;
	unsigned gen = smem__fork_generation();
	int err = 0;

	if (atomic_load_explicit(&lk->fork_gen, memory_order_relaxed) != gen) {
		pthread_mutex_lock(&reg_mutex);
		if (atomic_load_explicit(&lk->fork_gen, memory_order_relaxed) != gen)
			err = rejoin(lk, gen);
		pthread_mutex_unlock(&reg_mutex);
		if (err)
			return err;
	}
	e = ent_get(lk);
	if (!e)
		return -ENOLCK;
	if (e->mode != SMEM_LOCK_NONE)
		return -EDEADLK;
	*ep = e;
	return 0;
}

/*
 * Checks before an acquire: recursion, room to record the hold, and a fresh id after fork.
 * Returns the thread's entry in *ep. Fast path: the handle's generation is current and the
 * thread's last entry is this handle's.
 */
static inline int lock_prepare(struct smem__lock *lk, struct tentry **ep)
{
	struct tentry *e;

	/* Acquire: pairs with rejoin's release; we use the id and slot it wrote. */
	if (smem__unlikely(atomic_load_explicit(&lk->fork_gen, memory_order_acquire) !=
			   smem__fork_generation()))
		return lock_prepare_slow(lk, ep);
	e = ent_find(lk->serial);
	if (smem__unlikely(e == NULL))
		return lock_prepare_slow(lk, ep);
	if (e->mode != SMEM_LOCK_NONE)
		return -EDEADLK;
	*ep = e;
	return 0;
}

int smem__lock_held(const struct smem__lock *lk)
{
	const struct tentry *e = ent_find(lk->serial);

	return e ? e->mode : SMEM_LOCK_NONE;
}

/* ---- sleeping and waking ------------------------------------------------------------ */

static void wake_all(struct smem_lock_shm *l)
{
	/* Pairs with the sleeper's load of seq before its CAS setting WAITERS. */
	atomic_fetch_add_explicit(&l->seq, 1, memory_order_seq_cst);
	smem__futex_wake(&l->seq, INT_MAX);
}

/*
 * A wait for the lock in the wait engine's loop (smem__wait_for, wait.h). @look is the
 * phase's attempt (a reader's acquire, a writer's claim, the drain): 0 done, -EAGAIN with the
 * blocking state in @s, or an error; with @recover it first asks the kernel whether the
 * blockers live and recovers dead ones. Arming is the sleep of the header comment: load seq,
 * re-check that @s still blocks, set WAITERS, then sleep on seq for at most
 * SMEM_LOCK_SLEEP_NS. A sleep that ran its full length without a wake-up makes the wait
 * suspect its blockers dead, so the next look recovers; so does the last look at the deadline.
 */
struct lock_wait {
	struct smem__waiter w;		/* first: the callbacks get &lw->w */
	struct smem__lock *lk;
	int (*look)(struct lock_wait *lw, bool recover);
	bool (*blocked)(uint64_t s, uint32_t id);
	struct tentry *e;
	uint64_t s;			/* the state that blocked the last look */
	bool suspect;			/* a sleep ran out: the blockers may be dead */
	bool dead;			/* -EOWNERDEAD for the caller */
	struct smem__wait_set set;
	struct smem__wait_item item;
};

static int lw_poll(struct smem__waiter *w)
{
	struct lock_wait *lw = (struct lock_wait *)w;
	bool recover = lw->suspect;

	lw->suspect = false;
	return lw->look(lw, recover);
}

static int lw_arm(struct smem__waiter *w, uint64_t *max_ns)
{
	struct lock_wait *lw = (struct lock_wait *)w;
	struct smem_lock_shm *l = lw->lk->shm;
	uint64_t s = lw->s;
	uint32_t v;

	if (*max_ns == 0)
		return lw->look(lw, true);	/* the deadline: a last look, recovering the dead */
	/* seq before state: pairs with the releaser's state CAS then seq bump (wake_all). */
	v = atomic_load_explicit(&l->seq, memory_order_seq_cst);
	if (!lw->blocked(s, lw->lk->id) || atomic_load_explicit(&l->state, memory_order_seq_cst) != s ||
	    (!(s & SMEM_LOCK_WAITERS) &&
	     !atomic_compare_exchange_strong_explicit(&l->state, &s, s | SMEM_LOCK_WAITERS,
						      memory_order_seq_cst, memory_order_relaxed))) {
		*max_ns = 0;	/* the state moved: look again */
		return -EAGAIN;
	}
	smem__wait_set_init(&lw->set, &lw->item, 1);
	smem__wait_set_word(&lw->set, &l->seq, v);
	if (*max_ns > SMEM_LOCK_SLEEP_NS)
		*max_ns = SMEM_LOCK_SLEEP_NS;
	return -EAGAIN;
}

static void lw_disarm(struct smem__waiter *w, int fired)
{
	struct lock_wait *lw = (struct lock_wait *)w;

	if (fired == 0 && smem__remaining_ns(w->deadline) > 0)
		lw->suspect = true;
}

static void lw_init(struct lock_wait *lw, struct smem__lock *lk,
		    int (*look)(struct lock_wait *, bool), bool (*blocked)(uint64_t, uint32_t))
{
	lw->w.poll = lw_poll;
	lw->w.arm = lw_arm;
	lw->w.disarm = lw_disarm;
	lw->w.set = &lw->set;
	lw->w.spin = (struct smem__spin){ .ns = SPIN_NS };
	lw->w.deadline = UINT64_MAX;
	lw->lk = lk;
	lw->look = look;
	lw->blocked = blocked;
	lw->suspect = false;
}

/*
 * The writer @w recorded in @s is not alive: clear it (once, by CAS). If it held the lock
 * (readers == 0), mark the lock inconsistent for the next acquirer.
 */
static void recover_writer(struct smem_lock_shm *l, uint64_t s)
{
	uint64_t ns = s & ~(WRITER_MASK | SMEM_LOCK_WAITERS);

	if (READERS(s) == 0)
		ns |= SMEM_LOCK_INCONSISTENT;
	if (atomic_compare_exchange_strong_explicit(&l->state, &s, ns, memory_order_seq_cst,
						    memory_order_relaxed)) {
		atomic_fetch_add_explicit(&l->recoveries, 1, memory_order_relaxed);
		if (s & SMEM_LOCK_WAITERS)
			wake_all(l);
	}
}

/* ---- readers -------------------------------------------------------------------------- */

static bool rd_blocked(uint64_t s, uint32_t id)
{
	(void)id;
	return WRITER(s) != 0;
}

#define sub_slot smem__lock_sub_slot
#define slot_add smem__lock_slot_add

/*
 * One attempt: announce in our slot, CAS the count up while no writer is set. Returns 1 when
 * acquired (*dead set if we consumed INCONSISTENT), 0 when a writer blocks us (announcement
 * withdrawn; *sp holds the blocking state), -EAGAIN at the reader limit.
 */
static inline int rd_try(struct smem__lock *lk, unsigned sub, uint64_t *sp, bool *dead)
{
	struct smem_lock_shm *l = lk->shm;
	_Atomic uint64_t *slot = sub_slot(lk, sub);
	uint64_t s, ns;

	/*
	 * Announce before the CAS. The CAS is a release that heads the release sequence of
	 * every later RMW of state, so a writer whose CAS follows ours synchronises with it and
	 * its scan sees the announcement; a writer whose CAS precedes ours makes ours fail.
	 */
	slot_add(slot, sub, 1, memory_order_relaxed);
	s = atomic_load_explicit(&l->state, memory_order_relaxed);
	while (smem__likely(WRITER(s) == 0)) {
		if (smem__unlikely(READERS(s) >= SMEM_LOCK_READERS_MASK)) {
			slot_add(slot, sub, -1, memory_order_relaxed);
			return -EAGAIN;
		}
		ns = (s + 1) & ~SMEM_LOCK_INCONSISTENT;
		/* Acquire (seq_cst): pairs with the release in the writer's unlock CAS. */
		if (smem__likely(atomic_compare_exchange_weak_explicit(&l->state, &s, ns,
								       memory_order_seq_cst,
								       memory_order_relaxed))) {
			*dead = s & SMEM_LOCK_INCONSISTENT;
			return 1;
		}
	}
	slot_add(slot, sub, -1, memory_order_relaxed);
	*sp = s;
	return 0;
}

/* A reader's look: acquire unless a writer blocks us (a dead one is recovered on @recover). */
static int rd_look(struct lock_wait *lw, bool recover)
{
	struct smem__lock *lk = lw->lk;
	/* Acquire: pairs with the release of the writer's unlock CAS. */
	uint64_t s = atomic_load_explicit(&lk->shm->state, memory_order_acquire);
	int ret;

	if (rd_blocked(s, lk->id)) {
		if (!recover || smem__live_alive(lk->r, WRITER(s))) {
			lw->s = s;
			return -EAGAIN;
		}
		recover_writer(lk->shm, s);
	}
	ret = rd_try(lk, lw->e->sub, &lw->s, &lw->dead);
	return ret == 1 ? 0 : ret == 0 ? -EAGAIN : READERS_FULL;
}

/* A writer blocks us: spin, sleep, recover a dead writer; the clock is read only here. */
static __attribute__((noinline)) int rdlock_slow(struct smem__lock *lk, struct tentry *e,
						 uint64_t s, int timeout_ms)
{
	struct lock_wait lw;
	int ret;

	lw_init(&lw, lk, rd_look, rd_blocked);
	lw.w.deadline = smem__deadline(timeout_ms);
	lw.e = e;
	lw.s = s;
	lw.dead = false;
	ret = smem__wait_for(&lw.w);
	if (ret == READERS_FULL)
		return -EAGAIN;
	if (ret)
		return ret;
	e->mode = SMEM_LOCK_READ;
	return lw.dead ? -EOWNERDEAD : 0;
}

static inline int rdlock_e(struct smem__lock *lk, struct tentry *e, int timeout_ms)
{
	uint64_t s = 0;
	bool dead = false;
	int ret = rd_try(lk, e->sub, &s, &dead);

	if (smem__likely(ret == 1)) {
		e->mode = SMEM_LOCK_READ;
		return smem__unlikely(dead) ? -EOWNERDEAD : 0;
	}
	if (ret < 0)
		return ret;
	return rdlock_slow(lk, e, s, timeout_ms);
}

/* The complete read acquire; smem__lock_rdlock (lock.h) comes here unless uncontended. */
int smem__lock_rdlock_slow(struct smem__lock *lk, int timeout_ms)
{
	struct tentry *e;
	int ret = lock_prepare(lk, &e);

	return smem__likely(ret == 0) ? rdlock_e(lk, e, timeout_ms) : ret;
}

static inline int rd_unlock(struct smem__lock *lk, unsigned sub)
{
	struct smem_lock_shm *l = lk->shm;
	uint64_t s = atomic_load_explicit(&l->state, memory_order_relaxed), ns;
	int ret = 0;

	for (;;) {
		if (smem__unlikely(READERS(s) == 0)) {
			ret = -EPROTO;	/* our count was taken: corruption */
			break;
		}
		ns = s - 1;
		if (READERS(ns) == 0)
			ns &= ~SMEM_LOCK_WAITERS;
		/* Release: our reads happen before a writer's acquire of the drained count. */
		if (smem__likely(atomic_compare_exchange_weak_explicit(&l->state, &s, ns,
								       memory_order_seq_cst,
								       memory_order_relaxed)))
			break;
	}
	/* After the state: a live slot never counts less than its share of the state. */
	slot_add(sub_slot(lk, sub), sub, -1, memory_order_release);
	if (smem__unlikely(ret == 0 && READERS(ns) == 0 && (s & SMEM_LOCK_WAITERS)))
		wake_all(l);
	return ret;
}

/* ---- writers -------------------------------------------------------------------------- */

static bool wr_blocked(uint64_t s, uint32_t id)
{
	(void)id;
	return WRITER(s) != 0;
}

static bool drain_blocked(uint64_t s, uint32_t id)
{
	return WRITER(s) == id && READERS(s) != 0;
}

/*
 * Scan the reader slots while we are the draining writer. Returns true if no live
 * participant has read holds, that is, whatever remains in the state's count is dead.
 */
static bool readers_all_dead(struct smem__lock *lk)
{
	struct smem_lock_shm *l = lk->shm;
	unsigned i;

	for (i = 0; i < SMEM_LOCK_READER_SLOTS; i++) {
		/* Acquire: we synchronised with the readers' CASes (see rd_try); this pairs
		 * with the release of their unlock's slot store. */
		uint64_t v = atomic_load_explicit(&l->readers[i], memory_order_acquire);

		if (SLOT_COUNT(v) != 0 && smem__live_alive(lk->r, SLOT_OWNER(v)))
			return false;
	}
	return true;
}

/* After taking over dead read holds: zero the dead slots so they are not counted again. */
static void clear_dead_slots(struct smem__lock *lk)
{
	struct smem_lock_shm *l = lk->shm;
	unsigned i;

	for (i = 0; i < SMEM_LOCK_READER_SLOTS; i++) {
		uint64_t v = atomic_load_explicit(&l->readers[i], memory_order_relaxed);

		if (SLOT_COUNT(v) == 0 || smem__live_alive(lk->r, SLOT_OWNER(v)))
			continue;
		/* A new claimant of the slot rewrites the whole word: the CAS then fails. */
		atomic_compare_exchange_strong_explicit(&l->readers[i], &v, v & ~0xffffffffull,
							memory_order_relaxed, memory_order_relaxed);
	}
}

/*
 * Give up a draining writer's claim (timeout); readers blocked by us are woken. INCONSISTENT
 * is left as it is: a draining writer never takes it out of the state (see wrlock_slow).
 */
static void wr_withdraw(struct smem__lock *lk)
{
	struct smem_lock_shm *l = lk->shm;
	uint64_t s = atomic_load_explicit(&l->state, memory_order_relaxed), ns;

	do {
		if (WRITER(s) != lk->id)
			return;
		ns = s & ~(WRITER_MASK | SMEM_LOCK_WAITERS);
	} while (!atomic_compare_exchange_weak_explicit(&l->state, &s, ns, memory_order_seq_cst,
							memory_order_relaxed));
	if (s & SMEM_LOCK_WAITERS)
		wake_all(l);
}

/* Phase 1 of a writer: claim the writer field (a dead writer in it recovered on @recover). */
static int claim_look(struct lock_wait *lw, bool recover)
{
	struct smem__lock *lk = lw->lk;
	struct smem_lock_shm *l = lk->shm;
	uint64_t s = atomic_load_explicit(&l->state, memory_order_relaxed), ns;

	for (;;) {
		if (WRITER(s) != 0) {
			if (!recover || smem__live_alive(lk->r, WRITER(s))) {
				lw->s = s;
				return -EAGAIN;
			}
			recover_writer(l, s);
			recover = false;
			s = atomic_load_explicit(&l->state, memory_order_relaxed);
			continue;
		}
		ns = (s & ~SMEM_LOCK_RESERVED) | (uint64_t)lk->id << SMEM_LOCK_WRITER_SHIFT;
		if (READERS(s) == 0)
			ns &= ~SMEM_LOCK_INCONSISTENT;	/* we hold at once: ours */
		/* seq_cst: pairs with readers' announcements (see readers_all_dead). */
		if (atomic_compare_exchange_weak_explicit(&l->state, &s, ns, memory_order_seq_cst,
							  memory_order_relaxed)) {
			lw->dead = READERS(s) == 0 && (s & SMEM_LOCK_INCONSISTENT);
			lw->s = ns;
			return 0;
		}
	}
}

/* Phase 2: wait for the readers to drain (dead ones recovered on @recover). */
static int drain_look(struct lock_wait *lw, bool recover)
{
	struct smem__lock *lk = lw->lk;
	struct smem_lock_shm *l = lk->shm;
	/*
	 * Acquire: when the count is 0 we hold the lock without another RMW; pairs with the
	 * release of the last reader's unlock CAS.
	 */
	uint64_t s = atomic_load_explicit(&l->state, memory_order_acquire), ns;

	if (WRITER(s) != lk->id)
		return -EPROTO;	/* our claim was overwritten: corruption */
	lw->s = s;
	if (READERS(s) == 0) {
		if (!(s & SMEM_LOCK_INCONSISTENT))
			return 0;
		/* Left by a dead writer while readers held: we hold now, we are told. */
		if (atomic_compare_exchange_strong_explicit(&l->state, &s,
							    s & ~SMEM_LOCK_INCONSISTENT,
							    memory_order_seq_cst, memory_order_relaxed)) {
			lw->dead = true;
			return 0;
		}
		return -EAGAIN;	/* the state moved: the arm sees it does not block */
	}
	if (recover && readers_all_dead(lk)) {
		ns = s & ~(SMEM_LOCK_READERS_MASK | SMEM_LOCK_INCONSISTENT);
		if (atomic_compare_exchange_strong_explicit(&l->state, &s, ns, memory_order_seq_cst,
							    memory_order_relaxed)) {
			atomic_fetch_add_explicit(&l->recoveries, 1, memory_order_relaxed);
			clear_dead_slots(lk);
			lw->dead = true;
			return 0;
		}
	}
	return -EAGAIN;
}

/*
 * The writer's path when the lock was not free and clean. The clock is read only once we
 * have to wait (a leftover WAITERS or INCONSISTENT bit costs no clock_gettime).
 *
 * INCONSISTENT is cleared only by the CAS of an acquirer that then holds the lock: the phase
 * 1 CAS when the reader count is 0 (we hold at once), or a CAS after the count drained. A
 * writer that is still draining leaves the flag in the state, so that it survives the
 * writer's timeout or death (recover_writer keeps it) and is reported once, to whoever
 * really acquires next.
 */
static __attribute__((noinline)) int wrlock_slow(struct smem__lock *lk, int timeout_ms)
{
	struct lock_wait lw;
	int ret;

	lw_init(&lw, lk, claim_look, wr_blocked);
	lw.dead = false;
	ret = claim_look(&lw, false);
	if (ret == -EAGAIN) {
		lw.w.deadline = smem__deadline(timeout_ms);
		ret = smem__wait_for(&lw.w);
	}
	if (ret)
		return ret;
	lw.look = drain_look;
	lw.blocked = drain_blocked;
	lw.suspect = false;
	ret = drain_look(&lw, false);
	if (ret == -EAGAIN) {
		if (lw.w.deadline == UINT64_MAX)
			lw.w.deadline = smem__deadline(timeout_ms);
		ret = smem__wait_for(&lw.w);
		if (ret == -ETIMEDOUT)
			wr_withdraw(lk);
	}
	if (ret)
		return ret;
	return lw.dead ? -EOWNERDEAD : 0;
}

static inline int wrlock_e(struct smem__lock *lk, struct tentry *e, int timeout_ms)
{
	uint64_t s = 0;
	int ret = 0;

	/* Fast path: free and clean. Acquire (seq_cst): pairs with every unlock's release. */
	if (smem__unlikely(!atomic_compare_exchange_strong_explicit(
			&lk->shm->state, &s, (uint64_t)lk->id << SMEM_LOCK_WRITER_SHIFT,
			memory_order_seq_cst, memory_order_relaxed))) {
		ret = wrlock_slow(lk, timeout_ms);
		if (ret != 0 && ret != -EOWNERDEAD)
			return ret;
	}
	e->mode = SMEM_LOCK_WRITE;
	return ret;
}

/* The complete write acquire; smem__lock_wrlock (lock.h) comes here unless uncontended. */
int smem__lock_wrlock_slow(struct smem__lock *lk, int timeout_ms)
{
	struct tentry *e;
	int ret = lock_prepare(lk, &e);

	return smem__likely(ret == 0) ? wrlock_e(lk, e, timeout_ms) : ret;
}

static inline int wr_unlock(struct smem__lock *lk)
{
	struct smem_lock_shm *l = lk->shm;
	uint64_t s = (uint64_t)lk->id << SMEM_LOCK_WRITER_SHIFT, ns;

	/* Fast path: held, nobody waiting. Release: pairs with the next acquirer's CAS. */
	if (smem__likely(atomic_compare_exchange_strong_explicit(&l->state, &s, 0,
								 memory_order_seq_cst,
								 memory_order_relaxed)))
		return 0;
	do {
		if (WRITER(s) != lk->id)
			return -EPROTO;	/* taken from us: corruption, or our id looked dead */
		ns = s & ~(WRITER_MASK | SMEM_LOCK_WAITERS);
	} while (!atomic_compare_exchange_weak_explicit(&l->state, &s, ns, memory_order_seq_cst,
							memory_order_relaxed));
	if (s & SMEM_LOCK_WAITERS)
		wake_all(l);
	return 0;
}

static inline int unlock_e(struct smem__lock *lk, struct tentry *e)
{
	int mode;

	if (smem__unlikely(!e || e->mode == SMEM_LOCK_NONE))
		return -EPERM;
	mode = e->mode;
	e->mode = SMEM_LOCK_NONE;
	return mode == SMEM_LOCK_WRITE ? wr_unlock(lk) : rd_unlock(lk, e->sub);
}

int smem__lock_unlock_slow(struct smem__lock *lk)
{
	return unlock_e(lk, ent_find(lk->serial));
}

int smem__lock_enter_slow(struct smem__lock *lk, int mode, int timeout_ms, void **tok)
{
	struct tentry *e;
	int ret;

	*tok = NULL;
	ret = lock_prepare(lk, &e);
	if (ret == -EDEADLK) {
		/* Held by this thread already: enough unless we want to write under a read. */
		e = ent_find(lk->serial);
		return mode == SMEM_LOCK_WRITE && e->mode == SMEM_LOCK_READ ? -EDEADLK : 0;
	}
	if (ret)
		return ret;
	ret = mode == SMEM_LOCK_WRITE ? wrlock_e(lk, e, timeout_ms) : rdlock_e(lk, e, timeout_ms);
	if (ret == 0 || ret == -EOWNERDEAD)
		*tok = e;
	return ret;
}

int smem__lock_leave_slow(struct smem__lock *lk, struct tentry *e)
{
	return unlock_e(lk, e);
}

/* ---- attach / detach ------------------------------------------------------------------ */

void smem__lock_init(struct smem_lock_shm *l)
{
	memset(l, 0, sizeof(*l));
}

int smem__lock_attach(struct smem__lock *lk, struct smem_region *r, struct smem_lock_shm *l)
{
	int err;

	pthread_once(&atfork_once, atfork_register);
	memset(lk, 0, sizeof(*lk));
	err = smem__live_join(r);
	if (err)
		return err;
	lk->shm = l;
	lk->r = r;
	lk->serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed);
	lk->id = r->live_id;
	lk->slot = lk->id & 0xffu;
	lk->fork_gen = smem__fork_generation();
	claim_reader_slot(lk);

	pthread_mutex_lock(&reg_mutex);
	lk->next = reg_head;
	lk->pprev = &reg_head;
	if (reg_head)
		reg_head->pprev = &lk->next;
	reg_head = lk;
	pthread_mutex_unlock(&reg_mutex);
	return 0;
}

void smem__lock_detach(struct smem__lock *lk)
{
	struct tentry *e;

	if (!lk || !lk->shm)
		return;
	if (smem__lock_held(lk) != SMEM_LOCK_NONE)
		smem__lock_unlock(lk);
	e = ent_find(lk->serial);
	if (e)
		e->serial = 0;	/* no handle has serial 0 */
	pthread_mutex_lock(&reg_mutex);
	*lk->pprev = lk->next;
	if (lk->next)
		lk->next->pprev = lk->pprev;
	pthread_mutex_unlock(&reg_mutex);
	lk->shm = NULL;
}
