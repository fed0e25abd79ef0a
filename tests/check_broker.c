/* SPDX-License-Identifier: MIT */
/*
 * The broker and its client: auto-start, lifetime of names, access control, smemctl (hostile
 * input, restart and containers are in check_broker_faults.c). Each test that starts a broker
 * gives it a private address (a fresh directory, or a fresh abstract name) and stops it with
 * STOP at the end; SMEM_BROKER_IDLE_EXIT makes a broker left behind by a failed test go away
 * on its own a few seconds later.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"
#include "util/brokerutil.h"
#include "util/testutil.h"

/*
 * Every process that holds a name runs the broker client's helper thread, and these tests
 * fork after that; TSan refuses to start threads in such children unless told otherwise.
 * Weak, so that a definition in the shared test utilities wins.
 */

/* ---- auto-start ---------------------------------------------------------------------- */

START_TEST(first_create_autostarts_a_broker_that_stop_ends)
{
	struct smem_region *r, *o;
	pid_t pid;

	tb_private_path_broker();
	ck_assert_int_ne(access(tb_sock, F_OK), 0);
	ck_assert_int_eq(smem_region_create("auto", 4096, NULL, &r), 0);
	ck_assert_int_eq(access(tb_sock, F_OK), 0);
	pid = tb_broker_pid();
	ck_assert_int_ne(pid, getpid());
	ck_assert_int_eq(smem_region_open("auto", NULL, &o), 0);
	smem_region_close(o);
	smem_region_close(r);
	tb_private_broker_end();
	ck_assert(tb_pid_gone(pid, 100));
}
END_TEST

/* /proc/@pid/@what read into @buf (NULs turned to spaces, as ps shows a command line). */
static void read_proc(pid_t pid, const char *what, char *buf, size_t cap)
{
	char path[64];
	ssize_t n, i;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, cap - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	for (i = 0; i < n; i++)
		if (buf[i] == 0 || buf[i] == '\n')
			buf[i] = ' ';
	buf[n] = 0;
}

START_TEST(autostart_execs_smemd_in_a_session_of_its_own)
{
	const char *want = getenv("SMEM_SMEMD");
	char comm[64], cmdline[256], exe[4096], want_real[4096], link[64];
	struct smem_region *r;
	ssize_t n;
	pid_t pid;

	ck_assert_msg(want && *want, "make exports SMEM_SMEMD (the smemd just built)");
	tb_private_path_broker();
	ck_assert_int_eq(smem_region_create("exec", 4096, NULL, &r), 0);
	pid = tb_broker_pid();
	/* What ps shows: the smemd binary, not a copy of this test. */
	read_proc(pid, "comm", comm, sizeof(comm));
	ck_assert_str_eq(comm, "smemd ");
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = 0;
	ck_assert_ptr_nonnull(realpath(want, want_real));
	ck_assert_str_eq(exe, want_real);
	read_proc(pid, "cmdline", cmdline, sizeof(cmdline));
	ck_assert_str_eq(cmdline, "smemd --foreground --idle-exit 5 --grace 0 --remove-socket ");
	/* Detached: another session, and not our child. */
	ck_assert_int_ne(getsid(pid), getsid(0));
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
	smem_region_close(r);
	tb_private_broker_end();
	ck_assert(tb_pid_gone(pid, 100));
}
END_TEST

START_TEST(missing_smemd_fails_and_the_next_autostart_recovers)
{
	char *saved = strdup(getenv("SMEM_SMEMD"));
	struct smem_region *r = NULL;
	char missing[300];

	tb_private_path_broker();
	snprintf(missing, sizeof(missing), "%s/no-such-smemd", tb_dir);
	setenv("SMEM_SMEMD", missing, 1);
	ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), -ECONNREFUSED);
	ck_assert_ptr_null(r);
	/* The socket we bound for it stays as a stale file, which the next start replaces. */
	setenv("SMEM_SMEMD", saved, 1);
	free(saved);
	ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), 0);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

START_TEST(autostarted_broker_exits_when_idle_and_removes_its_socket)
{
	struct smem_region *r;
	pid_t pid;

	tb_private_path_broker();
	setenv("SMEM_BROKER_IDLE_EXIT", "1", 1);
	ck_assert_int_eq(smem_region_create("idle", 4096, NULL, &r), 0);
	unsetenv("SMEM_BROKER_IDLE_EXIT");
	pid = tb_broker_pid();
	smem_region_close(r);
	smem__broker_disconnect();
	ck_assert_msg(tb_pid_gone(pid, 10000), "idle broker %d still runs", (int)pid);
	ck_assert_int_ne(access(tb_sock, F_OK), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

static int race_child(void *arg)
{
	int *p = arg;	/* p[0]: go (read end), p[1]: results (write end), p[2]: go (write end) */
	struct smem__broker_info info;
	struct smem_region *r;
	char go, name[64];
	int err;

	close(p[2]);	/* the parent's close of the last write end is the starting shot */
	if (read(p[0], &go, 1) != 0)
		return 10;
	snprintf(name, sizeof(name), "race-%d", (int)getpid());
	err = smem_region_create(name, 4096, NULL, &r);
	if (err)
		return 11;
	if (smem__broker_hello(NULL, &info))
		return 12;
	if (write(p[1], &info.pid, sizeof(info.pid)) != sizeof(info.pid))
		return 13;
	smem_region_close(r);
	return 0;
}

START_TEST(eight_racing_autostarts_end_with_exactly_one_broker)
{
	int go[2], res[2], arg[3], i;
	pid_t kids[8], first = 0, got;

	tb_private_path_broker();
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	arg[0] = go[0];
	arg[1] = res[1];
	arg[2] = go[1];
	for (i = 0; i < 8; i++)
		kids[i] = t_fork(race_child, arg);
	close(go[1]);	/* all start at once */
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(t_wait(kids[i]), 0);
	close(res[1]);
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(read(res[0], &got, sizeof(got)), sizeof(got));
		if (i == 0)
			first = got;
		ck_assert_int_eq(got, first);	/* every process reached the same broker */
	}
	close(res[0]);
	close(go[0]);
	ck_assert_int_eq(tb_broker_pid(), first);
	tb_private_broker_end();
}
END_TEST

START_TEST(no_autostart_gives_econnrefused_and_starts_nothing)
{
	static const char *const yes[] = { "1", "true", "TRUE", "True", "yes", "YES", "Yes" };
	struct smem_region *r = NULL;
	unsigned i;

	tb_private_path_broker();
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		setenv("SMEM_NO_AUTOSTART", yes[i], 1);
		ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), -ECONNREFUSED);
		ck_assert_ptr_null(r);
		ck_assert_int_eq(smem_region_open("x", NULL, &r), -ECONNREFUSED);
		ck_assert_int_ne(access(tb_sock, F_OK), 0);
		ck_assert_int_eq(tb_count_dir(tb_dir), 0);
	}
	/* Anything else does not turn it off: "0", "no", a typo. */
	setenv("SMEM_NO_AUTOSTART", "0", 1);
	ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), 0);
	smem_region_close(r);
	unsetenv("SMEM_NO_AUTOSTART");
	tb_private_broker_end();
}
END_TEST

/* Close @r, then stop the broker at the default address and see its socket go. */
static void close_and_stop_default_broker(struct smem_region *r)
{
	smem_region_close(r);
	smem__broker_disconnect();
	ck_assert_int_eq(smem__broker_stop(NULL), 0);
	for (int i = 0; i < 200 && access(tb_sock, F_OK) == 0; i++)
		usleep(10000);
	ck_assert_int_ne(access(tb_sock, F_OK), 0);
}

START_TEST(default_socket_directory_open_to_others_is_refused)
{
	char smemdir[280];
	struct smem_region *r;

	tb_private_path_broker();	/* a fresh tb_dir to play XDG_RUNTIME_DIR */
	unsetenv("SMEM_BROKER");
	setenv("XDG_RUNTIME_DIR", tb_dir, 1);
	snprintf(smemdir, sizeof(smemdir), "%s/smem", tb_dir);
	snprintf(tb_sock, sizeof(tb_sock), "%s/broker.sock", smemdir);
	ck_assert_int_eq(mkdir(smemdir, 0700), 0);
	ck_assert_int_eq(chmod(smemdir, 0777), 0);
	/* Anybody could have planted a socket in there. */
	ck_assert_int_eq(smem_region_create("xdg", 4096, NULL, &r), -EPERM);
	ck_assert_ptr_nonnull(strstr(smem_last_error(), "permission denied (socket directory"));
	ck_assert_ptr_nonnull(strstr(smem_last_error(), tb_sock));
	ck_assert_int_ne(access(tb_sock, F_OK), 0);
	ck_assert_int_eq(chmod(smemdir, 0700), 0);
	ck_assert_int_eq(smem_region_create("xdg", 4096, NULL, &r), 0);
	ck_assert_int_eq(access(tb_sock, F_OK), 0);
	close_and_stop_default_broker(r);
	ck_assert_int_eq(rmdir(smemdir), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

/* Create and close a name at the default address (starting a broker), then stop that broker. */
static void start_and_stop_default_broker(void)
{
	struct smem_region *r;

	ck_assert_int_eq(smem_region_create("dbg", 4096, NULL, &r), 0);
	close_and_stop_default_broker(r);
}

START_TEST(smem_debug_reports_a_private_autostart_once)
{
	char smemdir[280], out[4096];
	int cap, saved, i, lines = 0;
	const char *p;
	ssize_t n;

	tb_private_path_broker();	/* a fresh tb_dir to play a container's fresh runtime dir */
	unsetenv("SMEM_BROKER");
	setenv("XDG_RUNTIME_DIR", tb_dir, 1);
	snprintf(smemdir, sizeof(smemdir), "%s/smem", tb_dir);
	snprintf(tb_sock, sizeof(tb_sock), "%s/broker.sock", smemdir);
	cap = memfd_create("stderr", MFD_CLOEXEC);
	ck_assert_int_ge(cap, 0);
	saved = dup(2);
	ck_assert_int_eq(dup2(cap, 2), 2);
	/* Silent without SMEM_DEBUG; with it, one report for two starts. */
	unsetenv("SMEM_DEBUG");
	start_and_stop_default_broker();
	setenv("SMEM_DEBUG", "1", 1);
	for (i = 0; i < 2; i++)
		start_and_stop_default_broker();
	unsetenv("SMEM_DEBUG");
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	n = pread(cap, out, sizeof(out) - 1, 0);
	close(cap);
	ck_assert_int_gt(n, 0);
	out[n] = 0;
	for (p = out; (p = strstr(p, "started a private one")); p++)
		lines++;
	ck_assert_int_eq(lines, 1);
	ck_assert_ptr_nonnull(strstr(out, tb_sock));		/* it names the address */
	ck_assert_ptr_nonnull(strstr(out, "SMEM_BROKER"));	/* and what to do */
	ck_assert_int_eq(rmdir(smemdir), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

START_TEST(nothing_appears_in_dev_shm_or_beside_the_socket)
{
	struct smem_region *r, *o;
	int shm_before = tb_count_dir("/dev/shm");

	tb_private_path_broker();
	ck_assert_int_eq(smem_region_create("shm", 1 << 20, NULL, &r), 0);
	ck_assert_int_eq(smem_region_open("shm", NULL, &o), 0);
	ck_assert_int_eq(tb_count_dir("/dev/shm"), shm_before);
	ck_assert_int_eq(tb_count_dir(tb_dir), 1);	/* the socket, no lock file */
	smem_region_close(o);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

START_TEST(opens_reuse_one_connection)
{
	struct smem_region *r, *o;
	int fds, i;

	tb_private_path_broker();
	ck_assert_int_eq(smem_region_create("reuse", 4096, NULL, &r), 0);
	ck_assert_int_eq(smem_region_open("reuse", NULL, &o), 0);
	smem_region_close(o);
	fds = t_count_fds();
	for (i = 0; i < 200; i++) {
		ck_assert_int_eq(smem_region_open("reuse", NULL, &o), 0);
		smem_region_close(o);
	}
	ck_assert_int_eq(t_count_fds(), fds);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

/* ---- lifetime ------------------------------------------------------------------------ */

struct life {
	int ready[2], done[2];
	const char *name;
	uint32_t flags;
};

static int life_creator(void *arg)
{
	struct life *l = arg;
	struct smem_opts o = { .flags = l->flags };
	struct smem_region *r;

	if (smem_region_create(l->name, 4096, &o, &r))
		return 1;
	strcpy(smem_region_data(r), "alive");
	tb_sig_send(l->ready[1]);
	tb_sig_wait(l->done[0]);	/* until told, or killed */
	return 0;			/* exits without closing: the process's holds go */
}

static pid_t start_creator(struct life *l, const char *name, uint32_t flags)
{
	pid_t pid;

	ck_assert_int_eq(pipe2(l->ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(l->done, O_CLOEXEC), 0);
	l->name = name;
	l->flags = flags;
	pid = t_fork(life_creator, l);
	close(l->ready[1]);	/* a creator that fails gives EOF, not a hang */
	close(l->done[0]);
	ck_assert(tb_sig_wait(l->ready[0]));
	return pid;
}

static void end_creator(struct life *l)
{
	close(l->ready[0]);
	close(l->done[1]);
}

START_TEST(name_disappears_when_its_last_holder_exits)
{
	struct smem_region *o;
	struct life l;
	pid_t pid;

	tb_private_path_broker();
	pid = start_creator(&l, "exits", 0);
	ck_assert_int_eq(smem_region_open("exits", NULL, &o), 0);
	ck_assert_str_eq(smem_region_data(o), "alive");
	tb_sig_send(l.done[1]);
	ck_assert_int_eq(t_wait(pid), 0);
	/* We still hold it: the name stays. */
	ck_assert_int_eq(tb_open_until("exits", 0, 0), 0);
	smem_region_close(o);
	ck_assert_int_eq(tb_open_until("exits", -ENOENT, 1000), -ENOENT);
	end_creator(&l);
	tb_private_broker_end();
}
END_TEST

START_TEST(name_disappears_when_its_holder_is_killed)
{
	struct life l;
	pid_t pid;

	tb_private_path_broker();
	pid = start_creator(&l, "killed", 0);
	ck_assert_int_eq(tb_open_until("killed", 0, 0), 0);
	t_kill9(pid);
	ck_assert_int_eq(tb_open_until("killed", -ENOENT, 1000), -ENOENT);
	end_creator(&l);
	tb_private_broker_end();
}
END_TEST

START_TEST(persistent_name_stays_until_unlinked)
{
	struct smem_region *o;
	struct life l;
	pid_t pid;

	tb_private_path_broker();
	pid = start_creator(&l, "persist", SMEM_PERSIST);
	t_kill9(pid);
	usleep(50000);
	ck_assert_int_eq(smem_region_open("persist", NULL, &o), 0);
	ck_assert_str_eq(smem_region_data(o), "alive");
	ck_assert_int_eq(smem_unlink("persist", NULL), 0);
	/* The mapping outlives the name. */
	ck_assert_str_eq(smem_region_data(o), "alive");
	ck_assert_int_eq(tb_open_until("persist", -ENOENT, 0), -ENOENT);
	ck_assert_int_eq(smem_unlink("persist", NULL), -ENOENT);
	smem_region_close(o);
	/* The name is free again. */
	ck_assert_int_eq(smem_region_create("persist", 4096, NULL, &o), 0);
	smem_region_close(o);
	end_creator(&l);
	tb_private_broker_end();
}
END_TEST

static int close_inherited(void *arg)
{
	struct smem_region *r = arg, *o;
	int err;

	smem_region_close(r);	/* the parent's hold: not ours to release */
	err = smem_region_open("inherited", NULL, &o);
	if (err)
		return 1;
	smem_region_close(o);
	return 0;
}

START_TEST(child_closing_an_inherited_handle_leaves_the_parents_hold)
{
	struct smem_region *r;

	tb_private_path_broker();
	ck_assert_int_eq(smem_region_create("inherited", 4096, NULL, &r), 0);
	ck_assert_int_eq(t_wait(t_fork(close_inherited, r)), 0);
	usleep(20000);
	ck_assert_int_eq(tb_open_until("inherited", 0, 0), 0);
	smem_region_close(r);
	ck_assert_int_eq(tb_open_until("inherited", -ENOENT, 1000), -ENOENT);
	tb_private_broker_end();
}
END_TEST

START_TEST(unlink_rejects_bad_names)
{
	char longname[SMEM_NAME_MAX + 2];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ck_assert_int_eq(smem_unlink(NULL, NULL), -EINVAL);
	ck_assert_int_eq(smem_unlink("", NULL), -EINVAL);
	ck_assert_int_eq(smem_unlink(longname, NULL), -EINVAL);
}
END_TEST

/* ---- access -------------------------------------------------------------------------- */

struct access_try {
	const char *name;
	gid_t gid;		/* primary group to take */
	uint32_t flags;		/* open flags */
};

/* As uid nobody with primary group @gid: the open's result, as a positive code. */
static int access_child(void *arg)
{
	struct access_try *a = arg;
	struct smem_opts o = { .flags = a->flags };
	struct smem_region *r;
	int err;

	if (setgroups(0, NULL) || setgid(a->gid) || setuid(65534))
		return 100;
	err = smem_region_open(a->name, &o, &r);
	if (!err) {
		int acc = fcntl(r->fd, F_GETFL) & O_ACCMODE;

		/* A read-only open gets a read-only description, not the creator's. */
		if ((a->flags & SMEM_RDONLY) && acc != O_RDONLY)
			return 101;
		if (strcmp(smem_region_data(r), "secret") != 0)
			return 102;
		smem_region_close(r);
	}
	return -err;
}

static int access_as_nobody(const char *name, gid_t gid, uint32_t flags)
{
	struct access_try a = { .name = name, .gid = gid, .flags = flags };

	return t_wait(t_fork(access_child, &a));
}

START_TEST(mode_0600_refuses_another_uid_and_0660_admits_the_group)
{
	struct smem_opts o600 = { .mode = 0600 }, o660 = { .mode = 0660 }, o640 = { .mode = 0640 };
	struct smem_region *a, *b, *c;

	if (geteuid() != 0) {
		printf("skip: access test needs root to switch uids\n");
		return;
	}
	tb_private_abstract_broker();
	tb_start_smemd(NULL);
	ck_assert_int_eq(smem_region_create("m600", 4096, &o600, &a), 0);
	ck_assert_int_eq(smem_region_create("m660", 4096, &o660, &b), 0);
	ck_assert_int_eq(smem_region_create("m640", 4096, &o640, &c), 0);
	strcpy(smem_region_data(a), "secret");
	strcpy(smem_region_data(b), "secret");
	strcpy(smem_region_data(c), "secret");

	/* Another uid, another group: nothing. */
	ck_assert_int_eq(access_as_nobody("m600", 65534, 0), EACCES);
	ck_assert_int_eq(access_as_nobody("m600", 65534, SMEM_RDONLY), EACCES);
	ck_assert_int_eq(access_as_nobody("m660", 65534, 0), EACCES);
	/* Another uid in the region's group (the creator's primary group). */
	ck_assert_int_eq(access_as_nobody("m600", getegid(), 0), EACCES);
	ck_assert_int_eq(access_as_nobody("m660", getegid(), 0), 0);
	ck_assert_int_eq(access_as_nobody("m640", getegid(), 0), EACCES);
	ck_assert_int_eq(access_as_nobody("m640", getegid(), SMEM_RDONLY), 0);
	smem_region_close(a);
	smem_region_close(b);
	smem_region_close(c);
	tb_private_broker_end();
}
END_TEST

static int other_uid_admin(void *arg)
{
	(void)arg;
	if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
		return 100;
	if (smem_unlink("owned", NULL) != -EACCES)
		return 1;
	if (smem__broker_stop(NULL) != -EPERM)
		return 2;
	return 0;
}

START_TEST(only_the_owner_unlinks_and_only_the_broker_user_stops_it)
{
	struct smem_opts o = { .mode = 0666 };
	struct smem_region *r;

	if (geteuid() != 0) {
		printf("skip: needs root to switch uids\n");
		return;
	}
	tb_private_abstract_broker();
	tb_start_smemd(NULL);
	ck_assert_int_eq(smem_region_create("owned", 4096, &o, &r), 0);
	ck_assert_int_eq(t_wait(t_fork(other_uid_admin, NULL)), 0);
	ck_assert_int_eq(tb_open_until("owned", 0, 0), 0);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

START_TEST(per_uid_limits_give_edquot)
{
	static const char *const limits[] = { "--max-names", "2", "--max-bytes", "1M", NULL };
	struct smem_region *r[3];

	tb_private_path_broker();
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	tb_start_smemd(limits);
	ck_assert_int_eq(smem_region_create("q1", 4096, NULL, &r[0]), 0);
	ck_assert_int_eq(smem_region_create("q2", 4096, NULL, &r[1]), 0);
	ck_assert_int_eq(smem_region_create("q3", 4096, NULL, &r[2]), -EDQUOT);
	smem_region_close(r[1]);
	ck_assert_int_eq(tb_open_until("q2", -ENOENT, 1000), -ENOENT);
	ck_assert_int_eq(smem_region_create("big", 2 << 20, NULL, &r[1]), -EDQUOT);
	ck_assert_int_eq(smem_region_create("q3", 4096, NULL, &r[1]), 0);
	smem_region_close(r[1]);
	smem_region_close(r[0]);
	tb_private_broker_end();
}
END_TEST

/* ---- smemctl ------------------------------------------------------------------------- */

static void run_capture(const char *cmd, char *out, size_t len)
{
	FILE *f = popen(cmd, "re");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, len - 1, f);
	out[n] = 0;
	ck_assert_int_eq(pclose(f), 0);
}

START_TEST(smemctl_lists_stats_and_removes_names)
{
	struct smem_opts persist = { .flags = SMEM_PERSIST, .mode = 0640 };
	char cmd[512], out[4096];
	struct smem_region *r;

	tb_private_path_broker();
	ck_assert_int_eq(smem_region_create("ctl-region", 10000, &persist, &r), 0);
	snprintf(cmd, sizeof(cmd), "%s/tools/smemctl list", t_build_dir());
	run_capture(cmd, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "ctl-region"));
	ck_assert_ptr_nonnull(strstr(out, "0640"));
	snprintf(cmd, sizeof(cmd), "%s/tools/smemctl --json list", t_build_dir());
	run_capture(cmd, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "\"name\":\"ctl-region\""));
	ck_assert_ptr_nonnull(strstr(out, "\"holders\":1"));
	ck_assert_ptr_nonnull(strstr(out, "\"persist\":true"));
	snprintf(cmd, sizeof(cmd), "%s/tools/smemctl --json stat ctl-region", t_build_dir());
	run_capture(cmd, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "\"data_size\":10000"));
	ck_assert_ptr_nonnull(strstr(out, "\"kind\":\"region\""));
	snprintf(cmd, sizeof(cmd), "%s/tools/smemctl rm ctl-region", t_build_dir());
	run_capture(cmd, out, sizeof(out));
	ck_assert_int_eq(tb_open_until("ctl-region", -ENOENT, 0), -ENOENT);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

static Suite *broker_suite(void)
{
	Suite *s = suite_create("broker");
	TCase *tc;

	tc = tcase_create("autostart");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, first_create_autostarts_a_broker_that_stop_ends);
	tcase_add_test(tc, autostart_execs_smemd_in_a_session_of_its_own);
	tcase_add_test(tc, missing_smemd_fails_and_the_next_autostart_recovers);
	tcase_add_test(tc, autostarted_broker_exits_when_idle_and_removes_its_socket);
	tcase_add_test(tc, smem_debug_reports_a_private_autostart_once);
	tcase_add_test(tc, eight_racing_autostarts_end_with_exactly_one_broker);
	tcase_add_test(tc, no_autostart_gives_econnrefused_and_starts_nothing);
	tcase_add_test(tc, default_socket_directory_open_to_others_is_refused);
	tcase_add_test(tc, nothing_appears_in_dev_shm_or_beside_the_socket);
	tcase_add_test(tc, opens_reuse_one_connection);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifetime");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, name_disappears_when_its_last_holder_exits);
	tcase_add_test(tc, name_disappears_when_its_holder_is_killed);
	tcase_add_test(tc, persistent_name_stays_until_unlinked);
	tcase_add_test(tc, child_closing_an_inherited_handle_leaves_the_parents_hold);
	tcase_add_test(tc, unlink_rejects_bad_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("access");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, mode_0600_refuses_another_uid_and_0660_admits_the_group);
	tcase_add_test(tc, only_the_owner_unlinks_and_only_the_broker_user_stops_it);
	tcase_add_test(tc, per_uid_limits_give_edquot);
	suite_add_tcase(s, tc);

	tc = tcase_create("smemctl");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, smemctl_lists_stats_and_removes_names);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(broker_suite)
