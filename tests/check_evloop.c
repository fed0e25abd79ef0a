/* SPDX-License-Identifier: MIT */
/*
 * Event loops without a thread per handle: the ring's pollers (smem_ring_poll_*), the RPC
 * channel's (smem_rpc_poll_*) and the topic subscriber's (smem_topic_poll_*) driven by epoll,
 * with peers in other processes; the io_uring path and the helper-thread fallback
 * (SMEM_NO_URING=1); and the cost promise: no system call by a writer (publisher) for a
 * poller that is not armed.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring_int.h"
#include "topic_int.h"
#include "wait.h"
#include "util/ringutil.h"
#include "util/rpcutil.h"
#include "util/testutil.h"

static int want_threaded = -1;	/* the fixture's backend: 1 fallback, 0 io_uring if present */

static void uring_setup(void)
{
	unsetenv("SMEM_NO_URING");
	want_threaded = smem__wait_backend() == SMEM__WAIT_URING ? 0 : 1;
	if (want_threaded)
		fprintf(stderr, "note: io_uring futex waits unavailable: pollers use a thread\n");
	t_fds_setup();
}

static void fallback_setup(void)
{
	setenv("SMEM_NO_URING", "1", 1);
	want_threaded = 1;
	t_fds_setup();
}

/* An epoll set watching @fd for reading. */
static int ep_new(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_int_ge(ep, 0);
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	return ep;
}

static int ep_wait(int ep, int ms)
{
	struct epoll_event ev;
	int n;

	do
		n = epoll_wait(ep, &ev, 1, ms);
	while (n < 0 && errno == EINTR);
	return n;
}

static struct smem_ring_poll *poller(struct smem_ring *r, unsigned what)
{
	struct smem_ring_poll *p = NULL;

	ck_assert_int_eq(smem_ring_poll_open(r, what, &p), 0);
	ck_assert_int_eq(smem_ring_poll_threaded(p), want_threaded);
	ck_assert_int_ge(smem_ring_poll_fd(p), 0);
	return p;
}

/* ---- rings ------------------------------------------------------------------------------ */

struct wr_arg {
	const char *name;
	unsigned count;
	int go;		/* read end: the child starts when a byte arrives (-1: at once) */
};

/* Open the ring and write count messages (each its sequence number), blocking. */
static int writer_child(void *p)
{
	struct wr_arg *a = p;
	struct smem_ring *w = NULL;
	unsigned i;
	char c;

	if (a->go >= 0 && read(a->go, &c, 1) != 1)
		return 9;
	if (smem_ring_open(a->name, NULL, &w))
		return 10;
	for (i = 0; i < a->count; i++)
		if (smem_ring_write(w, &i, sizeof(i), 5000))
			return 11;
	smem_ring_close(w);
	return 0;
}

START_TEST(evloop_ring_reader_fd_readable_after_write_from_another_process)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16);
	struct smem_ring_poll *p = poller(r, SMEM_RING_POLL_READ);
	struct wr_arg a = { .name = name, .count = 1 };
	int ep = ep_new(smem_ring_poll_fd(p)), go[2];
	unsigned v;
	pid_t pid;

	ck_assert_int_eq(pipe(go), 0);
	a.go = go[0];
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);
	ck_assert_uint_eq(atomic_load(&smem__ring_shm(r)->data_waiters), 1);
	pid = t_fork(writer_child, &a);
	ck_assert_int_eq(ep_wait(ep, 50), 0);	/* nothing written yet */
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_int_eq(smem_ring_read(r, &v, sizeof(v), 0), (ssize_t)sizeof(v));
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(smem_ring_read(r, &v, sizeof(v), 0), -ETIMEDOUT);
	/* drained and re-armed: not readable, and still announced */
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);
	ck_assert_int_eq(ep_wait(ep, 50), 0);
	ck_assert_uint_eq(atomic_load(&smem__ring_shm(r)->data_waiters), 1);
	/* something to read: arming says so at once and arms nothing */
	ck_assert_int_eq(smem_ring_write(r, "x", 1, 0), 0);
	ck_assert_int_eq(smem_ring_poll_arm(p), 1);
	ck_assert_uint_eq(atomic_load(&smem__ring_shm(r)->data_waiters), 0);
	ck_assert_int_eq(ep_wait(ep, 0), 0);
	smem_ring_poll_disarm(p);
	ck_assert_uint_eq(atomic_load(&smem__ring_shm(r)->data_waiters), 0);
	close(go[0]);
	close(go[1]);
	close(ep);
	smem_ring_poll_close(p);
	smem_ring_close(r);
}
END_TEST

START_TEST(evloop_ring_reader_loses_no_wakeup_across_10k_messages)
{
	const unsigned count = 10000;
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 8, 16);
	struct smem_ring_poll *p = poller(r, SMEM_RING_POLL_READ);
	struct wr_arg a = { .name = name, .count = count, .go = -1 };
	int ep = ep_new(smem_ring_poll_fd(p)), rc;
	unsigned next = 0, v, wakeups = 0;
	pid_t pid;

	smem_ring_set_spin(r, 0);
	pid = t_fork(writer_child, &a);
	while (next < count) {
		rc = smem_ring_poll_arm(p);
		ck_assert_int_ge(rc, 0);
		if (rc == 0) {
			/* a lost wakeup would leave us here with the writer blocked on a full ring */
			ck_assert_msg(ep_wait(ep, 5000) == 1, "no wakeup after message %u", next);
			wakeups++;
		}
		smem_ring_poll_disarm(p);
		while (smem_ring_read(r, &v, sizeof(v), 0) == (ssize_t)sizeof(v)) {
			ck_assert_uint_eq(v, next);
			next++;
		}
	}
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_uint_ge(wakeups, 1);
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);	/* empty again */
	ck_assert_int_eq(ep_wait(ep, 20), 0);
	close(ep);
	smem_ring_poll_close(p);
	ck_assert_uint_eq(atomic_load(&smem__ring_shm(r)->data_waiters), 0);
	smem_ring_close(r);
}
END_TEST

static int read_one_child(void *p)
{
	struct smem_ring *o = NULL;
	char b[16];

	usleep(50000);
	if (smem_ring_open(p, NULL, &o))
		return 10;
	if (smem_ring_read(o, b, sizeof(b), 1000) != 1)
		return 11;
	smem_ring_close(o);
	return 0;
}

START_TEST(evloop_ring_writer_fd_readable_when_a_reader_makes_room)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 16);
	struct smem_ring_poll *p = poller(r, SMEM_RING_POLL_WRITE);
	int ep = ep_new(smem_ring_poll_fd(p));
	pid_t pid;

	ck_assert_int_eq(smem_ring_poll_arm(p), 1);	/* room now */
	ck_assert_int_eq(smem_ring_write(r, "a", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "b", 1, 0), 0);
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);	/* full */
	ck_assert_uint_eq(atomic_load(&smem__ring_shm(r)->room_waiters), 1);
	pid = t_fork(read_one_child, name);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_int_eq(smem_ring_write(r, "c", 1, 0), 0);
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);	/* full again: not readable */
	ck_assert_int_eq(ep_wait(ep, 50), 0);
	close(ep);
	smem_ring_poll_close(p);
	ck_assert_uint_eq(atomic_load(&smem__ring_shm(r)->room_waiters), 0);
	smem_ring_close(r);
}
END_TEST

START_TEST(evloop_ring_writer_makes_no_futex_wake_while_nobody_polls)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 256, 16), *w = t_ring_open(name);
	struct smem_ring_poll *p = poller(r, SMEM_RING_POLL_READ);
	int ep = ep_new(smem_ring_poll_fd(p));
	unsigned i;
	char b[16];

	/* a poller that exists but is not armed costs the writer nothing */
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(smem_ring_write(w, "m", 1, 0), 0);
	ck_assert_uint_eq(t_ring_stats(w).wakes, 0);
	while (smem_ring_read(r, b, sizeof(b), 0) == 1)
		;
	/* armed: the first commit wakes it (one futex wake) and the fd fires */
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);
	ck_assert_int_eq(smem_ring_write(w, "m", 1, 0), 0);
	ck_assert_uint_eq(t_ring_stats(w).wakes, 1);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	/* disarmed while it drains: the writer is back to no system call per message */
	smem_ring_poll_disarm(p);
	ck_assert_int_eq(ep_wait(ep, 0), 0);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(smem_ring_write(w, "m", 1, 0), 0);
	ck_assert_uint_eq(t_ring_stats(w).wakes, 1);
	close(ep);
	smem_ring_poll_close(p);
	smem_ring_close(w);
	smem_ring_close(r);
}
END_TEST

START_TEST(evloop_ring_owner_close_makes_armed_fd_readable)
{
	char name[128], b[16];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16), *o = t_ring_open(name);
	struct smem_ring_poll *p = poller(o, SMEM_RING_POLL_READ);
	int ep = ep_new(smem_ring_poll_fd(p));

	ck_assert_int_eq(smem_ring_poll_arm(p), 0);
	smem_ring_close(r);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	ck_assert_int_eq(smem_ring_poll_arm(p), 1);
	ck_assert_int_eq(smem_ring_read(o, b, sizeof(b), 0), -ESHUTDOWN);
	close(ep);
	smem_ring_poll_close(p);
	smem_ring_close(o);
}
END_TEST

START_TEST(evloop_ring_claim_held_by_another_arms_a_recheck)
{
	char name[128], b[16];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16), *w = t_ring_open(name);
	struct smem_ring_poll *p = poller(r, SMEM_RING_POLL_READ);
	int ep = ep_new(smem_ring_poll_fd(p)), i;
	struct smem_ring_slot s;

	/* a message being written: nobody would wake us if its writer died, so we re-check */
	ck_assert_int_eq(smem_ring_reserve_write(w, &s, 0), 0);
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);
	ck_assert_int_eq(ep_wait(ep, 2000), 1);
	ck_assert_int_eq(smem_ring_read(r, b, sizeof(b), 0), -ETIMEDOUT);
	/* re-arming keeps re-checking while the claim is held; disarm cancels the timer */
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(smem_ring_poll_arm(p), 0);
		ck_assert_int_eq(ep_wait(ep, 2000), 1);
	}
	ck_assert_int_eq(smem_ring_poll_arm(p), 0);
	smem_ring_poll_disarm(p);
	ck_assert_int_eq(ep_wait(ep, 50), 0);
	memcpy(s.data, "m", 1);
	ck_assert_int_eq(smem_ring_commit(w, &s, 1), 0);
	ck_assert_int_eq(smem_ring_poll_arm(p), 1);
	ck_assert_int_eq(smem_ring_read(r, b, sizeof(b), 0), 1);
	close(ep);
	smem_ring_poll_close(p);
	smem_ring_close(w);
	smem_ring_close(r);
}
END_TEST

START_TEST(evloop_ring_poll_rejects_bad_arguments)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16);
	struct smem_ring_poll *p = (void *)&name;

	ck_assert_int_eq(smem_ring_poll_open(NULL, SMEM_RING_POLL_READ, &p), -EINVAL);
	ck_assert_int_eq(smem_ring_poll_open(r, 2, &p), -EINVAL);
	ck_assert_int_eq(smem_ring_poll_open(r, SMEM_RING_POLL_READ, NULL), -EINVAL);
	ck_assert_ptr_eq(p, (void *)&name);	/* untouched on failure */
	ck_assert_int_eq(smem_ring_poll_fd(NULL), -EINVAL);
	ck_assert_int_eq(smem_ring_poll_arm(NULL), -EINVAL);
	smem_ring_poll_disarm(NULL);
	smem_ring_poll_close(NULL);
	smem_ring_close(r);
}
END_TEST


/* ---- RPC channels ----------------------------------------------------------------------- */

#define RPC_CALLS	300

struct cl_arg {
	const char *name;
	unsigned calls;
};

/* Open as slave and make calls, checking each answer (the product of two bytes). */
static int client_child(void *p)
{
	struct cl_arg *a = p;
	struct smem_rpc_opts o = { .spin_ns = SMEM_RPC_NO_SPIN };
	struct smem_rpc *ch = NULL;
	unsigned i;

	if (smem_rpc_open(a->name, &o, &ch))
		return 10;
	for (i = 0; i < a->calls; i++) {
		uint8_t req[2] = { (uint8_t)i, 3 }, *resp = NULL;
		size_t len = 0;

		if (smem_rpc_call(ch, req, 2, (void **)&resp, &len, 5000))
			return 11;
		if (len != 1 || resp[0] != (uint8_t)(i * 3))
			return 12;
		smem_rpc_free_response(resp);
	}
	smem_rpc_close(ch);
	return 0;
}

/* A peer in a child: it opens @name, says so on @ready, and serves until @stop closes. */
struct peer_arg {
	char name[128];
	int ready[2], stop[2];
	smem_rpc_handler_fn handler;
	uint32_t service;
};

static int peer_child(void *p)
{
	struct peer_arg *a = p;
	struct smem_rpc_opts o = { .handler = a->handler, .service = a->service };
	struct smem_rpc *ch = NULL;
	char c;

	close(a->stop[1]);
	if (smem_rpc_open(a->name, &o, &ch))
		return 10;
	if (write(a->ready[1], "r", 1) != 1)
		return 11;
	while (read(a->stop[0], &c, 1) > 0)
		;
	smem_rpc_close(ch);
	return 0;
}

/* Start the peer (the master: it opens first) and wait until it has opened. */
static pid_t peer_start(struct peer_arg *a, const char *prefix)
{
	char c;
	pid_t pid;

	t_name(a->name, sizeof(a->name), prefix);
	ck_assert_int_eq(pipe(a->ready), 0);
	ck_assert_int_eq(pipe(a->stop), 0);
	pid = t_fork(peer_child, a);
	close(a->stop[0]);
	ck_assert_int_eq(read(a->ready[0], &c, 1), 1);
	close(a->ready[0]);
	close(a->ready[1]);
	return pid;
}

static struct smem_rpc_poll *rpc_poller(struct smem_rpc *ch)
{
	struct smem_rpc_poll *p = NULL;

	ck_assert_int_eq(smem_rpc_poll_open(ch, &p), 0);
	ck_assert_int_eq(smem_rpc_poll_threaded(p), want_threaded);
	ck_assert_int_ge(smem_rpc_poll_fd(p), 0);
	return p;
}

START_TEST(evloop_rpc_epoll_server_answers_calls_from_another_process)
{
	struct smem_rpc_opts o = {
		.handler = t_rpc_h_mul, .service = SMEM_RPC_SERVICE_DISPATCH,
		.spin_ns = SMEM_RPC_NO_SPIN,
	};
	char name[128];
	struct cl_arg a = { .name = t_name(name, sizeof(name), "evrpc"), .calls = RPC_CALLS };
	struct smem_rpc *ch = t_rpc_open_opts(name, &o);
	struct smem_rpc_poll *p = rpc_poller(ch);
	int ep = ep_new(smem_rpc_poll_fd(p)), rc, handled = 0;
	unsigned fires = 0;
	pid_t pid;

	ck_assert_int_eq(smem_rpc_poll_arm(p), 1);	/* the first arm: look first */
	ck_assert_int_eq(smem_rpc_dispatch(ch, 0), 0);
	ck_assert_int_eq(smem_rpc_poll_arm(p), 0);	/* nothing to do: armed */
	ck_assert_int_eq(ep_wait(ep, 50), 0);
	pid = t_fork(client_child, &a);
	while (handled < RPC_CALLS) {
		rc = smem_rpc_poll_arm(p);
		ck_assert_int_ge(rc, 0);
		if (rc == 0) {
			ck_assert_msg(ep_wait(ep, 5000) == 1, "no wakeup after %d calls", handled);
			fires++;
		}
		smem_rpc_poll_disarm(p);
		rc = smem_rpc_dispatch(ch, 0);
		ck_assert_int_ge(rc, 0);
		handled += rc;
	}
	ck_assert_int_eq(handled, RPC_CALLS);
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_uint_ge(fires, 1);
	close(ep);
	smem_rpc_poll_close(p);
	smem_rpc_close(ch);
}
END_TEST

START_TEST(evloop_rpc_epoll_client_sees_async_completions)
{
	struct peer_arg a = { .handler = t_rpc_h_mul };	/* served by its service thread */
	struct smem_rpc_opts o = { .spin_ns = SMEM_RPC_NO_SPIN };
	struct smem_rpc_call *calls[8];
	struct smem_rpc *ch;
	struct smem_rpc_poll *p;
	int ep, rc, done = 0, i;
	pid_t pid = peer_start(&a, "evcl");

	ch = t_rpc_open_opts(a.name, &o);
	ck_assert(!smem_rpc_is_master(ch));
	p = rpc_poller(ch);
	ep = ep_new(smem_rpc_poll_fd(p));
	for (i = 0; i < 8; i++) {
		uint8_t req[2] = { (uint8_t)i, 5 };

		ck_assert_int_eq(smem_rpc_call_async(ch, req, 2, 5000, &calls[i]), 0);
	}
	while (done < 8) {
		rc = smem_rpc_poll_arm(p);
		ck_assert_int_ge(rc, 0);
		if (rc == 0)
			ck_assert_msg(ep_wait(ep, 5000) == 1, "no wakeup after %d completions",
				      done);
		smem_rpc_poll_disarm(p);
		rc = smem_rpc_wait(calls, 8, SMEM_RPC_WAIT_ANY, 0);
		ck_assert(rc > 0 || rc == -ETIMEDOUT);
		for (done = 0, i = 0; i < 8; i++)
			done += smem_rpc_call_done(calls[i]);
	}
	for (i = 0; i < 8; i++) {
		uint8_t *resp = NULL;
		size_t len = 0;

		ck_assert_int_eq(smem_rpc_call_result(calls[i], (void **)&resp, &len), 0);
		ck_assert_uint_eq(len, 1);
		ck_assert_uint_eq(resp[0], (uint8_t)(i * 5));
		smem_rpc_free_response(resp);
		smem_rpc_call_free(calls[i]);
	}
	close(ep);
	smem_rpc_poll_close(p);
	smem_rpc_close(ch);
	close(a.stop[1]);
	ck_assert_int_eq(t_wait(pid), 0);
}
END_TEST

START_TEST(evloop_rpc_armed_fd_fires_when_the_peer_is_killed)
{
	struct smem_rpc_opts o = { .service = SMEM_RPC_SERVICE_DISPATCH };
	struct peer_arg a = { .service = SMEM_RPC_SERVICE_DISPATCH };
	struct smem_rpc *ch;
	struct smem_rpc_poll *p;
	int ep, rc;
	pid_t pid = peer_start(&a, "evkill");

	ch = t_rpc_open_opts(a.name, &o);
	ck_assert(!smem_rpc_is_master(ch));
	p = rpc_poller(ch);
	ep = ep_new(smem_rpc_poll_fd(p));
	do {
		rc = smem_rpc_poll_arm(p);
		if (rc == 1)
			ck_assert_int_ge(smem_rpc_dispatch(ch, 0), 0);
	} while (rc == 1);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(ep_wait(ep, 50), 0);
	t_kill9(pid);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	smem_rpc_poll_disarm(p);
	/* the loop's timeout-0 call now sees the peer gone */
	ck_assert_int_eq(smem_rpc_dispatch(ch, 0), -ECONNRESET);
	close(ep);
	smem_rpc_poll_close(p);
	smem_rpc_close(ch);
	close(a.stop[1]);
}
END_TEST

START_TEST(evloop_rpc_poll_rejects_bad_arguments)
{
	struct smem_rpc_poll *p = (void *)&p;

	ck_assert_int_eq(smem_rpc_poll_open(NULL, &p), -EINVAL);
	ck_assert_ptr_eq(p, (void *)&p);
	ck_assert_int_eq(smem_rpc_poll_fd(NULL), -EINVAL);
	ck_assert_int_eq(smem_rpc_poll_arm(NULL), -EINVAL);
	smem_rpc_poll_disarm(NULL);
	smem_rpc_poll_close(NULL);
}
END_TEST

/* ---- topic subscribers ------------------------------------------------------------------ */

/* A topic of 16-byte samples that other processes may publish to. */
static struct smem_topic_pub *topic_new(char *name, size_t len, uint32_t depth, uint32_t policy)
{
	struct smem_topic_config cfg = {
		.sample_size = 16, .depth = depth, .policy = policy,
		.flags = SMEM_TOPIC_MULTI_PUBLISHER,
	};
	struct smem_topic_pub *p = NULL;

	t_name(name, len, "evtopic");
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), 0);
	return p;
}

static struct smem_topic_sub *topic_sub(const char *name)
{
	struct smem_topic_sub *s = NULL;

	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), 0);
	return s;
}

static struct smem_topic_poll *topic_poller(struct smem_topic_sub *s)
{
	struct smem_topic_poll *p = NULL;

	ck_assert_int_eq(smem_topic_poll_open(s, &p), 0);
	ck_assert_int_eq(smem_topic_poll_threaded(p), want_threaded);
	ck_assert_int_ge(smem_topic_poll_fd(p), 0);
	return p;
}

static void topic_put(struct smem_topic_pub *p, uint32_t v)
{
	struct smem_topic_sample s;

	ck_assert_int_eq(smem_topic_loan(p, &s, 1000), 0);
	memcpy(s.data, &v, sizeof(v));
	ck_assert_int_eq(smem_topic_publish(p, &s, sizeof(v), 1000), 0);
}

/* Receive with timeout 0: the sample's value, or -1 when there is none. */
static int64_t topic_get(struct smem_topic_sub *s)
{
	struct smem_topic_sample v;
	uint32_t x;
	int rc = smem_topic_receive(s, &v, 0);

	if (rc == -ETIMEDOUT)
		return -1;
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(v.len, sizeof(x));
	memcpy(&x, v.view, sizeof(x));
	ck_assert_int_eq(smem_topic_release(s, &v), 0);
	return x;
}

static struct smem_topic_shm *topic_shm(struct smem_topic_sub *s)
{
	return s->t.shm;
}

/* Open a publisher on the topic and publish count samples (each its number), blocking. */
static int publisher_child(void *p)
{
	struct wr_arg *a = p;
	struct smem_topic_pub *w = NULL;
	struct smem_topic_sample s;
	unsigned i;
	char c;

	if (a->go >= 0 && read(a->go, &c, 1) != 1)
		return 9;
	if (smem_topic_open_publisher(a->name, NULL, &w))
		return 10;
	for (i = 0; i < a->count; i++) {
		if (smem_topic_loan(w, &s, 5000))
			return 11;
		memcpy(s.data, &i, sizeof(i));
		if (smem_topic_publish(w, &s, sizeof(i), 5000))
			return 12;
	}
	smem_topic_pub_close(w);
	return 0;
}

START_TEST(evloop_topic_fd_readable_after_publish_from_another_process)
{
	char name[128];
	struct smem_topic_pub *pub = topic_new(name, sizeof(name), 8, SMEM_TOPIC_BLOCK);
	struct smem_topic_sub *s = topic_sub(name);
	struct smem_topic_poll *p = topic_poller(s);
	struct wr_arg a = { .name = name, .count = 1 };
	int ep = ep_new(smem_topic_poll_fd(p)), go[2];
	pid_t pid;

	ck_assert_int_eq(pipe(go), 0);
	a.go = go[0];
	ck_assert_int_eq(smem_topic_poll_arm(p), 0);
	ck_assert_uint_eq(atomic_load(&topic_shm(s)->data_waiters), 1);
	pid = t_fork(publisher_child, &a);
	ck_assert_int_eq(ep_wait(ep, 50), 0);	/* nothing published yet */
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_int_eq(topic_get(s), 0);
	ck_assert_int_eq(topic_get(s), -1);
	/* drained and re-armed: not readable, and still announced */
	ck_assert_int_eq(smem_topic_poll_arm(p), 0);
	ck_assert_int_eq(ep_wait(ep, 50), 0);
	ck_assert_uint_eq(atomic_load(&topic_shm(s)->data_waiters), 1);
	/* a sample there: arming says so at once and arms nothing */
	topic_put(pub, 7);
	ck_assert_int_eq(smem_topic_poll_arm(p), 1);
	ck_assert_uint_eq(atomic_load(&topic_shm(s)->data_waiters), 0);
	ck_assert_int_eq(ep_wait(ep, 0), 0);
	ck_assert_int_eq(topic_get(s), 7);
	smem_topic_poll_disarm(p);
	ck_assert_uint_eq(atomic_load(&topic_shm(s)->data_waiters), 0);
	close(go[0]);
	close(go[1]);
	close(ep);
	smem_topic_poll_close(p);
	smem_topic_sub_close(s);
	smem_topic_pub_close(pub);
}
END_TEST

START_TEST(evloop_topic_subscriber_loses_no_wakeup_across_10k_samples)
{
	const unsigned count = 10000;
	char name[128];
	/* BLOCK with a small depth: a lost wakeup would leave the publisher blocked for good */
	struct smem_topic_pub *pub = topic_new(name, sizeof(name), 8, SMEM_TOPIC_BLOCK);
	struct smem_topic_sub *s = topic_sub(name);
	struct smem_topic_poll *p = topic_poller(s);
	struct wr_arg a = { .name = name, .count = count, .go = -1 };
	int ep = ep_new(smem_topic_poll_fd(p)), rc;
	unsigned next = 0, wakeups = 0;
	int64_t v;
	pid_t pid;

	pid = t_fork(publisher_child, &a);
	while (next < count) {
		rc = smem_topic_poll_arm(p);
		ck_assert_int_ge(rc, 0);
		if (rc == 0) {
			ck_assert_msg(ep_wait(ep, 5000) == 1, "no wakeup after sample %u", next);
			wakeups++;
		}
		smem_topic_poll_disarm(p);
		while ((v = topic_get(s)) >= 0) {
			ck_assert_int_eq(v, next);
			next++;
		}
	}
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_uint_ge(wakeups, 1);
	{
		struct smem_topic_sub_stats st;

		ck_assert_int_eq(smem_topic_sub_stats(s, &st), 0);
		ck_assert_uint_eq(st.lost, 0);
		ck_assert_uint_eq(st.received, count);
	}
	ck_assert_int_eq(smem_topic_poll_arm(p), 0);	/* drained */
	ck_assert_int_eq(ep_wait(ep, 20), 0);
	close(ep);
	smem_topic_poll_close(p);
	ck_assert_uint_eq(atomic_load(&topic_shm(s)->data_waiters), 0);
	smem_topic_sub_close(s);
	smem_topic_pub_close(pub);
}
END_TEST

/*
 * The cost promise, counted: a publisher's futex wake is always preceded by a bump of
 * data_seq (wake_if() in topic.c; only the creator's close bumps it otherwise), so an
 * unchanged data_seq across 100 publishes means no wake, that is no system call.
 */
START_TEST(evloop_topic_publisher_makes_no_futex_wake_while_nobody_polls)
{
	char name[128];
	struct smem_topic_pub *pub = topic_new(name, sizeof(name), 256, SMEM_TOPIC_OVERWRITE);
	struct smem_topic_sub *s = topic_sub(name);
	struct smem_topic_poll *p = topic_poller(s);
	struct smem_topic_shm *shm = topic_shm(s);
	int ep = ep_new(smem_topic_poll_fd(p));
	uint32_t seq0 = atomic_load(&shm->data_seq);
	unsigned i;

	for (i = 0; i < 100; i++)
		topic_put(pub, i);
	ck_assert_uint_eq(atomic_load(&shm->data_seq), seq0);
	while (topic_get(s) >= 0)
		;
	/* armed: the first publish wakes it (one bump, one futex wake) and the fd fires */
	ck_assert_int_eq(smem_topic_poll_arm(p), 0);
	topic_put(pub, 100);
	ck_assert_uint_eq(atomic_load(&shm->data_seq), seq0 + 1);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	/* disarmed while it drains: the publisher is back to no system call per sample */
	smem_topic_poll_disarm(p);
	ck_assert_int_eq(ep_wait(ep, 0), 0);
	for (i = 0; i < 100; i++)
		topic_put(pub, i);
	ck_assert_uint_eq(atomic_load(&shm->data_seq), seq0 + 1);
	ck_assert_uint_eq(atomic_load(&shm->data_waiters), 0);
	close(ep);
	smem_topic_poll_close(p);
	smem_topic_sub_close(s);
	smem_topic_pub_close(pub);
}
END_TEST

START_TEST(evloop_topic_creator_close_makes_armed_fd_readable)
{
	char name[128];
	struct smem_topic_pub *pub = topic_new(name, sizeof(name), 4, SMEM_TOPIC_BLOCK);
	struct smem_topic_sub *s = topic_sub(name);
	struct smem_topic_poll *p = topic_poller(s);
	struct smem_topic_sample v;
	int ep = ep_new(smem_topic_poll_fd(p));

	ck_assert_int_eq(smem_topic_poll_arm(p), 0);
	smem_topic_pub_close(pub);
	ck_assert_int_eq(ep_wait(ep, 5000), 1);
	ck_assert_int_eq(smem_topic_poll_arm(p), 1);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), -ESHUTDOWN);
	close(ep);
	smem_topic_poll_close(p);
	smem_topic_sub_close(s);
}
END_TEST

/*
 * A publisher killed between its commit (the entry) and its store of tail leaves a sample
 * that nobody will wake us for: arming must see it. Staged by hand: a loan committed the
 * way publish does, without the tail store.
 */
START_TEST(evloop_topic_arm_sees_a_commit_whose_tail_was_not_stored)
{
	char name[128];
	struct smem_topic_pub *pub = topic_new(name, sizeof(name), 4, SMEM_TOPIC_BLOCK);
	struct smem_topic_sub *s = topic_sub(name);
	struct smem_topic_poll *p = topic_poller(s);
	struct smem__topic *t = &pub->t;
	struct smem_topic_sample l;
	uint64_t tail = atomic_load(&t->shm->tail);
	uint32_t x = 42;

	ck_assert_int_eq(smem_topic_poll_arm(p), 0);
	smem_topic_poll_disarm(p);
	ck_assert_int_eq(smem_topic_loan(pub, &l, 0), 0);
	memcpy(l.data, &x, sizeof(x));
	atomic_store(&t->buf[l._buf].len, sizeof(x));
	atomic_store(&t->buf[l._buf].state, SMEM_TOPIC_PUB | tail);
	atomic_store(&t->entry[tail % t->g.depth], l._buf);
	ck_assert_int_eq(smem_topic_poll_arm(p), 1);
	ck_assert_int_eq(topic_get(s), 42);
	ck_assert_int_eq(smem_topic_poll_arm(p), 0);
	smem_topic_poll_close(p);
	smem_topic_sub_close(s);
	smem_topic_pub_close(pub);
}
END_TEST

START_TEST(evloop_topic_poll_rejects_bad_arguments)
{
	char name[128];
	struct smem_topic_pub *pub = topic_new(name, sizeof(name), 4, SMEM_TOPIC_BLOCK);
	struct smem_topic_sub *s = topic_sub(name);
	struct smem_topic_poll *p = (void *)&name;

	ck_assert_int_eq(smem_topic_poll_open(NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_topic_poll_open(s, NULL), -EINVAL);
	ck_assert_ptr_eq(p, (void *)&name);	/* untouched on failure */
	ck_assert_int_eq(smem_topic_poll_fd(NULL), -EINVAL);
	ck_assert_int_eq(smem_topic_poll_arm(NULL), -EINVAL);
	ck_assert(!smem_topic_poll_threaded(NULL));
	smem_topic_poll_disarm(NULL);
	smem_topic_poll_close(NULL);
	smem_topic_sub_close(s);
	smem_topic_pub_close(pub);
}
END_TEST

static TCase *add_tcase(Suite *s, const char *name, void (*setup)(void), int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, t_fds_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static void add_ring_tests(TCase *tc)
{
	add_fork_test(tc, evloop_ring_reader_fd_readable_after_write_from_another_process);
	add_fork_test(tc, evloop_ring_reader_loses_no_wakeup_across_10k_messages);
	add_fork_test(tc, evloop_ring_writer_fd_readable_when_a_reader_makes_room);
	tcase_add_test(tc, evloop_ring_writer_makes_no_futex_wake_while_nobody_polls);
	tcase_add_test(tc, evloop_ring_owner_close_makes_armed_fd_readable);
	tcase_add_test(tc, evloop_ring_claim_held_by_another_arms_a_recheck);
	tcase_add_test(tc, evloop_ring_poll_rejects_bad_arguments);
}

static void add_rpc_tests(TCase *tc)
{
	add_fork_test(tc, evloop_rpc_epoll_server_answers_calls_from_another_process);
	add_fork_test(tc, evloop_rpc_epoll_client_sees_async_completions);
	add_fork_test(tc, evloop_rpc_armed_fd_fires_when_the_peer_is_killed);
	tcase_add_test(tc, evloop_rpc_poll_rejects_bad_arguments);
}

static void add_topic_tests(TCase *tc)
{
	add_fork_test(tc, evloop_topic_fd_readable_after_publish_from_another_process);
	add_fork_test(tc, evloop_topic_subscriber_loses_no_wakeup_across_10k_samples);
	tcase_add_test(tc, evloop_topic_publisher_makes_no_futex_wake_while_nobody_polls);
	tcase_add_test(tc, evloop_topic_creator_close_makes_armed_fd_readable);
	tcase_add_test(tc, evloop_topic_arm_sees_a_commit_whose_tail_was_not_stored);
	tcase_add_test(tc, evloop_topic_poll_rejects_bad_arguments);
}

static Suite *evloop_suite(void)
{
	Suite *s = suite_create("evloop");

	add_ring_tests(add_tcase(s, "ring-uring", uring_setup, 30));
	add_ring_tests(add_tcase(s, "ring-fallback", fallback_setup, 30));
	add_rpc_tests(add_tcase(s, "rpc-uring", uring_setup, 30));
	add_rpc_tests(add_tcase(s, "rpc-fallback", fallback_setup, 30));
	add_topic_tests(add_tcase(s, "topic-uring", uring_setup, 30));
	add_topic_tests(add_tcase(s, "topic-fallback", fallback_setup, 30));
	return s;
}

T_MAIN(evloop_suite)
