/* SPDX-License-Identifier: MIT */
/*
 * The counters a running smem-bridge publishes for smemctl: a plain smem region named
 * SMEM_BRIDGE_STATS_PREFIX + the bridge's name (its "name" directive, else its pid), created by
 * the bridge in its local broker and rewritten once per stats interval. Readers map it
 * read-only and treat it as untrusted: they check magic, version and sizes, clamp nroutes to
 * what the region holds, bound every string, and read under the sequence word.
 *
 * Sequence word (a seqlock with one writer, the bridge's main thread): odd while the counters
 * are being rewritten. A reader loads it (acquire), copies, fences (acquire), loads it again
 * and keeps the copy only if both loads are the same even value.
 *
 * No NATS types here (smem_bridge.h has none either): smemctl includes this header without
 * linking libnats.
 */
#ifndef SMEM_BRIDGE_SHM_H
#define SMEM_BRIDGE_SHM_H

#include <stdint.h>

#include "smem_bridge.h"

#define SMEM_BRIDGE_STATS_PREFIX "smem-bridge."
#define SMEM_BRIDGE_STATS_MAGIC 0x3154534242454d53ull	/* "SMEBBST1" */
#define SMEM_BRIDGE_STATS_VERSION 1u

struct smem_bridge_shm_route {
	uint32_t kind;			/* enum smem_bridge_kind */
	uint32_t jetstream;		/* 1 for a JetStream route */
	char local[256];		/* NUL-terminated (readers bound it anyway) */
	char subject[256];
	uint64_t messages, bytes, lost, errors, duplicates, retries, cursor;
	uint64_t reserved[2];		/* zero */
};

struct smem_bridge_shm {
	uint64_t magic;			/* SMEM_BRIDGE_STATS_MAGIC, stored last at creation */
	uint32_t version;		/* SMEM_BRIDGE_STATS_VERSION */
	uint32_t route_size;		/* sizeof(struct smem_bridge_shm_route) */
	uint64_t seq;			/* the sequence word (odd: being rewritten) */
	uint32_t nroutes;
	int32_t pid;			/* the bridge's, in its pid namespace */
	uint64_t reconnects;		/* reconnections to NATS since start */
	uint64_t started_ns;		/* CLOCK_REALTIME at start */
	uint64_t updated_ns;		/* CLOCK_REALTIME at the last rewrite */
	uint64_t reserved;		/* zero */
	struct smem_bridge_shm_route routes[];
};

/* A route kind (enum smem_bridge_kind) as smem-bridge and smemctl print it. */
static inline const char *smem_bridge_kind_name(uint32_t kind)
{
	switch (kind) {
	case SMEM_BRIDGE_EXPORT_RING: return "export-ring";
	case SMEM_BRIDGE_IMPORT_RING: return "import-ring";
	case SMEM_BRIDGE_SERVE_RPC: return "serve-rpc";
	case SMEM_BRIDGE_CALL_RPC: return "call-rpc";
	case SMEM_BRIDGE_EXPORT_TOPIC: return "export-topic";
	case SMEM_BRIDGE_IMPORT_TOPIC: return "import-topic";
	default: return "unknown";
	}
}

_Static_assert(sizeof(struct smem_bridge_shm_route) == 592, "route record is 592 bytes");
_Static_assert(__builtin_offsetof(struct smem_bridge_shm_route, messages) == 520, "messages");
_Static_assert(sizeof(struct smem_bridge_shm) == 64, "header is 64 bytes");
_Static_assert(__builtin_offsetof(struct smem_bridge_shm, seq) == 16, "seq");
_Static_assert(__builtin_offsetof(struct smem_bridge_shm, nroutes) == 24, "nroutes");
_Static_assert(__builtin_offsetof(struct smem_bridge_shm, updated_ns) == 48, "updated_ns");

#endif
