/* SPDX-License-Identifier: MIT */
/*
 * The transmit path: messages split into packets and written to the send ring. This file owns
 * the send ring (its writers: callers sending requests, handlers' threads sending replies) and
 * the CANCEL packets of messages abandoned partway (rpc_proto_int.h), kept until there is room.
 *
 * A sender that finds the ring full waits for room (the deadline of its call bounds it:
 * nothing is ever dropped) and pumps the receive ring meanwhile, so two sides sending to each
 * other cannot wedge, in the wait engine's loop (an RPC waiter, rpc_int.h).
 */
#include <string.h>

#include "internal.h"
#include "rpc_int.h"

/*
 * A sender's wait for room in the send ring (an RPC waiter, rpc_int.h): it pumps the receive
 * ring meanwhile, so two sides sending to each other cannot wedge, and does not need the
 * service thread to watch that ring. A full ring is polled for spin_ns first: a busy peer
 * frees a node within microseconds, and then nobody makes a system call.
 */
struct room_wait {
	struct smem__rpc_waiter rw;	/* first */
	struct smem_rpc *ch;
	struct smem_ring_slot *slot;
};

/* One attempt: 0 (reserved), -EAGAIN (full), or the channel's error. */
static int try_reserve(struct smem_rpc *ch, struct smem_ring_slot *slot)
{
	int rc = smem_ring_reserve_write(ch->tx, slot, 0);

	if (rc == -ETIMEDOUT || rc == -EAGAIN)
		return -EAGAIN;
	return rc == -ESHUTDOWN ? (smem__rpc_refresh(ch, true) ?: -ESHUTDOWN) : rc;
}

static int room_poll(struct smem__waiter *w)
{
	struct room_wait *rm = (struct room_wait *)w;
	int rc = try_reserve(rm->ch, rm->slot);

	if (rc == -EAGAIN)
		smem__rpc_try_pump(rm->ch);
	return rc;
}

static int room_fill(struct smem__rpc_waiter *rw, uint64_t *bound)
{
	struct room_wait *rm = (struct room_wait *)rw;
	struct smem_rpc *ch = rm->ch;
	uint32_t v = atomic_load(&ch->ev);	/* before the look it guards */
	int rc = try_reserve(ch, rm->slot);

	if (rc != -EAGAIN)
		return rc;
	rc = smem__rpc_refresh(ch, false);
	if (rc)
		return rc;
	smem__rpc_try_pump(ch);
	smem__rpc_ws_ring(&rw->ws, ch, ch->tx, true);
	smem__rpc_ws_ev(&rw->ws, ch, v);
	smem__rpc_ws_rx(&rw->ws, ch);
	smem__rpc_ws_peer(&rw->ws, ch);
	*bound = smem__rpc_peer_poll_bound(ch);
	return -EAGAIN;
}

/*
 * Reserve a node of the send ring by *deadline (SMEM__RPC_REPLY_DEADLINE: reply_timeout_ms
 * from the first time the ring is found full).
 */
static int reserve_room(struct smem_rpc *ch, struct smem_ring_slot *slot, uint64_t *deadline)
{
	struct room_wait rm;
	uint64_t t0;
	int rc = try_reserve(ch, slot);

	if (rc != -EAGAIN)
		return rc;
	t0 = smem__now_ns();
	if (*deadline == SMEM__RPC_REPLY_DEADLINE)
		*deadline = t0 + (uint64_t)ch->reply_timeout_ms * 1000000ull;
	rm.ch = ch;
	rm.slot = slot;
	smem__rpc_waiter_init(&rm.rw, room_poll, room_fill, NULL, ch->spin_ns, *deadline);
	smem__rpc_poll_enter(ch);
	rc = smem__wait_for(&rm.rw.w);
	smem__rpc_poll_leave(ch);
	if (rc == 0)
		smem__rpc_stat_max(&ch->st.max_wait_write_ns, smem__now_ns() - t0);
	return rc;
}

/* Write the CANCEL packet of an abandoned message if the ring has room now. 0 or -EAGAIN. */
static int write_cancel(struct smem_rpc *ch, uint64_t id, uint64_t response_to,
			uint32_t session)
{
	struct smem_rpc_pkt_hdr h;
	struct smem_ring_slot slot;

	if (smem_ring_reserve_write(ch->tx, &slot, 0) != 0)
		return -EAGAIN;
	if (slot.cap < SMEM_RPC_HDR_SIZE) {
		smem_ring_abort(ch->tx, &slot);
		return -EAGAIN;
	}
	smem__rpc_pkt_fill(&h, SMEM_RPC_CANCEL, session, id, response_to, 0, 0, 1, 0, 0);
	memcpy(slot.data, &h, sizeof(h));
	if (smem_ring_commit(ch->tx, &slot, SMEM_RPC_HDR_SIZE) != 0)
		return -EAGAIN;
	smem__rpc_bell(ch);
	SMEM__RPC_STAT_ADD(ch, packets_sent, 1);
	return 0;
}

/* A message was abandoned after some of its packets left: cancel it now or when room comes. */
static void cancel_message(struct smem_rpc *ch, uint64_t id, uint64_t response_to,
			   uint32_t session)
{
	unsigned n;

	if (write_cancel(ch, id, response_to, session) == 0)
		return;
	pthread_mutex_lock(&ch->lock);
	n = atomic_load_explicit(&ch->ncancels, memory_order_relaxed);
	if (n == SMEM__RPC_MAX_CANCELS) {
		/* The oldest is left to the receiver's expiry of stale partial messages. */
		memmove(&ch->cancels[0], &ch->cancels[1], sizeof(ch->cancels[0]) * (n - 1));
		n--;
	}
	ch->cancels[n].msg_id = id;
	ch->cancels[n].response_to = response_to;
	ch->cancels[n].session = session;
	atomic_store_explicit(&ch->ncancels, n + 1, memory_order_relaxed);
	pthread_mutex_unlock(&ch->lock);
}

void smem__rpc_flush_cancels(struct smem_rpc *ch)
{
	unsigned n, i = 0;

	pthread_mutex_lock(&ch->lock);
	n = atomic_load_explicit(&ch->ncancels, memory_order_relaxed);
	for (; i < n; i++) {
		/* Packets of an ended session are dropped by the receiver anyway. */
		if (ch->cancels[i].session == smem__rpc_my_session(ch) &&
		    write_cancel(ch, ch->cancels[i].msg_id, ch->cancels[i].response_to,
				 ch->cancels[i].session) != 0)
			break;
	}
	memmove(&ch->cancels[0], &ch->cancels[i], sizeof(ch->cancels[0]) * (n - i));
	atomic_store_explicit(&ch->ncancels, n - i, memory_order_relaxed);
	pthread_mutex_unlock(&ch->lock);
}

int smem__rpc_send(struct smem_rpc *ch, uint8_t type, uint64_t id, uint64_t response_to,
		   int32_t error, const void *data, size_t len, uint64_t deadline)
{
	uint32_t count = smem__rpc_packet_count(len, ch->per), i, chunk = 0;
	uint32_t session = smem__rpc_my_session(ch);
	struct smem_rpc_pkt_hdr h;
	struct smem_ring_slot slot;
	int rc = 0;

	if (count == 0 || len > SMEM_RPC_MAX_MESSAGE)
		return -EMSGSIZE;
	if (atomic_load_explicit(&ch->ncancels, memory_order_relaxed))
		smem__rpc_flush_cancels(ch);
	for (i = 0; i < count; i++) {
		rc = reserve_room(ch, &slot, &deadline);
		if (rc)
			break;
		if (slot.cap < SMEM_RPC_HDR_SIZE + (size_t)ch->per) {
			smem_ring_abort(ch->tx, &slot);
			rc = -EPROTO;
			break;
		}
		/* Straight into the node: the payload is copied once, by this memcpy. */
		chunk = smem__rpc_chunk_len(len, ch->per, i);
		smem__rpc_pkt_fill(&h, type, session, id, response_to, len, i, count, chunk, error);
		memcpy(slot.data, &h, sizeof(h));
		if (chunk)
			memcpy((uint8_t *)slot.data + SMEM_RPC_HDR_SIZE,
			       (const uint8_t *)data + (size_t)i * ch->per, chunk);
		rc = smem_ring_commit(ch->tx, &slot, SMEM_RPC_HDR_SIZE + chunk);
		if (rc)
			break;
		/* Per packet: a server reading a message of many must drain as it comes. */
		smem__rpc_bell(ch);
	}
	/* Counted once per message: packets 0..i-1 left (all full but maybe the last). */
	if (i) {
		SMEM__RPC_STAT_ADD(ch, packets_sent, i);
		SMEM__RPC_STAT_ADD(ch, bytes_sent, rc ? (uint64_t)i * ch->per : len);
		smem__rpc_stat_max(&ch->st.max_packet_sent, i > 1 ? ch->per : chunk);
		SMEM__RPC_STAT_SET(ch, last_packet_sent, (int64_t)(rc ? ch->per : chunk));
	}
	if (rc) {
		if (i > 0)
			cancel_message(ch, id, response_to, session);
		return rc;
	}
	SMEM__RPC_STAT_SET(ch, last_message_sent, (int64_t)len);
	return 0;
}
