/* SPDX-License-Identifier: MIT */
/*
 * ringbench: peers, the libraries a user would pick instead of smem (bench/peers/: Boost.
 * Interprocess message_queue, ZeroMQ ipc://). They are separate programs, built by
 * `make bench-peers` when their Debian packages are present, so that ringbench itself needs
 * neither C++ nor libzmq. ringbench runs one with the same workload options, in the same
 * invocation as smem, and reads the one JSON line it prints (bench/peers/peer.h says what a
 * peer measures and prints).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringbench.h"

static double field(const char *line, const char *key)
{
	char pat[64];
	const char *p;
	char *end;
	double v;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	v = strtod(p, &end);
	return end == p ? -1 : v;	/* null */
}

int rb_peer(const struct rb_cfg *c, const char *prog, struct rb_result *res)
{
	static const char *const bench_names[] = { "stream", "pingpong", "rpc" };
	char path[4096], size[32], nodes[32], secs[32], warm[32], count[32], reply[32], cpus[64];
	char line[2048];
	const char *argv[24];
	int p[2], st, n = 0, i;
	ssize_t got = 0, k;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", c->peers_dir ? c->peers_dir : ".", prog);
	if (access(path, X_OK)) {
		res->skip = "not built (make bench-peers)";
		return -ENOENT;
	}
	if (c->threads) {
		res->skip = "processes only";
		return -ENOTSUP;
	}
	if (c->bench == RB_STREAM && (c->writers != 1 || c->readers != 1)) {
		res->skip = "1 writer and 1 reader only";
		return -ENOTSUP;
	}
	snprintf(size, sizeof(size), "%zu", c->size);
	snprintf(reply, sizeof(reply), "%zu", c->reply);
	snprintf(nodes, sizeof(nodes), "%u", c->nodes);
	snprintf(secs, sizeof(secs), "%g", c->seconds);
	snprintf(warm, sizeof(warm), "%g", c->warmup);
	snprintf(count, sizeof(count), "%llu", (unsigned long long)c->count);
	cpus[0] = 0;
	for (i = 0; i < c->ncpus && i < 2; i++)
		snprintf(cpus + strlen(cpus), sizeof(cpus) - strlen(cpus), "%s%d", i ? "," : "",
			 c->cpus[i]);
	argv[n++] = path;
	argv[n++] = bench_names[c->bench];
	argv[n++] = "--size";
	argv[n++] = size;
	argv[n++] = "--reply";
	argv[n++] = reply;
	argv[n++] = "--nodes";
	argv[n++] = nodes;
	argv[n++] = "--seconds";
	argv[n++] = secs;
	argv[n++] = "--warmup";
	argv[n++] = warm;
	argv[n++] = "--count";
	argv[n++] = count;
	if (cpus[0]) {
		argv[n++] = "--cpus";
		argv[n++] = cpus;
	}
	if (c->cdf && c->bench != RB_STREAM && rb_rep == c->reps - 1) {
		argv[n++] = "--cdf";
		argv[n++] = c->cdf;
	}
	argv[n] = NULL;

	if (pipe2(p, O_CLOEXEC))
		rb_die("pipe", -errno);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		rb_die("fork", -errno);
	if (pid == 0) {
		dup2(p[1], 1);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (got < (ssize_t)sizeof(line) - 1 &&
	       (k = read(p[0], line + got, sizeof(line) - 1 - (size_t)got)) > 0)
		got += k;
	line[got] = 0;
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !strstr(line, "\"msgs_per_s\":")) {
		res->skip = "the peer program failed";
		return -EIO;
	}
	res->msgs_per_s = field(line, "msgs_per_s");
	res->gb_per_s = field(line, "gb_per_s");
	res->rtt_p50 = field(line, "rtt_ns_p50");
	res->rtt_p99 = field(line, "rtt_ns_p99");
	res->rtt_p999 = field(line, "rtt_ns_p999");
	res->cpu_s_per_msg = field(line, "cpu_s_per_msg");
	res->run_delay_ms = res->nivcsw = -1;	/* not measured in the peer programs */
	res->cswitch_per_msg = field(line, "cswitch_per_msg");
	res->syscalls_per_msg = -1;	/* not counted inside other libraries */
	res->wait = "block";
	return 0;
}
