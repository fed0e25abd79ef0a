/* SPDX-License-Identifier: MIT */
/*
 * libsmem-bridge internals: the config as parsed (config.c), the running routes (route.c for
 * messages, rpc_route.c for RPC), the local ends that message routes read or write (ring_end.c,
 * topic_end.c) and the bridge that owns the NATS connection (bridge.c). Calls go one way:
 * bridge.c -> {route.c, rpc_route.c, config.c}, route.c -> {ring_end.c, topic_end.c} through
 * struct smem__bridge_end_ops; the ends call nothing of the bridge's.
 */
#ifndef SMEM_BRIDGE_INTERNAL_H
#define SMEM_BRIDGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <nats/nats.h>

#include <smem.h>
#include "smem_bridge.h"

#define SMEM_BRIDGE_MAX_SERVERS 16
#define SMEM_BRIDGE_MAX_ROUTES 64
#define SMEM_BRIDGE_SUBJECT_MAX 255

struct smem_bridge_route_cfg {
	enum smem_bridge_kind kind;
	char local[SMEM_NAME_MAX + 1];
	char subject[SMEM_BRIDGE_SUBJECT_MAX + 1];
	char stream[64];		/* "" = plain NATS */
	uint32_t create_nodes, create_size;	/* import: create the ring if missing */
	uint32_t replicas;		/* jetstream: the stream's replicas when created (0: 1) */
};

struct smem_bridge_config {
	char *servers[SMEM_BRIDGE_MAX_SERVERS];
	int nservers;
	char *user, *password, *token;
	char *nkey_seed_file;		/* file holding an nkey seed */
	char *tls_ca, *tls_cert, *tls_key;
	char *broker;			/* smem broker address; NULL: the default */
	char *state_dir;		/* JetStream import cursors */
	char *client_name;
	int request_timeout_ms;		/* RPC over NATS; default 5000 */
	int max_pending_msgs;		/* plain import: NATS pending limit; default 65536 */
	bool send_asap;			/* publish at once instead of buffering (latency) */
	struct smem_bridge_route_cfg routes[SMEM_BRIDGE_MAX_ROUTES];
	int nroutes;
};

/* Counters of one route, written by its thread, read by anyone. */
struct smem_bridge_counters {
	_Atomic uint64_t messages, bytes, lost, errors, duplicates, retries, cursor;
};

struct smem_bridge_route {
	struct smem_bridge_route_cfg cfg;
	struct smem_bridge *bridge;
	struct smem_bridge_counters c;
	pthread_t thread;
	bool thread_started;
	void *priv;			/* the route kind's own state */
};

struct smem_bridge {
	natsConnection *nc;		/* exports, RPC */
	/* Plain exports' lone messages: a send-asap connection of their own (route.c says when
	 * a route switches between the two). NULL with send-asap or without plain exports. */
	natsConnection *nc_asap;
	jsCtx *js;
	/* Imports receive on a connection of their own: on one shared with heavy exports, the
	 * server's writes to us and ours to it contend (measured: 30x slower, and drops). */
	natsConnection *nc_in;
	jsCtx *js_in;
	struct smem_opts sopts;		/* broker for local objects */
	char broker[4096];
	char state_dir[4096];
	int request_timeout_ms;
	int max_pending_msgs;
	bool send_asap;
	uint64_t sender;		/* random per process: the wire header's sender */
	char name[SMEM_NAME_MAX + 1];	/* the config's "name" ("" if none) */
	atomic_bool stop;
	_Atomic uint64_t reconnects;
	struct smem_bridge_route routes[SMEM_BRIDGE_MAX_ROUTES];
	int nroutes;
};

/*
 * The local end of a message route: a ring or a topic, read by an exporter or written by an
 * importer. Every call waits at most @ms, so that a stopping route notices soon.
 */
struct smem__bridge_end_ops {
	/* Open @rt's local object, to read it (@export) or write it. 0 and *ret, -ENOENT (not
	 * there yet), smem's errors. */
	int (*open)(const struct smem_bridge_route *rt, bool export, void **ret);
	void (*close)(void *end);
	/* The largest message (node or sample size); 0 while unknown (a topic's ends learn it
	 * from their first sample or loan). */
	size_t (*max_len)(void *end);
	/*
	 * Export: hold the next message (*data, its length returned) until done(); *lost gets
	 * what the local object dropped for this reader since the last peek (a topic's
	 * overwritten samples). -ETIMEDOUT, -ESHUTDOWN (the object went away: close and open
	 * again), other negative errnos.
	 */
	ssize_t (*peek)(void *end, const void **data, uint64_t *lost, int ms);
	/* Export: let the held message go. */
	void (*done)(void *end);
	/* Export: true when no message is ready now (no system call). */
	bool (*idle)(void *end);
	/* Import: write one message. 0, -ETIMEDOUT (call again with the same message),
	 * -ESHUTDOWN (gone: close and open again), -EMSGSIZE, -EPROTO. */
	int (*write)(void *end, const void *data, size_t len, int ms);
};
extern const struct smem__bridge_end_ops smem__bridge_ring_end;
extern const struct smem__bridge_end_ops smem__bridge_topic_end;

/* route.c: export/import threads of ring and topic routes. start: 0 or a negative errno. */
int smem__bridge_route_start(struct smem_bridge_route *rt);
void smem__bridge_route_stop(struct smem_bridge_route *rt);
bool smem__bridge_is_message_route(enum smem_bridge_kind k);
/* rpc_route.c: serve/call. */
int smem__bridge_rpc_start(struct smem_bridge_route *rt);
void smem__bridge_rpc_stop(struct smem_bridge_route *rt);

/* NATS status to a negative errno (bridge.c). */
int smem__bridge_errno(natsStatus s);

#endif
