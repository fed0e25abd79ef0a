/* SPDX-License-Identifier: MIT */
/*
 * Auto-start: a process that finds no broker at its address starts one (a detached grandchild
 * running smem__broker_serve() on a socket bound before the fork), then connects. See broker.h
 * for the other broker files.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"

#define AUTOSTART_IDLE_S	30	/* an auto-started broker exits after this long unused */
#define CONNECT_WAIT_MS		2000	/* how long to retry connect after starting a broker */

/* The grandchild: a detached broker serving @lfd. Never returns. */
static void __attribute__((noreturn)) broker_child(const struct smem__addr *a, int lfd)
{
	struct smem__broker_config cfg = { .group = -1, .idle_exit_s = AUTOSTART_IDLE_S };
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2 };
	char path[sizeof(a->text) + 4096];
	const char *idle = getenv("SMEM_BROKER_IDLE_EXIT");
	sigset_t none;
	unsigned i;
	int null;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 0; i < SMEM__ARRAY_SIZE(sigs); i++)
		signal(sigs[i], SIG_DFL);
	/* Keep the listening socket above stdio, then close everything else we inherited. */
	if (lfd < 3) {
		int moved = fcntl(lfd, F_DUPFD_CLOEXEC, 3);

		if (moved < 0)
			_exit(1);
		lfd = moved;
	}
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (lfd > 3)
		close_range(3, (unsigned)lfd - 1, 0);
	close_range((unsigned)lfd + 1, ~0u, 0);

	if (!a->abstract) {
		/* Absolute, so that the socket can be removed at exit after chdir("/"). */
		if (a->text[0] == '/' || !getcwd(path, sizeof(path) - sizeof(a->text) - 2))
			snprintf(path, sizeof(path), "%s", a->text);
		else
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s", a->text);
		cfg.path = path;
	}
	if (chdir("/") < 0) {
		/* not fatal: we only keep a directory busy */
	}
	if (idle && *idle)
		cfg.idle_exit_s = atoi(idle);
	cfg.listen_fd = lfd;
	_exit(smem__broker_serve(&cfg) < 0 ? 1 : 0);
}

/*
 * Start a broker at @a unless one answers (the check and the bind happen under the directory
 * lock, see smem__broker_listen()). The listening socket exists before we return, so a connect
 * right after succeeds even if the broker has not reached its loop yet.
 */
static int autostart(const struct smem__addr *addr)
{
	/* A copy: @addr may live in a connection, which the atfork child handler frees. */
	const struct smem__addr copy = *addr, *a = &copy;
	int lfd, err, status;
	pid_t pid;

	err = smem__broker_listen(a, 0600, -1, &lfd);
	if (err == -EADDRINUSE)
		return 0;
	if (err)
		return err;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(lfd);
		return err;
	}
	if (pid == 0) {
		/* Double fork and a session of its own: no zombie, no controlling terminal. */
		pid_t grandchild;

		setsid();
		grandchild = fork();
		if (grandchild != 0)
			_exit(grandchild < 0 ? 1 : 0);
		broker_child(a, lfd);
	}
	close(lfd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static bool autostart_allowed(void)
{
	const char *e = getenv("SMEM_NO_AUTOSTART");

	return !(e && strcmp(e, "1") == 0);
}

/* Connect to @a, starting a broker if none answers and that is allowed. fd or -errno. */
int smem__broker_connect(const struct smem__addr *a, bool may_start)
{
	uint64_t deadline = 0;
	unsigned delay_us = 1000;
	bool started = false;
	int fd, err;

	for (;;) {
		fd = smem__sock_connect(a);
		if (fd >= 0)
			return fd;
		if (fd != -ENOENT && fd != -ECONNREFUSED)
			return fd == -EACCES ? -EACCES : -ECONNREFUSED;
		if (!may_start || !autostart_allowed())
			return -ECONNREFUSED;
		if (!started) {
			err = autostart(a);
			if (err)
				return err == -EACCES ? -EACCES : -ECONNREFUSED;
			started = true;
			deadline = smem__now_ns() + CONNECT_WAIT_MS * 1000000ull;
			continue;
		}
		if (smem__now_ns() >= deadline)
			return -ECONNREFUSED;
		usleep(delay_us);
		if (delay_us < 50000)
			delay_us *= 2;
	}
}
