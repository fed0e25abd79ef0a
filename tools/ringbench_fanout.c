/* SPDX-License-Identifier: MIT */
/*
 * ringbench: pubsub's baselines, the ways to fan samples out without a topic, doing the
 * topic run's work (ringbench_topic.c) in the same run:
 *
 *   rings      R separate smem rings, one per subscriber (depth --nodes, nodes of the sample
 *              size): the publisher fills its sample once (work: every cache line; --no-work:
 *              an 8-byte stamp) and writes it to each ring (smem_ring_write copies it R
 *              times: the price of rings for fan-out); each subscriber reads its ring
 *              zero-copy (smem_ring_reserve_read) and reads every byte (work) or the stamp,
 *              then releases the node. Waits as smem's stream (--wait).
 *   broadcast  a naive broadcast ring in a memfd: depth slots of the sample size, a producer
 *              position and one cursor per subscriber, each on its own cache line. The
 *              publisher waits until the slowest cursor is less than depth behind, fills the
 *              next slot in place (the same work), and publishes it with a release store;
 *              subscribers read in place and advance their own cursor. Zero-copy like the
 *              topic, but with no crash safety, no loans, no sleeping: it spins, yielding
 *              the CPU after 256 empty polls so that R + 1 workers on fewer cores progress.
 *
 * msgs/s counts the samples the first subscriber received, as for the topic.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <smem.h>

#include "ringbench.h"

/* ---- rings: one smem ring per subscriber ----------------------------------------------- */

static void ring_name(const struct rb_cfg *c, int i, char *out, size_t len)
{
	snprintf(out, len, "%s-fan%d", c->name, i);
}

static struct smem_ring *ring_join(const struct rb_cfg *c, int i)
{
	char name[96];
	struct smem_ring *r;
	int err;

	ring_name(c, i, name, sizeof(name));
	err = smem_ring_open(name, NULL, &r);
	if (err)
		rb_die("smem_ring_open", err);
	if (c->wait == RB_WAIT_BLOCK)
		smem_ring_set_spin(r, 0);
	return r;
}

static uint64_t ring_syscalls(struct smem_ring *r)
{
	struct smem_ring_stats st;

	return smem_ring_stats(r, &st) ? 0 : st.sleeps + st.wakes;
}

static void rings_publisher(struct rb_worker *w, const struct rb_cfg *c)
{
	struct smem_ring *r[RB_MAX_WORKERS];
	unsigned char *buf = malloc(c->size + 8);
	uint64_t seq = 0, sys = 0;
	int i, k = 0, t = rb_pubsub_timeout(c);

	if (!buf)
		rb_die("malloc", -ENOMEM);
	memset(buf, 0x5a, c->size + 8);
	for (i = 0; i < c->readers; i++)
		r[i] = ring_join(c, i);
	rb_ready(w);
	rb_pub_fill(c, buf, seq);
	while (!rb_stopping()) {
		int err = smem_ring_write(r[k], buf, c->size, t);

		if (err == 0) {
			if (++k == c->readers) {	/* in every ring: the next sample */
				k = 0;
				rb_pub_fill(c, buf, ++seq);
			}
		} else if (err != -ETIMEDOUT) {
			atomic_fetch_add(&rb_ctl->errors, 1);
			break;
		} else if (t == 0) {
			rb_relax();
		}
	}
	for (i = 0; i < c->readers; i++) {
		sys += ring_syscalls(r[i]);
		smem_ring_close(r[i]);
	}
	rb_account(w, 0, sys);
	free(buf);
}

static void rings_subscriber(struct rb_worker *w, const struct rb_cfg *c)
{
	struct smem_ring *r = ring_join(c, w->index - 1);
	struct smem_ring_slot s;
	uint64_t sum = 0, n = 0;
	int t = rb_pubsub_timeout(c);

	rb_ready(w);
	while (!rb_stopping()) {
		int err = smem_ring_reserve_read(r, &s, t);

		if (err == 0) {
			sum += rb_sub_consume(c, s.data, s.len);
			smem_ring_release(r, &s);
			n++;
			if (w->index == 1)
				rb_count(w);
		} else if (err != -ETIMEDOUT) {
			atomic_fetch_add(&rb_ctl->errors, 1);
			break;
		} else if (t == 0) {
			rb_relax();
		}
	}
	rb_account(w, w->index == 1 ? n : 0, ring_syscalls(r));
	atomic_fetch_add(&rb_ctl->sink, sum);
	smem_ring_close(r);
}

static void rings_worker(struct rb_worker *w)
{
	if (w->role == 0)
		rings_publisher(w, w->c);
	else
		rings_subscriber(w, w->c);
}

int rb_rings_pubsub(const struct rb_cfg *c, struct rb_result *res)
{
	struct smem_ring *owners[RB_MAX_WORKERS];
	struct rb_worker ws[RB_MAX_WORKERS];
	char name[96];
	int i, n = 1 + c->readers, err;

	if (c->size > UINT32_MAX)
		rb_die("rings: sample larger than a ring node", -EMSGSIZE);
	for (i = 0; i < c->readers; i++) {
		ring_name(c, i, name, sizeof(name));
		err = smem_ring_create(name, c->nodes, (uint32_t)c->size, NULL, &owners[i]);
		if (err)
			rb_die("smem_ring_create", err);
	}
	for (i = 0; i < n; i++)
		ws[i] = (struct rb_worker){ .c = c, .index = i, .role = i > 0, .fn = rings_worker };
	rb_run(c, ws, n, res, NULL);
	res->wait = rb_wait_names[c->wait];
	for (i = 0; i < c->readers; i++)
		smem_ring_close(owners[i]);
	return 0;
}

/* ---- broadcast: a naive single-producer ring read by every subscriber ------------------ */

struct bcast {
	_Atomic uint64_t tail;		/* samples published */
	char pad0[56];
	struct {
		_Atomic uint64_t cursor;	/* next sample this subscriber reads */
		char pad[56];
	} sub[RB_MAX_WORKERS];
	size_t stride, depth, size;
	char pad1[40];
	unsigned char slots[];
};

static size_t bcast_bytes(const struct rb_cfg *c, size_t *stride)
{
	*stride = (c->size + 63) & ~(size_t)63;
	return sizeof(struct bcast) + *stride * c->nodes;
}

/* Spin (yielding now and then) until @ok; false when asked to stop. */
#define SPIN_UNTIL(ok)							\
	({								\
		unsigned spins_ = 0;					\
		bool done_ = true;					\
		while (!(ok)) {						\
			if (rb_stopping()) {				\
				done_ = false;				\
				break;					\
			}						\
			if (++spins_ % 256 == 0)			\
				sched_yield();				\
			else						\
				rb_relax();				\
		}							\
		done_;							\
	})

static uint64_t slowest(struct bcast *q, int readers)
{
	uint64_t m = UINT64_MAX;
	int i;

	for (i = 0; i < readers; i++) {
		/* Acquire: pairs with the subscriber's release (its reads of the slot are done). */
		uint64_t v = atomic_load_explicit(&q->sub[i].cursor, memory_order_acquire);

		if (v < m)
			m = v;
	}
	return m;
}

static void bcast_worker(struct rb_worker *w)
{
	const struct rb_cfg *c = w->c;
	struct bcast *q = w->tp;
	uint64_t seq = 0, sum = 0, n = 0, room = 0;

	rb_ready(w);
	if (w->role == 0) {
		for (;;) {
			if (seq >= room &&
			    !SPIN_UNTIL((room = slowest(q, c->readers) + q->depth) > seq))
				break;
			rb_pub_fill(c, q->slots + (seq % q->depth) * q->stride, seq);
			/* Release: pairs with the subscribers' acquire of tail (the slot is full). */
			atomic_store_explicit(&q->tail, ++seq, memory_order_release);
		}
	} else {
		int me = w->index - 1;
		uint64_t tail = 0;

		for (;;) {
			if (seq >= tail &&
			    !SPIN_UNTIL((tail = atomic_load_explicit(&q->tail,
								     memory_order_acquire)) > seq))
				break;
			sum += rb_sub_consume(c, q->slots + (seq % q->depth) * q->stride, q->size);
			/* Release: our reads of the slot come before the publisher reuses it. */
			atomic_store_explicit(&q->sub[me].cursor, ++seq, memory_order_release);
			n++;
			if (w->index == 1)
				rb_count(w);
		}
	}
	rb_account(w, w->index == 1 ? n : 0, 0);
	atomic_fetch_add(&rb_ctl->sink, sum);
}

int rb_broadcast_pubsub(const struct rb_cfg *c, struct rb_result *res)
{
	size_t stride, bytes = bcast_bytes(c, &stride);
	struct rb_worker ws[RB_MAX_WORKERS];
	int fd = memfd_create("ringbench-broadcast", MFD_CLOEXEC), i, n = 1 + c->readers;
	struct bcast *q;

	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		rb_die("memfd", -errno);
	q = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (q == MAP_FAILED)
		rb_die("mmap", -errno);
	close(fd);
	q->stride = stride;
	q->depth = c->nodes;
	q->size = c->size;
	for (i = 0; i < n; i++)
		ws[i] = (struct rb_worker){ .c = c, .index = i, .role = i > 0, .fn = bcast_worker,
					    .tp = q };
	rb_run(c, ws, n, res, NULL);
	res->wait = "spin";
	munmap(q, bytes);
	return 0;
}
