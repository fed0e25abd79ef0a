/* SPDX-License-Identifier: MIT */
/* Helpers shared by the broker suites (brokerutil.h). */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "util/brokerutil.h"
#include "util/testutil.h"

char tb_dir[256];
char tb_sock[320];
/* An smemd that tb_start_smemd() started for this test (ours to reap), or 0. */
static pid_t tb_smemd_pid;

/*
 * A broker address nobody else uses: a path in a fresh directory, made inside the suite's
 * private directory (tests/run-suites removes it) when there is one.
 */
const char *tb_private_path_broker(void)
{
	const char *env = getenv("SMEM_BROKER");
	const char *slash = env && env[0] == '/' ? strrchr(env, '/') : NULL;

	if (slash && slash != env && slash - env < 128)
		snprintf(tb_dir, sizeof(tb_dir), "%.*s/tb.XXXXXX", (int)(slash - env), env);
	else
		snprintf(tb_dir, sizeof(tb_dir), "/tmp/smem-tb.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tb_dir));
	snprintf(tb_sock, sizeof(tb_sock), "%s/broker.sock", tb_dir);
	setenv("SMEM_BROKER", tb_sock, 1);
	setenv("SMEM_BROKER_IDLE_EXIT", "5", 1);
	unsetenv("SMEM_NO_AUTOSTART");
	return tb_sock;
}

void tb_shared_dir(mode_t mode)
{
	snprintf(tb_dir, sizeof(tb_dir), "/tmp/smem-tb-shared.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tb_dir));
	ck_assert_int_eq(chmod(tb_dir, mode), 0);
	snprintf(tb_sock, sizeof(tb_sock), "%s/broker.sock", tb_dir);
	setenv("SMEM_BROKER", tb_sock, 1);
	setenv("SMEM_BROKER_IDLE_EXIT", "5", 1);
	unsetenv("SMEM_NO_AUTOSTART");
}

bool tb_need_root(void)
{
	if (geteuid() == 0)
		return true;
	printf("skip: needs root to run processes as other uids\n");
	return false;
}

/*
 * An abstract address: no file permissions, so another uid can reach the broker. Nothing
 * auto-starts a broker there (anybody could have bound the name): see tb_start_smemd().
 */
const char *tb_private_abstract_broker(void)
{
	static unsigned n;

	tb_dir[0] = 0;
	snprintf(tb_sock, sizeof(tb_sock), "@smem-tb-%d-%u-%ld", (int)getpid(), ++n,
		 (long)t_now_ms());
	setenv("SMEM_BROKER", tb_sock, 1);
	setenv("SMEM_BROKER_IDLE_EXIT", "5", 1);
	unsetenv("SMEM_NO_AUTOSTART");
	return tb_sock;
}

pid_t tb_spawn_smemd(uid_t uid, const char *const *args)
{
	const char *argv[32] = { "smemd", "--socket", tb_sock, "--foreground" };
	char smemd[512];
	int n = 4, i;
	pid_t pid;

	snprintf(smemd, sizeof(smemd), "%s/tools/smemd", t_build_dir());
	for (i = 0; args && args[i]; i++) {
		ck_assert_int_lt(n, 31);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (uid != geteuid() &&
		    (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(126);
		execv(smemd, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 500 && smem__broker_hello(NULL, NULL) != 0; i++)
		usleep(10000);
	ck_assert_msg(smem__broker_hello(NULL, NULL) == 0, "smemd at %s does not answer", tb_sock);
	return pid;
}

pid_t tb_start_smemd(const char *const *args)
{
	ck_assert_int_eq(tb_smemd_pid, 0);
	tb_smemd_pid = tb_spawn_smemd(geteuid(), args);
	return tb_smemd_pid;
}

/* Gone, or a zombie nobody reaps (the broker is not our child). */
bool tb_pid_gone(pid_t pid, int ms)
{
	long long end = t_now_ms() + ms;
	char path[64], buf[256], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (;;) {
		FILE *f = fopen(path, "re");
		size_t n;

		if (!f)
			return true;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
			return true;
		if (t_now_ms() > end)
			return false;
		usleep(5000);
	}
}

pid_t tb_broker_pid(void)
{
	struct smem__broker_info info;

	ck_assert_int_eq(smem__broker_hello(NULL, &info), 0);
	ck_assert_int_gt(info.pid, 0);
	return info.pid;
}

/* SIGKILL the smemd that tb_start_smemd() started, reap it, forget it. */
void tb_kill_smemd(void)
{
	ck_assert_int_gt(tb_smemd_pid, 0);
	t_kill9(tb_smemd_pid);
	tb_smemd_pid = 0;
}

/* STOP the private broker, check that it went and left nothing behind. */
void tb_private_broker_end(void)
{
	struct smem__broker_info info;

	smem__broker_disconnect();
	if (smem__broker_hello(NULL, &info) == 0) {
		ck_assert_int_eq(smem__broker_stop(NULL), 0);
		ck_assert_msg(tb_pid_gone(info.pid, 2000), "broker %d still runs after STOP",
			      (int)info.pid);
	}
	if (tb_smemd_pid > 0) {
		int status;

		while (waitpid(tb_smemd_pid, &status, 0) < 0 && errno == EINTR)
			;
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "smemd ended with status %#x", status);
		tb_smemd_pid = 0;
	}
	if (tb_dir[0]) {
		ck_assert_msg(access(tb_sock, F_OK) != 0, "socket file left behind");
		ck_assert_int_eq(rmdir(tb_dir), 0);
	}
}

int tb_count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/*
 * The fds of an idle broker (no connection, no name) are stdio on /dev/null, the listening
 * socket, the epoll and the signalfd. Returns how many fds @pid has beyond those: received
 * memfds, connections, anything else.
 */
int tb_broker_extra_fds(pid_t pid)
{
	char dir[64], path[320], link[256];
	struct dirent *e;
	int extra = 0, sockets = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		if (strncmp(link, "socket:", 7) == 0) {
			if (++sockets > 1)
				extra++;
		} else if (strcmp(link, "/dev/null") && strcmp(link, "anon_inode:[eventpoll]") &&
			   strcmp(link, "anon_inode:[signalfd]")) {
			extra++;
		}
	}
	closedir(d);
	return extra;
}

/* Open @name, retrying while it is not there yet (-ENOENT) or until it is gone. */
int tb_open_until(const char *name, int want, int ms)
{
	long long end = t_now_ms() + ms;
	struct smem_region *r;
	int err;

	for (;;) {
		err = smem_region_open(name, NULL, &r);
		if (!err)
			smem_region_close(r);
		if (err == want || t_now_ms() > end)
			return err;
		usleep(10000);
	}
}

/* A pipe used as a one-shot signal between processes. */
void tb_sig_send(int fd)
{
	ck_assert_int_eq(write(fd, "x", 1), 1);
}

bool tb_sig_wait(int fd)
{
	char c;

	return read(fd, &c, 1) == 1;
}
