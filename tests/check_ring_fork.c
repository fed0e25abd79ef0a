/* SPDX-License-Identifier: MIT */
/*
 * smem_ring handles inherited across fork: a child that closes, claims through or dies holding
 * a node through its parent's handle leaves the ring and the parent's handle working.
 */
#include <poll.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring_int.h"
#include "util/ringutil.h"
#include "util/testutil.h"

/* Wait up to @ms for @pid; kill -9 it if it is still running then. The exit status, or -1. */
static int wait_within(pid_t pid, long long ms)
{
	long long t0 = t_now_ms();
	int st;

	while (t_now_ms() - t0 < ms) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(2000);
	}
	t_kill9(pid);
	return -1;
}

static int close_inherited_child(void *p)
{
	smem_ring_close(p);	/* the parent's handle, inherited */
	return 0;
}

START_TEST(ring_child_closing_inherited_owner_handle_leaves_ring_running)
{
	char name[128], b;
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 8);
	pid_t pid;

	pid = t_fork(close_inherited_child, r);
	ck_assert_int_eq(wait_within(pid, 2000), 0);
	ck_assert(!smem_region_shutting_down(smem__ring_region(r)));
	ck_assert_int_eq(smem_ring_write(r, "a", 1, 0), 0);
	ck_assert_int_eq(smem_ring_read(r, &b, 1, 0), 1);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_child_closing_inherited_handle_with_eventfd_returns_promptly)
{
	char name[128], b;
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 8), *o = t_ring_open(name);
	struct pollfd pfd;
	pid_t pid;

	pfd.fd = smem_ring_fd(o);
	pfd.events = POLLIN;
	ck_assert_int_ge(pfd.fd, 0);
	pid = t_fork(close_inherited_child, o);
	ck_assert_int_eq(wait_within(pid, 2000), 0);
	/* the parent's bridge still runs */
	ck_assert_int_eq(smem_ring_write(r, "a", 1, 0), 0);
	ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
	ck_assert_int_eq(smem_ring_read(o, &b, 1, 0), 1);
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

struct inh {
	struct smem_ring *h;
	int go[2], ready[2];
};

/* Reserves with the inherited handle, commits when told: a live but slow writer. */
static int inherited_writer_child(void *p)
{
	struct inh *a = p;
	struct smem_ring_slot s;
	char c;

	if (smem_ring_reserve_write(a->h, &s, 1000))
		return 10;
	memcpy(s.data, "child", 5);
	if (write(a->ready[1], "k", 1) != 1 || read(a->go[0], &c, 1) != 1)
		return 11;
	return smem_ring_commit(a->h, &s, 5) == 0 ? 0 : 12;
}

START_TEST(ring_child_claim_through_inherited_handle_survives_parent_closing_it)
{
	char name[128], got[8], c;
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 8);
	struct inh a = { .h = t_ring_open(name) };
	pid_t pid;

	ck_assert_int_eq(pipe(a.go), 0);
	ck_assert_int_eq(pipe(a.ready), 0);
	pid = t_fork(inherited_writer_child, &a);
	ck_assert_int_eq(read(a.ready[0], &c, 1), 1);
	/* The handle's parent-side participant goes away; the child that uses it lives on. */
	smem_ring_close(a.h);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 100), -ETIMEDOUT);
	ck_assert_uint_eq(t_ring_stats(r).drops_recovered, 0);
	ck_assert_int_eq(write(a.go[1], "g", 1), 1);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 2000), 5);
	ck_assert_mem_eq(got, "child", 5);
	ck_assert_int_eq(wait_within(pid, 2000), 0);
	close(a.go[0]);
	close(a.go[1]);
	close(a.ready[0]);
	close(a.ready[1]);
	smem_ring_close(r);
}
END_TEST

/* Reads with the inherited handle and is killed holding the node. */
static int inherited_reader_child(void *p)
{
	struct inh *a = p;
	struct smem_ring_slot s;

	if (smem_ring_reserve_read(a->h, &s, 1000))
		return 10;
	if (write(a->ready[1], "k", 1) != 1)
		return 11;
	pause();
	return 0;
}

START_TEST(ring_child_killed_holding_a_node_through_inherited_handle_gives_it_back)
{
	char name[128], got[8], c;
	struct inh a = { .h = t_ring_new(name, sizeof(name), 2, 8) };
	pid_t pid;

	ck_assert_int_eq(smem_ring_write(a.h, "A", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(a.h, "B", 1, 0), 0);
	ck_assert_int_eq(pipe(a.ready), 0);
	pid = t_fork(inherited_reader_child, &a);
	ck_assert_int_eq(read(a.ready[0], &c, 1), 1);
	t_kill9(pid);
	/* The parent, whose handle the child used, lives on: the child's claim is still dead. */
	ck_assert_int_eq(smem_ring_write(a.h, "C", 1, 2000), 0);
	ck_assert_uint_eq(t_ring_stats(a.h).nodes_reclaimed, 1);
	ck_assert_int_eq(smem_ring_read(a.h, got, sizeof(got), 0), 1);
	ck_assert_int_eq(got[0], 'B');
	close(a.ready[0]);
	close(a.ready[1]);
	smem_ring_close(a.h);
}
END_TEST

static Suite *ring_fork_suite(void)
{
	Suite *s = suite_create("ring_fork");
	TCase *tc;

	tc = t_ring_tcase(s, "fork", 20);
	add_fork_test(tc, ring_child_closing_inherited_owner_handle_leaves_ring_running);
	add_fork_test(tc, ring_child_closing_inherited_handle_with_eventfd_returns_promptly);
	add_fork_test(tc, ring_child_claim_through_inherited_handle_survives_parent_closing_it);
	add_fork_test(tc, ring_child_killed_holding_a_node_through_inherited_handle_gives_it_back);
	return s;
}

T_MAIN(ring_fork_suite)
