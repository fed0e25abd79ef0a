/* SPDX-License-Identifier: MIT */
/*
 * smem_ring_read_many / smem_ring_write_many: batches pack messages in order, stop where the
 * ring or the caller's buffer ends without losing a message, and report errors as the single
 * calls do.
 */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/ringutil.h"
#include "util/testutil.h"

START_TEST(ring_write_many_then_read_many_keeps_order_and_lengths)
{
	char name[128], out[64];
	const char src[] = "aabbbcdddd";
	size_t wl[] = { 2, 3, 0, 1, 4 }, rl[8];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 8, 8);

	ck_assert_int_eq(smem_ring_write_many(r, src, wl, 5, 0), 5);
	memset(rl, 0xff, sizeof(rl));
	ck_assert_int_eq(smem_ring_read_many(r, out, sizeof(out), rl, 8, 0), 5);
	ck_assert_uint_eq(rl[0], 2);
	ck_assert_uint_eq(rl[1], 3);
	ck_assert_uint_eq(rl[2], 0);	/* an empty message is a message */
	ck_assert_uint_eq(rl[3], 1);
	ck_assert_uint_eq(rl[4], 4);
	ck_assert_mem_eq(out, "aabbbcdddd", 10);
	ck_assert_int_eq(smem_ring_read_many(r, out, sizeof(out), rl, 8, 0), -ETIMEDOUT);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_read_many_stops_at_max_and_before_a_message_that_does_not_fit)
{
	char name[128], out[16];
	size_t rl[4];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 8, 8);

	ck_assert_int_eq(smem_ring_write(r, "12345", 5, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "678", 3, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "abcdefgh", 8, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "z", 1, 0), 0);
	/* max 1: one message, the rest stays */
	ck_assert_int_eq(smem_ring_read_many(r, out, sizeof(out), rl, 1, 0), 1);
	ck_assert_uint_eq(rl[0], 5);
	ck_assert_mem_eq(out, "12345", 5);
	/* 10 bytes of room: "678" fits, "abcdefgh" (8 > 7 left) stays for the next call */
	ck_assert_int_eq(smem_ring_read_many(r, out, 10, rl, 4, 0), 1);
	ck_assert_uint_eq(rl[0], 3);
	ck_assert_int_eq(smem_ring_next_len(r), 8);
	/* a first message longer than the whole buffer: -EMSGSIZE, nothing consumed */
	ck_assert_int_eq(smem_ring_read_many(r, out, 4, rl, 4, 0), -EMSGSIZE);
	ck_assert_int_eq(smem_ring_read_many(r, out, sizeof(out), rl, 4, 0), 2);
	ck_assert_uint_eq(rl[0], 8);
	ck_assert_uint_eq(rl[1], 1);
	ck_assert_mem_eq(out, "abcdefghz", 9);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_write_many_stops_when_the_ring_fills_and_reports_errors)
{
	char name[128], big[16] = { 0 }, b;
	size_t wl[] = { 1, 1, 1, 1, 1 }, bad[] = { 1, 16 };
	struct smem_ring *r = t_ring_new(name, sizeof(name), 3, 8);

	ck_assert_int_eq(smem_ring_write_many(r, "vwxyz", wl, 5, 0), 3);
	ck_assert_int_eq(smem_ring_write_many(r, "yz", wl, 2, 0), -ETIMEDOUT);
	ck_assert_int_eq(smem_ring_write_many(r, "yz", wl, 2, 10), -ETIMEDOUT);
	ck_assert_int_eq(smem_ring_read(r, &b, 1, 0), 1);
	ck_assert_int_eq(b, 'v');
	/* an oversized message after a good one: the good one is written, the next call says why */
	ck_assert_int_eq(smem_ring_write_many(r, big, bad, 2, 0), 1);
	ck_assert_int_eq(smem_ring_read(r, &b, 1, 0), 1);
	ck_assert_int_eq(smem_ring_read(r, &b, 1, 0), 1);
	ck_assert_int_eq(smem_ring_write_many(r, big, bad + 1, 1, 0), -EMSGSIZE);
	ck_assert_int_eq(smem_ring_write_many(NULL, big, wl, 1, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_write_many(r, NULL, wl, 1, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_write_many(r, big, NULL, 1, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_write_many(r, big, wl, 0, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_read_many(NULL, big, 1, wl, 1, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_read_many(r, big, 1, NULL, 1, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_read_many(r, big, 1, wl, 0, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_read_many(r, NULL, 1, wl, 1, 0), -EINVAL);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_read_many_after_shutdown_drains_then_gives_eshutdown)
{
	char name[128], out[16];
	size_t rl[4];
	struct smem_ring *w = t_ring_new(name, sizeof(name), 4, 8), *r = t_ring_open(name);

	ck_assert_int_eq(smem_ring_write(w, "ab", 2, 0), 0);
	smem_ring_close(w);	/* the creator leaves: shut down */
	ck_assert_int_eq(smem_ring_read_many(r, out, sizeof(out), rl, 4, 0), 1);
	ck_assert_mem_eq(out, "ab", 2);
	ck_assert_int_eq(smem_ring_read_many(r, out, sizeof(out), rl, 4, 100), -ESHUTDOWN);
	smem_ring_close(r);
}
END_TEST

/* 20000 messages from a child writing batches of up to 7 to a parent reading up to 5. */
#define XFER 20000u

static int batch_writer_child(void *arg)
{
	struct smem_ring *r = t_ring_open(arg);
	uint32_t buf[7];
	size_t lens[7];
	uint32_t next = 0;

	for (unsigned i = 0; i < 7; i++)
		lens[i] = sizeof(uint32_t);
	while (next < XFER) {
		size_t k = XFER - next < 7 ? XFER - next : 7;
		ssize_t n;

		for (size_t i = 0; i < k; i++)
			buf[i] = next + (uint32_t)i;
		n = smem_ring_write_many(r, buf, lens, k, 5000);
		if (n <= 0)
			return 1;
		next += (uint32_t)n;
	}
	smem_ring_close(r);
	return 0;
}

START_TEST(ring_batches_between_processes_arrive_once_in_order)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 16, 8);
	uint32_t buf[5], expect = 0;
	size_t lens[5];
	pid_t pid;
	int st;

	pid = t_fork(batch_writer_child, name);
	while (expect < XFER) {
		ssize_t n = smem_ring_read_many(r, buf, sizeof(buf), lens, 5, 5000);

		ck_assert_int_gt(n, 0);
		for (ssize_t i = 0; i < n; i++) {
			ck_assert_uint_eq(lens[i], sizeof(uint32_t));
			ck_assert_uint_eq(buf[i], expect++);
		}
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(smem_ring_read_many(r, buf, sizeof(buf), lens, 5, 0), -ETIMEDOUT);
	smem_ring_close(r);
}
END_TEST

static Suite *ring_batch_suite(void)
{
	Suite *s = suite_create("ring_batch");
	TCase *tc;

	tc = t_ring_tcase(s, "batch", 20);
	tcase_add_test(tc, ring_write_many_then_read_many_keeps_order_and_lengths);
	tcase_add_test(tc, ring_read_many_stops_at_max_and_before_a_message_that_does_not_fit);
	tcase_add_test(tc, ring_write_many_stops_when_the_ring_fills_and_reports_errors);
	tcase_add_test(tc, ring_read_many_after_shutdown_drains_then_gives_eshutdown);
	add_fork_test(tc, ring_batches_between_processes_arrive_once_in_order);
	return s;
}

T_MAIN(ring_batch_suite)
