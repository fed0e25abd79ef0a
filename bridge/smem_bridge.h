/* SPDX-License-Identifier: MIT */
/*
 * libsmem-bridge: carry smem rings and RPC channels over NATS (https://nats.io), so that a
 * service can reach other hosts through an existing messaging system. A separate library
 * (libsmem-bridge.a, linked with libnats): libsmem itself never depends on NATS.
 *
 * Routes (one per config line, see smem-bridge(1)):
 *   export ring NAME -> SUBJECT [jetstream STREAM]   read the local ring, publish each message
 *   import SUBJECT -> ring NAME [jetstream STREAM] [create NODES SIZE]
 *                                                    write each message into the local ring
 *   export topic NAME -> SUBJECT [jetstream STREAM]  subscribe to the local topic, publish each
 *                                                    sample
 *   import SUBJECT -> topic NAME [jetstream STREAM] [create DEPTH SIZE]
 *                                                    publish each message into the local topic
 *                                                    (created blocking, or opened as another
 *                                                    publisher of a multi-publisher topic)
 *   serve rpc NAME as SUBJECT                        answer NATS requests on SUBJECT by calling
 *                                                    the local RPC service NAME
 *   call SUBJECT as rpc NAME                         local clients of channel NAME call the
 *                                                    remote service at SUBJECT
 * Only names that appear in export/serve lines leave the host: the config is the allow list.
 *
 * Wire: a ring message or topic sample travels as a 32-byte header (struct smem_bridge_wire) followed by the
 * payload as it is, no re-encoding. RPC requests and replies are the payloads themselves
 * (NATS request/reply); an error reply carries the negative errno in the "Smem-Status"
 * header and its message in "Smem-Error".
 *
 * Delivery:
 *   plain NATS  at most once. The exporter counts what it could not publish, the importer
 *               counts sequence gaps per sender (lost) and what NATS dropped for a slow
 *               consumer; nothing is retried.
 *   jetstream   at least once into the stream (publishes wait for the stream's ack and retry
 *               with the same Nats-Msg-Id, which the stream de-duplicates), and exactly once
 *               into the importing ring or topic: the importer keeps the stream sequence of
 *               the last message its end accepted in a state file (mmap'd, so it survives
 *               kill -9) and resumes after it, skipping anything at or below it. With a state
 *               directory the exporter keeps its in-flight message in a journal file with a
 *               sender id of its own, so after a kill -9 it publishes that message again under
 *               the same id (see route.c for the two windows left: an exporter killed inside
 *               the ring's reader claim, an importer killed inside its local write). A topic's
 *               exporter restarted sees what any new subscriber sees: samples published while
 *               it was down are not exported.
 * A full importing ring (or a blocking topic's slowest subscriber) blocks the importer: plain
 * NATS then holds at most the subscription's pending limit and drops (counted) beyond it;
 * JetStream stops delivering (flow control) and the stream keeps the rest. An overwriting
 * topic does not wait for its exporter: what it overwrote unread is counted lost.
 *
 * Errors are negative errnos, as in libsmem. Thread safety: a config is not shared between
 * threads while it is built; smem_bridge_start() copies what it needs; a running bridge's
 * stats may be read from any thread.
 */
#ifndef SMEM_BRIDGE_H
#define SMEM_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The header in front of every ring message on NATS (little-endian, 32 bytes). */
#define SMEM_BRIDGE_MAGIC 0x31424d53u	/* "SMB1" */
struct smem_bridge_wire {
	uint32_t magic;		/* SMEM_BRIDGE_MAGIC */
	uint16_t version;	/* 1 */
	uint16_t hdr_len;	/* 32: the payload starts here */
	uint64_t sender;	/* random id of the exporting bridge process */
	uint64_t seq;		/* per route and sender: 1, 2, 3, ... (gaps are losses) */
	uint64_t msg_id;	/* unique per sender; JetStream's Nats-Msg-Id is "SENDER-MSGID" */
};
_Static_assert(sizeof(struct smem_bridge_wire) == 32, "wire header is 32 bytes");

enum smem_bridge_kind {
	SMEM_BRIDGE_EXPORT_RING = 1,
	SMEM_BRIDGE_IMPORT_RING = 2,
	SMEM_BRIDGE_SERVE_RPC = 3,
	SMEM_BRIDGE_CALL_RPC = 4,
	SMEM_BRIDGE_EXPORT_TOPIC = 5,
	SMEM_BRIDGE_IMPORT_TOPIC = 6,
};

struct smem_bridge_config;
struct smem_bridge;

/*
 * Read a config file (format in smem-bridge(1)). Returns 0 and sets *ret, or -ENOENT, -EACCES
 * (the file holds secrets and is readable or writable by group or others, or is not owned by
 * this user), -EINVAL (a bad line: @err gets "FILE:LINE: why"), -ENOMEM.
 */
int smem_bridge_config_load(const char *path, struct smem_bridge_config **ret, char *err,
			    size_t errlen);
/* An empty config (no servers: nats://127.0.0.1:4222 by default). */
int smem_bridge_config_new(struct smem_bridge_config **ret);
/* Apply one config line (the file's syntax) to @cfg. 0, -EINVAL (@err says why), -ENOMEM. */
int smem_bridge_config_line(struct smem_bridge_config *cfg, const char *line, char *err,
			    size_t errlen);
void smem_bridge_config_free(struct smem_bridge_config *cfg);

/*
 * Connect to NATS and start every route (a thread each, plus NATS's own). Returns 0 and sets
 * *ret, or -ECONNREFUSED (no NATS server answered), -EACCES (NATS refused the credentials),
 * -EINVAL (no route; a JetStream route without a state directory), -ENOENT (an exported ring
 * does not exist), and smem's errors opening local objects. Importing routes wait for a ring
 * that does not exist yet (unless it has "create"). The config may be freed afterwards.
 */
int smem_bridge_start(const struct smem_bridge_config *cfg, struct smem_bridge **ret);
/* Stop every route, close local objects and the NATS connection. NULL is ignored. */
void smem_bridge_stop(struct smem_bridge *b);

struct smem_bridge_route_stats {
	uint32_t kind;		/* enum smem_bridge_kind */
	uint32_t jetstream;	/* 1 for a JetStream route */
	char local[256];	/* ring or channel name */
	char subject[256];
	uint64_t messages;	/* ring messages moved, or RPC calls completed */
	uint64_t bytes;		/* payload bytes moved */
	uint64_t lost;		/* export: publishes that failed (plain); import: sequence gaps
				 * plus NATS slow-consumer drops; rpc: calls failed by transport */
	uint64_t errors;	/* calls answered with an error, malformed messages, ring errors */
	uint64_t duplicates;	/* jetstream import: redeliveries skipped (already in the ring) */
	uint64_t retries;	/* jetstream export: publishes repeated after a failed ack */
	uint64_t cursor;	/* jetstream import: stream sequence of the last message written */
};

/* Number of routes. */
int smem_bridge_route_count(const struct smem_bridge *b);
/* Snapshot of route @i's counters. 0, -ERANGE. Thread-safe. */
int smem_bridge_route_stats(const struct smem_bridge *b, int i,
			    struct smem_bridge_route_stats *out);
/* Reconnections to NATS since start. */
uint64_t smem_bridge_reconnects(const struct smem_bridge *b);

/*
 * Publish @b's counters for `smemctl bridges`: a region "smem-bridge.NAME" in the bridge's
 * local broker (layout: smem_bridge_shm.h), NAME being @name, or when @name is NULL or empty
 * the config's "name", else the pid. The region lives while the publisher is open (kill -9 leaves nothing behind).
 * Returns 0 and sets *ret, or -ENAMETOOLONG, -EEXIST (another bridge of that name runs),
 * -ENOMEM and smem_region_create()'s errors.
 */
struct smem_bridge_stats_pub;
int smem_bridge_stats_open(const struct smem_bridge *b, const char *name,
			   struct smem_bridge_stats_pub **ret);
/* Rewrite the counters (one writer thread at a time). */
void smem_bridge_stats_update(struct smem_bridge_stats_pub *p, const struct smem_bridge *b);
/* Remove the region. NULL is ignored. */
void smem_bridge_stats_close(struct smem_bridge_stats_pub *p);

#ifdef __cplusplus
}
#endif
#endif
