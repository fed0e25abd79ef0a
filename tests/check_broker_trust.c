/* SPDX-License-Identifier: MIT */
/*
 * The broker as a trust boundary, from the client's side (docs/SECURITY.md): a client gives
 * nothing to a broker of a uid it does not trust (an impostor at an abstract address, or at a
 * shared path after the real broker died), never replaces somebody else's dead broker with a
 * weaker one of its own, and never stalls in close() because of a dead broker. Each test
 * performs the attack for real: the impostor is a process running as `nobody`, and it counts
 * every connection, message and fd that reaches it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "util/brokerutil.h"
#include "util/testutil.h"

#define NOBODY		65534
#define DAEMON_UID	1	/* a third uid: neither the victim (root) nor the impostor */

static int become(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
		return -1;
	return 0;
}

/* ---- the impostor ------------------------------------------------------------------------ */

/* What reached the impostor. */
struct imp_counts {
	int conns, msgs, fds;
};

struct impostor {
	pid_t pid;
	int stop_w;		/* write: the impostor reports and exits */
	int res_r;		/* struct imp_counts */
};

struct imp_arg {
	const char *addr;	/* "@name" or a path (an existing file there is replaced) */
	int ready_w, stop_r, res_w;
};

/* Answer a request as a broker would: HELLO claims to be root, CREATE/OPEN "succeed". */
static void imp_reply(int c, const unsigned char *buf, ssize_t n)
{
	unsigned char out[sizeof(struct smem_msg_hdr) + SMEM__ENTRY_REPLY_MAX];
	struct smem_msg_hdr h;
	size_t len = 0;

	if (n < (ssize_t)sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	if (h.op == SMEM_OP_HELLO) {
		struct smem_msg_hello_reply r = { .version = SMEM_PROTO_VERSION, .pid = 1,
						  .uid = 0, .max_reply = SMEM_PROTO_MAX_REPLY };

		memcpy(out + sizeof(h), &r, sizeof(r));
		len = sizeof(r);
	} else if (h.op == SMEM_OP_CREATE || h.op == SMEM_OP_OPEN) {
		struct smem_msg_entry e = { .id = 7, .size = 8192, .kind = SMEM_KIND_REGION,
					    .mode = 0600, .holders = 1, .name_len = 1 };

		memset(out + sizeof(h), 0, smem_msg_entry_size(1));
		memcpy(out + sizeof(h), &e, sizeof(e));
		out[sizeof(h) + sizeof(e)] = 'x';
		len = smem_msg_entry_size(1);
	}
	h.length = (uint32_t)len;
	h.status = 0;
	memcpy(out, &h, sizeof(h));
	if (send(c, out, sizeof(h) + len, MSG_NOSIGNAL) < 0) {
		/* the client went away: it is counted already */
	}
}

/* Take every pending connection and message (nothing blocks), counting them and their fds. */
static void imp_drain(int s, struct pollfd *pfd, int *n, struct imp_counts *cnt)
{
	int c, i;

	while (*n < 64 && (c = accept4(s, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		cnt->conns++;
		pfd[(*n)++] = (struct pollfd){ .fd = c, .events = POLLIN };
	}
	for (i = 2; i < *n; i++) {
		for (;;) {
			union {
				struct cmsghdr align;
				char b[CMSG_SPACE(8 * sizeof(int))];
			} cm;
			unsigned char buf[2048];
			struct iovec iov = { buf, sizeof(buf) };
			struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
					      .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
			int fds[8], k, got;
			ssize_t len;

			len = recvmsg(pfd[i].fd, &msg, MSG_CMSG_CLOEXEC);
			if (len < 0 && errno == EAGAIN)
				break;
			if (len <= 0) {
				close(pfd[i].fd);
				pfd[i--] = pfd[--*n];
				break;
			}
			cnt->msgs++;
			got = smem__cmsg_take_fds(&msg, fds, 8);
			cnt->fds += got;
			for (k = 0; k < got; k++)
				close(fds[k]);
			imp_reply(pfd[i].fd, buf, len);
		}
	}
}

/* Runs as nobody: bind @addr, then serve and count until told to stop. */
static int imp_main(void *arg)
{
	struct imp_arg *a = arg;
	struct imp_counts cnt = { 0 };
	struct pollfd pfd[64];
	struct smem__addr sa;
	int n = 2, s;

	if (become(NOBODY, NOBODY) || smem__addr_resolve(a->addr, &sa))
		return 1;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return 2;
	if (!sa.abstract)
		unlink(sa.text);
	if (bind(s, (struct sockaddr *)&sa.sun, sa.len) < 0 ||
	    (!sa.abstract && chmod(sa.text, 0666) < 0) || listen(s, 16) < 0)
		return 3;
	if (write(a->ready_w, "x", 1) != 1)
		return 4;
	pfd[0] = (struct pollfd){ .fd = a->stop_r, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = s, .events = POLLIN };
	do {
		if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR)
			return 5;
		imp_drain(s, pfd, &n, &cnt);
	} while (!pfd[0].revents);
	if (write(a->res_w, &cnt, sizeof(cnt)) != (ssize_t)sizeof(cnt))
		return 6;
	return 0;
}

/* Start an impostor at @addr, running as nobody, and wait until it listens. */
static void impostor_start(struct impostor *imp, const char *addr)
{
	int ready[2], stop[2], res[2];
	struct imp_arg a = { .addr = addr };
	char c;

	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(stop, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	a.ready_w = ready[1];
	a.stop_r = stop[0];
	a.res_w = res[1];
	imp->pid = t_fork(imp_main, &a);
	close(ready[1]);
	close(stop[0]);
	close(res[1]);
	ck_assert_msg(read(ready[0], &c, 1) == 1, "impostor failed to start: %d", t_wait(imp->pid));
	close(ready[0]);
	imp->stop_w = stop[1];
	imp->res_r = res[0];
}

/* Stop the impostor and return what reached it. */
static struct imp_counts impostor_end(struct impostor *imp)
{
	struct imp_counts cnt;

	tb_sig_send(imp->stop_w);	/* the child has the write end too: no EOF to wait for */
	close(imp->stop_w);
	ck_assert_int_eq(read(imp->res_r, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
	close(imp->res_r);
	ck_assert_int_eq(t_wait(imp->pid), 0);
	return cnt;
}

/* ---- impostor brokers ---------------------------------------------------------------------- */

START_TEST(client_gives_nothing_to_an_impostor_at_an_abstract_address)
{
	struct smem_opts o = { .mode = 0600 };
	struct smem_region *r = NULL;
	struct impostor imp;
	struct imp_counts cnt;
	char addr[64], want[400];

	if (!tb_need_root())
		return;
	/* The attacker binds the name first: abstract names have no permissions to stop it. */
	snprintf(addr, sizeof(addr), "@smem-trust-%d-%lld", (int)getpid(), t_now_ms());
	setenv("SMEM_BROKER", addr, 1);
	impostor_start(&imp, addr);
	ck_assert_int_eq(smem_region_create("secret", 4096, &o, &r), -EPERM);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(smem_region_open("secret", NULL, &r), -EPERM);
	/* smem_last_error() says who answered and why it got nothing, naming the address. */
	snprintf(want, sizeof(want), "broker at %s runs as uid 65534, which this process does not "
		 "trust (not its own uid 0, not root, and an abstract address proves nothing): "
		 "nothing was sent", addr);
	ck_assert_str_eq(smem_last_error(), want);
	ck_assert_int_eq(smem_unlink("secret", NULL), -EPERM);
	ck_assert_int_eq(smem__broker_hello(NULL, NULL), -EPERM);
	cnt = impostor_end(&imp);
	/* We did reach it, and sent it nothing: not even a HELLO, let alone a memfd. */
	ck_assert_int_ge(cnt.conns, 4);
	ck_assert_int_eq(cnt.msgs, 0);
	ck_assert_int_eq(cnt.fds, 0);
}
END_TEST

START_TEST(holder_does_not_reregister_with_an_impostor_that_took_a_shared_path)
{
	struct smem_opts o = { .mode = 0600 };
	struct smem_region *r, *o2;
	struct impostor imp;
	struct imp_counts cnt;
	struct smem__broker_info info;
	pid_t real;

	if (!tb_need_root())
		return;
	/* A path anybody may write to, and its broker run by a daemon uid (a supervisor's). */
	tb_shared_dir(0777);
	real = tb_spawn_smemd(DAEMON_UID, NULL);
	ck_assert_int_eq(smem__broker_hello(NULL, &info), 0);
	ck_assert_int_eq(info.pid, real);
	/* Root's private memory, held at the daemon's broker (its uid is now pinned). */
	ck_assert_int_eq(smem_region_create("secret", 4096, &o, &r), 0);
	strcpy(smem_region_data(r), "root's secret");

	/* nobody takes the path over, then the real broker dies: we must not come back to it. */
	impostor_start(&imp, tb_sock);
	t_kill9(real);
	usleep(400000);	/* the helper thread has seen the hangup and tried, twice or more */
	ck_assert_int_eq(smem_region_open("secret", NULL, &o2), -EPERM);
	ck_assert_str_eq(smem_region_data(r), "root's secret");	/* mappings are untouched */
	cnt = impostor_end(&imp);
	ck_assert_int_ge(cnt.conns, 2);
	ck_assert_int_eq(cnt.msgs, 0);
	ck_assert_int_eq(cnt.fds, 0);

	/* The supervisor restarts the daemon's broker: same uid, so the hold comes back. */
	ck_assert_int_eq(unlink(tb_sock), 0);
	real = tb_spawn_smemd(DAEMON_UID, NULL);
	ck_assert_int_eq(tb_open_until("secret", 0, 3000), 0);
	ck_assert_int_eq(smem_region_open("secret", NULL, &o2), 0);
	ck_assert_str_eq(smem_region_data(o2), "root's secret");
	smem_region_close(o2);
	smem_region_close(r);
	smem__broker_disconnect();
	ck_assert_int_eq(smem__broker_stop(NULL), 0);
	ck_assert_int_eq(t_wait(real), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

/* ---- auto-start ---------------------------------------------------------------------------- */

START_TEST(dead_shared_broker_is_not_replaced_by_a_weaker_one)
{
	struct smem_region *r, *x = NULL;
	char gid[16];
	const char *const args[] = { "--group", gid, NULL };
	struct stat before, after;
	struct smem__addr a;
	long long t0, dt;

	/* A broker for a group, in a directory the group may enter: a supervisor's broker. */
	tb_shared_dir(0750);
	snprintf(gid, sizeof(gid), "%u", (unsigned)getegid());
	tb_start_smemd(args);
	ck_assert_int_eq(smem_region_create("shared", 4096, NULL, &r), 0);
	ck_assert_int_eq(lstat(tb_sock, &before), 0);
	ck_assert_int_eq(before.st_mode & 0777, 0660);
	tb_kill_smemd();

	/* A new request waits briefly for the supervisor, then fails; nothing is started. */
	t0 = t_now_ms();
	ck_assert_int_eq(smem_region_create("other", 4096, NULL, &x), -ECONNREFUSED);
	dt = t_now_ms() - t0;
	ck_assert_ptr_null(x);
	ck_assert_msg(dt < 3000, "create took %lld ms", dt);
	/* Nor did our helper thread, which saw the hangup meanwhile, start one. */
	usleep(300000);
	ck_assert_int_eq(lstat(tb_sock, &after), 0);
	ck_assert_int_eq(after.st_ino, before.st_ino);
	ck_assert_int_eq(after.st_mode, before.st_mode);
	ck_assert_int_eq(after.st_gid, before.st_gid);
	ck_assert_int_eq(smem__addr_resolve(NULL, &a), 0);
	ck_assert_int_eq(smem__sock_connect(&a), -ECONNREFUSED);	/* nobody listens */
	smem_region_close(r);
	ck_assert_int_eq(unlink(tb_sock), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

START_TEST(nothing_is_started_at_an_abstract_or_shared_address)
{
	struct smem_region *r = NULL;
	char addr[64], got[128], cmd[512], out[512];
	long long t0;
	size_t n;
	FILE *f;

	/* Abstract: anybody could bind the name, so it proves nothing to have started one. */
	snprintf(addr, sizeof(addr), "@smem-trust-none-%d-%lld", (int)getpid(), t_now_ms());
	setenv("SMEM_BROKER", addr, 1);
	unsetenv("SMEM_NO_AUTOSTART");
	t0 = t_now_ms();
	ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), -ECONNREFUSED);
	ck_assert_int_lt(t_now_ms() - t0, 3000);
	ck_assert_int_eq(smem__broker_hello(NULL, NULL), -ECONNREFUSED);
	ck_assert_int_eq(smem_broker_address(NULL, got, sizeof(got)), (int)strlen(addr));
	ck_assert_str_eq(got, addr);
	ck_assert_int_eq(smem_broker_address(NULL, got, strlen(addr)), -ERANGE);
	/* The tools say which broker did not answer. */
	snprintf(cmd, sizeof(cmd), "%s/tools/smemctl --json list", t_build_dir());
	f = popen(cmd, "re");
	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	ck_assert_int_ne(pclose(f), 0);
	snprintf(got, sizeof(got), "\"errno\":%d,", ECONNREFUSED);
	ck_assert_msg(strstr(out, got), "smemctl said: %s", out);
	snprintf(got, sizeof(got), "\"broker\":\"%s\"", addr);
	ck_assert_msg(strstr(out, got), "smemctl said: %s", out);
	/* A directory others may enter is not ours to start brokers in. */
	tb_shared_dir(0755);
	ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), -ECONNREFUSED);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(tb_count_dir(tb_dir), 0);
	/* The same directory closed to others is private: a broker is started there. */
	ck_assert_int_eq(chmod(tb_dir, 0700), 0);
	ck_assert_int_eq(smem_region_create("x", 4096, NULL, &r), 0);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

/* ---- close never blocks -------------------------------------------------------------------- */

struct stall_arg {
	uid_t uid;
	gid_t gid;
	int ready_w, go_r;
};

static void *create_while_broker_is_dead(void *arg)
{
	struct smem_region *r;
	int *err = arg;

	*err = smem_region_create("blocked", 4096, NULL, &r);
	if (*err == 0)
		smem_region_close(r);
	return NULL;
}

/* The victim: holds a region at a shared broker that dies, then closes it. */
static int stall_victim(void *arg)
{
	struct stall_arg *a = arg;
	struct smem_region *r;
	long long t0, dt;
	int err = 1, fds0;
	pthread_t t;

	if (a->uid != geteuid() && become(a->uid, a->gid))
		return 100;
	fds0 = t_count_fds();
	if (smem_region_create("held", 4096, NULL, &r))
		return 1;
	if (write(a->ready_w, "x", 1) != 1 || !tb_sig_wait(a->go_r))
		return 2;
	/* The broker is dead; a request now waits for its supervisor, holding the connection. */
	if (pthread_create(&t, NULL, create_while_broker_is_dead, &err))
		return 3;
	usleep(100000);
	t0 = t_now_ms();
	smem_region_close(r);
	dt = t_now_ms() - t0;
	pthread_join(t, NULL);
	if (dt >= 500) {
		fprintf(stderr, "close took %lld ms\n", dt);
		return 10;
	}
	if (err != -ECONNREFUSED)
		return 11;
	smem__broker_disconnect();
	if (t_count_fds() > fds0)
		return 12;	/* the hold's fd was closed once the request let go */
	return 0;
}

START_TEST(close_does_not_wait_for_a_dead_shared_broker)
{
	struct stall_arg a;
	char gid[16];
	const char *const args[] = { "--group", gid, NULL };
	int ready[2], go[2];
	pid_t pid;

	/* The victim may not remove the stale socket: it is not root, and the directory is 0555. */
	a.uid = geteuid() == 0 ? NOBODY : geteuid();
	a.gid = geteuid() == 0 ? NOBODY : getegid();
	tb_shared_dir(0755);
	snprintf(gid, sizeof(gid), "%u", (unsigned)a.gid);
	tb_start_smemd(args);
	ck_assert_int_eq(chmod(tb_dir, 0555), 0);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	a.ready_w = ready[1];
	a.go_r = go[0];
	pid = t_fork(stall_victim, &a);
	close(ready[1]);
	close(go[0]);
	ck_assert_msg(tb_sig_wait(ready[0]), "victim failed: %d", t_wait(pid));
	tb_kill_smemd();
	tb_sig_send(go[1]);
	ck_assert_int_eq(t_wait(pid), 0);
	close(ready[0]);
	close(go[1]);
	ck_assert_int_eq(chmod(tb_dir, 0700), 0);
	ck_assert_int_eq(unlink(tb_sock), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

#define CHURN_THREADS	4
#define CHURN_ROUNDS	300

/* Create, open and close one name over and over: each create needs the last close's RELEASE. */
static void *churn_one_name(void *arg)
{
	long k = (long)arg, i;
	char name[32];

	snprintf(name, sizeof(name), "churn-%ld", k);
	for (i = 0; i < CHURN_ROUNDS; i++) {
		struct smem_region *r, *o;

		if (smem_region_create(name, 4096, NULL, &r))
			return (void *)(i + 1);
		if (smem_region_open(name, NULL, &o)) {
			smem_region_close(r);
			return (void *)(i + 1);
		}
		smem_region_close(o);
		smem_region_close(r);
	}
	return NULL;
}

static int count_name(const struct smem__entry_info *e, void *arg)
{
	(void)e;
	++*(int *)arg;
	return 0;
}

START_TEST(releases_handed_between_threads_keep_their_order_and_all_arrive)
{
	pthread_t t[CHURN_THREADS];
	long k;
	int names = 0;

	/* Four threads on one connection: their closes often find it busy and hand over. */
	tb_private_path_broker();
	{
		/*
		 * One region first, from this thread: region.c caches the page size in a plain
		 * static that racing first calls would both write (a benign race TSan reports).
		 */
		struct smem_region *warm;

		ck_assert_int_eq(smem_region_create("warm", 4096, NULL, &warm), 0);
		smem_region_close(warm);
	}
	for (k = 0; k < CHURN_THREADS; k++)
		ck_assert_int_eq(pthread_create(&t[k], NULL, churn_one_name, (void *)k), 0);
	for (k = 0; k < CHURN_THREADS; k++) {
		void *failed_at;

		ck_assert_int_eq(pthread_join(t[k], &failed_at), 0);
		ck_assert_msg(!failed_at, "thread %ld: create or open %ld failed", k,
			      (long)failed_at);
	}
	/* Every hold was released: the broker keeps no name. */
	smem__broker_disconnect();
	ck_assert_int_eq(smem__broker_list(NULL, count_name, &names), 0);
	ck_assert_int_eq(names, 0);
	tb_private_broker_end();
}
END_TEST

#define STOPPED_NAMES	800	/* RELEASEs enough to fill a socket's send buffer many times */

START_TEST(close_does_not_wait_for_a_stopped_broker)
{
	static struct smem_region *r[STOPPED_NAMES];
	struct rlimit rl;
	long long t0, dt, worst = 0;
	pid_t bpid;
	int i, names = -1;

	/* Two fds per region (its own and the hold's). */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 3 * STOPPED_NAMES + 64) {
		printf("skip: RLIMIT_NOFILE %lu is too low\n", (unsigned long)rl.rlim_cur);
		return;
	}
	tb_private_path_broker();
	for (i = 0; i < STOPPED_NAMES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "stopped-%d", i);
		ck_assert_int_eq(smem_region_create(name, 4096, NULL, &r[i]), 0);
	}
	/* A broker that reads nothing: its socket fills up with our RELEASEs. */
	bpid = tb_broker_pid();
	ck_assert_int_eq(kill(bpid, SIGSTOP), 0);
	for (i = 0; i < STOPPED_NAMES; i++) {
		t0 = t_now_ms();
		smem_region_close(r[i]);
		dt = t_now_ms() - t0;
		if (dt > worst)
			worst = dt;
	}
	ck_assert_int_eq(kill(bpid, SIGCONT), 0);
	ck_assert_msg(worst < 500, "a close took %lld ms", worst);
	/* Once it reads again, the RELEASEs left waiting for room arrive (the watcher's POLLOUT). */
	for (i = 0; i < 300 && names != 0; i++) {
		names = 0;
		ck_assert_int_eq(smem__broker_list(NULL, count_name, &names), 0);
		if (names)
			usleep(10000);
	}
	ck_assert_int_eq(names, 0);
	tb_private_broker_end();
}
END_TEST

/* In a directory of its own, nobody finds a stale socket it may not remove. */
static int stale_victim(void *arg)
{
	struct smem_region *r = NULL;
	long long t0, dt;
	int err;

	(void)arg;
	if (become(NOBODY, NOBODY))
		return 100;
	t0 = t_now_ms();
	err = smem_region_create("x", 4096, NULL, &r);
	dt = t_now_ms() - t0;
	if (err != -EPERM || r) {
		fprintf(stderr, "create gave %d\n", err);
		return 1;
	}
	if (!strstr(smem_last_error(), "cannot start a broker at ") ||
	    !strstr(smem_last_error(), "permission denied (socket: a stale socket file")) {
		fprintf(stderr, "last error: %s\n", smem_last_error());
		return 3;
	}
	if (dt >= 500) {
		fprintf(stderr, "create took %lld ms\n", dt);
		return 2;
	}
	return 0;
}

/* Set or clear the append-only attribute of directory @path (files in it cannot be removed). */
static int set_append_only(const char *path, bool on)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), flags, err = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0) {
		err = -errno;
	} else {
		flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
			err = -errno;
	}
	close(fd);
	return err;
}

START_TEST(stale_socket_that_cannot_be_removed_is_reported_at_once)
{
	struct smem__addr sa;
	int s, err;

	if (!tb_need_root())
		return;
	/* nobody's own directory, closed to others: private, so it would start a broker there. */
	tb_shared_dir(0700);
	ck_assert_int_eq(chown(tb_dir, NOBODY, NOBODY), 0);
	/* A dead broker's socket is in the way, in a directory where nothing can be removed. */
	ck_assert_int_eq(smem__addr_resolve(NULL, &sa), 0);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa.sun, sa.len), 0);
	close(s);
	ck_assert_int_eq(chown(tb_sock, NOBODY, NOBODY), 0);	/* its own broker's, once */
	err = set_append_only(tb_dir, true);
	if (err) {
		printf("skip: cannot make %s append-only: %s\n", tb_dir, strerror(-err));
	} else {
		ck_assert_int_eq(t_wait(t_fork(stale_victim, NULL)), 0);
		ck_assert_int_eq(set_append_only(tb_dir, false), 0);
	}
	ck_assert_int_eq(unlink(tb_sock), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

static Suite *broker_trust_suite(void)
{
	Suite *s = suite_create("broker_trust");
	TCase *tc;

	tc = tcase_create("impostor");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, client_gives_nothing_to_an_impostor_at_an_abstract_address);
	tcase_add_test(tc, holder_does_not_reregister_with_an_impostor_that_took_a_shared_path);
	suite_add_tcase(s, tc);

	tc = tcase_create("autostart");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, dead_shared_broker_is_not_replaced_by_a_weaker_one);
	tcase_add_test(tc, nothing_is_started_at_an_abstract_or_shared_address);
	suite_add_tcase(s, tc);

	tc = tcase_create("close");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, close_does_not_wait_for_a_dead_shared_broker);
	tcase_add_test(tc, releases_handed_between_threads_keep_their_order_and_all_arrive);
	tcase_add_test(tc, close_does_not_wait_for_a_stopped_broker);
	tcase_add_test(tc, stale_socket_that_cannot_be_removed_is_reported_at_once);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(broker_trust_suite)
