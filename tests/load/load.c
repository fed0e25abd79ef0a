/* SPDX-License-Identifier: MIT */
/*
 * Broker load: many connections, many names, churn from many processes, per-uid limits.
 *
 *   load [-c CONNECTIONS] [-n NAMES] [-p PROCESSES] [-i ITERATIONS] [-v]
 *   load -F [-i ITERATIONS]          (the flood scenario alone: `make load-flood`)
 *
 * Runs the real smemd ($BUILD/tools/smemd) in a private directory, then:
 *   1. opens CONNECTIONS (1000) client connections at once and says HELLO on all of them;
 *   2. registers NAMES (10000) sealed memfds spread over those connections, pipelined (one
 *      request in flight per connection, all connections at once);
 *   3. twice: PROCESSES (16) processes churn create/open/close through the library
 *      (ITERATIONS each) and connect/HELLO/hang up raw connections, while the 10000 names
 *      stay; the broker's VmRSS is read before and after each round;
 *   4. closes the connections: every name must disappear;
 *   5. per-uid limits: a second smemd with --max-names 64 --max-bytes 1M; four processes under
 *      four uids fill their quotas: each gets exactly its own, then -EDQUOT.
 *   6. flood (as root): uid 3000 floods a broker with the default caps (256 connections,
 *      4096 holds, 4096 names per uid): 2000 connections, holds of one name until -EDQUOT,
 *      create+unlink churn until -EDQUOT, over and over; meanwhile uid 3001 creates and
 *      opens ITERATIONS names through the library, and the same is measured first without
 *      the flood. Prints the other uid's create and open latency (p50, p99, max) with and
 *      without the flood, and the broker's fd count (sampled; its cap: 2 x (256 + 16)
 *      connections, 4096 memfds and as many read-only descriptions, plus the victim's).
 * Checked: every request is answered (within 30 s), with the expected status; the broker's
 * memory after the second churn round is within 2 MiB of the first (bounded, not growing
 * with traffic); the name count is exact at each step; the limits hold exactly per uid.
 * Prints figures and "load: ... N failures"; exit 0 iff no failure. Needs root for the
 * per-uid part (skipped otherwise) and for more than the hard fd limit.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"
#include "util/msgutil.h"

static int failures;
static bool verbose;

#define FAIL(...) do { \
	failures++; \
	printf("load: FAILED: "); \
	printf(__VA_ARGS__); \
	printf("\n"); \
	fflush(stdout); \
} while (0)

static long long now_ms(void)
{
	return (long long)(smem__now_ns() / 1000000u);
}

static const char *build_dir(void)
{
	const char *b = getenv("BUILD");

	return b && *b ? b : "build/default";
}

/* ---- the broker under test ----------------------------------------------------------- */

/* Our own scenarios are one uid with far more than the default per-uid caps. */
static pid_t start_smemd(const char *addr, const char *max_names, const char *max_bytes)
{
	char path[512];
	long long end = now_ms() + 10000;
	struct smem__broker_info info;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/tools/smemd", build_dir());
	pid = fork();
	if (pid < 0) {
		perror("load: fork");
		exit(2);
	}
	if (pid == 0) {
		if (max_names)
			execl(path, path, "--foreground", "--socket", addr, "--idle-exit", "0",
			      "--max-names", max_names, "--max-bytes", max_bytes, "--max-conns",
			      "1000000", "--max-holds", "1000000", (char *)NULL);
		else	/* the defaults */
			execl(path, path, "--foreground", "--socket", addr, "--idle-exit", "0",
			      (char *)NULL);
		perror("load: exec smemd");
		_exit(127);
	}
	while (smem__broker_hello(addr, &info) != 0) {
		if (now_ms() > end) {
			fprintf(stderr, "load: smemd at %s did not answer\n", addr);
			kill(pid, SIGKILL);
			exit(2);
		}
		usleep(10000);
	}
	return pid;
}

static void stop_smemd(const char *addr, pid_t pid)
{
	smem__broker_stop(addr);
	waitpid(pid, NULL, 0);
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int count_one(const struct smem__entry_info *e, void *arg)
{
	(void)e;
	(*(unsigned long *)arg)++;
	return 0;
}

static long names_at(const char *addr)
{
	unsigned long n = 0;

	return smem__broker_list(addr, count_one, &n) == 0 ? (long)n : -1;
}

/* ---- raw connections ------------------------------------------------------------------- */

struct conn {
	int fd;
	uint32_t seq;		/* of the request in flight; 0: none */
	uint16_t op;
};

static int raw_connect(const struct smem__addr *a)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&a->sun, a->len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int raw_send(struct conn *c, uint16_t op, uint32_t seq, const void *payload, size_t len,
		    int fd)
{
	_Alignas(8) unsigned char buf[SMEM_PROTO_MAX_REQ];
	struct smem_msg_hdr h = { SMEM_PROTO_VERSION, op, (uint32_t)len, seq, 0 };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	if (t_send_fd(c->fd, buf, sizeof(h) + len, fd) < 0)
		return -errno;
	c->seq = seq;
	c->op = op;
	return 0;
}

/* Receive the reply to @c's request in flight; returns its status, or 1 for "bad reply". */
static int raw_recv(struct conn *c)
{
	_Alignas(8) unsigned char buf[1024];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
	};
	struct smem_msg_hdr h;
	struct cmsghdr *cmsg;
	ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

	if (n < (ssize_t)sizeof(h))
		return 1;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg))
		if (cmsg->cmsg_type == SCM_RIGHTS) {
			int fd;

			memcpy(&fd, CMSG_DATA(cmsg), sizeof(fd));
			close(fd);
		}
	memcpy(&h, buf, sizeof(h));
	if (h.seq != c->seq || h.op != c->op)
		return 1;
	c->seq = 0;
	return h.status;
}

/*
 * Wait for the reply of every connection with a request in flight (30 s at most). Returns
 * the number answered; *bad counts replies with a status other than @want.
 */
static unsigned collect(struct conn *cs, unsigned n, int want, unsigned *bad)
{
	struct pollfd *p = calloc(n, sizeof(*p));
	unsigned pending = 0, answered = 0, i;
	long long end = now_ms() + 30000;

	for (i = 0; i < n; i++)
		if (cs[i].seq)
			pending++;
	while (pending && now_ms() < end) {
		unsigned np = 0;
		int r;

		for (i = 0; i < n; i++)
			if (cs[i].seq) {
				p[np].fd = cs[i].fd;
				p[np].events = POLLIN;
				np++;
			}
		r = poll(p, np, 1000);
		if (r <= 0)
			continue;
		for (i = 0; i < n; i++) {
			unsigned k;
			int st;

			if (!cs[i].seq)
				continue;
			for (k = 0; k < np && p[k].fd != cs[i].fd; k++)
				;
			if (k == np || !(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			st = raw_recv(&cs[i]);
			pending--;
			cs[i].seq = 0;
			answered++;
			if (st != want)
				(*bad)++;
		}
	}
	free(p);
	return answered;
}

static int sealed_memfd(size_t size)
{
	int fd = memfd_create("load", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		perror("load: memfd");
		exit(2);
	}
	return fd;
}

static size_t create_payload(unsigned char *p, const char *name, uint64_t size)
{
	struct smem_msg_create m = { .size = size, .kind = SMEM_KIND_REGION,
				     .name_len = (uint16_t)strlen(name) };

	memcpy(p, &m, sizeof(m));
	memcpy(p + sizeof(m), name, strlen(name));
	return sizeof(m) + strlen(name);
}

/* ---- churn from many processes --------------------------------------------------------- */

struct churn_result {
	_Atomic unsigned long ops, errors;
	_Atomic long long worst_ms;
};

static void churn_proc(const char *addr, const struct smem__addr *a, int id, int iters,
		       struct churn_result *res)
{
	int i;

	for (i = 0; i < iters; i++) {
		struct smem_region *r, *o;
		long long t0 = now_ms(), dt;
		char name[96];
		int err;

		snprintf(name, sizeof(name), "churn-%d-%d", id, i);
		err = smem_region_create(name, 4096 * (1 + i % 4), NULL, &r);
		if (err) {
			fprintf(stderr, "load: churn create: %s\n", smem_strerror(err));
			atomic_fetch_add(&res->errors, 1);
			continue;
		}
		err = smem_region_open(name, NULL, &o);
		if (err) {
			fprintf(stderr, "load: churn open: %s\n", smem_strerror(err));
			atomic_fetch_add(&res->errors, 1);
		} else {
			smem_region_close(o);
		}
		smem_region_close(r);
		/* A connection of its own now and then: connect, HELLO, hang up. */
		if (i % 8 == 0) {
			struct smem_msg_hello hm = { .version = SMEM_PROTO_VERSION };
			struct conn c = { .fd = raw_connect(a) };

			if (c.fd < 0 || raw_send(&c, SMEM_OP_HELLO, 1, &hm, sizeof(hm), -1) < 0) {
				atomic_fetch_add(&res->errors, 1);
			} else {
				struct pollfd p = { .fd = c.fd, .events = POLLIN };

				if (poll(&p, 1, 30000) != 1 || raw_recv(&c) != 0)
					atomic_fetch_add(&res->errors, 1);
			}
			if (c.fd >= 0)
				close(c.fd);
		}
		dt = now_ms() - t0;
		if (dt > atomic_load(&res->worst_ms))
			atomic_store(&res->worst_ms, dt);
		atomic_fetch_add(&res->ops, 3);
	}
	(void)addr;
}

static void churn_round(const char *addr, const struct smem__addr *a, int procs, int iters,
			int round, struct churn_result *res)
{
	long long t0 = now_ms();
	int i, status;

	memset(res, 0, sizeof(*res));
	for (i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			churn_proc(addr, a, round * 1000 + i, iters, res);
			smem__broker_disconnect();
			_exit(0);
		}
	}
	for (i = 0; i < procs; i++) {
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL("churn process failed");
	}
	printf("load: churn round %d: %d processes, %lu requests in %lld ms, %lu errors, "
	       "slowest create+open+close %lld ms\n", round, procs, atomic_load(&res->ops),
	       now_ms() - t0, atomic_load(&res->errors), atomic_load(&res->worst_ms));
	if (atomic_load(&res->errors))
		FAIL("churn round %d: %lu requests failed", round, atomic_load(&res->errors));
}

/* ---- per-uid limits ---------------------------------------------------------------------- */

struct quota_result {
	_Atomic int names_ok[4], names_err[4], bytes_ok[4], bytes_err[4];
};

static void quota_proc(int k, struct quota_result *res)
{
	struct smem_region *rs[80];
	char name[64];
	int n, err = 0, i;

	if (setresgid(2000 + k, 2000 + k, 2000 + k) < 0 || setresuid(2000 + k, 2000 + k, 2000 + k) < 0)
		_exit(3);
	/* Names: 4 KiB regions until refused. */
	for (n = 0; n < 80; n++) {
		snprintf(name, sizeof(name), "q-%d-%d", k, n);
		err = smem_region_create(name, 64, NULL, &rs[n]);
		if (err)
			break;
	}
	res->names_ok[k] = n;
	res->names_err[k] = err;
	for (i = 0; i < n; i++)
		smem_region_close(rs[i]);
	/* Bytes: 1 MiB allowed, regions of 60 KiB data (64 KiB with the header page). */
	for (n = 0; n < 80; n++) {
		snprintf(name, sizeof(name), "b-%d-%d", k, n);
		err = smem_region_create(name, 60 * 1024, NULL, &rs[n]);
		if (err)
			break;
	}
	res->bytes_ok[k] = n;
	res->bytes_err[k] = err;
	for (i = 0; i < n; i++)
		smem_region_close(rs[i]);
	smem__broker_disconnect();
	_exit(0);
}

static void limits(void)
{
	struct quota_result *res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char addr[64];
	pid_t bpid;
	int k, status;

	if (geteuid() != 0) {
		printf("load: per-uid limits skipped (needs root to run as other uids)\n");
		return;
	}
	snprintf(addr, sizeof(addr), "@smem-load-quota-%d", (int)getpid());
	bpid = start_smemd(addr, "64", "1M");
	setenv("SMEM_BROKER", addr, 1);
	for (k = 0; k < 4; k++)
		if (fork() == 0)
			quota_proc(k, res);
	for (k = 0; k < 4; k++)
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL("quota process failed (%d)", status);
	for (k = 0; k < 4; k++) {
		printf("load: uid %d: %d names then %s; %d x 64 KiB then %s\n", 2000 + k,
		       res->names_ok[k], smem_strerror(res->names_err[k]), res->bytes_ok[k],
		       smem_strerror(res->bytes_err[k]));
		if (res->names_ok[k] != 64 || res->names_err[k] != -EDQUOT)
			FAIL("uid %d: --max-names 64 gave %d names, then %d", 2000 + k,
			     res->names_ok[k], res->names_err[k]);
		if (res->bytes_ok[k] != 16 || res->bytes_err[k] != -EDQUOT)
			FAIL("uid %d: --max-bytes 1M gave %d regions of 64 KiB, then %d", 2000 + k,
			     res->bytes_ok[k], res->bytes_err[k]);
	}
	if (names_at(addr) != 0)
		FAIL("quota broker: names left after their holders exited");
	stop_smemd(addr, bpid);
	munmap(res, sizeof(*res));
}

/* ---- flood: one uid floods, another is measured -------------------------------------------- */

#define FLOOD_UID	3000
#define VICTIM_UID	3001
#define FLOOD_CONNS	2000

static int fd_count(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* As FLOOD_UID until killed: connections, holds, create+unlink churn, over and over. */
static void flood_proc(int kind)
{
	struct smem_opts o666 = { .mode = 0666 };
	static int conns[FLOOD_CONNS];
	struct smem_region **rs = calloc(8192, sizeof(*rs));
	struct smem__addr a;
	unsigned long round;

	if (setgroups(0, NULL) < 0 || setresgid(FLOOD_UID, FLOOD_UID, FLOOD_UID) < 0 ||
	    setresuid(FLOOD_UID, FLOOD_UID, FLOOD_UID) < 0 || !rs)
		_exit(3);
	smem__addr_resolve(NULL, &a);
	for (round = 0;; round++) {
		int n = 0, i, err;
		char name[64];

		if (kind == 0) {
			/* Connections: as many as the broker lets us have, again and again. */
			for (i = 0; i < FLOOD_CONNS; i++)
				conns[i] = raw_connect(&a);
			usleep(100000);
			for (i = 0; i < FLOOD_CONNS; i++)
				if (conns[i] >= 0)
					close(conns[i]);
			continue;
		}
		if (kind == 1) {
			/* Holds of one name until the cap, then let go. */
			snprintf(name, sizeof(name), "flood-hold-%lu", round);
			err = smem_region_create(name, 4096, &o666, &rs[n]);
			if (!err)
				n++;
			while (n < 8192 && smem_region_open(name, NULL, &rs[n]) == 0)
				n++;
		} else {
			/* Create and unlink, keeping the memory, until the quota; then let go. */
			for (i = 0; n < 8192; i++) {
				snprintf(name, sizeof(name), "flood-%d-%lu-%d", kind, round, i);
				if (smem_region_create(name, 4096, NULL, &rs[n]))
					break;
				smem_unlink(name, NULL);
				n++;
			}
		}
		while (n > 0)
			smem_region_close(rs[--n]);
	}
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

struct victim_result {
	_Atomic int errors;
	int first_err;
	long long create_us[3], open_us[3];	/* p50, p99, max */
};

static void pcts(long long *v, int n, long long out[3])
{
	qsort(v, (size_t)n, sizeof(*v), cmp_ll);
	out[0] = v[n / 2];
	out[1] = v[(n * 99) / 100];
	out[2] = v[n - 1];
}

/* As VICTIM_UID: create+open+close @iters names, each timed. */
static void victim_proc(int iters, const char *tag, struct victim_result *res)
{
	long long *c = calloc((size_t)iters, sizeof(*c)), *o = calloc((size_t)iters, sizeof(*o));
	int i, err;

	if (setgroups(0, NULL) < 0 || setresgid(VICTIM_UID, VICTIM_UID, VICTIM_UID) < 0 ||
	    setresuid(VICTIM_UID, VICTIM_UID, VICTIM_UID) < 0 || !c || !o)
		_exit(3);
	for (i = 0; i < iters; i++) {
		struct smem_region *r, *h;
		char name[64];
		uint64_t t0;

		snprintf(name, sizeof(name), "victim-%s-%d", tag, i);
		t0 = smem__now_ns();
		err = smem_region_create(name, 4096, NULL, &r);
		c[i] = (long long)((smem__now_ns() - t0) / 1000u);
		if (err) {
			if (!res->errors++)
				res->first_err = err;
			o[i] = c[i];
			continue;
		}
		t0 = smem__now_ns();
		err = smem_region_open(name, NULL, &h);
		o[i] = (long long)((smem__now_ns() - t0) / 1000u);
		if (err) {
			if (!res->errors++)
				res->first_err = err;
		} else {
			smem_region_close(h);
		}
		smem_region_close(r);
	}
	pcts(c, iters, res->create_us);
	pcts(o, iters, res->open_us);
	smem__broker_disconnect();
	_exit(0);
}

static void victim_run(int iters, const char *tag, struct victim_result *res, pid_t bpid,
		       int *max_fds)
{
	int status;
	pid_t v = fork();

	if (v == 0)
		victim_proc(iters, tag, res);
	while (waitpid(v, &status, WNOHANG) == 0) {
		int n = fd_count(bpid);

		if (n > *max_fds)
			*max_fds = n;
		usleep(5000);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL("victim process failed (%d)", status);
	printf("load: flood: uid %d %s: %d creates+opens, %d errors%s%s; create p50 %lld us "
	       "p99 %lld us max %lld us; open p50 %lld us p99 %lld us max %lld us\n",
	       VICTIM_UID, tag, iters, res->errors, res->errors ? ", first " : "",
	       res->errors ? smem_strerror(res->first_err) : "", res->create_us[0],
	       res->create_us[1], res->create_us[2], res->open_us[0], res->open_us[1],
	       res->open_us[2]);
	if (res->errors)
		FAIL("the other uid's creates or opens failed during the %s run", tag);
}

static void flood(int iters)
{
	struct victim_result *res = mmap(NULL, 2 * sizeof(*res), PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	/* Connections of two uids with slack, names and read-only descriptions, our own. */
	const int cap = 2 * (256 + 16) + 2 * 4096 + 64;
	int max_fds = 0, idle_fds, i, status;
	pid_t bpid, fl[4];
	char addr[64];

	if (geteuid() != 0) {
		printf("load: flood skipped (needs root to run as other uids)\n");
		return;
	}
	snprintf(addr, sizeof(addr), "@smem-load-flood-%d", (int)getpid());
	bpid = start_smemd(addr, NULL, NULL);
	setenv("SMEM_BROKER", addr, 1);
	idle_fds = fd_count(bpid);
	victim_run(iters, "alone", &res[0], bpid, &max_fds);
	for (i = 0; i < 4; i++) {
		fl[i] = fork();
		if (fl[i] == 0)
			flood_proc(i < 2 ? i : 2);
	}
	sleep(2);	/* let the flood reach the caps */
	victim_run(iters, "under-flood", &res[1], bpid, &max_fds);
	for (i = 0; i < 4; i++) {
		kill(fl[i], SIGKILL);
		waitpid(fl[i], &status, 0);
	}
	printf("load: flood: broker fds idle %d, at most %d during the runs (cap %d); "
	       "other uid's create p99 %.2f ms, open p99 %.2f ms under flood (target < 10 ms); "
	       "p99 ratio flood/alone create %.1f open %.1f\n", idle_fds, max_fds, cap,
	       res[1].create_us[1] / 1000.0, res[1].open_us[1] / 1000.0,
	       (double)res[1].create_us[1] / (double)(res[0].create_us[1] ? res[0].create_us[1] : 1),
	       (double)res[1].open_us[1] / (double)(res[0].open_us[1] ? res[0].open_us[1] : 1));
	if (max_fds > cap)
		FAIL("broker fds %d over the caps' %d", max_fds, cap);
	stop_smemd(addr, bpid);
	munmap(res, 2 * sizeof(*res));
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	unsigned nconn = 1000, nnames = 10000, answered, bad, i, k, per;
	int procs = 16, iters = 500, opt;
	bool flood_only = false;
	struct churn_result *res;
	struct smem__addr a;
	struct rlimit rl;
	struct conn *cs;
	char dir[64], addr[128];
	long rss[4], names;
	long long t0;
	pid_t bpid;

	while ((opt = getopt(argc, argv, "c:n:p:i:vF")) != -1) {
		switch (opt) {
		case 'c': nconn = (unsigned)atoi(optarg); break;
		case 'n': nnames = (unsigned)atoi(optarg); break;
		case 'p': procs = atoi(optarg); break;
		case 'i': iters = atoi(optarg); break;
		case 'v': verbose = true; break;
		case 'F': flood_only = true; break;
		default:
			fprintf(stderr, "usage: load [-c CONNECTIONS] [-n NAMES] [-p PROCESSES] "
					"[-i ITERATIONS]\n");
			return 2;
		}
	}
	if (!nconn || nnames < nconn)
		nnames = nconn;
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Our connections plus the broker's (one per connection and one per name) need more fds
	 * than the usual soft limit. Raise ours, and the hard limit if we may (root): smemd
	 * inherits it and raises its soft limit to it.
	 */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t want = nconn + nnames + 4096;

		if (rl.rlim_max < want) {
			struct rlimit up = { want, want };

			if (setrlimit(RLIMIT_NOFILE, &up) == 0)
				rl = up;
		}
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_max < nconn + 64) {
			fprintf(stderr, "load: fd limit %lu too low for %u connections\n",
				(unsigned long)rl.rlim_max, nconn);
			return 2;
		}
	}

	if (flood_only) {
		flood(iters);
		printf("load: flood, %d failures\n", failures);
		return failures ? 1 : 0;
	}

	snprintf(dir, sizeof(dir), "/tmp/smem-load.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("load: mkdtemp");
		return 2;
	}
	snprintf(addr, sizeof(addr), "%s/broker.sock", dir);
	setenv("SMEM_BROKER", addr, 1);
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	smem__addr_resolve(addr, &a);
	bpid = start_smemd(addr, "1000000", "1024G");
	rss[0] = rss_kib(bpid);

	/* 1. the connections, all at once */
	cs = calloc(nconn, sizeof(*cs));
	t0 = now_ms();
	for (i = 0; i < nconn; i++) {
		struct smem_msg_hello hm = { .version = SMEM_PROTO_VERSION };

		cs[i].fd = raw_connect(&a);
		if (cs[i].fd < 0) {
			FAIL("connection %u: %s", i, strerror(-cs[i].fd));
			return 1;
		}
		if (raw_send(&cs[i], SMEM_OP_HELLO, 1, &hm, sizeof(hm), -1) < 0)
			FAIL("connection %u: HELLO not sent", i);
	}
	bad = 0;
	answered = collect(cs, nconn, 0, &bad);
	printf("load: %u connections open, %u HELLOs answered (%u refused) in %lld ms\n", nconn,
	       answered, bad, now_ms() - t0);
	if (answered != nconn || bad)
		FAIL("HELLO: %u of %u answered, %u refused", answered, nconn, bad);

	/* 2. the names, one request in flight per connection */
	t0 = now_ms();
	per = nnames / nconn;
	bad = 0;
	answered = 0;
	for (k = 0; k < per; k++) {
		for (i = 0; i < nconn; i++) {
			unsigned char p[256];
			char name[64];
			int fd = sealed_memfd(4096);

			snprintf(name, sizeof(name), "load-%u-%u", i, k);
			if (raw_send(&cs[i], SMEM_OP_CREATE, 2 + k, p,
				     create_payload(p, name, 4096), fd) < 0)
				FAIL("CREATE %s not sent", name);
			close(fd);
		}
		answered += collect(cs, nconn, 0, &bad);
	}
	names = names_at(addr);
	rss[1] = rss_kib(bpid);
	printf("load: %u names registered over %u connections in %lld ms (%u refused); "
	       "the broker lists %ld\n", answered, nconn, now_ms() - t0, bad, names);
	if (answered != per * nconn || bad || names != (long)(per * nconn))
		FAIL("names: %u answered, %u refused, %ld listed, %u wanted", answered, bad, names,
		     per * nconn);

	/* 3. churn, twice, with the names held */
	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	churn_round(addr, &a, procs, iters, 1, res);
	rss[2] = rss_kib(bpid);
	churn_round(addr, &a, procs, iters, 2, res);
	rss[3] = rss_kib(bpid);
	names = names_at(addr);
	printf("load: broker VmRSS %ld KiB idle, %ld KiB with %u names, %ld KiB after churn "
	       "round 1, %ld KiB after round 2\n", rss[0], rss[1], per * nconn, rss[2], rss[3]);
	if (names != (long)(per * nconn))
		FAIL("after churn the broker lists %ld names, not %u", names, per * nconn);
	if (rss[3] > rss[2] + 2048)
		FAIL("broker memory grows with churn: %ld -> %ld KiB", rss[2], rss[3]);

	/* 4. hang up: every name goes with its last holder */
	for (i = 0; i < nconn; i++)
		close(cs[i].fd);
	t0 = now_ms();
	while ((names = names_at(addr)) != 0 && now_ms() - t0 < 10000)
		usleep(20000);
	printf("load: %u connections closed, %ld names left after %lld ms\n", nconn, names,
	       now_ms() - t0);
	if (names != 0)
		FAIL("%ld names left after every holder hung up", names);
	stop_smemd(addr, bpid);
	rmdir(dir);

	/* 5. per-uid limits */
	limits();

	/* 6. one uid floods, another is served */
	flood(iters);

	printf("load: %u connections, %u names, %d churn processes x %d x 2, %d failures\n",
	       nconn, per * nconn, procs, iters, failures);
	free(cs);
	return failures ? 1 : 0;
}
