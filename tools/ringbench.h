/* SPDX-License-Identifier: MIT */
/*
 * ringbench's internal interface: the configuration, the measurement window every transport
 * runs in, and the transports (tools/ringbench_*.c). Not installed; not part of libsmem.
 *
 * The measurement protocol, the same for every transport:
 *   1. the parent creates what the transport needs, then spawns its workers (processes by
 *      default, threads with --threads), each pinned to the next CPU of --cpus;
 *   2. each worker opens its end, announces itself (ready) and spins until go;
 *   3. the parent lets them go, waits --warmup seconds, takes the read counters (the start of
 *      the window; pingers start keeping round-trip samples when they see `measuring`), waits
 *      --seconds or until --count messages more were read, takes the counters again (the end
 *      of the window) and sets stop;
 *   4. each worker leaves its loop, adds what it measured between go and stop (CPU time,
 *      voluntary context switches, system calls, messages) to the shared totals, and exits.
 * msgs_per_s and gb_per_s come from the window; per-message costs (CPU, system calls) from
 * the workers' go..stop totals divided by the messages moved in the same span.
 */
#ifndef RINGBENCH_H
#define RINGBENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RB_MAX_WORKERS 64
#define RB_MAX_SAMPLES (1u << 22)	/* round-trip samples kept per repetition */

enum rb_bench { RB_STREAM, RB_PINGPONG, RB_RPC, RB_PUBSUB, RB_SERVICE };
enum rb_wait { RB_WAIT_AUTO, RB_WAIT_SPIN, RB_WAIT_BLOCK };
enum rb_syscalls { RB_SYS_AUTO, RB_SYS_PERF, RB_SYS_COUNTED };

struct rb_cfg {
	enum rb_bench bench;
	size_t size;		/* message (stream, pingpong) or request (rpc) bytes */
	size_t reply;		/* bytes sent back per round trip: pingpong size, rpc 0 */
	uint32_t nodes;
	int writers, readers;
	double seconds;		/* window length, unless count */
	uint64_t count;		/* window length in messages (0: use seconds) */
	double warmup;		/* seconds before the window opens */
	int reps;
	bool threads;
	enum rb_wait wait;
	enum rb_syscalls syscalls;
	bool json, compare, no_baselines, progress;
	const char *only;	/* --transport */
	const char *peers_dir;	/* peer programs (boost_mq, zmq_ipc) */
	const char *cdf;	/* append round-trip quantiles here (--cdf) */
	const char *slow_log;	/* rpc: calls over 1 ms, "start end" ns, written here */
	int cpus[RB_MAX_WORKERS];
	int ncpus;
	int inflight, channels;	/* rpc */
	long rpc_node_size, rpc_nodes;	/* rpc: smem's rings; -1: sized for the request, 0: the
					 * library's default */
	bool service_thread;	/* rpc: a library service thread at both ends */
	bool inproc;		/* rpc: both ends in one thread, nothing waits */
	size_t naive_cap;	/* stream: the naive ring's bytes (0: nodes x size, like smem's) */
	bool no_work;		/* stream: no payload work (stamp, sum): the transports' own cost */
	int clients;		/* service: client workers */
	char name[64];		/* a unique prefix for smem names */
};

/* One repetition's figures. Negative means "not applicable" (null in JSON). */
struct rb_result {
	double msgs_per_s, gb_per_s;
	double rtt_p50, rtt_p99, rtt_p999;
	double syscalls_per_msg;
	double cswitch_per_msg;	/* voluntary context switches per message */
	double cpu_s_per_msg;
	/* Scheduler: the workers' time runnable but off a CPU (their threads' schedstat run
	 * delay), and their involuntary switches, go..stop, summed; -1 when not measured. */
	double run_delay_ms, nivcsw;
	bool syscalls_perf;	/* counted by perf (all system calls) or by our own code */
	const char *wait;	/* the transport's own waiting: "spin", "block", smem's mode */
	int backend;		/* rpc: the wait backend (1 io_uring, 2 futex_waitv, 3 futex) */
	uint64_t missed_wakeups;	/* rpc: smem_rpc_stats.missed_wakeups, both ends (a bug if > 0) */
	uint32_t nodes;		/* nodes per ring when not --nodes (smem rpc sizes its own) */
	uint32_t node_size;	/* rpc: smem's ring node size (0: not reported) */
	const char *skip;	/* not run: why */
};

/* Shared between the parent and the workers (MAP_SHARED, so processes see it too). */
struct rb_ctl {
	_Atomic int ready, go, measuring, stop, errors;
	_Atomic uint32_t aux;			/* transport-specific handshakes (a futex word) */
	_Atomic uint64_t msgs;			/* messages moved between go and stop */
	_Atomic uint64_t syscalls;		/* counted by our code (or perf) in go..stop */
	_Atomic uint64_t perf_syscalls;
	_Atomic int perf_workers;		/* workers whose perf counter worked */
	_Atomic uint64_t cpu_ns, nvcsw;		/* getrusage, go..stop, all workers */
	_Atomic uint64_t nivcsw;		/* ... involuntary switches (preemptions) */
	_Atomic uint64_t run_delay_ns;		/* schedstat: runnable, waiting for a CPU */
	_Atomic uint64_t sink;			/* sums of what was read, so it is really read */
	_Atomic int backend;
	_Atomic uint64_t missed_wakeups;	/* rpc: both ends' channels, summed */
	struct {
		_Atomic uint64_t n;		/* messages read (or round trips) so far */
		char pad[56];
	} count[RB_MAX_WORKERS];
	_Atomic uint64_t nsamples;
	uint64_t samples[];			/* round trips, ns (pingpong, rpc) */
};

extern struct rb_ctl *rb_ctl;
extern size_t rb_samples_bytes;	/* rb_ctl->samples[]'s size (0: not a timed bench) */
extern const char *const rb_wait_names[3];	/* by enum rb_wait: "auto", "spin", "block" */
extern char rb_label[128];	/* what runs now, for messages */
extern int rb_failed;		/* a run had worker errors */
extern const char *rb_transport;	/* the transport running now */
extern int rb_rep;			/* its repetition, from 0 */

struct rb_worker;
typedef void (*rb_worker_fn)(struct rb_worker *w);

struct rb_worker {
	const struct rb_cfg *c;
	int index;		/* CPU and counter slot */
	int role;		/* transport-specific: 0 writer/pinger/client, 1 reader/ponger/server */
	rb_worker_fn fn;
	void *tp;		/* transport state */
	/* private to ringbench_run.c */
	pid_t pid;
	unsigned long tid;
	int perf_fd;
	uint64_t perf0;
	struct rb_usage {
		uint64_t cpu_ns, nvcsw, nivcsw, run_delay_ns;
	} u0;			/* at go */
};

/* ---- ringbench_run.c: workers and the window ---- */
uint64_t rb_now_ns(void);
void rb_die(const char *what, int err);
void *rb_shared_map(size_t size);
void rb_relax(void);
uint64_t rb_touch(const void *p, size_t len);	/* sum every byte: the payload is read */
void rb_stamp(void *buf, size_t len, uint64_t seq);	/* write the whole payload */
void rb_pub_fill(const struct rb_cfg *c, void *buf, uint64_t seq);
uint64_t rb_sub_consume(const struct rb_cfg *c, const void *p, size_t len);
int rb_pubsub_timeout(const struct rb_cfg *c);
/* Worker side: announce readiness, wait for go, start the worker's own accounting. */
void rb_ready(struct rb_worker *w);
bool rb_stopping(void);
bool rb_measuring(void);
void rb_count(struct rb_worker *w);			/* one message read / round trip done */
void rb_sample(uint64_t ns);				/* one round trip, if measuring */
/* Worker side, after its loop: add messages, counted system calls, CPU to the totals. */
void rb_account(struct rb_worker *w, uint64_t msgs, uint64_t counted_syscalls);
/* Parent side: run n workers through the window; fills msgs_per_s and the per-msg costs. */
void rb_run(const struct rb_cfg *c, struct rb_worker *ws, int n, struct rb_result *res,
	    void (*after_stop)(struct rb_worker *ws, int n));
/* rb_run() for n workers whose worker i has role i, all running fn on tp; sets res->wait and,
 * for round trips, the percentiles. */
void rb_run_roles(const struct rb_cfg *c, int n, rb_worker_fn fn, void *tp, const char *wait,
		  struct rb_result *res, void (*after_stop)(struct rb_worker *ws, int n));
/* Percentiles from the samples (and gb_per_s with both directions). */
void rb_rtt_result(const struct rb_cfg *c, struct rb_result *res);
/* The pinger's loop: timed round trips until stop; rt() returns false on error. */
void rb_pinger(struct rb_worker *w, bool (*rt)(struct rb_worker *w, void *buf), void *buf);
long rb_futex(_Atomic uint32_t *addr, int op, uint32_t val);

/* ---- transports: each fills *res (or res->skip) for one repetition ---- */
typedef int (*rb_bench_fn)(const struct rb_cfg *c, struct rb_result *res);

int rb_smem_stream(const struct rb_cfg *c, struct rb_result *res);	/* ringbench_smem.c */
int rb_smem_pingpong(const struct rb_cfg *c, struct rb_result *res);
int rb_smem_rpc(const struct rb_cfg *c, struct rb_result *res);		/* ringbench_rpc.c */
struct smem_rpc_opts;
/* smem's RPC options for @c: rings sized for one packet per call, the spin of --wait. */
void rb_rpc_opts(const struct rb_cfg *c, struct smem_rpc_opts *o);
/* The benchmarks' handler: reads the request (summed into sum), answers `reply` stamped bytes
 * (at most 64). arg: a struct rb_rpc_handler_state. */
struct rb_rpc_handler_state {
	size_t reply;
	uint64_t sum, seq;
};
struct smem_rpc_request;
struct smem_rpc_reply;
int rb_rpc_handler(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep);
int rb_topic_pubsub(const struct rb_cfg *c, struct rb_result *res);	/* ringbench_topic.c */
int rb_rings_pubsub(const struct rb_cfg *c, struct rb_result *res);	/* ringbench_fanout.c */
int rb_broadcast_pubsub(const struct rb_cfg *c, struct rb_result *res);
int rb_service_calls(const struct rb_cfg *c, struct rb_result *res);	/* ringbench_service.c */
int rb_naive_stream(const struct rb_cfg *c, struct rb_result *res);	/* ringbench_base.c */
int rb_naive_pingpong(const struct rb_cfg *c, struct rb_result *res);
int rb_pipe_stream(const struct rb_cfg *c, struct rb_result *res);
int rb_pipe_pingpong(const struct rb_cfg *c, struct rb_result *res);
int rb_unix_stream(const struct rb_cfg *c, struct rb_result *res);
int rb_unix_pingpong(const struct rb_cfg *c, struct rb_result *res);
int rb_seqpacket_stream(const struct rb_cfg *c, struct rb_result *res);
int rb_seqpacket_pingpong(const struct rb_cfg *c, struct rb_result *res);
int rb_eventfd_pingpong(const struct rb_cfg *c, struct rb_result *res);
int rb_futex_pingpong(const struct rb_cfg *c, struct rb_result *res);
/* ringbench_peers.c: run a peer program (bench/peers) and read its JSON line. */
int rb_peer(const struct rb_cfg *c, const char *prog, struct rb_result *res);

#endif
