/* SPDX-License-Identifier: MIT */
/*
 * ringbench: the smem topic (pubsub). One publisher and R subscribers (--readers) on a topic of
 * --nodes depth under the BLOCK policy, so that every subscriber gets every sample, as a
 * ring's stream delivers every message. With work (the default) the publisher writes every
 * cache line of each loaned sample (rb_stamp) and each subscriber reads every byte of it
 * (rb_touch), the ring stream's work; with --no-work the publisher writes one 8-byte stamp
 * and subscribers read that stamp: the sample's bytes are written once (they stay in the
 * pool) and read only where the benchmark says so. msgs/s counts samples received by the
 * first subscriber (every subscriber receives the same samples).
 *
 * The topic is created with SMEM_TOPIC_MULTI_PUBLISHER because the publisher is a worker
 * process of its own, not the creating handle.
 */
#include <errno.h>
#include <string.h>

#include <smem.h>

#include "ringbench.h"

static void publisher(struct rb_worker *w, const struct rb_cfg *c)
{
	struct smem_topic_pub *p;
	struct smem_topic_sample s;
	uint64_t seq = 0;
	int t = rb_pubsub_timeout(c), err = smem_topic_open_publisher(c->name, NULL, &p);

	if (err)
		rb_die("smem_topic_open_publisher", err);
	rb_ready(w);
	while (!rb_stopping()) {
		err = smem_topic_loan(p, &s, t);
		if (err == 0) {
			rb_pub_fill(c, s.data, seq++);
			while ((err = smem_topic_publish(p, &s, c->size, t)) == -ETIMEDOUT &&
			       !rb_stopping())
				;
			if (err == -ETIMEDOUT)
				break;
		}
		if (err == -ETIMEDOUT) {
			if (t == 0)
				rb_relax();
		} else if (err) {
			atomic_fetch_add(&rb_ctl->errors, 1);
			break;
		}
	}
	rb_account(w, 0, 0);
	smem_topic_pub_close(p);
}

static void subscriber(struct rb_worker *w, const struct rb_cfg *c)
{
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	uint64_t sum = 0, n = 0;
	int t = rb_pubsub_timeout(c), err = smem_topic_subscribe(c->name, 0, NULL, &s);

	if (err)
		rb_die("smem_topic_subscribe", err);
	rb_ready(w);
	while (!rb_stopping()) {
		err = smem_topic_receive(s, &v, t);
		if (err == 0) {
			sum += rb_sub_consume(c, v.view, v.len);
			smem_topic_release(s, &v);
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
	rb_account(w, w->index == 1 ? n : 0, 0);
	atomic_fetch_add(&rb_ctl->sink, sum);
	smem_topic_sub_close(s);
}

static void worker(struct rb_worker *w)
{
	if (w->role == 0)
		publisher(w, w->c);
	else
		subscriber(w, w->c);
}

int rb_topic_pubsub(const struct rb_cfg *c, struct rb_result *res)
{
	struct smem_topic_config cfg = {
		.sample_size = c->size, .depth = c->nodes, .policy = SMEM_TOPIC_BLOCK,
		.flags = SMEM_TOPIC_MULTI_PUBLISHER, .max_subscribers = (uint32_t)c->readers,
		.views = 1, .loans = 2,
	};
	struct rb_worker ws[RB_MAX_WORKERS];
	struct smem_topic_pub *owner;
	int i, n = 1 + c->readers, err;

	err = smem_topic_create(c->name, &cfg, NULL, &owner);
	if (err)
		rb_die("smem_topic_create", err);
	for (i = 0; i < n; i++)
		ws[i] = (struct rb_worker){ .c = c, .index = i, .role = i > 0, .fn = worker };
	rb_run(c, ws, n, res, NULL);
	res->wait = rb_wait_names[c->wait];
	smem_topic_pub_close(owner);
	return 0;
}
