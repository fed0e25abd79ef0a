/* SPDX-License-Identifier: MIT */
/*
 * The RPC receive pump. Every thread that waits on a channel (a caller, the service thread, a
 * dispatch loop) makes progress itself: whoever wins the channel's pump lock (trylock, never
 * held across a sleep, a send or a handler) drains the receive ring. Each packet's header is
 * copied out of shared memory and checked (rpc_proto.c); responses are reassembled and handed
 * to their pending call, requests are reassembled and queued for a thread that may serve.
 *
 * Partial messages (the first packets of a multi-packet message) wait in a list of assemblies
 * keyed by type and id, at most MAX_ASSEMBLIES; packets of an earlier session are dropped and
 * counted, never delivered.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ring_int.h"
#include "rpc_int.h"

static struct assembly *asm_find(struct smem_rpc *ch, uint8_t type, uint64_t key,
				 struct assembly ***prevp)
{
	struct assembly **pp, *a;
	bool req = type == SMEM_RPC_REQUEST;

	for (pp = &ch->asms; (a = *pp); pp = &a->next) {
		bool areq = a->a.type == SMEM_RPC_REQUEST;
		uint64_t akey = areq ? a->a.msg_id : a->a.response_to;

		if (areq == req && akey == key) {
			if (prevp)
				*prevp = pp;
			return a;
		}
	}
	return NULL;
}

static void asm_drop(struct smem_rpc *ch, struct assembly **pp)
{
	struct assembly *a = *pp;

	*pp = a->next;
	smem__rpc_asm_free(&a->a);
	free(a);
	ch->nasm--;
}

void smem__rpc_asm_clear(struct smem_rpc *ch)
{
	while (ch->asms)
		asm_drop(ch, &ch->asms);
}

/* A complete message. Takes ownership of a->buf. */
/* A complete message. Takes ownership of a->buf. */
static void deliver(struct smem_rpc *ch, struct smem__rpc_asm *a)
{
	struct inreq *q;

	STAT_SET(ch, last_message_received, (int64_t)a->total);
	if (a->type == SMEM_RPC_REQUEST) {
		STAT_ADD(ch, requests_received, 1);
		q = malloc(sizeof(*q));
		if (!q) {
			smem__rpc_asm_free(a);
			return;	/* the caller times out: we could not even queue it */
		}
		q->next = NULL;
		q->id = a->msg_id;
		q->session = a->session;
		q->data = a->buf;
		q->len = (size_t)a->total;
		a->buf = NULL;
		smem__rpc_queue_push(ch, q);
		return;
	}
	if (a->type == SMEM_RPC_RESPONSE)
		STAT_ADD(ch, responses_received, 1);
	else
		STAT_ADD(ch, errors_received, 1);
	if (!smem__rpc_call_resolve(ch, a)) {
		STAT_ADD(ch, discarded_responses, 1);
		STAT_SET(ch, last_discarded_id, a->response_to);
	}
	smem__rpc_asm_free(a);
}

static void on_packet(struct smem_rpc *ch, const void *pkt, size_t len)
{
	struct smem_rpc_pkt_hdr h;
	struct assembly *a, **pp;
	uint64_t key;
	int rc;

	if (smem__rpc_pkt_parse(pkt, len, ch->per, ch->max_message, &h) < 0) {
		STAT_ADD(ch, protocol_errors, 1);
		return;
	}
	if (h.session != my_session(ch)) {
		smem__rpc_refresh(ch, false);	/* a new session may have begun: adopt it first */
		if (h.session != my_session(ch)) {
			STAT_ADD(ch, stale_packets, 1);
			return;
		}
	}
	if (ch->asm_session != h.session) {
		smem__rpc_asm_clear(ch);	/* partial messages of an earlier session never complete */
		ch->asm_session = h.session;
	}
	STAT_ADD(ch, packets_received, 1);
	STAT_ADD(ch, bytes_received, h.chunk);
	stat_max(&ch->st.max_packet_received, h.chunk);
	STAT_SET(ch, last_packet_received, (int64_t)h.chunk);

	key = h.type == SMEM_RPC_REQUEST ? h.msg_id : h.response_to;
	if (h.index == 0) {
		struct smem__rpc_asm one;
		bool discard = h.type != SMEM_RPC_REQUEST && !smem__rpc_call_pending(ch, h.response_to);

		if ((a = asm_find(ch, h.type, key, &pp))) {
			STAT_ADD(ch, protocol_errors, 1);	/* restarted: the old one is broken */
			asm_drop(ch, pp);
		}
		if (discard) {
			STAT_ADD(ch, discarded_responses, 1);
			STAT_SET(ch, last_discarded_id, h.response_to);
			if (h.count == 1)
				return;
			memset(&one, 0, sizeof(one));
		} else if (smem__rpc_asm_start(&one, &h) < 0) {
			STAT_ADD(ch, protocol_errors, 1);	/* no memory for it */
			return;
		}
		if (!discard && h.count == 1) {
			/* The common case: one packet, no table. */
			if (smem__rpc_asm_add(&one, &h, (const uint8_t *)pkt + SMEM_RPC_HDR_SIZE,
					      ch->per) == 1)
				deliver(ch, &one);
			else
				smem__rpc_asm_free(&one);
			return;
		}
		while (ch->nasm >= MAX_ASSEMBLIES) {
			/* Bounded: evict the oldest (last in the list). */
			for (pp = &ch->asms; (*pp)->next; pp = &(*pp)->next)
				;
			STAT_ADD(ch, protocol_errors, 1);
			asm_drop(ch, pp);
		}
		a = calloc(1, sizeof(*a));
		if (!a) {
			smem__rpc_asm_free(&one);
			STAT_ADD(ch, protocol_errors, 1);
			return;
		}
		a->a = one;
		a->discard = discard;
		if (discard) {
			/* Only what is needed to follow the packets; nothing is copied. */
			a->a.msg_id = h.msg_id;
			a->a.response_to = h.response_to;
			a->a.total = h.total_size;
			a->a.count = h.count;
			a->a.type = h.type;
			a->a.error = h.error;
			a->a.session = h.session;
			a->a.next = 1;
			a->a.filled = h.chunk;
		}
		a->next = ch->asms;
		ch->asms = a;
		ch->nasm++;
		if (discard)
			return;
		pp = &ch->asms;
	} else {
		a = asm_find(ch, h.type, key, &pp);
		if (!a) {
			STAT_ADD(ch, protocol_errors, 1);	/* continuation of nothing */
			return;
		}
		if (a->discard) {
			if (h.index != a->a.next || h.msg_id != a->a.msg_id) {
				STAT_ADD(ch, protocol_errors, 1);
				asm_drop(ch, pp);
				return;
			}
			if (++a->a.next == a->a.count)
				asm_drop(ch, pp);
			return;
		}
	}
	rc = smem__rpc_asm_add(&a->a, &h, (const uint8_t *)pkt + SMEM_RPC_HDR_SIZE, ch->per);
	if (rc == 0)
		return;
	if (rc == 1) {
		struct smem__rpc_asm done = a->a;

		a->a.buf = NULL;
		asm_drop(ch, pp);
		deliver(ch, &done);
		return;
	}
	STAT_ADD(ch, protocol_errors, 1);	/* out of order or inconsistent: drop it */
	asm_drop(ch, pp);
}

/* Drain the receive ring. Caller holds ch->pump. Returns packets consumed. */
static unsigned pump_locked(struct smem_rpc *ch)
{
	struct smem_ring_slot slot;
	unsigned n;
	int rc;

	for (n = 0; n < PUMP_BUDGET; n++) {
		rc = smem_ring_reserve_read(ch->rx, &slot, 0);
		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			break;
		if (rc < 0) {
			if (rc == -ESHUTDOWN)
				smem__rpc_fail(ch, -ESHUTDOWN);	/* the master closed */
			else
				STAT_ADD(ch, protocol_errors, 1);
			break;
		}
		on_packet(ch, slot.data, slot.len);
		smem_ring_release(ch->rx, &slot);
	}
	return n;
}

int smem__rpc_try_pump(struct smem_rpc *ch)
{
	unsigned n;

	if (pthread_mutex_trylock(&ch->pump) != 0)
		return -EBUSY;
	atomic_store(&ch->pumping, true);
	n = pump_locked(ch);
	atomic_store(&ch->pumping, false);	/* seq_cst: see smem__rpc_ws_rx() */
	pthread_mutex_unlock(&ch->pump);
	if (atomic_exchange(&ch->pump_skipped, false))
		smem__rpc_ev_bump(ch);
	return (int)n;
}
