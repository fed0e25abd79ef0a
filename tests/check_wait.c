/* SPDX-License-Identifier: MIT */
/*
 * The wait engine: which backend the probe picks when the kernel (or a container's seccomp
 * profile) refuses io_uring and futex_waitv, and that the fallback then sleeps instead of
 * spinning (every RPC wait loop idle at once under < 1% of a CPU); wait sets; the loop.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "internal.h"
#include "rpc_int.h"
#include "wait.h"
#include "util/rpcutil.h"
#include "util/testutil.h"

#if defined(__x86_64__)
#define T_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define T_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif

/*
 * What container runtimes do: io_uring_setup (and enter) and futex_waitv fail with EPERM, all else
 * is allowed. Irreversible, so only ever in a forked child. 0 or -errno.
 */
static int refuse_uring_and_waitv(void)
{
#ifdef T_AUDIT_ARCH
	/* io_uring_enter too: a thread whose ring exists must not keep using it. */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, T_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_futex_waitv, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = { .len = (unsigned short)(sizeof(f) / sizeof(f[0])), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -errno;
	return 0;
#else
	return -ENOSYS;
#endif
}

static uint64_t cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

static int call_mul(struct smem_rpc *m, uint8_t a, uint8_t b)
{
	uint8_t args[2] = { a, b };
	void *resp = NULL;
	size_t len = 0;
	int rc = smem_rpc_call(m, args, 2, &resp, &len, 5000);

	if (rc == 0 && (len != 1 || ((uint8_t *)resp)[0] != (uint8_t)(a * b)))
		rc = -EBADMSG;
	smem_rpc_free_response(resp);
	return rc;
}

struct idle_arg {
	const char *name;
	int out;	/* pipe: the child writes "<cpu us> <wall us> <backend>" */
};

/* The most CPU the idle waits may use, in % of the time measured (see the test). */
#define IDLE_BOUND_PCT	8

/* The slow channel's handler: answers like t_rpc_h_mul, after SLOW_HANDLER_MS. */
#define SLOW_HANDLER_MS	1600
static int h_mul_slowly(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	struct timespec ts = { SLOW_HANDLER_MS / 1000, (SLOW_HANDLER_MS % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	return t_rpc_h_mul(arg, req, rep);
}

/* An idle dispatch loop: smem_rpc_serve() until told to stop. */
struct serve_arg {
	struct smem_rpc *ch;
	_Atomic bool stop;
	int err;
};

static void *serve_main(void *p)
{
	struct serve_arg *sa = p;
	int rc;

	while (!atomic_load(&sa->stop)) {
		rc = smem_rpc_serve(&sa->ch, 1, 200);
		if (rc < 0) {
			sa->err = rc;
			break;
		}
	}
	return NULL;
}

/* A caller blocked in a call that the peer's handler takes SLOW_HANDLER_MS to answer. */
struct slow_arg {
	struct smem_rpc *ch;
	int rc;
};

static void *slow_call_main(void *p)
{
	struct slow_arg *sl = p;

	sl->rc = call_mul(sl->ch, 7, 9);
	return NULL;
}

/*
 * Every RPC wait loop idle at once, under seccomp: a pair with service threads on both ends
 * (channel a), a server in smem_rpc_serve() and its master's service thread (channel b), and a
 * caller waiting in smem_rpc_call() for a slow handler beside its own service thread (channel
 * c). Exit codes: 0 ok, 1 seccomp refused, 2 wrong backend, 3 open, 4 first calls, 5 calls
 * after, 6 pipe, 7 threads.
 * Plain returns, not ck_assert: this runs in a grandchild of the runner.
 */
static int idle_under_seccomp(void *p)
{
	const struct idle_arg *a = p;
	struct smem_rpc_opts so = { .handler = t_rpc_h_mul };
	struct smem_rpc_opts sd = { .handler = t_rpc_h_mul, .service = SMEM_RPC_SERVICE_DISPATCH };
	struct smem_rpc_opts ss = { .handler = h_mul_slowly };
	struct smem_rpc *m = NULL, *s = NULL, *mb = NULL, *sb = NULL, *mc = NULL, *sc = NULL;
	struct serve_arg sa = { .stop = false, .err = 0 };
	struct slow_arg sl = { .rc = -1 };
	struct timespec idle = { 1, 0 };
	pthread_t serve_th, slow_th;
	bool serving = false, calling = false;
	char nb[64], nc[64], line[96];
	uint64_t c0, c1, t0, t1;
	int n, rc = 0;

	if (refuse_uring_and_waitv() != 0)
		return 1;
	unsetenv("SMEM_NO_URING");
	if (smem__wait_backend() != SMEM__WAIT_FUTEX)
		rc = 2;
	snprintf(nb, sizeof(nb), "%s.b", a->name);
	snprintf(nc, sizeof(nc), "%s.c", a->name);
	if (!rc && (smem_rpc_open(a->name, NULL, &m) != 0 || smem_rpc_open(a->name, &so, &s) != 0 ||
		    smem_rpc_open(nb, NULL, &mb) != 0 || smem_rpc_open(nb, &sd, &sb) != 0 ||
		    smem_rpc_open(nc, NULL, &mc) != 0 || smem_rpc_open(nc, &ss, &sc) != 0))
		rc = 3;
	if (!rc) {
		sa.ch = sb;
		serving = pthread_create(&serve_th, NULL, serve_main, &sa) == 0;
		if (!serving)
			rc = 7;
	}
	if (!rc && (call_mul(m, 6, 7) != 0 || call_mul(mb, 2, 9) != 0))
		rc = 4;
	if (!rc) {
		sl.ch = mc;
		calling = pthread_create(&slow_th, NULL, slow_call_main, &sl) == 0;
		if (!calling)
			rc = 7;
	}
	if (!rc) {
		/* Let the waits finish their spin after the calls, then measure. */
		usleep(150000);
		c0 = cpu_us();
		t0 = smem__now_ns();
		nanosleep(&idle, NULL);
		c1 = cpu_us();
		t1 = smem__now_ns();
		n = snprintf(line, sizeof(line), "%llu %llu %d\n", (unsigned long long)(c1 - c0),
			     (unsigned long long)((t1 - t0) / 1000), (int)smem__wait_backend());
		if (write(a->out, line, (size_t)n) != n)
			rc = 6;
	}
	if (calling) {
		pthread_join(slow_th, NULL);
		if (!rc && sl.rc != 0)
			rc = 5;
	}
	if (!rc && (call_mul(m, 3, 5) != 0 || call_mul(mb, 4, 4) != 0))
		rc = 5;
	if (serving) {
		atomic_store(&sa.stop, true);
		pthread_join(serve_th, NULL);
		if (!rc && sa.err)
			rc = 5;
	}
	smem_rpc_close(sc);
	smem_rpc_close(mc);
	smem_rpc_close(sb);
	smem_rpc_close(mb);
	smem_rpc_close(s);
	smem_rpc_close(m);
	return rc;
}

START_TEST(wait_with_uring_and_waitv_refused_sleeps_and_calls_work)
{
	unsigned long long cpu = 0, wall = 0;
	struct idle_arg a;
	char line[96] = "";
	int fds[2], st, b = 0;
	ssize_t got;
	pid_t pid;
	T_NAME(name, "wait");

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	a.name = name;
	a.out = fds[1];
	pid = t_fork(idle_under_seccomp, &a);
	close(fds[1]);
	got = read(fds[0], line, sizeof(line) - 1);
	close(fds[0]);
	st = t_wait(pid);
	if (st == 1) {
		fprintf(stderr, "skip: seccomp filters unavailable here\n");
		return;
	}
	ck_assert_msg(st == 0, "child status %d", st);
	ck_assert_int_gt(got, 0);
	ck_assert_int_eq(sscanf(line, "%llu %llu %d", &cpu, &wall, &b), 3);
	fprintf(stderr, "note: idle RPC waits with io_uring and futex_waitv refused: %llu us CPU "
		"in %llu us (%.2f%%), backend %d\n", cpu, wall, 100.0 * (double)cpu / (double)wall,
		b);
	ck_assert_int_eq(b, SMEM__WAIT_FUTEX);
	/*
	 * CPU time, not wall time: it does not grow when a loaded machine makes the threads
	 * wait for a CPU. The six idle waits use under 1% in all when they sleep between
	 * wakeups (0.5..1.0% measured at a load average of 11 on 2 cores); one that spins
	 * uses the whole second it is given, and still its fair share (~15%) on a machine that
	 * loaded. IDLE_BOUND_PCT sits between the two.
	 */
	ck_assert_msg(cpu * 100 < wall * IDLE_BOUND_PCT, "%llu us CPU in %llu us", cpu, wall);
}
END_TEST

START_TEST(wait_set_past_capacity_is_an_error_not_a_drop)
{
	static _Atomic uint32_t words[SMEM__WAIT_MAX + 1];
	struct smem__wait_item many[SMEM__WAIT_MAX + 1];
	static struct smem__rpc_ws ws;
	uint64_t max;
	unsigned i;

	smem__rpc_ws_init(&ws);
	for (i = 0; i < SMEM__WAIT_MAX; i++)
		ck_assert_int_eq(smem__rpc_ws_word(&ws, NULL, &words[i], 0), 0);
	ck_assert_int_eq(smem__rpc_ws_word(&ws, NULL, &words[SMEM__WAIT_MAX], 0), -E2BIG);
	ck_assert_uint_eq(ws.set.n, SMEM__WAIT_MAX);
	/* every word holds its value: a sleep would last forever (the test's timeout) */
	max = UINT64_MAX;
	smem__rpc_ws_arm(&ws, NULL, &max);
	ck_assert_int_eq(smem__wait_set_sleep(&ws.set, max), -E2BIG);
	smem__rpc_ws_disarm(&ws, -1);

	memset(many, 0, sizeof(many));
	for (i = 0; i <= SMEM__WAIT_MAX; i++)
		many[i].word = &words[i];
	ck_assert_int_eq(smem__wait_many(many, SMEM__WAIT_MAX + 1, UINT64_MAX), -EINVAL);
}
END_TEST

/* ---- the loop ---------------------------------------------------------------------------- */

/* A waiter on one word: done when *word reaches @target; counts its callbacks. */
struct t_word_wait {
	struct smem__waiter w;
	_Atomic uint32_t *word;
	_Atomic uint32_t *word2;	/* a second word to sleep on, or NULL */
	uint32_t target;
	unsigned polls, arms, disarms, sleeps, timeouts;
	struct smem__wait_set set;
	struct smem__wait_item item[2];
	bool overflow;		/* arm adds one item too many */
};

/* Set by the wait's first look: bump_later() counts its delay from there. */
static _Atomic bool t_started;

static int tw_poll(struct smem__waiter *w)
{
	struct t_word_wait *t = (struct t_word_wait *)w;

	atomic_store(&t_started, true);
	t->polls++;
	return atomic_load(t->word) >= t->target ? 7 : -EAGAIN;
}

static int tw_arm(struct smem__waiter *w, uint64_t *max_ns)
{
	struct t_word_wait *t = (struct t_word_wait *)w;
	uint32_t v = atomic_load(t->word);

	(void)max_ns;
	atomic_store(&t_started, true);
	t->arms++;
	if (v >= t->target)
		return 7;
	smem__wait_set_init(&t->set, t->item, t->word2 ? 2 : 1);
	smem__wait_set_word(&t->set, t->word, v);
	if (t->word2)
		smem__wait_set_word(&t->set, t->word2, atomic_load(t->word2));
	if (t->overflow)
		ck_assert_int_eq(smem__wait_set_word(&t->set, t->word, v), -E2BIG);
	return -EAGAIN;
}

static void tw_disarm(struct smem__waiter *w, int fired)
{
	struct t_word_wait *t = (struct t_word_wait *)w;

	t->disarms++;
	if (fired >= 0)
		t->sleeps++;
	if (fired == 0)
		t->timeouts++;
}

static void tw_init(struct t_word_wait *t, _Atomic uint32_t *word, uint32_t target,
		    struct smem__spin spin, int timeout_ms)
{
	memset(t, 0, sizeof(*t));
	t->w.poll = tw_poll;
	t->w.arm = tw_arm;
	t->w.disarm = tw_disarm;
	t->w.set = &t->set;
	t->w.spin = spin;
	t->w.deadline = smem__deadline(timeout_ms);
	t->word = word;
	t->target = target;
	atomic_store(&t_started, false);
}

static _Atomic uint32_t t_word;

/*
 * Bump t_word @arg us after the wait's first look: counted from there, not from the thread's
 * start, so that a loaded machine that runs this thread first cannot bump before the wait.
 */
static void *bump_later(void *arg)
{
	while (!atomic_load(&t_started))
		usleep(50);
	usleep((useconds_t)(uintptr_t)arg);
	atomic_fetch_add(&t_word, 1);
	smem__futex_wake(&t_word, 1);
	return NULL;
}

START_TEST(wait_loop_sleeps_until_woken_and_returns_the_look)
{
	struct t_word_wait t;
	pthread_t th;

	atomic_store(&t_word, 0);
	tw_init(&t, &t_word, 1, (struct smem__spin){ .ns = 0 }, 10000);
	ck_assert_int_eq(pthread_create(&th, NULL, bump_later, (void *)(uintptr_t)50000), 0);
	ck_assert_int_eq(smem__wait_for(&t.w), 7);
	pthread_join(th, NULL);
	/* no spin: the first thing was an arm; every arm was disarmed; it slept at least once */
	ck_assert_uint_ge(t.arms, 1);
	ck_assert_uint_eq(t.arms, t.disarms);
	ck_assert_uint_ge(t.sleeps, 1);
}
END_TEST

START_TEST(wait_loop_times_out_after_a_last_armed_look)
{
	struct t_word_wait t;
	uint64_t t0 = smem__now_ns();

	atomic_store(&t_word, 0);
	tw_init(&t, &t_word, 1, (struct smem__spin){ .ns = 0 }, 30);
	ck_assert_int_eq(smem__wait_for(&t.w), -ETIMEDOUT);
	ck_assert_uint_ge(smem__now_ns() - t0, 30ull * 1000000);
	ck_assert_uint_eq(t.arms, t.disarms);
	ck_assert_uint_eq(t.arms, t.sleeps + 1);	/* the last arm found the time up */
	ck_assert_uint_ge(t.timeouts, 1);
}
END_TEST

START_TEST(wait_loop_spins_for_a_fixed_budget_before_arming)
{
	struct t_word_wait t;

	atomic_store(&t_word, 0);
	/* 5 ms of spinning with a deadline of 2 ms: the spin ends at the deadline, no sleep */
	tw_init(&t, &t_word, 1, (struct smem__spin){ .ns = 5000000 }, 2);
	ck_assert_int_eq(smem__wait_for(&t.w), -ETIMEDOUT);
	ck_assert_uint_ge(t.polls, 16);
	ck_assert_uint_eq(t.sleeps, 0);
	ck_assert_uint_eq(t.arms, 1);
	/* a word that already holds: the first look of the spin ends the wait */
	atomic_store(&t_word, 1);
	tw_init(&t, &t_word, 1, (struct smem__spin){ .ns = 5000000 }, -1);
	ck_assert_int_eq(smem__wait_for(&t.w), 7);
	ck_assert_uint_eq(t.polls, 1);
	ck_assert_uint_eq(t.arms, 0);
}
END_TEST

START_TEST(wait_loop_adaptive_spin_learns_and_forgets)
{
	_Atomic uint32_t learned = 0;
	/* a cap of 4 s: a loaded machine may wake us late, which must not count as idle */
	struct smem__spin sp = { .ns = SMEM__SPIN_AUTO, .base = 20000, .cap = 4000000000u,
				 .learned = &learned };
	struct t_word_wait t;
	pthread_t th;

	ck_assert_uint_eq(smem__spin_budget(&sp), 20000);
	/* got what it waited for after ~200 us: the budget rises to about 1.25 x that */
	atomic_store(&t_word, 0);
	tw_init(&t, &t_word, 1, sp, 10000);
	ck_assert_int_eq(pthread_create(&th, NULL, bump_later, (void *)(uintptr_t)200), 0);
	ck_assert_int_eq(smem__wait_for(&t.w), 7);
	pthread_join(th, NULL);
	ck_assert_uint_ge(atomic_load(&learned), 200 * 1000 * 5 / 4);
	ck_assert_uint_le(atomic_load(&learned), 4000000000u);
	/* a timeout forgets: back to the base */
	tw_init(&t, &t_word, 2, sp, 5);
	ck_assert_int_eq(smem__wait_for(&t.w), -ETIMEDOUT);
	ck_assert_uint_eq(atomic_load(&learned), 0);
	ck_assert_uint_eq(smem__spin_budget(&sp), 20000);
}
END_TEST

START_TEST(wait_loop_reports_an_overflowing_set)
{
	struct t_word_wait t;

	atomic_store(&t_word, 0);
	tw_init(&t, &t_word, 1, (struct smem__spin){ .ns = 0 }, -1);
	t.overflow = true;
	ck_assert_int_eq(smem__wait_for(&t.w), -E2BIG);
	ck_assert_uint_eq(t.arms, 1);
	ck_assert_uint_eq(t.disarms, 1);
	ck_assert_uint_eq(t.sleeps, 0);	/* disarmed as "no sleep happened" */
}
END_TEST

/*
 * Seccomp installed after the probe (a sandbox that locks itself down after start-up): the
 * backend in use fails with EPERM at run time; it must be dropped for the plain futex, and a
 * wait of two words then sleeps rather than spins. Exit codes: 1 seccomp refused, 2 wrong
 * result, 3 wrong backend after, 4 it spun.
 */
static int refused_after_probe(void *arg)
{
	static _Atomic uint32_t words[2];
	struct smem__wait_item it[2];
	struct t_word_wait t;
	uint64_t c0, t0, cpu, wall;
	int rc;

	(void)arg;
	unsetenv("SMEM_NO_URING");
	fprintf(stderr, "note: backend before the filter: %d\n", (int)smem__wait_backend());
	/* make this thread's io_uring (when the backend is io_uring) before the filter */
	memset(it, 0, sizeof(it));
	it[0].word = &words[0];
	it[1].word = &words[1];
	smem__wait_many(it, 2, 1000000);
	if (refuse_uring_and_waitv() != 0)
		return 1;
	tw_init(&t, &words[0], 1, (struct smem__spin){ .ns = 0 }, 300);
	t.word2 = &words[1];	/* two words: the backend's job, not one FUTEX_WAIT */
	c0 = cpu_us();
	t0 = smem__now_ns();
	/* the backend refuses now: each of these must fall back and sleep, not return at once */
	for (rc = 0; rc < 3; rc++)
		smem__wait_many(it, 2, 100000000);
	rc = smem__wait_for(&t.w);
	wall = (smem__now_ns() - t0) / 1000;
	cpu = cpu_us() - c0;
	fprintf(stderr, "note: after the filter: backend %d, %llu us CPU in %llu us\n",
		(int)smem__wait_backend(), (unsigned long long)cpu, (unsigned long long)wall);
	if (rc != -ETIMEDOUT)
		return 2;
	if (smem__wait_backend() != SMEM__WAIT_FUTEX)
		return 3;
	return cpu * 5 < wall ? 0 : 4;
}

START_TEST(wait_backend_refused_at_run_time_is_dropped_not_spun_on)
{
	int st = t_wait(t_fork(refused_after_probe, NULL));

	if (st == 1) {
		fprintf(stderr, "skip: seccomp filters unavailable here\n");
		return;
	}
	ck_assert_int_eq(st, 0);
}
END_TEST

/*
 * SMEM_WAIT_BACKEND caps the backend (to compare them): in a fresh process, the probe's
 * result for @arg's name. Exit code: the backend (1 io_uring, 2 futex_waitv, 3 futex).
 */
static int backend_for_env(void *arg)
{
	unsetenv("SMEM_NO_URING");
	if (arg)
		setenv("SMEM_WAIT_BACKEND", arg, 1);
	else
		unsetenv("SMEM_WAIT_BACKEND");
	return (int)smem__wait_backend();
}

START_TEST(wait_backend_env_caps_the_probe)
{
	int best = t_wait(t_fork(backend_for_env, NULL));
	int waitv = t_wait(t_fork(backend_for_env, (void *)"futex_waitv"));

	ck_assert(best >= SMEM__WAIT_URING && best <= SMEM__WAIT_FUTEX);
	/* never above the cap, never above what the kernel offers */
	ck_assert_int_eq(waitv, best > SMEM__WAIT_FUTEX_WAITV ? best : SMEM__WAIT_FUTEX_WAITV);
	ck_assert_int_eq(t_wait(t_fork(backend_for_env, (void *)"futex")), SMEM__WAIT_FUTEX);
	ck_assert_int_eq(t_wait(t_fork(backend_for_env, (void *)"uring")), best);
	ck_assert_int_eq(t_wait(t_fork(backend_for_env, (void *)"bogus")), best);
}
END_TEST

static Suite *wait_suite(void)
{
	Suite *s = suite_create("wait");
	TCase *tc = tcase_create("fallback");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, wait_with_uring_and_waitv_refused_sleeps_and_calls_work);
	suite_add_tcase(s, tc);
	tc = tcase_create("capacity");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, wait_set_past_capacity_is_an_error_not_a_drop);
	suite_add_tcase(s, tc);
	tc = tcase_create("loop");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, wait_loop_sleeps_until_woken_and_returns_the_look);
	tcase_add_test(tc, wait_loop_times_out_after_a_last_armed_look);
	tcase_add_test(tc, wait_loop_spins_for_a_fixed_budget_before_arming);
	tcase_add_test(tc, wait_loop_adaptive_spin_learns_and_forgets);
	tcase_add_test(tc, wait_loop_reports_an_overflowing_set);
	tcase_add_test(tc, wait_backend_refused_at_run_time_is_dropped_not_spun_on);
	tcase_add_test(tc, wait_backend_env_caps_the_probe);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(wait_suite)
