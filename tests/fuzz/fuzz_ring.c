/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the ring's read and write paths over a ring whose shared memory a hostile
 * peer scribbles on (its control area, its node headers, its geometry line before attach).
 *
 * The ring lives in a memfd made here (smem__ring_format + a hand-made region + the ring's
 * own smem__ring_attach), so no broker is involved. One handle runs a script of operations,
 * all with timeout 0, interleaved with "pokes" that overwrite shared bytes.
 *
 *   byte 0    node_count - 2 (mod 16)
 *   byte 1    node_size / 8 - 1 (mod 32)
 *   byte 2    bit 0: one poke into the geometry line before attach (then offset, len, bytes)
 *   then ops  op byte (low 3 bits) and its arguments:
 *     0 poke  offset (2 bytes) into the object area, length (1), bytes
 *     1 write length (1)               2 read capacity (1)          3 next_len
 *     4 reserve_read (then hold it)    5 reserve_write (then hold it)
 *     6 finish held slots: release the read; commit (length from the op byte) or abort the write
 *     7 node claim: node (1), which (1): claimed by a dead writer/reader, by us, or a sleep of
 *       2.5 ms (once per input) so that stuck claims get their liveness check
 *
 * Checked: never a crash or an access outside the mapping (ASan/UBSan, and the payload
 * copies), lengths never above the node size or the caller's capacity, errors only from the
 * documented set. While no poke has happened, the ring must also behave exactly like a model
 * FIFO: each message read once, in order, with its bytes, full and empty exactly when the
 * model says so.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "ring_int.h"

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_ring: check failed at line %d: %s\n", __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#include "fuzzmap.h"

enum { P_NONE, P_RESERVED, P_COMMITTED, P_ABORTED, P_CLAIMED, P_RELEASED };

struct model {
	bool ok;		/* no poke so far: the ring must match exactly */
	uint32_t n, size;
	uint8_t *st;		/* per position */
	uint16_t *len;
	size_t cap;		/* positions tracked */
	uint64_t head, tail;
};

static uint8_t pay(uint64_t pos, size_t i)
{
	return (uint8_t)(pos * 31 + i * 7 + 1);
}

/* The model's head, past aborted positions (readers step over them). */
static uint64_t m_head(struct model *m)
{
	while (m->head < m->tail && m->st[m->head] == P_ABORTED)
		m->head++;
	return m->head;
}

static bool m_can_write(const struct model *m)
{
	uint64_t p = m->tail;

	if (p + 1 >= m->cap)
		return false;
	return p < m->n || m->st[p - m->n] == P_ABORTED || m->st[p - m->n] == P_RELEASED;
}

/* Position the next read gets, or UINT64_MAX when the model says "empty". */
static uint64_t m_next(struct model *m)
{
	uint64_t p = m_head(m);

	return p < m->tail && m->st[p] == P_COMMITTED ? p : UINT64_MAX;
}

static struct smem_region *make_region(uint32_t n, uint32_t size, size_t *obj_size)
{
	size_t need = smem__ring_obj_size(n, size);
	struct smem_region *reg;

	CHECK(need);
	reg = fuzz_map_region("fuzz-ring", need);
	reg->kind = SMEM_KIND_RING;
	CHECK(smem__ring_format(reg->obj, need, n, size) == 0);
	*obj_size = need;
	return reg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char buf[512], src[256];
	struct smem_ring_slot rslot, wslot;
	bool rheld = false, wheld = false, slept = false;
	struct smem_region *reg;
	struct smem_ring *r;
	struct model m = { .ok = true };
	size_t off = 3, obj_size, i;
	uint64_t rpos = 0, wpos = 0;
	int err;

	if (size < 3)
		return 0;
	m.n = 2 + data[0] % 16;
	m.size = 8 * (1 + data[1] % 32);
	reg = make_region(m.n, m.size, &obj_size);
	if ((data[2] & 1) && fuzz_scribble_header(reg->obj, data, size, &off))
		m.ok = false;
	err = smem__ring_attach(reg, &r);
	if (err) {
		CHECK(err == -EPROTO && !m.ok);
		smem_region_close(reg);
		return 0;
	}
	smem_ring_set_spin(r, 0);
	/*
	 * A geometry poke that keeps the line consistent (node_size 24 -> 4 under the same
	 * 64-byte stride, say) is a ring the opener cannot tell from an honest one: the handle
	 * takes its geometry from it, once, and bounds everything by that private copy. So the
	 * bounds checked below are the handle's, not the ones we formatted with.
	 */
	m.n = smem_ring_node_count(r);
	m.size = smem_ring_node_size(r);
	m.cap = size + m.n + 2;
	m.st = calloc(m.cap, 1);
	m.len = calloc(m.cap, sizeof(*m.len));
	CHECK(m.st && m.len);

	while (off < size) {
		unsigned op = data[off] & 7, arg = data[off] >> 3;
		size_t a = off + 1 < size ? data[off + 1] : 0;
		ssize_t n;
		uint64_t p;

		off += 1;
		switch (op) {
		case 0: {	/* poke */
			size_t at, len;

			if (off + 3 > size) {
				off = size;
				break;
			}
			at = ((size_t)data[off] | (size_t)data[off + 1] << 8) % obj_size;
			len = data[off + 2];
			off += 3;
			if (len > size - off)
				len = size - off;
			if (len > obj_size - at)
				len = obj_size - at;
			memcpy((char *)reg->obj + at, data + off, len);
			off += len;
			m.ok = false;
			break;
		}
		case 1:		/* write */
			off++;
			a %= m.size + 1;
			p = m.tail;
			for (i = 0; i < a && i < sizeof(src); i++)
				src[i] = pay(p, i);
			if (a > sizeof(src))
				a = sizeof(src);
			err = smem_ring_write(r, src, a, 0);
			CHECK(err == 0 || err == -ETIMEDOUT || err == -EPROTO);
			if (m.ok) {
				CHECK((err == 0) == m_can_write(&m));
				if (!err) {
					m.st[p] = P_COMMITTED;
					m.len[p] = (uint16_t)a;
					m.tail++;
				}
			}
			break;
		case 2:		/* read */
			off++;
			a = a * 2 + 1;		/* 1..511 */
			n = smem_ring_read(r, buf, a, 0);
			CHECK(n >= 0 ? (size_t)n <= a && (size_t)n <= m.size :
			      n == -ETIMEDOUT || n == -EPROTO || n == -EMSGSIZE);
			if (m.ok) {
				p = m_next(&m);
				if (p == UINT64_MAX) {
					CHECK(n == -ETIMEDOUT);
				} else if (m.len[p] > a) {
					CHECK(n == -EMSGSIZE);
				} else {
					CHECK(n == m.len[p]);
					for (i = 0; i < (size_t)n; i++)
						CHECK(buf[i] == pay(p, i));
					m.st[p] = P_RELEASED;
					m.head = p + 1;
				}
			}
			break;
		case 3:		/* next_len */
			n = smem_ring_next_len(r);
			CHECK(n >= 0 ? (size_t)n <= m.size : n == -EAGAIN || n == -EPROTO);
			if (m.ok) {
				p = m_next(&m);
				CHECK(p == UINT64_MAX ? n == -EAGAIN : n == m.len[p]);
			}
			break;
		case 4:		/* reserve_read and hold */
			if (rheld)
				break;
			err = smem_ring_reserve_read(r, &rslot, 0);
			CHECK(err == 0 || err == -ETIMEDOUT || err == -EPROTO);
			if (!err) {
				CHECK(rslot.len <= m.size && rslot.cap == m.size);
				/* The payload is ours to read: all of it lies inside the mapping. */
				for (i = 0; i < rslot.len; i++) {
					unsigned char c = ((const volatile unsigned char *)rslot.data)[i];

					/* a poked geometry may have nodes longer than buf */
					if (i < sizeof(buf))
						buf[i] = c;
				}
				rheld = true;
			}
			if (m.ok) {
				p = m_next(&m);
				CHECK((err == 0) == (p != UINT64_MAX));
				if (!err) {
					CHECK(rslot.len == m.len[p]);
					for (i = 0; i < rslot.len; i++)
						CHECK(buf[i] == pay(p, i));
					m.st[p] = P_CLAIMED;
					m.head = p + 1;
					rpos = p;
				}
			}
			break;
		case 5:		/* reserve_write and hold */
			if (wheld)
				break;
			err = smem_ring_reserve_write(r, &wslot, 0);
			CHECK(err == 0 || err == -ETIMEDOUT || err == -EPROTO);
			if (!err) {
				CHECK(wslot.cap == m.size);
				memset(wslot.data, 0, wslot.cap);
				wheld = true;
			}
			if (m.ok) {
				CHECK((err == 0) == m_can_write(&m));
				if (!err) {
					wpos = m.tail++;
					m.st[wpos] = P_RESERVED;
				}
			}
			break;
		case 6:		/* finish held slots */
			if (rheld) {
				err = smem_ring_release(r, &rslot);
				CHECK(err == 0 || err == -EPROTO);
				CHECK(!m.ok || err == 0);
				if (m.ok)
					m.st[rpos] = P_RELEASED;
				rheld = false;
			}
			if (wheld) {
				size_t len = arg % (m.size + 1);

				if (arg & 1) {
					err = smem_ring_abort(r, &wslot);
					if (m.ok)
						m.st[wpos] = P_ABORTED;
				} else {
					for (i = 0; i < len; i++)
						((unsigned char *)wslot.data)[i] = pay(wpos, i);
					err = smem_ring_commit(r, &wslot, len);
					if (m.ok) {
						m.st[wpos] = P_COMMITTED;
						m.len[wpos] = (uint16_t)len;
					}
				}
				CHECK(err == 0 || err == -EPROTO);
				CHECK(!m.ok || err == 0);
				wheld = false;
			}
			break;
		case 7: {	/* a claim by someone else, or a pause */
			struct smem_ring_node *nodes = (void *)((char *)reg->obj + SMEM_RING_HDR_SIZE);
			unsigned which = off + 1 < size ? data[off + 1] % 4 : 0;
			uint32_t node = (uint32_t)a % m.n;
			uint64_t s = atomic_load(&nodes[node].state);

			off += 2;
			if (which == 3) {
				if (!slept)
					usleep(2500);
				slept = true;
				break;
			}
			/* dead owner (slot 5, generation 1: never claimed), or our own id */
			atomic_store(&nodes[node].state, (s & ~0xffffffffull) |
				     (which == 2 ? smem__ring_owner_id(r) : 0x105u) |
				     (which == 1 ? (1ull << 32) : 0));
			m.ok = false;
			break;
		}
		}
	}
	/* Slots still held are simply abandoned, as by a caller that closes its handle. */
	smem_ring_close(r);
	free(m.st);
	free(m.len);
	return 0;
}
