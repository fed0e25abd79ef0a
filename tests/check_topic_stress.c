/* SPDX-License-Identifier: MIT */
/*
 * smem_topic under crashes: publishers and subscribers killed with SIGKILL at chosen points
 * (holding loans, holding the publish lock, holding views, lagging under backpressure) and at
 * random points of a running stream. After each kill the survivors must go on: loans come
 * back, publishers are not held back, slots are reused, and every sample received is whole
 * and in order. Kept short: a few rounds each, well under a second of streaming.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "topic_int.h"
#include "util/brokerutil.h"
#include "util/ringutil.h"
#include "util/testutil.h"

#define SAMPLE	256u

struct kid_arg {
	const char *name;
	int sig[2];		/* the child says "ready" on sig[1] */
	int views;
	uint64_t seed;
};

static struct smem_topic_pub *topic(char *name, size_t len, uint32_t depth, uint32_t policy,
				    uint32_t max_subs, uint32_t views, uint32_t loans)
{
	struct smem_topic_config cfg = {
		.sample_size = SAMPLE, .depth = depth, .policy = policy,
		.flags = SMEM_TOPIC_MULTI_PUBLISHER, .max_subscribers = max_subs,
		.views = views, .loans = loans,
	};
	struct smem_topic_pub *p = NULL;

	t_name(name, len, "tstress");
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), 0);
	return p;
}

/* Every 8-byte word of a sample holds the same stamp: a torn sample shows. */
static int publish_stamp(struct smem_topic_pub *p, uint64_t stamp, int timeout_ms)
{
	struct smem_topic_sample s;
	uint64_t *w;
	unsigned i;
	int r = smem_topic_loan(p, &s, timeout_ms);

	if (r)
		return r;
	w = s.data;
	for (i = 0; i < SAMPLE / 8; i++)
		w[i] = stamp;
	return smem_topic_publish(p, &s, SAMPLE, timeout_ms);
}

static bool whole(const struct smem_topic_sample *v)
{
	const uint64_t *w = v->view;
	unsigned i;

	if (v->len != SAMPLE)
		return false;
	for (i = 1; i < SAMPLE / 8; i++)
		if (w[i] != w[0])
			return false;
	return true;
}

/* Receive what is there: whole samples, positions increasing. Returns how many. */
static uint64_t drain(struct smem_topic_sub *s, uint64_t *last)
{
	struct smem_topic_sample v;
	uint64_t n = 0;

	while (smem_topic_receive(s, &v, 0) == 0) {
		ck_assert(whole(&v));
		if (*last != UINT64_MAX)
			ck_assert_uint_gt(v.seq, *last);
		*last = v.seq;
		ck_assert_int_eq(smem_topic_release(s, &v), 0);
		n++;
	}
	return n;
}

/* Fork a child running @fn(@a) and wait until it says it is ready. */
static pid_t spawn(int (*fn)(void *), struct kid_arg *a)
{
	pid_t kid;

	ck_assert_int_eq(pipe(a->sig), 0);
	kid = t_fork(fn, a);
	close(a->sig[1]);
	ck_assert(tb_sig_wait(a->sig[0]));
	close(a->sig[0]);
	return kid;
}

/* ---- publishers killed at chosen points ------------------------------------------------- */

static int loan_and_hang(void *arg)
{
	struct kid_arg *a = arg;
	struct smem_topic_pub *p;
	struct smem_topic_sample s[2];

	close(a->sig[0]);
	if (smem_topic_open_publisher(a->name, NULL, &p) || smem_topic_loan(p, &s[0], 0) ||
	    smem_topic_loan(p, &s[1], 0))
		return 10;
	tb_sig_send(a->sig[1]);
	pause();
	return 0;
}

START_TEST(topic_publisher_killed_holding_loans_gives_them_back)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct smem_topic_sample mine[2], v;
	struct kid_arg a = { 0 };
	char name[128];
	uint64_t i, last = UINT64_MAX;
	pid_t kid;

	p = topic(name, sizeof(name), 4, SMEM_TOPIC_OVERWRITE, 1, 1, 2);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);
	a.name = name;
	kid = spawn(loan_and_hang, &a);
	t_kill9(kid);
	/* Our own two loans, a held view and a window of 4: only the dead loans make room. */
	ck_assert_int_eq(publish_stamp(p, 0, 0), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), 0);
	ck_assert_int_eq(smem_topic_loan(p, &mine[0], 0), 0);
	ck_assert_int_eq(smem_topic_loan(p, &mine[1], 0), 0);
	for (i = 1; i < 20; i++)
		ck_assert_int_eq(publish_stamp(p, i, 1000), 0);
	ck_assert_uint_eq(atomic_load(&p->t.shm->recovered), 2);
	ck_assert_int_eq(smem_topic_release(s, &v), 0);
	ck_assert_uint_eq(drain(s, &last), 4);
	ck_assert_uint_eq(last, 19);
	smem_topic_discard(p, &mine[0]);
	smem_topic_discard(p, &mine[1]);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

static int lock_and_hang(void *arg)
{
	struct kid_arg *a = arg;
	struct smem_topic_pub *p;

	close(a->sig[0]);
	if (smem_topic_open_publisher(a->name, NULL, &p) || smem__lock_wrlock(&p->lock, 0))
		return 10;
	tb_sig_send(a->sig[1]);
	pause();
	return 0;
}

START_TEST(topic_publisher_killed_holding_the_publish_lock_does_not_stop_others)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct kid_arg a = { 0 };
	char name[128];
	uint64_t last = UINT64_MAX;
	pid_t kid;

	p = topic(name, sizeof(name), 4, SMEM_TOPIC_BLOCK, 2, 1, 2);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);
	a.name = name;
	kid = spawn(lock_and_hang, &a);
	ck_assert_int_eq(publish_stamp(p, 0, 20), -ETIMEDOUT);	/* held by a live peer */
	t_kill9(kid);
	ck_assert_int_eq(publish_stamp(p, 1, 2000), 0);
	ck_assert_int_eq(publish_stamp(p, 2, 2000), 0);
	ck_assert_uint_eq(drain(s, &last), 2);
	ck_assert_uint_eq(last, 1);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

/* A publisher's section up to its commit (topic.c, PUBLISH), then a hang before tail. */
static int commit_and_hang(void *arg)
{
	struct kid_arg *a = arg;
	struct smem_topic_pub *p;
	struct smem_topic_sample s;
	uint64_t *w, tail;
	unsigned i;

	close(a->sig[0]);
	if (smem_topic_open_publisher(a->name, NULL, &p) || smem_topic_loan(p, &s, 0) ||
	    smem__lock_wrlock(&p->lock, 0))
		return 10;
	w = s.data;
	for (i = 0; i < SAMPLE / 8; i++)
		w[i] = 7;
	tail = atomic_load(&p->t.shm->tail);
	atomic_store(&p->t.buf[s._buf].len, SAMPLE);
	atomic_store(&p->t.buf[s._buf].state, SMEM_TOPIC_PUB | tail);
	atomic_store(&p->t.entry[tail % p->t.g.depth], s._buf);
	tb_sig_send(a->sig[1]);
	pause();
	return 0;
}

START_TEST(topic_publisher_killed_between_commit_and_tail_is_helped_not_overwritten)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	struct kid_arg a = { 0 };
	char name[128];
	uint64_t tail;
	pid_t kid;

	p = topic(name, sizeof(name), 4, SMEM_TOPIC_BLOCK, 1, 1, 2);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);
	a.name = name;
	kid = spawn(commit_and_hang, &a);
	t_kill9(kid);
	/* The next publisher finishes the dead one's publish of position 0, then takes 1. */
	ck_assert_int_eq(publish_stamp(p, 1, 2000), 0);
	tail = atomic_load(&p->t.shm->tail);
	ck_assert_uint_eq(tail, 2);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), 0);
	ck_assert_uint_eq(v.seq, 0);
	ck_assert(whole(&v));
	ck_assert_uint_eq(*(const uint64_t *)v.view, 7);
	ck_assert_int_eq(smem_topic_release(s, &v), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), 0);
	ck_assert_uint_eq(v.seq, 1);
	ck_assert_uint_eq(*(const uint64_t *)v.view, 1);
	ck_assert_int_eq(smem_topic_release(s, &v), 0);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

/* ---- subscribers killed at chosen points ---------------------------------------------- */

static int view_and_hang(void *arg)
{
	struct kid_arg *a = arg;
	struct smem_topic_sub *s;
	struct smem_topic_sample v[SMEM_TOPIC_MAX_VIEWS];
	int i;

	close(a->sig[0]);
	if (smem_topic_subscribe(a->name, 0, NULL, &s))
		return 10;
	tb_sig_send(a->sig[1]);
	for (i = 0; i < a->views; i++)
		if (smem_topic_receive(s, &v[i], 5000))
			return 11;
	pause();
	return 0;
}

START_TEST(topic_subscriber_killed_while_lagging_stops_blocking_the_publisher)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct kid_arg a = { 0 };
	char name[128];
	uint64_t i, last = UINT64_MAX;
	pid_t kid;

	p = topic(name, sizeof(name), 4, SMEM_TOPIC_BLOCK, 1, 2, 2);
	a.name = name;
	a.views = 2;
	kid = spawn(view_and_hang, &a);
	for (i = 0; i < 6; i++)	/* it takes two views and stops: room for 2 more */
		ck_assert_int_eq(publish_stamp(p, i, 2000), 0);
	ck_assert_int_eq(publish_stamp(p, 6, 30), -ETIMEDOUT);	/* alive and 4 behind */
	t_kill9(kid);
	ck_assert_int_eq(publish_stamp(p, 6, 2000), 0);
	ck_assert_uint_eq(atomic_load(&p->t.shm->evicted), 1);
	/* Its slot (the only one) is free for a newcomer, who then gets everything. */
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);
	for (i = 7; i < 30; i++) {
		ck_assert_int_eq(publish_stamp(p, i, 2000), 0);
		ck_assert_uint_eq(drain(s, &last), 1);
		ck_assert_uint_eq(last, i);
	}
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_subscriber_killed_holding_views_gives_its_slot_and_buffers_back)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct kid_arg a = { 0 };
	char name[128];
	uint64_t i, last = UINT64_MAX;
	pid_t kid;

	p = topic(name, sizeof(name), 4, SMEM_TOPIC_OVERWRITE, 1, 2, 1);
	a.name = name;
	a.views = 2;
	kid = spawn(view_and_hang, &a);
	ck_assert_int_eq(publish_stamp(p, 0, 0), 0);
	ck_assert_int_eq(publish_stamp(p, 1, 0), 0);
	for (i = 0; i < 200 && atomic_load(&p->t.slot[0].held[1]) == 0; i++)
		usleep(1000);
	t_kill9(kid);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);	/* takes the slot */
	ck_assert_uint_eq(atomic_load(&p->t.shm->evicted), 1);
	for (i = 2; i < 100; i++)
		ck_assert_int_eq(publish_stamp(p, i, 0), 0);
	ck_assert_uint_eq(drain(s, &last), 4);
	ck_assert_uint_eq(last, 99);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

/* ---- random kill points ------------------------------------------------------------------ */

static int publish_forever(void *arg)
{
	struct kid_arg *a = arg;
	struct smem_topic_pub *p;
	uint64_t i;

	close(a->sig[0]);
	if (smem_topic_open_publisher(a->name, NULL, &p))
		return 10;
	tb_sig_send(a->sig[1]);
	for (i = 1000000;; i++)
		if (publish_stamp(p, i, 1000) && publish_stamp(p, i, 1000))
			return 11;
}

START_TEST(topic_publishers_killed_at_random_points_leave_a_working_topic)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	char name[128];
	uint64_t seed = 0x70bc1c0ffeeull, last = UINT64_MAX, n;
	int round;

	p = topic(name, sizeof(name), 8, SMEM_TOPIC_OVERWRITE, 2, 2, 2);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);
	for (round = 0; round < 8; round++) {
		struct kid_arg a = { .name = name };
		pid_t kid;
		long long t0;

		kid = spawn(publish_forever, &a);
		t0 = t_now_ms();
		while (t_now_ms() - t0 < (long long)(t_rng_next(&seed) % 20))
			drain(s, &last);
		t_kill9(kid);
		drain(s, &last);
		/* The survivor publishes, the subscriber gets it, whole and in order. */
		ck_assert_int_eq(publish_stamp(p, round, 2000), 0);
		n = drain(s, &last);
		ck_assert_uint_ge(n, 1);
	}
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

static int receive_forever(void *arg)
{
	struct kid_arg *a = arg;
	struct smem_topic_sub *s;
	struct smem_topic_sample prev, cur;
	uint64_t seed = a->seed;
	bool held = false;

	close(a->sig[0]);
	if (smem_topic_subscribe(a->name, 0, NULL, &s))
		return 10;
	tb_sig_send(a->sig[1]);
	for (;;) {
		int r = smem_topic_receive(s, &cur, 1000);

		if (r == -ETIMEDOUT)
			continue;
		if (r || !whole(&cur))
			return 11;
		if (held)
			smem_topic_release(s, &prev);
		/* Keep a view now and then, so that some kills find views held. */
		held = t_rng_next(&seed) & 1;
		if (held)
			prev = cur;
		else
			smem_topic_release(s, &cur);
	}
}

START_TEST(topic_subscribers_killed_at_random_points_do_not_stop_the_stream)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	char name[128];
	uint64_t seed = 0x5eed5ull, i = 0, last = UINT64_MAX;
	int round, policy;

	for (policy = 0; policy < 2; policy++) {
		p = topic(name, sizeof(name), 4, (uint32_t)policy, 1, 2, 1);
		for (round = 0; round < 5; round++) {
			struct kid_arg a = { .name = name, .seed = seed + (uint64_t)round };
			pid_t kid;
			long long t0;

			kid = spawn(receive_forever, &a);
			t0 = t_now_ms();
			while (t_now_ms() - t0 < (long long)(t_rng_next(&seed) % 20))
				ck_assert_int_eq(publish_stamp(p, i++, 2000), 0);
			t_kill9(kid);
			/* The one slot is the dead child's: a newcomer takes it over. */
			ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);
			last = UINT64_MAX;
			ck_assert_int_eq(publish_stamp(p, i++, 2000), 0);
			ck_assert_int_eq(publish_stamp(p, i++, 2000), 0);
			ck_assert_uint_eq(drain(s, &last), 2);
			smem_topic_sub_close(s);
		}
		smem_topic_pub_close(p);
	}
}
END_TEST

static Suite *topic_stress_suite(void)
{
	Suite *s = suite_create("topic_stress");
	TCase *tc = t_ring_tcase(s, "kill9", 60);

	add_fork_test(tc, topic_publisher_killed_holding_loans_gives_them_back);
	add_fork_test(tc, topic_publisher_killed_holding_the_publish_lock_does_not_stop_others);
	add_fork_test(tc, topic_publisher_killed_between_commit_and_tail_is_helped_not_overwritten);
	add_fork_test(tc, topic_subscriber_killed_while_lagging_stops_blocking_the_publisher);
	add_fork_test(tc, topic_subscriber_killed_holding_views_gives_its_slot_and_buffers_back);
	add_fork_test(tc, topic_publishers_killed_at_random_points_leave_a_working_topic);
	add_fork_test(tc, topic_subscribers_killed_at_random_points_do_not_stop_the_stream);
	return s;
}

T_MAIN(topic_stress_suite)
