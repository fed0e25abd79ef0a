/* SPDX-License-Identifier: MIT */
/*
 * ringbench (tools/ringbench.c) runs each mode for a fraction of a second and prints JSON
 * lines that scripts can rely on: the keys, their types, values that make sense (rates and
 * costs > 0, percentiles ordered, ratios on baseline rows only). No timing assertions: the
 * figures themselves depend on the machine and its load.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/testutil.h"

#define MAX_KEYS 64
#define MAX_LINES 32

enum jtype { J_NUM, J_STR, J_NULL };

struct jkey {
	char key[40];
	enum jtype type;
	double num;
	char str[64];
};

struct jobj {
	int n;
	struct jkey k[MAX_KEYS];
};

struct run {
	int status;
	int nlines;
	struct jobj obj[MAX_LINES];
	char out[16384];
};

/* A flat JSON object of strings, numbers and nulls (what ringbench prints). 0 or -1. */
static int parse_string(const char **p, char *dst, size_t cap)
{
	size_t n = 0;

	if (**p != '"')
		return -1;
	for ((*p)++; **p && **p != '"'; (*p)++) {
		if (**p == '\\' || (unsigned char)**p < 0x20)
			return -1;	/* ringbench never needs escapes */
		if (n + 1 < cap)
			dst[n++] = **p;
	}
	if (**p != '"')
		return -1;
	(*p)++;
	dst[n] = 0;
	return 0;
}

static int parse_obj(const char *p, struct jobj *o)
{
	o->n = 0;
	if (*p++ != '{')
		return -1;
	for (;;) {
		struct jkey *k;
		char *end;
		int i;

		if (o->n == MAX_KEYS)
			return -1;
		k = &o->k[o->n];
		if (parse_string(&p, k->key, sizeof(k->key)) || *p++ != ':')
			return -1;
		for (i = 0; i < o->n; i++)
			if (!strcmp(o->k[i].key, k->key))
				return -1;	/* duplicate key */
		if (*p == '"') {
			k->type = J_STR;
			if (parse_string(&p, k->str, sizeof(k->str)))
				return -1;
		} else if (!strncmp(p, "null", 4)) {
			k->type = J_NULL;
			p += 4;
		} else {
			k->type = J_NUM;
			k->num = strtod(p, &end);
			if (end == p)
				return -1;
			p = end;
		}
		o->n++;
		if (*p == ',') {
			p++;
			continue;
		}
		return *p == '}' && p[1] == 0 ? 0 : -1;
	}
}

static const struct jkey *get(const struct jobj *o, const char *key)
{
	int i;

	for (i = 0; i < o->n; i++)
		if (!strcmp(o->k[i].key, key))
			return &o->k[i];
	return NULL;
}

static double num(const struct jobj *o, const char *key)
{
	const struct jkey *k = get(o, key);

	ck_assert_msg(k, "key %s missing", key);
	ck_assert_msg(k->type == J_NUM, "key %s is not a number", key);
	return k->num;
}

static const char *str(const struct jobj *o, const char *key)
{
	const struct jkey *k = get(o, key);

	ck_assert_msg(k, "key %s missing", key);
	ck_assert_msg(k->type == J_STR, "key %s is not a string", key);
	return k->str;
}

static bool is_null(const struct jobj *o, const char *key)
{
	const struct jkey *k = get(o, key);

	ck_assert_msg(k, "key %s missing", key);
	return k->type == J_NULL;
}

/* Run ringbench with @args (NULL-terminated), collect stdout, parse each line if @json. */
static void ringbench(struct run *r, bool json, const char *const *args)
{
	char path[4096];
	const char *argv[40];
	int p[2], n = 0, st;
	size_t got = 0;
	ssize_t k;
	pid_t pid;
	char *line, *save;

	snprintf(path, sizeof(path), "%s/tools/ringbench", t_build_dir());
	ck_assert_msg(access(path, X_OK) == 0, "%s not built", path);
	argv[n++] = path;
	while (*args && n < 36)
		argv[n++] = *args++;
	argv[n++] = "--peers";			/* peers are for make bench, not for the suite */
	argv[n++] = "/nonexistent";
	argv[n] = NULL;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		if (!json) {	/* usage messages of the bad-option cases: not for the log */
			int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

			if (null >= 0)
				dup2(null, 2);
		}
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (got < sizeof(r->out) - 1 && (k = read(p[0], r->out + got,
						     sizeof(r->out) - 1 - got)) > 0)
		got += (size_t)k;
	r->out[got] = 0;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->nlines = 0;
	if (!json)
		return;
	{
		static char copy[sizeof(r->out)];

		memcpy(copy, r->out, got + 1);
		for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			ck_assert_int_lt(r->nlines, MAX_LINES);
			ck_assert_msg(parse_obj(line, &r->obj[r->nlines]) == 0,
				      "not a flat JSON object: %s", line);
			r->nlines++;
		}
	}
}

/* The keys every row has, with their types and sane values. */
static void check_row(const struct jobj *o, const char *bench, double size)
{
	double p50, p99, p999;

	ck_assert_str_eq(str(o, "bench"), bench);
	ck_assert(strlen(str(o, "transport")) > 0);
	ck_assert(num(o, "size") == size);
	ck_assert(num(o, "nodes") >= 2);
	ck_assert(num(o, "writers") >= 1);
	ck_assert(num(o, "readers") >= 1);
	ck_assert_msg(num(o, "msgs_per_s") > 0, "%s: msgs_per_s", str(o, "transport"));
	ck_assert(num(o, "gb_per_s") > 0);
	ck_assert(num(o, "msgs_per_s_min") <= num(o, "msgs_per_s"));
	ck_assert(num(o, "msgs_per_s") <= num(o, "msgs_per_s_max"));
	ck_assert(num(o, "cpu_s_per_msg") > 0);
	ck_assert(num(o, "syscalls_per_msg") >= 0);	/* 0 is right for a spinning ring */
	ck_assert(!strcmp(str(o, "syscalls_src"), "perf") ||
		  !strcmp(str(o, "syscalls_src"), "counted"));
	ck_assert(num(o, "cswitch_per_msg") >= 0);
	/* the scheduler's share: time the workers waited for a CPU, their preemptions */
	ck_assert(num(o, "run_delay_ms") >= 0 && num(o, "nivcsw") >= 0);
	ck_assert(num(o, "reps") >= 1);
	ck_assert(strlen(str(o, "wait")) > 0);
	ck_assert(!strcmp(str(o, "mode"), "processes") || !strcmp(str(o, "mode"), "threads") ||
		  !strcmp(str(o, "mode"), "inproc"));
	if (!strcmp(bench, "stream") || !strcmp(bench, "pubsub")) {
		ck_assert(is_null(o, "rtt_ns_p50"));
		ck_assert(is_null(o, "rtt_ns_p99"));
		ck_assert(is_null(o, "rtt_ns_p999"));
		ck_assert(is_null(o, "p999"));
		return;
	}
	p50 = num(o, "rtt_ns_p50");
	p99 = num(o, "rtt_ns_p99");
	p999 = num(o, "rtt_ns_p999");
	ck_assert(p50 > 0 && p50 <= p99 && p99 <= p999);
	ck_assert(num(o, "p999") == p999);
}

/* Run ringbench with @args: it succeeds with exactly @rows JSON rows, each of them sane. */
static void rows_of(struct run *r, const char *const *args, int rows, const char *bench,
		    double size)
{
	int i;

	ringbench(r, true, args);
	ck_assert_int_eq(r->status, 0);
	ck_assert_int_eq(r->nlines, rows);
	for (i = 0; i < rows; i++)
		check_row(&r->obj[i], bench, size);
}

/* smem first, without ratios; every baseline after it with ratio_to_smem > 0. */
static void check_ratios(const struct run *r)
{
	int i;

	ck_assert_int_ge(r->nlines, 1);
	ck_assert_str_eq(str(&r->obj[0], "transport"), "smem");
	ck_assert(!get(&r->obj[0], "ratio_to_smem"));
	for (i = 1; i < r->nlines; i++) {
		ck_assert_str_ne(str(&r->obj[i], "transport"), "smem");
		ck_assert(num(&r->obj[i], "ratio_to_smem") > 0);
		if (strcmp(str(&r->obj[i], "bench"), "stream") &&
		    strcmp(str(&r->obj[i], "bench"), "pubsub"))
			ck_assert(num(&r->obj[i], "rtt_ratio_to_smem") > 0);
	}
}

static bool has_transport(const struct run *r, const char *name)
{
	int i;

	for (i = 0; i < r->nlines; i++)
		if (!strcmp(str(&r->obj[i], "transport"), name))
			return true;
	return false;
}

#define SHORT "--seconds", "0.1", "--warmup", "0.02", "--quiet"

START_TEST(stream_prints_a_json_row_for_smem_and_each_baseline)
{
	static struct run r;
	static const char *const args[] = { "stream", "--size", "1000", "--nodes", "8",
					     "--compare", "--transport",
					     "smem,naive,pipe,unix,seqpacket", "--json", "--cpus",
					     "0,1", SHORT, NULL };
	int i;

	rows_of(&r, args, 5, "stream", 1000);
	for (i = 0; i < r.nlines; i++) {
		ck_assert(num(&r.obj[i], "nodes") == 8);
		ck_assert(num(&r.obj[i], "writers") == 1 && num(&r.obj[i], "readers") == 1);
	}
	check_ratios(&r);
	ck_assert(has_transport(&r, "naive") && has_transport(&r, "pipe") &&
		  has_transport(&r, "unix") && has_transport(&r, "seqpacket"));
}
END_TEST

START_TEST(pubsub_runs_the_topic_beside_separate_rings_and_a_broadcast_ring)
{
	static struct run r;
	static const char *const one[] = { "pubsub", "--size", "4096", "--nodes", "8", "--json",
					    "--cpus", "0,1", SHORT, NULL };
	static const char *const two[] = { "pubsub", "--size", "4096", "--nodes", "8",
					    "--readers", "2", "--no-work", "--json", "--cpus",
					    "0,1", SHORT, NULL };
	int i;

	/* one subscriber: the ring's stream first (the reference), then the fan-outs */
	rows_of(&r, one, 4, "pubsub", 4096);
	check_ratios(&r);
	ck_assert_str_eq(str(&r.obj[1], "transport"), "topic");
	ck_assert_str_eq(str(&r.obj[2], "transport"), "rings");
	ck_assert_str_eq(str(&r.obj[3], "transport"), "broadcast");
	/* two: the stream (whose readers would share messages) is left out, not the others */
	rows_of(&r, two, 3, "pubsub", 4096);
	for (i = 0; i < r.nlines; i++) {
		ck_assert(num(&r.obj[i], "readers") == 2);
		ck_assert(num(&r.obj[i], "work") == 0);
	}
	ck_assert(has_transport(&r, "topic") && has_transport(&r, "rings") &&
		  has_transport(&r, "broadcast"));
}
END_TEST

START_TEST(stream_naive_cap_and_no_work_are_reported_in_the_rows)
{
	static struct run r;
	static const char *const args[] = { "stream", "--size", "1024", "--nodes", "64",
					     "--compare", "--transport", "smem,naive",
					     "--naive-cap", "4M", "--no-work", "--json", SHORT, NULL };
	static const char *const dflt[] = { "stream", "--size", "1000", "--nodes", "8",
					     "--compare", "--transport", "smem,naive", "--json",
					     SHORT, NULL };
	int i;

	rows_of(&r, args, 2, "stream", 1024);
	check_ratios(&r);
	for (i = 0; i < r.nlines; i++) {
		ck_assert(num(&r.obj[i], "work") == 0);
		if (!strcmp(str(&r.obj[i], "transport"), "naive"))
			ck_assert(num(&r.obj[i], "capacity") == 4 << 20);
		else
			ck_assert(!get(&r.obj[i], "capacity"));
	}
	/* by default the naive ring holds what smem's does: nodes x size */
	rows_of(&r, dflt, 2, "stream", 1000);
	ck_assert(num(&r.obj[1], "work") == 1);
	ck_assert(num(&r.obj[1], "capacity") == 8000);
}
END_TEST

START_TEST(stream_with_threads_runs_several_writers_and_readers)
{
	static struct run r;
	static const char *const args[] = { "stream", "--threads", "--writers", "2", "--readers",
					     "2", "--size", "64", "--wait", "block", "--json", SHORT,
					     NULL };

	rows_of(&r, args, 1, "stream", 64);
	ck_assert_str_eq(str(&r.obj[0], "mode"), "threads");
	ck_assert_str_eq(str(&r.obj[0], "wait"), "block");
	ck_assert(num(&r.obj[0], "writers") == 2 && num(&r.obj[0], "readers") == 2);
}
END_TEST

START_TEST(pingpong_prints_ordered_round_trip_percentiles_for_each_transport)
{
	static struct run r;
	static const char *const args[] = { "pingpong", "--size", "256", "--compare",
					     "--transport",
					     "smem,naive,futex,eventfd,pipe,unix,seqpacket", "--json",
					     "--wait", "block", SHORT, NULL };

	rows_of(&r, args, 7, "pingpong", 256);
	check_ratios(&r);
	ck_assert(has_transport(&r, "futex") && has_transport(&r, "eventfd") &&
		  has_transport(&r, "naive") && has_transport(&r, "pipe"));
}
END_TEST

START_TEST(rpc_prints_calls_per_second_against_request_response_baselines)
{
	static struct run r;
	static const char *const args[] = { "rpc", "--size", "2048", "--inflight", "4",
					     "--channels", "2", "--compare", "--transport",
					     "smem,futex,unix", "--json", "--count", "300",
					     "--warmup", "0.02", "--quiet", NULL };
	int i;

	rows_of(&r, args, 3, "rpc", 2048);
	for (i = 0; i < r.nlines; i++)
		ck_assert(num(&r.obj[i], "inflight") == 4 && num(&r.obj[i], "channels") == 2);
	check_ratios(&r);
	ck_assert(num(&r.obj[0], "backend") >= 1 && num(&r.obj[0], "backend") <= 3);
	/* by default one packet per call: nodes of the request's size + the 64-byte header */
	ck_assert_str_eq(str(&r.obj[0], "service"), "dispatch");
	ck_assert(num(&r.obj[0], "node_size") == 2048 + 64);
	ck_assert(num(&r.obj[0], "nodes") == 64);
	ck_assert(!get(&r.obj[1], "node_size") && !get(&r.obj[1], "service"));
}
END_TEST

START_TEST(rpc_slow_log_lists_the_calls_over_a_millisecond)
{
	static struct run r;
	char path[] = "/tmp/check_ringbench_slow_XXXXXX";
	const char *args[] = { "rpc", "--inflight", "16", "--channels", "4", "--wait", "block",
			       "--json", "--count", "3000", "--warmup", "0.02", "--quiet",
			       "--slow-log", path, NULL };
	unsigned long long a, b;
	int fd = mkstemp(path), n = 0, k;
	FILE *f;

	ck_assert_int_ge(fd, 0);
	close(fd);
	unlink(path);	/* ringbench creates it */
	rows_of(&r, args, 1, "rpc", 1024);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "no slow log written");
	/* every line a call of the window: start, end on CLOCK_MONOTONIC, over 1 ms apart */
	while ((k = fscanf(f, "%llu %llu", &a, &b)) == 2) {
		ck_assert(a > 0 && b > a + 1000000);
		n++;
	}
	ck_assert_int_eq(k, EOF);
	fclose(f);
	unlink(path);
	ck_assert(n <= 3000 + 16);
}
END_TEST

START_TEST(rpc_node_size_and_nodes_set_the_geometry_of_smems_rings)
{
	static struct run r;
	/* 3000-byte requests in 1024-byte nodes: four packets each, reassembled */
	static const char *const args[] = { "rpc", "--size", "3000", "--node-size", "1024",
					     "--nodes", "12", "--inflight", "2", "--json",
					     "--count", "200", "--warmup", "0.02", "--quiet", NULL };
	static const char *const lib[] = { "rpc", "--size", "100", "--node-size", "0", "--nodes",
					    "0", "--json", "--count", "200", "--warmup", "0.02",
					    "--quiet", NULL };

	rows_of(&r, args, 1, "rpc", 3000);
	ck_assert(num(&r.obj[0], "node_size") == 1024);
	ck_assert(num(&r.obj[0], "nodes") == 12);
	/* 0 and 0: the library's defaults (64 KiB nodes, 16 of them) */
	rows_of(&r, lib, 1, "rpc", 100);
	ck_assert(num(&r.obj[0], "node_size") == 65536);
	ck_assert(num(&r.obj[0], "nodes") == 16);
}
END_TEST

START_TEST(rpc_service_thread_serves_calls_from_the_librarys_threads)
{
	static struct run r;
	static const char *const args[] = { "rpc", "--service", "thread", "--size", "512",
					     "--inflight", "3", "--wait", "block", "--json",
					     "--count", "300", "--warmup", "0.02", "--quiet", NULL };

	rows_of(&r, args, 1, "rpc", 512);
	ck_assert_str_eq(str(&r.obj[0], "service"), "thread");
	ck_assert_str_eq(str(&r.obj[0], "mode"), "processes");
	ck_assert(num(&r.obj[0], "inflight") == 3);
}
END_TEST

START_TEST(rpc_inproc_runs_both_ends_in_one_thread_and_never_waits)
{
	static struct run r;
	/* --compare: in one thread there is nothing to compare, so no baseline rows */
	static const char *const args[] = { "rpc", "--inproc", "--size", "1000", "--compare",
					     "--syscalls", "counted", "--json", "--count", "2000",
					     "--warmup", "0", "--quiet", NULL };

	rows_of(&r, args, 1, "rpc", 1000);
	ck_assert_str_eq(str(&r.obj[0], "transport"), "smem");
	ck_assert_str_eq(str(&r.obj[0], "mode"), "inproc");
	ck_assert(num(&r.obj[0], "inflight") == 1 && num(&r.obj[0], "channels") == 1);
	ck_assert(num(&r.obj[0], "node_size") == 1000 + 64);
	/* every wait has timeout 0: the library never goes to the kernel to sleep */
	ck_assert_str_eq(str(&r.obj[0], "syscalls_src"), "counted");
	ck_assert(num(&r.obj[0], "syscalls_per_msg") == 0);
}
END_TEST

START_TEST(no_baselines_runs_smem_alone_whatever_compare_asks)
{
	static struct run r;
	static const char *const args[] = { "pingpong", "--compare", "--transport", "smem,futex",
					     "--no-baselines", "--json", SHORT, NULL };

	rows_of(&r, args, 1, "pingpong", 1024);
	ck_assert_str_eq(str(&r.obj[0], "transport"), "smem");
}
END_TEST

START_TEST(reps_report_the_median_between_min_and_max)
{
	static struct run r;
	static const char *const args[] = { "stream", "--reps", "3", "--json", "--size", "4096",
					     "--transport", "smem,naive", "--syscalls", "counted",
					     SHORT, NULL };
	int i;

	rows_of(&r, args, 2, "stream", 4096);
	for (i = 0; i < 2; i++) {
		ck_assert(num(&r.obj[i], "reps") == 3);
		ck_assert_str_eq(str(&r.obj[i], "syscalls_src"), "counted");
	}
	/* the naive ring never makes a system call on its data path */
	ck_assert(num(&r.obj[1], "syscalls_per_msg") == 0);
}
END_TEST

START_TEST(default_output_is_a_table_with_a_row_per_transport)
{
	static struct run r;
	static const char *const args[] = { "pingpong", "--transport", "smem,futex", SHORT,
					     NULL };

	ringbench(&r, false, args);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "transport"));
	ck_assert_ptr_nonnull(strstr(r.out, "\npingpong smem "));
	ck_assert_ptr_nonnull(strstr(r.out, "\npingpong futex "));
	ck_assert_ptr_null(strchr(r.out, '{'));
}
END_TEST

START_TEST(service_prints_its_clients_calls_against_one_channel_and_futex)
{
	static struct run r;
	static const char *const args[] = { "service", "--size", "512", "--clients", "3",
					     "--compare", "--transport", "smem,service,futex",
					     "--json", "--count", "300", "--warmup", "0.02",
					     "--quiet", NULL };

	rows_of(&r, args, 3, "service", 512);
	check_ratios(&r);
	ck_assert_str_eq(str(&r.obj[1], "transport"), "service");
	ck_assert(num(&r.obj[1], "clients") == 3);
	ck_assert(num(&r.obj[1], "backend") >= 1 && num(&r.obj[1], "backend") <= 3);
	ck_assert_str_eq(str(&r.obj[2], "transport"), "futex");
	ck_assert(!get(&r.obj[2], "clients"));
}
END_TEST

START_TEST(bad_options_exit_with_status_2)
{
	static struct run r;
	static const char *const bad[][6] = {
		{ "stream", "--size", "0", NULL },
		{ "bounce", NULL },
		{ "stream", "--wait", "sometimes", NULL },
		{ "rpc", "--channels", "4", "--inflight", "2", NULL },
		{ "stream", "--nodes", "1", NULL },
		{ "rpc", "--node-size", "100", NULL },		/* under 256 */
		{ "stream", "--node-size", "1024", NULL },	/* rpc only */
		{ "rpc", "--service", "sometimes", NULL },
		{ "rpc", "--service", "thread", "--threads", NULL },	/* CPU time unseen */
		{ "rpc", "--inproc", "--inflight", "2", NULL },	/* one call at a time */
		{ "pingpong", "--inproc", NULL },
		{ "pingpong", "--no-work", NULL },		/* stream only */
		{ "rpc", "--naive-cap", "1M", NULL },		/* stream only */
		{ "stream", "--size", "2048", "--naive-cap", "1024", NULL },	/* < 1 message */
		{ "rpc", "--clients", "2", NULL },		/* service only */
		{ "pingpong", "--slow-log", "/dev/null", NULL },	/* rpc only */
		{ "rpc", "--inproc", "--slow-log", "/dev/null", NULL },	/* nothing waits */
		{ "service", "--clients", "0", NULL },
	};
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ringbench(&r, false, bad[i]);
		ck_assert_int_eq(r.status, 2);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ringbench");
	TCase *tc = tcase_create("ringbench");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, stream_prints_a_json_row_for_smem_and_each_baseline);
	tcase_add_test(tc, stream_naive_cap_and_no_work_are_reported_in_the_rows);
	tcase_add_test(tc, stream_with_threads_runs_several_writers_and_readers);
	tcase_add_test(tc, pubsub_runs_the_topic_beside_separate_rings_and_a_broadcast_ring);
	tcase_add_test(tc, pingpong_prints_ordered_round_trip_percentiles_for_each_transport);
	tcase_add_test(tc, rpc_prints_calls_per_second_against_request_response_baselines);
	tcase_add_test(tc, rpc_node_size_and_nodes_set_the_geometry_of_smems_rings);
	tcase_add_test(tc, rpc_slow_log_lists_the_calls_over_a_millisecond);
	tcase_add_test(tc, rpc_service_thread_serves_calls_from_the_librarys_threads);
	tcase_add_test(tc, rpc_inproc_runs_both_ends_in_one_thread_and_never_waits);
	tcase_add_test(tc, no_baselines_runs_smem_alone_whatever_compare_asks);
	tcase_add_test(tc, reps_report_the_median_between_min_and_max);
	tcase_add_test(tc, default_output_is_a_table_with_a_row_per_transport);
	tcase_add_test(tc, service_prints_its_clients_calls_against_one_channel_and_futex);
	tcase_add_test(tc, bad_options_exit_with_status_2);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(suite)
