/* SPDX-License-Identifier: MIT */
/*
 * Fork handling (fork.c): the process generation changes in every child before any module's
 * child handler runs, and the modules' handlers run in rank order (prepare lowest rank first,
 * parent and child highest first). The test registers its own handlers at two ranks
 * nothing in this process has taken (the lock's, registered on a first lock attach, which this
 * suite never makes, and the broker client's, still unused): were either taken, the log of
 * calls would not match. live.c's handlers run as always around them.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "util/testutil.h"

/* What the handlers saw, in call order: "P1 P2 p2 p1" etc. Written by one thread only. */
static char t_log[128];
static unsigned t_child_gen[2];

static void t_note(const char *what)
{
	size_t n = strlen(t_log);

	snprintf(t_log + n, sizeof(t_log) - n, "%s%s", n ? " " : "", what);
}

static void a_prepare(void) { t_note("Pa"); }
static void a_parent(void) { t_note("pa"); }
static void a_child(void) { t_child_gen[0] = smem__fork_generation(); t_note("ca"); }
static void b_prepare(void) { t_note("Pb"); }
static void b_parent(void) { t_note("pb"); }
static void b_child(void) { t_child_gen[1] = smem__fork_generation(); t_note("cb"); }

static const struct smem__fork_ops ops_a = { a_prepare, a_parent, a_child };
static const struct smem__fork_ops ops_b = { b_prepare, b_parent, b_child };
static const struct smem__fork_ops ops_x = { b_child, b_child, b_child };

START_TEST(fork_handlers_run_in_rank_order_and_the_child_sees_a_new_generation)
{
	unsigned gen = smem__fork_generation();
	int p[2], st;
	char buf[sizeof(t_log)] = "";
	unsigned cg[2] = { 0, 0 };
	pid_t pid;

	/* Registered b before a: the order must come from the ranks, not from registration. */
	smem__fork_register(SMEM__FORK_BROKER, &ops_b);
	smem__fork_register(SMEM__FORK_LOCK, &ops_a);
	/* A second registration at a taken rank is ignored. */
	smem__fork_register(SMEM__FORK_LOCK, &ops_x);
	ck_assert_int_eq(pipe(p), 0);
	t_log[0] = '\0';
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		ssize_t w1 = write(p[1], t_log, sizeof(t_log));
		ssize_t w2 = write(p[1], t_child_gen, sizeof(t_child_gen));

		_exit(w1 == (ssize_t)sizeof(t_log) && w2 == (ssize_t)sizeof(t_child_gen) &&
		      smem__fork_generation() == gen + 1 ? 0 : 1);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), (ssize_t)sizeof(buf));
	ck_assert_int_eq(read(p[0], cg, sizeof(cg)), (ssize_t)sizeof(cg));
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	/* Prepare a (lock) before b (broker); the child b before a, both in the new generation. */
	ck_assert_str_eq(buf, "Pa Pb cb ca");
	ck_assert_uint_eq(cg[0], gen + 1);
	ck_assert_uint_eq(cg[1], gen + 1);
	/* The parent: its handlers b before a, and its generation unchanged. */
	ck_assert_str_eq(t_log, "Pa Pb pb pa");
	ck_assert_uint_eq(smem__fork_generation(), gen);
}
END_TEST

START_TEST(fork_grandchild_generation_differs_from_child_and_parent)
{
	unsigned gen = smem__fork_generation();
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pid_t g;

		if (smem__fork_generation() != gen + 1)
			_exit(1);
		g = fork();
		if (g < 0)
			_exit(2);
		if (g == 0)
			_exit(smem__fork_generation() == gen + 2 ? 0 : 3);
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st))
			_exit(4);
		_exit(WEXITSTATUS(st));
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

static Suite *fork_suite(void)
{
	Suite *s = suite_create("fork");
	TCase *tc = tcase_create("order");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, fork_handlers_run_in_rank_order_and_the_child_sees_a_new_generation);
	tcase_add_test(tc, fork_grandchild_generation_differs_from_child_and_parent);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(fork_suite)
