/* SPDX-License-Identifier: MIT */
/*
 * The RPC wire format (docs/PROTOCOL.md, "RPC protocol"): every ring node carries one packet,
 * a 64-byte header followed by up to node_size - 64 bytes of payload. A message (request,
 * response or error) of N payload bytes travels as max(1, ceil(N / P)) packets, P being the
 * payload room per packet; packet i carries bytes [i*P, min(N, (i+1)*P)). Packets of one
 * message arrive in order (one sender thread writes them, the ring is FIFO per producer) but
 * may interleave with other messages' packets.
 *
 * A sender that gives up partway through a message (its deadline passed while it waited for
 * ring room) writes a CANCEL packet as soon as there is room: msg_id and response_to are the
 * abandoned message's, total_size 0, index 0, count 1, chunk 0, error 0. The receiver drops
 * the partial message it names (if it still has it); a partial message that sees no packet
 * for a long time while the ring is drained is dropped too (rpc_recv.c).
 *
 * Everything in a received header is untrusted: smem__rpc_pkt_parse() copies it out of shared
 * memory once and checks it against the receiver's private geometry before anything uses it.
 */
#ifndef SMEM_RPC_PROTO_INT_H
#define SMEM_RPC_PROTO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMEM_RPC_VERSION	1
#define SMEM_RPC_HDR_SIZE	64u
#define SMEM_RPC_MAX_MESSAGE	(1ull << 30)	/* hard limit on max_message */

enum smem_rpc_type {
	SMEM_RPC_REQUEST = 1,
	SMEM_RPC_RESPONSE = 2,
	SMEM_RPC_ERROR = 3,	/* payload: the error message (no NUL), code in .error */
	SMEM_RPC_CANCEL = 4,	/* the sender abandons message msg_id (see below); no payload */
};

struct smem_rpc_pkt_hdr {
	uint8_t version;	/*  0: SMEM_RPC_VERSION */
	uint8_t type;		/*  1: enum smem_rpc_type */
	uint16_t flags;		/*  2: none defined, 0 */
	uint32_t session;	/*  4: the channel session the sender belongs to */
	uint64_t msg_id;	/*  8: sender-local id, unique per sender and session, never 0 */
	uint64_t response_to;	/* 16: response/error: the request's msg_id; request: 0 */
	uint64_t total_size;	/* 24: payload bytes of the whole message */
	uint32_t index;		/* 32: 0-based packet number */
	uint32_t count;		/* 36: packets in the message, max(1, ceil(total / P)) */
	uint32_t chunk;		/* 40: payload bytes in this packet */
	int32_t error;		/* 44: error: a negative errno; otherwise 0 */
	uint8_t reserved[16];	/* 48: zero */
};

_Static_assert(sizeof(struct smem_rpc_pkt_hdr) == SMEM_RPC_HDR_SIZE, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, version) == 0, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, type) == 1, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, flags) == 2, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, session) == 4, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, msg_id) == 8, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, response_to) == 16, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, total_size) == 24, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, index) == 32, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, count) == 36, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, chunk) == 40, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, error) == 44, "rpc header");
_Static_assert(offsetof(struct smem_rpc_pkt_hdr, reserved) == 48, "rpc header");

/* Packets for @total payload bytes at @per bytes per packet (>= 1); 0 if over UINT32_MAX. */
uint32_t smem__rpc_packet_count(uint64_t total, uint32_t per);
/* Payload bytes of packet @index. */
uint32_t smem__rpc_chunk_len(uint64_t total, uint32_t per, uint32_t index);

/* Fill a header (reserved fields zeroed). */
void smem__rpc_pkt_fill(struct smem_rpc_pkt_hdr *h, uint8_t type, uint32_t session,
			uint64_t msg_id, uint64_t response_to, uint64_t total, uint32_t index,
			uint32_t count, uint32_t chunk, int32_t error);

/*
 * Copy the header of a received packet of @len bytes (from shared memory) into *out and check
 * it against the receiver's geometry: @per payload bytes per packet, @max_message. Returns 0,
 * or -EPROTO (short packet, unknown version or type, flags or reserved bytes set, index/count/
 * chunk inconsistent with total_size, length != 64 + chunk, total over max_message, message id
 * 0, response without response_to, error code not a negative errno, a cancel with a payload
 * or an error code).
 */
int smem__rpc_pkt_parse(const void *pkt, size_t len, uint32_t per, uint64_t max_message,
			struct smem_rpc_pkt_hdr *out);

/*
 * Reassembly of one message. start() takes the first packet's (parsed) header and allocates
 * the payload; add() appends a packet's payload and returns 1 when the message is complete,
 * 0 when more packets are expected, -EPROTO when the packet does not continue this message
 * (wrong index, changed total or type or count): the caller drops the message.
 */
struct smem__rpc_asm {
	uint64_t msg_id;
	uint64_t response_to;
	uint64_t total;
	uint32_t count;
	uint32_t next;		/* index expected next */
	uint64_t filled;	/* bytes copied so far */
	uint8_t type;
	int32_t error;
	uint32_t session;
	uint8_t *buf;		/* malloc'd, total bytes (NULL when total == 0) */
};

int smem__rpc_asm_start(struct smem__rpc_asm *a, const struct smem_rpc_pkt_hdr *h);
/* The same, into @buf (malloc'd, at least total_size bytes; owned by @a on success) if not
 * NULL. */
int smem__rpc_asm_start_into(struct smem__rpc_asm *a, const struct smem_rpc_pkt_hdr *h,
			     void *buf);
int smem__rpc_asm_add(struct smem__rpc_asm *a, const struct smem_rpc_pkt_hdr *h,
		      const void *payload, uint32_t per);
void smem__rpc_asm_free(struct smem__rpc_asm *a);

#endif
