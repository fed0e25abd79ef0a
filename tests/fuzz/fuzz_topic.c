/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a topic's publisher and two subscribers over control memory that a hostile
 * peer scribbles on (its geometry before attach, its hot words, buffer states, entries and
 * subscriber slots at any time).
 *
 * The two regions are memfds made here (smem__topic_format + hand-made regions, attached
 * with the library's own smem__topic_validate), so no broker is involved. All calls use
 * timeout 0.
 *
 *   byte 0    depth - 2 (mod 8)
 *   byte 1    bit 0: OVERWRITE (else BLOCK); bit 1: views 2 (else 1); bit 2: a poke into
 *             the geometry before attach (then offset, len, bytes)
 *   then ops  op byte (low 3 bits) and its arguments:
 *     0 poke     offset (2 bytes) into the control area, length (1), bytes
 *     1 loan     (held, up to `loans` at once)
 *     2 publish  the oldest held loan with length (1)
 *     3 discard  the oldest held loan
 *     4/5 receive on subscriber A/B       6/7 release A's/B's oldest view
 *
 * Checked: never a crash or an access outside the mappings (ASan/UBSan and the byte checks),
 * lengths never above the sample size, errors only from the documented set. While no poke
 * has happened the topic must behave like the model: views carry the bytes published at
 * their position; under BLOCK every subscriber gets every position in order and a loan fails
 * exactly when the slowest is `depth` behind; under OVERWRITE positions increase and each
 * skipped one is counted as lost, exactly.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "topic_int.h"

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_topic: check failed at line %d: %s\n", __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#include "fuzzmap.h"

#define SIZE	64u
#define LOANS	3u

static uint8_t pay(uint64_t pos, size_t i)
{
	return (uint8_t)(pos * 31 + i * 7 + 1);
}

struct fsub {
	struct smem_topic_sub *s;
	struct smem_topic_sample v[SMEM_TOPIC_MAX_VIEWS];
	unsigned nv;
	uint64_t next;			/* model: the next position it may get */
};

static int sub_attach(struct smem_region *ctl, struct smem_region *samples, struct fsub *f)
{
	struct smem_topic_sub *s = calloc(1, sizeof(*s));
	int err;

	CHECK(s);
	s->t.ctl = ctl;
	s->t.samples = samples;
	err = smem__topic_validate(&s->t);
	if (!err)
		err = smem__live_join(ctl);
	if (!err)
		err = smem__topic_sub_join(s, 0);
	if (err) {
		free(s);
		return err;
	}
	f->s = s;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smem__topic_geo g = { .sample_size = SIZE, .max_subs = 2, .loans = LOANS };
	struct smem_topic_sample loan[LOANS];
	struct smem_region *ctl, *samples;
	struct smem_topic_pub *p;
	struct fsub sub[2] = { 0 };
	uint16_t *lens;
	unsigned nl = 0, k;
	uint64_t tail = 0;
	size_t off = 2, i;
	bool ok = true;
	int err;

	if (size < 2)
		return 0;
	g.depth = 2 + data[0] % 8;
	g.policy = data[1] & 1 ? SMEM_TOPIC_OVERWRITE : SMEM_TOPIC_BLOCK;
	g.views = data[1] & 2 ? 2 : 1;
	CHECK(smem__topic_geometry(&g) == 0);
	ctl = fuzz_map_region("fuzz-topic", g.ctl_size);
	samples = fuzz_map_region("fuzz-topic-samples", g.pool_size);
	CHECK(smem__topic_format(ctl->obj, g.ctl_size, &g) == 0);
	if ((data[1] & 4) && fuzz_scribble_header(ctl->obj, data, size, &off))
		ok = false;
	p = calloc(1, sizeof(*p));
	CHECK(p);
	p->t.ctl = ctl;
	p->t.samples = samples;
	err = smem__topic_validate(&p->t);
	if (err) {
		CHECK(err == -EPROTO && !ok);
		goto out;
	}
	CHECK(smem__topic_pub_attach(p) == 0);
	/* Subscribers have handles of their own on the same memfds (as other processes do). */
	for (k = 0; k < 2; k++)
		CHECK(sub_attach(ctl, samples, &sub[k]) == 0);
	lens = calloc(size + 1, sizeof(*lens));
	CHECK(lens);

	while (off < size) {
		unsigned op = data[off] & 7;
		size_t a = off + 1 < size ? data[off + 1] : 0;
		struct fsub *f = &sub[op & 1];

		off += 1;
		switch (op) {
		case 0: {	/* poke */
			size_t at, len;

			if (off + 3 > size) {
				off = size;
				break;
			}
			at = ((size_t)data[off] | (size_t)data[off + 1] << 8) % g.ctl_size;
			len = data[off + 2];
			off += 3;
			if (len > size - off)
				len = size - off;
			if (len > g.ctl_size - at)
				len = g.ctl_size - at;
			memcpy((char *)ctl->obj + at, data + off, len);
			off += len;
			ok = false;
			break;
		}
		case 1: {	/* loan */
			uint64_t lo = sub[0].next < sub[1].next ? sub[0].next : sub[1].next;

			if (nl == LOANS)
				break;
			err = smem_topic_loan(p, &loan[nl], 0);
			CHECK(err == 0 || err == -ETIMEDOUT || err == -EPROTO);
			if (ok && g.policy == SMEM_TOPIC_BLOCK)
				CHECK((err == 0) == (tail - lo < g.depth));
			else if (ok)
				CHECK(err == 0);
			if (err == 0) {
				CHECK(loan[nl].cap == p->t.g.sample_size);
				nl++;
			}
			break;
		}
		case 2:		/* publish */
			off++;
			if (!nl)
				break;
			a %= p->t.g.sample_size + 1;
			for (i = 0; i < a; i++)
				((uint8_t *)loan[0].data)[i] = pay(tail, i);
			err = smem_topic_publish(p, &loan[0], a, 0);
			/* -EINVAL: a poke took the loan from us (its state is not ours any more). */
			CHECK(err == 0 || err == -ETIMEDOUT || err == -EPROTO || (err == -EINVAL && !ok));
			if (ok && g.policy == SMEM_TOPIC_OVERWRITE)
				CHECK(err == 0);
			if (err == 0 && ok)
				lens[tail++] = (uint16_t)a;
			if (err == 0 || err == -EPROTO || err == -EINVAL) {
				smem_topic_discard(p, &loan[0]);	/* -EINVAL once published */
				memmove(&loan[0], &loan[1], sizeof(loan[0]) * --nl);
			}
			break;
		case 3:		/* discard */
			if (!nl)
				break;
			err = smem_topic_discard(p, &loan[0]);
			CHECK(err == 0 || !ok);
			memmove(&loan[0], &loan[1], sizeof(loan[0]) * --nl);
			break;
		case 4:
		case 5: {	/* receive */
			struct smem_topic_sub_stats b, e;
			struct smem_topic_sample *v = &f->v[f->nv];

			CHECK(smem_topic_sub_stats(f->s, &b) == 0);
			err = smem_topic_receive(f->s, v, 0);
			CHECK(err == 0 || err == -ETIMEDOUT || err == -EPROTO || err == -ENOBUFS);
			CHECK((err == -ENOBUFS) == (f->nv == g.views));
			if (err)
				break;
			/*
			 * Bounds are the handle's own geometry: a geometry poke that stays consistent
			 * (sample_size 64 -> 1 under the same stride) is a topic nobody can tell from
			 * an honest one, and everything is bounded by that private copy.
			 */
			CHECK(v->len <= f->s->t.g.sample_size);
			CHECK((const uint8_t *)v->view >= p->t.base &&
			      (const uint8_t *)v->view + f->s->t.g.stride <=
			      p->t.base + f->s->t.g.pool_size);
			CHECK(f->s->t.g.pool_size <= samples->obj_size);
			f->nv++;
			if (!ok)
				break;
			CHECK(smem_topic_sub_stats(f->s, &e) == 0);
			CHECK(v->seq >= f->next && v->seq < tail);
			if (g.policy == SMEM_TOPIC_BLOCK)
				CHECK(v->seq == f->next);
			CHECK(e.lost - b.lost == v->seq - f->next);
			CHECK(v->len == lens[v->seq]);
			for (i = 0; i < v->len; i++)
				CHECK(((const uint8_t *)v->view)[i] == pay(v->seq, i));
			f->next = v->seq + 1;
			break;
		}
		case 6:
		case 7:		/* release */
			if (!f->nv)
				break;
			CHECK(smem_topic_release(f->s, &f->v[0]) == 0);
			memmove(&f->v[0], &f->v[1], sizeof(f->v[0]) * --f->nv);
			break;
		}
	}
	for (k = 0; k < 2; k++) {
		smem__topic_sub_leave(sub[k].s);
		free(sub[k].s);
	}
	free(lens);
	smem__topic_pub_drop_loans(p);
	smem__lock_detach(&p->lock);
	smem__live_leave(ctl);
out:
	free(p);
	smem_region_close(samples);
	smem_region_close(ctl);
	return 0;
}
