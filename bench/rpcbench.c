/* SPDX-License-Identifier: MIT */
/*
 * rpcbench: RPC calls between two processes pinned to two cores, against baselines measured in
 * the same run (a raw futex ping-pong and a UNIX-socket request/response). Not a test. The
 * command line is ringbench's "rpc" mode, so it can move into tools/ringbench.c as a mode:
 *
 *   rpcbench rpc --size BYTES [--wait spin|block] [--inflight K] [--channels C]
 *                [--seconds S] [--node-size B] [--nodes N] [--service dispatch|thread]
 *                [--no-baselines] [--json]
 *   rpcbench inproc --size BYTES [--iters N] [--node-size B] [--nodes N]
 *
 * The client (CPU 0) keeps K calls in flight spread over C channels, waiting for them with
 * smem_rpc_wait(ANY) in one thread; the server (CPU 1) serves all C channels in one
 * smem_rpc_serve() loop. Requests carry BYTES, responses are empty (the seed's RpcTest).
 * Payloads are touched honestly: the client writes every byte of each request before its
 * call (a byte pattern that changes per call), the handler reads every byte and checks it
 * (a mismatch fails the call with -EBADMSG, which stops the run).
 *
 * --service thread measures the library's default instead: both ends open with a service
 * thread (handlers run there; the client's waits in smem_rpc_wait as before).
 *
 * --no-baselines skips the futex and UNIX-socket runs (their fields are 0), so that
 * "perf stat -e task-clock" over the whole run counts the RPC's CPU time alone.
 *
 * Geometry: by default one packet per call up to 1 MiB (node size BYTES + 64, 64 nodes; 8
 * nodes above 64 KiB); --node-size 0 --nodes 0 uses the library's defaults.
 *
 * "inproc" runs both ends in one thread, one call at a time (call_async, dispatch on the
 * serving end, wait on the calling end, all with timeout 0): no spinning, no sleeping, so
 * instruction counts per call (valgrind --tool=callgrind, perf stat -e instructions) measure
 * the library's own work on both sides and do not depend on the machine's load.
 * rtt_ns_* is a call's round trip (call_async to its completion being seen); msgs_per_s is
 * completed calls per second; enters_per_call is io_uring_enter (or futex_waitv) calls made
 * by the client per completed call.
 *
 *   make lib && cc -O2 -Iinclude -Isrc -pthread bench/rpcbench.c build/default/libsmem.a \
 *       -luring -o /tmp/rpcbench
 *   SMEM_BROKER=/tmp/rb/broker.sock /tmp/rpcbench rpc --size 1024 --wait spin --json
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "rpc_int.h"
#include "uring.h"

#define MAX_INFLIGHT 1024
#define MAX_CHANNELS 32

static size_t opt_size = 1024;
static int opt_spin = 1, opt_inflight = 1, opt_channels = 1, opt_json;
static double opt_seconds = 2.0;
static long opt_node_size = -1, opt_nodes = -1, opt_iters = 200000;
static int opt_inproc, opt_baselines = 1, opt_thread;

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[(size_t)((double)(n - 1) * p)];
}

/* ---- baseline 1: futex ping-pong (blocking: FUTEX_WAIT / FUTEX_WAKE every turn) ------------ */

static long fx(_Atomic uint32_t *w, int op, uint32_t v)
{
	return syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

static uint64_t futex_pingpong(int iters)
{
	_Atomic uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				   -1, 0);
	uint64_t *rtt = calloc((size_t)iters, sizeof(*rtt)), r;
	pid_t pid;
	int i;

	atomic_store(&w[0], 0);
	pid = fork();
	if (pid == 0) {
		pin(1);
		for (i = 0; i < iters; i++) {
			while (atomic_load(&w[0]) != 1)
				fx(&w[0], FUTEX_WAIT, 0);
			atomic_store(&w[0], 0);
			fx(&w[0], FUTEX_WAKE, 1);
		}
		_exit(0);
	}
	pin(0);
	for (i = 0; i < iters; i++) {
		uint64_t t0 = smem__now_ns();

		atomic_store(&w[0], 1);
		fx(&w[0], FUTEX_WAKE, 1);
		while (atomic_load(&w[0]) != 0)
			fx(&w[0], FUTEX_WAIT, 1);
		rtt[i] = smem__now_ns() - t0;
	}
	waitpid(pid, NULL, 0);
	r = pct(rtt, (size_t)iters, 0.5);
	free(rtt);
	munmap((void *)w, 4096);
	return r;
}

/* ---- baseline 2: UNIX socket request/response ----------------------------------------------- */

static int full_io(int fd, void *buf, size_t n, bool wr)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = wr ? write(fd, (char *)buf + done, n - done) :
				 read(fd, (char *)buf + done, n - done);

		if (k <= 0)
			return -1;
		done += (size_t)k;
	}
	return 0;
}

static uint64_t unix_rr(int iters, size_t size, double *per_s)
{
	uint64_t *rtt = calloc((size_t)iters, sizeof(*rtt)), r, t_start;
	char *buf = calloc(1, size + 1);
	int sv[2], i;
	pid_t pid;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		pin(1);
		for (i = 0; i < iters; i++) {
			if (full_io(sv[1], buf, size, false) || full_io(sv[1], buf, 1, true))
				_exit(1);
		}
		_exit(0);
	}
	close(sv[1]);
	pin(0);
	t_start = smem__now_ns();
	for (i = 0; i < iters; i++) {
		uint64_t t0 = smem__now_ns();

		if (full_io(sv[0], buf, size, true) || full_io(sv[0], buf, 1, false))
			break;
		rtt[i] = smem__now_ns() - t0;
	}
	*per_s = iters / ((double)(smem__now_ns() - t_start) / 1e9);
	waitpid(pid, NULL, 0);
	close(sv[0]);
	r = pct(rtt, (size_t)iters, 0.5);
	free(rtt);
	free(buf);
	return r;
}

/* ---- the RPC run ----------------------------------------------------------------------------- */

/* The client's side of honesty: every byte of the request written for this call. */
static void fill_request(char *req, size_t size, uint64_t seq)
{
	memset(req, (int)(seq * 0x9d & 0xff) | 1, size);
}

/* The handler's side: read every byte, and check they all agree. */
static int h_check(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	const unsigned char *p = req->data;
	uint64_t want, bad = 0, w;
	size_t i;

	(void)arg;
	(void)rep;
	if (req->len == 0)
		return 0;
	want = 0x0101010101010101ull * p[0];
	for (i = 0; i + 8 <= req->len; i += 8) {
		memcpy(&w, p + i, 8);
		bad |= w ^ want;
	}
	for (; i < req->len; i++)
		bad |= p[i] ^ p[0];
	return bad ? -EBADMSG : 0;
}

static int server(char names[][64], int go_fd)
{
	struct smem_rpc_opts o = {
		.handler = h_check,
		.service = opt_thread ? SMEM_RPC_SERVICE_THREAD : SMEM_RPC_SERVICE_DISPATCH,
		.spin_ns = opt_spin ? 200000000u : SMEM_RPC_NO_SPIN,
	};
	struct smem_rpc *chs[MAX_CHANNELS];
	char c;
	int i, rc;

	pin(1);
	if (read(go_fd, &c, 1) != 1)
		return 1;
	for (i = 0; i < opt_channels; i++)
		if (smem_rpc_open(names[i], &o, &chs[i]))
			return 2;
	if (opt_thread) {
		/* The service threads serve; wait for the client to finish (EOF). */
		while (read(go_fd, &c, 1) > 0)
			;
	} else {
		while ((rc = smem_rpc_serve(chs, (unsigned)opt_channels, 1000)) >= 0)
			;
	}
	for (i = 0; i < opt_channels; i++)
		smem_rpc_close(chs[i]);
	return 0;
}

/* Both ends in this thread, one call at a time, nothing waits: the library's work per call. */
static int inproc(const struct smem_rpc_opts *copts)
{
	struct smem_rpc_opts so = {
		.handler = h_check, .service = SMEM_RPC_SERVICE_DISPATCH,
	};
	struct smem_rpc *c, *s;
	struct smem_rpc_call *call;
	char name[64], *req = calloc(1, opt_size + 1);
	uint64_t t0, t1;
	long i;
	int rc;

	snprintf(name, sizeof(name), "rpcbench-inproc-%d", (int)getpid());
	if ((rc = smem_rpc_open(name, copts, &c)) || (rc = smem_rpc_open(name, &so, &s))) {
		fprintf(stderr, "open: %s\n", smem_strerror(rc));
		return 1;
	}
	t0 = smem__now_ns();
	for (i = 0; i < opt_iters; i++) {
		fill_request(req, opt_size, (uint64_t)i);
		rc = smem_rpc_call_async(c, req, opt_size, 10000, &call);
		if (rc == 0) {
			/* Until the whole request (maybe several packets) is served. */
			do
				rc = smem_rpc_dispatch(s, 0);
			while (rc == 0 && !smem_rpc_call_done(call) &&
			       smem_rpc_wait(&call, 1, SMEM_RPC_WAIT_ALL, 0) < 0);
			rc = smem_rpc_wait(&call, 1, SMEM_RPC_WAIT_ALL, 0);
			rc = rc < 0 ? rc : smem_rpc_call_result(call, NULL, NULL);
			smem_rpc_call_free(call);
		}
		if (rc) {
			fprintf(stderr, "call %ld: %s\n", i, smem_strerror(rc));
			return 1;
		}
	}
	t1 = smem__now_ns();
	printf("{\"mode\":\"inproc\",\"size\":%zu,\"node_size\":%u,\"nodes\":%u,"
	       "\"calls\":%ld,\"ns_per_call\":%.0f}\n", opt_size,
	       smem_ring_node_size(smem__rpc_tx(c)), smem_ring_node_count(smem__rpc_tx(c)),
	       opt_iters, (double)(t1 - t0) / (double)opt_iters);
	smem_rpc_close(s);
	smem_rpc_close(c);
	free(req);
	return 0;
}

int main(int argc, char **argv)
{
	struct smem_rpc_opts o = { .node_count = 64 };
	static char names[MAX_CHANNELS][64];
	struct smem_rpc_call *calls[MAX_INFLIGHT];
	uint64_t started[MAX_INFLIGHT], *rtt, nrtt = 0, cap, t_start, t_end, done = 0;
	uint64_t sys0, sys1, futex_p50 = 0, unix_p50, seq = 1;
	struct smem_rpc *chs[MAX_CHANNELS];
	unsigned node_size, node_count;
	double unix_per_s, secs;
	char *req;
	int go[2], i, k, rc;
	pid_t pid;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "rpc"))
			continue;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			opt_size = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
			opt_spin = strcmp(argv[++i], "block") != 0;
		else if (!strcmp(argv[i], "--inflight") && i + 1 < argc)
			opt_inflight = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--channels") && i + 1 < argc)
			opt_channels = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			opt_seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--service") && i + 1 < argc)
			opt_thread = !strcmp(argv[++i], "thread");
		else if (!strcmp(argv[i], "--no-baselines"))
			opt_baselines = 0;
		else if (!strcmp(argv[i], "inproc"))
			opt_inproc = 1;
		else if (!strcmp(argv[i], "--node-size") && i + 1 < argc)
			opt_node_size = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
			opt_nodes = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			opt_iters = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--json"))
			opt_json = 1;
		else {
			fprintf(stderr, "usage: rpcbench rpc --size BYTES [--wait spin|block] "
					"[--inflight K] [--channels C] [--seconds S] [--node-size B]\n"
					"               [--nodes N] [--service dispatch|thread] "
					"[--no-baselines] [--json]\n"
					"       rpcbench inproc --size BYTES [--iters N] "
					"[--node-size B] [--nodes N]\n");
			return 2;
		}
	}
	if (opt_inflight < 1 || opt_inflight > MAX_INFLIGHT || opt_channels < 1 ||
	    opt_channels > MAX_CHANNELS || opt_channels > opt_inflight)
		return 2;
	/* Node big enough for one packet per call up to 1 MiB; else several packets. */
	o.node_size = opt_size + 64 <= (1u << 20) ? (uint32_t)(opt_size + 64) : (1u << 20);
	if (o.node_size < 256)
		o.node_size = 256;
	o.node_count = opt_size > 65536 ? 8 : 64;
	if (opt_node_size >= 0)
		o.node_size = (uint32_t)opt_node_size;
	if (opt_nodes >= 0)
		o.node_count = (uint32_t)opt_nodes;
	o.spin_ns = opt_spin ? 200000000u : SMEM_RPC_NO_SPIN;
	/* The client only calls: no thread needed, unless the library's default is measured. */
	o.service = opt_thread ? SMEM_RPC_SERVICE_THREAD : SMEM_RPC_SERVICE_DISPATCH;

	if (opt_inproc)
		return inproc(&o);
	unix_p50 = 0;
	unix_per_s = 0;
	if (!opt_spin && opt_baselines)
		futex_p50 = futex_pingpong(20000);
	if (opt_baselines)
		unix_p50 = unix_rr(opt_size > 65536 ? 2000 : 20000, opt_size, &unix_per_s);

	for (i = 0; i < opt_channels; i++)
		snprintf(names[i], sizeof(names[i]), "rpcbench-%d-%d", (int)getpid(), i);
	if (pipe2(go, O_CLOEXEC))
		return 1;
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		_exit(server(names, go[0]));
	}
	close(go[0]);
	pin(0);
	for (i = 0; i < opt_channels; i++) {
		rc = smem_rpc_open(names[i], &o, &chs[i]);
		if (rc) {
			fprintf(stderr, "open: %s\n", smem_strerror(rc));
			return 1;
		}
	}
	if (write(go[1], "g", 1) != 1)
		return 1;
	req = calloc(1, opt_size + 1);
	fill_request(req, opt_size, 0);
	/* warm up (and wait for the server to attach) */
	for (i = 0; i < opt_channels; i++)
		while (smem_rpc_call(chs[i], req, opt_size, NULL, NULL, 5000) != 0)
			usleep(1000);
	cap = 1u << 24;
	rtt = malloc(cap * sizeof(*rtt));
	for (k = 0; k < opt_inflight; k++) {
		started[k] = smem__now_ns();
		fill_request(req, opt_size, seq++);
		rc = smem_rpc_call_async(chs[k % opt_channels], req, opt_size, 10000, &calls[k]);
		if (rc)
			return 1;
	}
	sys0 = smem__wait_syscalls();
	t_start = smem__now_ns();
	t_end = t_start + (uint64_t)(opt_seconds * 1e9);
	for (;;) {
		uint64_t now;

		rc = smem_rpc_wait(calls, (unsigned)opt_inflight, SMEM_RPC_WAIT_ANY, 10000);
		if (rc < 0) {
			fprintf(stderr, "wait: %s\n", smem_strerror(rc));
			return 1;
		}
		now = smem__now_ns();
		for (k = 0; k < opt_inflight; k++) {
			if (!smem_rpc_call_done(calls[k]))
				continue;
			rc = smem_rpc_call_result(calls[k], NULL, NULL);
			if (rc) {
				fprintf(stderr, "call: %s\n", smem_strerror(rc));
				return 1;
			}
			smem_rpc_call_free(calls[k]);
			if (nrtt < cap)
				rtt[nrtt++] = now - started[k];
			done++;
			started[k] = smem__now_ns();
			if (now < t_end) {
				fill_request(req, opt_size, seq++);
				rc = smem_rpc_call_async(chs[k % opt_channels], req, opt_size, 10000,
							 &calls[k]);
				if (rc)
					return 1;
			} else {
				calls[k] = NULL;
			}
		}
		if (now >= t_end) {
			/* drain what is left */
			int left = 0;

			for (k = 0; k < opt_inflight; k++)
				if (calls[k])
					calls[left++] = calls[k];
			if (left) {
				smem_rpc_wait(calls, (unsigned)left, SMEM_RPC_WAIT_ALL, 10000);
				for (k = 0; k < left; k++) {
					smem_rpc_call_free(calls[k]);
					done++;
				}
			}
			break;
		}
	}
	secs = (double)(smem__now_ns() - t_start) / 1e9;
	sys1 = smem__wait_syscalls();
	node_size = smem_ring_node_size(smem__rpc_tx(chs[0]));
	node_count = smem_ring_node_count(smem__rpc_tx(chs[0]));
	for (i = 0; i < opt_channels; i++)
		smem_rpc_close(chs[i]);
	close(go[1]);	/* --service thread: the server waits for this EOF */
	waitpid(pid, NULL, 0);
	{
		double per_s = (double)done / secs;
		double enters = (double)(sys1 - sys0) / (double)done;
		uint64_t p50 = pct(rtt, nrtt, 0.5), p99 = pct(rtt, nrtt, 0.99);

		if (opt_json) {
			printf("{\"mode\":\"rpc\",\"service\":\"%s\",\"size\":%zu,\"wait\":\"%s\","
			       "\"inflight\":%d,"
			       "\"channels\":%d,\"node_size\":%u,\"nodes\":%u,\"seconds\":%.2f,"
			       "\"backend\":%d,\"msgs_per_s\":%.0f,"
			       "\"rtt_ns_p50\":%llu,\"rtt_ns_p99\":%llu,\"enters_per_call\":%.4f,"
			       "\"baseline_futex_rtt_ns_p50\":%llu,\"baseline_unix_rtt_ns_p50\":%llu,"
			       "\"baseline_unix_msgs_per_s\":%.0f}\n",
			       opt_thread ? "thread" : "dispatch", opt_size, opt_spin ? "spin" : "block",
			       opt_inflight, opt_channels,
			       node_size, node_count, secs,
			       (int)smem__wait_backend(), per_s, (unsigned long long)p50,
			       (unsigned long long)p99, enters, (unsigned long long)futex_p50,
			       (unsigned long long)unix_p50, unix_per_s);
		} else {
			printf("rpc size=%zu wait=%s inflight=%d channels=%d backend=%d\n", opt_size,
			       opt_spin ? "spin" : "block", opt_inflight, opt_channels,
			       (int)smem__wait_backend());
			printf("  calls/s %.0f  rtt p50 %llu ns  p99 %llu ns  enters/call %.4f\n", per_s,
			       (unsigned long long)p50, (unsigned long long)p99, enters);
			if (futex_p50)
				printf("  futex ping-pong rtt p50 %llu ns (ratio %.2f)\n",
				       (unsigned long long)futex_p50, (double)p50 / (double)futex_p50);
			printf("  unix socket rtt p50 %llu ns (%.0f/s; ratio %.2f)\n",
			       (unsigned long long)unix_p50, unix_per_s, (double)p50 / (double)unix_p50);
		}
	}
	free(rtt);
	free(req);
	return 0;
}
