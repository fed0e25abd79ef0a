/* SPDX-License-Identifier: MIT */
/*
 * ringbench: throughput, latency and cost of smem's ring and RPC, next to the alternatives
 * measured in the same run (machines are shared and noisy: compare ratios from one run, not
 * absolute numbers from different runs).
 *
 *   ringbench stream   [--size B] [--nodes N] [--writers W] [--readers R]   one-way flow
 *   ringbench pingpong [--size B] [--nodes N]                                 round trips
 *   ringbench rpc      [--size B] [--inflight K] [--channels C]               RPC calls
 *                      [--node-size B] [--nodes N] [--service dispatch|thread]
 *   ringbench rpc --inproc [--size B] [--node-size B] [--nodes N]            one thread
 *   ringbench pubsub   [--size B] [--nodes DEPTH] [--readers R] [--no-work]   topic fan-out
 *   ringbench service  [--size B] [--clients N]                                 many clients
 *   common: [--seconds S | --count N] [--warmup S] [--reps N] [--threads] [--cpus A,B,...]
 *           [--wait spin|block|auto] [--syscalls auto|perf|counted] [--compare]
 *           [--transport T[,T...]] [--no-baselines] [--peers DIR] [--json] [--cdf FILE]
 *           [--progress|--quiet]
 *   stream: [--naive-cap BYTES] [--no-work]
 *
 * stream: W writers and R readers move messages of B bytes through one ring; every message
 *   is written in full (each cache line of the source changes per message) and read in full
 *   (copied out, every byte summed). msgs_per_s counts messages read, gb_per_s their bytes.
 *   --no-work leaves out the stamping and the summing (the copies stay): what is left is the
 *   transport's own cost per message. The naive ring holds nodes x size bytes, as smem's ring
 *   does, or --naive-cap BYTES (the JSON row says "capacity").
 * pubsub: one publisher and R subscribers on a topic (ringbench_topic.c): zero-copy loans of
 *   B bytes, every sample to every subscriber (BLOCK policy, depth --nodes); with work the
 *   publisher writes every cache line of a sample and each subscriber reads all its bytes,
 *   with --no-work an 8-byte stamp each way. msgs_per_s counts the samples one subscriber
 *   received. In the same run: the ring's stream at the same size ("smem", the reference
 *   for ratios; with R > 1 its R readers share the messages), R separate rings written
 *   once each ("rings") and a naive broadcast ring ("broadcast"), ringbench_fanout.c.
 * service: N clients (--clients, 4) each making synchronous calls of B bytes (answered with
 *   8) to one smem_service server (ringbench_service.c); msgs_per_s counts every client's
 *   calls, rtt is the first client's. Reference row in the same run: one RPC channel, one
 *   call in flight (the rpc bench); --compare adds the futex request/response ping-pong.
 * pingpong: the pinger sends B bytes, the ponger reads them all and answers B bytes; rtt is
 *   one round trip (two one-way hand-overs); msgs_per_s counts round trips.
 * rpc: calls of B bytes answered with 8 bytes (ringbench_rpc.c); rtt is a call's round trip,
 *   msgs_per_s completed calls. The baselines run as request/response ping-pongs of B and 8.
 *   --node-size/--nodes size smem's RPC rings (default: one packet per call; --nodes sizes the
 *   baselines too); --service thread measures the library's default (a service thread at
 *   both ends) instead of dispatch loops. --inproc runs both ends in one thread, one call at
 *   a time, nothing waiting: the library's own work per call, for instruction counts
 *   (valgrind --tool=callgrind --trace-children=yes ringbench rpc --inproc --warmup 0
 *   --count N), with no baselines.
 * Workers are processes (default) or threads, pinned round-robin to --cpus when given.
 * Each figure is the median of --reps repetitions (min and max given for msgs_per_s); the
 * other figures come from the repetition with the median msgs_per_s. Repetitions are
 * interleaved across transports, so that load from elsewhere hits them alike.
 * Per-message costs: cpu_s_per_msg is the user+system CPU time of all workers per message
 * (per round trip, per call); syscalls_per_msg the system calls of all workers per message,
 * counted by perf where possible ("syscalls_src":"perf") or by our code ("counted"); see
 * ringbench_run.c for what each covers. cswitch_per_msg: voluntary context switches (sleeps).
 * run_delay_ms and nivcsw: how long the workers were runnable but waited for a CPU (their
 * threads' schedstat run delay) and how often they were preempted, go..stop, summed: on a
 * shared machine, other processes taking the workers' (pinned) CPUs show here, and a round
 * trip tail of several ms with hundreds of ms of run delay is the scheduler's, not the
 * transport's (ticks are 4 ms at HZ=250).
 *
 * --compare adds the baselines of ringbench_base.c and the peers of bench/peers (when built;
 * --peers DIR, default: ../peers next to this program); --no-baselines runs smem alone
 * whatever else is asked (so that perf stat over the whole run counts smem's CPU alone). Every baseline row carries
 * ratio_to_smem = its msgs_per_s / smem's, and for round trips rtt_ratio_to_smem = its p50 /
 * smem's (so < 1 means the baseline was faster).
 *
 * Output: a table, or with --json one object per line (keys in report_json below).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <smem.h>

#include "ringbench.h"

struct transport {
	const char *name;
	rb_bench_fn stream, pingpong, rpc;	/* NULL: not this bench */
	rb_bench_fn pubsub;
	const char *peer;			/* a peer program instead */
	bool baseline;				/* run by --compare */
	rb_bench_fn service;
};

/* rpc-mode baselines are request/response ping-pongs (reply 8 bytes) */
static const struct transport transports[] = {
	/* pubsub's baseline (before the topic, the reference for ratios): the ring's stream */
	/* service's reference: one RPC channel, one call in flight */
	{ "smem", rb_smem_stream, rb_smem_pingpong, rb_smem_rpc, rb_smem_stream, NULL, false,
	  rb_smem_rpc },
	{ "topic", NULL, NULL, NULL, rb_topic_pubsub, NULL, false, NULL },
	/* pubsub's fan-out baselines (ringbench_fanout.c), run with the topic in every run */
	{ "rings", NULL, NULL, NULL, rb_rings_pubsub, NULL, false, NULL },
	{ "broadcast", NULL, NULL, NULL, rb_broadcast_pubsub, NULL, false, NULL },
	{ "service", NULL, NULL, NULL, NULL, NULL, false, rb_service_calls },
	{ "naive", rb_naive_stream, rb_naive_pingpong, rb_naive_pingpong, NULL, NULL, true, NULL },
	{ "futex", NULL, rb_futex_pingpong, rb_futex_pingpong, NULL, NULL, true,
	  rb_futex_pingpong },
	{ "eventfd", NULL, rb_eventfd_pingpong, rb_eventfd_pingpong, NULL, NULL, true, NULL },
	{ "pipe", rb_pipe_stream, rb_pipe_pingpong, rb_pipe_pingpong, NULL, NULL, true, NULL },
	{ "unix", rb_unix_stream, rb_unix_pingpong, rb_unix_pingpong, NULL, NULL, true, NULL },
	{ "seqpacket", rb_seqpacket_stream, rb_seqpacket_pingpong, rb_seqpacket_pingpong, NULL,
	  NULL, true, NULL },
	{ "boost_mq", NULL, NULL, NULL, NULL, "boost_mq", true, NULL },
	{ "zmq_ipc", NULL, NULL, NULL, NULL, "zmq_ipc", true, NULL },
};
#define NTRANSPORTS (sizeof(transports) / sizeof(transports[0]))

static const char *const bench_names[] = { "stream", "pingpong", "rpc", "pubsub", "service" };
static bool header_done;

static void json_num(const char *key, double v, int decimals)
{
	if (v < 0)
		printf(",\"%s\":null", key);
	else if (decimals < 0)
		printf(",\"%s\":%.4g", key, v);
	else
		printf(",\"%s\":%.*f", key, decimals, v);
}

static void report_json(const struct rb_cfg *c, const char *name, const struct rb_result *r,
			double mn, double mx, const struct rb_result *ref)
{
	int i;

	printf("{\"bench\":\"%s\",\"transport\":\"%s\",\"size\":%zu,\"nodes\":%u,"
	       "\"writers\":%d,\"readers\":%d", bench_names[c->bench], name, c->size,
	       r->nodes ? r->nodes : c->nodes,
	       c->bench == RB_STREAM || c->bench == RB_PUBSUB ? c->writers : 1,
	       c->bench == RB_STREAM || c->bench == RB_PUBSUB ? c->readers : 1);
	json_num("msgs_per_s", r->msgs_per_s, 0);
	json_num("msgs_per_s_min", mn, 0);
	json_num("msgs_per_s_max", mx, 0);
	json_num("gb_per_s", r->gb_per_s, -1);	/* %.4g: a slow run is not 0 */
	json_num("rtt_ns_p50", r->rtt_p50, 0);
	json_num("rtt_ns_p99", r->rtt_p99, 0);
	json_num("rtt_ns_p999", r->rtt_p999, 0);
	json_num("p999", r->rtt_p999, 0);
	json_num("syscalls_per_msg", r->syscalls_per_msg, -1);
	if (r->syscalls_per_msg >= 0)
		printf(",\"syscalls_src\":\"%s\"", r->syscalls_perf ? "perf" : "counted");
	json_num("cswitch_per_msg", r->cswitch_per_msg, -1);
	json_num("cpu_s_per_msg", r->cpu_s_per_msg, -1);
	json_num("run_delay_ms", r->run_delay_ms, 3);
	json_num("nivcsw", r->nivcsw, 0);
	printf(",\"reps\":%d,\"seconds\":%g,\"count\":%llu,\"warmup\":%g,\"wait\":\"%s\","
	       "\"mode\":\"%s\",\"cpus\":\"", c->reps, c->seconds, (unsigned long long)c->count,
	       c->warmup, r->wait ? r->wait : "",
	       c->inproc ? "inproc" : c->threads ? "threads" : "processes");
	for (i = 0; i < c->ncpus; i++)
		printf("%s%d", i ? "," : "", c->cpus[i]);
	putchar('"');
	if (c->bench == RB_STREAM || c->bench == RB_PUBSUB) {
		printf(",\"work\":%d", c->no_work ? 0 : 1);	/* payload stamped and summed */
		if (!strcmp(name, "naive"))
			printf(",\"capacity\":%zu", c->naive_cap ? c->naive_cap : c->nodes * c->size);
	}
	if (c->bench == RB_RPC) {
		printf(",\"inflight\":%d,\"channels\":%d", c->inflight, c->channels);
		if (!strcmp(name, "smem"))
			printf(",\"backend\":%d,\"node_size\":%u,\"service\":\"%s\","
			       "\"missed_wakeups\":%llu", r->backend, r->node_size,
			       c->service_thread ? "thread" : "dispatch",
			       (unsigned long long)r->missed_wakeups);
	}
	if (c->bench == RB_SERVICE && !strcmp(name, "service"))
		printf(",\"clients\":%d,\"backend\":%d", c->clients, r->backend);
	if (ref && ref != r) {
		json_num("ratio_to_smem", ref->msgs_per_s > 0 ? r->msgs_per_s / ref->msgs_per_s : -1,
			 -1);
		if (c->bench != RB_STREAM)
			json_num("rtt_ratio_to_smem",
				 ref->rtt_p50 > 0 && r->rtt_p50 > 0 ? r->rtt_p50 / ref->rtt_p50 : -1,
				 -1);
	}
	puts("}");
}

static void fmt_rate(char *buf, size_t n, double v)
{
	if (v < 0)
		snprintf(buf, n, "-");
	else if (v >= 1e6)
		snprintf(buf, n, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, n, "%.1fk", v / 1e3);
	else
		snprintf(buf, n, "%.0f", v);
}

static void fmt_us(char *buf, size_t n, double ns)
{
	if (ns < 0)
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.2f", ns / 1000.0);
}

static void report_table(const struct rb_cfg *c, const char *name, const struct rb_result *r,
			 double mn, double mx, const struct rb_result *ref)
{
	char rate[16], lo[16], hi[16], p50[16], p99[16], p999[16], sys[16], cpu[16], ratio[32];

	if (!header_done) {
		printf("%-8s %-9s %8s %5s %3s %5s %10s %17s %8s %9s %9s %9s %9s %8s  %s\n", "bench",
		       "transport", "size", "nodes", "w/r", "wait", "msgs/s", "(min..max)", "GB/s",
		       "p50 us", "p99 us", "p99.9 us", "sys/msg", "cpu us", "vs smem");
		header_done = true;
	}
	if (r->skip) {
		printf("%-8s %-9s %8zu  skipped: %s\n", bench_names[c->bench], name, c->size,
		       r->skip);
		return;
	}
	fmt_rate(rate, sizeof(rate), r->msgs_per_s);
	fmt_rate(lo, sizeof(lo), mn);
	fmt_rate(hi, sizeof(hi), mx);
	fmt_us(p50, sizeof(p50), r->rtt_p50);
	fmt_us(p99, sizeof(p99), r->rtt_p99);
	fmt_us(p999, sizeof(p999), r->rtt_p999);
	if (r->syscalls_per_msg < 0)
		snprintf(sys, sizeof(sys), "-");
	else
		snprintf(sys, sizeof(sys), "%.3g%s", r->syscalls_per_msg,
			 r->syscalls_perf ? "" : "*");
	fmt_us(cpu, sizeof(cpu), r->cpu_s_per_msg < 0 ? -1 : r->cpu_s_per_msg * 1e9);
	ratio[0] = 0;
	if (ref && ref != r && ref->msgs_per_s > 0)
		snprintf(ratio, sizeof(ratio), "%.2fx", r->msgs_per_s / ref->msgs_per_s);
	if (ref && ref != r && c->bench != RB_STREAM && ref->rtt_p50 > 0 && r->rtt_p50 > 0)
		snprintf(ratio + strlen(ratio), sizeof(ratio) - strlen(ratio), " (rtt %.2fx)",
			 r->rtt_p50 / ref->rtt_p50);
	printf("%-8s %-9s %8zu %5u %1d/%-1d %5s %10s %8s..%-8s %8.3f %9s %9s %9s %9s %8s  %s\n",
	       bench_names[c->bench], name, c->size, r->nodes ? r->nodes : c->nodes,
	       c->bench == RB_STREAM || c->bench == RB_PUBSUB ? c->writers : 1,
	       c->bench == RB_STREAM || c->bench == RB_PUBSUB ? c->readers : 1,
	       r->wait ? r->wait : "", rate, lo, hi, r->gb_per_s, p50, p99, p999, sys, cpu, ratio);
	if (r->missed_wakeups)
		printf("%-8s %-9s   %llu missed wake-ups (sleeps that ran to the safety cap)\n",
		       bench_names[c->bench], name, (unsigned long long)r->missed_wakeups);
}

static int cmp_rate(const void *a, const void *b)
{
	const struct rb_result *x = a, *y = b;

	return x->msgs_per_s < y->msgs_per_s ? -1 : x->msgs_per_s > y->msgs_per_s;
}

/* One repetition of one transport. */
static void measure_once(const struct rb_cfg *c, const struct transport *t, int rep,
			 struct rb_result *out)
{
	rb_bench_fn fn = c->bench == RB_STREAM ? t->stream : c->bench == RB_PUBSUB ? t->pubsub :
			 c->bench == RB_SERVICE ? t->service :
			 c->bench == RB_PINGPONG ? t->pingpong : t->rpc;

	snprintf(rb_label, sizeof(rb_label), "%s %s size %zu, rep %d/%d", bench_names[c->bench],
		 t->name, c->size, rep + 1, c->reps);
	rb_transport = t->name;
	rb_rep = rep;
	*out = (struct rb_result){ .msgs_per_s = -1 };
	if (!t->peer && c->bench == RB_STREAM && strcmp(t->name, "smem") &&
	    (c->writers != 1 || c->readers != 1))
		out->skip = "1 writer and 1 reader only";
	else if (c->bench == RB_PUBSUB && !strcmp(t->name, "smem") && c->readers != 1)
		out->skip = "the ring stream baseline runs with 1 reader only";
	else if (t->peer)
		rb_peer(c, t->peer, out);
	else
		fn(c, out);
}

/* The repetition with the median msgs_per_s (its other figures come with it); min, max. */
static struct rb_result median(struct rb_result *runs, int n, double *mn, double *mx)
{
	qsort(runs, (size_t)n, sizeof(*runs), cmp_rate);
	*mn = runs[0].msgs_per_s;
	*mx = runs[n - 1].msgs_per_s;
	return runs[(n - 1) / 2];
}

static void usage(FILE *f)
{
	fputs("usage: ringbench stream|pingpong|rpc|pubsub|service [options]\n"
	      "       ringbench --help | --version\n"
	      "  --size BYTES        message (rpc: request) size, K/M suffixes (1024)\n"
	      "  --nodes N           ring nodes (20); baselines get the same capacity\n"
	      "  --writers W --readers R   stream: writers and readers (1 and 1)\n"
	      "  --inflight K --channels C rpc: calls in flight over C channels (1 and 1)\n"
	      "  --clients N         service: client processes calling one server (4)\n"
	      "  --node-size B       rpc: smem's node bytes, 256..64M (size + 64: one packet per\n"
	      "                      call); --nodes sizes smem's rings too (64; 8 over 64K);\n"
	      "                      0 for either: the library's default\n"
	      "  --service dispatch|thread  rpc: serve loops, or the library's service threads\n"
	      "  --inproc            rpc: both ends in one thread, one call at a time\n"
	      "  --naive-cap BYTES   stream: the naive ring's capacity (nodes x size: smem's)\n"
	      "  --no-work           stream: no payload work (stamp, sum), the copies only;\n"
	      "                      pubsub: an 8-byte stamp written and read per sample\n"
	      "  --seconds S | --count N   window: time (2) or messages/round trips/calls\n"
	      "  --warmup S          seconds before the window opens (0.2)\n"
	      "  --reps N            repetitions; report median, min, max (1)\n"
	      "  --threads           workers are threads (default: processes)\n"
	      "  --cpus A,B,...      pin worker i to CPU list[i % n]\n"
	      "  --wait spin|block|auto    how smem waits (auto)\n"
	      "  --syscalls auto|perf|counted  how system calls are counted (auto: perf if it can)\n"
	      "  --compare           add the baselines and peers; --transport T,T: only these\n"
	      "  --no-baselines      smem alone, whatever --compare or --transport say\n"
	      "  --peers DIR         where the peer programs are (../peers next to ringbench)\n"
	      "  --json              JSON lines instead of a table\n"
	      "  --cdf FILE          append round-trip quantiles (last repetition) to FILE\n"
	      "  --slow-log FILE     rpc: write each timed call over 1 ms as \"start end\"\n"
	      "                      (CLOCK_MONOTONIC ns; last repetition) for bench/sched-tail\n"
	      "  --progress | --quiet  progress line on stderr (default: when it is a terminal)\n"
	      "transports: smem naive futex eventfd pipe unix seqpacket boost_mq zmq_ipc\n", f);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	return (size_t)v;
}

/* The index of @s in @names, or -1. */
static int pick(const char *s, const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static bool selected(const struct rb_cfg *c, const char *name, bool baseline)
{
	size_t n = strlen(name);
	const char *p;

	if (baseline && c->no_baselines)
		return false;
	if (!c->only)
		return !baseline || c->compare;
	for (p = c->only; (p = strstr(p, name)); p += n)
		if ((p == c->only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

static char *default_peers(const char *argv0)
{
	static char dir[4096];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 16);
	char *slash;

	(void)argv0;
	if (n <= 0)
		return NULL;
	dir[n] = 0;
	slash = strrchr(dir, '/');
	if (!slash)
		return NULL;
	strcpy(slash, "/../peers");
	return dir;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "nodes", required_argument, NULL, 'n' },
		{ "writers", required_argument, NULL, 'w' },
		{ "readers", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "count", required_argument, NULL, 'N' },
		{ "warmup", required_argument, NULL, 'u' },
		{ "reps", required_argument, NULL, 'R' },
		{ "repeat", required_argument, NULL, 'R' },	/* the first version's name */
		{ "threads", no_argument, NULL, 't' },
		{ "wait", required_argument, NULL, 'W' },
		{ "syscalls", required_argument, NULL, 'Y' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "channels", required_argument, NULL, 'H' },
		{ "clients", required_argument, NULL, 'L' },
		{ "node-size", required_argument, NULL, 'Z' },
		{ "service", required_argument, NULL, 'V' },
		{ "inproc", no_argument, NULL, 'I' },
		{ "naive-cap", required_argument, NULL, 'A' },
		{ "no-work", no_argument, NULL, 'O' },
		{ "no-baselines", no_argument, NULL, 'B' },
		{ "json", no_argument, NULL, 'j' },
		{ "compare", no_argument, NULL, 'C' },
		{ "transport", required_argument, NULL, 'T' },
		{ "peers", required_argument, NULL, 'P' },
		{ "cdf", required_argument, NULL, 'F' },
		{ "slow-log", required_argument, NULL, 'G' },
		{ "progress", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rb_cfg c = { .size = 1024, .nodes = 20, .writers = 1, .readers = 1, .seconds = 2,
			    .warmup = 0.2, .reps = 1, .inflight = 1, .channels = 1,
			    .rpc_node_size = -1, .rpc_nodes = -1, .clients = 4 };
	/* in the order of enum rb_syscalls */
	static const char *const syscalls[] = { "auto", "perf", "counted" };
	static const char *const services[] = { "dispatch", "thread" };
	long nodes = -1;
	struct rb_result res[NTRANSPORTS], *runs[NTRANSPORTS], *ref = NULL;
	bool sel[NTRANSPORTS];
	int progress = -1;
	unsigned i;
	int o, k;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("ringbench (smem) %s\n", SMEM_TOOLS_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "pingpong"))
		c.bench = RB_PINGPONG;
	else if (!strcmp(argv[1], "rpc"))
		c.bench = RB_RPC;
	else if (!strcmp(argv[1], "pubsub"))
		c.bench = RB_PUBSUB;
	else if (!strcmp(argv[1], "service"))
		c.bench = RB_SERVICE;
	else if (strcmp(argv[1], "stream")) {
		usage(stderr);
		return 2;
	}
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': c.size = parse_size(optarg); break;
		case 'n': nodes = strtol(optarg, NULL, 0); break;
		case 'Z': c.rpc_node_size = (long)parse_size(optarg); break;
		case 'I': c.inproc = true; break;
		case 'A': c.naive_cap = parse_size(optarg); break;
		case 'O': c.no_work = true; break;
		case 'B': c.no_baselines = true; break;
		case 'V':
			if ((k = pick(optarg, services, 2)) < 0)
				goto bad;
			c.service_thread = k == 1;
			break;
		case 'w': c.writers = atoi(optarg); break;
		case 'r': c.readers = atoi(optarg); break;
		case 'S': c.seconds = atof(optarg); break;
		case 'N': c.count = strtoull(optarg, NULL, 0); break;
		case 'u': c.warmup = atof(optarg); break;
		case 'R': c.reps = atoi(optarg); break;
		case 't': c.threads = true; break;
		case 'i': c.inflight = atoi(optarg); break;
		case 'H': c.channels = atoi(optarg); break;
		case 'L': c.clients = atoi(optarg); break;
		case 'j': c.json = true; break;
		case 'C': c.compare = true; break;
		case 'T': c.only = optarg; break;
		case 'P': c.peers_dir = optarg; break;
		case 'F': c.cdf = optarg; break;
		case 'G': c.slow_log = optarg; break;
		case 'p': progress = 1; break;
		case 'q': progress = 0; break;
		case 'W':
			if ((k = pick(optarg, rb_wait_names, 3)) < 0)
				goto bad;
			c.wait = (enum rb_wait)k;
			break;
		case 'Y':
			if ((k = pick(optarg, syscalls, 3)) < 0)
				goto bad;
			c.syscalls = (enum rb_syscalls)k;
			break;
		case 'c': {
			char *s = optarg, *end;

			c.ncpus = 0;
			while (*s && c.ncpus < RB_MAX_WORKERS) {
				long v = strtol(s, &end, 10);

				if (end == s || v < 0 || v >= CPU_SETSIZE)
					goto bad;
				c.cpus[c.ncpus++] = (int)v;
				s = *end == ',' ? end + 1 : end;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (c.bench == RB_PUBSUB)
		c.writers = 1;	/* one publisher; --readers subscribers */
	else if (c.bench != RB_STREAM)
		c.writers = c.readers = 1;
	/* rpc: --nodes sizes smem's rings too, 0 leaving them to the library (baselines: 20) */
	if (nodes != -1) {
		if (nodes < 0 || nodes > (1l << 20))
			goto bad;
		if (c.bench == RB_RPC)
			c.rpc_nodes = nodes;
		if (c.bench != RB_RPC || nodes != 0)
			c.nodes = (uint32_t)nodes;	/* checked below: >= 2 */
	}
	/* stream options: only in stream; the naive ring holds at least one message */
	if ((c.bench != RB_STREAM && (c.naive_cap || (c.no_work && c.bench != RB_PUBSUB))) ||
	    (c.naive_cap && (c.naive_cap < c.size || c.naive_cap > (1ul << 34))))
		goto bad;
	/* rpc options: only in rpc; --inproc is one call at a time with nobody waiting */
	if ((c.bench != RB_RPC && (c.rpc_node_size != -1 || c.service_thread || c.inproc)) ||
	    (c.rpc_node_size != -1 && c.rpc_node_size != 0 &&
	     (c.rpc_node_size < 256 || c.rpc_node_size > (64l << 20))) ||
	    (c.inproc && (c.inflight != 1 || c.channels != 1 || c.service_thread)) ||
	    (c.service_thread && c.threads))
		goto bad;
	c.reply = c.bench == RB_PINGPONG ? c.size : c.bench == RB_RPC || c.bench == RB_SERVICE ? 8 : 0;
	if (c.clients < 1 || c.clients + 1 > RB_MAX_WORKERS ||
	    (c.bench != RB_SERVICE && c.clients != 4))
		goto bad;
	if (!c.size || c.size > (1u << 30) || c.nodes < 2 || c.nodes > (1u << 20) ||
	    c.writers < 1 || c.readers < 1 || c.writers + c.readers > RB_MAX_WORKERS ||
	    (c.seconds <= 0 && !c.count) || c.warmup < 0 || c.reps < 1 || c.reps > 1000 ||
	    c.inflight < 1 || c.inflight > 1024 || c.channels < 1 || c.channels > 32 ||
	    c.channels > c.inflight || (c.slow_log && (c.bench != RB_RPC || c.inproc)))
		goto bad;
	if (!c.peers_dir)
		c.peers_dir = default_peers(argv[0]);
	c.progress = progress < 0 ? isatty(2) : progress;
	if (c.inproc)
		c.no_baselines = true;	/* in one thread, there is nothing to compare */
	snprintf(c.name, sizeof(c.name), "ringbench-%d", (int)getpid());
	rb_samples_bytes = c.bench == RB_STREAM || c.bench == RB_PUBSUB ? 0 :
			   RB_MAX_SAMPLES * sizeof(uint64_t);
	rb_ctl = rb_shared_map(sizeof(struct rb_ctl) + rb_samples_bytes);
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Repetitions are interleaved (every transport once, then again), so that a burst of
	 * load from elsewhere hits all transports alike rather than one of them.
	 */
	for (i = 0; i < NTRANSPORTS; i++) {
		const struct transport *t = &transports[i];
		rb_bench_fn fn = c.bench == RB_STREAM ? t->stream :
				 c.bench == RB_PUBSUB ? t->pubsub :
				 c.bench == RB_SERVICE ? t->service :
				 c.bench == RB_PINGPONG ? t->pingpong : t->rpc;

		sel[i] = (fn || t->peer) && selected(&c, t->name, t->baseline);
		if (sel[i] && !(runs[i] = calloc((size_t)c.reps, sizeof(struct rb_result))))
			rb_die("calloc", -ENOMEM);
	}
	for (k = 0; k < c.reps; k++)
		for (i = 0; i < NTRANSPORTS; i++)
			if (sel[i] && !(k && runs[i][0].skip))
				measure_once(&c, &transports[i], k, &runs[i][k]);
	for (i = 0; i < NTRANSPORTS; i++) {
		double mn = -1, mx = -1;

		if (!sel[i])
			continue;
		res[i] = runs[i][0].skip ? runs[i][0] : median(runs[i], c.reps, &mn, &mx);
		free(runs[i]);
		if (!strcmp(transports[i].name, "smem"))
			ref = &res[i];
		if (res[i].skip && c.json)
			fprintf(stderr, "ringbench: %s %s: skipped: %s\n", bench_names[c.bench],
				transports[i].name, res[i].skip);
		else if (c.json)
			report_json(&c, transports[i].name, &res[i], mn, mx, ref);
		else
			report_table(&c, transports[i].name, &res[i], mn, mx, ref);
		fflush(stdout);
	}
	if (!c.json && header_done)
		puts("(sys/msg: * = counted by ringbench itself, else perf counted every system "
		     "call; cpu us: CPU time of all workers per message; vs smem: msgs/s ratio)");
	return rb_failed ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
