/* SPDX-License-Identifier: MIT */
/*
 * ringbench rpc: smem RPC calls between a client and a server (the seed's RpcTest, measured).
 *
 * The client (worker 0) creates C channels (it is their master) and keeps K calls in flight
 * spread over them (--inflight, --channels), waiting for completions with smem_rpc_wait(ANY)
 * in one thread. The server (worker 1) attaches to every channel and serves them all in one
 * smem_rpc_serve() loop (dispatch mode: no library thread). A request carries `size` bytes,
 * stamped by the client and summed by the handler; the response carries `reply` (8) bytes,
 * read by the client. rtt is a call's round trip (call_async to its completion seen by the
 * client, queueing behind other in-flight calls included); msgs_per_s is completed calls/s.
 * Counted system calls: the library's io_uring_enter/futex_waitv calls in both processes
 * (futex wakes are not in that count; --syscalls perf counts everything).
 *
 * --slow-log FILE: the client keeps each timed call over 1 ms (its start and end, on
 * CLOCK_MONOTONIC, at most SLOW_MAX of them) and writes them as "start end" lines at the end of
 * each repetition; bench/sched-tail lays them over a perf sched trace of the same run to tell
 * what both workers were doing meanwhile (running, waiting for a CPU, asleep).
 *
 * --service thread measures the library's default instead: both ends open with a service
 * thread (the server's handlers run there, the server worker itself sleeps; the client still
 * waits in smem_rpc_wait). Worker processes only: a thread's CPU time would miss the
 * service threads.
 *
 * --inproc: both ends in one worker thread, one call at a time (call_async, dispatch on the
 * serving end, wait on the calling end, all with timeout 0): nothing spins or sleeps, so the
 * CPU time and instruction counts per call (valgrind --tool=callgrind --trace-children=yes,
 * or with --threads; perf stat -e instructions) are the library's own work on both sides and
 * do not depend on the machine's load. rtt is then one call's work, end to end. A request
 * must fit in its ring at once (nobody reads while it is sent).
 *
 * --wait spin: waiters poll 200 ms before sleeping (both sides busy); block: they sleep at
 * once (SMEM_RPC_NO_SPIN); auto: the library default. Geometry of smem's rings: by default
 * nodes of size + 64 bytes (one packet per call; at most 1 MiB, larger requests are split),
 * 64 of them up to 64 KiB requests, 8 above; --node-size and --nodes set them (0: the
 * library's default). The smem row reports the geometry the rings really have.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <smem.h>

#include "internal.h"
#include "rpc_int.h"
#include "wait.h"
#include "ringbench.h"

#define RPC_MAX_INFLIGHT 1024
#define RPC_MAX_CHANNELS 32
#define SLOW_NS		1000000u
#define SLOW_MAX	65536u

/* Shared with the workers (MAP_SHARED). */
struct rpc_bench {
	char names[RPC_MAX_CHANNELS][96];
	uint32_t node_size, nodes;	/* the rings' real geometry, from the client */
};

void rb_rpc_opts(const struct rb_cfg *c, struct smem_rpc_opts *o)
{
	memset(o, 0, sizeof(*o));
	/* A node holds a whole request up to 1 MiB (one packet per call), as the seed's RpcTest
	 * sized its buffer; larger requests are split. */
	o->node_size = c->size + 64 <= (1u << 20) ? (uint32_t)(c->size + 64) : (1u << 20);
	if (o->node_size < 256)
		o->node_size = 256;
	o->node_count = c->size > 65536 ? 8 : 64;
	if (c->rpc_node_size >= 0)
		o->node_size = (uint32_t)c->rpc_node_size;
	if (c->rpc_nodes >= 0)
		o->node_count = (uint32_t)c->rpc_nodes;
	o->spin_ns = c->wait == RB_WAIT_SPIN ? 200000000u :
		     c->wait == RB_WAIT_BLOCK ? SMEM_RPC_NO_SPIN : 0;
	o->service = c->service_thread ? SMEM_RPC_SERVICE_THREAD : SMEM_RPC_SERVICE_DISPATCH;
}

int rb_rpc_handler(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	struct rb_rpc_handler_state *h = arg;
	unsigned char out[64];

	h->sum += rb_touch(req->data, req->len);
	memset(out, 0x44, sizeof(out));
	rb_stamp(out, h->reply, h->seq++);
	return smem_rpc_reply_set(rep, out, h->reply);
}

/* Open channel @i of the run: the client's end (master, it opens first) or the server's. */
static struct smem_rpc *open_end(const struct rb_cfg *c, struct rpc_bench *b, int i,
				 struct rb_rpc_handler_state *hs)
{
	struct smem_rpc_opts o;
	struct smem_rpc *ch;
	int err;

	rb_rpc_opts(c, &o);
	if (hs) {
		o.handler = rb_rpc_handler;
		o.handler_arg = hs;
	}
	err = smem_rpc_open(b->names[i], &o, &ch);
	if (err)
		rb_die(hs ? "smem_rpc_open (server)" : "smem_rpc_open (client)", err);
	if (!hs && i == 0) {
		b->node_size = (uint32_t)smem_rpc_packet_payload(ch) + 64;
		b->nodes = smem_ring_node_count(smem__rpc_tx(ch));
	}
	return ch;
}

/* A completed call: its response must be the `reply` bytes, which are read. 0 or an error. */
static int collect(const struct rb_cfg *c, struct smem_rpc_call *call, uint64_t *sum)
{
	void *resp;
	size_t len;
	int err = smem_rpc_call_result(call, &resp, &len);

	smem_rpc_call_free(call);
	if (!err && len != c->reply) {
		fprintf(stderr, "ringbench: rpc call: %zu bytes back, not %zu\n", len, c->reply);
		err = -EBADMSG;
	}
	if (!err)
		*sum += rb_touch(resp, len);
	smem_rpc_free_response(resp);
	return err;
}

static void fail(const char *what, int err)
{
	fprintf(stderr, "ringbench: %s: %s\n", what, smem_strerror(err));
	atomic_fetch_add(&rb_ctl->errors, 1);
}

/* Sleeps of these channels that ran to the safety cap for want of a wake-up (a bug if any). */
static void add_missed_wakeups(struct smem_rpc *const *chs, int n)
{
	struct smem_rpc_stats st;
	int i;

	for (i = 0; i < n; i++)
		if (smem_rpc_stats(chs[i], &st) == 0)
			atomic_fetch_add(&rb_ctl->missed_wakeups, st.missed_wakeups);
}

/* The client's last word (aux 2: the server may stop serving), and a wake for a server that
 * sleeps on it (--service thread). */
static void client_done(void)
{
	atomic_store(&rb_ctl->aux, 2);
	rb_futex(&rb_ctl->aux, FUTEX_WAKE, 1);
}

/* --slow-log: the calls over SLOW_NS of this repetition. */
struct slow_log {
	uint64_t (*call)[2];
	unsigned n;
};

static void slow_note(struct slow_log *sl, uint64_t start, uint64_t end)
{
	if (sl->call && end - start > SLOW_NS && sl->n < SLOW_MAX && rb_measuring()) {
		sl->call[sl->n][0] = start;
		sl->call[sl->n++][1] = end;
	}
}

static void slow_write(const struct rb_cfg *c, struct slow_log *sl)
{
	FILE *f;
	unsigned i;

	if (!sl->call)
		return;
	f = fopen(c->slow_log, "we");
	if (!f) {
		fprintf(stderr, "ringbench: %s: %s\n", c->slow_log, strerror(errno));
	} else {
		for (i = 0; i < sl->n; i++)
			fprintf(f, "%llu %llu\n", (unsigned long long)sl->call[i][0],
				(unsigned long long)sl->call[i][1]);
		fclose(f);
	}
	free(sl->call);
}

static void server(struct rb_worker *w, struct rpc_bench *b)
{
	const struct rb_cfg *c = w->c;
	struct rb_rpc_handler_state hs = { c->reply < 64 ? c->reply : 64, 0, 0 };
	struct smem_rpc *chs[RPC_MAX_CHANNELS];
	uint64_t sys0;
	uint32_t aux;
	int i, err;

	/* Acquire: pairs with the client's release of aux (its channels exist: it is master). */
	while (!atomic_load_explicit(&rb_ctl->aux, memory_order_acquire))
		rb_relax();
	for (i = 0; i < c->channels; i++)
		chs[i] = open_end(c, b, i, &hs);
	rb_ready(w);
	sys0 = smem__wait_syscalls();
	/* Serve until the client has collected its last call (aux 2), not just until stop. */
	while (c->service_thread && (aux = atomic_load(&rb_ctl->aux)) != 2)
		rb_futex(&rb_ctl->aux, FUTEX_WAIT, aux);
	while (!c->service_thread && atomic_load_explicit(&rb_ctl->aux, memory_order_relaxed) != 2) {
		err = smem_rpc_serve(chs, (unsigned)c->channels, 100);
		if (err < 0 && err != -ETIMEDOUT) {
			if (!rb_stopping() && err != -ECONNRESET && err != -ESHUTDOWN)
				fail("serve", err);
			break;
		}
	}
	/* Threads share the process-wide counter: the client reports it for both. */
	rb_account(w, 0, c->threads ? 0 : smem__wait_syscalls() - sys0);
	add_missed_wakeups(chs, c->channels);
	for (i = 0; i < c->channels; i++)
		smem_rpc_close(chs[i]);		/* joins a service thread: hs is final */
	atomic_fetch_add(&rb_ctl->sink, hs.sum);
}

static int start(struct smem_rpc *ch, const void *req, size_t len, struct smem_rpc_call **call)
{
	return smem_rpc_call_async(ch, req, len, 10000, call);
}

static void client(struct rb_worker *w, struct rpc_bench *b)
{
	const struct rb_cfg *c = w->c;
	struct smem_rpc *chs[RPC_MAX_CHANNELS];
	struct smem_rpc_call *calls[RPC_MAX_INFLIGHT];
	uint64_t started[RPC_MAX_INFLIGHT], sys0, seq = 0, sum = 0;
	int chan[RPC_MAX_INFLIGHT];
	unsigned char *req = malloc(c->size + 8);
	struct slow_log sl = { NULL, 0 };
	int i, k, err, live;

	if (!req)
		rb_die("malloc", -ENOMEM);
	/* before the window: no page of it is faulted in while calls are timed */
	if (c->slow_log) {
		if (!(sl.call = malloc(SLOW_MAX * sizeof(*sl.call))))
			rb_die("malloc", -ENOMEM);
		memset(sl.call, 0, SLOW_MAX * sizeof(*sl.call));
	}
	memset(req, 0x5a, c->size + 8);
	for (i = 0; i < c->channels; i++)
		chs[i] = open_end(c, b, i, NULL);
	/* Release: pairs with the server's acquire (open as slave only after us). */
	atomic_store_explicit(&rb_ctl->aux, 1, memory_order_release);
	rb_ready(w);
	sys0 = smem__wait_syscalls();
	/* the first call on each channel waits for the server to attach (inside the warm-up) */
	for (i = 0; i < c->channels; i++)
		while ((err = smem_rpc_call(chs[i], req, c->size, NULL, NULL, 1000)) != 0)
			if (err != -ETIMEDOUT && err != -ENOTCONN && err != -ECONNRESET)
				rb_die("first call", err);
	for (k = 0; k < c->inflight; k++) {
		rb_stamp(req, c->size, seq++);
		chan[k] = k % c->channels;
		started[k] = rb_now_ns();
		if ((err = start(chs[chan[k]], req, c->size, &calls[k])))
			rb_die("smem_rpc_call_async", err);
	}
	/* calls[0..live) are pending (smem_rpc_wait takes no NULL entries); a finished call is
	 * restarted in place, or after stop swapped out with the last one */
	live = c->inflight;
	while (live) {
		err = smem_rpc_wait(calls, (unsigned)live, SMEM_RPC_WAIT_ANY, 100);
		if (err < 0 && err != -ETIMEDOUT) {
			fail("rpc wait", err);
			break;
		}
		for (k = 0; k < live;) {
			uint64_t now;

			if (!smem_rpc_call_done(calls[k])) {
				k++;
				continue;
			}
			now = rb_now_ns();
			err = collect(c, calls[k], &sum);
			calls[k] = NULL;
			if (err) {
				fail("rpc call", err);
				goto out;
			}
			rb_sample(now - started[k]);
			slow_note(&sl, started[k], now);
			rb_count(w);
			if (rb_stopping()) {
				live--;
				calls[k] = calls[live];
				started[k] = started[live];
				chan[k] = chan[live];
				calls[live] = NULL;
				continue;
			}
			rb_stamp(req, c->size, seq++);
			started[k] = rb_now_ns();
			if ((err = start(chs[chan[k]], req, c->size, &calls[k]))) {
				fail("rpc call", err);
				calls[k] = NULL;
				goto out;
			}
			k++;
		}
	}
out:
	rb_account(w, atomic_load(&rb_ctl->count[w->index].n), smem__wait_syscalls() - sys0);
	client_done();
	slow_write(c, &sl);
	atomic_store(&rb_ctl->backend, (int)smem__wait_backend());
	atomic_fetch_add(&rb_ctl->sink, sum);
	for (k = 0; k < c->inflight; k++)
		if (calls[k]) {
			smem_rpc_wait(&calls[k], 1, SMEM_RPC_WAIT_ALL, 1000);
			smem_rpc_call_free(calls[k]);
		}
	add_missed_wakeups(chs, c->channels);
	for (i = 0; i < c->channels; i++)
		smem_rpc_close(chs[i]);
	free(req);
}

/* One call with both ends here: send, serve it, see its response; nothing waits. */
static int inproc_call(const struct rb_cfg *c, struct smem_rpc *cl, struct smem_rpc *sv,
		       const void *req, uint64_t *sum)
{
	struct smem_rpc_call *call;
	int err = smem_rpc_call_async(cl, req, c->size, 1000, &call);

	if (err)
		return err;
	/* Until the whole request (maybe several packets) is served and its response seen. */
	do
		err = smem_rpc_dispatch(sv, 0);
	while (err == 0 && !smem_rpc_call_done(call) &&
	       smem_rpc_wait(&call, 1, SMEM_RPC_WAIT_ALL, 0) < 0);
	if (err >= 0)
		err = smem_rpc_wait(&call, 1, SMEM_RPC_WAIT_ALL, 0);
	if (err < 0) {
		smem_rpc_call_free(call);
		return err;
	}
	return collect(c, call, sum);
}

static void inproc(struct rb_worker *w, struct rpc_bench *b)
{
	const struct rb_cfg *c = w->c;
	struct rb_rpc_handler_state hs = { c->reply < 64 ? c->reply : 64, 0, 0 };
	struct smem_rpc *cl = open_end(c, b, 0, NULL), *sv = open_end(c, b, 0, &hs);
	unsigned char *req = malloc(c->size + 8);
	uint64_t sys0, seq = 0, sum = 0, t;
	int err;

	if (!req)
		rb_die("malloc", -ENOMEM);
	memset(req, 0x5a, c->size + 8);
	rb_ready(w);
	sys0 = smem__wait_syscalls();
	while (!rb_stopping()) {
		rb_stamp(req, c->size, seq++);
		t = rb_now_ns();
		if ((err = inproc_call(c, cl, sv, req, &sum))) {
			fail("rpc call (inproc)", err);
			break;
		}
		rb_sample(rb_now_ns() - t);
		rb_count(w);
	}
	rb_account(w, atomic_load(&rb_ctl->count[w->index].n), smem__wait_syscalls() - sys0);
	atomic_store(&rb_ctl->backend, (int)smem__wait_backend());
	atomic_fetch_add(&rb_ctl->sink, sum + hs.sum);
	smem_rpc_close(sv);
	smem_rpc_close(cl);
	free(req);
}

static void rpc_worker(struct rb_worker *w)
{
	if (w->c->inproc)
		inproc(w, w->tp);
	else if (w->role == 0)
		client(w, w->tp);
	else
		server(w, w->tp);
}

int rb_smem_rpc(const struct rb_cfg *c, struct rb_result *res)
{
	struct rpc_bench *b = rb_shared_map(sizeof(*b));
	static int run;
	int i;

	/* fresh names per repetition: a channel's name outlives its endpoints briefly */
	for (i = 0; i < c->channels; i++)
		snprintf(b->names[i], sizeof(b->names[i]), "%s-rpc%d-%d", c->name, run, i);
	run++;
	rb_run_roles(c, c->inproc ? 1 : 2, rpc_worker, b, rb_wait_names[c->wait], res, NULL);
	res->backend = atomic_load(&rb_ctl->backend);
	res->missed_wakeups = atomic_load(&rb_ctl->missed_wakeups);
	res->nodes = b->nodes;
	res->node_size = b->node_size;
	munmap(b, sizeof(*b));
	return 0;
}
