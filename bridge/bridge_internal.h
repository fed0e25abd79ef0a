/* SPDX-License-Identifier: MIT */
/*
 * libsmem-bridge internals: the config as parsed (config.c), the running routes (ring_route.c,
 * rpc_route.c) and the bridge that owns the NATS connection (bridge.c). Calls go one way:
 * bridge.c -> {ring_route.c, rpc_route.c, config.c}; routes use only this header's types.
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
	atomic_bool stop;
	_Atomic uint64_t reconnects;
	struct smem_bridge_route routes[SMEM_BRIDGE_MAX_ROUTES];
	int nroutes;
};

/* ring_route.c: export/import threads. start returns 0 or a negative errno. */
int smem__bridge_ring_start(struct smem_bridge_route *rt);
void smem__bridge_ring_stop(struct smem_bridge_route *rt);
/* rpc_route.c: serve/call. */
int smem__bridge_rpc_start(struct smem_bridge_route *rt);
void smem__bridge_rpc_stop(struct smem_bridge_route *rt);

/* NATS status to a negative errno (bridge.c). */
int smem__bridge_errno(natsStatus s);

#endif
