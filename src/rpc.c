/* SPDX-License-Identifier: MIT */
/*
 * RPC channels: two rings and a control region (the seed's RpcBuffer, rebuilt). This file
 * owns a channel's life: opening (the election, the rings, the service thread), closing,
 * the accessors and the statistics.
 *
 * Naming and election. Channel N is a control region N (kind SMEM_KIND_RPC, struct
 * smem_rpc_ctl) plus two rings "N.<gen>.m2s" (master writes, slave reads) and "N.<gen>.s2m".
 * An opener opens N or creates it, joins the region's liveness slots (live.c: an OFD lock the
 * kernel drops when the process dies), and takes the election lock: an OFD write lock on byte
 * SMEM_RPC_ELECT_BYTE of the control memfd through its private description, so a holder that
 * dies releases it too. Under the lock, with S = ctl.session:
 *   - no live, unclosed master in S: start session S+1 as master, create new rings
 *     (gen = S+1), clear the slave record. An old slave (if alive) sees the session move on and
 *     fails with -ECONNRESET;
 *   - a live master and no slave yet in S: attach as slave in S;
 *   - a live master whose slave in S died or closed: attach as slave in session S+1 (same
 *     rings); the master notices the new session, fails what it had pending with the old slave
 *     and adopts S+1. Packets carry their session, so stale packets left in the rings by the
 *     old slave are dropped (and counted), never delivered;
 *   - a live master and a live slave: -EBUSY.
 * The record of an endpoint (live id, session, pid and pid namespace) is written under the
 * lock; ctl.session is stored last with release, and readers acquire it.
 *
 * The rest of the channel lives in layers below this file, listed in rpc_int.h; the peer's
 * liveness and the adoption of a new session are in rpc_peer.c.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "rpc_int.h"

static _Atomic int open_channels;

/* ---- open and close ------------------------------------------------------------------------- */

static int ctl_init(void *obj, size_t size, void *arg)
{
	struct smem_rpc_ctl *ctl = obj;

	(void)arg;
	if (size < sizeof(*ctl))
		return -EINVAL;
	ctl->magic = SMEM_RPC_CTL_MAGIC;
	ctl->version = SMEM_RPC_CTL_VERSION;
	return 0;
}

/* Generations a new master tries when leftover rings hold the names (see elect()). */
#define ELECT_GEN_TRIES 64
/*
 * A slave-to-be that found the master alive but finds its rings gone (-ENOENT) saw the master
 * die between the two looks (the broker drops a dead holder's names as soon as it sees its
 * connection close, which may even come before the kernel releases its liveness slot). It
 * elects again, every ELECT_RETRY_US, until it sees the master dead (and leads) or
 * ELECT_RETRIES pass: a master that stays alive without rings is -EPROTO, as before.
 */
#define ELECT_RETRIES	250
#define ELECT_RETRY_US	2000

static int elect_lock(struct smem_rpc *ch, bool lock)
{
	struct flock fl = {
		.l_type = lock ? F_WRLCK : F_UNLCK,
		.l_whence = SEEK_SET,
		.l_start = SMEM_RPC_ELECT_BYTE,
		.l_len = 1,
	};

	while (fcntl(ch->reg->live_fd, lock ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void ring_name(char *buf, size_t len, const char *name, uint32_t gen, bool m2s)
{
	snprintf(buf, len, "%s.%u.%s", name, gen, m2s ? "m2s" : "s2m");
}

static bool end_ok(struct smem_rpc *ch, const struct smem_rpc_ctl_end *e, uint32_t s)
{
	uint32_t id = atomic_load_explicit(&e->live_id, memory_order_relaxed);

	return s && id && atomic_load_explicit(&e->session, memory_order_relaxed) == s &&
	       !(atomic_load_explicit(&e->flags, memory_order_relaxed) & SMEM_RPC_END_CLOSED) &&
	       smem__live_alive(ch->reg, id);
}

static void end_fill(struct smem_rpc *ch, struct smem_rpc_ctl_end *e, uint32_t s)
{
	smem__rpc_end_fill(e, ch->reg->live_id, ch->max_message, s);
}

/* Under the election lock: decide our role and set the channel up (see the top comment). */
static int elect(struct smem_rpc *ch, const char *name, const struct smem_rpc_opts *o,
		 uint32_t node_count, uint32_t node_size)
{
	struct smem_rpc_ctl *ctl = ch->ctl;
	struct smem_rpc_ctl_end *m = &ctl->end[SMEM_RPC_MASTER], *sl = &ctl->end[SMEM_RPC_SLAVE];
	char n1[SMEM_NAME_MAX + 1], n2[SMEM_NAME_MAX + 1];
	uint32_t s = atomic_load_explicit(&ctl->session, memory_order_acquire), ns, gen;
	const struct smem_opts *base = o ? &o->base : NULL;
	int rc;

	if (!end_ok(ch, m, s)) {
		unsigned tries;

		ns = s + 1 ? s + 1 : 1;
		/*
		 * Rings of generation ns may exist already: a candidate that died between
		 * creating them and publishing its session (or whose death the broker has not
		 * processed yet) left them behind under a name we cannot reuse. Their generation
		 * was never published, so nobody uses them: step to the next one.
		 */
		gen = ns;
		for (tries = 0; tries < ELECT_GEN_TRIES; tries++, gen = gen + 1 ? gen + 1 : 1) {
			ring_name(n1, sizeof(n1), name, gen, true);
			ring_name(n2, sizeof(n2), name, gen, false);
			rc = smem_ring_create(n1, node_count, node_size, base, &ch->tx);
			if (rc == -EEXIST)
				continue;
			if (rc)
				return rc;
			rc = smem_ring_create(n2, node_count, node_size, base, &ch->rx);
			if (rc == 0)
				break;
			smem_ring_close(ch->tx);
			ch->tx = NULL;
			if (rc != -EEXIST)
				return rc;
		}
		if (rc)
			return rc;
		ch->role = SMEM_RPC_MASTER;
		end_fill(ch, m, ns);
		atomic_store_explicit(&sl->live_id, 0, memory_order_relaxed);
		atomic_store_explicit(&sl->session, 0, memory_order_relaxed);
		atomic_store_explicit(&ctl->ring_gen, gen, memory_order_relaxed);
	} else {
		uint32_t sid = atomic_load_explicit(&sl->live_id, memory_order_relaxed);

		if (end_ok(ch, sl, s))
			return -EBUSY;
		/* A slave of this session existed (and is gone): a new session, same rings. */
		ns = (atomic_load_explicit(&sl->session, memory_order_relaxed) == s && sid) ?
		     (s + 1 ? s + 1 : 1) : s;
		gen = atomic_load_explicit(&ctl->ring_gen, memory_order_relaxed);
		ring_name(n1, sizeof(n1), name, gen, true);
		ring_name(n2, sizeof(n2), name, gen, false);
		rc = smem_ring_open(n1, base, &ch->rx);
		if (rc == 0)
			rc = smem_ring_open(n2, base, &ch->tx);
		if (rc) {
			smem_ring_close(ch->rx);
			ch->rx = NULL;
			/* A live master whose rings are gone is dying: see ELECT_RETRIES. */
			return rc == -ENOENT ? -EAGAIN : rc;
		}
		ch->role = SMEM_RPC_SLAVE;
		end_fill(ch, sl, ns);
		atomic_store_explicit(&m->session, ns, memory_order_relaxed);
	}
	atomic_store_explicit(&ch->session, ns, memory_order_relaxed);
	/* Release: the records above are visible to whoever acquires the new session. */
	atomic_store_explicit(&ctl->session, ns, memory_order_release);
	atomic_fetch_add_explicit(&ctl->event, 1, memory_order_release);
	smem__futex_wake(&ctl->event, INT_MAX);
	return 0;
}

static int geometry(struct smem_rpc *ch)
{
	uint32_t a = smem_ring_node_size(ch->tx), b = smem_ring_node_size(ch->rx);

	if (a != b || a < SMEM__RPC_MIN_NODE_SIZE || a > SMEM__RPC_MAX_NODE_SIZE)
		return -EPROTO;
	ch->per = a - SMEM_RPC_HDR_SIZE;
	ch->req_room = ch->per < SMEM__RPC_REQ_ROOM_MAX ? ch->per : SMEM__RPC_REQ_ROOM_MAX;
	return 0;
}

static void channel_free(struct smem_rpc *ch)
{
	smem_ring_close(ch->tx);
	smem_ring_close(ch->rx);
	if (!ch->reg_borrowed)
		smem_region_close(ch->reg);
	smem__rpc_queue_free(ch->q_head);
	smem__rpc_asm_clear(ch);
	smem__rpc_pools_free(ch);
	if (ch->peer_pidfd >= 0)
		close(ch->peer_pidfd);
	pthread_mutex_destroy(&ch->lock);
	pthread_mutex_destroy(&ch->pump);
	free(ch);
}

/* A channel with @o's settings (rings, region and role still to come). NULL: no memory. */
static struct smem_rpc *channel_new(const struct smem_rpc_opts *o)
{
	struct smem_rpc *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	pthread_mutex_init(&ch->lock, NULL);
	pthread_mutex_init(&ch->pump, NULL);
	ch->peer_pidfd = -1;
	ch->svc_slot = -1;
	ch->next_id = 1;
	ch->live_every_ns = SMEM__RPC_LIVE_POLL_NS;
	ch->partial_expiry_ns = SMEM__RPC_PARTIAL_EXPIRY_NS;
	ch->max_message = o && o->max_message ? o->max_message : SMEM__RPC_DEFAULT_MAX_MESSAGE;
	ch->reply_timeout_ms = o && o->reply_timeout_ms ? o->reply_timeout_ms : SMEM__RPC_DEFAULT_REPLY_MS;
	ch->handler = o ? o->handler : NULL;
	ch->handler_arg = o ? o->handler_arg : NULL;
	ch->service = o ? o->service : SMEM_RPC_SERVICE_THREAD;
	ch->spin_ns = !o || !o->spin_ns ? SMEM__RPC_DEFAULT_SPIN_NS :
		      o->spin_ns == SMEM_RPC_NO_SPIN ? 0 : o->spin_ns;
	smem_rpc_stats_reset(ch);
	return ch;
}

static bool opts_ok(const struct smem_rpc_opts *o)
{
	return !o || (o->service <= SMEM_RPC_SERVICE_DISPATCH && o->reply_timeout_ms >= 0 &&
		      o->max_message <= SMEM_RPC_MAX_MESSAGE && !(o->base.flags & SMEM_RDONLY));
}

/* The channel has its rings and role: check the geometry, start the service thread. */
static int channel_start(struct smem_rpc *ch)
{
	int rc = geometry(ch);

	if (rc)
		return rc;
	if (ch->service == SMEM_RPC_SERVICE_THREAD) {
		/* Started, not just created, when we return: the caller may fork next (fork.h). */
		rc = smem__thread_start(&ch->thread, smem__rpc_service_main, ch);
		if (rc)
			return rc;
		ch->has_thread = true;
	}
	atomic_fetch_add(&open_channels, 1);
	return 0;
}

int smem__rpc_attach(struct smem_region *reg, struct smem_rpc_ctl *ctl, int role,
		     uint32_t session, struct smem_ring *tx, struct smem_ring *rx,
		     const struct smem_rpc_opts *o, struct smem_rpc **ret)
{
	struct smem_rpc *ch;
	int rc;

	if (!opts_ok(o) || (role != SMEM_RPC_MASTER && role != SMEM_RPC_SLAVE) || !session) {
		smem_ring_close(tx);
		smem_ring_close(rx);
		return -EINVAL;
	}
	ch = channel_new(o);
	if (!ch) {
		smem_ring_close(tx);
		smem_ring_close(rx);
		return -ENOMEM;
	}
	ch->reg = reg;
	ch->reg_borrowed = true;
	ch->ctl = ctl;
	ch->tx = tx;
	ch->rx = rx;
	ch->role = role;
	ch->session = session;
	rc = channel_start(ch);
	if (rc) {
		channel_free(ch);
		return rc;
	}
	*ret = ch;
	return 0;
}

int smem_rpc_open(const char *name, const struct smem_rpc_opts *o, struct smem_rpc **ret)
{
	uint32_t node_count = o && o->node_count ? o->node_count : SMEM__RPC_DEFAULT_NODES;
	uint32_t node_size = o && o->node_size ? o->node_size : SMEM__RPC_DEFAULT_NODE_SIZE;
	const struct smem_opts *base = o ? &o->base : NULL;
	struct smem_rpc *ch;
	int rc, tries;

	rc = smem__name_check(name);
	if (rc)
		return rc;
	if (!ret || strlen(name) > SMEM_NAME_MAX - SMEM__RPC_NAME_ROOM || node_count < 2 ||
	    node_size < SMEM__RPC_MIN_NODE_SIZE || node_size > SMEM__RPC_MAX_NODE_SIZE || !opts_ok(o))
		return -EINVAL;
	ch = channel_new(o);
	if (!ch)
		return -ENOMEM;

	/* Open, or create when missing; a name that vanishes or appears meanwhile: retry. */
	for (tries = 0; tries < 100; tries++) {
		rc = smem__region_open(name, SMEM_KIND_RPC, base, &ch->reg);
		if (rc != -ENOENT)
			break;
		rc = smem__region_create(name, SMEM_KIND_RPC, sizeof(struct smem_rpc_ctl), ctl_init,
					 NULL, base, &ch->reg);
		if (rc != -EEXIST)
			break;
	}
	if (rc)
		goto fail;
	ch->ctl = ch->reg->obj;
	if (!smem__rpc_ctl_ok(ch->reg)) {
		rc = -EPROTO;
		goto fail;
	}
	rc = smem__live_join(ch->reg);
	if (rc)
		goto fail;
	for (tries = 0;; tries++) {
		rc = elect_lock(ch, true);
		if (rc)
			goto fail;
		rc = elect(ch, name, o, node_count, node_size);
		elect_lock(ch, false);
		if (rc != -EAGAIN)
			break;
		if (tries == ELECT_RETRIES) {
			rc = -EPROTO;
			break;
		}
		usleep(ELECT_RETRY_US);
	}
	if (rc)
		goto fail;
	rc = channel_start(ch);
	if (rc)
		goto fail;
	*ret = ch;
	return 0;
fail:
	channel_free(ch);
	return rc;
}

void smem_rpc_close(struct smem_rpc *ch)
{
	struct smem_rpc_ctl_end *me;

	if (!ch)
		return;
	atomic_store_explicit(&ch->stopping, true, memory_order_release);
	smem__rpc_ev_bump(ch);
	smem__rpc_sev_bump(ch);
	if (ch->has_thread)
		pthread_join(ch->thread, NULL);
	/* Tell the peer we left cleanly, before our liveness slot goes. */
	me = &ch->ctl->end[ch->role];
	if (elect_lock(ch, true) == 0) {
		if (atomic_load_explicit(&me->live_id, memory_order_relaxed) == ch->reg->live_id)
			atomic_fetch_or_explicit(&me->flags, SMEM_RPC_END_CLOSED,
						 memory_order_release);
		atomic_fetch_add_explicit(&ch->ctl->event, 1, memory_order_release);
		smem__futex_wake(&ch->ctl->event, INT_MAX);
		elect_lock(ch, false);
	}
	smem__rpc_fail(ch, -ESHUTDOWN);
	channel_free(ch);
	if (atomic_fetch_sub(&open_channels, 1) == 1) {
		smem__wait_thread_release();
		smem__rpc_wait_thread_release();
	}
}

/* ---- accessors and statistics --------------------------------------------------------------- */

bool smem_rpc_is_master(const struct smem_rpc *ch)
{
	return ch && ch->role == SMEM_RPC_MASTER;
}

size_t smem_rpc_packet_payload(const struct smem_rpc *ch)
{
	return ch ? ch->per : 0;
}

struct smem_ring *smem__rpc_tx(const struct smem_rpc *ch)
{
	return ch->tx;
}

struct smem_ring *smem__rpc_rx(const struct smem_rpc *ch)
{
	return ch->rx;
}

void smem__rpc_set_partial_expiry(struct smem_rpc *ch, uint64_t ns)
{
	pthread_mutex_lock(&ch->pump);	/* read by the pump's holder */
	ch->partial_expiry_ns = ns;
	pthread_mutex_unlock(&ch->pump);
}

uint32_t smem__rpc_session(const struct smem_rpc *ch)
{
	return smem__rpc_my_session(ch);
}

/*
 * struct smem_rpc_stats is ABI: 8 bytes of header, then 33 64-bit words. New counters take
 * words from reserved[] at its front; nothing moves and the size stays.
 */
_Static_assert(sizeof(struct smem_rpc_stats) == 8 + 33 * 8, "smem_rpc_stats size");
_Static_assert(offsetof(struct smem_rpc_stats, requests_sent) == 8, "smem_rpc_stats layout");
_Static_assert(offsetof(struct smem_rpc_stats, sleeps) == 8 + 24 * 8, "smem_rpc_stats layout");
_Static_assert(offsetof(struct smem_rpc_stats, partials_cancelled) == 8 + 25 * 8,
	       "smem_rpc_stats layout");
_Static_assert(offsetof(struct smem_rpc_stats, partials_expired) == 8 + 26 * 8,
	       "smem_rpc_stats layout");
_Static_assert(offsetof(struct smem_rpc_stats, missed_wakeups) == 8 + 27 * 8,
	       "smem_rpc_stats layout");
_Static_assert(offsetof(struct smem_rpc_stats, reserved) == 8 + 28 * 8, "smem_rpc_stats layout");

#define LOAD(f) atomic_load_explicit(&ch->st.f, memory_order_relaxed)

int smem_rpc_stats(const struct smem_rpc *ch, struct smem_rpc_stats *out)
{
	if (!ch || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->overhead_per_packet = SMEM_RPC_HDR_SIZE;
	out->wait_backend = (uint32_t)smem__wait_backend();
	out->requests_sent = LOAD(requests_sent);
	out->responses_sent = LOAD(responses_sent);
	out->errors_sent = LOAD(errors_sent);
	out->requests_received = LOAD(requests_received);
	out->responses_received = LOAD(responses_received);
	out->errors_received = LOAD(errors_received);
	out->packets_sent = LOAD(packets_sent);
	out->packets_received = LOAD(packets_received);
	out->bytes_sent = LOAD(bytes_sent);
	out->bytes_received = LOAD(bytes_received);
	out->max_packet_sent = LOAD(max_packet_sent);
	out->max_packet_received = LOAD(max_packet_received);
	out->last_packet_sent = LOAD(last_packet_sent);
	out->last_packet_received = LOAD(last_packet_received);
	out->last_message_sent = LOAD(last_message_sent);
	out->last_message_received = LOAD(last_message_received);
	out->timeouts = LOAD(timeouts);
	out->discarded_responses = LOAD(discarded_responses);
	out->last_discarded_id = LOAD(last_discarded_id);
	out->protocol_errors = LOAD(protocol_errors);
	out->stale_packets = LOAD(stale_packets);
	out->peer_resets = LOAD(peer_resets);
	out->max_wait_write_ns = LOAD(max_wait_write_ns);
	out->max_wait_read_ns = LOAD(max_wait_read_ns);
	out->sleeps = LOAD(sleeps);
	out->partials_cancelled = LOAD(partials_cancelled);
	out->partials_expired = LOAD(partials_expired);
	out->missed_wakeups = LOAD(missed_wakeups);
	return 0;
}

void smem_rpc_stats_reset(struct smem_rpc *ch)
{
	if (!ch)
		return;
	SMEM__RPC_STAT_SET(ch, requests_sent, 0);
	SMEM__RPC_STAT_SET(ch, responses_sent, 0);
	SMEM__RPC_STAT_SET(ch, errors_sent, 0);
	SMEM__RPC_STAT_SET(ch, requests_received, 0);
	SMEM__RPC_STAT_SET(ch, responses_received, 0);
	SMEM__RPC_STAT_SET(ch, errors_received, 0);
	SMEM__RPC_STAT_SET(ch, packets_sent, 0);
	SMEM__RPC_STAT_SET(ch, packets_received, 0);
	SMEM__RPC_STAT_SET(ch, bytes_sent, 0);
	SMEM__RPC_STAT_SET(ch, bytes_received, 0);
	SMEM__RPC_STAT_SET(ch, max_packet_sent, 0);
	SMEM__RPC_STAT_SET(ch, max_packet_received, 0);
	SMEM__RPC_STAT_SET(ch, last_packet_sent, -1);
	SMEM__RPC_STAT_SET(ch, last_packet_received, -1);
	SMEM__RPC_STAT_SET(ch, last_message_sent, -1);
	SMEM__RPC_STAT_SET(ch, last_message_received, -1);
	SMEM__RPC_STAT_SET(ch, timeouts, 0);
	SMEM__RPC_STAT_SET(ch, discarded_responses, 0);
	SMEM__RPC_STAT_SET(ch, last_discarded_id, 0);
	SMEM__RPC_STAT_SET(ch, protocol_errors, 0);
	SMEM__RPC_STAT_SET(ch, stale_packets, 0);
	SMEM__RPC_STAT_SET(ch, peer_resets, 0);
	SMEM__RPC_STAT_SET(ch, max_wait_write_ns, 0);
	SMEM__RPC_STAT_SET(ch, max_wait_read_ns, 0);
	SMEM__RPC_STAT_SET(ch, sleeps, 0);
	SMEM__RPC_STAT_SET(ch, partials_cancelled, 0);
	SMEM__RPC_STAT_SET(ch, partials_expired, 0);
	SMEM__RPC_STAT_SET(ch, missed_wakeups, 0);
}
