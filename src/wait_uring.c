/* SPDX-License-Identifier: MIT */
/*
 * The wait engine's io_uring backend (see wait.h): many futex words and fds, one sleep.
 *
 * io_uring protocol, per thread:
 *   - every wait is a generation g; item i is submitted with user_data g << 8 | i;
 *   - the requests of a wait that are still armed when it returns stay armed ("stale") until
 *     the next wait, whose first SQE is an ASYNC_CANCEL matching any request of the ring. The
 *     cancel runs synchronously at submission, before the new generation's SQEs are issued
 *     (SQEs are issued in order), so it only hits the stale ones. It carries CANCEL_ALL as
 *     well as CANCEL_ANY: with ANY alone the kernel (io_cancel_remove) stops at the first
 *     request it tries, and a futex wait that was woken but whose completion has not run yet
 *     cannot be cancelled, so every stale request behind it stayed armed, the CQE count below
 *     was never reached and the wait slept out its whole timeout (the 50 ms tail of
 *     `ringbench rpc --wait block --channels 8 --inflight 64`);
 *   - each stale request posts exactly one CQE (cancelled, or completed meanwhile) and the
 *     cancel one more, so waiting for stale + 1 + 1 CQEs returns when, and only when, one of
 *     the new requests completed too (or the timeout hit): one io_uring_enter per sleep;
 *   - CQEs of an older generation only decrement the stale count.
 *
 * Liburing 2.3 (Debian 12) has no futex helpers and its uapi header lacks the opcodes; they
 * are defined here from the kernel's include/uapi/linux/io_uring.h and io_uring/futex.c
 * (io_futex_prep): sqe->fd = futex2 flags, sqe->addr = the futex, sqe->addr2 = the expected
 * value, sqe->addr3 = the wake mask, sqe->len = 0, sqe->futex_flags (the rw_flags union) = 0.
 */
#include <errno.h>
#include <liburing.h>
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

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT	51
#define IORING_OP_FUTEX_WAKE	52
#define IORING_OP_FUTEX_WAITV	53
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32		0x02
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE		128	/* not used: our words are shared between processes */
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY	0xffffffffu
#endif
#define URING_ENTRIES	256u
#define UD_CANCEL	(1ull << 63)
_Static_assert(SMEM__WAIT_MAX + 1 <= URING_ENTRIES, "a wait's SQEs and its cancel fit the SQ");
_Static_assert(SMEM__WAIT_MAX <= 256, "item index in the low 8 bits of user_data");

struct waiter {
	struct io_uring ring;
	uint32_t gen;
	unsigned stale;		/* submitted requests whose CQE we have not seen */
};

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t waiter_key;
static _Thread_local struct waiter *tl_waiter;

/*
 * liburing maps a ring with raw mmap system calls that ThreadSanitizer does not see, so when a
 * thread's ring is unmapped at its exit and a new thread's ring lands at the same address,
 * TSan takes the new owner's accesses for races with the old one's. The kernel orders the
 * unmap before the new map; tell TSan so (a release before the unmap, an acquire after the
 * map, on one object).
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char ring_reuse;
#define RING_UNMAPPING() __tsan_release(&ring_reuse)
#define RING_MAPPED() __tsan_acquire(&ring_reuse)
#else
#define RING_UNMAPPING() ((void)0)
#define RING_MAPPED() ((void)0)
#endif

static void prep_futex_wait(struct io_uring_sqe *sqe, _Atomic uint32_t *word, uint32_t val)
{
	io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32, (void *)word, 0, val);
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
}

static void waiter_free(void *p)
{
	struct waiter *w = p;

	if (!w)
		return;
	RING_UNMAPPING();
	io_uring_queue_exit(&w->ring);	/* the kernel cancels whatever is still armed */
	free(w);
}

/*
 * Does io_uring work here, with futex waits? A FUTEX_WAIT on a word that does not hold the
 * expected value completes at once with -EAGAIN when supported, -EINVAL when not.
 */
bool smem__wait_uring_probe(void)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	_Atomic uint32_t word = 1;
	bool ok = false;

	if (io_uring_queue_init(4, &ring, 0) < 0)
		return false;	/* ENOSYS, EPERM (seccomp, io_uring_disabled), ENOMEM */
	RING_MAPPED();
	if (!(ring.features & IORING_FEAT_EXT_ARG))
		goto out;	/* we need the timeout in the enter itself */
	sqe = io_uring_get_sqe(&ring);
	if (!sqe)
		goto out;
	prep_futex_wait(sqe, &word, 0);
	sqe->user_data = 1;
	if (io_uring_submit_and_wait(&ring, 1) < 0)
		goto out;
	if (io_uring_peek_cqe(&ring, &cqe) == 0) {
		ok = cqe->res == -EAGAIN;
		io_uring_cqe_seen(&ring, cqe);
	}
out:
	RING_UNMAPPING();
	io_uring_queue_exit(&ring);
	return ok;
}

static void key_create(void)
{
	pthread_key_create(&waiter_key, waiter_free);
}

static struct waiter *get_waiter(void)
{
	struct waiter *w = tl_waiter;

	if (w)
		return w;
	pthread_once(&key_once, key_create);
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	if (io_uring_queue_init(URING_ENTRIES, &w->ring, 0) < 0) {
		free(w);
		return NULL;
	}
	RING_MAPPED();
	tl_waiter = w;
	pthread_setspecific(waiter_key, w);	/* freed at thread exit */
	return w;
}

void smem__wait_thread_release(void)
{
	struct waiter *w = tl_waiter;

	if (!w)
		return;
	tl_waiter = NULL;
	pthread_setspecific(waiter_key, NULL);
	waiter_free(w);
}

/* Reap every CQE; mark items of generation @gen fired. Returns how many fired. */
static int reap(struct waiter *w, struct smem__wait_item *items, unsigned n, uint32_t gen)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int fired = 0;

	io_uring_for_each_cqe(&w->ring, head, cqe) {
		uint64_t ud = cqe->user_data;

		seen++;
		if (ud == UD_CANCEL)
			continue;
		if (w->stale)
			w->stale--;
		if ((uint32_t)(ud >> 8) != gen || (ud & 0xff) >= n)
			continue;
		if (cqe->res == -ECANCELED)
			continue;
		/* Woken, value already changed (-EAGAIN), fd ready or fd error: re-check. */
		if (!items[ud & 0xff].fired) {
			items[ud & 0xff].fired = true;
			fired++;
		}
	}
	io_uring_cq_advance(&w->ring, seen);
	return fired;
}

static int wait_uring(struct waiter *w, struct smem__wait_item *items, unsigned n,
		      uint64_t max_ns)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe = NULL;
	struct io_uring_sqe *sqe;
	unsigned i, wait_nr = 1;
	uint32_t gen;
	int ret, fired;

	/* Whatever is left in the CQ belongs to older generations. */
	reap(w, items, 0, 0);
	if (++w->gen >= (1u << 24))
		w->gen = 1;
	gen = w->gen;
	if (w->stale) {
		sqe = io_uring_get_sqe(&w->ring);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
		sqe->user_data = UD_CANCEL;
		wait_nr += w->stale + 1;
	}
	for (i = 0; i < n; i++) {
		sqe = io_uring_get_sqe(&w->ring);
		if (!sqe)
			return -EBUSY;	/* cannot happen: n + 1 <= URING_ENTRIES */
		if (items[i].word)
			prep_futex_wait(sqe, items[i].word, items[i].val);
		else
			io_uring_prep_poll_add(sqe, items[i].fd, (unsigned)items[i].events);
		sqe->user_data = (uint64_t)gen << 8 | i;
	}
	w->stale += n;
	if (max_ns != UINT64_MAX) {
		ts.tv_sec = (long long)(max_ns / 1000000000ull);
		ts.tv_nsec = (long long)(max_ns % 1000000000ull);
		tsp = &ts;
	}
	ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, wait_nr, tsp, NULL);
	fired = reap(w, items, n, gen);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && !fired)
		return ret;
	return fired;
}

int smem__wait_uring(struct smem__wait_item *items, unsigned n, uint64_t max_ns)
{
	struct waiter *w = get_waiter();

	return w ? wait_uring(w, items, n, max_ns) : -EBUSY;
}
