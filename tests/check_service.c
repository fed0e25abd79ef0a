/* SPDX-License-Identifier: MIT */
/*
 * smem_service: many clients on one server, each over its own channel; fairness between a
 * flooding client and a quiet one; kill -9 of clients at every stage of their life (the slot
 * comes back, nothing else fails); hostile slot tables (-EPROTO to that slot, the server and
 * the others go on); the server's death and close seen by clients as errors, not hangs.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service_int.h"
#include "util/ringutil.h"
#include "util/testutil.h"

/* ---- a server on a thread of the test process -------------------------------------------- */

/* Handlers log the client of each request in order (fairness), under log_lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int req_log[1024];
static unsigned nlog;
/* h_echo blocks while hold_handler is set and a request says so (kill during a handler). */
static _Atomic int hold_handler, in_handler;

/* Request: u32 value (and, with value == 0xdead, "hold"). Response: u32 client, u32 value. */
static int h_echo(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	uint32_t out[2] = { 0, 0 };
	int client = smem_service_request_client(req);

	(void)arg;
	if (client < 0 || req->len < 4)
		return -EINVAL;
	pthread_mutex_lock(&log_lock);
	if (nlog < 1024)
		req_log[nlog++] = client;
	pthread_mutex_unlock(&log_lock);
	memcpy(&out[1], req->data, 4);
	out[0] = (uint32_t)client;
	if (out[1] == 0xdead) {
		atomic_store(&in_handler, 1);
		while (atomic_load(&hold_handler))
			usleep(1000);
	}
	return smem_rpc_reply_set(rep, out, sizeof(out));
}

struct srv {
	struct smem_service *svc;
	pthread_t th;
	_Atomic bool stop;
};

static void *srv_main(void *a)
{
	struct srv *s = a;

	while (!atomic_load(&s->stop))
		ck_assert_int_ge(smem_service_serve(s->svc, 20), 0);
	return NULL;
}

/*
 * Tests that fork clients create the service, fork, and only then start the server thread: a
 * child forked while that thread allocates inherits the allocator's lock held (ASan's
 * allocator has no fork handler for it) and hangs in its first allocation.
 */
static void srv_create(struct srv *s, const char *name, uint32_t max_clients)
{
	struct smem_service_opts o = { .max_clients = max_clients, .handler = h_echo };

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(smem_service_create(name, &o, &s->svc), 0);
}

static void srv_run(struct srv *s)
{
	ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_start(struct srv *s, const char *name, uint32_t max_clients)
{
	srv_create(s, name, max_clients);
	srv_run(s);
}

static void srv_halt(struct srv *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->th, NULL);
}

static void srv_stop(struct srv *s)
{
	srv_halt(s);
	smem_service_close(s->svc);
}

/* One call of @v; returns its error, or checks the echo and returns 0. */
static int call_v(struct smem_service_client *c, uint32_t v, int timeout_ms)
{
	uint32_t *resp = NULL;
	size_t len = 0;
	int rc = smem_service_call(c, &v, sizeof(v), (void **)&resp, &len, timeout_ms);

	if (rc)
		return rc;
	ck_assert_uint_eq(len, 8);
	ck_assert_uint_eq(resp[1], v);
	smem_rpc_free_response(resp);
	return 0;
}

/* Wait until the server has @n clients (it frees departed ones as it serves). */
static void wait_clients(struct srv *s, int n)
{
	long long t0 = t_now_ms();

	while (smem_service_clients(s->svc) != n && t_now_ms() - t0 < 5000)
		usleep(2000);
	ck_assert_int_eq(smem_service_clients(s->svc), n);
}

/* ---- the API ------------------------------------------------------------------------------ */

START_TEST(service_layout_sizes_are_fixed_and_bad_input_is_refused)
{
	struct smem_service_opts bad = { .max_clients = SMEM_SERVICE_MAX_CLIENTS + 1 };
	struct smem_service_client *c = NULL;
	struct smem_service *svc, *svc2;
	struct smem_ring *r;
	char rname[128];
	T_NAME(name, "svc");

	ck_assert_uint_eq(sizeof(struct smem_svc_hdr), 128);
	ck_assert_uint_eq(sizeof(struct smem_svc_slot), 256);
	ck_assert_int_eq(smem_service_create(name, &bad, &svc), -EINVAL);
	ck_assert_int_eq(smem_service_create("", NULL, &svc), -EINVAL);
	ck_assert_int_eq(smem_service_connect(name, NULL, &c), -ENOENT);
	ck_assert_ptr_null(c);
	r = t_ring_new(rname, sizeof(rname), 4, 64);
	ck_assert_int_eq(smem_service_connect(rname, NULL, &c), -EMEDIUMTYPE);
	smem_ring_close(r);
	ck_assert_int_eq(smem_service_create(name, NULL, &svc), 0);
	ck_assert_int_eq(smem_service_create(name, NULL, &svc2), -EEXIST);
	{
		struct smem_service_opts o = { .node_size = 100 };

		ck_assert_int_eq(smem_service_connect(name, &o, &c), -EINVAL);
	}
	ck_assert_int_eq(smem_service_clients(svc), 0);
	ck_assert_int_eq(smem_service_clients(NULL), -EINVAL);
	ck_assert_int_eq(smem_service_request_client(NULL), -EINVAL);
	ck_assert_int_eq(smem_service_serve(svc, 0), 0);
	smem_service_close(svc);
	smem_service_close(NULL);
	smem_service_disconnect(NULL);
}
END_TEST

START_TEST(service_clients_beyond_max_get_eusers_and_a_closed_server_econnrefused)
{
	struct smem_service_client *c[3];
	struct srv s;
	T_NAME(name, "svc");

	srv_start(&s, name, 2);
	ck_assert_int_eq(smem_service_connect(name, NULL, &c[0]), 0);
	ck_assert_int_eq(smem_service_connect(name, NULL, &c[1]), 0);
	ck_assert_int_eq(smem_service_connect(name, NULL, &c[2]), -EUSERS);
	ck_assert_int_eq(call_v(c[0], 1, 5000), 0);
	ck_assert_int_eq(call_v(c[1], 2, 5000), 0);
	wait_clients(&s, 2);
	smem_service_disconnect(c[1]);
	wait_clients(&s, 1);
	/* The freed slot is usable again. */
	ck_assert_int_eq(smem_service_connect(name, NULL, &c[2]), 0);
	ck_assert_int_eq(call_v(c[2], 3, 5000), 0);
	srv_stop(&s);
	/* A closed server: calls fail with -ESHUTDOWN, new clients are refused. */
	ck_assert_int_eq(call_v(c[0], 4, 5000), -ESHUTDOWN);
	ck_assert_int_eq(call_v(c[2], 5, 5000), -ESHUTDOWN);
	ck_assert_int_eq(smem_service_connect(name, NULL, &c[1]), -ECONNREFUSED);
	smem_service_disconnect(c[0]);
	smem_service_disconnect(c[2]);
}
END_TEST

/* ---- many clients ------------------------------------------------------------------------- */

#define MANY 8
#define MANY_CALLS 300

static int many_child(void *arg)
{
	const char *name = arg;
	struct smem_service_client *c;
	int client = -1;
	uint32_t i;

	if (smem_service_connect(name, NULL, &c))
		return 1;
	for (i = 1; i <= MANY_CALLS; i++) {
		uint32_t v = (uint32_t)getpid() * 1000u + i, *resp = NULL;
		size_t len = 0;

		if (smem_service_call(c, &v, sizeof(v), (void **)&resp, &len, 10000) || len != 8 ||
		    resp[1] != v)
			return 2;
		/* The server sees one client per channel, the same for every call. */
		if (client < 0)
			client = (int)resp[0];
		if (resp[0] != (uint32_t)client)
			return 3;
		smem_rpc_free_response(resp);
	}
	smem_service_disconnect(c);
	return 0;
}

START_TEST(service_many_client_processes_each_get_their_own_answers)
{
	pid_t pids[MANY];
	struct srv s;
	int i;
	T_NAME(name, "svc");

	srv_create(&s, name, MANY);
	for (i = 0; i < MANY; i++)
		pids[i] = t_fork(many_child, name);
	srv_run(&s);	/* after the forks (see srv_create); the calls wait in their rings */
	for (i = 0; i < MANY; i++)
		ck_assert_int_eq(t_wait(pids[i]), 0);
	wait_clients(&s, 0);
	pthread_mutex_lock(&log_lock);
	ck_assert_uint_eq(nlog, 1024);	/* 2400 requests ran; the log holds the first 1024 */
	pthread_mutex_unlock(&log_lock);
	srv_stop(&s);
}
END_TEST

/* ---- fairness ----------------------------------------------------------------------------- */

START_TEST(service_a_flooding_client_cannot_starve_a_quiet_one)
{
	struct smem_service_opts o = { .handler = h_echo, .max_clients = 4 };
	struct smem_service_opts co = { .node_count = 64, .node_size = 256 };
	struct smem_rpc_call *ca[40], *cb[4];
	struct smem_service_client *a, *b;
	struct smem_service *svc;
	int i, handled = 0, last_b = -1, a_slot = -1, b_slot = -1;
	T_NAME(name, "svc");

	ck_assert_int_eq(smem_service_create(name, &o, &svc), 0);
	ck_assert_int_eq(smem_service_connect(name, &co, &a), 0);
	ck_assert_int_eq(smem_service_connect(name, &co, &b), 0);
	/* A floods first: 40 requests in its ring before B's 4, nothing served yet. */
	for (i = 0; i < 40; i++) {
		uint32_t v = 1000 + (uint32_t)i;

		ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(a), &v, 4, 10000, &ca[i]),
				 0);
	}
	for (i = 0; i < 4; i++) {
		uint32_t v = 2000 + (uint32_t)i;

		ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(b), &v, 4, 10000, &cb[i]),
				 0);
	}
	nlog = 0;
	while (handled < 44) {
		int r = smem_service_serve(svc, 1000);

		ck_assert_int_gt(r, 0);
		handled += r;
	}
	ck_assert_int_eq(smem_rpc_wait(ca, 40, SMEM_RPC_WAIT_ALL, 5000), 40);
	ck_assert_int_eq(smem_rpc_wait(cb, 4, SMEM_RPC_WAIT_ALL, 5000), 4);
	for (i = 0; i < 40; i++) {
		uint32_t *resp;
		size_t len;

		ck_assert_int_eq(smem_rpc_call_result(ca[i], (void **)&resp, &len), 0);
		a_slot = (int)resp[0];
		smem_rpc_free_response(resp);
		smem_rpc_call_free(ca[i]);
	}
	for (i = 0; i < 4; i++) {
		uint32_t *resp;
		size_t len;

		ck_assert_int_eq(smem_rpc_call_result(cb[i], (void **)&resp, &len), 0);
		b_slot = (int)resp[0];
		smem_rpc_free_response(resp);
		smem_rpc_call_free(cb[i]);
	}
	ck_assert_int_ne(a_slot, b_slot);
	ck_assert_uint_eq(nlog, 44);
	for (i = 0; i < 44; i++)
		if (req_log[i] == b_slot)
			last_b = i;
	/*
	 * B's four ran within the first round: after at most one fair share of A's. Served in
	 * arrival order, they would have come after all of A's 40 (positions 40..43).
	 */
	ck_assert_int_ge(last_b, 3);
	ck_assert_int_lt(last_b, (int)SMEM_SERVICE_FAIR_SHARE + 4);
	smem_service_disconnect(a);
	smem_service_disconnect(b);
	smem_service_close(svc);
}
END_TEST

/* ---- kill -9 of clients ------------------------------------------------------------------- */

enum {
	STAGE_CLAIMED = 1,	/* slot claimed, no rings yet (connect hook 1) */
	STAGE_RINGS = 2,	/* rings made, slot not published (connect hook 2) */
	STAGE_IDLE = 3,		/* connected and attached, no call */
	STAGE_HANDLER = 4,	/* its request's handler is running */
	STAGE_QUEUED = 5,	/* a request in its handler, 9 more queued behind it */
};

struct kill_arg {
	const char *name;
	int stage;
	int pipe_w;
};

static struct kill_arg *hook_arg;

static void stop_here(void)
{
	char b = 1;

	if (write(hook_arg->pipe_w, &b, 1) != 1)
		_exit(9);
	for (;;)
		pause();
}

static void kill_hook(int stage)
{
	if (stage == hook_arg->stage)
		stop_here();
}

static int kill_child(void *a)
{
	struct kill_arg *k = a;
	struct smem_service_client *c;
	struct smem_rpc_call *calls[10];
	uint32_t v;
	int i;

	hook_arg = k;
	smem__svc_connect_hook = kill_hook;
	if (smem_service_connect(k->name, NULL, &c))
		return 1;
	if (call_v(c, 7, 10000))
		return 2;
	if (k->stage == STAGE_IDLE)
		stop_here();
	if (k->stage == STAGE_HANDLER) {
		v = 0xdead;
		if (smem_rpc_call_async(smem_service_channel(c), &v, 4, 10000, &calls[0]))
			return 3;
		stop_here();
	}
	/* The first holds the server's handler; the other 9 wait behind it, unserved (they fit
	 * the ring's 16 nodes: nobody reads it while the handler holds). */
	for (i = 0; i < 10; i++) {
		v = i ? (uint32_t)i : 0xdead;
		if (smem_rpc_call_async(smem_service_channel(c), &v, 4, 10000, &calls[i]))
			return 4;
	}
	stop_here();
	return 0;
}

static void kill_at(int stage)
{
	struct smem_service_client *healthy, *fresh;
	struct kill_arg k;
	long long t0;
	struct srv s;
	int p[2], rc;
	pid_t pid;
	char b;
	T_NAME(name, "svc");

	/* Two slots: the healthy client's, and the victim's (a leak would refuse the fresh one). */
	srv_create(&s, name, 2);
	ck_assert_int_eq(smem_service_connect(name, NULL, &healthy), 0);
	ck_assert_int_eq(pipe(p), 0);
	k.name = name;
	k.stage = stage;
	k.pipe_w = p[1];
	if (stage == STAGE_HANDLER || stage == STAGE_QUEUED)
		atomic_store(&hold_handler, 1);
	atomic_store(&in_handler, 0);
	pid = t_fork(kill_child, &k);
	close(p[1]);	/* a child that fails before its stage ends the read below */
	srv_run(&s);	/* after the fork (see srv_create) */
	ck_assert_int_eq(call_v(healthy, 1, 5000), 0);
	ck_assert_int_eq(read(p[0], &b, 1), 1);
	if (stage == STAGE_HANDLER || stage == STAGE_QUEUED) {
		t0 = t_now_ms();
		while (!atomic_load(&in_handler) && t_now_ms() - t0 < 5000)
			usleep(1000);
		ck_assert_int_eq(atomic_load(&in_handler), 1);
	}
	t_kill9(pid);
	atomic_store(&hold_handler, 0);	/* its reply goes to a dead client */
	/* Nothing else failed: the healthy client goes on, the victim's slot comes back. */
	ck_assert_int_eq(call_v(healthy, 2, 5000), 0);
	wait_clients(&s, 1);
	t0 = t_now_ms();
	while ((rc = smem_service_connect(name, NULL, &fresh)) == -EUSERS &&
	       t_now_ms() - t0 < 5000)
		usleep(5000);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(call_v(fresh, 3, 5000), 0);
	ck_assert_int_eq(call_v(healthy, 4, 5000), 0);
	/*
	 * The last channel closed on a thread releases that thread's wait resources (io_uring,
	 * schedstat fd): stop the server thread first, so that it is this one (fd-leak check).
	 */
	srv_halt(&s);
	smem_service_disconnect(fresh);
	smem_service_disconnect(healthy);
	smem_service_close(s.svc);
	close(p[0]);
}

START_TEST(service_client_killed_with_a_claimed_slot_frees_it)
{
	kill_at(STAGE_CLAIMED);
}
END_TEST

START_TEST(service_client_killed_with_unpublished_rings_frees_its_slot)
{
	kill_at(STAGE_RINGS);
}
END_TEST

START_TEST(service_client_killed_while_idle_frees_its_channel)
{
	kill_at(STAGE_IDLE);
}
END_TEST

START_TEST(service_client_killed_during_its_handler_fails_nothing_else)
{
	kill_at(STAGE_HANDLER);
}
END_TEST

START_TEST(service_client_killed_with_queued_requests_fails_nothing_else)
{
	kill_at(STAGE_QUEUED);
}
END_TEST

/* ---- hostile slot tables ------------------------------------------------------------------ */

START_TEST(service_scribbled_slot_gives_eproto_to_that_client_only)
{
	struct smem_service_opts o = { .handler = h_echo, .max_clients = 8 };
	struct smem_service_client *a, *b, *c;
	struct smem__svc_map m;
	struct smem_region *reg;
	struct smem_service *svc;
	uint64_t seed = 42;
	uint32_t nslots, i;
	T_NAME(name, "svc");

	ck_assert_int_eq(smem_service_create(name, &o, &svc), 0);
	ck_assert_int_eq(smem_service_connect(name, NULL, &a), 0);
	ck_assert_int_eq(smem_service_serve(svc, 0), 0);	/* attaches a */
	ck_assert_int_eq(smem_service_clients(svc), 1);
	ck_assert_int_eq(smem_service_connect(name, NULL, &b), 0);
	/* Another process's view of the table, through which we scribble. */
	ck_assert_int_eq(smem__region_open(name, SMEM_KIND_SERVICE, NULL, &reg), 0);
	ck_assert_int_eq(smem__svc_map(reg->obj, reg->obj_size, &m), 0);
	nslots = m.nslots;
	/* b's channel names another master: the server refuses b with -EPROTO. */
	atomic_store(&m.slots[smem_service_channel(b)->svc_slot].ctl.end[0].live_id, 12345u);
	ck_assert_int_eq(smem_service_serve(svc, 0), 0);
	ck_assert_int_eq(smem_service_clients(svc), 1);
	ck_assert_int_eq(call_v(b, 1, 5000), -EPROTO);
	/* a is untouched: its calls are served. */
	{
		uint32_t v = 5, *resp;
		struct smem_rpc_call *call;
		size_t len;

		ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(a), &v, 4, 5000, &call), 0);
		ck_assert_int_eq(smem_service_serve(svc, 1000), 1);
		ck_assert_int_eq(smem_rpc_wait(&call, 1, SMEM_RPC_WAIT_ANY, 5000), 1);
		ck_assert_int_eq(smem_rpc_call_result(call, (void **)&resp, &len), 0);
		ck_assert_uint_eq(resp[1], 5);
		smem_rpc_free_response(resp);
		smem_rpc_call_free(call);
	}
	/* Garbage over every slot but a's: the server survives every round and serves a. */
	for (i = 0; i < nslots; i++) {
		uint64_t *w = (uint64_t *)&m.slots[i];
		unsigned j;

		if ((int)i == smem_service_channel(a)->svc_slot)
			continue;
		for (j = 0; j < sizeof(m.slots[i]) / 8; j++)
			w[j] = t_rng_next(&seed);
		atomic_store(&m.slots[i].state, (uint32_t)(t_rng_next(&seed) % 6));
	}
	atomic_fetch_add(&m.hdr->joins, 1);	/* make the server sweep the garbage */
	for (i = 0; i < 5; i++) {
		uint32_t v = 100 + i, *resp;
		struct smem_rpc_call *call;
		size_t len;

		ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(a), &v, 4, 5000, &call), 0);
		ck_assert_int_ge(smem_service_serve(svc, 1000), 1);
		ck_assert_int_eq(smem_rpc_wait(&call, 1, SMEM_RPC_WAIT_ANY, 5000), 1);
		ck_assert_int_eq(smem_rpc_call_result(call, (void **)&resp, &len), 0);
		ck_assert_uint_eq(resp[1], v);
		smem_rpc_free_response(resp);
		smem_rpc_call_free(call);
	}
	/* A header claiming more slots than the region holds: a new client refuses it. */
	m.hdr->nslots = 100000;
	ck_assert_int_eq(smem_service_connect(name, NULL, &c), -EPROTO);
	m.hdr->nslots = nslots;
	smem_service_disconnect(b);
	smem_service_disconnect(a);
	smem_service_close(svc);
	smem_region_close(reg);
}
END_TEST

/* ---- a server in an event loop ------------------------------------------------------------ */

/* Arm, wait on epoll up to @ms, serve once: requests handled, or -1 when the fd stayed quiet. */
static int poll_round(struct smem_service_poll *p, struct smem_service *svc, int ep, int ms)
{
	struct epoll_event ev;
	int n, rc = smem_service_poll_arm(p);

	ck_assert_int_ge(rc, 0);
	if (rc == 0) {
		do	/* io_uring's task work may interrupt the wait: not an event */
			n = epoll_wait(ep, &ev, 1, ms);
		while (n < 0 && errno == EINTR);
		if (n == 0)
			return -1;
	}
	rc = smem_service_serve(svc, 0);
	ck_assert_int_ge(rc, 0);
	return rc;
}

START_TEST(service_poller_fd_wakes_an_event_loop_for_each_client_and_stays_quiet_idle)
{
	struct smem_service_opts o = { .handler = h_echo, .max_clients = 4 };
	struct epoll_event ev = { .events = EPOLLIN };
	struct smem_service_client *a, *b;
	struct smem_service_poll *p;
	struct smem_service *svc;
	struct smem_rpc_call *ca, *cb;
	int ep, i, handled, rc;
	uint32_t va = 1, vb = 2;
	T_NAME(name, "svc");

	ck_assert_int_eq(smem_service_create(name, &o, &svc), 0);
	ck_assert_int_eq(smem_service_poll_open(svc, &p), 0);
	ck_assert_int_ge(smem_service_poll_fd(p), 0);
	ck_assert_int_eq(smem_service_poll_open(NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_service_poll_arm(NULL), -EINVAL);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(ep, 0);
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, smem_service_poll_fd(p), &ev), 0);
	/* The first arm says "look"; then, with nobody there, the fd stays quiet. */
	ck_assert_int_eq(smem_service_poll_arm(p), 1);
	ck_assert_int_eq(smem_service_serve(svc, 0), 0);
	ck_assert_int_eq(poll_round(p, svc, ep, 100), -1);
	/* Two clients connect and call: the loop wakes, attaches them and serves both. */
	ck_assert_int_eq(smem_service_connect(name, NULL, &a), 0);
	ck_assert_int_eq(smem_service_connect(name, NULL, &b), 0);
	ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(a), &va, 4, 5000, &ca), 0);
	ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(b), &vb, 4, 5000, &cb), 0);
	for (i = 0, handled = 0; i < 50 && handled < 2; i++)
		if ((rc = poll_round(p, svc, ep, 2000)) > 0)
			handled += rc;
	ck_assert_int_eq(handled, 2);
	ck_assert_int_eq(smem_service_clients(svc), 2);
	ck_assert_int_eq(smem_rpc_wait(&ca, 1, SMEM_RPC_WAIT_ALL, 5000), 1);
	ck_assert_int_eq(smem_rpc_wait(&cb, 1, SMEM_RPC_WAIT_ALL, 5000), 1);
	ck_assert_int_eq(smem_rpc_call_result(ca, NULL, NULL), 0);
	ck_assert_int_eq(smem_rpc_call_result(cb, NULL, NULL), 0);
	smem_rpc_call_free(ca);
	smem_rpc_call_free(cb);
	/* Drain what is left to look at (the calls' bells), then idle again: quiet. */
	for (i = 0; i < 10 && poll_round(p, svc, ep, 100) >= 0; i++)
		;
	ck_assert_int_lt(i, 10);
	/* A client leaving wakes the loop, which frees its slot. */
	smem_service_disconnect(b);
	for (i = 0; i < 50 && smem_service_clients(svc) != 1; i++)
		poll_round(p, svc, ep, 2000);
	ck_assert_int_eq(smem_service_clients(svc), 1);
	smem_service_poll_close(p);
	smem_service_poll_close(NULL);
	close(ep);
	smem_service_disconnect(a);
	smem_service_close(svc);
}
END_TEST

/* ---- the server's death ------------------------------------------------------------------- */

static int server_child(void *arg)
{
	struct smem_service_opts o = { .handler = h_echo };
	struct smem_service *svc;
	const char *name = arg;

	if (smem_service_create(name, &o, &svc))
		return 1;
	for (;;)
		smem_service_serve(svc, -1);
}

START_TEST(service_server_killed_fails_waiting_and_new_calls_with_econnreset)
{
	struct smem_service_client *c;
	struct smem_rpc_call *call;
	long long t0;
	uint32_t v = 0xdead;
	pid_t pid;
	int rc;
	T_NAME(name, "svc");

	atomic_store(&hold_handler, 1);	/* the child's handler holds 0xdead forever */
	pid = t_fork(server_child, name);
	atomic_store(&hold_handler, 0);
	t0 = t_now_ms();
	while ((rc = smem_service_connect(name, NULL, &c)) != 0 && t_now_ms() - t0 < 5000)
		usleep(2000);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(call_v(c, 1, 5000), 0);
	/* A call parked in the server's handler forever, then the server dies. */
	ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(c), &v, 4, -1, &call), 0);
	usleep(20000);
	t_kill9(pid);
	t0 = t_now_ms();
	ck_assert_int_eq(smem_rpc_wait(&call, 1, SMEM_RPC_WAIT_ANY, 10000), 1);
	ck_assert_int_lt(t_now_ms() - t0, 5000);	/* an error, not a hang */
	ck_assert_int_eq(smem_rpc_call_result(call, NULL, NULL), -ECONNRESET);
	smem_rpc_call_free(call);
	ck_assert_int_eq(call_v(c, 2, -1), -ECONNRESET);
	/* A dead server's name refuses new clients while somebody holds it. */
	{
		struct smem_service_client *c2 = NULL;

		ck_assert_int_eq(smem_service_connect(name, NULL, &c2), -ECONNREFUSED);
	}
	smem_service_disconnect(c);
}
END_TEST

static Suite *service_suite(void)
{
	Suite *s = suite_create("service");
	TCase *tc = t_ring_tcase(s, "api", 30);

	tcase_add_test(tc, service_layout_sizes_are_fixed_and_bad_input_is_refused);
	tcase_add_test(tc, service_clients_beyond_max_get_eusers_and_a_closed_server_econnrefused);
	tcase_add_test(tc, service_a_flooding_client_cannot_starve_a_quiet_one);
	tcase_add_test(tc, service_scribbled_slot_gives_eproto_to_that_client_only);
	tcase_add_test(tc, service_poller_fd_wakes_an_event_loop_for_each_client_and_stays_quiet_idle);
	tc = t_ring_tcase(s, "processes", 60);
	add_fork_test(tc, service_many_client_processes_each_get_their_own_answers);
	add_fork_test(tc, service_client_killed_with_a_claimed_slot_frees_it);
	add_fork_test(tc, service_client_killed_with_unpublished_rings_frees_its_slot);
	add_fork_test(tc, service_client_killed_while_idle_frees_its_channel);
	add_fork_test(tc, service_client_killed_during_its_handler_fails_nothing_else);
	add_fork_test(tc, service_client_killed_with_queued_requests_fails_nothing_else);
	add_fork_test(tc, service_server_killed_fails_waiting_and_new_calls_with_econnreset);
	return s;
}

T_MAIN(service_suite)
