/* SPDX-License-Identifier: MIT */
/* The peer programs' harness: see peer.h. Mirrors tools/ringbench_run.c, in small. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

#define MAX_SAMPLES (1u << 22)

struct ctl {
	_Atomic int ready, go, measuring, stop, errors;
	_Atomic uint64_t count;		/* messages read / round trips, by one worker */
	_Atomic uint64_t msgs, cpu_ns, nvcsw;
	_Atomic uint64_t sink;
	uint64_t nsamples;
	uint64_t samples[];
};

static struct ctl *ctl;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t touch(const unsigned char *p, size_t len)
{
	uint64_t s = 0, w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		s += w;
	}
	for (; i < len; i++)
		s += p[i];
	return s;
}

static void stamp(unsigned char *b, size_t len, uint64_t seq)
{
	size_t i;

	for (i = 0; i + 8 <= len; i += 64)
		memcpy(b + i, &seq, 8);
	if (len && len < 8)
		b[0] = (unsigned char)seq;
}

static void cpu_now(uint64_t *cpu, uint64_t *nvcsw)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*cpu = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
	*nvcsw = (uint64_t)ru.ru_nvcsw;
}

static int stopping(void)
{
	return atomic_load_explicit(&ctl->stop, memory_order_relaxed);
}

/* Send or receive, retrying timeouts until stop: 1 done, 0 stopped, -1 error. */
static int xfer(const struct peer_ops *ops, void *h, int send, int dir, void *buf, size_t len)
{
	for (;;) {
		int r = send ? ops->send(h, dir, buf, len) : ops->recv(h, dir, buf, len);

		if (r)
			return r;
		if (stopping())
			return 0;
	}
}

static void worker(const struct peer_ops *ops, const struct peer_cfg *c, int role, int cpu)
{
	size_t cap = c->size > c->reply ? c->size : c->reply;
	unsigned char *buf = malloc(cap + 8);
	uint64_t cpu0, cs0, cpu1, cs1, seq = 0, sum = 0, n = 0;
	void *h;

	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	h = ops->open(c, role);
	if (!h || !buf) {
		atomic_fetch_add(&ctl->errors, 1);
		atomic_fetch_add(&ctl->ready, 1);
		return;
	}
	memset(buf, 0x5a, cap + 8);
	atomic_fetch_add(&ctl->ready, 1);
	while (!atomic_load(&ctl->go))
		;
	cpu_now(&cpu0, &cs0);
	if (!c->pingpong && role == 0) {
		while (!stopping()) {
			stamp(buf, c->size, seq++);
			if (xfer(ops, h, 1, 0, buf, c->size) < 0)
				break;
		}
	} else if (!c->pingpong) {
		while (!stopping()) {
			if (xfer(ops, h, 0, 0, buf, c->size) <= 0)
				break;
			sum += touch(buf, c->size);
			n++;
			atomic_store_explicit(&ctl->count, n, memory_order_relaxed);
		}
	} else if (role == 0) {
		while (!stopping()) {
			uint64_t t = now_ns();

			stamp(buf, c->size, seq++);
			if (xfer(ops, h, 1, 0, buf, c->size) <= 0 ||
			    xfer(ops, h, 0, 1, buf, c->reply) <= 0)
				break;
			if (atomic_load_explicit(&ctl->measuring, memory_order_relaxed) &&
			    ctl->nsamples < MAX_SAMPLES)
				ctl->samples[ctl->nsamples++] = now_ns() - t;
			sum += touch(buf, c->reply);
			n++;
			atomic_store_explicit(&ctl->count, n, memory_order_relaxed);
		}
	} else {
		while (!stopping()) {
			if (xfer(ops, h, 0, 0, buf, c->size) <= 0)
				break;
			sum += touch(buf, c->size);
			stamp(buf, c->reply, seq++);
			if (xfer(ops, h, 1, 1, buf, c->reply) <= 0)
				break;
		}
	}
	cpu_now(&cpu1, &cs1);
	atomic_fetch_add(&ctl->cpu_ns, cpu1 - cpu0);
	atomic_fetch_add(&ctl->nvcsw, cs1 - cs0);
	atomic_fetch_add(&ctl->msgs, n);
	atomic_fetch_add(&ctl->sink, sum);
	ops->close(h);
	free(buf);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The quantile lines of ringbench --cdf (tools/ringbench_run.c), for bench/plot/latency.gp. */
static void write_cdf(const char *path, const char *bench, const char *name, size_t size,
		      uint64_t n)
{
	static const double tail[] = { 0.991, 0.992, 0.993, 0.994, 0.995, 0.996, 0.997, 0.998,
					0.999, 0.9992, 0.9994, 0.9996, 0.9998, 0.9999, 1.0 };
	FILE *f = fopen(path, "ae");
	unsigned i;

	if (!f)
		return;
	for (i = 0; i < 100 + sizeof(tail) / sizeof(tail[0]); i++) {
		double q = i < 100 ? (double)i / 100.0 : tail[i - 100];

		fprintf(f, "%s %s %zu block %.4f %llu\n", bench, name, size, q,
			(unsigned long long)ctl->samples[(uint64_t)((double)(n - 1) * q)]);
	}
	fclose(f);
}

static void num(const char *key, double v, int dec)
{
	if (v < 0)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%.*f", key, dec, v);
}

int peer_main(int argc, char **argv, const struct peer_ops *ops)
{
	struct peer_cfg c = { 0, 1024, 1024, 20, NULL };
	double seconds = 2, warmup = 0.2, el, rate;
	unsigned long long count = 0;
	const char *cdf = NULL;
	int cpus[2] = { -1, -1 }, i, st, bad = 0;
	uint64_t m0 = 0, t0 = 0, m1 = 0, t1 = 1, n;
	char id[64];
	pid_t pid[2];

	if (argc < 2)
		return 2;
	c.pingpong = strcmp(argv[1], "stream") != 0;
	for (i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--size"))
			c.size = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--reply"))
			c.reply = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--nodes"))
			c.nodes = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--warmup"))
			warmup = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--count"))
			count = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--cdf"))
			cdf = argv[i + 1];
		else if (!strcmp(argv[i], "--cpus"))
			sscanf(argv[i + 1], "%d,%d", &cpus[0], &cpus[1]);
		else
			return 2;
	}
	if (!c.pingpong)
		c.reply = 0;
	if (!c.size || (c.pingpong && !c.reply) || c.nodes < 1)
		return 2;
	snprintf(id, sizeof(id), "ringbench-%s-%d", ops->name, (int)getpid());
	c.id = id;
	ctl = mmap(NULL, sizeof(*ctl) + MAX_SAMPLES * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED || ops->setup(&c))
		return 1;
	fflush(NULL);
	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			worker(ops, &c, i, cpus[i]);
			_exit(atomic_load(&ctl->errors) ? 1 : 0);
		}
	}
	while (atomic_load(&ctl->ready) < 2)
		usleep(1000);
	if (atomic_load(&ctl->errors)) {
		atomic_store(&ctl->stop, 1);
		atomic_store(&ctl->go, 1);
		bad = 1;
	} else {
		atomic_store(&ctl->go, 1);
		sleep_s(warmup);
		m0 = atomic_load(&ctl->count);
		t0 = now_ns();
		atomic_store(&ctl->measuring, 1);
		if (count) {
			uint64_t end = t0 + 300000000000ull;

			while (atomic_load(&ctl->count) - m0 < count && now_ns() < end)
				usleep(2000);
		} else {
			sleep_s(seconds);
		}
		m1 = atomic_load(&ctl->count);
		t1 = now_ns();
		atomic_store(&ctl->measuring, 0);
		atomic_store(&ctl->stop, 1);
	}
	for (i = 0; i < 2; i++) {
		waitpid(pid[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	ops->teardown(&c);
	if (bad) {
		fprintf(stderr, "%s: a worker failed\n", ops->name);
		return 1;
	}
	el = (double)(t1 - t0) / 1e9;
	rate = (double)(m1 - m0) / el;
	n = ctl->nsamples;
	qsort(ctl->samples, n, sizeof(uint64_t), cmp_u64);
	if (cdf && n)
		write_cdf(cdf, argv[1], ops->name, c.size, n);
	printf("{\"transport\":\"%s\"", ops->name);
	num("msgs_per_s", rate, 0);
	num("gb_per_s", rate * (double)(c.size + c.reply) / 1e9, 4);
	num("rtt_ns_p50", n ? (double)ctl->samples[(n - 1) / 2] : -1, 0);
	num("rtt_ns_p99", n ? (double)ctl->samples[(uint64_t)((double)(n - 1) * 0.99)] : -1, 0);
	num("rtt_ns_p999", n ? (double)ctl->samples[(uint64_t)((double)(n - 1) * 0.999)] : -1, 0);
	n = atomic_load(&ctl->msgs);
	num("cpu_s_per_msg", n ? (double)atomic_load(&ctl->cpu_ns) / 1e9 / (double)n : -1, 9);
	num("cswitch_per_msg", n ? (double)atomic_load(&ctl->nvcsw) / (double)n : -1, 6);
	puts("}");
	return 0;
}
