/* SPDX-License-Identifier: MIT */
/*
 * ringbench service: N clients (--clients, 4) calling one smem_service server. Worker 0 is the
 * server: it creates the service and serves it in a smem_service_serve() loop (its handler
 * reads the request and answers `reply` (8) bytes); workers 1..N are clients, each making
 * synchronous calls of `size` bytes one after another on its own channel. msgs_per_s counts
 * the calls completed by all clients; rtt is client 1's round trips (one call at a time, so
 * with --clients 1 it is the blocking round trip when --wait block).
 *
 * In the same run, the reference row "smem" is one RPC channel with one call in flight (the
 * `rpc` bench: what a single client gets), and with --compare the futex baseline is a
 * request/response ping-pong of the same sizes over futex words: the blocking round trip a
 * service call is compared with.
 *
 * --wait spin: waiters poll 200 ms before sleeping; block: they sleep at once; auto: the
 * library's default spin. Rings as the rpc bench's: nodes of size + 64 bytes (one packet per
 * call), 64 of them up to 64 KiB requests, 8 above.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <smem.h>

#include "internal.h"
#include "wait.h"
#include "ringbench.h"

struct svc_bench {
	char name[96];
	_Atomic int created;	/* the server worker made the service */
	_Atomic int done;	/* clients that left their loop */
};

/* The rpc bench's geometry and spin (one packet per call), for every channel. */
static void opts_for(const struct rb_cfg *c, struct smem_service_opts *o)
{
	struct smem_rpc_opts r;

	rb_rpc_opts(c, &r);
	memset(o, 0, sizeof(*o));
	o->node_size = r.node_size;
	o->node_count = r.node_count;
	o->spin_ns = r.spin_ns;
	o->max_clients = (uint32_t)c->clients;
}

static void server(struct rb_worker *w, struct svc_bench *b)
{
	const struct rb_cfg *c = w->c;
	struct rb_rpc_handler_state hs = { c->reply < 64 ? c->reply : 64, 0, 0 };
	struct smem_service_opts o;
	struct smem_service *svc;
	uint64_t sys0;
	int err;

	opts_for(c, &o);
	o.handler = rb_rpc_handler;
	o.handler_arg = &hs;
	err = smem_service_create(b->name, &o, &svc);
	if (err)
		rb_die("smem_service_create", err);
	/* Release: pairs with the clients' acquire (the service exists). */
	atomic_store_explicit(&b->created, 1, memory_order_release);
	rb_ready(w);
	sys0 = smem__wait_syscalls();
	/* Serve until every client has left its loop, not just until stop. */
	while (atomic_load(&b->done) < c->clients) {
		err = smem_service_serve(svc, 100);
		if (err < 0) {
			fprintf(stderr, "ringbench: service serve: %s\n", smem_strerror(err));
			atomic_fetch_add(&rb_ctl->errors, 1);
			break;
		}
	}
	rb_account(w, 0, c->threads ? 0 : smem__wait_syscalls() - sys0);
	smem_service_close(svc);
	atomic_fetch_add(&rb_ctl->sink, hs.sum);
}

static void client(struct rb_worker *w, struct svc_bench *b)
{
	const struct rb_cfg *c = w->c;
	struct smem_service_opts o;
	struct smem_service_client *cl;
	unsigned char *req = malloc(c->size + 8);
	uint64_t sys0, seq = 0, sum = 0, n = 0, t;
	void *resp;
	size_t len;
	int err;

	if (!req)
		rb_die("malloc", -ENOMEM);
	memset(req, 0x5a, c->size + 8);
	opts_for(c, &o);
	while (!atomic_load_explicit(&b->created, memory_order_acquire))
		rb_relax();
	err = smem_service_connect(b->name, &o, &cl);
	if (err)
		rb_die("smem_service_connect", err);
	rb_ready(w);
	sys0 = smem__wait_syscalls();
	while (!rb_stopping()) {
		rb_stamp(req, c->size, seq++);
		t = rb_now_ns();
		err = smem_service_call(cl, req, c->size, &resp, &len, 10000);
		if (err || len != c->reply) {
			fprintf(stderr, "ringbench: service call: %s (%zu bytes back)\n",
				smem_strerror(err), err ? 0 : len);
			atomic_fetch_add(&rb_ctl->errors, 1);
			break;
		}
		if (w->index == 1)
			rb_sample(rb_now_ns() - t);	/* one writer of the samples */
		sum += rb_touch(resp, len);
		smem_rpc_free_response(resp);
		rb_count(w);
		n++;
	}
	rb_account(w, n, c->threads ? 0 : smem__wait_syscalls() - sys0);
	atomic_fetch_add(&b->done, 1);
	atomic_store(&rb_ctl->backend, (int)smem__wait_backend());
	atomic_fetch_add(&rb_ctl->sink, sum);
	smem_service_disconnect(cl);
	free(req);
}

static void worker(struct rb_worker *w)
{
	if (w->role == 1)
		server(w, w->tp);
	else
		client(w, w->tp);
}

int rb_service_calls(const struct rb_cfg *c, struct rb_result *res)
{
	struct svc_bench *b = rb_shared_map(sizeof(*b));
	struct rb_worker ws[RB_MAX_WORKERS];
	struct smem_service_opts o;
	static int run;
	int i, n = 1 + c->clients;

	/* fresh names per repetition: a service's name outlives its clients briefly */
	snprintf(b->name, sizeof(b->name), "%s-svc%d", c->name, run++);
	for (i = 0; i < n; i++)
		ws[i] = (struct rb_worker){ .c = c, .index = i, .role = i == 0, .fn = worker,
					    .tp = b };
	rb_run(c, ws, n, res, NULL);
	res->wait = rb_wait_names[c->wait];
	rb_rtt_result(c, res);
	res->backend = atomic_load(&rb_ctl->backend);
	opts_for(c, &o);
	res->nodes = o.node_count;	/* each client's rings */
	munmap(b, sizeof(*b));
	return 0;
}
