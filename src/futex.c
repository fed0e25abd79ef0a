/* SPDX-License-Identifier: MIT */
/*
 * Time and futex helpers. The futex words live in shared memory mapped by several processes,
 * so every operation is the shared (non-PRIVATE) kind.
 */
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

uint64_t smem__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t smem__deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return UINT64_MAX;
	return smem__now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

uint64_t smem__remaining_ns(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return UINT64_MAX;
	now = smem__now_ns();
	return deadline > now ? deadline - now : 0;
}

int smem__futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t max_ns)
{
	struct timespec ts, *tsp = NULL;
	long ret;

	if (max_ns != UINT64_MAX) {
		if (max_ns == 0)
			return -ETIMEDOUT;
		ts.tv_sec = (time_t)(max_ns / 1000000000ull);
		ts.tv_nsec = (long)(max_ns % 1000000000ull);
		tsp = &ts;
	}
	/* FUTEX_WAIT takes a relative timeout. */
	ret = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, val, tsp, NULL, 0);
	if (ret == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	return -errno;
}

int smem__futex_wake(_Atomic uint32_t *addr, int n)
{
	long ret = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL, NULL, 0);

	return ret < 0 ? -errno : (int)ret;
}
