/* SPDX-License-Identifier: MIT */
/*
 * smem_rpc: a bidirectional request/response channel between two processes over two rings.
 *
 * The first endpoint to open a channel name becomes its master and creates the rings, the
 * second attaches as the slave, a third gets -EBUSY. Both sides may call and serve. A message
 * larger than a ring node is split into packets (64-byte header each, docs/PROTOCOL.md) and
 * reassembled with order and completeness checked.
 *
 * Sessions: a master and its slave form a session. When the master dies or closes, the next
 * opener starts a new session as master (with new rings); when the slave dies or closes, the
 * next opener becomes the master's new slave. An endpoint whose peer died fails its pending
 * calls with -ECONNRESET (-ESHUTDOWN if the peer closed) and keeps failing new calls the same
 * way until it is closed, unless it is a master that gets a new slave.
 *
 * Waiting: a thread waiting for calls sleeps in one io_uring_enter(2) on futex waits for the
 * channels' rings, the peers' pidfds and a timeout; where io_uring is unavailable (or with
 * SMEM_NO_URING=1 in the environment) it uses futex_waitv(2) with bounded waits instead.
 *
 * Response memory: a successful call hands the caller a malloc'd buffer (NULL when the
 * response is empty) that the caller frees with smem_rpc_free_response(). Request data given
 * to a handler belongs to the library and is valid only while the handler runs.
 */
#ifndef SMEM_RPC_H
#define SMEM_RPC_H

#include <smem/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct smem_rpc;
struct smem_rpc_call;
struct smem_rpc_reply;

/* Where handlers run (smem_rpc_opts.service). */
enum smem_rpc_service {
	SMEM_RPC_SERVICE_THREAD = 0,	/* default: a thread the library starts per channel */
	SMEM_RPC_SERVICE_DISPATCH = 1,	/* no library thread: smem_rpc_dispatch()/smem_rpc_serve(),
					 * or any thread waiting in a call on the channel */
};

/* A request as a handler sees it. */
struct smem_rpc_request {
	struct smem_rpc *channel;	/* the channel it arrived on: may be called back */
	uint64_t id;			/* the peer's message id */
	const void *data;		/* NULL when len == 0; valid during the handler only */
	size_t len;
};

/*
 * A handler. Return 0 to send a response (with the payload set by smem_rpc_reply_set(), or
 * empty), or a negative errno to send an error reply that the caller receives as its call's
 * return value, with the message set by smem_rpc_reply_error() (if any). A positive return is
 * sent as -EPROTO. Handlers may call through any channel, including this one.
 */
typedef int (*smem_rpc_handler_fn)(void *arg, const struct smem_rpc_request *req,
				   struct smem_rpc_reply *reply);

/* Copy @len bytes as the response payload. 0, -ENOMEM, -EMSGSIZE (over max_message). */
int smem_rpc_reply_set(struct smem_rpc_reply *reply, const void *data, size_t len);
/* Reserve a response payload of @len bytes to fill in place; NULL on -ENOMEM/-EMSGSIZE. */
void *smem_rpc_reply_alloc(struct smem_rpc_reply *reply, size_t len);
/* Attach a short message (truncated to SMEM_RPC_ERRMSG_MAX - 1 bytes) to an error reply. */
void smem_rpc_reply_error(struct smem_rpc_reply *reply, const char *message);

#define SMEM_RPC_ERRMSG_MAX	256
#define SMEM_RPC_NO_SPIN	UINT32_MAX

/*
 * Geometry (node_count, node_size) is the master's; a slave gets the master's rings. Each ring
 * holds node_count messages of up to node_size - 64 bytes (a 64-byte header per packet); a
 * larger message is split into packets and reassembled, which costs a copy, a sender that can
 * stall partway, and one header per packet. For large messages:
 *   node_size  >= message size + 64   so that each message travels as one packet;
 *   node_count >= 2 x calls in flight  so that the requests (and, on the other ring, the
 *                                      responses) of every pending call fit with room to spare,
 *                                      and a sender rarely waits for a reader to free a node.
 * The rings take node_count x node_size bytes each (two per channel): with 1 MiB messages and
 * 4 calls in flight, 8 nodes of 1 MiB + 64 bytes per ring.
 */
struct smem_rpc_opts {
	struct smem_opts base;		/* broker, mode (rings and control region) */
	uint32_t node_count;		/* master: nodes per ring, >= 2; 0 means 16. Large
					 * messages: >= 2 x calls in flight (see above) */
	uint32_t node_size;		/* master: bytes per node, 256..64 MiB; 0 means 65536.
					 * Large messages: >= message size + 64 (see above) */
	smem_rpc_handler_fn handler;	/* NULL: requests get -ENOSYS at once */
	void *handler_arg;
	uint32_t service;		/* enum smem_rpc_service */
	int32_t reply_timeout_ms;	/* how long a reply may wait for ring room; 0 means 30000 */
	uint64_t max_message;		/* largest message accepted; 0 means 64 MiB (max 1 GiB) */
	uint32_t spin_ns;		/* waiters poll this long before sleeping; 0 means 20000,
					 * SMEM_RPC_NO_SPIN sleeps at once (oversubscribed cores) */
	uint32_t reserved32;
	uint64_t reserved[5];
};

/*
 * Open the channel @name: master if first (or if the previous master is gone), slave if
 * second. @opts may be NULL (defaults: no handler, service thread).
 * Returns 0 and sets *ret, or -EINVAL (bad name: at most SMEM_NAME_MAX - 24 bytes; bad
 * geometry), -EBUSY (a live master and a live slave already), -EMEDIUMTYPE (the name holds
 * another kind of object, not a channel), -ENOMEM, and the errors of
 * smem_region_create()/open and smem_ring_create()/open. Blocks on broker round trips.
 * Thread-safe.
 */
int smem_rpc_open(const char *name, const struct smem_rpc_opts *opts, struct smem_rpc **ret);

/*
 * Close: stops the service thread (waiting for a running handler), fails this endpoint's
 * pending calls with -ESHUTDOWN, tells the peer (whose pending calls get -ESHUTDOWN), and
 * releases everything. Call handles of this channel must be freed before. NULL is ignored.
 * Not concurrent with other calls on the same handle, and not from its own handler.
 */
void smem_rpc_close(struct smem_rpc *ch);

bool smem_rpc_is_master(const struct smem_rpc *ch);
/* Payload bytes per packet: node size minus the 64-byte header. */
size_t smem_rpc_packet_payload(const struct smem_rpc *ch);

/*
 * Synchronous call: send @req (@len bytes, may be 0) and wait up to @timeout_ms for the
 * response (-1: forever; 0: send, then return whatever has arrived: usually -ETIMEDOUT).
 * On success returns 0 and sets *resp (malloc'd, free with smem_rpc_free_response(); NULL
 * when empty) and *resp_len; @resp/@resp_len may be NULL to ignore the payload.
 * Errors: the handler's negative errno (message in smem_rpc_last_error_message()),
 * -ENOSYS (peer has no handler), -ETIMEDOUT (a late response is discarded and counted),
 * -ECONNRESET (peer died), -ESHUTDOWN (peer or this endpoint closed), -EMSGSIZE (over the
 * limits), -EPROTO, -ENOMEM. The timeout covers waiting for ring room too: nothing is dropped.
 * Thread-safe: any number of threads may call concurrently, and handlers may call.
 */
int smem_rpc_call(struct smem_rpc *ch, const void *req, size_t len, void **resp,
		  size_t *resp_len, int timeout_ms);

/* Free a response from smem_rpc_call()/smem_rpc_call_result(). NULL is ignored. */
void smem_rpc_free_response(void *resp);

/*
 * Message of the last remote error returned to this thread by smem_rpc_call() or
 * smem_rpc_call_result(): a thread-local string, "" if the error carried none.
 */
const char *smem_rpc_last_error_message(void);

/*
 * Asynchronous call: send the request (waiting for ring room within @timeout_ms) and return
 * a handle at once; the response must arrive within @timeout_ms of this call, else the call
 * completes with -ETIMEDOUT. Returns 0 and sets *ret, or the sending errors of
 * smem_rpc_call() (no handle then). Free the handle with smem_rpc_call_free().
 */
int smem_rpc_call_async(struct smem_rpc *ch, const void *req, size_t len, int timeout_ms,
			struct smem_rpc_call **ret);

/* smem_rpc_wait() flags. */
#define SMEM_RPC_WAIT_ANY	0u	/* return once at least one call completed */
#define SMEM_RPC_WAIT_ALL	1u	/* return once every call completed */

/*
 * Wait for any (or all) of @n calls, which may belong to different channels, up to
 * @timeout_ms. Calls complete on their own deadlines as well. Returns the number of completed
 * calls among @calls (>= 1 for ANY, == n for ALL), or -ETIMEDOUT, -EINVAL (n == 0 or > 1024,
 * NULL entry). One thread sleeps on all the channels at once (one io_uring_enter per sleep).
 * A call handle may be waited for by one thread at a time.
 */
int smem_rpc_wait(struct smem_rpc_call *const *calls, unsigned n, unsigned flags,
		  int timeout_ms);

/* Has the call completed (successfully or not)? Never blocks. */
bool smem_rpc_call_done(const struct smem_rpc_call *call);

/*
 * Outcome of a completed call: as smem_rpc_call() returns it; on 0 the response moves to
 * *resp and *resp_len (caller frees; a second result call gives NULL, 0). -EINPROGRESS if the
 * call has not completed.
 */
int smem_rpc_call_result(struct smem_rpc_call *call, void **resp, size_t *resp_len);

/*
 * Free a call handle. A still-pending call is abandoned: its response, when it comes, is
 * discarded and counted. NULL is ignored.
 */
void smem_rpc_call_free(struct smem_rpc_call *call);

/*
 * Dispatch mode: receive and run handlers for requests that arrive within @timeout_ms.
 * Returns the number of requests handled (0 on timeout), or -EINVAL (service-thread mode),
 * -ECONNRESET, -ESHUTDOWN. Not concurrent with itself on the same channel.
 */
int smem_rpc_dispatch(struct smem_rpc *ch, int timeout_ms);
/*
 * One server loop for many channels (dispatch mode each): waits on all of them in a single
 * sleep and runs their handlers. Returns the number handled, 0 on timeout, -EINVAL (n == 0 or
 * > 32, a channel not in dispatch mode), or the first channel's error (-ECONNRESET,
 * -ESHUTDOWN) once no channel can serve any more (slaves whose masters left; a master keeps
 * waiting for a new slave).
 */
int smem_rpc_serve(struct smem_rpc *const *chs, unsigned n, int timeout_ms);

/*
 * Pollable waits for event loops (epoll, poll, io_uring, libuv's uv_poll_t), with no helper
 * thread: a channel poller's fd becomes readable when the channel may have work for this
 * endpoint: a request to handle (dispatch mode), a call of ours completed, the peer died or
 * closed, a new slave arrived (master). The loop then makes progress with timeout-0 calls:
 * smem_rpc_dispatch(ch, 0) (a server), smem_rpc_wait(calls, n, SMEM_RPC_WAIT_ANY, 0) or
 * smem_rpc_call_done() / smem_rpc_call_result() (a client), and arms again:
 *     for (;;) {
 *         rc = smem_rpc_poll_arm(p);        1: look now, 0: armed, < 0: error
 *         if (rc == 0)
 *             wait until smem_rpc_poll_fd(p) is readable (with the loop's other fds);
 *         smem_rpc_poll_disarm(p);           optional: stops the peer's wakes at once
 *         smem_rpc_dispatch(ch, 0) / smem_rpc_wait(..., 0) ...;
 *     }
 * Arming cannot lose a wakeup: it announces the poller, then looks (the receive ring, the
 * request queue, and whether the channel's event count moved since the previous arm: a
 * completion or request that another thread produced meanwhile); if anything may be there it
 * returns 1 and arms nothing. The first arm after open returns 1. A readable fd is a hint:
 * the timeout-0 calls may find nothing (another thread took it) and the loop arms again.
 *
 * Cost: while armed, each packet the peer commits to this endpoint costs the peer one futex
 * wake (as for a sleeping dispatcher); while no poller is armed, nothing. Without a pidfd for
 * the peer (old kernels) the arming also times out every 20 ms to check the peer's liveness.
 *
 * Backend: a private io_uring with futex waits and a POLL_ADD on the peer's pidfd (Linux 6.7);
 * elsewhere (smem_rpc_poll_threaded() true: io_uring or its futex waits unavailable, or
 * SMEM_NO_URING=1) a helper thread per poller sleeps on the same set and writes an eventfd.
 *
 * open:  0 and *ret, -EINVAL, -ENOMEM, -EMFILE, io_uring's or pthread_create's errors.
 *        Close the poller before the channel.
 * fd:    the fd to poll for reading (owned by the poller), or -EINVAL. Never blocks.
 * arm:   1 (look now; nothing armed), 0 (armed), -EINVAL, -ENOMEM/-EBUSY (io_uring could
 *        not take the wait).
 * A poller is used by one thread at a time; that thread should be the one that dispatches,
 * and must outlive its arming (io_uring completes a request through its submitting thread).
 * The channel stays usable by any thread. After fork(2), open a new poller in the child.
 */
struct smem_rpc_poll;
int smem_rpc_poll_open(struct smem_rpc *ch, struct smem_rpc_poll **ret);
int smem_rpc_poll_fd(const struct smem_rpc_poll *p);
int smem_rpc_poll_arm(struct smem_rpc_poll *p);
/* Withdraw the arming (harmless when not armed): the fd is not readable afterwards. */
void smem_rpc_poll_disarm(struct smem_rpc_poll *p);
/* Does this poller use a helper thread (no io_uring futex waits here)? */
bool smem_rpc_poll_threaded(const struct smem_rpc_poll *p);
/* Disarm and free. NULL is ignored. */
void smem_rpc_poll_close(struct smem_rpc_poll *p);

/* Statistics of one endpoint, maintained with atomics. */
struct smem_rpc_stats {
	uint32_t overhead_per_packet;	/* 64 */
	uint32_t wait_backend;		/* 1: io_uring, 2: futex_waitv, 3: bounded futex */
	uint64_t requests_sent, responses_sent, errors_sent;
	uint64_t requests_received, responses_received, errors_received;
	uint64_t packets_sent, packets_received;
	uint64_t bytes_sent, bytes_received;	/* payload bytes, headers excluded */
	uint64_t max_packet_sent, max_packet_received;	/* largest chunk */
	int64_t last_packet_sent, last_packet_received;	/* -1 until one */
	int64_t last_message_sent, last_message_received;	/* payload sizes; -1 until one */
	uint64_t timeouts;		/* calls that timed out */
	uint64_t discarded_responses;	/* responses for no pending call (late, abandoned) */
	uint64_t last_discarded_id;
	uint64_t protocol_errors;	/* invalid packets dropped (hostile or corrupt peer) */
	uint64_t stale_packets;		/* packets of an earlier session dropped */
	uint64_t peer_resets;		/* calls failed because the peer died or left */
	uint64_t max_wait_write_ns;	/* longest wait for ring room */
	uint64_t max_wait_read_ns;	/* longest sleep waiting for data */
	uint64_t sleeps;		/* waits that went to the kernel */
	/* Partial messages (the first packets of a multi-packet message) this end dropped: */
	uint64_t partials_cancelled;	/* its sender gave up partway and sent a CANCEL */
	uint64_t partials_expired;	/* no packet for 30 s while the ring was drained */
	/*
	 * Sleeps that ran to the safety cap (50 ms; 20 ms while the peer's liveness is polled)
	 * although a wake on a word they slept on had returned during the sleep (and the thread
	 * was not merely waiting for a CPU since) and the peer was alive: a wake-up that never
	 * came. The cap is a net for dead peers, not how waiters are woken; anything but 0 is a
	 * bug (counted per channel with such a word).
	 */
	uint64_t missed_wakeups;
	uint64_t reserved[5];		/* zero; room for counters to come (the size stays) */
};

/* Snapshot. 0 or -EINVAL. Thread-safe. */
int smem_rpc_stats(const struct smem_rpc *ch, struct smem_rpc_stats *out);
/* Reset to the values of a new channel: counters 0, the last_* sizes -1. Thread-safe. */
void smem_rpc_stats_reset(struct smem_rpc *ch);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
