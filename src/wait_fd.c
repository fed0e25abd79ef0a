/* SPDX-License-Identifier: MIT */
/*
 * The wait engine's pollable waits (see "POLLABLE WAITS" in wait.h): a set of futex words and
 * fds armed once, reported through one fd that an event loop polls, with no thread of ours
 * in between.
 *
 * io_uring (the engine's first backend): each waitfd owns a small ring. Arming submits one
 * IORING_OP_FUTEX_WAIT per word, one POLL_ADD per fd and an optional TIMEOUT with a single
 * io_uring_enter(2) that does not wait; the ring's fd is readable as soon as one of them posts
 * a CQE (woken, value already changed, fd ready, time up). Disarming cancels what is still
 * armed (ASYNC_CANCEL with ANY|ALL, as wait_uring.c does: a woken futex wait whose completion
 * is pending cannot be cancelled but completes by itself) and reaps every CQE, waiting for
 * the ones still due, so that after a disarm the fd is not readable and nothing of the old
 * arming can fire later.
 *
 * A futex wake completes the wait through task work of the thread that submitted it; with the
 * default notification (TWA_SIGNAL) that thread is interrupted wherever it sleeps (epoll_wait
 * included) to post the CQE, so the fd becomes readable without help.
 *
 * Elsewhere (no io_uring futex waits: old kernels, seccomp, SMEM_NO_URING=1): one helper
 * thread per waitfd sleeps on the armed set with the engine's other backends and writes an
 * eventfd when it fires. Disarming bumps a private word that is part of every set the thread
 * sleeps on, and waits until the thread is idle again.
 */
#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "wait.h"

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT	51
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32		0x02
#endif
#define FD_ENTRIES	(SMEM__WAITFD_MAX + 2u)	/* items, a timeout, a cancel */
#define UD_CANCEL	(1ull << 63)
#define UD_TIMEOUT	(1ull << 62)

enum { T_IDLE, T_ARMED, T_STOP };

struct smem__waitfd {
	bool uring;
	/* io_uring */
	struct io_uring ring;
	unsigned outstanding;		/* submitted requests whose CQE we have not seen */
	uint32_t fired;			/* items of the last arming that fired (bit i: item i) */
	struct __kernel_timespec ts;	/* a TIMEOUT's time must live until it completes */
	/* helper thread */
	int efd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state;			/* T_*, under lock */
	_Atomic uint32_t kick;		/* bumped by disarm: part of every set the thread sleeps on */
	struct smem__wait_item items[SMEM__WAITFD_MAX + 1];
	unsigned n;
	uint64_t max_ns;
};

/* ---- io_uring -------------------------------------------------------------------------- */

/* Reap every posted CQE. Returns how many. */
static unsigned reap(struct smem__waitfd *w)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(&w->ring, head, cqe) {
		if (cqe->user_data != UD_CANCEL && w->outstanding)
			w->outstanding--;
		if (cqe->user_data < SMEM__WAITFD_MAX && cqe->res != -ECANCELED)
			w->fired |= 1u << cqe->user_data;
		seen++;
	}
	io_uring_cq_advance(&w->ring, seen);
	return seen;
}

static int uring_arm(struct smem__waitfd *w, const struct smem__wait_item *items, unsigned n,
		     uint64_t max_ns)
{
	struct io_uring_sqe *sqe;
	unsigned i;
	int ret;

	w->fired = 0;
	for (i = 0; i < n; i++) {
		sqe = io_uring_get_sqe(&w->ring);
		if (items[i].word) {
			io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32,
					 (void *)items[i].word, 0, items[i].val);
			sqe->addr3 = 0xffffffffu;	/* FUTEX_BITSET_MATCH_ANY */
		} else {
			io_uring_prep_poll_add(sqe, items[i].fd, (unsigned)items[i].events);
		}
		sqe->user_data = i;
	}
	if (max_ns != UINT64_MAX) {
		w->ts.tv_sec = (long long)(max_ns / 1000000000ull);
		w->ts.tv_nsec = (long long)(max_ns % 1000000000ull);
		sqe = io_uring_get_sqe(&w->ring);
		io_uring_prep_timeout(sqe, &w->ts, 0, 0);
		sqe->user_data = UD_TIMEOUT;
		n++;
	}
	ret = io_uring_submit(&w->ring);
	if (ret < 0)
		return ret;
	w->outstanding += (unsigned)ret;
	return ret == (int)n ? 0 : -EBUSY;
}

static void uring_disarm(struct smem__waitfd *w)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;

	reap(w);
	if (!w->outstanding)
		return;
	sqe = io_uring_get_sqe(&w->ring);
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
	sqe->user_data = UD_CANCEL;
	/*
	 * Each outstanding request posts one CQE (cancelled or completed meanwhile), and the
	 * cancel one more. A woken futex wait completes through our task work, which the wait
	 * below runs.
	 */
	if (io_uring_submit_and_wait(&w->ring, w->outstanding + 1) < 0) {
		/* Interrupted: wait for the rest one by one. */
	}
	while (reap(w), w->outstanding) {
		int r = io_uring_wait_cqe(&w->ring, &cqe);

		if (r < 0 && r != -EINTR)
			break;	/* cannot happen with requests outstanding; never spin */
	}
	reap(w);
}

/* ---- the helper thread ---------------------------------------------------------------- */

/*
 * Sleep on the armed set until an item fires or its time is up (then signal the eventfd), or
 * until disarm kicks us (no signal). The engine may return early with nothing fired (a slice
 * of the futex backends, a spurious wake): sleep again then, or the fd would fire for nothing.
 */
static void helper_sleep(struct smem__waitfd *w)
{
	uint64_t deadline = w->max_ns == UINT64_MAX ? UINT64_MAX : smem__now_ns() + w->max_ns;
	uint64_t one = 1, left;
	int r;

	for (;;) {
		left = smem__remaining_ns(deadline);
		r = left ? smem__wait_many(w->items, w->n + 1, left) : 0;
		/*
		 * The kick word is the last item; its value was taken when arming. Its own value
		 * decides, not its fired flag: futex_waitv's EAGAIN marks every item fired.
		 */
		if (atomic_load_explicit(&w->kick, memory_order_relaxed) != w->items[w->n].val)
			return;
		if (r != 0 || smem__remaining_ns(deadline) == 0)
			break;
	}
	if (write(w->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is at its maximum, readable anyway. */
	}
}

static void *helper_main(void *arg)
{
	struct smem__waitfd *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->state == T_IDLE)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->state == T_STOP)
			break;
		pthread_mutex_unlock(&w->lock);
		helper_sleep(w);
		pthread_mutex_lock(&w->lock);
		if (w->state == T_ARMED)
			w->state = T_IDLE;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int helper_arm(struct smem__waitfd *w, const struct smem__wait_item *items, unsigned n,
		      uint64_t max_ns)
{
	pthread_mutex_lock(&w->lock);
	memcpy(w->items, items, n * sizeof(*items));
	w->items[n] = (struct smem__wait_item){
		.word = &w->kick, .fd = -1,
		.val = atomic_load_explicit(&w->kick, memory_order_relaxed),
	};
	w->n = n;
	w->max_ns = max_ns;
	for (unsigned i = 0; i < n; i++)
		w->items[i].fired = false;
	w->state = T_ARMED;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static void helper_disarm(struct smem__waitfd *w)
{
	uint64_t v;

	pthread_mutex_lock(&w->lock);
	while (w->state == T_ARMED) {
		atomic_fetch_add_explicit(&w->kick, 1, memory_order_relaxed);
		smem__futex_wake(&w->kick, INT_MAX);
		pthread_cond_wait(&w->cond, &w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	if (read(w->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was signalled. */
	}
}

/* ---- the interface --------------------------------------------------------------------- */

int smem__waitfd_open(struct smem__waitfd **ret)
{
	struct smem__waitfd *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	int err;

	if (!w)
		return -ENOMEM;
	w->efd = -1;
	if (smem__wait_backend() == SMEM__WAIT_URING &&
	    io_uring_queue_init(FD_ENTRIES, &w->ring, 0) == 0) {
		w->uring = true;
		*ret = w;
		return 0;
	}
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		err = -errno;
		free(w);
		return err;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	/*
	 * The helper takes no signals: they belong to the application's threads. Started, not
	 * just created, when we return: the caller may fork next (fork.h).
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = smem__thread_start(&w->thread, helper_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		close(w->efd);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		free(w);
		return err;
	}
	*ret = w;
	return 0;
}

int smem__waitfd_fd(const struct smem__waitfd *w)
{
	return w->uring ? w->ring.ring_fd : w->efd;
}

bool smem__waitfd_threaded(const struct smem__waitfd *w)
{
	return !w->uring;
}

int smem__waitfd_arm(struct smem__waitfd *w, const struct smem__wait_item *items, unsigned n,
		     uint64_t max_ns)
{
	int ret;

	if (n > SMEM__WAITFD_MAX || (n == 0 && max_ns == UINT64_MAX))
		return -EINVAL;
	smem__waitfd_disarm(w);
	ret = w->uring ? uring_arm(w, items, n, max_ns) : helper_arm(w, items, n, max_ns);
	if (ret)
		smem__waitfd_disarm(w);
	return ret;
}

void smem__waitfd_disarm(struct smem__waitfd *w)
{
	if (w->uring)
		uring_disarm(w);
	else
		helper_disarm(w);
}

uint32_t smem__waitfd_fired(const struct smem__waitfd *w)
{
	uint32_t m = 0;
	unsigned i;

	if (w->uring)
		return w->fired;
	/* Disarmed: the helper is idle and its copy of the items holds the last sleep's flags. */
	for (i = 0; i < w->n; i++)
		if (w->items[i].fired)
			m |= 1u << i;
	return m;
}

void smem__waitfd_close(struct smem__waitfd *w)
{
	if (!w)
		return;
	smem__waitfd_disarm(w);
	if (w->uring) {
		io_uring_queue_exit(&w->ring);
	} else {
		pthread_mutex_lock(&w->lock);
		w->state = T_STOP;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		close(w->efd);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
	}
	free(w);
}

int smem__poller_alloc(size_t size, void **ret)
{
	struct smem__waitfd **p = calloc(1, size);
	int err;

	if (!p)
		return -ENOMEM;
	err = smem__waitfd_open(p);	/* the first member (wait.h) */
	if (err) {
		free(p);
		return err;
	}
	*ret = p;
	return 0;
}

void smem__poller_free(void *p)
{
	if (!p)
		return;
	smem__waitfd_close(*(struct smem__waitfd **)p);
	free(p);
}
