/* SPDX-License-Identifier: MIT */
/*
 * RPC packets: splitting a message into ring-node-sized packets, checking received headers,
 * and reassembling messages with order and completeness checked (see rpc_proto_int.h).
 *
 * The seed computed the last chunk as total % P, which is 0 for an exact multiple of P and
 * lost the last chunk; here every packet states its chunk length and the receiver checks it
 * against the length it computes itself, so both must agree on every byte.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_proto_int.h"

uint32_t smem__rpc_packet_count(uint64_t total, uint32_t per)
{
	uint64_t n;

	if (per == 0)
		return 0;
	if (total <= per)
		return 1;	/* the common case, without a division */
	n = total / per + (total % per != 0);
	return n > UINT32_MAX ? 0 : (uint32_t)n;
}

uint32_t smem__rpc_chunk_len(uint64_t total, uint32_t per, uint32_t index)
{
	uint64_t off = (uint64_t)index * per;

	if (off >= total)
		return 0;
	return total - off < per ? (uint32_t)(total - off) : per;
}

void smem__rpc_pkt_fill(struct smem_rpc_pkt_hdr *h, uint8_t type, uint32_t session,
			uint64_t msg_id, uint64_t response_to, uint64_t total, uint32_t index,
			uint32_t count, uint32_t chunk, int32_t error)
{
	memset(h, 0, sizeof(*h));
	h->version = SMEM_RPC_VERSION;
	h->type = type;
	h->session = session;
	h->msg_id = msg_id;
	h->response_to = response_to;
	h->total_size = total;
	h->index = index;
	h->count = count;
	h->chunk = chunk;
	h->error = error;
}

int smem__rpc_pkt_parse(const void *pkt, size_t len, uint32_t per, uint64_t max_message,
			struct smem_rpc_pkt_hdr *out)
{
	struct smem_rpc_pkt_hdr h;
	uint64_t rsv[2];
	uint32_t count;

	if (len < SMEM_RPC_HDR_SIZE || per == 0)
		return -EPROTO;
	/* One private copy: the peer may rewrite the node while we look at it. */
	memcpy(&h, pkt, sizeof(h));
	memcpy(rsv, h.reserved, sizeof(rsv));
	if (h.version != SMEM_RPC_VERSION || h.flags != 0 || (rsv[0] | rsv[1]) != 0)
		return -EPROTO;
	switch (h.type) {
	case SMEM_RPC_REQUEST:
		if (h.response_to != 0 || h.error != 0)
			return -EPROTO;
		break;
	case SMEM_RPC_RESPONSE:
		if (h.response_to == 0 || h.error != 0)
			return -EPROTO;
		break;
	case SMEM_RPC_ERROR:
		/* Any negative errno the kernel could name; never 0, never positive. */
		if (h.response_to == 0 || h.error >= 0 || h.error < -4095)
			return -EPROTO;
		break;
	case SMEM_RPC_CANCEL:
		/* Names a message of either kind; carries nothing itself. */
		if (h.error != 0 || h.total_size != 0)
			return -EPROTO;
		break;
	default:
		return -EPROTO;
	}
	if (h.msg_id == 0 || h.total_size > max_message)
		return -EPROTO;
	if (len - SMEM_RPC_HDR_SIZE != h.chunk)
		return -EPROTO;
	if (h.total_size <= per) {
		/* One packet (the common case): no division. */
		if (h.count != 1 || h.index != 0 || h.chunk != h.total_size)
			return -EPROTO;
		*out = h;
		return 0;
	}
	count = smem__rpc_packet_count(h.total_size, per);
	if (count == 0 || h.count != count || h.index >= count)
		return -EPROTO;
	if (h.chunk != smem__rpc_chunk_len(h.total_size, per, h.index))
		return -EPROTO;
	*out = h;
	return 0;
}

int smem__rpc_asm_start(struct smem__rpc_asm *a, const struct smem_rpc_pkt_hdr *h)
{
	return smem__rpc_asm_start_into(a, h, NULL);
}

int smem__rpc_asm_start_into(struct smem__rpc_asm *a, const struct smem_rpc_pkt_hdr *h,
			     void *buf)
{
	memset(a, 0, sizeof(*a));
	if (h->index != 0)
		return -EPROTO;	/* a message must start with its first packet */
	if (buf) {
		a->buf = buf;
	} else if (h->total_size > 0) {
		if (h->total_size > SIZE_MAX)
			return -ENOMEM;
		a->buf = malloc((size_t)h->total_size);
		if (!a->buf)
			return -ENOMEM;
	}
	a->msg_id = h->msg_id;
	a->response_to = h->response_to;
	a->total = h->total_size;
	a->count = h->count;
	a->type = h->type;
	a->error = h->error;
	a->session = h->session;
	return 0;
}

int smem__rpc_asm_add(struct smem__rpc_asm *a, const struct smem_rpc_pkt_hdr *h,
		      const void *payload, uint32_t per)
{
	uint64_t off;

	if (h->msg_id != a->msg_id || h->type != a->type || h->total_size != a->total ||
	    h->count != a->count || h->response_to != a->response_to || h->error != a->error ||
	    h->session != a->session || h->index != a->next)
		return -EPROTO;
	off = (uint64_t)h->index * per;
	/* parse() checked chunk against total; check the arithmetic against our buffer anyway. */
	if (off > a->total || h->chunk > a->total - off || off != a->filled)
		return -EPROTO;
	if (h->chunk)
		memcpy(a->buf + off, payload, h->chunk);
	a->filled += h->chunk;
	a->next++;
	if (a->next < a->count)
		return 0;
	return a->filled == a->total ? 1 : -EPROTO;
}

void smem__rpc_asm_free(struct smem__rpc_asm *a)
{
	free(a->buf);
	a->buf = NULL;
}
