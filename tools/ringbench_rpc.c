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
 * --wait spin: waiters poll 200 ms before sleeping (both sides busy); block: they sleep at
 * once (SMEM_RPC_NO_SPIN); auto: the library default. Each ring has 64 nodes of size + 64
 * bytes (one packet per call) up to 64 KiB requests, 8 nodes above (at most 1 MiB each):
 * --nodes is for the baselines; the smem row reports the node count it used.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <smem.h>

#include "internal.h"
#include "uring.h"
#include "ringbench.h"

#define RPC_MAX_INFLIGHT 1024
#define RPC_MAX_CHANNELS 32

static const char *const wait_names[] = { "auto", "spin", "block" };

struct rpc_bench {
	char names[RPC_MAX_CHANNELS][96];
};

static void opts_for(const struct rb_cfg *c, struct smem_rpc_opts *o)
{
	memset(o, 0, sizeof(*o));
	/* A node holds a whole request up to 1 MiB (one packet per call), as the seed's RpcTest
	 * sized its buffer; larger requests are split. */
	o->node_size = c->size + 64 <= (1u << 20) ? (uint32_t)(c->size + 64) : (1u << 20);
	if (o->node_size < 256)
		o->node_size = 256;
	o->node_count = c->size > 65536 ? 8 : 64;
	o->spin_ns = c->wait == RB_WAIT_SPIN ? 200000000u :
		     c->wait == RB_WAIT_BLOCK ? SMEM_RPC_NO_SPIN : 0;
	o->service = SMEM_RPC_SERVICE_DISPATCH;
}

struct handler_state {
	size_t reply;
	uint64_t sum, seq;
};

static int handler(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	struct handler_state *h = arg;
	unsigned char out[64];

	h->sum += rb_touch(req->data, req->len);
	memset(out, 0x44, sizeof(out));
	rb_stamp(out, h->reply, h->seq++);
	return smem_rpc_reply_set(rep, out, h->reply);
}

static void server(struct rb_worker *w, struct rpc_bench *b)
{
	const struct rb_cfg *c = w->c;
	struct handler_state hs = { c->reply < 64 ? c->reply : 64, 0, 0 };
	struct smem_rpc *chs[RPC_MAX_CHANNELS];
	struct smem_rpc_opts o;
	uint64_t sys0;
	int i, err;

	opts_for(c, &o);
	o.handler = handler;
	o.handler_arg = &hs;
	/* Acquire: pairs with the client's release of aux (its channels exist: it is master). */
	while (!atomic_load_explicit(&rb_ctl->aux, memory_order_acquire))
		rb_relax();
	for (i = 0; i < c->channels; i++) {
		err = smem_rpc_open(b->names[i], &o, &chs[i]);
		if (err)
			rb_die("smem_rpc_open (server)", err);
	}
	rb_ready(w);
	sys0 = smem__wait_syscalls();
	/* Serve until the client has collected its last call (aux 2), not just until stop. */
	while (atomic_load_explicit(&rb_ctl->aux, memory_order_relaxed) != 2) {
		err = smem_rpc_serve(chs, (unsigned)c->channels, 100);
		if (err < 0 && err != -ETIMEDOUT) {
			if (!rb_stopping() && err != -ECONNRESET && err != -ESHUTDOWN) {
				fprintf(stderr, "ringbench: serve: %s\n", smem_strerror(err));
				atomic_fetch_add(&rb_ctl->errors, 1);
			}
			break;
		}
	}
	/* Threads share the process-wide counter: the client reports it for both. */
	rb_account(w, 0, c->threads ? 0 : smem__wait_syscalls() - sys0);
	atomic_fetch_add(&rb_ctl->sink, hs.sum);
	for (i = 0; i < c->channels; i++)
		smem_rpc_close(chs[i]);
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
	struct smem_rpc_opts o;
	unsigned char *req = malloc(c->size + 8);
	int i, k, err, live;

	if (!req)
		rb_die("malloc", -ENOMEM);
	memset(req, 0x5a, c->size + 8);
	opts_for(c, &o);
	for (i = 0; i < c->channels; i++) {
		err = smem_rpc_open(b->names[i], &o, &chs[i]);
		if (err)
			rb_die("smem_rpc_open (client)", err);
	}
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
			fprintf(stderr, "ringbench: rpc wait: %s\n", smem_strerror(err));
			atomic_fetch_add(&rb_ctl->errors, 1);
			break;
		}
		for (k = 0; k < live;) {
			void *resp;
			size_t len;
			uint64_t now;

			if (!smem_rpc_call_done(calls[k])) {
				k++;
				continue;
			}
			now = rb_now_ns();
			err = smem_rpc_call_result(calls[k], &resp, &len);
			smem_rpc_call_free(calls[k]);
			if (err || len != c->reply) {
				fprintf(stderr, "ringbench: rpc call: %s (%zu bytes back)\n",
					smem_strerror(err), err ? 0 : len);
				atomic_fetch_add(&rb_ctl->errors, 1);
				smem_rpc_free_response(resp);
				calls[k] = NULL;
				goto out;
			}
			sum += rb_touch(resp, len);
			smem_rpc_free_response(resp);
			rb_sample(now - started[k]);
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
				fprintf(stderr, "ringbench: rpc call: %s\n", smem_strerror(err));
				atomic_fetch_add(&rb_ctl->errors, 1);
				calls[k] = NULL;
				goto out;
			}
			k++;
		}
	}
out:
	rb_account(w, atomic_load(&rb_ctl->count[w->index].n), smem__wait_syscalls() - sys0);
	atomic_store(&rb_ctl->aux, 2);	/* the server may stop serving */
	atomic_store(&rb_ctl->backend, (int)smem__wait_backend());
	atomic_fetch_add(&rb_ctl->sink, sum);
	for (k = 0; k < c->inflight; k++)
		if (calls[k]) {
			smem_rpc_wait(&calls[k], 1, SMEM_RPC_WAIT_ALL, 1000);
			smem_rpc_call_free(calls[k]);
		}
	for (i = 0; i < c->channels; i++)
		smem_rpc_close(chs[i]);
	free(req);
}

static void rpc_worker(struct rb_worker *w)
{
	if (w->role == 0)
		client(w, w->tp);
	else
		server(w, w->tp);
}

int rb_smem_rpc(const struct rb_cfg *c, struct rb_result *res)
{
	struct rpc_bench *b = rb_shared_map(sizeof(*b));
	struct rb_worker ws[2];
	static int run;
	int i;

	/* fresh names per repetition: a channel's name outlives its endpoints briefly */
	for (i = 0; i < c->channels; i++)
		snprintf(b->names[i], sizeof(b->names[i]), "%s-rpc%d-%d", c->name, run, i);
	run++;
	for (i = 0; i < 2; i++)
		ws[i] = (struct rb_worker){ .c = c, .index = i, .role = i, .fn = rpc_worker,
					    .tp = b };
	rb_run(c, ws, 2, res, NULL);
	res->wait = wait_names[c->wait];
	rb_rtt_result(c, res);
	res->backend = atomic_load(&rb_ctl->backend);
	{
		struct smem_rpc_opts o;

		opts_for(c, &o);
		res->nodes = o.node_count;
	}
	munmap(b, sizeof(*b));
	return 0;
}
