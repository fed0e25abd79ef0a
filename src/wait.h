/* SPDX-License-Identifier: MIT */
/*
 * The wait engine: how every blocking call of the library waits (ring, lock, RPC).
 *
 * ITEMS. A waiter sleeps on a set of items: futex words with the value they must still hold
 * to sleep (shared 32-bit futexes: ring and lock words in shared memory, or the library's
 * process-local event words), and fds to poll (a peer's pidfd). A sleep returns when any item
 * fired or the time ran out; a spurious early return is possible, so callers re-check.
 *
 * BACKENDS, probed once per process at first use (wait.c), each refused error read as
 * "unavailable" (ENOSYS: the kernel lacks it; EPERM/EACCES: seccomp, kernel.io_uring_disabled):
 *   1. io_uring (wait_uring.c): one IORING_OP_FUTEX_WAIT per word and one POLL_ADD per fd,
 *      submitted with the wait in one io_uring_enter(2). Needs kernel 6.7; skipped with
 *      SMEM_NO_URING=1 (or SMEM_WAIT_BACKEND=futex_waitv; =futex skips 2 as well).
 *   2. futex_waitv(2) on the words (5.16), in slices of SMEM__WAIT_POLL_NS when there are fds,
 *      which are then checked with poll(2) and a zero timeout.
 *   3. FUTEX_WAIT on the first word in short slices (1 ms, doubling to 64 ms while idle), the
 *      others and the fds checked after each; poll(2) alone when there are only fds.
 * A backend that fails at run time with such an error (a seccomp filter installed after the
 * probe) is dropped for the next one, so a wait never turns into a spin. A single futex word
 * with no fd is one FUTEX_WAIT on every backend: there is nothing to batch.
 *
 * THE LOOP. smem__wait_for() is the one spin-then-sleep loop: look (poll), spin for the
 * policy's budget looking again, then arm (announce to wakers, fill a set, re-check), sleep,
 * disarm, look; until the look says done or the deadline passes.
 *
 * THE SPIN POLICY. Fixed (a budget in ns, 0: sleep at once), or adaptive (SMEM__SPIN_AUTO): a
 * wait spins max(base, learned); a wait that got what it waited for t ns after it began
 * raises the learned budget to 1.25 t at once, or lowers it by an eighth of the gap; a wait
 * longer than the cap, or a timeout, resets it (smem__spin_next()).
 */
#ifndef SMEM_WAIT_H
#define SMEM_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tell the core we are spinning: a pause (x86) or yield (arm64), and a compiler barrier. */
static inline void smem__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

enum smem__wait_backend {
	SMEM__WAIT_URING = 1,
	SMEM__WAIT_FUTEX_WAITV = 2,
	SMEM__WAIT_FUTEX = 3,
};

/* Longest slice a backend without fd support sleeps before checking fds. */
#define SMEM__WAIT_POLL_NS	(20ull * 1000 * 1000)
/*
 * Most items in one wait: smem_rpc_serve()'s 32 channels x 4 items (rpc_int.h asserts it).
 * The io_uring backend needs one SQE per item plus a cancel, and item indices fit 8 bits of
 * user_data (wait_uring.c asserts both).
 */
#define SMEM__WAIT_MAX		128u

struct smem__wait_item {
	_Atomic uint32_t *word;	/* futex item: sleep while *word == val; NULL for an fd item */
	uint32_t val;
	int fd;			/* fd item: poll for @events (word == NULL) */
	short events;
	bool fired;		/* out: this item woke us (futex: woken or value changed) */
};

/*
 * Sleep until an item fires or @max_ns passes (UINT64_MAX: no limit). Returns the number of
 * fired items (>= 1), 0 on timeout (or a spurious return), or -EINVAL (n > SMEM__WAIT_MAX,
 * or nothing to wait for and no limit).
 */
int smem__wait_many(struct smem__wait_item *items, unsigned n, uint64_t max_ns);

/* The backend this process uses (probing on first call). */
enum smem__wait_backend smem__wait_backend(void);

/* Counters for benchmarks: io_uring_enter / futex_waitv / futex calls made by all threads. */
uint64_t smem__wait_syscalls(void);

/* Drop the calling thread's io_uring (it is recreated on demand). Harmless at any time. */
void smem__wait_thread_release(void);

/* ---- the io_uring backend (wait_uring.c), for wait.c ------------------------------------ */

/* Does io_uring work here, with futex waits and EXT_ARG timeouts? */
bool smem__wait_uring_probe(void);
/*
 * One sleep through the calling thread's ring (made on first use). Returns the number of
 * fired items (0: timeout or interrupted), -EBUSY when this thread cannot have a ring (fd or
 * memlock limits: use another backend this time), or the enter's error.
 */
int smem__wait_uring(struct smem__wait_item *items, unsigned n, uint64_t max_ns);

/* ---- sets ------------------------------------------------------------------------------- */

/*
 * A set of items over a caller's array of @cap items (cap <= SMEM__WAIT_MAX, asserted where
 * the array is declared). An item that does not fit is an error, never a silent drop: the
 * adder returns -E2BIG and so does the sleep, which then does not sleep (a sleep missing an
 * item could miss its wakeup).
 */
struct smem__wait_set {
	struct smem__wait_item *it;
	unsigned n, cap;
	int err;
};

static inline void smem__wait_set_init(struct smem__wait_set *ws, struct smem__wait_item *it,
				       unsigned cap)
{
	ws->it = it;
	ws->n = 0;
	ws->cap = cap;
	ws->err = 0;
}

/* Add a futex word that must still hold @val to sleep / an fd to poll for @events. 0, -E2BIG. */
int smem__wait_set_word(struct smem__wait_set *ws, _Atomic uint32_t *word, uint32_t val);
int smem__wait_set_fd(struct smem__wait_set *ws, int fd, short events);
/* Sleep on the set: smem__wait_many(), or -E2BIG when an item did not fit. */
int smem__wait_set_sleep(struct smem__wait_set *ws, uint64_t max_ns);

/* ---- the spin policy -------------------------------------------------------------------- */

#define SMEM__SPIN_AUTO	UINT32_MAX

struct smem__spin {
	uint32_t ns;			/* a fixed budget, or SMEM__SPIN_AUTO */
	uint32_t base, cap;		/* auto: the least a wait spins, and the most */
	_Atomic uint32_t *learned;	/* auto: the budget learned by this kind of wait */
};

/* How long the next wait spins. */
static inline uint64_t smem__spin_budget(const struct smem__spin *sp)
{
	uint32_t l;

	if (sp->ns != SMEM__SPIN_AUTO)
		return sp->ns;
	/* Relaxed: a hint; a lost update between threads only mistunes one wait. */
	l = atomic_load_explicit(sp->learned, memory_order_relaxed);
	return l > sp->base ? l : sp->base;
}

/*
 * The learned budget after a wait that got what it waited for @t ns after it began (@t =
 * UINT64_MAX: it timed out), from the budget @cur before it: a wait longer than @cap (the
 * peer was idle) forgets (0: the base spin); a shorter one asks for 1.25 t at once if that is
 * more, else lowers the budget by an eighth of the difference (one quick wait in a slow
 * stream does not make the next slow one sleep).
 */
static inline uint32_t smem__spin_next(uint32_t cur, uint64_t t, uint32_t cap)
{
	uint64_t want;

	if (t > cap)
		return 0;
	want = t + t / 4;
	if (want > cap)
		want = cap;
	if (want >= cur)
		return (uint32_t)want;
	return cur - (cur - (uint32_t)want) / 8;
}

/* ---- the loop --------------------------------------------------------------------------- */

/*
 * A wait, embedded by the caller in its own context. Callbacks return -EAGAIN for "not yet";
 * any other value ends the wait and is what smem__wait_for() returns.
 *   poll    one look, never a system call (it may pump, recover a dead peer's claim, ...);
 *   arm     about to sleep: announce to the wakers (their "is anybody asleep" check), fill
 *           *set with what wakes us, and look again; -EAGAIN to sleep at most *max_ns (arm
 *           may lower it; it starts at the time left; 0 from arm: look again, no sleep);
 *   disarm  after every arm: withdraw the announcement. @fired: -1 when no sleep happened
 *           (arm ended the wait, or the time was up), 0 when the sleep ran out, > 0 when
 *           items fired (their .fired flags are set).
 */
struct smem__waiter {
	int (*poll)(struct smem__waiter *w);
	int (*arm)(struct smem__waiter *w, uint64_t *max_ns);
	void (*disarm)(struct smem__waiter *w, int fired);
	struct smem__wait_set *set;	/* what arm fills and the loop sleeps on */
	struct smem__spin spin;
	uint64_t deadline;		/* absolute CLOCK_MONOTONIC ns, UINT64_MAX: none */
};

/*
 * Spin, then sleep, until a callback ends the wait (its value), the deadline passes
 * (-ETIMEDOUT, after a last armed look) or a set overflows (-E2BIG). Does not look before
 * spinning: callers try their fast path first. An adaptive policy learns from every wait
 * that ends other than with -ESHUTDOWN.
 */
int smem__wait_for(struct smem__waiter *w);

/* ---- pollable waits (wait_fd.c) ----------------------------------------------------------- */

/*
 * POLLABLE WAITS: an fd that becomes readable when an armed set of items fires, for event
 * loops, with no thread of ours when io_uring has futex waits (the fd is a private io_uring's,
 * readable when a CQE is posted); elsewhere a helper thread sleeps on the set and writes an
 * eventfd (smem__waitfd_threaded()). Not thread-safe: one owner calls arm/disarm.
 *   arm     replaces any previous arming (disarm first), then submits @items (futex words
 *           that must still hold their value, fds to poll) and, unless UINT64_MAX, a timeout
 *           of @max_ns: the fd becomes readable when one fires (or at once, if a word no
 *           longer holds its value). The caller announces itself to the wakers before and
 *           re-checks its condition after arming's values were taken, as for a sleep. 0,
 *           -EINVAL (n > SMEM__WAITFD_MAX, or nothing that could fire), or io_uring's error.
 *   disarm  withdraws the arming: afterwards the fd is not readable and nothing of the old
 *           arming fires later. Harmless when not armed.
 */
#define SMEM__WAITFD_MAX	8u	/* <= 32: fired items are a bit mask */
struct smem__waitfd;
int smem__waitfd_open(struct smem__waitfd **ret);
int smem__waitfd_fd(const struct smem__waitfd *w);
bool smem__waitfd_threaded(const struct smem__waitfd *w);
int smem__waitfd_arm(struct smem__waitfd *w, const struct smem__wait_item *items, unsigned n,
		     uint64_t max_ns);
void smem__waitfd_disarm(struct smem__waitfd *w);
/* After a disarm: which items of the last arming fired (bit i for item i; may over-report). */
uint32_t smem__waitfd_fired(const struct smem__waitfd *w);
void smem__waitfd_close(struct smem__waitfd *w);
/*
 * The shell of every public poller (ring_poll.c, rpc_poll.c, topic_poll.c): @size zeroed
 * bytes whose first member is a struct smem__waitfd *, opened. 0 and *ret, -ENOMEM, or
 * smem__waitfd_open()'s errors. smem__poller_free() closes that waitfd (disarming it) and
 * frees the whole; NULL is ignored. The caller withdraws its own announcements first.
 */
int smem__poller_alloc(size_t size, void **ret);
void smem__poller_free(void *p);

#endif
