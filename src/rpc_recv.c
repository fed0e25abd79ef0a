/* SPDX-License-Identifier: MIT */
/*
 * The receive path: the receive ring drained into calls and requests. This file owns the
 * pump lock, the partial messages being reassembled, and delivery (a response to its pending
 * call, a request to the queue); it is the only reader of the receive ring.
 *
 * Every thread that waits on a channel (a caller, the service thread, a dispatch loop) makes
 * progress itself: whoever wins the channel's pump lock (trylock, never held across a sleep,
 * a send or a handler) drains the receive ring. Each packet's header is
 * copied out of shared memory and checked (rpc_proto.c); its payload is copied once, straight
 * from the ring node into private memory, and the node is released at once.
 *
 * A message of one packet (the common case) needs no reassembly: a small request is copied
 * into its queue entry (the channel's spare entry when it has one: a steady stream allocates
 * nothing), a larger one into a spare buffer, and queued for a thread that may serve; a
 * response is copied into the buffer its caller will own and handed to its pending call.
 *
 * Partial messages (the first packets of a multi-packet message) wait in a list of assemblies keyed
 * by type and id, at most SMEM__RPC_MAX_ASSEMBLIES. One is dropped when its sender cancels it (a
 * CANCEL packet: the sender gave up partway), or when it has seen no packet for partial_expiry_ns
 * while this side kept the ring drained (its sender stopped, or its CANCEL never found room). Large
 * requests are reassembled into spare buffers kept by the channel, so a stream of them does not
 * map, fault in and unmap fresh memory for every message. Packets of an earlier session are dropped
 * and counted, never delivered.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rpc_int.h"

/* Responses above this size are looked up before they are copied (one lock more). */
#define LOOKUP_FIRST_BYTES	4096u

/* A partial message: the first packets of a message of several. */
struct smem__rpc_assembly {
	struct smem__rpc_assembly *next;
	bool discard;			/* a response nobody waits for: consume, do not copy */
	uint64_t touched_ns;		/* when its last packet came */
	size_t bufcap;			/* malloc'd size of a.buf */
	struct smem__rpc_asm a;
};

static struct smem__rpc_assembly *asm_find(struct smem_rpc *ch, uint8_t type, uint64_t key,
				 struct smem__rpc_assembly ***prevp)
{
	struct smem__rpc_assembly **pp, *a;
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

static void asm_drop(struct smem_rpc *ch, struct smem__rpc_assembly **pp)
{
	struct smem__rpc_assembly *a = *pp;

	*pp = a->next;
	smem__rpc_asm_free(&a->a);
	free(a);
	atomic_store_explicit(&ch->nasm, atomic_load_explicit(&ch->nasm, memory_order_relaxed) - 1,
			      memory_order_relaxed);
}

void smem__rpc_asm_clear(struct smem_rpc *ch)
{
	while (ch->asms)
		asm_drop(ch, &ch->asms);
}

/*
 * A complete request, its payload in @data: copied, or with @bufcap != 0 a malloc'd buffer of
 * that size that moves to the request.
 */
static void deliver_request(struct smem_rpc *ch, uint64_t id, uint32_t session,
			    const void *data, size_t len, size_t bufcap)
{
	bool owned = bufcap != 0;
	struct smem__rpc_req *q = smem__rpc_req_new(ch, len, owned ? (void *)data : NULL, bufcap);

	SMEM__RPC_STAT_BUMP(ch, requests_received, 1);
	SMEM__RPC_STAT_SET(ch, last_message_received, (int64_t)len);
	if (!q) {
		if (owned)
			free((void *)data);
		/* No memory: the caller times out. */
		SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
		return;
	}
	q->next = NULL;
	q->id = id;
	q->session = session;
	q->len = len;
	if (!owned && len)
		memcpy(q->data, data, len);
	smem__rpc_queue_push(ch, q);
}

/* A complete response or error; @buf (malloc'd, or NULL) is consumed. */
static void deliver_reply(struct smem_rpc *ch, uint8_t type, uint64_t response_to,
			  int32_t error, void *buf, size_t len)
{
	if (type == SMEM_RPC_RESPONSE)
		SMEM__RPC_STAT_BUMP(ch, responses_received, 1);
	else
		SMEM__RPC_STAT_BUMP(ch, errors_received, 1);
	SMEM__RPC_STAT_SET(ch, last_message_received, (int64_t)len);
	if (!smem__rpc_call_resolve(ch, type, response_to, error, &buf, len)) {
		SMEM__RPC_STAT_ADD(ch, discarded_responses, 1);
		SMEM__RPC_STAT_SET(ch, last_discarded_id, response_to);
	}
	free(buf);
}

static void discard_reply(struct smem_rpc *ch, uint64_t response_to)
{
	SMEM__RPC_STAT_ADD(ch, discarded_responses, 1);
	SMEM__RPC_STAT_SET(ch, last_discarded_id, response_to);
}

/* A message of one packet: no assembly, one copy out of the node. */
static void on_single(struct smem_rpc *ch, const struct smem_rpc_pkt_hdr *h,
		      const uint8_t *payload)
{
	void *buf = NULL;

	if (h->type == SMEM_RPC_REQUEST) {
		deliver_request(ch, h->msg_id, h->session, payload, h->chunk, 0);
		return;
	}
	if (h->chunk > LOOKUP_FIRST_BYTES && !smem__rpc_call_pending(ch, h->response_to)) {
		discard_reply(ch, h->response_to);	/* nobody waits: do not even copy it */
		return;
	}
	if (h->chunk) {
		buf = malloc(h->chunk);
		if (!buf) {
			SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
			return;
		}
		memcpy(buf, payload, h->chunk);
	}
	deliver_reply(ch, h->type, h->response_to, h->error, buf, h->chunk);
}

/* The sender gave up on a message partway: drop what we have of it. */
static void on_cancel(struct smem_rpc *ch, const struct smem_rpc_pkt_hdr *h)
{
	bool req = h->response_to == 0;
	struct smem__rpc_assembly *a, **pp;

	a = asm_find(ch, req ? SMEM_RPC_REQUEST : SMEM_RPC_RESPONSE,
		     req ? h->msg_id : h->response_to, &pp);
	if (a && a->a.msg_id == h->msg_id) {
		SMEM__RPC_STAT_BUMP(ch, partials_cancelled, 1);
		asm_drop(ch, pp);
	}
}

/* The first packet of a message of several: a new assembly (or a discarding one). */
static void on_first(struct smem_rpc *ch, const struct smem_rpc_pkt_hdr *h,
		     const uint8_t *payload)
{
	bool discard = h->type != SMEM_RPC_REQUEST && !smem__rpc_call_pending(ch, h->response_to);
	struct smem__rpc_assembly *a, **pp;

	if (discard)
		discard_reply(ch, h->response_to);
	while (atomic_load_explicit(&ch->nasm, memory_order_relaxed) >= SMEM__RPC_MAX_ASSEMBLIES) {
		/* Bounded: evict the oldest (last in the list). */
		for (pp = &ch->asms; (*pp)->next; pp = &(*pp)->next)
			;
		SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
		asm_drop(ch, pp);
	}
	a = calloc(1, sizeof(*a));
	if (a && !discard) {
		void *buf = NULL;

		a->bufcap = h->total_size;
		if (h->type == SMEM_RPC_REQUEST)
			buf = smem__rpc_buf_get(ch, h->total_size, &a->bufcap);
		if (smem__rpc_asm_start_into(&a->a, h, buf) < 0) {
			free(buf);
			free(a);
			a = NULL;
		}
	}
	if (!a) {
		SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);	/* no memory for it */
		return;
	}
	a->discard = discard;
	a->touched_ns = smem__rpc_coarse_ns();
	a->next = ch->asms;
	ch->asms = a;
	atomic_store_explicit(&ch->nasm, atomic_load_explicit(&ch->nasm, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (discard) {
		/* Only what is needed to follow the packets; nothing is copied. */
		a->a.msg_id = h->msg_id;
		a->a.response_to = h->response_to;
		a->a.total = h->total_size;
		a->a.count = h->count;
		a->a.type = h->type;
		a->a.error = h->error;
		a->a.session = h->session;
		a->a.next = 1;
		a->a.filled = h->chunk;
		return;
	}
	if (smem__rpc_asm_add(&a->a, h, payload, ch->per) != 0) {
		/* parse() and start() agree: never. */
		SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
		asm_drop(ch, &ch->asms);
	}
}

/* A later packet of a message of several. */
static void on_next(struct smem_rpc *ch, const struct smem_rpc_pkt_hdr *h,
		    const uint8_t *payload, uint64_t key)
{
	struct smem__rpc_assembly *a, **pp;
	int rc;

	a = asm_find(ch, h->type, key, &pp);
	if (!a) {
		SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);	/* continuation of nothing */
		return;
	}
	a->touched_ns = smem__rpc_coarse_ns();
	if (a->discard) {
		if (h->index != a->a.next || h->msg_id != a->a.msg_id) {
			SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
			asm_drop(ch, pp);
			return;
		}
		if (++a->a.next == a->a.count)
			asm_drop(ch, pp);
		return;
	}
	rc = smem__rpc_asm_add(&a->a, h, payload, ch->per);
	if (rc == 0)
		return;
	if (rc == 1) {
		struct smem__rpc_asm done = a->a;
		size_t a_bufcap = a->bufcap;

		a->a.buf = NULL;
		asm_drop(ch, pp);
		if (done.type == SMEM_RPC_REQUEST)
			deliver_request(ch, done.msg_id, done.session, done.buf,
					(size_t)done.total, a_bufcap);
		else
			deliver_reply(ch, done.type, done.response_to, done.error, done.buf,
				      (size_t)done.total);
		return;
	}
	SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);	/* out of order or inconsistent: drop it */
	asm_drop(ch, pp);
}

static void on_packet(struct smem_rpc *ch, const void *pkt, size_t len)
{
	const uint8_t *payload = (const uint8_t *)pkt + SMEM_RPC_HDR_SIZE;
	struct smem_rpc_pkt_hdr h;
	struct smem__rpc_assembly **pp;
	uint64_t key;

	if (smem__rpc_pkt_parse(pkt, len, ch->per, ch->max_message, &h) < 0) {
		SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
		return;
	}
	if (h.session != smem__rpc_my_session(ch)) {
		smem__rpc_refresh(ch, false);	/* a new session may have begun: adopt it first */
		if (h.session != smem__rpc_my_session(ch)) {
			SMEM__RPC_STAT_ADD(ch, stale_packets, 1);
			return;
		}
	}
	if (ch->asm_session != h.session) {
		smem__rpc_asm_clear(ch);	/* partial messages of an earlier session never complete */
		ch->asm_session = h.session;
	}
	SMEM__RPC_STAT_BUMP(ch, packets_received, 1);
	SMEM__RPC_STAT_BUMP(ch, bytes_received, h.chunk);
	if (h.chunk > atomic_load_explicit(&ch->st.max_packet_received, memory_order_relaxed))
		SMEM__RPC_STAT_SET(ch, max_packet_received, h.chunk);
	SMEM__RPC_STAT_SET(ch, last_packet_received, (int64_t)h.chunk);

	if (h.type == SMEM_RPC_CANCEL) {
		on_cancel(ch, &h);
		return;
	}
	key = h.type == SMEM_RPC_REQUEST ? h.msg_id : h.response_to;
	if (h.index == 0 && ch->asms && asm_find(ch, h.type, key, &pp)) {
		/* Restarted: the old one is broken. */
		SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
		asm_drop(ch, pp);
	}
	if (h.count == 1)
		on_single(ch, &h, payload);
	else if (h.index == 0)
		on_first(ch, &h, payload);
	else
		on_next(ch, &h, payload, key);
}

/* Drop partial messages that have seen no packet for partial_expiry_ns (the ring is empty). */
static void expire_partials(struct smem_rpc *ch)
{
	uint64_t now = smem__rpc_coarse_ns();
	struct smem__rpc_assembly **pp = &ch->asms;

	while (*pp) {
		if (now - (*pp)->touched_ns > ch->partial_expiry_ns) {
			SMEM__RPC_STAT_BUMP(ch, partials_expired, 1);
			asm_drop(ch, pp);
		} else
			pp = &(*pp)->next;
	}
}

/* Drain the receive ring. Caller holds ch->pump. Returns packets consumed. */
static unsigned pump_locked(struct smem_rpc *ch)
{
	struct smem_ring_slot slot;
	unsigned n;
	int rc;

	for (n = 0; n < SMEM__RPC_PUMP_BUDGET; n++) {
		rc = smem_ring_reserve_read(ch->rx, &slot, 0);
		if (rc == -ETIMEDOUT || rc == -EAGAIN) {
			/* Drained: a partial message that is not moving now is stuck. */
			if (ch->asms)
				expire_partials(ch);
			break;
		}
		if (rc < 0) {
			if (rc == -ESHUTDOWN)
				smem__rpc_fail(ch, -ESHUTDOWN);	/* the master closed */
			else
				SMEM__RPC_STAT_ADD(ch, protocol_errors, 1);
			break;
		}
		on_packet(ch, slot.data, slot.len);
		smem_ring_release(ch->rx, &slot);
	}
	return n;
}

int smem__rpc_try_pump(struct smem_rpc *ch)
{
	static _Thread_local unsigned idle_looks;
	unsigned n;

	/*
	 * Polling an empty ring is the common case of every waiting loop: a look at the next
	 * node (plain loads) instead of the lock, flag stores and claim attempt of a real pump.
	 * Every 64th empty look pumps anyway (what only a pump does: recovering a dead writer's
	 * node, noticing a shut-down ring), and so does any look while partial messages wait
	 * for expiry. A wrong answer of the look costs one round, never a message.
	 */
	if (atomic_load_explicit(&ch->nasm, memory_order_relaxed) == 0 &&
	    smem_ring_next_len(ch->rx) == -EAGAIN && (++idle_looks & 63) != 0)
		return 0;
	if (pthread_mutex_trylock(&ch->pump) != 0)
		return -EBUSY;
	atomic_store(&ch->pumping, true);
	n = pump_locked(ch);
	atomic_store(&ch->pumping, false);	/* seq_cst: see smem__rpc_ws_rx() */
	pthread_mutex_unlock(&ch->pump);
	/*
	 * seq_cst load first: if it reads false, a waiter's store of true comes later in the
	 * total order, so its load of pumping sees our false and it sleeps on the ring itself.
	 */
	if (atomic_load(&ch->pump_skipped) && atomic_exchange(&ch->pump_skipped, false))
		smem__rpc_ev_bump(ch);
	return (int)n;
}

unsigned smem__rpc_partials(struct smem_rpc *ch)
{
	unsigned n;

	pthread_mutex_lock(&ch->pump);
	n = atomic_load_explicit(&ch->nasm, memory_order_relaxed);
	pthread_mutex_unlock(&ch->pump);
	return n;
}
