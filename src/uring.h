/* SPDX-License-Identifier: MIT */
/*
 * The waiter: sleep on many things at once, in one system call.
 *
 * A thread hands smem__wait_many() a set of items: futex words with the value they must still
 * hold to sleep (shared 32-bit futexes: ring words in shared memory, or the library's own
 * process-local words), and fds to poll (a peer's pidfd). It returns when any item fired or
 * the time ran out.
 *
 * Backends, probed once per process at first use:
 *   1. io_uring: one IORING_OP_FUTEX_WAIT per word, one IORING_OP_POLL_ADD per fd, submitted
 *      together with the wait in a single io_uring_enter(2) (the timeout travels as the
 *      enter's EXT_ARG). The thread's ring is created at first use and lives until the thread
 *      exits (or smem__wait_thread_release()). Requests still armed when a wait returns are
 *      cancelled by the first SQE of the next wait, so each sleep costs one system call.
 *   2. futex_waitv(2) on the words, in slices of SMEM__WAIT_POLL_NS when there are fds, which
 *      are then checked with poll(2) and a zero timeout.
 *   3. one FUTEX_WAIT on the first word, in slices (kernels without futex_waitv).
 * io_uring is skipped when SMEM_NO_URING=1 is set, when io_uring_setup fails (ENOSYS, EPERM
 * from seccomp, kernel.io_uring_disabled) or when the kernel rejects the futex opcodes
 * (EINVAL: older than 6.7).
 */
#ifndef SMEM_URING_H
#define SMEM_URING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
 * user_data (uring.c asserts both).
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
 * fired items (>= 1), 0 on timeout, or -EINVAL (n > SMEM__WAIT_MAX). A spurious return of 0
 * before the time is up is possible; callers re-check their conditions and loop.
 */
int smem__wait_many(struct smem__wait_item *items, unsigned n, uint64_t max_ns);

/* The backend this process uses (probing on first call). */
enum smem__wait_backend smem__wait_backend(void);

/* Counters for benchmarks: io_uring_enter / futex_waitv calls made by all threads. */
uint64_t smem__wait_syscalls(void);

/* Drop the calling thread's io_uring (it is recreated on demand). Harmless at any time. */
void smem__wait_thread_release(void);

#endif
