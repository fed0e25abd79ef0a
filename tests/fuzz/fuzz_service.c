/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a service's slot table (src/service_slot.c) over memory that hostile clients
 * write: the header the clients map (slot count, bell, joins), the slots' owner words and
 * states, and the channel control blocks the server checks before attaching a slot.
 *
 * The region is a memfd made here (fuzzmap.h) with a valid header; this process joins its
 * participants, so its own live id is alive and every other id is dead or malformed. All
 * code under test is the library's: smem__svc_map, claim, release, the server's look at a
 * slot (smem__svc_slot_look) and its check before attaching (smem__svc_slot_check).
 *
 *   byte 0    nslots - 1 (mod 8)
 *   then ops  op byte (low 3 bits) and its arguments:
 *     0 poke     offset (2 bytes) into the object area, length (1), bytes
 *     1 claim    a slot for our live id
 *     2 release  slot (1 byte, mod nslots)
 *     3 look     at slot (1 byte) as the server's sweep does, and act on it
 *     4 publish  our claimed slot (state READY, its control block filled as a client does)
 *     5 remap    the header again (smem__svc_map), as a connecting client would
 *
 * Checked: never a crash or an access outside the mapping; a claim returns an index below the
 * private slot count (or -EUSERS) and leaves our id in that slot; a slot whose owner word
 * names no one is skipped, one naming a dead or malformed id is freed, one of ours that we
 * published is attached and passes the check. While nothing was poked, claims hand out each
 * slot once until it is released, and -EUSERS comes exactly when all are ours.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "service_int.h"

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_service: check failed at line %d: %s\n", __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#include "fuzzmap.h"

#define SERVER_ID	0x7ffffe01u	/* a server that is not us: a well-formed id, dead */

static void fill_ctl(struct smem_svc_slot *s, uint32_t me, uint32_t gen)
{
	struct smem_rpc_ctl *ctl = &s->ctl;

	memset(ctl, 0, sizeof(*ctl));
	ctl->magic = SMEM_RPC_CTL_MAGIC;
	ctl->version = SMEM_RPC_CTL_VERSION;
	atomic_store(&ctl->ring_gen, gen);
	smem__rpc_end_fill(&ctl->end[SMEM_RPC_MASTER], me, 1024, gen);
	smem__rpc_end_fill(&ctl->end[SMEM_RPC_SLAVE], SERVER_ID, 1024, gen);
	atomic_store(&ctl->session, gen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smem_region *reg;
	struct smem__svc_map m, m2;
	struct smem_svc_hdr *h;
	bool mine[8] = { false }, published[8] = { false }, poked = false;
	uint32_t gens[8] = { 0 }, n, me, i;
	size_t pos = 1, area;
	char name[SMEM_NAME_MAX + 1];

	if (size < 1)
		return 0;
	n = 1 + data[0] % 8;
	area = smem__svc_size(8);
	if (!reg) {
		reg = fuzz_map_region("fuzz-service", area);
		reg->kind = SMEM_KIND_SERVICE;
		CHECK(smem__live_join(reg) == 0);
	}
	me = reg->live_id;
	memset(reg->obj, 0, area);
	h = reg->obj;
	h->magic = SMEM_SVC_MAGIC;
	h->version = SMEM_SVC_VERSION;
	h->nslots = n;
	CHECK(smem__svc_map(reg->obj, reg->obj_size, &m) == 0 && m.nslots == n);

	while (pos < size) {
		uint8_t op = data[pos++] & 7;
		uint64_t own;
		int r;

		switch (op) {
		case 0: {	/* poke */
			size_t off, len;

			if (pos + 3 > size)
				return 0;
			off = ((size_t)data[pos] | (size_t)data[pos + 1] << 8) % area;
			len = data[pos + 2];
			pos += 3;
			if (len > size - pos)
				len = size - pos;
			if (len > area - off)
				len = area - off;
			memcpy((uint8_t *)reg->obj + off, data + pos, len);
			pos += len;
			poked = true;
			break;
		}
		case 1: {	/* claim */
			uint32_t g = 0, k, all = 1;

			for (k = 0; k < n; k++)
				all &= mine[k];
			r = smem__svc_claim(&m, me, &g);
			if (r == -EUSERS) {
				CHECK(poked || all);
				break;
			}
			CHECK(r >= 0 && (uint32_t)r < n && g != 0);
			CHECK(poked || !mine[r]);
			CHECK(smem__svc_own_id(atomic_load(&m.slots[r].own)) == me);
			mine[r] = true;
			published[r] = false;
			gens[r] = g;
			smem__svc_ring_name(name, sizeof(name), "fuzz-service", (uint32_t)r, g, true);
			CHECK(strlen(name) < sizeof(name));
			break;
		}
		case 2:		/* release */
			if (pos >= size)
				return 0;
			i = data[pos++] % n;
			smem__svc_release(&m, i);
			CHECK(smem__svc_own_id(atomic_load(&m.slots[i].own)) == 0);
			mine[i] = published[i] = false;
			break;
		case 3:		/* look, as the sweep does */
			if (pos >= size)
				return 0;
			i = data[pos++] % n;
			r = smem__svc_slot_look(&m, reg, i, &own);
			CHECK(r >= SMEM__SVC_SKIP && r <= SMEM__SVC_ATTACH_IT);
			if (smem__svc_own_id(own) == 0)
				CHECK(r == SMEM__SVC_SKIP);
			else if (smem__svc_own_id(own) != me)
				CHECK(r == SMEM__SVC_FREE_IT);	/* nobody else is alive here */
			if (!poked && mine[i])
				CHECK(r == (published[i] ? SMEM__SVC_ATTACH_IT : SMEM__SVC_WAIT));
			if (r == SMEM__SVC_FREE_IT) {
				smem__svc_release(&m, i);
				mine[i] = published[i] = false;
			} else if (r == SMEM__SVC_ATTACH_IT) {
				int c = smem__svc_slot_check(&m.slots[i], smem__svc_own_id(own),
							     smem__svc_own_gen(own), SERVER_ID);

				CHECK(c == 0 || c == -EPROTO);
				if (!poked)
					CHECK(c == 0);
			}
			break;
		case 4:		/* publish our claimed slot */
			for (i = 0; i < n && !(mine[i] && !published[i]); i++)
				;
			if (i == n)
				break;
			fill_ctl(&m.slots[i], me, gens[i]);
			atomic_store(&m.slots[i].state, SMEM_SVC_READY);
			published[i] = true;
			break;
		default:	/* remap: a client's view of the (maybe poked) header */
			r = smem__svc_map(reg->obj, reg->obj_size, &m2);
			CHECK(r == 0 || r == -EPROTO);
			if (r == 0)
				CHECK(m2.nslots >= 1 && smem__svc_size(m2.nslots) <= reg->obj_size);
			if (!poked)
				CHECK(r == 0 && m2.nslots == n);
			break;
		}
	}
	return 0;
}
