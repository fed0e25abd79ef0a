/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util/testutil.h"

/*
 * Every process that holds a name runs the broker client's helper thread, so tests fork
 * multithreaded processes; TSan would kill such children by default. The children only use
 * smem and libc, which is what die_after_fork guards against for arbitrary code.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}

const char *t_name(char *buf, size_t len, const char *prefix)
{
	static unsigned counter;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, len, "%s-%d-%u-%lx", prefix, (int)getpid(), ++counter,
		 (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
	return buf;
}

int t_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

static int fds_before;

void t_fds_setup(void)
{
	fds_before = t_count_fds();
}

void t_fds_teardown(void)
{
	int after;

	smem__broker_disconnect();
	after = t_count_fds();
	ck_assert_msg(after <= fds_before, "fd leak: %d open before the test, %d after",
		      fds_before, after);
}

pid_t t_fork(int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn(arg) & 0xff);
	return pid;
}

int t_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

void t_kill9(pid_t pid)
{
	kill(pid, SIGKILL);
	t_wait(pid);
}

const char *t_build_dir(void)
{
	const char *b = getenv("BUILD");

	return b && *b ? b : "build/default";
}

long long t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int t_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 100 ? 100 : failed;
}
