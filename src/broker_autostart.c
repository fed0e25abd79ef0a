/* SPDX-License-Identifier: MIT */
/*
 * Connecting to a broker, and what to do when none answers. At a private address (ours alone,
 * see smem__addr_private()) the process starts one: the real smemd, exec'd in a detached
 * grandchild on a socket bound here before the fork and handed over as fd 3 with
 * LISTEN_FDS=1/LISTEN_PID (the sd_listen_fds protocol, as D-Bus autolaunch does), so it shows
 * in ps as smemd and carries none of the application's heap, preloaded libraries or lock
 * state. Anywhere else the broker belongs to a supervisor (systemd, a container's init), so we
 * never replace it with a weaker one of ours; we wait a little for the supervisor, then fail.
 * Every connection is checked with smem__broker_trust() before it is handed out. See broker.h
 * for the other broker files.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"

#ifndef SMEM_SMEMD_PATH
#define SMEM_SMEMD_PATH		"/usr/local/bin/smemd"
#endif
/*
 * An auto-started broker exits after this long unused ($SMEM_BROKER_IDLE_EXIT changes it):
 * short, so that `make run` or a one-off program leaves no broker behind for long, yet long
 * enough that a script's next command finds the names a persistent create left.
 */
#define AUTOSTART_IDLE_S	"5"
#define CONNECT_WAIT_MS		2000	/* how long to retry connect after starting a broker */

/* The smemd to run: $SMEM_SMEMD, else the one installed with the library. */
static const char *smemd_path(void)
{
	const char *p = getenv("SMEM_SMEMD");

	return p && *p ? p : SMEM_SMEMD_PATH;
}

/* Everything the exec needs, built before the fork (the child may not allocate). */
struct spawn {
	const char *path;
	char *argv[8];
	char **envp;			/* the environment without LISTEN_*, plus ours */
	char idle[16];
	char pid_var[32];		/* "LISTEN_PID=" and the grandchild's pid, written there */
};

static int spawn_prepare(struct spawn *sp)
{
	extern char **environ;
	const char *idle = getenv("SMEM_BROKER_IDLE_EXIT");
	size_t n = 0, i, k = 0;

	for (char **e = environ; e && *e; e++)
		n++;
	sp->envp = calloc(n + 3, sizeof(*sp->envp));
	if (!sp->envp)
		return -ENOMEM;
	/*
	 * Neither the caller's inherited fds nor its service manager are the broker's: an
	 * application run by systemd (NOTIFY_SOCKET set) must not have its broker report READY
	 * or put fds in the application's fd store.
	 */
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0 &&
		    strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
			sp->envp[k++] = environ[i];
	sp->envp[k++] = (char *)"LISTEN_FDS=1";
	sp->envp[k++] = sp->pid_var;
	sp->envp[k] = NULL;
	snprintf(sp->idle, sizeof(sp->idle), "%s", idle && *idle ? idle : AUTOSTART_IDLE_S);
	sp->path = smemd_path();
	sp->argv[0] = (char *)"smemd";
	sp->argv[1] = (char *)"--foreground";
	sp->argv[2] = (char *)"--idle-exit";
	sp->argv[3] = sp->idle;
	sp->argv[4] = (char *)"--grace";	/* private: nobody else can take a name meanwhile */
	sp->argv[5] = (char *)"0";
	sp->argv[6] = (char *)"--remove-socket";	/* the file is ours: remove it at exit */
	sp->argv[7] = NULL;
	return 0;
}

/* "LISTEN_PID=<pid>" without stdio (we are a child of a possibly threaded process). */
static void put_pid_var(char *buf, pid_t pid)
{
	static const char pre[] = "LISTEN_PID=";
	char digits[16];
	int n = 0;

	memcpy(buf, pre, sizeof(pre) - 1);
	buf += sizeof(pre) - 1;
	do {
		digits[n++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid);
	while (n)
		*buf++ = digits[--n];
	*buf = 0;
}

/*
 * The grandchild: smemd on @lfd as fd 3. Never returns; on a failed exec it writes errno to
 * @errfd (the parent's sign that no broker is coming), which the exec closes otherwise.
 */
static void __attribute__((noreturn)) broker_child(struct spawn *sp, int lfd, int errfd)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2 };
	sigset_t none;
	unsigned i;
	int null, err;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 0; i < SMEM__ARRAY_SIZE(sigs); i++)
		signal(sigs[i], SIG_DFL);
	/* Above 3 first, so that neither dup2 below can clobber the other's source. */
	lfd = fcntl(lfd, F_DUPFD_CLOEXEC, 10);
	errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 10);
	if (lfd < 0 || errfd < 0)
		_exit(1);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (dup2(lfd, 3) != 3)	/* dup2 leaves fd 3 without CLOEXEC: smemd inherits it */
		_exit(1);
	close_range(4, (unsigned)errfd - 1, 0);
	close_range((unsigned)errfd + 1, ~0u, 0);
	put_pid_var(sp->pid_var, getpid());
	execve(sp->path, sp->argv, sp->envp);
	err = errno;
	/*
	 * Stop listening before we tell: the parent's next start must find a stale socket, not
	 * one that still accepts connections nobody will serve.
	 */
	close(3);
	if (write(errfd, &err, sizeof(err)) < 0) {
		/* nobody to tell */
	}
	_exit(127);
}

/*
 * With $SMEM_DEBUG set, say once per process that we started a private broker at a default
 * address. In a container with its own /tmp (or XDG_RUNTIME_DIR) and no SMEM_BROKER, that
 * broker is the container's alone: programs in other containers that expect to share names
 * with this one silently get names of their own. The line says so and what to do.
 */
static void report_private_start(const struct smem__addr *a)
{
	static atomic_bool said;
	const char *dbg = getenv("SMEM_DEBUG");

	if (!a->is_default || !dbg || !*dbg || atomic_exchange(&said, true))
		return;
	fprintf(stderr, "smem: no broker answered at %s, so this process started a private one "
		"(smemd, exits when idle); only processes that reach this path share its names. "
		"Inside a container, to share names with other containers, mount a shared "
		"broker's socket and set SMEM_BROKER (smem(7), SMEM_BROKER)\n", a->text);
}

/*
 * Start a broker at @a unless one answers (the check and the bind happen under the directory
 * lock, see smem__broker_listen()). The listening socket exists before we return, so a connect
 * right after succeeds even if smemd has not reached its loop yet. -ENOENT (or the exec's
 * errno) when smemd could not be run.
 */
static int autostart(const struct smem__addr *addr)
{
	/* A copy: @addr may live in a connection, which the atfork child handler frees. */
	const struct smem__addr copy = *addr, *a = &copy;
	struct spawn sp = { 0 };
	int lfd, err, status, pipefd[2], child_err = 0;
	struct pollfd pfd;
	ssize_t got;
	pid_t pid;

	err = spawn_prepare(&sp);
	if (err)
		return err;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		err = -errno;
		free(sp.envp);
		return err;
	}
	err = smem__broker_listen(a, 0600, -1, &lfd);
	if (err) {
		free(sp.envp);
		close(pipefd[0]);
		close(pipefd[1]);
		return err == -EADDRINUSE ? 0 : err;
	}
	pid = fork();
	if (pid == 0) {
		/* Double fork and a session of its own: no zombie, no controlling terminal. */
		pid_t grandchild;

		setsid();
		grandchild = fork();
		if (grandchild != 0)
			_exit(grandchild < 0 ? 1 : 0);
		broker_child(&sp, lfd, pipefd[1]);
	}
	err = pid < 0 ? -errno : 0;
	close(lfd);
	close(pipefd[1]);
	free(sp.envp);
	if (pid > 0) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		/* EOF when smemd is running (the exec closed the pipe), an errno when it failed. */
		pfd = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
		if (poll(&pfd, 1, CONNECT_WAIT_MS) == 1) {
			got = read(pipefd[0], &child_err, sizeof(child_err));
			if (got == (ssize_t)sizeof(child_err) && child_err > 0)
				err = -ENOENT;	/* no smemd to run: not a permission on the socket */
		}
	}
	close(pipefd[0]);
	if (!err)
		report_private_start(a);
	return err;
}

/* $SMEM_NO_AUTOSTART turns auto-start off when it reads as yes: 1, true or yes, any case. */
static bool autostart_allowed(void)
{
	const char *e = getenv("SMEM_NO_AUTOSTART");

	return !(e && (strcmp(e, "1") == 0 || strcasecmp(e, "true") == 0 ||
		       strcasecmp(e, "yes") == 0));
}

/*
 * What to do when nothing answers at @a: start a broker (private addresses), wait for a
 * supervisor (other addresses), or give up. 0 with *wait_ms set, or -errno.
 */
static int nobody_answers(const struct smem__addr *a, unsigned how, unsigned *wait_ms)
{
	int priv, err;

	if (!(how & (SMEM__CONNECT_START | SMEM__CONNECT_WAIT)))
		return smem__error(-ECONNREFUSED, "no broker answers at %s", a->text);
	priv = smem__addr_private(a);
	if (priv == -EACCES)
		return smem__error(-EPERM, "cannot use broker at %s: permission denied (socket "
				   "directory: another uid owns it, or group or others may enter "
				   "it, so a socket there could be anybody's)", a->text);
	if (priv < 0)
		return smem__error(priv, "cannot make the directory of broker %s: %s", a->text,
				   strerror(-priv));
	if (!priv) {
		/* Somebody else's broker: only its supervisor may bring it back. */
		if (!(how & SMEM__CONNECT_WAIT))
			return smem__error(-ECONNREFUSED, "no broker answers at %s (not a private "
					   "address: only its supervisor may start one)", a->text);
		*wait_ms = SMEM__SUPERVISOR_WAIT_MS;
		return 0;
	}
	if (!(how & SMEM__CONNECT_START))
		return smem__error(-ECONNREFUSED, "no broker answers at %s", a->text);
	if (!autostart_allowed())
		return smem__error(-ECONNREFUSED, "no broker answers at %s and auto-start is off "
				   "(SMEM_NO_AUTOSTART)", a->text);
	err = autostart(a);
	if (err == -EACCES || err == -EPERM)
		return smem__error(-EPERM, "cannot start a broker at %s: permission denied (socket: "
				   "a stale socket file there may not be replaced)", a->text);
	if (err == -ENOENT)
		return smem__error(-ECONNREFUSED, "no broker answers at %s and smemd could not be "
				   "run (%s; SMEM_SMEMD names another)", a->text, smemd_path());
	if (err)
		return smem__error(-ECONNREFUSED, "no broker answers at %s and none could be "
				   "started there: %s", a->text, strerror(-err));
	*wait_ms = CONNECT_WAIT_MS;
	return 0;
}

/* See broker.h. */
int smem__broker_connect(const struct smem__addr *a, unsigned how)
{
	uint64_t deadline = 0;
	unsigned delay_us = 1000, wait_ms = 0;
	int fd, err;

	for (;;) {
		fd = smem__sock_connect(a);
		if (fd >= 0) {
			err = smem__broker_trust(fd, a);
			if (err) {
				close(fd);
				return err;
			}
			return fd;
		}
		/* The kernel refused us the socket: the broker may be there, but not for us. */
		if (fd == -EACCES || fd == -EPERM)
			return smem__error(-EPERM, "cannot connect to broker at %s: permission denied "
					   "(socket: the socket file or a directory above it does not "
					   "let uid %u in)", a->text, (unsigned)geteuid());
		if (fd != -ENOENT && fd != -ECONNREFUSED)
			return smem__error(-ECONNREFUSED, "cannot connect to broker at %s: %s",
					   a->text, strerror(-fd));
		if (!deadline) {
			err = nobody_answers(a, how, &wait_ms);
			if (err)
				return err;
			deadline = smem__now_ns() + wait_ms * 1000000ull;
			continue;
		}
		if (smem__now_ns() >= deadline)
			return smem__error(-ECONNREFUSED, wait_ms == CONNECT_WAIT_MS ?
					   "smemd was started at %s but did not answer within %u ms" :
					   "no broker answers at %s: its supervisor did not bring one "
					   "back within %u ms", a->text, wait_ms);
		usleep(delay_us);
		if (delay_us < 50000)
			delay_us *= 2;
	}
}
