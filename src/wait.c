/* SPDX-License-Identifier: MIT */
/*
 * The wait engine (see wait.h): the backend probe, the futex_waitv and plain futex backends,
 * wait sets, and the one spin-then-sleep loop. The io_uring backend is wait_uring.c.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include "internal.h"
#include "wait.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv		449
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32		0x02
#endif

/* Plain futex backend: the first slice on the first word, and how often it may double. */
#define SLICE_NS		1000000ull
#define SLICE_DOUBLINGS		6u		/* ... up to 64 ms */
/* The loop reads the clock every this many looks while spinning. */
#define LOOKS_PER_CLOCK		16u

/* The futex_waitv(2) element; declared here so old headers do not matter. */
struct waitv_elem {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};
_Static_assert(sizeof(struct waitv_elem) == 24, "struct futex_waitv");

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
/* Relaxed: set by the probe (ordered by pthread_once), lowered at most twice afterwards. */
static _Atomic int backend;
static _Atomic bool have_waitv;
static _Atomic uint64_t syscalls;
/* Plain futex backend: consecutive slices of this thread that ended with nothing fired. */
static _Thread_local unsigned tl_idle_slices;

/* An error that says "this facility is not for us", for good. */
static bool refused(int err)
{
	return err == ENOSYS || err == EPERM || err == EACCES || err == EOPNOTSUPP;
}

/*
 * SMEM_WAIT_BACKEND=uring|futex_waitv|futex: the most capable backend this process may use
 * (to compare them, or to avoid one); a backend the kernel refuses is still skipped, so
 * "uring" on a kernel without it is futex_waitv or futex. SMEM_NO_URING=1 is "futex_waitv".
 * 0 when unset or unknown: no limit.
 */
static int backend_limit(void)
{
	static const char *const names[] = { "uring", "futex_waitv", "futex" };
	const char *v = getenv("SMEM_WAIT_BACKEND"), *no = getenv("SMEM_NO_URING");
	int i;

	for (i = 0; v && i < 3; i++)
		if (!strcmp(v, names[i]))
			return SMEM__WAIT_URING + i;
	return no && *no && strcmp(no, "0") != 0 ? SMEM__WAIT_FUTEX_WAITV : 0;
}

static void probe(void)
{
	int limit = backend_limit();
	long r;

	/*
	 * futex_waitv with no waiters is EINVAL where it exists and may be used. Anything else
	 * means we cannot sleep in it: ENOSYS (older than 5.16) and EPERM (a seccomp profile)
	 * above all; reading EPERM as "present" made every wait return at once, so idle
	 * waiters spun.
	 */
	r = syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0);
	atomic_store_explicit(&have_waitv, r < 0 && errno == EINVAL && limit != SMEM__WAIT_FUTEX,
			      memory_order_relaxed);
	if (limit <= SMEM__WAIT_URING && smem__wait_uring_probe()) {
		atomic_store_explicit(&backend, SMEM__WAIT_URING, memory_order_relaxed);
		return;
	}
	atomic_store_explicit(&backend,
			      atomic_load_explicit(&have_waitv, memory_order_relaxed) ?
			      SMEM__WAIT_FUTEX_WAITV : SMEM__WAIT_FUTEX,
			      memory_order_relaxed);
}

enum smem__wait_backend smem__wait_backend(void)
{
	pthread_once(&probe_once, probe);
	return (enum smem__wait_backend)atomic_load_explicit(&backend, memory_order_relaxed);
}

/* A backend failed with a refusal at run time: use the next one from now on. */
static void drop_backend(enum smem__wait_backend b)
{
	int e = b;

	if (b == SMEM__WAIT_FUTEX_WAITV)
		atomic_store_explicit(&have_waitv, false, memory_order_relaxed);
	atomic_compare_exchange_strong_explicit(&backend, &e,
		b == SMEM__WAIT_URING && atomic_load_explicit(&have_waitv, memory_order_relaxed) ?
		SMEM__WAIT_FUTEX_WAITV : SMEM__WAIT_FUTEX,
		memory_order_relaxed, memory_order_relaxed);
}

uint64_t smem__wait_syscalls(void)
{
	return atomic_load_explicit(&syscalls, memory_order_relaxed);
}

static void count_syscall(void)
{
	atomic_fetch_add_explicit(&syscalls, 1, memory_order_relaxed);
}

/* Poll the fd items for up to @timeout_ms; mark the ready ones fired. */
static void poll_fds(struct smem__wait_item *items, unsigned n, int timeout_ms, int *fired)
{
	struct pollfd pfd[SMEM__WAIT_MAX];
	unsigned i, k = 0, map[SMEM__WAIT_MAX];

	for (i = 0; i < n; i++) {
		if (items[i].word)
			continue;
		pfd[k].fd = items[i].fd;
		pfd[k].events = items[i].events;
		pfd[k].revents = 0;
		map[k++] = i;
	}
	if (!k)
		return;
	if (poll(pfd, k, timeout_ms) <= 0)
		return;
	for (i = 0; i < k; i++)
		if (pfd[i].revents && !items[map[i]].fired) {
			items[map[i]].fired = true;
			(*fired)++;
		}
}

/* futex_waitv on the words. Fired count, or -1 when futex_waitv was refused. */
static int sleep_waitv(struct smem__wait_item *items, const unsigned *map, unsigned nw,
		       uint64_t slice)
{
	struct waitv_elem wv[SMEM__WAIT_MAX];
	struct timespec ts, *tsp = NULL;
	unsigned i;
	long r;

	for (i = 0; i < nw; i++) {
		wv[i].val = items[map[i]].val;
		wv[i].uaddr = (uint64_t)(uintptr_t)items[map[i]].word;
		wv[i].flags = FUTEX2_SIZE_U32;	/* shared: no FUTEX2_PRIVATE */
		wv[i].reserved = 0;
	}
	if (slice != UINT64_MAX) {
		uint64_t abs = smem__now_ns() + slice;

		ts.tv_sec = (time_t)(abs / 1000000000ull);
		ts.tv_nsec = (long)(abs % 1000000000ull);
		tsp = &ts;
	}
	count_syscall();
	r = syscall(SYS_futex_waitv, wv, nw, 0, tsp, CLOCK_MONOTONIC);
	if (r >= 0 && (unsigned long)r < nw) {
		items[map[r]].fired = true;
		return 1;
	}
	if (r < 0 && errno == EAGAIN) {
		/* Some word no longer holds its value; which one is not said. */
		for (i = 0; i < nw; i++)
			items[map[i]].fired = true;
		return (int)nw;
	}
	return r < 0 && refused(errno) ? -1 : 0;
}

static int wait_futex(struct smem__wait_item *items, unsigned n, uint64_t max_ns)
{
	unsigned i, nw = 0, map[SMEM__WAIT_MAX];
	bool have_fds = false;
	uint64_t slice = max_ns;
	int fired = 0, r;

	for (i = 0; i < n; i++) {
		if (items[i].word)
			map[nw++] = i;
		else
			have_fds = true;
	}
	if (nw == 0) {
		/* Only fds: poll(2) sleeps on them directly. */
		int ms = max_ns == UINT64_MAX ? -1 :
			 (int)(max_ns / 1000000 > INT32_MAX ? INT32_MAX : (max_ns + 999999) / 1000000);

		count_syscall();
		poll_fds(items, n, ms, &fired);
		return fired;
	}
	r = -1;
	if (nw > 1 && atomic_load_explicit(&have_waitv, memory_order_relaxed)) {
		if (have_fds && slice > SMEM__WAIT_POLL_NS)
			slice = SMEM__WAIT_POLL_NS;
		r = sleep_waitv(items, map, nw, slice);
		if (r < 0)
			drop_backend(SMEM__WAIT_FUTEX_WAITV);
		else
			fired = r;
	}
	if (r < 0) {
		/*
		 * One word, or no futex_waitv: sleep on the first word only, in slices when there
		 * are other items, then re-check all. A wake on another item is seen at the end of
		 * the slice. The slice starts at 1 ms and doubles with each slice of this thread
		 * that ended with nothing fired, up to 64 ms, so that an idle waiter costs ~16
		 * wakeups a second instead of a thousand (each costs tens of us of CPU on a busy
		 * VM: a process with several idle RPC waiters stays under 1% of a CPU), and a
		 * busy one still answers within 1 ms. Callers put the word most likely to end an
		 * idle wait first (the RPC: its receive ring), which is woken at once.
		 */
		bool sliced = nw > 1 || have_fds;

		slice = max_ns;
		if (sliced && slice > SLICE_NS << tl_idle_slices)
			slice = SLICE_NS << tl_idle_slices;
		count_syscall();
		r = smem__futex_wait(items[map[0]].word, items[map[0]].val, slice);
		if (r == 0 || r == -EAGAIN) {
			items[map[0]].fired = true;
			fired++;
		}
		for (i = 1; i < nw; i++)
			if (atomic_load_explicit(items[map[i]].word, memory_order_relaxed) !=
			    items[map[i]].val) {
				items[map[i]].fired = true;
				fired++;
			}
		if (have_fds)
			poll_fds(items, n, 0, &fired);
		if (sliced && fired)
			tl_idle_slices = 0;
		else if (sliced && tl_idle_slices < SLICE_DOUBLINGS)
			tl_idle_slices++;
		return fired;
	}
	if (have_fds)
		poll_fds(items, n, 0, &fired);
	return fired;
}

int smem__wait_many(struct smem__wait_item *items, unsigned n, uint64_t max_ns)
{
	unsigned i;

	if (n > SMEM__WAIT_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		items[i].fired = false;
	if (max_ns == 0)
		return 0;
	if (n == 0) {
		struct timespec ts = {
			.tv_sec = (time_t)(max_ns / 1000000000ull),
			.tv_nsec = (long)(max_ns % 1000000000ull),
		};

		if (max_ns == UINT64_MAX)
			return -EINVAL;	/* nothing could ever wake us */
		nanosleep(&ts, NULL);
		return 0;
	}
	/* One word and no fd: one FUTEX_WAIT whatever the backend, nothing to batch. */
	if (n == 1 && items[0].word)
		return wait_futex(items, n, max_ns);
	if (smem__wait_backend() == SMEM__WAIT_URING) {
		int r;

		count_syscall();
		r = smem__wait_uring(items, n, max_ns);
		if (r >= 0)
			return r;
		if (refused(-r) || r == -EINVAL)
			drop_backend(SMEM__WAIT_URING);
		else if (r != -EBUSY)
			return 0;	/* transient (-ENOMEM...): the caller looks and waits again */
		/* No ring for this thread, or io_uring refused now: the futexes this time. */
	}
	return wait_futex(items, n, max_ns);
}

/* ---- sets --------------------------------------------------------------------------------- */

static int set_full(struct smem__wait_set *ws)
{
	ws->err = -E2BIG;
	return -E2BIG;
}

int smem__wait_set_word(struct smem__wait_set *ws, _Atomic uint32_t *word, uint32_t val)
{
	struct smem__wait_item *it;

	if (ws->n >= ws->cap)
		return set_full(ws);
	it = &ws->it[ws->n++];
	it->word = word;
	it->val = val;
	it->fd = -1;
	it->events = 0;
	it->fired = false;
	return 0;
}

int smem__wait_set_fd(struct smem__wait_set *ws, int fd, short events)
{
	struct smem__wait_item *it;

	if (ws->n >= ws->cap)
		return set_full(ws);
	it = &ws->it[ws->n++];
	it->word = NULL;
	it->val = 0;
	it->fd = fd;
	it->events = events;
	it->fired = false;
	return 0;
}

int smem__wait_set_sleep(struct smem__wait_set *ws, uint64_t max_ns)
{
	if (ws->err)
		return ws->err;
	return smem__wait_many(ws->it, ws->n, max_ns);
}

/* ---- the loop ------------------------------------------------------------------------------ */

int smem__wait_for(struct smem__waiter *w)
{
	const bool adapt = w->spin.ns == SMEM__SPIN_AUTO;
	uint64_t spin = smem__spin_budget(&w->spin), start = 0, max;
	unsigned i;
	int ret, fired;

	if (spin || adapt)
		start = smem__now_ns();
	ret = -EAGAIN;
	if (spin && start < w->deadline) {	/* no time left: straight to the last look */
		for (i = 1;; i++) {
			smem__cpu_relax();
			ret = w->poll(w);
			if (ret != -EAGAIN)
				goto out;
			if (i % LOOKS_PER_CLOCK == 0) {
				uint64_t now = smem__now_ns();

				if (now - start >= spin || now >= w->deadline)
					break;
			}
		}
	}
	for (;;) {
		max = smem__remaining_ns(w->deadline);
		ret = w->arm(w, &max);
		if (ret == -EAGAIN && max == 0) {
			/* The time is up, or arm saw something that needs a look, not a sleep. */
			if (smem__remaining_ns(w->deadline) == 0)
				ret = -ETIMEDOUT;
			w->disarm(w, -1);
			if (ret == -EAGAIN)
				ret = w->poll(w);
			if (ret != -EAGAIN)
				break;
			continue;
		}
		if (ret != -EAGAIN) {
			w->disarm(w, -1);
			break;
		}
		fired = smem__wait_set_sleep(w->set, max);
		w->disarm(w, fired < 0 ? -1 : fired);	/* -E2BIG: it did not sleep */
		if (fired < 0) {
			ret = fired;	/* -E2BIG: the set could not hold what wakes us */
			break;
		}
		ret = w->poll(w);
		if (ret != -EAGAIN)
			break;
	}
out:
	/* A shutdown teaches nothing; a timeout means the peer was idle. */
	if (adapt && ret != -ESHUTDOWN) {
		uint64_t t = ret != -ETIMEDOUT ? smem__now_ns() - start : UINT64_MAX;

		atomic_store_explicit(w->spin.learned,
				      smem__spin_next(atomic_load_explicit(w->spin.learned,
									   memory_order_relaxed),
						      t, w->spin.cap),
				      memory_order_relaxed);
	}
	return ret;
}
