/* SPDX-License-Identifier: MIT */
/*
 * smem-bridge against a real nats-server of the test's own (loopback, free ports): a ring
 * carried ring -> NATS -> ring in order; losses of plain NATS counted at the receiving end;
 * RPC through two bridges, with the remote handler's errors and -ECONNRESET / -ETIMEDOUT when
 * the remote side is gone; JetStream exactly once across kill -9 of the importing bridge and
 * of the server, and across kill -9 of the exporting bridge (its journal); smemctl bridges
 * showing both bridges' counters; a config holding secrets refused when others can read it.
 * Topic routes: check_bridge_topic.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/natsutil.h"
#include "util/testutil.h"

#define sleep_ms t_sleep_ms

/* Ring A exported by one bridge, imported by another into ring B. */
struct pair {
	struct t_bridge exp, imp;
	struct smem_ring *a, *b;
	char ra[128], rb[128];
};

/*
 * Create rings A (@a_nodes) and B (@b_nodes) of @size-byte nodes and start the importer,
 * then the exporter, on @subject. @servers: "server" lines; @imp_extra: more directives for
 * the importer; @opts: what follows both routes ("" or "jetstream STREAM ...").
 */
static void pair_start(struct pair *p, const char *servers, const char *imp_extra,
		       const char *subject, const char *opts, uint32_t a_nodes, uint32_t b_nodes,
		       uint32_t size)
{
	char cfg[2048];

	memset(p, 0, sizeof(*p));
	t_name(p->ra, sizeof(p->ra), "br-a");
	t_name(p->rb, sizeof(p->rb), "br-b");
	ck_assert_int_eq(smem_ring_create(p->ra, a_nodes, size, NULL, &p->a), 0);
	ck_assert_int_eq(smem_ring_create(p->rb, b_nodes, size, NULL, &p->b), 0);
	snprintf(cfg, sizeof(cfg), "%s%simport %s -> ring %s %s\n", servers, imp_extra, subject,
		 p->rb, opts);
	t_bridge_start(&p->imp, cfg);
	snprintf(cfg, sizeof(cfg), "%sexport ring %s -> %s %s\n", servers, p->ra, subject, opts);
	t_bridge_start(&p->exp, cfg);
}

static void pair_stop(struct pair *p)
{
	t_bridge_stop(&p->exp);
	t_bridge_stop(&p->imp);
	smem_ring_close(p->a);
	smem_ring_close(p->b);
}

/* Write messages @from..@to-1 of @len bytes into @r. */
static void write_range(struct smem_ring *r, unsigned from, unsigned to, size_t len)
{
	char buf[1024];

	for (unsigned i = from; i < to; i++)
		ck_assert_int_eq(smem_ring_write(r, buf, t_msg_make(buf, len, i), 5000), 0);
}

/* Read messages @from..@to-1 of @len bytes from @r, in order, then nothing more. */
static void read_range(struct smem_ring *r, unsigned from, unsigned to, size_t len,
		       int timeout_ms)
{
	char buf[1024];

	for (unsigned i = from; i < to; i++) {
		ssize_t got = smem_ring_read(r, buf, sizeof(buf), timeout_ms);

		ck_assert_msg(got == (ssize_t)len, "message %u: %zd (%s)", i, got,
			      smem_strerror((int)got));
		ck_assert_uint_eq(t_msg_index(buf), i);
	}
	ck_assert_int_eq(smem_ring_read(r, buf, sizeof(buf), 300), -ETIMEDOUT);
}

/* `smemctl bridges ARGS` in our broker: its stdout into @out; returns its exit status. */
static int smemctl_bridges(char *out, size_t cap, const char *arg)
{
	char cmd[600];
	size_t len = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s/tools/smemctl bridges %s 2>/dev/null", t_build_dir(), arg);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	len = fread(out, 1, cap - 1, f);
	out[len] = 0;
	return WEXITSTATUS(pclose(f));
}

/* The bridge of pid @pid in a `smemctl bridges --json` document, or NULL. */
static struct json_object *bridge_of(struct json_object *doc, pid_t pid)
{
	struct json_object *arr = json_object_object_get(doc, "bridges");

	ck_assert_ptr_nonnull(arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *b = json_object_array_get_idx(arr, i);

		if (json_object_get_int(json_object_object_get(b, "pid")) == (int)pid)
			return b;
	}
	return NULL;
}

/* Route 0 of @b: kind, local name, subject and messages as expected. */
static void expect_route(struct json_object *b, const char *kind, const char *local,
			 const char *subject, long long messages)
{
	struct json_object *r = json_object_array_get_idx(json_object_object_get(b, "routes"), 0);

	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "kind")), kind);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "local")), local);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "subject")), subject);
	ck_assert_int_eq(json_object_get_int64(json_object_object_get(r, "messages")), messages);
	ck_assert_int_eq(json_object_get_int64(json_object_object_get(r, "lost")), 0);
}

START_TEST(bridge_carries_a_ring_over_plain_nats_in_order)
{
	struct t_nats n = { 0 };
	struct pair p;
	struct smem_ring *a, *b;
	struct json_object *doc;
	char servers[128], buf[512], got[512], out[16384];
	const unsigned count = 2000;
	pid_t exp_pid, imp_pid;
	bool gone = false;

	t_nats_start(&n, false);
	snprintf(servers, sizeof(servers), "server %s\n", n.url);
	pair_start(&p, servers, "", "t.plain", "", 64, 4096, 512);
	a = p.a;
	b = p.b;

	for (unsigned i = 0; i < count; i++) {
		size_t len = 100 + i % 400;

		t_msg_make(buf, len, i);
		ck_assert_int_eq(smem_ring_write(a, buf, len, 5000), 0);
	}
	for (unsigned i = 0; i < count; i++) {
		ssize_t len = smem_ring_read(b, got, sizeof(got), 5000);

		ck_assert_int_eq(len, (ssize_t)(100 + i % 400));
		t_msg_make(buf, (size_t)len, i);
		ck_assert_msg(memcmp(buf, got, (size_t)len) == 0, "message %u differs", i);
	}
	ck_assert_int_eq(smem_ring_read(b, got, sizeof(got), 100), -ETIMEDOUT);
	/* Bursts of 1 to 100 messages between pauses: the exporter moves between its send-asap
	 * and its buffered connection (route.c); the order survives every switch. */
	for (unsigned i = count, burst = 0; i < 2 * count; burst++) {
		for (unsigned k = 0; k < 1 + (burst * 37) % 100 && i < 2 * count; k++, i++)
			ck_assert_int_eq(smem_ring_write(a, buf, t_msg_make(buf, 200, i), 5000), 0);
		sleep_ms(1);
	}
	read_range(b, count, 2 * count, 200, 5000);
	ck_assert_int_eq(t_bridge_wait_stat(&p.exp, 0, "messages", 2 * count, 2000), 2 * count);
	ck_assert_int_eq(t_bridge_wait_stat(&p.imp, 0, "messages", 2 * count, 2000), 2 * count);
	ck_assert_int_eq(t_bridge_stat(&p.exp, 0, "lost"), 0);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "lost"), 0);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "errors"), 0);
	/* smemctl shows both bridges and the same counters (the region is rewritten just
	 * before the stats file, which said count already). */
	ck_assert_int_eq(smemctl_bridges(out, sizeof(out), "--json"), 0);
	doc = json_tokener_parse(out);
	ck_assert_msg(doc != NULL, "not JSON: %s", out);
	ck_assert_ptr_nonnull(bridge_of(doc, p.exp.pid));
	ck_assert_ptr_nonnull(bridge_of(doc, p.imp.pid));
	expect_route(bridge_of(doc, p.exp.pid), "export-ring", p.ra, "t.plain", 2 * count);
	expect_route(bridge_of(doc, p.imp.pid), "import-ring", p.rb, "t.plain", 2 * count);
	json_object_put(doc);
	ck_assert_int_eq(smemctl_bridges(out, sizeof(out), ""), 0);
	ck_assert_ptr_nonnull(strstr(out, "export-ring"));
	ck_assert_ptr_nonnull(strstr(out, "import-ring"));
	/* SIGTERM: a clean stop; and kill -9: neither leaves its counters behind. */
	exp_pid = p.exp.pid;
	imp_pid = p.imp.pid;
	ck_assert_int_eq(t_bridge_term(&p.exp), 0);
	t_bridge_kill(&p.imp);
	for (int k = 0; k < 200; k++, sleep_ms(10)) {
		ck_assert_int_eq(smemctl_bridges(out, sizeof(out), "--json"), 0);
		doc = json_tokener_parse(out);
		ck_assert_ptr_nonnull(doc);
		gone = !bridge_of(doc, exp_pid) && !bridge_of(doc, imp_pid);
		json_object_put(doc);
		if (gone)
			break;
	}
	ck_assert_msg(gone, "a stopped bridge still listed: %s", out);
	pair_stop(&p);
	t_nats_stop(&n);
}
END_TEST

/*
 * A full receiving ring pushes back; plain NATS holds a bounded queue (max-pending 16) and
 * drops beyond it. What the importer lost is counted: what arrived plus what was counted lost
 * accounts for every message up to the last one that arrived.
 */
START_TEST(bridge_plain_nats_counts_what_a_slow_receiver_lost)
{
	struct t_nats n = { 0 };
	struct pair p;
	char servers[128], buf[256];
	const unsigned count = 3000;
	unsigned received = 0, last = 0;
	ssize_t len;

	t_nats_start(&n, false);
	snprintf(servers, sizeof(servers), "server %s\n", n.url);
	pair_start(&p, servers, "max-pending 16\n", "slow.x", "", 1024, 4, 256);
	write_range(p.a, 0, count, 200);
	ck_assert_int_eq(t_bridge_wait_stat(&p.exp, 0, "messages", count, 5000), count);
	/* Now drain slowly: the importer was blocked on the 4-node ring all along. */
	while ((len = smem_ring_read(p.b, buf, sizeof(buf), 500)) >= 0) {
		ck_assert_int_eq(len, 200);
		last = t_msg_index(buf);
		received++;
	}
	ck_assert_int_eq(len, -ETIMEDOUT);
	ck_assert_uint_lt(received, count);
	ck_assert_uint_gt(received, 0);
	/* Messages 0..last either arrived or were counted as lost. */
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "lost") + received, (long long)last + 1);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "messages"), received);
	pair_stop(&p);
	t_nats_stop(&n);
}
END_TEST

/* The remote service: upper-cases; "fail" gives -EDOM with a message; "slow" sleeps 1.5 s. */
static int upper(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *reply)
{
	char *out;

	(void)arg;
	if (req->len == 4 && !memcmp(req->data, "fail", 4)) {
		smem_rpc_reply_error(reply, "no such thing");
		return -EDOM;
	}
	if (req->len == 4 && !memcmp(req->data, "slow", 4))
		sleep_ms(1500);
	out = smem_rpc_reply_alloc(reply, req->len);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < req->len; i++) {
		char c = ((const char *)req->data)[i];

		out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
	}
	return 0;
}

static void expect_call(struct smem_rpc *cli, const char *req, int want, const char *resp)
{
	void *r = NULL;
	size_t rlen = 0;
	int rc = smem_rpc_call(cli, req, strlen(req), &r, &rlen, 5000);

	ck_assert_msg(rc == want, "call '%s': %d (%s), wanted %d", req, rc, smem_strerror(rc),
		      want);
	if (resp) {
		ck_assert_uint_eq(rlen, strlen(resp));
		ck_assert(memcmp(r, resp, rlen) == 0);
	}
	smem_rpc_free_response(r);
}

START_TEST(bridge_rpc_reaches_a_remote_service_and_fails_cleanly_when_it_is_gone)
{
	struct t_nats n = { 0 };
	struct t_bridge srv = { 0 }, cl = { 0 };
	struct smem_rpc_opts o;
	struct smem_rpc *svc, *cli;
	char cfg[1024];
	long long t0;
	T_NAME(svc_name, "br-svc");
	T_NAME(cli_name, "br-cli");

	t_nats_start(&n, false);
	memset(&o, 0, sizeof(o));
	o.handler = upper;
	ck_assert_int_eq(smem_rpc_open(svc_name, &o, &svc), 0);
	snprintf(cfg, sizeof(cfg), "server %s\nrequest-timeout-ms 800\nserve rpc %s as svc.upper\n",
		 n.url, svc_name);
	t_bridge_start(&srv, cfg);
	snprintf(cfg, sizeof(cfg), "server %s\nrequest-timeout-ms 800\ncall svc.upper as rpc %s\n",
		 n.url, cli_name);
	t_bridge_start(&cl, cfg);
	ck_assert_int_eq(smem_rpc_open(cli_name, NULL, &cli), 0);

	expect_call(cli, "hello, bridge", 0, "HELLO, BRIDGE");
	expect_call(cli, "fail", -EDOM, NULL);
	ck_assert_str_eq(smem_rpc_last_error_message(), "no such thing");
	/* Longer than the bridge's request timeout (800 ms): -ETIMEDOUT, not a hang. */
	t0 = t_now_ms();
	expect_call(cli, "slow", -ETIMEDOUT, NULL);
	ck_assert_int_lt(t_now_ms() - t0, 3000);
	sleep_ms(1000);		/* let the slow call finish on the service side */
	expect_call(cli, "again", 0, "AGAIN");

	/* The local service closes: the remote caller gets -ECONNRESET. */
	smem_rpc_close(svc);
	expect_call(cli, "after close", -ECONNRESET, NULL);
	/* It comes back: the bridge picks it up. */
	ck_assert_int_eq(smem_rpc_open(svc_name, &o, &svc), 0);
	expect_call(cli, "back", 0, "BACK");

	/* The serving bridge is killed: no responder, -ECONNRESET at once. */
	t_bridge_kill(&srv);
	t0 = t_now_ms();
	{
		/* -ECONNRESET (no responders), or -ETIMEDOUT when the request reached the
		 * server before it had seen the dead bridge's connection close (seen once in
		 * ~20 runs): either way a clear error within the request timeout. */
		int rc = smem_rpc_call(cli, "after kill", 10, NULL, NULL, 5000);

		ck_assert_msg(rc == -ECONNRESET || rc == -ETIMEDOUT, "after kill: %d", rc);
	}
	ck_assert_int_lt(t_now_ms() - t0, 3000);
	ck_assert_int_ge(t_bridge_wait_stat(&cl, 0, "messages", 3, 2000), 3);
	/* "fail", "slow", "after close" and "after kill": failed by the remote side (errors)
	 * or on the way (lost); "slow" may be either, whichever timeout fires first. */
	for (long long end = t_now_ms() + 2000; t_now_ms() < end; sleep_ms(10))
		if (t_bridge_stat(&cl, 0, "lost") + t_bridge_stat(&cl, 0, "errors") >= 4)
			break;
	ck_assert_int_ge(t_bridge_stat(&cl, 0, "lost"), 1);	/* the last: no responder */
	ck_assert_int_eq(t_bridge_stat(&cl, 0, "lost") + t_bridge_stat(&cl, 0, "errors"), 4);

	smem_rpc_close(cli);
	smem_rpc_close(svc);
	t_bridge_stop(&cl);
	t_bridge_stop(&srv);
	t_nats_stop(&n);
}
END_TEST

/*
 * JetStream: a writer streams messages into ring A; the importing bridge is killed with
 * SIGKILL mid-stream and restarted, and so is the NATS server (same store). Ring B gets every
 * message exactly once, in order.
 */
/* The importer's cursor file in @dir (import-STREAM-HASH.cursor: magic, cursor). */
static long long read_cursor(const char *dir)
{
	char cmd[512], path[512] = "";
	uint64_t v[2] = { 0, 0 };
	FILE *p;
	int fd;

	snprintf(cmd, sizeof(cmd), "ls %s/import-*.cursor", dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(path, sizeof(path), p));
	pclose(p);
	path[strcspn(path, "\n")] = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, v, sizeof(v)), sizeof(v));
	close(fd);
	return (long long)v[1];
}

static const char *js_ring;
static unsigned js_count;

static int js_writer(void *arg)
{
	struct smem_ring *a;
	char buf[128];

	(void)arg;
	if (smem_ring_open(js_ring, NULL, &a))
		return 1;
	for (unsigned i = 0; i < js_count; i++) {
		if (smem_ring_write(a, buf, t_msg_make(buf, 100, i), 20000))
			return 2;
		if (i % 50 == 49)
			sleep_ms(5);	/* a stream, not a burst: the kills land mid-way */
	}
	smem_ring_close(a);
	return 0;
}

START_TEST(bridge_jetstream_delivers_exactly_once_across_kill9_of_bridge_and_server)
{
	struct t_nats n = { 0 };
	struct pair p;
	char servers[128];
	const unsigned count = 3000;
	long long resumed;
	pid_t writer;

	t_nats_start(&n, true);
	snprintf(servers, sizeof(servers), "server %s\n", n.url);
	pair_start(&p, servers, "state-dir STATE\n", "js.x", "jetstream JSX", 256, 4096, 128);
	js_ring = p.ra;
	js_count = count;
	writer = t_fork(js_writer, NULL);

	ck_assert_int_ge(t_bridge_wait_stat(&p.imp, 0, "messages", count / 4, 20000), count / 4);
	t_bridge_kill(&p.imp);
	/* The cursor that survived kill -9: at least what the bridge had counted. */
	resumed = read_cursor(p.imp.dir);
	ck_assert_int_ge(resumed, count / 4 - 1);
	t_bridge_restart(&p.imp);
	ck_assert_int_ge(t_bridge_wait_stat(&p.imp, 0, "cursor", count / 2, 20000), count / 2);
	t_nats_kill(&n);
	sleep_ms(200);
	t_nats_restart(&n);
	ck_assert_int_eq(t_wait(writer), 0);

	/* Every message once, in order, and nothing twice. */
	read_range(p.b, 0, count, 100, 20000);
	ck_assert_int_eq(t_bridge_wait_stat(&p.imp, 0, "cursor", count, 2000), count);
	/* The restarted importer wrote exactly the messages after its cursor. */
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "messages"), count - resumed);
	pair_stop(&p);
	t_nats_stop(&n);
}
END_TEST

/*
 * JetStream: the exporting bridge is killed with SIGKILL while the server is down, then
 * @kills times at random moments of a stream, and restarted each time. Its journal (in its
 * state directory) makes it publish the message it held again under the same id: ring B gets
 * every message once, in order. The one loss the journal cannot prevent (a kill between the
 * ring's reader claim and the journal's pending mark) is a node the ring reclaims: what is
 * missing is at most nodes_reclaimed.
 */
static void exporter_kill9_loop(unsigned kills, unsigned count)
{
	struct t_nats n = { 0 };
	struct smem_ring_stats st;
	struct pair p;
	char servers[256], buf[256];
	unsigned received = 0, next = 0, missing;
	pid_t writer;
	ssize_t len;

	t_nats_start(&n, true);
	snprintf(servers, sizeof(servers), "server %s\nstate-dir STATE\n", n.url);
	pair_start(&p, servers, "", "jk.x", "jetstream JKX", 256, 8192, 128);
	js_ring = p.ra;
	js_count = count;
	writer = t_fork(js_writer, NULL);
	/* First the case a kill at random rarely hits (the stream has most messages before
	 * their ack arrives): the server is down, so the message the exporter took from the
	 * ring is acked by nobody when the exporter dies. Only its journal still has it. */
	ck_assert_int_ge(t_bridge_wait_stat(&p.exp, 0, "messages", count / 10, 20000), count / 10);
	t_nats_kill(&n);
	ck_assert_int_ge(t_bridge_wait_stat(&p.exp, 0, "retries", 1, 10000), 1);
	t_bridge_kill(&p.exp);
	t_nats_restart(&n);
	t_bridge_restart(&p.exp);
	srand((unsigned)getpid());
	for (unsigned k = 0; k < kills; k++) {
		sleep_ms(20 + rand() % 150);
		t_bridge_kill(&p.exp);
		t_bridge_restart(&p.exp);
	}
	ck_assert_int_eq(t_wait(writer), 0);
	/* In order and never twice: each index above the last one. */
	while ((len = smem_ring_read(p.b, buf, sizeof(buf), next < count ? 20000 : 500)) >= 0) {
		unsigned i = t_msg_index(buf);

		ck_assert_int_eq(len, 100);
		ck_assert_msg(i >= next && i < count, "message %u after %u", i, next);
		next = i + 1;
		received++;
		if (next == count)
			break;
	}
	ck_assert_int_eq(smem_ring_read(p.b, buf, sizeof(buf), 300), -ETIMEDOUT);
	ck_assert_int_eq(smem_ring_stats(p.a, &st), 0);
	missing = count - received;
	fprintf(stderr, "exporter kill -9 x%u: %u of %u messages, %u missing, %llu ring nodes "
		"reclaimed\n", kills, received, count, missing,
		(unsigned long long)st.nodes_reclaimed);
	ck_assert_uint_le(missing, st.nodes_reclaimed);
	pair_stop(&p);
	t_nats_stop(&n);
}

START_TEST(bridge_jetstream_exporter_resumes_its_pending_message_after_kill9)
{
	exporter_kill9_loop(6, 3000);
}
END_TEST

START_TEST(bridge_jetstream_exporter_survives_many_kill9)
{
	exporter_kill9_loop(60, 20000);
}
END_TEST

/* A three-server cluster (@js: with JetStream), its URLs as "server" lines in @servers. */
static void start_cluster(struct t_nats n[3], bool js, char *servers, size_t cap)
{
	char routes[512] = "";
	int len = 0;

	memset(n, 0, 3 * sizeof(n[0]));
	servers[0] = 0;
	for (int i = 0; i < 3; i++) {
		n[i].port = t_free_port();
		n[i].cluster_port = t_free_port();
		snprintf(n[i].server_name, sizeof(n[i].server_name), "s%d", i);
		len += snprintf(routes + len, sizeof(routes) - (size_t)len, "%snats://127.0.0.1:%d",
				i ? "," : "", n[i].cluster_port);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(n[i].routes, sizeof(n[i].routes), "%s", routes);
		t_nats_start(&n[i], js);
		snprintf(servers + strlen(servers), cap - strlen(servers), "server %s\n", n[i].url);
	}
}

/*
 * Plain NATS over a three-server cluster: the server both bridges use is killed; both
 * reconnect to the next one and the route carries on, nothing lost once they are back.
 */
START_TEST(bridge_reconnects_when_its_cluster_server_dies)
{
	struct t_nats n[3];
	struct pair p;
	char servers[512];

	start_cluster(n, false, servers, sizeof(servers));
	pair_start(&p, servers, "", "cp.x", "", 256, 1024, 256);
	write_range(p.a, 0, 300, 200);
	read_range(p.b, 0, 300, 200, 5000);
	t_nats_kill(&n[0]);	/* the first listed: both bridges are on it */
	/* Every connection reconnects once: the importer has two (imports receive on their
	 * own), the exporter one. Only then is a plain publish sure to find its subscriber. */
	ck_assert_int_ge(t_bridge_wait_stat(&p.imp, -1, "reconnects", 2, 10000), 2);
	ck_assert_int_ge(t_bridge_wait_stat(&p.exp, -1, "reconnects", 1, 10000), 1);
	write_range(p.a, 300, 600, 200);
	read_range(p.b, 300, 600, 200, 5000);
	ck_assert_int_eq(t_bridge_stat(&p.imp, 0, "lost"), 0);
	pair_stop(&p);
	for (int i = 0; i < 3; i++)
		t_nats_stop(&n[i]);
}
END_TEST

/*
 * A three-server cluster, the stream replicated on all three: the server both bridges use is
 * killed mid-stream; they reconnect to the others, and ring B still gets every message exactly
 * once, in order.
 */
START_TEST(bridge_survives_the_loss_of_a_cluster_server_without_loss_or_duplicate)
{
	struct t_nats n[3];
	struct pair p;
	char servers[512];
	const unsigned count = 2000;
	pid_t writer;

	start_cluster(n, true, servers, sizeof(servers));
	pair_start(&p, servers, "state-dir STATE\n", "cl.x", "jetstream CLX replicas 3", 256, 4096,
		   128);
	js_ring = p.ra;
	js_count = count;
	writer = t_fork(js_writer, NULL);

	ck_assert_int_ge(t_bridge_wait_stat(&p.imp, 0, "cursor", count / 4, 20000), count / 4);
	t_nats_kill(&n[0]);	/* the first listed: both bridges are on it */
	ck_assert_int_eq(t_wait(writer), 0);
	read_range(p.b, 0, count, 100, 30000);
	ck_assert_int_ge(t_bridge_wait_stat(&p.imp, -1, "reconnects", 1, 2000), 1);
	ck_assert_int_ge(t_bridge_wait_stat(&p.exp, -1, "reconnects", 1, 2000), 1);
	pair_stop(&p);
	for (int i = 0; i < 3; i++)
		t_nats_stop(&n[i]);
}
END_TEST

/*
 * Two hosts (network namespaces joined by a veth pair), each with its own smemd and bridge;
 * the NATS server runs on host A. A ring on A reaches a ring on B, and B's client calls A's
 * service, across the link.
 */
START_TEST(bridge_joins_two_hosts_each_with_its_own_broker)
{
	struct t_host ha, hb;
	struct t_nats n = { 0 };
	struct t_bridge ba = { 0 }, bb = { 0 };
	struct smem_opts oa = { 0 }, ob = { 0 };
	struct smem_rpc_opts ra_opts;
	struct smem_ring *a, *b;
	struct smem_rpc *svc, *cli;
	char cfg[1024];
	int rc = t_hosts_start(&ha, &hb);

	if (rc) {
		t_hosts_stop(&ha, &hb);
		fprintf(stderr, "skip: no network namespaces or veth here (%s)\n", smem_strerror(rc));
		return;
	}
	oa.broker = ha.broker;
	ob.broker = hb.broker;
	snprintf(n.host, sizeof(n.host), "%s", ha.addr);
	n.port = 4222;		/* in host A's own namespace: no one else's port */
	snprintf(n.netns, sizeof(n.netns), "%s", ha.netns);
	t_nats_start(&n, false);

	ck_assert_int_eq(smem_ring_create("jobs", 64, 512, &oa, &a), 0);
	memset(&ra_opts, 0, sizeof(ra_opts));
	ra_opts.base = oa;
	ra_opts.handler = upper;
	ck_assert_int_eq(smem_rpc_open("resize", &ra_opts, &svc), 0);

	snprintf(bb.netns, sizeof(bb.netns), "%s", hb.netns);
	snprintf(bb.broker, sizeof(bb.broker), "%s", hb.broker);
	snprintf(cfg, sizeof(cfg), "server nats://%s:4222\nimport a.jobs -> ring jobs create 64 512\n"
		 "call a.resize as rpc resize\n", ha.addr);
	t_bridge_start(&bb, cfg);
	snprintf(ba.netns, sizeof(ba.netns), "%s", ha.netns);
	snprintf(ba.broker, sizeof(ba.broker), "%s", ha.broker);
	snprintf(cfg, sizeof(cfg), "server nats://%s:4222\nexport ring jobs -> a.jobs\n"
		 "serve rpc resize as a.resize\n", ha.addr);
	t_bridge_start(&ba, cfg);

	write_range(a, 0, 200, 300);
	/* Host B's bridge created its ring in host B's broker. */
	rc = smem_ring_open("jobs", &ob, &b);
	ck_assert_int_eq(rc, 0);
	read_range(b, 0, 200, 300, 5000);
	memset(&ra_opts, 0, sizeof(ra_opts));
	ra_opts.base = ob;
	ck_assert_int_eq(smem_rpc_open("resize", &ra_opts, &cli), 0);
	expect_call(cli, "across the link", 0, "ACROSS THE LINK");

	smem_rpc_close(cli);
	smem_rpc_close(svc);
	smem_ring_close(b);
	smem_ring_close(a);
	t_bridge_stop(&ba);
	t_bridge_stop(&bb);
	t_nats_stop(&n);
	t_hosts_stop(&ha, &hb);
}
END_TEST

/* Credentials are refused in a file that group or others can read; accepted at 0600. */
START_TEST(bridge_refuses_a_config_with_secrets_that_others_can_read)
{
	char dir[256], path[300], tool[512];
	int fd, status;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/smem-bcfg.XXXXXX", getenv("SMEM_TEST_TMP"));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c", dir);
	snprintf(tool, sizeof(tool), "%s/tools/smem-bridge", t_build_dir());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_gt(write(fd, "password hunter2\ncall a.b as rpc x\n", 35), 0);
	close(fd);
	static const int modes[] = { 0644, 0640, 0604, 0660, 0600 };

	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int mode = modes[i];

		ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
		pid = fork();
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 2);
			execl(tool, tool, "-c", path, "--check", (char *)NULL);
			_exit(127);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFEXITED(status));
		ck_assert_msg(WEXITSTATUS(status) == (mode == 0600 ? 0 : 2), "mode %o: exit %d",
			      mode, WEXITSTATUS(status));
	}
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *bridge_suite(void)
{
	Suite *s = suite_create("bridge");
	TCase *tc = tcase_create("bridge");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, t_tmp_setup, t_tmp_teardown);
	tcase_add_test(tc, bridge_refuses_a_config_with_secrets_that_others_can_read);
	tcase_add_test(tc, bridge_carries_a_ring_over_plain_nats_in_order);
	tcase_add_test(tc, bridge_plain_nats_counts_what_a_slow_receiver_lost);
	tcase_add_test(tc, bridge_rpc_reaches_a_remote_service_and_fails_cleanly_when_it_is_gone);
	tcase_add_test(tc, bridge_jetstream_delivers_exactly_once_across_kill9_of_bridge_and_server);
	tcase_add_test(tc, bridge_jetstream_exporter_resumes_its_pending_message_after_kill9);
	tcase_add_test(tc, bridge_reconnects_when_its_cluster_server_dies);
	tcase_add_test(tc, bridge_joins_two_hosts_each_with_its_own_broker);
	suite_add_tcase(s, tc);
	/* make check-bridge-long: a JetStream cluster takes seconds to elect its leaders, at
	 * start and again after the failover (about 15 s in all). */
	if (getenv("SMEM_BRIDGE_LONG")) {
		TCase *lc = tcase_create("bridge_long");

		tcase_set_timeout(lc, 120);
		tcase_add_unchecked_fixture(lc, t_tmp_setup, t_tmp_teardown);
		tcase_add_test(lc,
			       bridge_survives_the_loss_of_a_cluster_server_without_loss_or_duplicate);
		tcase_add_test(lc, bridge_jetstream_exporter_survives_many_kill9);
		suite_add_tcase(s, lc);
	}
	return s;
}

T_MAIN(bridge_suite)
