/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: RPC packet parsing and message reassembly (src/rpc_proto.c), as a receiver
 * uses them: every packet is parsed against the receiver's private geometry, first packets
 * start an assembly in a small table keyed like rpc.c's (requests by msg_id, responses and
 * errors by response_to), later ones continue it, inconsistent ones drop it.
 *
 *   byte 0   payload bytes per packet: 1 + byte % 128
 *   byte 1   max_message: per * (1 + byte % 16)
 *   byte 2   mode: bit 0 clear: raw packets follow, each a length (1 byte) and that many bytes;
 *            bit 0 set: messages follow, each a type (1 byte), a length (2 bytes) and a byte
 *            that seeds its payload; they are split by the library's own rules, their packets
 *            interleaved by the type byte's high bits, and each must come out whole and equal
 *
 * Checked: no access outside the packet or the assembly buffer (ASan), a message completes
 * only with every byte filled, parse accepts exactly the packets the sender rules make.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_proto_int.h"

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_rpc: check failed at line %d: %s\n", __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#define SLOTS	8

struct table {
	struct smem__rpc_asm a[SLOTS];
	bool used[SLOTS];
};

static uint64_t key_of(uint8_t type, uint64_t msg_id, uint64_t response_to)
{
	return type == SMEM_RPC_REQUEST ? msg_id : response_to;
}

static int find(struct table *t, uint8_t type, uint64_t key)
{
	int i;

	for (i = 0; i < SLOTS; i++)
		if (t->used[i] && (t->a[i].type == SMEM_RPC_REQUEST) == (type == SMEM_RPC_REQUEST) &&
		    key_of(t->a[i].type, t->a[i].msg_id, t->a[i].response_to) == key)
			return i;
	return -1;
}

static void drop(struct table *t, int i)
{
	smem__rpc_asm_free(&t->a[i]);
	t->used[i] = false;
}

/*
 * Feed one packet. Returns 1 and moves the finished assembly to *done when a message
 * completes, 0 otherwise.
 */
static int feed(struct table *t, const uint8_t *pkt, size_t len, uint32_t per, uint64_t max,
		struct smem__rpc_asm *done)
{
	struct smem_rpc_pkt_hdr h;
	int i, rc;

	if (smem__rpc_pkt_parse(pkt, len, per, max, &h) < 0)
		return 0;
	CHECK(h.chunk <= per && h.index < h.count && h.total_size <= max);
	CHECK(len == SMEM_RPC_HDR_SIZE + h.chunk);
	i = find(t, h.type, key_of(h.type, h.msg_id, h.response_to));
	if (h.index == 0) {
		if (i >= 0)
			drop(t, i);
		for (i = 0; i < SLOTS && t->used[i]; i++)
			;
		if (i == SLOTS)
			drop(t, i = 0);		/* bounded, as rpc.c's table */
		if (smem__rpc_asm_start(&t->a[i], &h) < 0)
			return 0;
		t->used[i] = true;
	} else if (i < 0) {
		return 0;			/* continuation of nothing */
	}
	rc = smem__rpc_asm_add(&t->a[i], &h, pkt + SMEM_RPC_HDR_SIZE, per);
	CHECK(rc == 0 || rc == 1 || rc == -EPROTO);
	if (rc == 0)
		return 0;
	if (rc < 0) {
		drop(t, i);
		return 0;
	}
	CHECK(t->a[i].filled == t->a[i].total && t->a[i].next == t->a[i].count);
	*done = t->a[i];
	t->used[i] = false;
	return 1;
}

static uint8_t pay(uint8_t seed, uint64_t msg_id, size_t i)
{
	return (uint8_t)(seed + msg_id * 13 + i * 7);
}

struct sender {
	uint8_t type, seed;
	uint64_t msg_id, total;
	uint32_t count, next;
};

static size_t make_packet(const struct sender *s, uint32_t per, uint8_t *pkt)
{
	struct smem_rpc_pkt_hdr h;
	uint32_t chunk = smem__rpc_chunk_len(s->total, per, s->next), i;
	uint64_t base = (uint64_t)s->next * per;

	smem__rpc_pkt_fill(&h, s->type, 7, s->msg_id, s->type == SMEM_RPC_REQUEST ? 0 : 1000 + s->msg_id,
			   s->total, s->next, s->count, chunk,
			   s->type == SMEM_RPC_ERROR ? -5 : 0);
	memcpy(pkt, &h, sizeof(h));
	for (i = 0; i < chunk; i++)
		pkt[SMEM_RPC_HDR_SIZE + i] = pay(s->seed, s->msg_id, base + i);
	return SMEM_RPC_HDR_SIZE + chunk;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pkt[SMEM_RPC_HDR_SIZE + 256];
	struct table t;
	struct smem__rpc_asm done;
	uint32_t per;
	uint64_t max;
	size_t off = 3, i;

	if (size < 3)
		return 0;
	memset(&t, 0, sizeof(t));
	per = 1 + data[0] % 128;
	max = (uint64_t)per * (1 + data[1] % 16);

	if (!(data[2] & 1)) {
		while (off < size) {
			size_t len = data[off++];

			if (len > size - off)
				len = size - off;
			/* A private copy of exactly len bytes: reading past it is an ASan error. */
			uint8_t *p = malloc(len ? len : 1);

			CHECK(p);
			memcpy(p, data + off, len);
			if (feed(&t, p, len, per, max, &done))
				smem__rpc_asm_free(&done);
			free(p);
			off += len;
		}
	} else {
		/* Two senders at a time, interleaved; every message must arrive whole. */
		struct sender s[2] = { { 0 }, { 0 } };
		uint64_t next_id = 1;
		unsigned active = 0, step = 0;

		for (;;) {
			struct sender *x;
			unsigned which;
			size_t len;

			while (active < 2 && off + 4 <= size) {
				struct sender *n = !s[0].count ? &s[0] : &s[1];
				uint16_t l;

				memcpy(&l, data + off + 1, sizeof(l));
				n->type = 1 + data[off] % 3;
				n->seed = data[off + 3];
				n->msg_id = next_id++;
				n->total = l % (max + 1);
				n->count = smem__rpc_packet_count(n->total, per);
				n->next = 0;
				CHECK(n->count >= 1);
				off += 4;
				active++;
			}
			if (!active)
				break;
			/* The input's bytes, cycled, pick whose packet goes next. */
			which = (data[step++ % size] >> 7) & 1;
			if (!s[which].count)
				which ^= 1;
			x = &s[which];
			len = make_packet(x, per, pkt);
			x->next++;
			if (feed(&t, pkt, len, per, max, &done)) {
				CHECK(done.msg_id == x->msg_id && done.total == x->total);
				CHECK(x->next == x->count);
				for (i = 0; i < done.total; i++)
					CHECK(done.buf[i] == pay(x->seed, x->msg_id, i));
				smem__rpc_asm_free(&done);
			} else {
				CHECK(x->next < x->count);	/* valid packets never fail */
			}
			if (x->next == x->count) {
				x->count = 0;
				active--;
			}
		}
	}
	for (i = 0; i < SLOTS; i++)
		if (t.used[i])
			drop(&t, (int)i);
	return 0;
}
