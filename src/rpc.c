/* SPDX-License-Identifier: MIT */
/*
 * RPC channels: two rings and a control region (the seed's RpcBuffer, rebuilt).
 *
 * Naming and election. Channel N is a control region N (kind SMEM_KIND_RPC, struct
 * smem_rpc_ctl) plus two rings "N.<gen>.m2s" (master writes, slave reads) and "N.<gen>.s2m".
 * An opener opens N or creates it, joins the region's liveness slots (live.c: an OFD lock the
 * kernel drops when the process dies), and takes the election lock: an OFD write lock on byte
 * SMEM_RPC_ELECT_BYTE of the control memfd through its private description, so a holder that
 * dies releases it too. Under the lock, with S = ctl.session:
 *   - no live, unclosed master in S: start session S+1 as master, create new rings
 *     (gen = S+1), clear the slave record. An old slave (if alive) sees the session move on and
 *     fails with -ECONNRESET;
 *   - a live master and no slave yet in S: attach as slave in S;
 *   - a live master whose slave in S died or closed: attach as slave in session S+1 (same
 *     rings); the master notices the new session, fails what it had pending with the old slave
 *     and adopts S+1. Packets carry their session, so stale packets left in the rings by the
 *     old slave are dropped (and counted), never delivered;
 *   - a live master and a live slave: -EBUSY.
 * The record of an endpoint (live id, session, pid and pid namespace) is written under the
 * lock; ctl.session is stored last with release, and readers acquire it.
 *
 * Data path. Every thread that waits on a channel (a caller, the service thread, a dispatch
 * loop) makes progress itself: whoever wins the channel's pump lock (trylock, never held
 * across a sleep, a send or a handler) drains the receive ring: responses are reassembled and
 * handed to their pending call, requests are reassembled and queued. Handlers run outside any
 * lock on the threads allowed to serve the channel (the service thread; in dispatch mode any
 * thread inside dispatch/serve/call/wait), and a thread waiting in a nested call keeps
 * serving, so handlers can call back through the same channel without deadlock. A sender that
 * finds the ring full waits for room (the deadline of its call bounds it: nothing is ever
 * dropped) and pumps meanwhile, so two sides sending to each other cannot wedge.
 *
 * Sleeping: each channel has a process-local event word (ev) bumped when a call completes,
 * a request is queued, the channel fails, or a pump lock is released that somebody skipped.
 * A waiter snapshots ev before looking at its conditions, then sleeps in one smem__wait_many()
 * on: every channel's ev, the receive rings' data words (when nobody is pumping them), the
 * peers' pidfds, and its deadline. The ev protocol: the waker increments ev then reads
 * ev_sleepers (seq_cst); the waiter increments ev_sleepers then sleeps on (ev, snapshot), so
 * either the waker sees a sleeper or the futex sees a changed value.
 *
 * Peer liveness: the peer's live id in the control region, checked with one fcntl (live.c);
 * when the peer is in our pid namespace a pidfd for its pid sits in every wait, so its death
 * wakes us at once; otherwise waits are sliced to 20 ms and the live id is checked between
 * slices. A dead peer fails every pending call with -ECONNRESET; a peer that closed, with
 * -ESHUTDOWN.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "ring_int.h"
#include "rpc_int.h"
#include "rpc_proto.h"
#include "uring.h"

#define DEFAULT_NODES		16u
#define DEFAULT_NODE_SIZE	65536u
#define MIN_NODE_SIZE		256u
#define MAX_NODE_SIZE		(64u << 20)
#define DEFAULT_MAX_MESSAGE	(64ull << 20)
#define DEFAULT_REPLY_MS	30000
#define NAME_ROOM		24	/* ".<gen>.m2s" */
#define CALL_BUCKETS		256u
#define MAX_ASSEMBLIES		256u
#define PUMP_BUDGET		1024u
#define LIVE_POLL_NS		(20ull * 1000 * 1000)	/* no pidfd: check the peer this often */
#define LIVE_RECHECK_NS		(1000ull * 1000 * 1000)	/* with a pidfd: belt and braces */
#define MAX_SLEEP_NS		(50ull * 1000 * 1000)	/* ring recovery needs us to look again */
#define MAX_NESTING		32
#define MAX_WAIT_CHANNELS	32u
#define DEFAULT_SPIN_NS		20000u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

struct smem_rpc_call {
	struct smem_rpc *ch;
	uint64_t id;
	uint64_t deadline;
	_Atomic int done;		/* release-stored once status/resp are final */
	int status;
	void *resp;
	size_t resp_len;
	bool in_table;
	struct smem_rpc_call *next;	/* hash chain, under ch->lock */
	char msg[SMEM_RPC_ERRMSG_MAX];
};

struct inreq {
	struct inreq *next;
	uint64_t id;
	uint32_t session;
	uint8_t *data;
	size_t len;
};

struct assembly {
	struct assembly *next;
	bool discard;			/* a response nobody waits for: consume, do not copy */
	struct smem__rpc_asm a;
};

struct smem_rpc_reply {
	void *data;
	size_t len;
	uint64_t max;
	char msg[SMEM_RPC_ERRMSG_MAX];
};

struct stats {
	_Atomic uint64_t requests_sent, responses_sent, errors_sent;
	_Atomic uint64_t requests_received, responses_received, errors_received;
	_Atomic uint64_t packets_sent, packets_received, bytes_sent, bytes_received;
	_Atomic uint64_t max_packet_sent, max_packet_received;
	_Atomic int64_t last_packet_sent, last_packet_received;
	_Atomic int64_t last_message_sent, last_message_received;
	_Atomic uint64_t timeouts, discarded_responses, last_discarded_id;
	_Atomic uint64_t protocol_errors, stale_packets, peer_resets;
	_Atomic uint64_t max_wait_write_ns, max_wait_read_ns, sleeps;
};

struct smem_rpc {
	struct smem_region *reg;	/* the control region */
	struct smem_rpc_ctl *ctl;
	struct smem_ring *tx, *rx;
	int role;
	_Atomic uint32_t session;
	uint32_t per;			/* payload bytes per packet (private geometry) */
	uint64_t max_message;
	int reply_timeout_ms;
	smem_rpc_handler_fn handler;
	void *handler_arg;
	uint32_t service;
	uint32_t spin_ns;

	pthread_mutex_t lock;		/* calls, queue, peer state */
	struct smem_rpc_call *calls[CALL_BUCKETS];
	struct inreq *q_head, *q_tail;
	_Atomic int state;		/* 0, or the error every call gets (-ECONNRESET...) */
	uint32_t peer_id;
	uint64_t peer_max;
	int peer_pidfd;
	uint64_t next_live_check;
	_Atomic uint64_t next_id;

	pthread_mutex_t pump;		/* trylock only: receive ring and assemblies */
	_Atomic bool pumping;
	_Atomic bool pump_skipped;
	struct assembly *asms;
	unsigned nasm;
	uint32_t asm_session;

	_Atomic uint32_t ev;
	_Atomic uint32_t ev_sleepers;

	pthread_t thread;
	bool has_thread;
	_Atomic bool stopping;
	struct stats st;
};

static _Atomic int open_channels;
static _Thread_local int tl_depth;
static _Thread_local const struct smem_rpc *tl_service;	/* set on a channel's service thread */
static _Thread_local char tl_errmsg[SMEM_RPC_ERRMSG_MAX];

/* ---- small helpers --------------------------------------------------------------------- */

#define STAT_ADD(ch, f, n) atomic_fetch_add_explicit(&(ch)->st.f, (n), memory_order_relaxed)
#define STAT_SET(ch, f, v) atomic_store_explicit(&(ch)->st.f, (v), memory_order_relaxed)

static void stat_max(_Atomic uint64_t *m, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);

	while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed,
								memory_order_relaxed))
		;
}

static void ev_bump(struct smem_rpc *ch)
{
	/* seq_cst: pairs with ev_sleepers++ before the sleep in wait_set_sleep(). */
	atomic_fetch_add(&ch->ev, 1);
	if (atomic_load(&ch->ev_sleepers))
		smem__futex_wake(&ch->ev, INT_MAX);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint32_t my_session(const struct smem_rpc *ch)
{
	return atomic_load_explicit(&ch->session, memory_order_acquire);
}

static bool may_serve(const struct smem_rpc *ch)
{
	if (!ch->handler)
		return true;	/* -ENOSYS replies cost nothing: anybody sends them */
	if (tl_depth >= MAX_NESTING)
		return false;
	if (ch->service == SMEM_RPC_SERVICE_DISPATCH)
		return true;
	return tl_service == ch;
}

/* ---- pending calls (under ch->lock) ---------------------------------------------------- */

static unsigned bucket(uint64_t id)
{
	return (unsigned)((id * 0x9e3779b97f4a7c15ull) >> 56) & (CALL_BUCKETS - 1);
}

static void call_insert(struct smem_rpc *ch, struct smem_rpc_call *c)
{
	unsigned b = bucket(c->id);

	c->next = ch->calls[b];
	ch->calls[b] = c;
	c->in_table = true;
}

static struct smem_rpc_call *call_find(struct smem_rpc *ch, uint64_t id)
{
	struct smem_rpc_call *c;

	for (c = ch->calls[bucket(id)]; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void call_remove(struct smem_rpc *ch, struct smem_rpc_call *c)
{
	struct smem_rpc_call **pp;

	if (!c->in_table)
		return;
	for (pp = &ch->calls[bucket(c->id)]; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->in_table = false;
	c->next = NULL;
}

/* Complete @c (in the table, under ch->lock). Release: pairs with the acquire in call_done. */
static void call_complete(struct smem_rpc *ch, struct smem_rpc_call *c, int status)
{
	call_remove(ch, c);
	c->status = status;
	atomic_store_explicit(&c->done, 1, memory_order_release);
}

/* The channel failed: every pending call gets @err, and so will every new one. */
static void channel_fail(struct smem_rpc *ch, int err)
{
	unsigned b, n = 0;

	pthread_mutex_lock(&ch->lock);
	if (atomic_load_explicit(&ch->state, memory_order_relaxed) == 0) {
		atomic_store_explicit(&ch->state, err, memory_order_release);
		for (b = 0; b < CALL_BUCKETS; b++)
			while (ch->calls[b]) {
				call_complete(ch, ch->calls[b], err);
				n++;
			}
	}
	pthread_mutex_unlock(&ch->lock);
	if (n)
		STAT_ADD(ch, peer_resets, n);
	ev_bump(ch);
}

/* ---- peer tracking ---------------------------------------------------------------------- */

static int pidns_id(uint64_t *dev, uint64_t *ino)
{
	struct stat st;

	if (stat("/proc/self/ns/pid", &st) < 0)
		return -errno;
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	return 0;
}

/* A pidfd for the peer when it lives in our pid namespace (its pid means something here). */
static int peer_pidfd_open(const struct smem_rpc_ctl_end *e)
{
	uint64_t dev, ino;
	int fd;

	if (e->pid == 0 || e->pid > INT_MAX || pidns_id(&dev, &ino) < 0)
		return -1;
	if (dev != e->pidns_dev || ino != e->pidns_ino)
		return -1;
	fd = (int)syscall(SYS_pidfd_open, (pid_t)e->pid, 0);
	return fd < 0 ? -1 : fd;	/* pidfds are close-on-exec from birth */
}

/* A master whose slave was replaced takes on the new session (see the top comment). */
static void adopt_session(struct smem_rpc *ch, uint32_t s)
{
	struct inreq *q, *next;
	unsigned b, n = 0;

	pthread_mutex_lock(&ch->lock);
	if (atomic_load_explicit(&ch->session, memory_order_relaxed) == s) {
		/* Another thread adopted it first; calls made since belong to the new slave. */
		pthread_mutex_unlock(&ch->lock);
		return;
	}
	for (b = 0; b < CALL_BUCKETS; b++)
		while (ch->calls[b]) {
			call_complete(ch, ch->calls[b], -ECONNRESET);
			n++;
		}
	q = ch->q_head;
	ch->q_head = ch->q_tail = NULL;
	if (ch->peer_pidfd >= 0)
		close(ch->peer_pidfd);
	ch->peer_pidfd = -1;
	ch->peer_id = 0;
	ch->peer_max = 0;
	atomic_store_explicit(&ch->session, s, memory_order_release);
	atomic_store_explicit(&ch->state, 0, memory_order_release);
	pthread_mutex_unlock(&ch->lock);
	for (; q; q = next) {
		next = q->next;
		free(q->data);
		free(q);
	}
	if (n)
		STAT_ADD(ch, peer_resets, n);
	ev_bump(ch);
}

/*
 * Look at the control region: session changes, the peer's arrival, departure or death.
 * @force checks the peer's liveness now (its pidfd fired). Returns the channel state.
 */
static int refresh(struct smem_rpc *ch, bool force)
{
	struct smem_rpc_ctl *ctl = ch->ctl;
	const struct smem_rpc_ctl_end *me = &ctl->end[ch->role], *peer = &ctl->end[!ch->role];
	uint32_t s, mine = my_session(ch), pid, psess;
	uint64_t now;
	int state;

	/* Acquire: pairs with the release of ctl.session by the election that set it. */
	s = atomic_load_explicit(&ctl->session, memory_order_acquire);
	if (s != mine) {
		if (ch->role == SMEM_RPC_MASTER &&
		    atomic_load_explicit(&me->live_id, memory_order_relaxed) == ch->reg->live_id &&
		    atomic_load_explicit(&me->session, memory_order_relaxed) == s)
			adopt_session(ch, s);
		else if (atomic_load_explicit(&ch->state, memory_order_acquire) == 0)
			channel_fail(ch, -ECONNRESET);	/* our session is over */
		return atomic_load_explicit(&ch->state, memory_order_acquire);
	}
	state = atomic_load_explicit(&ch->state, memory_order_acquire);
	if (state)
		return state;
	psess = atomic_load_explicit(&peer->session, memory_order_relaxed);
	pid = atomic_load_explicit(&peer->live_id, memory_order_relaxed);
	if (psess != s || pid == 0)
		return 0;	/* master without a slave yet */
	if (atomic_load_explicit(&peer->flags, memory_order_relaxed) & SMEM_RPC_END_CLOSED) {
		channel_fail(ch, -ESHUTDOWN);
		return -ESHUTDOWN;
	}
	now = smem__now_ns();
	pthread_mutex_lock(&ch->lock);
	if (pid != ch->peer_id) {
		if (ch->peer_pidfd >= 0)
			close(ch->peer_pidfd);
		ch->peer_pidfd = peer_pidfd_open(peer);
		ch->peer_id = pid;
		ch->peer_max = peer->max_message;
		force = true;
	}
	if (!force && now < ch->next_live_check) {
		pthread_mutex_unlock(&ch->lock);
		return 0;
	}
	ch->next_live_check = now + (ch->peer_pidfd >= 0 ? LIVE_RECHECK_NS : LIVE_POLL_NS);
	pthread_mutex_unlock(&ch->lock);
	if (!smem__live_alive(ch->reg, pid)) {
		/* Closed cleanly just now, or died? The flag is set before the slot is left. */
		if (atomic_load_explicit(&peer->flags, memory_order_acquire) & SMEM_RPC_END_CLOSED)
			channel_fail(ch, -ESHUTDOWN);
		else
			channel_fail(ch, -ECONNRESET);
	}
	return atomic_load_explicit(&ch->state, memory_order_acquire);
}

/* ---- waiting ------------------------------------------------------------------------------ */

struct wait_set {
	struct smem__wait_item it[SMEM__WAIT_MAX];
	unsigned n;
	struct {
		struct smem_ring *r;
		bool wr;
	} prep[SMEM__WAIT_MAX];
	unsigned np;
	struct smem_rpc *evch[SMEM__WAIT_MAX];
	unsigned nev;
	struct smem_rpc *pidch[SMEM__WAIT_MAX];
	unsigned pidbase[SMEM__WAIT_MAX];
	unsigned npid;
	bool ready;			/* some condition already holds: do not sleep */
};

static void ws_init(struct wait_set *ws)
{
	ws->n = ws->np = ws->nev = ws->npid = 0;
	ws->ready = false;
}

static void ws_word(struct wait_set *ws, _Atomic uint32_t *w, uint32_t v)
{
	if (ws->n >= SMEM__WAIT_MAX)
		return;
	ws->it[ws->n].word = w;
	ws->it[ws->n].val = v;
	ws->it[ws->n].fd = -1;
	ws->it[ws->n].fired = false;
	ws->n++;
}

/* Sleep on the channel's event word, from snapshot @v. */
static void ws_ev(struct wait_set *ws, struct smem_rpc *ch, uint32_t v)
{
	if (ws->n >= SMEM__WAIT_MAX || ws->nev >= SMEM__WAIT_MAX)
		return;
	atomic_fetch_add(&ch->ev_sleepers, 1);	/* seq_cst: see ev_bump() */
	ws->evch[ws->nev++] = ch;
	ws_word(ws, &ch->ev, v);
}

static void ws_ring(struct wait_set *ws, struct smem_ring *r, bool wr)
{
	_Atomic uint32_t *word;
	uint32_t val;
	int rc;

	if (ws->n >= SMEM__WAIT_MAX)
		return;
	rc = smem__ring_wait_prepare(r, wr, &word, &val);
	if (rc) {
		ws->ready = true;	/* -EAGAIN: it holds already; -ESHUTDOWN: go and see */
		return;
	}
	ws->prep[ws->np].r = r;
	ws->prep[ws->np].wr = wr;
	ws->np++;
	ws_word(ws, word, val);
}

/* Receive ring data, unless somebody is pumping it (they bump ev when they let go). */
static void ws_rx(struct wait_set *ws, struct smem_rpc *ch)
{
	/* seq_cst pair with try_pump(): either we see pumping == false, or it sees the flag. */
	atomic_store(&ch->pump_skipped, true);
	if (atomic_load(&ch->pumping))
		return;
	ws_ring(ws, ch->rx, false);
}

static void ws_peer(struct wait_set *ws, struct smem_rpc *ch)
{
	int fd;

	pthread_mutex_lock(&ch->lock);
	fd = ch->peer_pidfd;
	pthread_mutex_unlock(&ch->lock);
	if (fd < 0 || ws->n >= SMEM__WAIT_MAX || ws->npid >= SMEM__WAIT_MAX)
		return;
	ws->pidch[ws->npid] = ch;
	ws->pidbase[ws->npid++] = ws->n;
	ws->it[ws->n].word = NULL;
	ws->it[ws->n].fd = fd;
	ws->it[ws->n].events = POLLIN;
	ws->it[ws->n].fired = false;
	ws->n++;
}

/* A channel's peer needs polling (no pidfd): bound the sleep. */
static uint64_t peer_poll_bound(struct smem_rpc *ch)
{
	bool pidfd;

	pthread_mutex_lock(&ch->lock);
	pidfd = ch->peer_pidfd >= 0 || ch->peer_id == 0;
	pthread_mutex_unlock(&ch->lock);
	return pidfd ? MAX_SLEEP_NS : LIVE_POLL_NS;
}

static void ws_sleep(struct wait_set *ws, struct smem_rpc *stat_ch, uint64_t max_ns)
{
	uint64_t t0 = 0;
	unsigned i;

	if (!ws->ready && max_ns > 0) {
		if (stat_ch) {
			STAT_ADD(stat_ch, sleeps, 1);
			t0 = smem__now_ns();
		}
		smem__wait_many(ws->it, ws->n, min_u64(max_ns, MAX_SLEEP_NS));
		if (stat_ch)
			stat_max(&stat_ch->st.max_wait_read_ns, smem__now_ns() - t0);
	}
	for (i = 0; i < ws->np; i++)
		smem__ring_wait_done(ws->prep[i].r, ws->prep[i].wr);
	for (i = 0; i < ws->nev; i++)
		atomic_fetch_sub(&ws->evch[i]->ev_sleepers, 1);
	/* A peer's pidfd fired: look at its liveness now. */
	for (i = 0; i < ws->npid; i++)
		if (ws->it[ws->pidbase[i]].fired)
			refresh(ws->pidch[i], true);
}

/* ---- receiving ---------------------------------------------------------------------------- */

static struct assembly *asm_find(struct smem_rpc *ch, uint8_t type, uint64_t key,
				 struct assembly ***prevp)
{
	struct assembly **pp, *a;
	bool req = type == SMEM_RPC_REQUEST;

	for (pp = &ch->asms; (a = *pp); pp = &a->next) {
		bool areq = a->a.type == SMEM_RPC_REQUEST;
		uint64_t akey = areq ? a->a.msg_id : a->a.response_to;

		if (areq == req && akey == key) {
			if (prevp)
				*prevp = pp;
			return a;
		}
	}
	return NULL;
}

static void asm_drop(struct smem_rpc *ch, struct assembly **pp)
{
	struct assembly *a = *pp;

	*pp = a->next;
	smem__rpc_asm_free(&a->a);
	free(a);
	ch->nasm--;
}

static void asm_clear(struct smem_rpc *ch)
{
	while (ch->asms)
		asm_drop(ch, &ch->asms);
}

/* A complete message. Takes ownership of a->buf. */
static void deliver(struct smem_rpc *ch, struct smem__rpc_asm *a)
{
	struct smem_rpc_call *c;
	struct inreq *q;

	STAT_SET(ch, last_message_received, (int64_t)a->total);
	if (a->type == SMEM_RPC_REQUEST) {
		STAT_ADD(ch, requests_received, 1);
		q = malloc(sizeof(*q));
		if (!q) {
			smem__rpc_asm_free(a);
			return;	/* the caller times out: we could not even queue it */
		}
		q->next = NULL;
		q->id = a->msg_id;
		q->session = a->session;
		q->data = a->buf;
		q->len = (size_t)a->total;
		a->buf = NULL;
		pthread_mutex_lock(&ch->lock);
		if (ch->q_tail)
			ch->q_tail->next = q;
		else
			ch->q_head = q;
		ch->q_tail = q;
		pthread_mutex_unlock(&ch->lock);
		ev_bump(ch);
		return;
	}
	if (a->type == SMEM_RPC_RESPONSE)
		STAT_ADD(ch, responses_received, 1);
	else
		STAT_ADD(ch, errors_received, 1);
	pthread_mutex_lock(&ch->lock);
	c = call_find(ch, a->response_to);
	if (c) {
		if (a->type == SMEM_RPC_RESPONSE) {
			c->resp = a->buf;
			c->resp_len = (size_t)a->total;
			a->buf = NULL;
			call_complete(ch, c, 0);
		} else {
			size_t n = min_u64(a->total, sizeof(c->msg) - 1);

			if (n)
				memcpy(c->msg, a->buf, n);
			c->msg[n] = '\0';
			call_complete(ch, c, a->error);
		}
	}
	pthread_mutex_unlock(&ch->lock);
	if (c) {
		ev_bump(ch);
	} else {
		STAT_ADD(ch, discarded_responses, 1);
		STAT_SET(ch, last_discarded_id, a->response_to);
	}
	smem__rpc_asm_free(a);
}

static bool response_wanted(struct smem_rpc *ch, uint64_t id)
{
	bool found;

	pthread_mutex_lock(&ch->lock);
	found = call_find(ch, id) != NULL;
	pthread_mutex_unlock(&ch->lock);
	return found;
}

static void on_packet(struct smem_rpc *ch, const void *pkt, size_t len)
{
	struct smem_rpc_pkt_hdr h;
	struct assembly *a, **pp;
	uint64_t key;
	int rc;

	if (smem__rpc_pkt_parse(pkt, len, ch->per, ch->max_message, &h) < 0) {
		STAT_ADD(ch, protocol_errors, 1);
		return;
	}
	if (h.session != my_session(ch)) {
		refresh(ch, false);	/* a new session may have begun: adopt it first */
		if (h.session != my_session(ch)) {
			STAT_ADD(ch, stale_packets, 1);
			return;
		}
	}
	if (ch->asm_session != h.session) {
		asm_clear(ch);	/* partial messages of an earlier session never complete */
		ch->asm_session = h.session;
	}
	STAT_ADD(ch, packets_received, 1);
	STAT_ADD(ch, bytes_received, h.chunk);
	stat_max(&ch->st.max_packet_received, h.chunk);
	STAT_SET(ch, last_packet_received, (int64_t)h.chunk);

	key = h.type == SMEM_RPC_REQUEST ? h.msg_id : h.response_to;
	if (h.index == 0) {
		struct smem__rpc_asm one;
		bool discard = h.type != SMEM_RPC_REQUEST && !response_wanted(ch, h.response_to);

		if ((a = asm_find(ch, h.type, key, &pp))) {
			STAT_ADD(ch, protocol_errors, 1);	/* restarted: the old one is broken */
			asm_drop(ch, pp);
		}
		if (discard) {
			STAT_ADD(ch, discarded_responses, 1);
			STAT_SET(ch, last_discarded_id, h.response_to);
			if (h.count == 1)
				return;
			memset(&one, 0, sizeof(one));
		} else if (smem__rpc_asm_start(&one, &h) < 0) {
			STAT_ADD(ch, protocol_errors, 1);	/* no memory for it */
			return;
		}
		if (!discard && h.count == 1) {
			/* The common case: one packet, no table. */
			if (smem__rpc_asm_add(&one, &h, (const uint8_t *)pkt + SMEM_RPC_HDR_SIZE,
					      ch->per) == 1)
				deliver(ch, &one);
			else
				smem__rpc_asm_free(&one);
			return;
		}
		while (ch->nasm >= MAX_ASSEMBLIES) {
			/* Bounded: evict the oldest (last in the list). */
			for (pp = &ch->asms; (*pp)->next; pp = &(*pp)->next)
				;
			STAT_ADD(ch, protocol_errors, 1);
			asm_drop(ch, pp);
		}
		a = calloc(1, sizeof(*a));
		if (!a) {
			smem__rpc_asm_free(&one);
			STAT_ADD(ch, protocol_errors, 1);
			return;
		}
		a->a = one;
		a->discard = discard;
		if (discard) {
			/* Only what is needed to follow the packets; nothing is copied. */
			a->a.msg_id = h.msg_id;
			a->a.response_to = h.response_to;
			a->a.total = h.total_size;
			a->a.count = h.count;
			a->a.type = h.type;
			a->a.error = h.error;
			a->a.session = h.session;
			a->a.next = 1;
			a->a.filled = h.chunk;
		}
		a->next = ch->asms;
		ch->asms = a;
		ch->nasm++;
		if (discard)
			return;
		pp = &ch->asms;
	} else {
		a = asm_find(ch, h.type, key, &pp);
		if (!a) {
			STAT_ADD(ch, protocol_errors, 1);	/* continuation of nothing */
			return;
		}
		if (a->discard) {
			if (h.index != a->a.next || h.msg_id != a->a.msg_id) {
				STAT_ADD(ch, protocol_errors, 1);
				asm_drop(ch, pp);
				return;
			}
			if (++a->a.next == a->a.count)
				asm_drop(ch, pp);
			return;
		}
	}
	rc = smem__rpc_asm_add(&a->a, &h, (const uint8_t *)pkt + SMEM_RPC_HDR_SIZE, ch->per);
	if (rc == 0)
		return;
	if (rc == 1) {
		struct smem__rpc_asm done = a->a;

		a->a.buf = NULL;
		asm_drop(ch, pp);
		deliver(ch, &done);
		return;
	}
	STAT_ADD(ch, protocol_errors, 1);	/* out of order or inconsistent: drop it */
	asm_drop(ch, pp);
}

/* Drain the receive ring. Caller holds ch->pump. Returns packets consumed. */
static unsigned pump_locked(struct smem_rpc *ch)
{
	struct smem_ring_slot slot;
	unsigned n;
	int rc;

	for (n = 0; n < PUMP_BUDGET; n++) {
		rc = smem_ring_reserve_read(ch->rx, &slot, 0);
		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			break;
		if (rc < 0) {
			if (rc == -ESHUTDOWN)
				channel_fail(ch, -ESHUTDOWN);	/* the master closed */
			else
				STAT_ADD(ch, protocol_errors, 1);
			break;
		}
		on_packet(ch, slot.data, slot.len);
		smem_ring_release(ch->rx, &slot);
	}
	return n;
}

static int try_pump(struct smem_rpc *ch)
{
	unsigned n;

	if (pthread_mutex_trylock(&ch->pump) != 0)
		return -EBUSY;
	atomic_store(&ch->pumping, true);
	n = pump_locked(ch);
	atomic_store(&ch->pumping, false);	/* seq_cst: see ws_rx() */
	pthread_mutex_unlock(&ch->pump);
	if (atomic_exchange(&ch->pump_skipped, false))
		ev_bump(ch);
	return (int)n;
}

/* ---- sending ------------------------------------------------------------------------------- */

/* Reserve a node of the send ring by @deadline, pumping the receive ring while we wait. */
static int reserve_room(struct smem_rpc *ch, struct smem_ring_slot *slot, uint64_t deadline)
{
	uint64_t t0 = 0;
	struct wait_set ws;
	uint32_t v;
	int rc;

	for (;;) {
		v = atomic_load(&ch->ev);
		rc = smem_ring_reserve_write(ch->tx, slot, 0);
		if (rc == 0)
			break;
		if (rc != -ETIMEDOUT && rc != -EAGAIN)
			return rc == -ESHUTDOWN ? (refresh(ch, true) ?: -ESHUTDOWN) : rc;
		if (!t0)
			t0 = smem__now_ns();
		rc = refresh(ch, false);
		if (rc)
			return rc;
		if (smem__remaining_ns(deadline) == 0)
			return -ETIMEDOUT;
		try_pump(ch);
		ws_init(&ws);
		ws_ring(&ws, ch->tx, true);
		ws_ev(&ws, ch, v);
		ws_rx(&ws, ch);
		ws_peer(&ws, ch);
		ws_sleep(&ws, NULL, min_u64(smem__remaining_ns(deadline), peer_poll_bound(ch)));
	}
	if (t0)
		stat_max(&ch->st.max_wait_write_ns, smem__now_ns() - t0);
	return 0;
}

static int send_message(struct smem_rpc *ch, uint8_t type, uint64_t id, uint64_t response_to,
			int32_t error, const void *data, size_t len, uint64_t deadline)
{
	uint32_t count = smem__rpc_packet_count(len, ch->per), i, chunk;
	uint32_t session = my_session(ch);
	struct smem_rpc_pkt_hdr h;
	struct smem_ring_slot slot;
	int rc;

	if (count == 0 || len > SMEM_RPC_MAX_MESSAGE)
		return -EMSGSIZE;
	for (i = 0; i < count; i++) {
		rc = reserve_room(ch, &slot, deadline);
		if (rc)
			return rc;	/* a partial message is dropped by the receiver's checks */
		if (slot.cap < SMEM_RPC_HDR_SIZE + (size_t)ch->per) {
			smem_ring_abort(ch->tx, &slot);
			return -EPROTO;
		}
		chunk = smem__rpc_chunk_len(len, ch->per, i);
		smem__rpc_pkt_fill(&h, type, session, id, response_to, len, i, count, chunk, error);
		memcpy(slot.data, &h, sizeof(h));
		if (chunk)
			memcpy((uint8_t *)slot.data + SMEM_RPC_HDR_SIZE,
			       (const uint8_t *)data + (size_t)i * ch->per, chunk);
		rc = smem_ring_commit(ch->tx, &slot, SMEM_RPC_HDR_SIZE + chunk);
		if (rc)
			return rc;
		STAT_ADD(ch, packets_sent, 1);
		STAT_ADD(ch, bytes_sent, chunk);
		stat_max(&ch->st.max_packet_sent, chunk);
		STAT_SET(ch, last_packet_sent, (int64_t)chunk);
	}
	STAT_SET(ch, last_message_sent, (int64_t)len);
	return 0;
}

/* ---- serving --------------------------------------------------------------------------------- */

int smem_rpc_reply_set(struct smem_rpc_reply *reply, const void *data, size_t len)
{
	void *p;

	if (!reply || (!data && len))
		return -EINVAL;
	p = smem_rpc_reply_alloc(reply, len);
	if (!p && len)
		return len > reply->max ? -EMSGSIZE : -ENOMEM;
	if (len)
		memcpy(p, data, len);
	return 0;
}

void *smem_rpc_reply_alloc(struct smem_rpc_reply *reply, size_t len)
{
	void *p = NULL;

	if (!reply || len > reply->max)
		return NULL;
	if (len) {
		p = malloc(len);
		if (!p)
			return NULL;
	}
	free(reply->data);
	reply->data = p;
	reply->len = len;
	return p;
}

void smem_rpc_reply_error(struct smem_rpc_reply *reply, const char *message)
{
	if (reply)
		snprintf(reply->msg, sizeof(reply->msg), "%s", message ? message : "");
}

static void handle_request(struct smem_rpc *ch, struct inreq *q)
{
	struct smem_rpc_request req = {
		.channel = ch, .id = q->id, .data = q->len ? q->data : NULL, .len = q->len,
	};
	struct smem_rpc_reply reply = { .max = ch->peer_max ? ch->peer_max : ch->max_message };
	uint64_t deadline = smem__deadline(ch->reply_timeout_ms);
	int rc;

	if (q->session != my_session(ch))
		return;	/* its sender is gone: nobody to answer */
	if (!ch->handler) {
		rc = -ENOSYS;
	} else {
		tl_depth++;
		rc = ch->handler(ch->handler_arg, &req, &reply);
		tl_depth--;
		if (rc > 0)
			rc = -EPROTO;
		if (rc < -4095)
			rc = -EPROTO;
	}
	if (rc == 0) {
		rc = send_message(ch, SMEM_RPC_RESPONSE, atomic_fetch_add(&ch->next_id, 1), q->id,
				  0, reply.data, reply.len, deadline);
		if (rc == 0)
			STAT_ADD(ch, responses_sent, 1);
	} else {
		rc = send_message(ch, SMEM_RPC_ERROR, atomic_fetch_add(&ch->next_id, 1), q->id,
				  rc, reply.msg, strlen(reply.msg), deadline);
		if (rc == 0)
			STAT_ADD(ch, errors_sent, 1);
	}
	if (rc == -ETIMEDOUT)
		STAT_ADD(ch, timeouts, 1);
	free(reply.data);
}

/* Run queued requests (when this thread may). Returns how many. */
static int run_queue(struct smem_rpc *ch)
{
	struct inreq *q;
	int n = 0;

	while (may_serve(ch)) {
		pthread_mutex_lock(&ch->lock);
		q = ch->q_head;
		if (q) {
			ch->q_head = q->next;
			if (!ch->q_head)
				ch->q_tail = NULL;
		}
		pthread_mutex_unlock(&ch->lock);
		if (!q)
			break;
		handle_request(ch, q);
		free(q->data);
		free(q);
		n++;
	}
	return n;
}

static bool queue_nonempty(struct smem_rpc *ch)
{
	bool r;

	pthread_mutex_lock(&ch->lock);
	r = ch->q_head != NULL;
	pthread_mutex_unlock(&ch->lock);
	return r;
}

/* Everything a waiting thread does for a channel without sleeping. Returns requests run. */
static int progress(struct smem_rpc *ch)
{
	refresh(ch, false);
	try_pump(ch);
	return run_queue(ch);
}

/* Add what a thread waiting on @ch sleeps on; returns the longest it may sleep. */
static uint64_t ws_channel(struct wait_set *ws, struct smem_rpc *ch, uint32_t v)
{
	ws_ev(ws, ch, v);
	if (atomic_load_explicit(&ch->state, memory_order_acquire) == 0 ||
	    ch->role == SMEM_RPC_MASTER)
		ws_rx(ws, ch);
	ws_peer(ws, ch);
	if (may_serve(ch) && queue_nonempty(ch))
		ws->ready = true;
	return peer_poll_bound(ch);
}

static void *service_main(void *arg)
{
	struct smem_rpc *ch = arg;
	uint64_t bound, idle_since = 0, now;
	struct wait_set ws;
	uint32_t v;

	tl_service = ch;	/* handlers (and nested calls) on this thread may serve ch */

	while (!atomic_load_explicit(&ch->stopping, memory_order_acquire)) {
		v = atomic_load(&ch->ev);
		if (progress(ch) > 0)
			idle_since = 0;
		if (atomic_load_explicit(&ch->stopping, memory_order_acquire))
			break;
		now = smem__now_ns();
		if (!idle_since)
			idle_since = now;
		if (now - idle_since < ch->spin_ns) {
			cpu_relax();
			continue;
		}
		idle_since = 0;
		ws_init(&ws);
		bound = ws_channel(&ws, ch, v);
		/* A master whose slave left waits for a new slave: watch the control region. */
		ws_word(&ws, &ch->ctl->event, atomic_load(&ch->ctl->event));
		ws_sleep(&ws, ch, bound);
	}
	return NULL;
}

/* ---- calls ------------------------------------------------------------------------------------- */

static int call_start(struct smem_rpc *ch, const void *req, size_t len, int timeout_ms,
		      struct smem_rpc_call **ret)
{
	struct smem_rpc_call *c;
	uint64_t peer_max;
	int rc;

	if (!ch || (!req && len) || !ret)
		return -EINVAL;
	rc = refresh(ch, false);
	if (rc)
		return rc;
	pthread_mutex_lock(&ch->lock);
	peer_max = ch->peer_max;
	pthread_mutex_unlock(&ch->lock);
	if (len > SMEM_RPC_MAX_MESSAGE || (peer_max && len > peer_max))
		return -EMSGSIZE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ch = ch;
	c->deadline = smem__deadline(timeout_ms);
	c->id = atomic_fetch_add(&ch->next_id, 1);
	/* In the table before the request leaves: the response may beat us back. */
	pthread_mutex_lock(&ch->lock);
	rc = atomic_load_explicit(&ch->state, memory_order_relaxed);
	if (rc == 0)
		call_insert(ch, c);
	pthread_mutex_unlock(&ch->lock);
	if (rc) {
		free(c);
		return rc;
	}
	rc = send_message(ch, SMEM_RPC_REQUEST, c->id, 0, 0, req, len, c->deadline);
	if (rc) {
		pthread_mutex_lock(&ch->lock);
		call_remove(ch, c);
		pthread_mutex_unlock(&ch->lock);
		if (atomic_load_explicit(&c->done, memory_order_acquire) && c->status)
			rc = c->status;	/* failed meanwhile: the channel's reason is better */
		free(c->resp);
		free(c);
		if (rc == -ETIMEDOUT)
			STAT_ADD(ch, timeouts, 1);
		return rc;
	}
	STAT_ADD(ch, requests_sent, 1);
	*ret = c;
	return 0;
}

static bool call_is_done(const struct smem_rpc_call *c)
{
	/* Acquire: pairs with the release in call_complete(). */
	return atomic_load_explicit(&c->done, memory_order_acquire) != 0;
}

/* Time out @c if its deadline passed. */
static void call_expire(struct smem_rpc_call *c, uint64_t now)
{
	struct smem_rpc *ch = c->ch;
	bool expired = false;

	if (c->deadline == UINT64_MAX || now < c->deadline || call_is_done(c))
		return;
	pthread_mutex_lock(&ch->lock);
	if (!call_is_done(c)) {
		call_complete(ch, c, -ETIMEDOUT);
		expired = true;
	}
	pthread_mutex_unlock(&ch->lock);
	if (expired)
		STAT_ADD(ch, timeouts, 1);
}

static int wait_calls(struct smem_rpc_call *const *calls, unsigned n, bool all,
		      uint64_t deadline)
{
	struct smem_rpc *chs[MAX_WAIT_CHANNELS];
	uint32_t evs[MAX_WAIT_CHANNELS];
	unsigned nch = 0, i, k, done;
	struct wait_set ws;
	uint64_t now, bound, spin_until;

	for (i = 0; i < n; i++) {
		for (k = 0; k < nch && chs[k] != calls[i]->ch; k++)
			;
		if (k == nch) {
			if (nch == MAX_WAIT_CHANNELS)
				return -EINVAL;
			chs[nch++] = calls[i]->ch;
		}
	}
	spin_until = 0;
	for (;;) {
		for (k = 0; k < nch; k++) {
			evs[k] = atomic_load(&chs[k]->ev);
			progress(chs[k]);
		}
		now = smem__now_ns();
		if (!spin_until)
			spin_until = now + chs[0]->spin_ns;
		bound = deadline == UINT64_MAX ? UINT64_MAX :
			(deadline > now ? deadline - now : 0);
		for (i = done = 0; i < n; i++) {
			call_expire(calls[i], now);
			if (call_is_done(calls[i]))
				done++;
			else if (calls[i]->deadline != UINT64_MAX)
				bound = min_u64(bound, calls[i]->deadline > now ?
						       calls[i]->deadline - now : 0);
		}
		if (done == n || (!all && done > 0))
			return (int)done;
		if (deadline != UINT64_MAX && now >= deadline)
			return -ETIMEDOUT;
		if (now < spin_until && bound > 0) {
			/* The peer answers within microseconds when it is busy: poll first. */
			cpu_relax();
			continue;
		}
		ws_init(&ws);
		for (k = 0; k < nch; k++)
			bound = min_u64(bound, ws_channel(&ws, chs[k], evs[k]));
		ws_sleep(&ws, chs[0], bound);
	}
}

int smem_rpc_call_async(struct smem_rpc *ch, const void *req, size_t len, int timeout_ms,
			struct smem_rpc_call **ret)
{
	return call_start(ch, req, len, timeout_ms, ret);
}

bool smem_rpc_call_done(const struct smem_rpc_call *call)
{
	return call && call_is_done(call);
}

int smem_rpc_call_result(struct smem_rpc_call *call, void **resp, size_t *resp_len)
{
	if (!call)
		return -EINVAL;
	if (!call_is_done(call))
		return -EINPROGRESS;
	if (call->status) {
		snprintf(tl_errmsg, sizeof(tl_errmsg), "%s", call->msg);
		return call->status;
	}
	if (resp) {
		*resp = call->resp;
		call->resp = NULL;
	}
	if (resp_len)
		*resp_len = call->resp_len;
	if (resp)
		call->resp_len = 0;
	return 0;
}

void smem_rpc_call_free(struct smem_rpc_call *call)
{
	struct smem_rpc *ch;

	if (!call)
		return;
	ch = call->ch;
	pthread_mutex_lock(&ch->lock);
	call_remove(ch, call);	/* a response that comes now is discarded and counted */
	pthread_mutex_unlock(&ch->lock);
	free(call->resp);
	free(call);
}

int smem_rpc_wait(struct smem_rpc_call *const *calls, unsigned n, unsigned flags,
		  int timeout_ms)
{
	unsigned i;

	if (!calls || n == 0 || n > 1024 || (flags & ~SMEM_RPC_WAIT_ALL))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!calls[i])
			return -EINVAL;
	return wait_calls(calls, n, flags & SMEM_RPC_WAIT_ALL, smem__deadline(timeout_ms));
}

int smem_rpc_call(struct smem_rpc *ch, const void *req, size_t len, void **resp,
		  size_t *resp_len, int timeout_ms)
{
	struct smem_rpc_call *c;
	int rc;

	tl_errmsg[0] = '\0';
	rc = call_start(ch, req, len, timeout_ms, &c);
	if (rc)
		return rc;
	rc = wait_calls(&c, 1, true, c->deadline);
	if (rc == -ETIMEDOUT) {
		/* Our own deadline: make the call's outcome say so too. */
		call_expire(c, c->deadline);
	}
	rc = smem_rpc_call_result(c, resp, resp_len);
	smem_rpc_call_free(c);
	return rc;
}

void smem_rpc_free_response(void *resp)
{
	free(resp);
}

const char *smem_rpc_last_error_message(void)
{
	return tl_errmsg;
}

/* ---- dispatch ----------------------------------------------------------------------------------- */

int smem_rpc_serve(struct smem_rpc *const *chs, unsigned n, int timeout_ms)
{
	uint64_t deadline = smem__deadline(timeout_ms), bound, spin_until;
	uint32_t evs[MAX_WAIT_CHANNELS];
	struct wait_set ws;
	unsigned k, live;
	int handled;

	if (!chs || n == 0 || n > MAX_WAIT_CHANNELS)
		return -EINVAL;
	for (k = 0; k < n; k++)
		if (!chs[k] || chs[k]->service != SMEM_RPC_SERVICE_DISPATCH)
			return -EINVAL;
	spin_until = smem__now_ns() + chs[0]->spin_ns;
	for (;;) {
		handled = 0;
		live = 0;
		for (k = 0; k < n; k++) {
			evs[k] = atomic_load(&chs[k]->ev);
			handled += progress(chs[k]);
			if (atomic_load_explicit(&chs[k]->state, memory_order_acquire) == 0 ||
			    chs[k]->role == SMEM_RPC_MASTER)
				live++;
		}
		if (handled)
			return handled;
		if (!live)
			return atomic_load(&chs[0]->state);	/* every channel failed */
		bound = smem__remaining_ns(deadline);
		if (bound == 0)
			return 0;
		if (smem__now_ns() < spin_until) {
			cpu_relax();
			continue;
		}
		ws_init(&ws);
		for (k = 0; k < n; k++) {
			bound = min_u64(bound, ws_channel(&ws, chs[k], evs[k]));
			if (chs[k]->role == SMEM_RPC_MASTER)
				ws_word(&ws, &chs[k]->ctl->event, atomic_load(&chs[k]->ctl->event));
		}
		ws_sleep(&ws, chs[0], bound);
	}
}

int smem_rpc_dispatch(struct smem_rpc *ch, int timeout_ms)
{
	return smem_rpc_serve(&ch, 1, timeout_ms);
}

/* ---- open and close ------------------------------------------------------------------------------ */

static int ctl_init(void *obj, size_t size, void *arg)
{
	struct smem_rpc_ctl *ctl = obj;

	(void)arg;
	if (size < sizeof(*ctl))
		return -EINVAL;
	ctl->magic = SMEM_RPC_CTL_MAGIC;
	ctl->version = SMEM_RPC_CTL_VERSION;
	return 0;
}

static int elect_lock(struct smem_rpc *ch, bool lock)
{
	struct flock fl = {
		.l_type = lock ? F_WRLCK : F_UNLCK,
		.l_whence = SEEK_SET,
		.l_start = SMEM_RPC_ELECT_BYTE,
		.l_len = 1,
	};

	while (fcntl(ch->reg->live_fd, lock ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void ring_name(char *buf, size_t len, const char *name, uint32_t gen, bool m2s)
{
	snprintf(buf, len, "%s.%u.%s", name, gen, m2s ? "m2s" : "s2m");
}

static bool end_ok(struct smem_rpc *ch, const struct smem_rpc_ctl_end *e, uint32_t s)
{
	uint32_t id = atomic_load_explicit(&e->live_id, memory_order_relaxed);

	return s && id && atomic_load_explicit(&e->session, memory_order_relaxed) == s &&
	       !(atomic_load_explicit(&e->flags, memory_order_relaxed) & SMEM_RPC_END_CLOSED) &&
	       smem__live_alive(ch->reg, id);
}

static void end_fill(struct smem_rpc *ch, struct smem_rpc_ctl_end *e, uint32_t s)
{
	uint64_t dev = 0, ino = 0;

	pidns_id(&dev, &ino);
	e->pid = (uint32_t)getpid();
	e->pidns_dev = dev;
	e->pidns_ino = ino;
	e->max_message = ch->max_message;
	memset(e->reserved, 0, sizeof(e->reserved));
	atomic_store_explicit(&e->flags, 0, memory_order_relaxed);
	atomic_store_explicit(&e->session, s, memory_order_relaxed);
	atomic_store_explicit(&e->live_id, ch->reg->live_id, memory_order_relaxed);
}

/* Under the election lock: decide our role and set the channel up (see the top comment). */
static int elect(struct smem_rpc *ch, const char *name, const struct smem_rpc_opts *o,
		 uint32_t node_count, uint32_t node_size)
{
	struct smem_rpc_ctl *ctl = ch->ctl;
	struct smem_rpc_ctl_end *m = &ctl->end[SMEM_RPC_MASTER], *sl = &ctl->end[SMEM_RPC_SLAVE];
	char n1[SMEM_NAME_MAX + 1], n2[SMEM_NAME_MAX + 1];
	uint32_t s = atomic_load_explicit(&ctl->session, memory_order_acquire), ns, gen;
	const struct smem_opts *base = o ? &o->base : NULL;
	int rc;

	if (!end_ok(ch, m, s)) {
		ns = s + 1 ? s + 1 : 1;
		ring_name(n1, sizeof(n1), name, ns, true);
		ring_name(n2, sizeof(n2), name, ns, false);
		rc = smem_ring_create(n1, node_count, node_size, base, &ch->tx);
		if (rc)
			return rc;
		rc = smem_ring_create(n2, node_count, node_size, base, &ch->rx);
		if (rc)
			return rc;
		ch->role = SMEM_RPC_MASTER;
		end_fill(ch, m, ns);
		atomic_store_explicit(&sl->live_id, 0, memory_order_relaxed);
		atomic_store_explicit(&sl->session, 0, memory_order_relaxed);
		atomic_store_explicit(&ctl->ring_gen, ns, memory_order_relaxed);
	} else {
		uint32_t sid = atomic_load_explicit(&sl->live_id, memory_order_relaxed);

		if (end_ok(ch, sl, s))
			return -EBUSY;
		/* A slave of this session existed (and is gone): a new session, same rings. */
		ns = (atomic_load_explicit(&sl->session, memory_order_relaxed) == s && sid) ?
		     (s + 1 ? s + 1 : 1) : s;
		gen = atomic_load_explicit(&ctl->ring_gen, memory_order_relaxed);
		ring_name(n1, sizeof(n1), name, gen, true);
		ring_name(n2, sizeof(n2), name, gen, false);
		rc = smem_ring_open(n1, base, &ch->rx);
		if (rc)
			return rc == -ENOENT ? -EPROTO : rc;
		rc = smem_ring_open(n2, base, &ch->tx);
		if (rc)
			return rc == -ENOENT ? -EPROTO : rc;
		ch->role = SMEM_RPC_SLAVE;
		end_fill(ch, sl, ns);
		atomic_store_explicit(&m->session, ns, memory_order_relaxed);
	}
	atomic_store_explicit(&ch->session, ns, memory_order_relaxed);
	/* Release: the records above are visible to whoever acquires the new session. */
	atomic_store_explicit(&ctl->session, ns, memory_order_release);
	atomic_fetch_add_explicit(&ctl->event, 1, memory_order_release);
	smem__futex_wake(&ctl->event, INT_MAX);
	return 0;
}

static int geometry(struct smem_rpc *ch)
{
	uint32_t a = smem_ring_node_size(ch->tx), b = smem_ring_node_size(ch->rx);

	if (a != b || a < MIN_NODE_SIZE || a > MAX_NODE_SIZE)
		return -EPROTO;
	ch->per = a - SMEM_RPC_HDR_SIZE;
	return 0;
}

static void channel_free(struct smem_rpc *ch)
{
	struct inreq *q;

	smem_ring_close(ch->tx);
	smem_ring_close(ch->rx);
	smem_region_close(ch->reg);
	while ((q = ch->q_head)) {
		ch->q_head = q->next;
		free(q->data);
		free(q);
	}
	asm_clear(ch);
	if (ch->peer_pidfd >= 0)
		close(ch->peer_pidfd);
	pthread_mutex_destroy(&ch->lock);
	pthread_mutex_destroy(&ch->pump);
	free(ch);
}

int smem_rpc_open(const char *name, const struct smem_rpc_opts *o, struct smem_rpc **ret)
{
	uint32_t node_count = o && o->node_count ? o->node_count : DEFAULT_NODES;
	uint32_t node_size = o && o->node_size ? o->node_size : DEFAULT_NODE_SIZE;
	const struct smem_opts *base = o ? &o->base : NULL;
	struct smem_rpc *ch;
	int rc, tries;

	rc = smem__name_check(name);
	if (rc)
		return rc;
	if (!ret || strlen(name) > SMEM_NAME_MAX - NAME_ROOM || node_count < 2 ||
	    node_size < MIN_NODE_SIZE || node_size > MAX_NODE_SIZE ||
	    (o && (o->service > SMEM_RPC_SERVICE_DISPATCH || o->reply_timeout_ms < 0 ||
		   o->max_message > SMEM_RPC_MAX_MESSAGE)) ||
	    (base && (base->flags & SMEM_RDONLY)))
		return -EINVAL;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	pthread_mutex_init(&ch->lock, NULL);
	pthread_mutex_init(&ch->pump, NULL);
	ch->peer_pidfd = -1;
	ch->next_id = 1;
	ch->max_message = o && o->max_message ? o->max_message : DEFAULT_MAX_MESSAGE;
	ch->reply_timeout_ms = o && o->reply_timeout_ms ? o->reply_timeout_ms : DEFAULT_REPLY_MS;
	ch->handler = o ? o->handler : NULL;
	ch->handler_arg = o ? o->handler_arg : NULL;
	ch->service = o ? o->service : SMEM_RPC_SERVICE_THREAD;
	ch->spin_ns = !o || !o->spin_ns ? DEFAULT_SPIN_NS :
		      o->spin_ns == SMEM_RPC_NO_SPIN ? 0 : o->spin_ns;
	smem_rpc_stats_reset(ch);

	/* Open, or create when missing; a name that vanishes or appears meanwhile: retry. */
	for (tries = 0; tries < 100; tries++) {
		rc = smem__region_open(name, SMEM_KIND_RPC, base, &ch->reg);
		if (rc != -ENOENT)
			break;
		rc = smem__region_create(name, SMEM_KIND_RPC, sizeof(struct smem_rpc_ctl), ctl_init,
					 NULL, base, &ch->reg);
		if (rc != -EEXIST)
			break;
	}
	if (rc)
		goto fail;
	ch->ctl = ch->reg->obj;
	if (ch->reg->obj_size < sizeof(struct smem_rpc_ctl) ||
	    ch->ctl->magic != SMEM_RPC_CTL_MAGIC || ch->ctl->version != SMEM_RPC_CTL_VERSION) {
		rc = -EPROTO;
		goto fail;
	}
	rc = smem__live_join(ch->reg);
	if (rc)
		goto fail;
	rc = elect_lock(ch, true);
	if (rc)
		goto fail;
	rc = elect(ch, name, o, node_count, node_size);
	elect_lock(ch, false);
	if (rc)
		goto fail;
	rc = geometry(ch);
	if (rc)
		goto fail;
	if (ch->service == SMEM_RPC_SERVICE_THREAD) {
		rc = -pthread_create(&ch->thread, NULL, service_main, ch);
		if (rc)
			goto fail;
		ch->has_thread = true;
	}
	atomic_fetch_add(&open_channels, 1);
	*ret = ch;
	return 0;
fail:
	channel_free(ch);
	return rc;
}

void smem_rpc_close(struct smem_rpc *ch)
{
	struct smem_rpc_ctl_end *me;

	if (!ch)
		return;
	atomic_store_explicit(&ch->stopping, true, memory_order_release);
	ev_bump(ch);
	if (ch->has_thread)
		pthread_join(ch->thread, NULL);
	/* Tell the peer we left cleanly, before our liveness slot goes. */
	me = &ch->ctl->end[ch->role];
	if (elect_lock(ch, true) == 0) {
		if (atomic_load_explicit(&me->live_id, memory_order_relaxed) == ch->reg->live_id)
			atomic_fetch_or_explicit(&me->flags, SMEM_RPC_END_CLOSED,
						 memory_order_release);
		atomic_fetch_add_explicit(&ch->ctl->event, 1, memory_order_release);
		smem__futex_wake(&ch->ctl->event, INT_MAX);
		elect_lock(ch, false);
	}
	channel_fail(ch, -ESHUTDOWN);
	channel_free(ch);
	if (atomic_fetch_sub(&open_channels, 1) == 1)
		smem__wait_thread_release();
}

/* ---- accessors and statistics ---------------------------------------------------------------- */

bool smem_rpc_is_master(const struct smem_rpc *ch)
{
	return ch && ch->role == SMEM_RPC_MASTER;
}

size_t smem_rpc_packet_payload(const struct smem_rpc *ch)
{
	return ch ? ch->per : 0;
}

struct smem_ring *smem__rpc_tx(const struct smem_rpc *ch)
{
	return ch->tx;
}

struct smem_ring *smem__rpc_rx(const struct smem_rpc *ch)
{
	return ch->rx;
}

uint32_t smem__rpc_session(const struct smem_rpc *ch)
{
	return my_session(ch);
}

#define LOAD(f) atomic_load_explicit(&ch->st.f, memory_order_relaxed)

int smem_rpc_stats(const struct smem_rpc *ch, struct smem_rpc_stats *out)
{
	if (!ch || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->overhead_per_packet = SMEM_RPC_HDR_SIZE;
	out->wait_backend = (uint32_t)smem__wait_backend();
	out->requests_sent = LOAD(requests_sent);
	out->responses_sent = LOAD(responses_sent);
	out->errors_sent = LOAD(errors_sent);
	out->requests_received = LOAD(requests_received);
	out->responses_received = LOAD(responses_received);
	out->errors_received = LOAD(errors_received);
	out->packets_sent = LOAD(packets_sent);
	out->packets_received = LOAD(packets_received);
	out->bytes_sent = LOAD(bytes_sent);
	out->bytes_received = LOAD(bytes_received);
	out->max_packet_sent = LOAD(max_packet_sent);
	out->max_packet_received = LOAD(max_packet_received);
	out->last_packet_sent = LOAD(last_packet_sent);
	out->last_packet_received = LOAD(last_packet_received);
	out->last_message_sent = LOAD(last_message_sent);
	out->last_message_received = LOAD(last_message_received);
	out->timeouts = LOAD(timeouts);
	out->discarded_responses = LOAD(discarded_responses);
	out->last_discarded_id = LOAD(last_discarded_id);
	out->protocol_errors = LOAD(protocol_errors);
	out->stale_packets = LOAD(stale_packets);
	out->peer_resets = LOAD(peer_resets);
	out->max_wait_write_ns = LOAD(max_wait_write_ns);
	out->max_wait_read_ns = LOAD(max_wait_read_ns);
	out->sleeps = LOAD(sleeps);
	return 0;
}

void smem_rpc_stats_reset(struct smem_rpc *ch)
{
	if (!ch)
		return;
	STAT_SET(ch, requests_sent, 0);
	STAT_SET(ch, responses_sent, 0);
	STAT_SET(ch, errors_sent, 0);
	STAT_SET(ch, requests_received, 0);
	STAT_SET(ch, responses_received, 0);
	STAT_SET(ch, errors_received, 0);
	STAT_SET(ch, packets_sent, 0);
	STAT_SET(ch, packets_received, 0);
	STAT_SET(ch, bytes_sent, 0);
	STAT_SET(ch, bytes_received, 0);
	STAT_SET(ch, max_packet_sent, 0);
	STAT_SET(ch, max_packet_received, 0);
	STAT_SET(ch, last_packet_sent, -1);
	STAT_SET(ch, last_packet_received, -1);
	STAT_SET(ch, last_message_sent, -1);
	STAT_SET(ch, last_message_received, -1);
	STAT_SET(ch, timeouts, 0);
	STAT_SET(ch, discarded_responses, 0);
	STAT_SET(ch, last_discarded_id, 0);
	STAT_SET(ch, protocol_errors, 0);
	STAT_SET(ch, stale_packets, 0);
	STAT_SET(ch, peer_resets, 0);
	STAT_SET(ch, max_wait_write_ns, 0);
	STAT_SET(ch, max_wait_read_ns, 0);
	STAT_SET(ch, sleeps, 0);
}
