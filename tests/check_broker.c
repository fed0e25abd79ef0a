/* SPDX-License-Identifier: MIT */
/*
 * The broker and its client: auto-start, lifetime of names, access control, hostile input,
 * restart, containers. Each test that starts a broker gives it a private address (a fresh
 * directory, or a fresh abstract name) and stops it with STOP at the end; SMEM_BROKER_IDLE_EXIT
 * makes a broker left behind by a failed test go away on its own a few seconds later.
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
#include "util/testutil.h"

/*
 * Every process that holds a name runs the broker client's helper thread, and these tests
 * fork after that; TSan refuses to start threads in such children unless told otherwise.
 * Weak, so that a definition in the shared test utilities wins.
 */
/* ---- helpers ------------------------------------------------------------------------- */

static char g_dir[256];
static char g_sock[320];

/*
 * A broker address nobody else uses: a path in a fresh directory, made inside the suite's
 * private directory (tests/run-suites removes it) when there is one.
 */
static const char *private_path_broker(void)
{
	const char *env = getenv("SMEM_BROKER");
	const char *slash = env && env[0] == '/' ? strrchr(env, '/') : NULL;

	if (slash && slash != env && slash - env < 128)
		snprintf(g_dir, sizeof(g_dir), "%.*s/tb.XXXXXX", (int)(slash - env), env);
	else
		snprintf(g_dir, sizeof(g_dir), "/tmp/smem-tb.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
	snprintf(g_sock, sizeof(g_sock), "%s/broker.sock", g_dir);
	setenv("SMEM_BROKER", g_sock, 1);
	setenv("SMEM_BROKER_IDLE_EXIT", "5", 1);
	unsetenv("SMEM_NO_AUTOSTART");
	return g_sock;
}

/* An abstract address: no file permissions, so another uid can reach the broker. */
static const char *private_abstract_broker(void)
{
	static unsigned n;

	g_dir[0] = 0;
	snprintf(g_sock, sizeof(g_sock), "@smem-tb-%d-%u-%ld", (int)getpid(), ++n,
		 (long)t_now_ms());
	setenv("SMEM_BROKER", g_sock, 1);
	setenv("SMEM_BROKER_IDLE_EXIT", "5", 1);
	unsetenv("SMEM_NO_AUTOSTART");
	return g_sock;
}

/* Gone, or a zombie nobody reaps (the broker is not our child). */
static bool pid_gone(pid_t pid, int ms)
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

static pid_t broker_pid(void)
{
	struct smem__broker_info info;

	ck_assert_int_eq(smem__broker_hello(NULL, &info), 0);
	ck_assert_int_gt(info.pid, 0);
	return info.pid;
}

/* STOP the private broker, check that it went and left nothing behind. */
static void private_broker_end(void)
{
	struct smem__broker_info info;

	smem__broker_disconnect();
	if (smem__broker_hello(NULL, &info) == 0) {
		ck_assert_int_eq(smem__broker_stop(NULL), 0);
		ck_assert_msg(pid_gone(info.pid, 2000), "broker %d still runs after STOP",
			      (int)info.pid);
	}
	if (g_dir[0]) {
		ck_assert_msg(access(g_sock, F_OK) != 0, "socket file left behind");
		ck_assert_int_eq(rmdir(g_dir), 0);
	}
}

static int count_dir(const char *path)
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
static int broker_extra_fds(pid_t pid)
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
static int open_until(const char *name, int want, int ms)
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
static void sig_send(int fd)
{
	ck_assert_int_eq(write(fd, "x", 1), 1);
}

static bool sig_wait(int fd)
{
	char c;

	return read(fd, &c, 1) == 1;
}

/* ---- auto-start ---------------------------------------------------------------------- */

START_TEST(first_create_autostarts_a_broker_that_stop_ends)
{
	struct smem_region *r, *o;
	pid_t pid;

	private_path_broker();
	ck_assert_int_ne(access(g_sock, F_OK), 0);
	ck_assert_int_eq(smem_region_create("auto", 4096, NULL, &r), 0);
	ck_assert_int_eq(access(g_sock, F_OK), 0);
	pid = broker_pid();
	ck_assert_int_ne(pid, getpid());
	ck_assert_int_eq(smem_region_open("auto", NULL, &o), 0);
	smem_region_close(o);
	smem_region_close(r);
	private_broker_end();
	ck_assert(pid_gone(pid, 100));
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

	private_path_broker();
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
	ck_assert_int_eq(broker_pid(), first);
	private_broker_end();
}
END_TEST

START_TEST(no_autostart_gives_econnrefused_and_starts_nothing)
{
	struct smem_region *r = NULL;

	private_path_broker();
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), -ECONNREFUSED);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(smem_region_open("x", NULL, &r), -ECONNREFUSED);
	ck_assert_int_ne(access(g_sock, F_OK), 0);
	ck_assert_int_eq(count_dir(g_dir), 0);
	unsetenv("SMEM_NO_AUTOSTART");
	private_broker_end();
}
END_TEST

START_TEST(default_socket_directory_open_to_others_is_refused)
{
	char smemdir[280];
	struct smem_region *r;

	private_path_broker();	/* a fresh g_dir to play XDG_RUNTIME_DIR */
	unsetenv("SMEM_BROKER");
	setenv("XDG_RUNTIME_DIR", g_dir, 1);
	snprintf(smemdir, sizeof(smemdir), "%s/smem", g_dir);
	snprintf(g_sock, sizeof(g_sock), "%s/broker.sock", smemdir);
	ck_assert_int_eq(mkdir(smemdir, 0700), 0);
	ck_assert_int_eq(chmod(smemdir, 0777), 0);
	/* Anybody could have planted a socket in there. */
	ck_assert_int_eq(smem_region_create("xdg", 4096, NULL, &r), -EACCES);
	ck_assert_int_ne(access(g_sock, F_OK), 0);
	ck_assert_int_eq(chmod(smemdir, 0700), 0);
	ck_assert_int_eq(smem_region_create("xdg", 4096, NULL, &r), 0);
	ck_assert_int_eq(access(g_sock, F_OK), 0);
	smem_region_close(r);
	smem__broker_disconnect();
	ck_assert_int_eq(smem__broker_stop(NULL), 0);
	for (int i = 0; i < 200 && access(g_sock, F_OK) == 0; i++)
		usleep(10000);
	ck_assert_int_ne(access(g_sock, F_OK), 0);
	ck_assert_int_eq(rmdir(smemdir), 0);
	ck_assert_int_eq(rmdir(g_dir), 0);
}
END_TEST

START_TEST(nothing_appears_in_dev_shm_or_beside_the_socket)
{
	struct smem_region *r, *o;
	int shm_before = count_dir("/dev/shm");

	private_path_broker();
	ck_assert_int_eq(smem_region_create("shm", 1 << 20, NULL, &r), 0);
	ck_assert_int_eq(smem_region_open("shm", NULL, &o), 0);
	ck_assert_int_eq(count_dir("/dev/shm"), shm_before);
	ck_assert_int_eq(count_dir(g_dir), 1);	/* the socket, no lock file */
	smem_region_close(o);
	smem_region_close(r);
	private_broker_end();
}
END_TEST

START_TEST(opens_reuse_one_connection)
{
	struct smem_region *r, *o;
	int fds, i;

	private_path_broker();
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
	private_broker_end();
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
	sig_send(l->ready[1]);
	sig_wait(l->done[0]);	/* until told, or killed */
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
	ck_assert(sig_wait(l->ready[0]));
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

	private_path_broker();
	pid = start_creator(&l, "exits", 0);
	ck_assert_int_eq(smem_region_open("exits", NULL, &o), 0);
	ck_assert_str_eq(smem_region_data(o), "alive");
	sig_send(l.done[1]);
	ck_assert_int_eq(t_wait(pid), 0);
	/* We still hold it: the name stays. */
	ck_assert_int_eq(open_until("exits", 0, 0), 0);
	smem_region_close(o);
	ck_assert_int_eq(open_until("exits", -ENOENT, 1000), -ENOENT);
	end_creator(&l);
	private_broker_end();
}
END_TEST

START_TEST(name_disappears_when_its_holder_is_killed)
{
	struct life l;
	pid_t pid;

	private_path_broker();
	pid = start_creator(&l, "killed", 0);
	ck_assert_int_eq(open_until("killed", 0, 0), 0);
	t_kill9(pid);
	ck_assert_int_eq(open_until("killed", -ENOENT, 1000), -ENOENT);
	end_creator(&l);
	private_broker_end();
}
END_TEST

START_TEST(persistent_name_stays_until_unlinked)
{
	struct smem_region *o;
	struct life l;
	pid_t pid;

	private_path_broker();
	pid = start_creator(&l, "persist", SMEM_PERSIST);
	t_kill9(pid);
	usleep(50000);
	ck_assert_int_eq(smem_region_open("persist", NULL, &o), 0);
	ck_assert_str_eq(smem_region_data(o), "alive");
	ck_assert_int_eq(smem_unlink("persist", NULL), 0);
	/* The mapping outlives the name. */
	ck_assert_str_eq(smem_region_data(o), "alive");
	ck_assert_int_eq(open_until("persist", -ENOENT, 0), -ENOENT);
	ck_assert_int_eq(smem_unlink("persist", NULL), -ENOENT);
	smem_region_close(o);
	/* The name is free again. */
	ck_assert_int_eq(smem_region_create("persist", 4096, NULL, &o), 0);
	smem_region_close(o);
	end_creator(&l);
	private_broker_end();
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

	private_path_broker();
	ck_assert_int_eq(smem_region_create("inherited", 4096, NULL, &r), 0);
	ck_assert_int_eq(t_wait(t_fork(close_inherited, r)), 0);
	usleep(20000);
	ck_assert_int_eq(open_until("inherited", 0, 0), 0);
	smem_region_close(r);
	ck_assert_int_eq(open_until("inherited", -ENOENT, 1000), -ENOENT);
	private_broker_end();
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
	private_abstract_broker();
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
	private_broker_end();
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
	private_abstract_broker();
	ck_assert_int_eq(smem_region_create("owned", 4096, &o, &r), 0);
	ck_assert_int_eq(t_wait(t_fork(other_uid_admin, NULL)), 0);
	ck_assert_int_eq(open_until("owned", 0, 0), 0);
	smem_region_close(r);
	private_broker_end();
}
END_TEST

START_TEST(per_uid_limits_give_edquot)
{
	char smemd[512], names[16], bytes[16];
	struct smem_region *r[3];
	pid_t d;

	private_path_broker();
	snprintf(smemd, sizeof(smemd), "%s/tools/smemd", t_build_dir());
	snprintf(names, sizeof(names), "2");
	snprintf(bytes, sizeof(bytes), "1M");
	d = fork();
	ck_assert_int_ge(d, 0);
	if (d == 0) {
		execl(smemd, "smemd", "--socket", g_sock, "--foreground", "--max-names", names,
		      "--max-bytes", bytes, (char *)NULL);
		_exit(127);
	}
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	for (int i = 0; i < 200 && smem__broker_hello(NULL, NULL); i++)
		usleep(10000);
	ck_assert_int_eq(smem_region_create("q1", 4096, NULL, &r[0]), 0);
	ck_assert_int_eq(smem_region_create("q2", 4096, NULL, &r[1]), 0);
	ck_assert_int_eq(smem_region_create("q3", 4096, NULL, &r[2]), -EDQUOT);
	smem_region_close(r[1]);
	ck_assert_int_eq(open_until("q2", -ENOENT, 1000), -ENOENT);
	ck_assert_int_eq(smem_region_create("big", 2 << 20, NULL, &r[1]), -EDQUOT);
	ck_assert_int_eq(smem_region_create("q3", 4096, NULL, &r[1]), 0);
	smem_region_close(r[1]);
	smem_region_close(r[0]);
	smem__broker_disconnect();
	ck_assert_int_eq(smem__broker_stop(NULL), 0);
	ck_assert_int_eq(t_wait(d), 0);
	ck_assert_int_ne(access(g_sock, F_OK), 0);
	ck_assert_int_eq(rmdir(g_dir), 0);
}
END_TEST

/* ---- hostile input ------------------------------------------------------------------- */

/* Send a raw message (header fields as given) with @nfds fds; return the reply's status. */
static int raw_xchg(int s, uint16_t version, uint16_t op, uint32_t seq, const void *payload,
		    size_t len, const int *fds, int nfds, int32_t *length_override)
{
	unsigned char buf[4096];
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(32 * sizeof(int))];
	} cm;
	struct smem_msg_hdr h = { .version = version, .op = op, .seq = seq,
				  .length = length_override ? (uint32_t)*length_override :
							      (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	struct cmsghdr *cmsg;
	ssize_t n;

	if (nfds) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.b;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, (size_t)nfds * sizeof(int));
	}
	ck_assert_int_ge(sendmsg(s, &msg, MSG_NOSIGNAL), 0);
	n = recv(s, buf, sizeof(buf), 0);
	ck_assert_int_ge(n, (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	ck_assert_int_eq(h.version, SMEM_PROTO_VERSION);
	return h.status;
}

static int raw_send_bytes(int s, const void *p, size_t len)
{
	unsigned char buf[256];
	struct smem_msg_hdr h;
	ssize_t n;

	ck_assert_int_eq(send(s, p, len, MSG_NOSIGNAL), (ssize_t)len);
	n = recv(s, buf, sizeof(buf), 0);
	ck_assert_int_ge(n, (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	ck_assert_int_eq(h.op, 0);	/* unreadable: no op to echo */
	return h.status;
}

static int sealed_memfd(size_t size, unsigned seals)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static int create_raw(int s, uint32_t seq, const char *name, uint64_t declared, const int *fds,
		      int nfds)
{
	unsigned char p[sizeof(struct smem_msg_create) + SMEM_NAME_MAX];
	struct smem_msg_create m = { .size = declared, .kind = SMEM_KIND_REGION,
				     .name_len = (uint16_t)strlen(name) };

	memcpy(p, &m, sizeof(m));
	memcpy(p + sizeof(m), name, m.name_len);
	return raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_CREATE, seq, p, sizeof(m) + m.name_len,
			fds, nfds, NULL);
}

START_TEST(broker_answers_hostile_messages_with_errors_and_leaks_no_fd)
{
	const unsigned seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	struct smem_msg_hello hello = { .version = SMEM_PROTO_VERSION };
	struct smem_msg_name nm = { .name_len = 3 };
	struct smem_msg_release rel = { .id = 12345 };
	unsigned char big[2000], p[64];
	struct smem_region *r;
	int s, fds[16], i, len;
	pid_t bpid;

	private_path_broker();
	ck_assert_int_eq(smem_region_create("hostile", 4096, NULL, &r), 0);	/* starts it */
	bpid = broker_pid();
	ck_assert_int_ge(broker_extra_fds(bpid), 1);	/* at least the memfd of "hostile" */

	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	{
		struct smem__addr a;

		ck_assert_int_eq(smem__addr_resolve(NULL, &a), 0);
		ck_assert_int_eq(connect(s, (struct sockaddr *)&a.sun, a.len), 0);
	}
	/* Unreadable: shorter than a header, or empty. */
	ck_assert_int_eq(raw_send_bytes(s, "abc", 3), -EBADMSG);
	ck_assert_int_eq(raw_send_bytes(s, "", 0), -EBADMSG);
	/* Wrong version, and anything before HELLO. */
	ck_assert_int_eq(raw_xchg(s, 99, SMEM_OP_HELLO, 1, &hello, sizeof(hello), NULL, 0, NULL),
			 -EPROTONOSUPPORT);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_LIST, 2, p, 8, NULL, 0, NULL),
			 -EPROTO);
	hello.version = 7;
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_HELLO, 3, &hello, sizeof(hello),
				  NULL, 0, NULL), -EPROTONOSUPPORT);
	hello.version = SMEM_PROTO_VERSION;
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_HELLO, 4, &hello, sizeof(hello),
				  NULL, 0, NULL), 0);
	/* Unknown ops, lying lengths, oversized, truncated payloads. */
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, 0, 5, NULL, 0, NULL, 0, NULL),
			 -EOPNOTSUPP);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, 999, 6, NULL, 0, NULL, 0, NULL),
			 -EOPNOTSUPP);
	len = 100;
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_LIST, 7, p, 8, NULL, 0, &len),
			 -EBADMSG);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_STAT, 8, big, sizeof(big), NULL,
				  0, NULL), -EMSGSIZE);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_CREATE, 9, p, 10, NULL, 0, NULL),
			 -EBADMSG);
	memcpy(p, &nm, sizeof(nm));
	memcpy(p + sizeof(nm), "ab", 2);	/* name_len says 3, 2 bytes follow */
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_OPEN, 10, p, sizeof(nm) + 2,
				  NULL, 0, NULL), -EBADMSG);
	memcpy(p + sizeof(nm), "a\0b", 3);	/* NUL inside a name */
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_OPEN, 11, p, sizeof(nm) + 3,
				  NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_RELEASE, 12, &rel, sizeof(rel),
				  NULL, 0, NULL), -ENOENT);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_STOP, 13, p, 1, NULL, 0, NULL),
			 -EBADMSG);

	/* fds where none are expected, too many fds, none where one is. */
	for (i = 0; i < 16; i++)
		fds[i] = sealed_memfd(8192, seals);
	memcpy(p + sizeof(nm), "abc", 3);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_OPEN, 20, p, sizeof(nm) + 3,
				  fds, 1, NULL), -EBADMSG);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_HELLO, 21, &hello,
				  sizeof(hello), fds, 3, NULL), -EBADMSG);
	ck_assert_int_eq(create_raw(s, 22, "two", 8192, fds, 2), -EBADMSG);
	ck_assert_int_eq(create_raw(s, 23, "none", 8192, NULL, 0), -EBADMSG);
	/* More fds than the broker's control buffer: MSG_CTRUNC. */
	ck_assert_int_eq(create_raw(s, 24, "many", 8192, fds, 16), -EBADMSG);
	for (i = 1; i < 16; i++)
		close(fds[i]);

	/* Memfds a peer could truncate under the others, or that lie about their size. */
	fds[1] = sealed_memfd(8192, 0);
	ck_assert_int_eq(create_raw(s, 30, "unsealed", 8192, &fds[1], 1), -EPROTO);
	close(fds[1]);
	fds[1] = sealed_memfd(8192, F_SEAL_SHRINK | F_SEAL_SEAL);
	ck_assert_int_eq(create_raw(s, 31, "growable", 8192, &fds[1], 1), -EPROTO);
	close(fds[1]);
	ck_assert_int_eq(create_raw(s, 32, "short", 1 << 20, fds, 1), -EINVAL);
	fds[1] = sealed_memfd(100, seals);
	ck_assert_int_eq(create_raw(s, 33, "tiny", 100, &fds[1], 1), -EINVAL);
	close(fds[1]);
	ck_assert_int_ge(pipe2(&fds[1], O_CLOEXEC), 0);
	ck_assert_int_eq(create_raw(s, 34, "pipe", 8192, &fds[1], 1), -EPROTO);
	close(fds[1]);
	close(fds[2]);
	ck_assert_int_eq(create_raw(s, 35, "hostile", 8192, fds, 1), -EEXIST);
	/* And a good one still works on the same connection. */
	ck_assert_int_eq(create_raw(s, 36, "fine", 8192, fds, 1), 0);
	close(fds[0]);
	close(s);	/* releases "fine" */

	ck_assert_int_eq(open_until("fine", -ENOENT, 1000), -ENOENT);
	ck_assert_int_eq(broker_pid(), bpid);	/* survived */
	smem_region_close(r);
	smem__broker_disconnect();
	/* Every fd we sent it, and every connection, is gone once it has seen the hangups. */
	for (i = 0; i < 100 && broker_extra_fds(bpid) != 0; i++)
		usleep(10000);
	ck_assert_int_eq(broker_extra_fds(bpid), 0);
	private_broker_end();
}
END_TEST

/* ---- restart ------------------------------------------------------------------------- */

static int restart_opener(void *arg)
{
	int *p = arg;	/* p[0]: ready (write), p[1]: done (read), p[2]: go (read) */
	struct smem_opts o = { .flags = SMEM_RDONLY };
	struct smem_region *r;

	if (!sig_wait(p[2]))
		return 4;
	if (smem_region_open("held", &o, &r))
		return 1;
	if (write(p[0], "x", 1) != 1)
		return 2;
	if (!sig_wait(p[1]))
		return 3;
	smem_region_close(r);
	return 0;
}

START_TEST(broker_killed_keeps_mappings_and_holders_reregister)
{
	struct smem_region *r, *h, *o;
	int ready[2], done[2], go[2], arg[3];
	pid_t b1, b2, opener;

	private_path_broker();
	/*
	 * Another process will hold "held" read-only. It is forked before we hold anything,
	 * that is before our helper thread exists: ASan's runtime sometimes fails to start a
	 * thread in a child forked from a multithreaded process, and the opener needs its own.
	 */
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	arg[0] = ready[1];
	arg[1] = done[0];
	arg[2] = go[0];
	opener = t_fork(restart_opener, arg);
	ck_assert_int_eq(smem_region_create("restart", 8192, NULL, &r), 0);
	ck_assert_int_eq(smem_region_create("held", 4096, NULL, &h), 0);
	strcpy(smem_region_data(r), "before");
	sig_send(go[1]);
	ck_assert(sig_wait(ready[0]));

	b1 = broker_pid();
	ck_assert_int_eq(kill(b1, SIGKILL), 0);
	ck_assert(pid_gone(b1, 2000));
	/* Mappings are just mappings. */
	ck_assert_str_eq(smem_region_data(r), "before");
	strcpy(smem_region_data(r), "after");

	/* The holders' helper threads start a new broker and re-register. */
	ck_assert_int_eq(open_until("restart", 0, 3000), 0);
	ck_assert_int_eq(smem_region_open("restart", NULL, &o), 0);
	ck_assert_str_eq(smem_region_data(o), "after");
	smem_region_close(o);
	b2 = broker_pid();
	ck_assert_int_ne(b1, b2);
	/* "held" now lives on through the read-only opener alone. */
	smem_region_close(h);
	ck_assert_int_eq(open_until("held", 0, 3000), 0);
	sig_send(done[1]);
	ck_assert_int_eq(t_wait(opener), 0);
	ck_assert_int_eq(open_until("held", -ENOENT, 1000), -ENOENT);
	/* The creator's hold is still counted: closing ends the name. */
	smem_region_close(r);
	ck_assert_int_eq(open_until("restart", -ENOENT, 1000), -ENOENT);
	close(ready[0]);
	close(ready[1]);
	close(done[0]);
	close(done[1]);
	close(go[0]);
	close(go[1]);
	private_broker_end();
}
END_TEST

/* ---- containers ---------------------------------------------------------------------- */

struct ns_arg {
	int pipe_fd;		/* creator: write when ready; opener: unused */
	int done_fd;		/* creator: read to finish */
	bool creator;
};

static int ns_inner(struct ns_arg *a)
{
	struct smem_region *r;
	int err;

	if (getpid() != 1)
		return 50;	/* not in a fresh pid namespace */
	if (a->creator) {
		err = smem_region_create("ns-shared", 4096, NULL, &r);
		if (err)
			return 51;
		strcpy(smem_region_data(r), "across namespaces");
		if (write(a->pipe_fd, "x", 1) != 1)
			return 52;
		if (!sig_wait(a->done_fd))
			return 53;
		smem_region_close(r);
		return 0;
	}
	err = smem_region_open("ns-shared", NULL, &r);
	if (err)
		return 60;
	err = strcmp(smem_region_data(r), "across namespaces") ? 61 : 0;
	strcpy(smem_region_data(r), "seen");
	smem_region_close(r);
	return err;
}

/* unshare net+ipc+pid, then fork into the new pid namespace. 77: not permitted. */
static int ns_outer(void *arg)
{
	pid_t pid;

	if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID) < 0)
		return 77;
	pid = fork();
	if (pid < 0)
		return 78;
	if (pid == 0)
		_exit(ns_inner(arg));
	return t_wait(pid);
}

START_TEST(processes_in_separate_namespaces_share_a_region_through_a_path_socket)
{
	struct ns_arg c = { .creator = true }, o = { .creator = false };
	int ready[2], done[2], rc;
	pid_t pc, po;

	private_path_broker();
	{
		struct smem_region *boot;

		/* Start the broker here, in our namespaces. */
		ck_assert_int_eq(smem_region_create("boot", 4096, NULL, &boot), 0);
		smem_region_close(boot);
	}
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
	c.pipe_fd = ready[1];
	c.done_fd = done[0];
	pc = t_fork(ns_outer, &c);
	close(ready[1]);	/* so that a creator that fails gives EOF */
	close(done[0]);
	if (!sig_wait(ready[0])) {
		rc = t_wait(pc);
		close(ready[0]);
		close(done[1]);
		if (rc == 77) {
			printf("skip: unshare(CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWPID) not permitted\n");
			private_broker_end();
			return;
		}
		ck_abort_msg("creator in new namespaces failed: %d", rc);
	}
	po = t_fork(ns_outer, &o);
	ck_assert_int_eq(t_wait(po), 0);
	sig_send(done[1]);
	ck_assert_int_eq(t_wait(pc), 0);
	close(ready[0]);
	close(done[1]);
	private_broker_end();
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

	private_path_broker();
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
	ck_assert_int_eq(open_until("ctl-region", -ENOENT, 0), -ENOENT);
	smem_region_close(r);
	private_broker_end();
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

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, broker_answers_hostile_messages_with_errors_and_leaks_no_fd);
	suite_add_tcase(s, tc);

	tc = tcase_create("restart");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, broker_killed_keeps_mappings_and_holders_reregister);
	suite_add_tcase(s, tc);

	tc = tcase_create("containers");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, processes_in_separate_namespaces_share_a_region_through_a_path_socket);
	suite_add_tcase(s, tc);

	tc = tcase_create("smemctl");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, smemctl_lists_stats_and_removes_names);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(broker_suite)
