/* SPDX-License-Identifier: MIT */
/*
 * RPC internals shared by the rpc*.c files and the tests: the control region's layout
 * (docs/PROTOCOL.md, "RPC protocol"), the process-local channel state, and the functions each
 * layer offers the layers above it. The election is described at the top of rpc.c.
 *
 * The files are layers; a file calls only files listed before it (tests/check-layers checks
 * this on the objects, in make check):
 *
 *   rpc_proto.c     packets: the wire header, splitting, checking, reassembly
 *   rpc_wait.c      event words and wait sets: sleeping on many channels at once
 *   rpc_pool.c      pools: spare call objects, request entries, large-request buffers
 *   rpc_pending.c   the pending-call table: add, resolve, expire, fail, forget
 *   rpc_queue.c     the request queue, and which thread may take from it
 *   rpc_peer.c      the peer: liveness, session adoption, the channel's failure; the RPC
 *                   waiter (every RPC wait is the wait engine's loop over a wait set)
 *   rpc_recv.c      the receive path: pump, reassembly, delivery
 *   rpc_send.c      the transmit path: packets out, waiting for room, cancels
 *   rpc_progress.c  the progress engine: pump, flush, run handlers; what a waiter sleeps on
 *   rpc_serve.c     serving: the service thread, smem_rpc_serve/dispatch, the reply API
 *   rpc_call.c      the call API: calls, waits, results
 *   rpc.c           the channel: open (election), close, accessors, statistics
 */
#ifndef SMEM_RPC_INT_H
#define SMEM_RPC_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <smem/rpc.h>
#include <smem/ring.h>

#include "rpc_proto_int.h"
#include "wait.h"

#define SMEM_RPC_CTL_MAGIC	0x314350524d454d53ull	/* "SMEMRPC1" little-endian */
#define SMEM_RPC_CTL_VERSION	1u
/* Byte of the control memfd whose OFD write lock serialises elections and departures. */
#define SMEM_RPC_ELECT_BYTE	4000u

enum { SMEM_RPC_MASTER = 0, SMEM_RPC_SLAVE = 1 };
#define SMEM_RPC_END_CLOSED	1u	/* the endpoint closed cleanly */

/* One endpoint's record. Written under the election lock; read by the peer without it. */
struct smem_rpc_ctl_end {
	_Atomic uint32_t live_id;	/*  0: liveness id in the control region (live.c); 0: free */
	_Atomic uint32_t session;	/*  4: the session it belongs to */
	_Atomic uint32_t flags;		/*  8: SMEM_RPC_END_* */
	uint32_t pid;			/* 12: in its own pid namespace */
	uint64_t pidns_dev;		/* 16: st_dev of its /proc/self/ns/pid */
	uint64_t pidns_ino;		/* 24: st_ino of the same */
	uint64_t max_message;		/* 32: the largest message it accepts */
	uint8_t reserved[24];		/* 40: zero */
};

struct smem_rpc_ctl {
	uint64_t magic;			/*   0: SMEM_RPC_CTL_MAGIC (written before the region is
					 *      published, so no ordering of its own) */
	uint32_t version;		/*   8: SMEM_RPC_CTL_VERSION */
	uint32_t reserved0;		/*  12 */
	_Atomic uint32_t session;	/*  16: current session (0: none yet), release-stored last */
	_Atomic uint32_t event;		/*  20: bumped (and woken) on every election or departure */
	_Atomic uint32_t ring_gen;	/*  24: the rings are "<name>.<ring_gen>.m2s" / ".s2m" */
	uint32_t reserved1;		/*  28 */
	uint8_t reserved2[32];		/*  32 */
	struct smem_rpc_ctl_end end[2];	/*  64: [SMEM_RPC_MASTER], [SMEM_RPC_SLAVE] */
};

_Static_assert(sizeof(struct smem_rpc_ctl_end) == 64, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, session) == 4, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, flags) == 8, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, pid) == 12, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, pidns_dev) == 16, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, pidns_ino) == 24, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, max_message) == 32, "layout");
_Static_assert(sizeof(struct smem_rpc_ctl) == 192, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, session) == 16, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, event) == 20, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, ring_gen) == 24, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, end) == 64, "layout");

/* Is @reg's object area a control block of this version? (rpc.c's open; smemctl's stat) */
static inline bool smem__rpc_ctl_ok(const struct smem_region *reg)
{
	const struct smem_rpc_ctl *ctl = reg->obj;

	return reg->obj_size >= sizeof(*ctl) && ctl->magic == SMEM_RPC_CTL_MAGIC &&
	       ctl->version == SMEM_RPC_CTL_VERSION;
}

/* ---- the process-local channel --------------------------------------------------------- */

#define SMEM__RPC_DEFAULT_NODES		16u
#define SMEM__RPC_DEFAULT_NODE_SIZE	65536u
#define SMEM__RPC_MIN_NODE_SIZE		256u
#define SMEM__RPC_MAX_NODE_SIZE		(64u << 20)
#define SMEM__RPC_DEFAULT_MAX_MESSAGE	(64ull << 20)
#define SMEM__RPC_DEFAULT_REPLY_MS	30000
#define SMEM__RPC_NAME_ROOM		24	/* ".<gen>.m2s" */
#define SMEM__RPC_CALL_BUCKETS		256u
#define SMEM__RPC_MAX_ASSEMBLIES	256u
#define SMEM__RPC_PUMP_BUDGET		1024u
/* How often the peer is checked: without a pidfd; with one (belt and braces). */
#define SMEM__RPC_LIVE_POLL_NS		(20ull * 1000 * 1000)
#define SMEM__RPC_LIVE_RECHECK_NS	(1000ull * 1000 * 1000)
/* The longest sleep: ring recovery needs us to look again. */
#define SMEM__RPC_MAX_SLEEP_NS		(50ull * 1000 * 1000)
#define SMEM__RPC_MAX_NESTING		32
#define SMEM__RPC_MAX_WAIT_CHANNELS	32u
#define SMEM__RPC_DEFAULT_SPIN_NS	20000u
/* The service thread beside a poller rechecks this often, and at most this seldom beside one
 * that stays (which wakes it when it leaves). */
#define SMEM__RPC_POLLER_RECHECK_NS	(1000ull * 1000)
#define SMEM__RPC_POLLER_RECHECK_MAX_NS	(64ull * 1000 * 1000)

struct smem_rpc_call {
	struct smem_rpc *ch;
	uint64_t id;
	uint64_t deadline;
	_Atomic int done;		/* release-stored once status/resp are final */
	int status;
	void *resp;
	size_t resp_len;
	bool in_table;			/* under ch->lock; false for good once done is set */
	bool on_stack;			/* a synchronous call's: never freed or recycled */
	struct smem_rpc_call *next;	/* hash chain, under ch->lock */
	char msg[SMEM_RPC_ERRMSG_MAX];
};

/* A received request waiting for a thread that may run it. */
struct smem__rpc_req {
	struct smem__rpc_req *next;
	uint64_t id;
	uint32_t session;
	uint32_t cap;			/* bytes of room[] (0: data is a separate malloc) */
	uint8_t *data;
	size_t len;
	size_t bufcap;			/* cap == 0: the malloc'd size of data */
	uint8_t room[];			/* req_room bytes: the payload of a small request */
};

struct smem__rpc_assembly;	/* a partial message (rpc_recv.c) */

struct smem_rpc_reply {
	void *data;
	size_t len;
	uint64_t max;
	char msg[SMEM_RPC_ERRMSG_MAX];
};

/*
 * Counters. The receive side's (marked R) are written only by the pump lock's holder, one thread at
 * a time, so they are bumped with a relaxed load and store (SMEM__RPC_STAT_BUMP), not a locked
 * read-modify-write; the others may be bumped by several threads at once (SMEM__RPC_STAT_ADD).
 */
struct smem__rpc_counters {
	_Atomic uint64_t requests_sent, responses_sent, errors_sent;
	_Atomic uint64_t requests_received, responses_received, errors_received;	/* R */
	_Atomic uint64_t packets_sent, bytes_sent;
	_Atomic uint64_t packets_received, bytes_received;				/* R */
	_Atomic uint64_t max_packet_sent, max_packet_received;
	_Atomic int64_t last_packet_sent, last_packet_received;
	_Atomic int64_t last_message_sent, last_message_received;
	_Atomic uint64_t timeouts, discarded_responses, last_discarded_id;
	_Atomic uint64_t protocol_errors, stale_packets, peer_resets;
	_Atomic uint64_t max_wait_write_ns, max_wait_read_ns, sleeps;
	_Atomic uint64_t partials_cancelled, partials_expired;			/* R */
	_Atomic uint64_t missed_wakeups;
};

#define SMEM__RPC_REQ_ROOM_MAX		4096u
#define SMEM__RPC_SPARE_BUFS		4u
#define SMEM__RPC_SPARE_BUF_MAX		(16u << 20)
/* Abandoned messages whose CANCEL still waits for room, at most. */
#define SMEM__RPC_MAX_CANCELS		16u
#define SMEM__RPC_PARTIAL_EXPIRY_NS	(30ull * 1000 * 1000 * 1000)

struct smem_rpc {
	struct smem_region *reg;	/* the control region */
	struct smem_rpc_ctl *ctl;
	struct smem_ring *tx, *rx;
	int role;
	_Atomic uint32_t session;
	uint32_t per;			/* payload bytes per packet (private geometry) */
	uint32_t req_room;		/* requests up to this size travel inside their entry */
	uint64_t max_message;
	int reply_timeout_ms;
	smem_rpc_handler_fn handler;
	void *handler_arg;
	uint32_t service;
	uint32_t spin_ns;
	uint64_t partial_expiry_ns;

	pthread_mutex_t lock;		/* calls, queue, peer state, cancels */
	struct smem_rpc_call *calls[SMEM__RPC_CALL_BUCKETS];
	struct smem__rpc_req *q_head, *q_tail;
	_Atomic unsigned qlen;		/* written under lock; read without it as a hint */
	_Atomic int state;		/* 0, or the error every call gets (-ECONNRESET...) */
	/* The peer as last seen: written under lock, read without it (relaxed) on fast paths. */
	_Atomic uint32_t peer_id;
	_Atomic uint64_t peer_max;
	int peer_pidfd;			/* under lock */
	_Atomic uint64_t next_live_check;	/* coarse clock */
	_Atomic uint64_t live_every_ns;	/* how often the peer's liveness is checked */
	_Atomic uint64_t next_id;
	/* Messages abandoned partway whose CANCEL found no room yet (under lock). */
	struct {
		uint64_t msg_id, response_to;
		uint32_t session;
	} cancels[SMEM__RPC_MAX_CANCELS];
	_Atomic unsigned ncancels;

	/* One spare of each, so a steady stream of calls allocates nothing (exchanged). */
	_Atomic(struct smem_rpc_call *) spare_call;
	_Atomic(struct smem__rpc_req *) spare_req;
	/* Spare buffers for large requests (under lock): no mmap/munmap and page faults for every
	 * large message. At most SMEM__RPC_SPARE_BUFS, SMEM__RPC_SPARE_BUF_MAX bytes in all. */
	struct {
		void *p;
		size_t cap;
	} spare_buf[SMEM__RPC_SPARE_BUFS];
	size_t spare_buf_bytes;

	pthread_mutex_t pump;		/* trylock only: receive ring and assemblies */
	_Atomic bool pumping;
	_Atomic bool pump_skipped;
	struct smem__rpc_assembly *asms;
	_Atomic unsigned nasm;		/* written by the pump's holder; read as a hint */
	uint32_t asm_session;

	_Atomic uint32_t ev;
	_Atomic uint32_t ev_sleepers;
	/* The service thread's own event word: requests queued by other threads, stopping. */
	_Atomic uint32_t sev;
	_Atomic uint32_t sev_sleepers;
	/* When a wake on ev / sev last returned (CLOCK_MONOTONIC ns): see bump() in rpc_wait.c. */
	_Atomic uint64_t ev_wake_ns, sev_wake_ns;
	/*
	 * Threads inside a waiting loop on this channel (they pump its ring themselves): the low
	 * 16 bits count them, the high 16 bits count entries, so that a caller making call after
	 * call is seen even between two calls.
	 */
	_Atomic uint32_t pollers;
	/*
	 * The service thread sleeps beside a caller that has been waiting for a while (a long
	 * call), on sev only and longer than SMEM__RPC_POLLER_RECHECK_NS: the last poller to leave
	 * bumps sev (smem__rpc_poll_leave()). Set and cleared by the service thread only.
	 */
	_Atomic bool sev_on_leave;

	pthread_t thread;
	bool has_thread;
	_Atomic bool stopping;
	/*
	 * A channel of a service (service.c): the region is the service's, shared with the other
	 * channels of the process (not closed with the channel), and the client's slot index. A
	 * client's channel also rings the service's doorbell (bell, in shared memory) after each
	 * packet it commits, so that one server sleeps on one word for all its clients; NULL
	 * for plain channels and for the server's.
	 */
	bool reg_borrowed;
	int32_t svc_slot;		/* -1: not a service channel */
	_Atomic uint32_t *bell, *bell_sleepers;
	struct smem__rpc_counters st;
};

#define SMEM__RPC_STAT_ADD(ch, f, n) \
	atomic_fetch_add_explicit(&(ch)->st.f, (n), memory_order_relaxed)
#define SMEM__RPC_STAT_SET(ch, f, v) \
	atomic_store_explicit(&(ch)->st.f, (v), memory_order_relaxed)
/* For the counters only the pump lock's holder writes (see struct smem__rpc_counters). */
#define SMEM__RPC_STAT_BUMP(ch, f, n) \
	SMEM__RPC_STAT_SET(ch, f, atomic_load_explicit(&(ch)->st.f, memory_order_relaxed) + (n))

static inline void smem__rpc_stat_max(_Atomic uint64_t *m, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);

	while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed,
								memory_order_relaxed))
		;
}

static inline uint64_t smem__rpc_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* CLOCK_MONOTONIC_COARSE: for rate limits and expiry, where a few ms of error do not matter. */
static inline uint64_t smem__rpc_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint32_t smem__rpc_my_session(const struct smem_rpc *ch)
{
	return atomic_load_explicit(&ch->session, memory_order_acquire);
}

/* A call's outcome is final. Acquire: pairs with the release in rpc_pending.c's completion. */
static inline bool smem__rpc_call_is_done(const struct smem_rpc_call *c)
{
	return atomic_load_explicit(&c->done, memory_order_acquire) != 0;
}

/* ---- rpc_wait.c: event words and wait sets ------------------------------------------------- */

/*
 * Items one channel can add to a wait set, at most: its event word, its receive ring's data word,
 * its peer's pidfd, and (smem_rpc_serve() of a master) its control region's event word.
 * smem_rpc_serve() and smem_rpc_wait*() take up to SMEM__RPC_MAX_WAIT_CHANNELS channels, so the
 * largest wait set is their product; the service thread's (one channel plus its sev word) is
 * smaller.
 */
#define SMEM__RPC_WS_PER_CHANNEL	4u
_Static_assert(SMEM__RPC_MAX_WAIT_CHANNELS * SMEM__RPC_WS_PER_CHANNEL <= SMEM__WAIT_MAX,
	       "smem_rpc_serve() over SMEM__RPC_MAX_WAIT_CHANNELS channels must fit one wait");

struct smem__rpc_ws {
	struct smem__wait_item it[SMEM__WAIT_MAX];
	struct smem__wait_set set;	/* over it[]; set.err: -E2BIG, an item did not fit */
	struct smem_rpc *ich[SMEM__WAIT_MAX];	/* the channel each item is for */
	/* Where the item's wakers stamp their last wake (NULL: they do not; see count_missed()) */
	_Atomic uint64_t *wake_ns[SMEM__WAIT_MAX];
	struct {
		struct smem_ring *r;
		bool wr;
	} prep[SMEM__WAIT_MAX];
	unsigned np;
	_Atomic uint32_t *evsl[SMEM__WAIT_MAX];	/* sleeper counts to drop after the sleep */
	unsigned nev;
	struct smem_rpc *pidch[SMEM__WAIT_MAX];
	unsigned pidbase[SMEM__WAIT_MAX];
	unsigned npid;
	bool ready;			/* some condition already holds: do not sleep */
	/* Between smem__rpc_ws_arm() and smem__rpc_ws_disarm(): the sleep being measured. */
	bool slept;			/* arm let it sleep */
	struct smem_rpc *stat_ch;	/* counts the sleep (NULL: none) */
	uint64_t t0, bound, rd0;	/* its start, its bound, the run delay before it */
};

/* Bump the channel's event word (service event word), waking its sleepers (if any). */
void smem__rpc_ev_bump(struct smem_rpc *ch);
void smem__rpc_sev_bump(struct smem_rpc *ch);
/* Ring the service doorbell of a client's channel (no-op without one). See struct smem_rpc. */
void smem__rpc_bell(struct smem_rpc *ch);
/* Bump a doorbell word, waking its sleepers (if any). */
void smem__rpc_bell_ring(_Atomic uint32_t *bell, _Atomic uint32_t *sleepers);
/* A thread enters / leaves a waiting loop on @ch (see smem__rpc_service_main()). */
#define SMEM__RPC_POLLERS_ACTIVE(w)	((w) & 0xffffu)
#define SMEM__RPC_POLLERS_ENTRIES(w)	((w) >> 16)

static inline void smem__rpc_poll_enter(struct smem_rpc *ch)
{
	atomic_fetch_add_explicit(&ch->pollers, 0x10001u, memory_order_relaxed);	/* a hint */
}

static inline void smem__rpc_poll_leave(struct smem_rpc *ch)
{
	/* seq_cst, with the load: pairs with the service thread's store of sev_on_leave and
	 * its second look at pollers (rpc_serve.c), so one of the two sees the other. */
	if (SMEM__RPC_POLLERS_ACTIVE(atomic_fetch_sub(&ch->pollers, 1)) == 1 &&
	    atomic_load(&ch->sev_on_leave))
		smem__rpc_sev_bump(ch);
}

/*
 * Building a wait set. An item that does not fit (more than SMEM__WAIT_MAX) is not dropped
 * silently: the adder returns -E2BIG and so does the sleep, which then does not sleep (a
 * sleep that misses an item could miss its wakeup). The static assert above keeps the
 * library's own callers within the capacity.
 */
void smem__rpc_ws_init(struct smem__rpc_ws *ws);
int smem__rpc_ws_word(struct smem__rpc_ws *ws, struct smem_rpc *ch, _Atomic uint32_t *w,
		      uint32_t v);
int smem__rpc_ws_ev(struct smem__rpc_ws *ws, struct smem_rpc *ch, uint32_t v);
int smem__rpc_ws_sev(struct smem__rpc_ws *ws, struct smem_rpc *ch, uint32_t v);
/*
 * An event word of no channel (a service's doorbell), with its sleeper count: announced like
 * ev (the count is dropped after the sleep), from snapshot @v.
 */
int smem__rpc_ws_event(struct smem__rpc_ws *ws, _Atomic uint32_t *word,
		       _Atomic uint32_t *sleepers, uint32_t v);
int smem__rpc_ws_ring(struct smem__rpc_ws *ws, struct smem_rpc *ch, struct smem_ring *r,
		      bool wr);
int smem__rpc_ws_rx(struct smem__rpc_ws *ws, struct smem_rpc *ch);
int smem__rpc_ws_peer(struct smem__rpc_ws *ws, struct smem_rpc *ch);
uint64_t smem__rpc_peer_poll_bound(struct smem_rpc *ch);
/*
 * The end of a wait's arm (smem__waiter, wait.h), once the set is filled: lowers *max_ns to
 * SMEM__RPC_MAX_SLEEP_NS, or to 0 (look again, no sleep) when ws->ready, and counts the sleep in
 * @stat_ch (NULL: nowhere). A sleep that runs out a safety bound although a wake on a word it
 * watched returned during it counts in missed_wakeups, at the disarm.
 */
void smem__rpc_ws_arm(struct smem__rpc_ws *ws, struct smem_rpc *stat_ch, uint64_t *max_ns);
/* After the sleep (@fired: the engine's; -1 when it did not sleep): measure it, undo. */
void smem__rpc_ws_disarm(struct smem__rpc_ws *ws, int fired);
/*
 * Undo the set's announcements; fired pidfds are left to the caller (the RPC waiter's disarm,
 * rpc_peer.c, looks at those peers).
 */
void smem__rpc_ws_done(struct smem__rpc_ws *ws, int fired);
/* Close the calling thread's schedstat file (reopened on demand). */
void smem__rpc_wait_thread_release(void);

/* ---- rpc_pool.c: spares ------------------------------------------------------------------- */

/* A spare buffer that holds @len bytes (*cap set to its size); NULL: none, allocate one. */
void *smem__rpc_buf_get(struct smem_rpc *ch, uint64_t len, size_t *cap);
/* Give back a large request's buffer (@cap bytes, malloc'd): kept as a spare, or freed. */
void smem__rpc_buf_put(struct smem_rpc *ch, void *buf, size_t cap);
/*
 * A queue entry for a request of @len bytes. Small ones carry the payload in the entry itself
 * (the channel's spare entry when it has one); larger ones in a buffer from the spares or
 * malloc (q->data set, q->bufcap its size). With @buf (malloc'd, @bufcap bytes), the entry
 * takes that buffer. NULL: no memory.
 */
struct smem__rpc_req *smem__rpc_req_new(struct smem_rpc *ch, size_t len, void *buf,
					size_t bufcap);
/* A handled request: its entry or its buffer kept as a spare (or freed). */
void smem__rpc_req_recycle(struct smem_rpc *ch, struct smem__rpc_req *q);
/* Free an entry and its buffer (not recycled). */
void smem__rpc_req_destroy(struct smem__rpc_req *q);
/* A call object: the channel's spare if it has one (a steady stream allocates nothing). */
struct smem_rpc_call *smem__rpc_call_new(struct smem_rpc *ch);
/* A released call object: kept as the spare (the previous spare is freed). */
void smem__rpc_call_recycle(struct smem_rpc *ch, struct smem_rpc_call *c);
/* Free every spare (the channel being freed). */
void smem__rpc_pools_free(struct smem_rpc *ch);

/* ---- rpc_pending.c: the pending-call table ----------------------------------------------- */

/* Put @c (its id set) in the table unless the channel failed: 0, or the channel's error. */
int smem__rpc_call_add(struct smem_rpc *ch, struct smem_rpc_call *c);
/* Take @c out of the table if it is still there (its caller gives up on it). */
void smem__rpc_call_forget(struct smem_rpc *ch, struct smem_rpc_call *c);
/* Time out @c if its deadline passed (counted in timeouts). */
void smem__rpc_call_expire(struct smem_rpc_call *c, uint64_t now);
/* Under ch->lock: complete every pending call with @err; returns how many. */
unsigned smem__rpc_calls_fail(struct smem_rpc *ch, int err);
/* Is a call with this id pending? (takes ch->lock) */
bool smem__rpc_call_pending(struct smem_rpc *ch, uint64_t id);
/*
 * A complete response or error for the call @response_to (takes ch->lock). A response's
 * payload *buf (malloc'd, @len bytes) moves to the call (*buf set to NULL); an error's message
 * is copied from *buf. Returns false when no such call is pending (late or abandoned).
 */
bool smem__rpc_call_resolve(struct smem_rpc *ch, uint8_t type, uint64_t response_to,
			    int32_t error, void **buf, size_t len);

/* ---- rpc_queue.c: the request queue ------------------------------------------------------ */

extern _Thread_local const struct smem_rpc *smem__rpc_tl_service;	/* a service thread's channel */
extern _Thread_local int smem__rpc_tl_depth;	/* handlers running on this thread */

/* May this thread run @ch's handler now? */
bool smem__rpc_may_serve(const struct smem_rpc *ch);
/* Queue a received request (takes ownership) and wake whoever may run it. */
void smem__rpc_queue_push(struct smem_rpc *ch, struct smem__rpc_req *q);
/* The oldest request, if this thread may run it; NULL otherwise. */
struct smem__rpc_req *smem__rpc_queue_pop(struct smem_rpc *ch);
/* Are there queued requests this thread may run? */
bool smem__rpc_may_run_queue(struct smem_rpc *ch);
/* Under ch->lock: empty the queue; the caller frees what it returns. */
struct smem__rpc_req *smem__rpc_queue_take_all(struct smem_rpc *ch);
/* Free a list of queued requests (not recycled). */
void smem__rpc_queue_free(struct smem__rpc_req *q);

/* ---- rpc_peer.c: the peer and the channel's failure --------------------------------------- */

/* Look at the control region (session, peer arrival/departure/death); returns the state. */
int smem__rpc_refresh(struct smem_rpc *ch, bool force);
/* The channel failed: every pending call gets @err, and so will every new one. */
void smem__rpc_fail(struct smem_rpc *ch, int err);
/*
 * Fill an endpoint record for this process: @live_id, pid and pid namespace, @max_message,
 * @session, flags 0 (live_id stored last, relaxed: the writer publishes the record itself).
 */
void smem__rpc_end_fill(struct smem_rpc_ctl_end *e, uint32_t live_id, uint64_t max_message,
			uint32_t session);
/* This process's pid namespace (st_dev, st_ino of /proc/self/ns/pid). 0 or -errno. */
int smem__rpc_pidns_id(uint64_t *dev, uint64_t *ino);

/*
 * An RPC wait: the wait engine's loop (smem__wait_for(), wait.h) over a wait set of channels.
 * Every waiting thread of the RPC (a caller, a sender waiting for room, the service thread,
 * smem_rpc_serve()) embeds one first in its own context and gives it two callbacks:
 *   poll  (the engine's) one look: progress on the channels, then the condition waited for;
 *   fill  snapshot the event words, look once more, and add what wakes us to rw->ws
 *         (smem__rpc_ws_*); -EAGAIN to sleep at most *bound (fill may lower it), any other
 *         value ends the wait. rw->ws is initialised before each fill.
 * The arm and disarm are this layer's: the sleep's bound and statistics (smem__rpc_ws_arm),
 * the missed wake-up check, and a look at every peer whose pidfd fired. The spin is the
 * engine's fixed policy with the channel's spin_ns.
 */
struct smem__rpc_waiter {
	struct smem__waiter w;		/* first: the engine's callbacks get &rw->w */
	int (*fill)(struct smem__rpc_waiter *rw, uint64_t *bound);
	struct smem_rpc *stat_ch;	/* counts sleeps and their length (NULL: none) */
	struct smem__rpc_ws ws;
};

void smem__rpc_waiter_init(struct smem__rpc_waiter *rw, int (*poll)(struct smem__waiter *w),
			   int (*fill)(struct smem__rpc_waiter *rw, uint64_t *bound),
			   struct smem_rpc *stat_ch, uint32_t spin_ns, uint64_t deadline);

/* ---- rpc_recv.c: the receive path --------------------------------------------------------- */

/* Drain the receive ring unless another thread does. Packets consumed, or -EBUSY. */
int smem__rpc_try_pump(struct smem_rpc *ch);
/* Drop every partial message (the pump lock held, or the channel being freed). */
void smem__rpc_asm_clear(struct smem_rpc *ch);

/* ---- rpc_send.c: the transmit path -------------------------------------------------------- */

/*
 * Send one message, split into packets, waiting for room until @deadline (or, with
 * SMEM__RPC_REPLY_DEADLINE, reply_timeout_ms from when the ring is first found full). A
 * message abandoned partway is cancelled (rpc_proto_int.h), at once or when room comes.
 */
#define SMEM__RPC_REPLY_DEADLINE 0
int smem__rpc_send(struct smem_rpc *ch, uint8_t type, uint64_t id, uint64_t response_to,
		   int32_t error, const void *data, size_t len, uint64_t deadline);
/* Write the CANCEL packets that found no room before (takes ch->lock; never waits). */
void smem__rpc_flush_cancels(struct smem_rpc *ch);

/* ---- rpc_progress.c: the progress engine --------------------------------------------------- */

/* Everything a waiting thread does for a channel without sleeping. Returns requests run. */
int smem__rpc_progress(struct smem_rpc *ch);
/* The same, running at most @max queued requests (a server's fair share per round). */
int smem__rpc_progress_max(struct smem_rpc *ch, unsigned max);
/* What a thread waiting on @ch sleeps on (event, rx ring, peer); longest it may sleep. */
uint64_t smem__rpc_ws_channel(struct smem__rpc_ws *ws, struct smem_rpc *ch, uint32_t v);

/* ---- rpc_poll.c: pollers ----------------------------------------------------------------- */

/*
 * A wait set armed in a pollable wait (wait_fd.c): what every RPC-layer poller shares (a
 * channel's, smem_rpc_poll_*; a service server's, service_poll.c). It is the first member of
 * the poller, whose wfd is the poller shell's (smem__poller_alloc/free, wait_fd.c). The caller
 * fills ws (announcing itself to the wakers) and arms; the announcements stay up while armed;
 * disarming withdraws them and looks at the peers whose pidfd fired. snap is the poller's
 * event word as of its previous arm: an arm that finds the word moved says "look" instead
 * (see rpc_poll.c).
 */
struct smem__rpc_pollset {
	struct smem__waitfd *wfd;	/* first: smem__poller_alloc() */
	bool armed;			/* ws holds announcements to withdraw */
	uint32_t snap;
	struct smem__rpc_ws ws;
};

/*
 * A poller of @size bytes whose first member is a pollset (wfd open, snap @snap): 0 and
 * *ret, -ENOMEM or the pollable wait's error. Freed with smem__rpc_pollset_free().
 */
int smem__rpc_pollset_alloc(size_t size, uint32_t snap, void **ret);
/* Has the word moved from snap to @v? (Then snap = @v: the caller looks.) */
bool smem__rpc_pollset_moved(struct smem__rpc_pollset *ps, uint32_t v);
/* Arm the filled ws with a timeout of @bound (UINT64_MAX: none): 0, 1 (look now), or -errno. */
int smem__rpc_pollset_arm(struct smem__rpc_pollset *ps, uint64_t bound);
void smem__rpc_pollset_disarm(struct smem__rpc_pollset *ps);
/* Disarm and free the poller (NULL: no-op). */
void smem__rpc_pollset_free(struct smem__rpc_pollset *ps);

/* ---- rpc.c: channels ---------------------------------------------------------------------- */

/*
 * A channel over rings and a control block that somebody else set up (a service's slot,
 * service.c), with no election: @ctl lies in @reg (borrowed: the caller keeps it open, and
 * it must outlive the channel), the channel takes @tx and @rx (closed on failure too), plays
 * @role in @session. @o as for smem_rpc_open() (its geometry is ignored). 0 and *ret, or
 * -EINVAL, -EPROTO (ring geometry), -ENOMEM, pthread_create's error.
 */
int smem__rpc_attach(struct smem_region *reg, struct smem_rpc_ctl *ctl, int role,
		     uint32_t session, struct smem_ring *tx, struct smem_ring *rx,
		     const struct smem_rpc_opts *o, struct smem_rpc **ret);

/* ---- rpc_serve.c: serving ------------------------------------------------------------------ */

void *smem__rpc_service_main(void *arg);

/* ---- for tests ---------------------------------------------------------------------------- */

/* For tests: partial messages held in reassembly, and the expiry of stale ones. */
unsigned smem__rpc_partials(struct smem_rpc *ch);
void smem__rpc_set_partial_expiry(struct smem_rpc *ch, uint64_t ns);

/* For tests: the ring this endpoint writes to / reads from, and its current session. */
struct smem_ring *smem__rpc_tx(const struct smem_rpc *ch);
struct smem_ring *smem__rpc_rx(const struct smem_rpc *ch);
uint32_t smem__rpc_session(const struct smem_rpc *ch);

#endif
