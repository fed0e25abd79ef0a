/* SPDX-License-Identifier: MIT */
/*
 * smem_service: a named RPC service that any number of clients call (up to max_clients at a
 * time), each over its own channel.
 *
 * The server creates the service; each client connects and gets a channel of its own: two
 * rings and a pending-call table, the same machinery as smem_rpc (packets, splitting, peer
 * death, timeouts), in a slot of the service's table. The server serves every client from
 * one loop and one sleep (smem_service_serve()): clients ring a doorbell word in the service
 * region after each packet they commit, only while the server sleeps on it, so the server
 * sleeps on one futex word (plus clients' pidfds) however many clients there are.
 *
 * Fairness: each round of the server runs at most SMEM_SERVICE_FAIR_SHARE requests of each
 * client, visiting the clients round-robin, so a client flooding the server cannot starve
 * another: a request waits behind at most SMEM_SERVICE_FAIR_SHARE requests of each other
 * client.
 *
 * Failures: a client that dies (kill -9 at any point) or disconnects frees its slot and its
 * channel; nothing else fails. A server that dies or closes fails every client's pending and
 * later calls (-ECONNRESET, -ESHUTDOWN); it never leaves them waiting. A client whose slot
 * fails validation (another process scribbled on it) gets -EPROTO; the server and the other
 * clients go on.
 *
 * Handlers: as for smem_rpc (smem_rpc_handler_fn); req->channel is the client's channel on
 * the server side, and smem_service_request_client(req) names the client. Clients have no
 * handler: a handler calling back through req->channel gets -ENOSYS.
 */
#ifndef SMEM_SERVICE_H
#define SMEM_SERVICE_H

#include <smem/common.h>
#include <smem/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct smem_service;		/* the server's handle */
struct smem_service_client;	/* a client's handle */

#define SMEM_SERVICE_MAX_CLIENTS	255u	/* a region has 256 liveness slots */
#define SMEM_SERVICE_FAIR_SHARE		8u	/* requests per client per round */

struct smem_service_opts {
	struct smem_opts base;		/* broker, mode (the service region and the rings) */
	uint32_t max_clients;		/* server: clients at a time, 1..255; 0 means 64 */
	uint32_t node_count;		/* client: nodes per ring of its channel; 0 means 16 */
	uint32_t node_size;		/* client: bytes per node, 256..64 MiB; 0 means 65536 */
	uint32_t spin_ns;		/* waiters poll this long before sleeping; 0 means 20000,
					 * SMEM_RPC_NO_SPIN sleeps at once */
	smem_rpc_handler_fn handler;	/* server: NULL means requests get -ENOSYS */
	void *handler_arg;
	uint64_t max_message;		/* largest message accepted; 0 means 64 MiB */
	int32_t reply_timeout_ms;	/* server: how long a reply may wait for room; 0: 30000 */
	uint32_t reserved32;
	uint64_t reserved[4];
};

/*
 * Server: create the service @name (at most SMEM_NAME_MAX - 24 bytes). @opts may be NULL.
 * Returns 0 and sets *ret, or -EINVAL, -EEXIST (the name is taken: by a live service, or by
 * clients still holding a dead one's), -ENOMEM, and the errors of smem_region_create().
 * Blocks on broker round trips. Thread-safe.
 */
int smem_service_create(const char *name, const struct smem_service_opts *opts,
			struct smem_service **ret);

/*
 * Serve: attach clients that connected, run handlers for requests that arrive within
 * @timeout_ms (-1: forever, 0: what is there now), round-robin over clients, and free the
 * channels of clients that left or died. Returns the number of requests handled (0 on
 * timeout), or -EINVAL. Handlers run on the calling thread. Not concurrent with itself or
 * with smem_service_close() on the same service.
 */
int smem_service_serve(struct smem_service *svc, int timeout_ms);

/* Clients attached to the server now (as of its last serve). -EINVAL for NULL. Never blocks. */
int smem_service_clients(const struct smem_service *svc);

/*
 * The client a request came from, as seen by the server: its slot, 0..max_clients-1 (unique
 * among the clients connected at a time). -EINVAL for a request that is not a service's.
 */
int smem_service_request_client(const struct smem_rpc_request *req);

/*
 * Close the service: every client's calls fail with -ESHUTDOWN, clients that connect later get
 * -ECONNREFUSED; the name lives on while clients hold it. NULL is ignored. Not from a handler.
 */
void smem_service_close(struct smem_service *svc);

/*
 * Pollable waits for a server in an event loop (epoll, poll, io_uring, libuv's uv_poll_t),
 * with no helper thread where io_uring has futex waits: the fd becomes readable when the
 * service may have work (a request from any client, a client connecting, leaving or dying).
 * The loop serves with a timeout of 0 and arms again, as with smem_rpc_poll_*:
 *     for (;;) {
 *         rc = smem_service_poll_arm(p);       1: look now, 0: armed, < 0: error
 *         if (rc == 0)
 *             wait until smem_service_poll_fd(p) is readable (with the loop's other fds);
 *         smem_service_serve(svc, 0);
 *     }
 * Arming cannot lose a wakeup (it says 1 when the doorbell moved since the previous arm, when
 * requests wait past a client's fair share, or when a client joined); a readable fd is a hint.
 * While armed, each packet a client commits costs that client one futex wake; while no
 * poller is armed (and the server is busy), nothing. The arming carries the pidfds of the
 * first 7 clients; with more, or without pidfds, it also times out every 20 ms to look at the
 * clients' liveness. Otherwise as smem_rpc_poll_* (helper thread without io_uring futex waits;
 * one thread at a time, the one that serves; close it before the service).
 * open: 0 and *ret, -EINVAL, -ENOMEM, -EMFILE. fd: the fd, or -EINVAL. arm: 1, 0, -EINVAL,
 * -ENOMEM/-EBUSY.
 */
struct smem_service_poll;
int smem_service_poll_open(struct smem_service *svc, struct smem_service_poll **ret);
int smem_service_poll_fd(const struct smem_service_poll *p);
int smem_service_poll_arm(struct smem_service_poll *p);
/* Withdraw the arming (harmless when not armed). */
void smem_service_poll_disarm(struct smem_service_poll *p);
/* Disarm and free. NULL is ignored. */
void smem_service_poll_close(struct smem_service_poll *p);

/*
 * Client: connect to the service @name (@opts may be NULL). The channel is ready at once:
 * calls made before the server attaches it wait in its ring. Returns 0 and sets *ret, or
 * -EINVAL, -ENOENT (no such service), -EMEDIUMTYPE (not a service), -ECONNREFUSED (its server
 * died or closed), -EUSERS (max_clients connected), -EPROTO (a corrupt service region),
 * -ENOMEM, and the errors of smem_ring_create(). Blocks on broker round trips. Thread-safe.
 */
int smem_service_connect(const char *name, const struct smem_service_opts *opts,
			 struct smem_service_client **ret);

/*
 * A call, as smem_rpc_call(): 0 and the response, the handler's error, -ETIMEDOUT,
 * -ECONNRESET (the server died), -ESHUTDOWN (the server closed), -EPROTO (this client's slot
 * failed validation), -EMSGSIZE, -ENOMEM. Thread-safe.
 */
int smem_service_call(struct smem_service_client *c, const void *req, size_t len, void **resp,
		      size_t *resp_len, int timeout_ms);

/*
 * The client's channel, for smem_rpc_call_async(), smem_rpc_wait(), smem_rpc_stats() and
 * smem_rpc_poll_open() on it. Owned by the client handle: never smem_rpc_close() it.
 */
struct smem_rpc *smem_service_channel(struct smem_service_client *c);

/* Disconnect: pending calls fail with -ESHUTDOWN; the server frees the slot. NULL ignored. */
void smem_service_disconnect(struct smem_service_client *c);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
