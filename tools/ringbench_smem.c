/* SPDX-License-Identifier: MIT */
/*
 * ringbench: the smem ring. stream: W writers and R readers on one ring (every message copied
 * in with smem_ring_write from a buffer whose every cache line changes per message, copied
 * out with smem_ring_read and every byte summed). pingpong: two rings, the pinger writes
 * `size` bytes on one and reads the `reply` bytes the ponger writes back on the other.
 *
 * --wait spin: try calls (timeout 0) in a loop, never a system call; block: smem_ring_set_spin
 * (0), so a waiter sleeps at once; auto: the library's default (spin briefly, then sleep).
 * Counted system calls: the futex sleeps and wakes of every handle (smem_ring_stats).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smem.h>

#include "ringbench.h"

static struct smem_ring *join(const struct rb_cfg *c, const char *name)
{
	struct smem_ring *r;
	int err = smem_ring_open(name, NULL, &r);

	if (err)
		rb_die("smem_ring_open", err);
	if (c->wait == RB_WAIT_BLOCK)
		smem_ring_set_spin(r, 0);
	return r;
}

static struct smem_ring *make(const struct rb_cfg *c, const char *name, size_t node_size)
{
	struct smem_ring *r;
	int err = smem_ring_create(name, c->nodes, (uint32_t)node_size, NULL, &r);

	if (err)
		rb_die("smem_ring_create", err);
	return r;
}

/* Bounded waits, so that a worker notices stop: spin 0, otherwise 100 ms at a time. */
static int tmo(const struct rb_cfg *c)
{
	return c->wait == RB_WAIT_SPIN ? 0 : 100;
}

static uint64_t ring_syscalls(struct smem_ring *r)
{
	struct smem_ring_stats st;

	if (smem_ring_stats(r, &st))
		return 0;
	return st.sleeps + st.wakes;
}

static void stream_worker(struct rb_worker *w)
{
	const struct rb_cfg *c = w->c;
	struct smem_ring *r = join(c, c->name);
	unsigned char *buf = malloc(c->size + 8);
	int t = tmo(c);
	uint64_t seq = 0, sum = 0, n = 0;

	if (!buf)
		rb_die("malloc", -ENOMEM);
	memset(buf, 0x5a, c->size + 8);
	rb_ready(w);
	if (w->role == 0) {
		rb_stamp(buf, c->size, seq);
		while (!rb_stopping()) {
			int err = smem_ring_write(r, buf, c->size, t);

			if (err == 0) {
				if (!c->no_work)
					rb_stamp(buf, c->size, ++seq);
			} else if (err != -ETIMEDOUT) {
				atomic_fetch_add(&rb_ctl->errors, 1);
				break;
			} else if (t == 0) {
				rb_relax();
			}
		}
	} else {
		while (!rb_stopping()) {
			ssize_t k = smem_ring_read(r, buf, c->size, t);

			if (k >= 0) {
				if (!c->no_work)
					sum += rb_touch(buf, (size_t)k);
				n++;
				rb_count(w);
			} else if (k != -ETIMEDOUT) {
				atomic_fetch_add(&rb_ctl->errors, 1);
				break;
			} else if (t == 0) {
				rb_relax();
			}
		}
	}
	rb_account(w, n, ring_syscalls(r));
	atomic_fetch_add(&rb_ctl->sink, sum);
	smem_ring_close(r);
	free(buf);
}

int rb_smem_stream(const struct rb_cfg *c, struct rb_result *res)
{
	struct rb_worker ws[RB_MAX_WORKERS];
	struct smem_ring *owner = make(c, c->name, c->size);
	int i, n = c->writers + c->readers;

	for (i = 0; i < n; i++)
		ws[i] = (struct rb_worker){ .c = c, .index = i, .role = i >= c->writers,
					    .fn = stream_worker };
	rb_run(c, ws, n, res, NULL);
	res->wait = rb_wait_names[c->wait];
	smem_ring_close(owner);
	return 0;
}

struct pp {
	char a[96], b[96];	/* pinger -> ponger, ponger -> pinger */
	struct smem_ring *out, *in;
};

static bool rt(struct rb_worker *w, void *buf)
{
	struct pp *pp = w->tp;
	int t = tmo(w->c), err;
	ssize_t k;

	while ((err = smem_ring_write(pp->out, buf, w->c->size, t)) == -ETIMEDOUT)
		if (rb_stopping())
			return false;
	if (err)
		return false;
	while ((k = smem_ring_read(pp->in, buf, w->c->reply, t)) == -ETIMEDOUT)
		if (rb_stopping())
			return false;
	return k == (ssize_t)w->c->reply;
}

static void pp_worker(struct rb_worker *w)
{
	const struct rb_cfg *c = w->c;
	struct pp pp = *(struct pp *)w->tp;
	struct rb_worker me = *w;
	size_t cap = c->size > c->reply ? c->size : c->reply;
	unsigned char *buf = malloc(cap + 8);
	uint64_t sum = 0, seq = 0;
	int t = tmo(c);

	if (!buf)
		rb_die("malloc", -ENOMEM);
	memset(buf, 0x33, cap + 8);
	pp.out = join(c, w->role == 0 ? pp.a : pp.b);
	pp.in = join(c, w->role == 0 ? pp.b : pp.a);
	me.tp = &pp;
	rb_ready(&me);
	if (w->role == 0) {
		rb_pinger(&me, rt, buf);
	} else {
		while (!rb_stopping()) {
			ssize_t k = smem_ring_read(pp.in, buf, c->size, t);
			int err;

			if (k < 0) {
				if (k != -ETIMEDOUT) {
					atomic_fetch_add(&rb_ctl->errors, 1);
					break;
				}
				continue;
			}
			sum += rb_touch(buf, (size_t)k);
			rb_stamp(buf, c->reply, seq++);
			while ((err = smem_ring_write(pp.out, buf, c->reply, t)) == -ETIMEDOUT &&
			       !rb_stopping())
				;
		}
	}
	/* round trips are counted by the pinger */
	rb_account(&me, w->role == 0 ? atomic_load(&rb_ctl->count[w->index].n) : 0,
		   ring_syscalls(pp.out) + ring_syscalls(pp.in));
	atomic_fetch_add(&rb_ctl->sink, sum);
	smem_ring_close(pp.out);
	smem_ring_close(pp.in);
	free(buf);
}

int rb_smem_pingpong(const struct rb_cfg *c, struct rb_result *res)
{
	struct pp pp;
	struct smem_ring *a, *b;

	memset(&pp, 0, sizeof(pp));
	snprintf(pp.a, sizeof(pp.a), "%s-a", c->name);
	snprintf(pp.b, sizeof(pp.b), "%s-b", c->name);
	a = make(c, pp.a, c->size);
	b = make(c, pp.b, c->reply ? c->reply : 1);
	rb_run_roles(c, 2, pp_worker, &pp, rb_wait_names[c->wait], res, NULL);
	smem_ring_close(a);
	smem_ring_close(b);
	return 0;
}
