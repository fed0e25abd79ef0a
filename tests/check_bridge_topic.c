/* SPDX-License-Identifier: MIT */
/*
 * smem-bridge's topic routes against a real nats-server of the test's own (loopback, free
 * ports): a topic carried topic -> NATS -> topic in order over plain NATS; what an overwriting
 * topic replaced before the exporter read it counted lost; JetStream exactly once into a topic
 * across kill -9 of the importing bridge. Ring and RPC routes: check_bridge.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/natsutil.h"
#include "util/testutil.h"

#define sleep_ms t_sleep_ms

/* Topics A (the test publishes) and B (a subscriber of the test reads). */
struct tpair {
	struct t_bridge exp, imp;
	struct smem_topic_pub *a;
	struct smem_topic_sub *b;
	char ta[128], tb[128];
};

/*
 * Create topic A (@a_policy, @depth samples of @size bytes, others may publish); start the
 * importer of @subject into topic B (created by the test if @b_depth, else by the bridge:
 * "create"), subscribe to B, then start the exporter of A.
 */
static void tpair_start(struct tpair *p, const char *servers, const char *subject,
			const char *opts, uint32_t a_policy, uint32_t depth, uint32_t b_depth,
			uint32_t size, struct smem_topic_pub **b_pub)
{
	struct smem_topic_config c = { .sample_size = size, .depth = depth, .policy = a_policy,
				       .flags = SMEM_TOPIC_MULTI_PUBLISHER };
	char cfg[2048], create[64] = "";

	memset(p, 0, sizeof(*p));
	t_name(p->ta, sizeof(p->ta), "br-ta");
	t_name(p->tb, sizeof(p->tb), "br-tb");
	ck_assert_int_eq(smem_topic_create(p->ta, &c, NULL, &p->a), 0);
	if (b_depth) {
		c.depth = b_depth;
		c.policy = SMEM_TOPIC_BLOCK;
		ck_assert_int_eq(smem_topic_create(p->tb, &c, NULL, b_pub), 0);
	} else {
		snprintf(create, sizeof(create), "create %u %u", depth, size);
	}
	snprintf(cfg, sizeof(cfg), "%simport %s -> topic %s %s %s\n", servers, subject, p->tb,
		 opts, create);
	t_bridge_start(&p->imp, cfg);
	ck_assert_int_eq(smem_topic_subscribe(p->tb, 0, NULL, &p->b), 0);
	snprintf(cfg, sizeof(cfg), "%sexport topic %s -> %s %s\n", servers, p->ta, subject, opts);
	t_bridge_start(&p->exp, cfg);
}

static void tpair_stop(struct tpair *p)
{
	t_bridge_stop(&p->exp);
	t_bridge_stop(&p->imp);
	smem_topic_sub_close(p->b);
	smem_topic_pub_close(p->a);
}

static void topic_publish(struct smem_topic_pub *pub, unsigned i, size_t len)
{
	struct smem_topic_sample s;

	ck_assert_int_eq(smem_topic_loan(pub, &s, 5000), 0);
	t_msg_make(s.data, len, i);
	ck_assert_int_eq(smem_topic_publish(pub, &s, len, 5000), 0);
}

/* Receive the next sample of @sub: its index, its length in *len; -1 on a timeout. */
static long topic_next(struct smem_topic_sub *sub, size_t *len, int timeout_ms)
{
	struct smem_topic_sample s;
	char want[1024];
	unsigned i;
	int rc = smem_topic_receive(sub, &s, timeout_ms);

	if (rc == -ETIMEDOUT)
		return -1;
	ck_assert_int_eq(rc, 0);
	i = t_msg_index(s.view);
	t_msg_make(want, s.len, i);
	ck_assert_msg(memcmp(want, s.view, s.len) == 0, "sample %u differs", i);
	*len = s.len;
	ck_assert_int_eq(smem_topic_release(sub, &s), 0);
	return (long)i;
}

/* A topic exported over plain NATS reaches a topic the importing bridge created, in order. */
START_TEST(bridge_carries_a_topic_over_plain_nats_in_order)
{
	struct t_nats n = { 0 };
	struct tpair p;
	char servers[128];
	const unsigned count = 1000;
	size_t len;

	t_nats_start(&n, false);
	snprintf(servers, sizeof(servers), "server %s\n", n.url);
	tpair_start(&p, servers, "t.topic", "", SMEM_TOPIC_BLOCK, 64, 0, 512, NULL);
	for (unsigned i = 0; i < count; i++)
		topic_publish(p.a, i, 100 + i % 400);
	for (unsigned i = 0; i < count; i++) {
		ck_assert_int_eq(topic_next(p.b, &len, 5000), (long)i);
		ck_assert_uint_eq(len, 100 + i % 400);
	}
	ck_assert_int_eq(topic_next(p.b, &len, 300), -1);
	ck_assert_int_eq(t_bridge_stat(&p.exp, 0, "lost"), 0);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "lost"), 0);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "errors"), 0);
	tpair_stop(&p);
	t_nats_stop(&n);
}
END_TEST

/* Wait until @pid is stopped (state T in /proc/PID/stat): SIGSTOP is asynchronous. */
static void t_wait_stopped(pid_t pid)
{
	char path[64], buf[256], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int k = 0; k < 500; k++, sleep_ms(2)) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = 0;
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'T')
			return;
	}
	ck_abort_msg("process %d did not stop", (int)pid);
}

/*
 * An overwriting topic does not wait for the exporter: while the exporting bridge is stopped
 * (SIGSTOP), the topic overwrites what it did not read, and the bridge counts each such sample
 * lost. Every sample either reaches topic B or is counted.
 */
START_TEST(bridge_counts_the_samples_its_topic_overwrote)
{
	struct t_nats n = { 0 };
	struct tpair p;
	char servers[128];
	const unsigned count = 120;
	unsigned received = 0;
	long i, last = -1;
	size_t len;

	t_nats_start(&n, false);
	snprintf(servers, sizeof(servers), "server %s\n", n.url);
	tpair_start(&p, servers, "t.ow", "", SMEM_TOPIC_OVERWRITE, 4, 0, 256, NULL);
	for (unsigned k = 0; k < 10; k++)
		topic_publish(p.a, k, 200);
	ck_assert_int_eq(kill(p.exp.pid, SIGSTOP), 0);
	t_wait_stopped(p.exp.pid);
	for (unsigned k = 10; k < 110; k++)
		topic_publish(p.a, k, 200);
	ck_assert_int_eq(kill(p.exp.pid, SIGCONT), 0);
	for (unsigned k = 110; k < count; k++)
		topic_publish(p.a, k, 200);
	while ((i = topic_next(p.b, &len, 2000)) >= 0) {
		ck_assert_int_gt(i, last);
		last = i;
		received++;
		if (i == (long)count - 1)
			break;
	}
	ck_assert_int_eq(last, (long)count - 1);
	/* Of the 100 published during the stop, at most depth + one held view survive. */
	ck_assert_int_ge(t_bridge_wait_stat(&p.exp, 0, "lost", 95, 2000), 95);
	ck_assert_int_eq(t_bridge_stat(&p.exp, 0, "lost") + received, count);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "lost"), 0);
	tpair_stop(&p);
	t_nats_stop(&n);
}
END_TEST

/*
 * JetStream: a child publishes into topic A; the importing bridge is killed with SIGKILL
 * mid-stream and restarted. Topic B's subscriber gets every sample exactly once, in order.
 */
static const char *jt_topic;
static unsigned jt_count;

static int jt_writer(void *arg)
{
	struct smem_topic_pub *pub;
	struct smem_topic_sample s;

	(void)arg;
	if (smem_topic_open_publisher(jt_topic, NULL, &pub))
		return 1;
	for (unsigned i = 0; i < jt_count; i++) {
		if (smem_topic_loan(pub, &s, 20000))
			return 2;
		t_msg_make(s.data, 100, i);
		if (smem_topic_publish(pub, &s, 100, 20000))
			return 3;
		if (i % 50 == 49)
			sleep_ms(5);
	}
	smem_topic_pub_close(pub);
	return 0;
}

START_TEST(bridge_jetstream_carries_a_topic_exactly_once_across_kill9_of_the_importer)
{
	struct t_nats n = { 0 };
	struct smem_topic_pub *b_pub = NULL;
	struct tpair p;
	char servers[256];
	const unsigned count = 2000;
	size_t len;
	pid_t writer;

	t_nats_start(&n, true);
	snprintf(servers, sizeof(servers), "server %s\nstate-dir STATE\n", n.url);
	tpair_start(&p, servers, "jt.x", "jetstream JTX", SMEM_TOPIC_BLOCK, 64, 64, 128, &b_pub);
	jt_topic = p.ta;
	jt_count = count;
	writer = t_fork(jt_writer, NULL);
	for (unsigned i = 0; i < count; i++) {
		if (i == count / 4) {
			/* Killed while topic B (64 samples) pushes back on it. Not right after a
			 * sample arrived: the importer is then still in the publish's wake of
			 * this reader, before its cursor store, the window route.c names. */
			sleep_ms(100);
			t_bridge_kill(&p.imp);
			t_bridge_restart(&p.imp);
		}
		ck_assert_int_eq(topic_next(p.b, &len, 20000), (long)i);
		ck_assert_uint_eq(len, 100);
	}
	ck_assert_int_eq(topic_next(p.b, &len, 300), -1);
	ck_assert_int_eq(t_wait(writer), 0);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "errors"), 0);
	tpair_stop(&p);
	smem_topic_pub_close(b_pub);
	t_nats_stop(&n);
}
END_TEST

static Suite *bridge_topic_suite(void)
{
	Suite *s = suite_create("bridge_topic");
	TCase *tc = tcase_create("bridge_topic");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, t_tmp_setup, t_tmp_teardown);
	tcase_add_test(tc, bridge_carries_a_topic_over_plain_nats_in_order);
	tcase_add_test(tc, bridge_counts_the_samples_its_topic_overwrote);
	tcase_add_test(tc, bridge_jetstream_carries_a_topic_exactly_once_across_kill9_of_the_importer);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(bridge_topic_suite)
