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
#include <stdlib.h>
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

/* ---- the library's threads and fork ----------------------------------------------------- */

static _Atomic uint32_t t_entered, t_stop;
static void *volatile t_sink;

/* A library thread as the broker helper is: it starts, then idles until told to stop. */
static void *idle_thread(void *arg)
{
	atomic_store(&t_entered, 1);
	while (!atomic_load(&t_stop))
		smem__futex_wait(&t_stop, 0, UINT64_MAX);
	return arg;
}

static void *nop_thread(void *arg)
{
	return arg;
}

/* What a child of an smem process does first: start a thread (its broker helper), allocate. */
static int child_starts_a_thread(void)
{
	static const size_t sizes[] = { 16, 100, 152, 1000, 5000, 70000 };
	pthread_t t;
	unsigned i;

	if (pthread_create(&t, NULL, nop_thread, NULL) != 0)
		return 1;
	pthread_join(t, NULL);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		t_sink = malloc(sizes[i]);	/* volatile: the pair is not optimised away */
		if (!t_sink)
			return 2;
		free(t_sink);
	}
	return 0;
}

/*
 * The ASan runtime of GCC 12 takes none of its locks around fork(), and a thread in its
 * start-up holds some (the thread registry's, allocator size classes'): a child forked at
 * that instant slept forever in its first pthread_create(). That hung the ASan build's
 * 4x4 ring stress test, which forks right after its create started the broker helper.
 * smem__thread_start() returns once the thread runs, so a fork right after is safe. Plain
 * builds pass either way (glibc takes its locks around fork); under ASan, a start that did
 * not wait left a child hanging within a few of these rounds.
 */
START_TEST(fork_right_after_a_thread_start_gives_a_child_that_can_start_threads)
{
	unsigned round;

	for (round = 0; round < 40; round++) {
		long long deadline;
		uint32_t entered;
		pthread_t t;
		pid_t pid, w;
		void *ret;
		int st;

		atomic_store(&t_entered, 0);
		atomic_store(&t_stop, 0);
		ck_assert_int_eq(smem__thread_start(&t, idle_thread, &round), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			_exit(child_starts_a_thread());
		deadline = t_now_ms() + 5000;
		while ((w = waitpid(pid, &st, WNOHANG)) == 0 && t_now_ms() < deadline)
			usleep(1000);
		if (w == 0) {
			t_kill9(pid);
			ck_abort_msg("round %u: the child forked after a thread start hung", round);
		}
		ck_assert_int_eq(w, pid);
		ck_assert(WIFEXITED(st));
		ck_assert_int_eq(WEXITSTATUS(st), 0);
		atomic_store(&t_stop, 1);
		smem__futex_wake(&t_stop, 1);
		ck_assert_int_eq(pthread_join(t, &ret), 0);
		ck_assert_ptr_eq(ret, &round);
		entered = atomic_load(&t_entered);
		ck_assert_uint_eq(entered, 1);
	}
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

	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, fork_right_after_a_thread_start_gives_a_child_that_can_start_threads);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(fork_suite)
