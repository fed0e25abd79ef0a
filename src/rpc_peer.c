/* SPDX-License-Identifier: MIT */
/*
 * The peer: what this endpoint knows of the other one, and the channel's failure. This file
 * owns the channel's state word (0, or the error every call gets), the session as this end
 * sees it, and the peer's liveness.
 *
 * Liveness: the peer's live id in the control region, checked with one fcntl (live.c); when the
 * peer is in our pid namespace a pidfd for its pid sits in every wait, so its death wakes us at
 * once (the RPC waiter's disarm looks at the peer whose pidfd fired); otherwise waits are sliced to
 * SMEM__RPC_LIVE_POLL_NS and the live id is checked between slices. A dead peer fails every pending
 * call with -ECONNRESET; a peer that closed, with -ESHUTDOWN. A master whose slave was replaced
 * adopts the new session (see the election at the top of rpc.c): what it had pending with the old
 * slave fails, queued requests of the old slave are dropped.
 */
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "rpc_int.h"

void smem__rpc_fail(struct smem_rpc *ch, int err)
{
	unsigned n = 0;

	pthread_mutex_lock(&ch->lock);
	if (atomic_load_explicit(&ch->state, memory_order_relaxed) == 0) {
		atomic_store_explicit(&ch->state, err, memory_order_release);
		n = smem__rpc_calls_fail(ch, err);
	}
	pthread_mutex_unlock(&ch->lock);
	if (n)
		SMEM__RPC_STAT_ADD(ch, peer_resets, n);
	smem__rpc_ev_bump(ch);
}

int smem__rpc_pidns_id(uint64_t *dev, uint64_t *ino)
{
	struct stat st;

	if (stat("/proc/self/ns/pid", &st) < 0)
		return -errno;
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	return 0;
}

void smem__rpc_end_fill(struct smem_rpc_ctl_end *e, uint32_t live_id, uint64_t max_message,
			uint32_t session)
{
	uint64_t dev = 0, ino = 0;

	smem__rpc_pidns_id(&dev, &ino);
	e->pid = (uint32_t)getpid();
	e->pidns_dev = dev;
	e->pidns_ino = ino;
	e->max_message = max_message;
	memset(e->reserved, 0, sizeof(e->reserved));
	atomic_store_explicit(&e->flags, 0, memory_order_relaxed);
	atomic_store_explicit(&e->session, session, memory_order_relaxed);
	atomic_store_explicit(&e->live_id, live_id, memory_order_relaxed);
}

/* A pidfd for the peer when it lives in our pid namespace (its pid means something here). */
static int peer_pidfd_open(const struct smem_rpc_ctl_end *e)
{
	uint64_t dev, ino;
	int fd;

	if (e->pid == 0 || e->pid > INT_MAX || smem__rpc_pidns_id(&dev, &ino) < 0)
		return -1;
	if (dev != e->pidns_dev || ino != e->pidns_ino)
		return -1;
	fd = (int)syscall(SYS_pidfd_open, (pid_t)e->pid, 0);
	return fd < 0 ? -1 : fd;	/* pidfds are close-on-exec from birth */
}

/* A master whose slave was replaced takes on the new session (see the top comment). */
static void adopt_session(struct smem_rpc *ch, uint32_t s)
{
	struct smem__rpc_req *q;
	unsigned n;

	pthread_mutex_lock(&ch->lock);
	if (atomic_load_explicit(&ch->session, memory_order_relaxed) == s) {
		/* Another thread adopted it first; calls made since belong to the new slave. */
		pthread_mutex_unlock(&ch->lock);
		return;
	}
	n = smem__rpc_calls_fail(ch, -ECONNRESET);
	q = smem__rpc_queue_take_all(ch);
	if (ch->peer_pidfd >= 0)
		close(ch->peer_pidfd);
	ch->peer_pidfd = -1;
	atomic_store_explicit(&ch->peer_max, 0, memory_order_relaxed);
	atomic_store_explicit(&ch->peer_id, 0, memory_order_relaxed);
	atomic_store_explicit(&ch->session, s, memory_order_release);
	atomic_store_explicit(&ch->state, 0, memory_order_release);
	pthread_mutex_unlock(&ch->lock);
	smem__rpc_queue_free(q);
	if (n)
		SMEM__RPC_STAT_ADD(ch, peer_resets, n);
	smem__rpc_ev_bump(ch);
}

/*
 * Look at the control region: session changes, the peer's arrival, departure or death.
 * @force checks the peer's liveness now (its pidfd fired). Returns the channel state.
 */
int smem__rpc_refresh(struct smem_rpc *ch, bool force)
{
	struct smem_rpc_ctl *ctl = ch->ctl;
	const struct smem_rpc_ctl_end *me = &ctl->end[ch->role], *peer = &ctl->end[!ch->role];
	uint32_t s, mine = smem__rpc_my_session(ch), pid, psess;
	uint64_t now;
	int state;

	/* Acquire: pairs with the release of ctl.session by the election that set it. */
	s = atomic_load_explicit(&ctl->session, memory_order_acquire);
	if (s != mine) {
		if (ch->role == SMEM_RPC_MASTER &&
		    atomic_load_explicit(&me->live_id, memory_order_relaxed) == ch->reg->live_id &&
		    atomic_load_explicit(&me->session, memory_order_relaxed) == s)
			adopt_session(ch, s);
		else if (atomic_load_explicit(&ch->state, memory_order_acquire) == 0)
			smem__rpc_fail(ch, -ECONNRESET);	/* our session is over */
		return atomic_load_explicit(&ch->state, memory_order_acquire);
	}
	state = atomic_load_explicit(&ch->state, memory_order_acquire);
	if (state)
		return state;
	psess = atomic_load_explicit(&peer->session, memory_order_relaxed);
	pid = atomic_load_explicit(&peer->live_id, memory_order_relaxed);
	if (psess != s || pid == 0)
		return 0;	/* master without a slave yet */
	if (atomic_load_explicit(&peer->flags, memory_order_relaxed) & SMEM_RPC_END_CLOSED) {
		smem__rpc_fail(ch, -ESHUTDOWN);
		return -ESHUTDOWN;
	}
	/*
	 * The fast path (every look of a polling waiter) takes no lock and reads only the
	 * coarse clock: the peer is known and was found alive less than live_every_ns ago.
	 * Acquire: pairs with the release store of peer_id below (peer_max is then current).
	 */
	now = smem__rpc_coarse_ns();
	if (pid != atomic_load_explicit(&ch->peer_id, memory_order_acquire)) {
		pthread_mutex_lock(&ch->lock);
		if (pid != atomic_load_explicit(&ch->peer_id, memory_order_relaxed)) {
			if (ch->peer_pidfd >= 0)
				close(ch->peer_pidfd);
			ch->peer_pidfd = peer_pidfd_open(peer);
			atomic_store_explicit(&ch->live_every_ns, ch->peer_pidfd >= 0 ?
					      SMEM__RPC_LIVE_RECHECK_NS : SMEM__RPC_LIVE_POLL_NS,
					      memory_order_relaxed);
			atomic_store_explicit(&ch->peer_max, peer->max_message,
					      memory_order_relaxed);
			atomic_store_explicit(&ch->peer_id, pid, memory_order_release);
		}
		pthread_mutex_unlock(&ch->lock);
		force = true;
	}
	if (!force && now < atomic_load_explicit(&ch->next_live_check, memory_order_relaxed))
		return 0;
	/* Racing threads may both check: one fcntl more, no harm. */
	atomic_store_explicit(&ch->next_live_check,
			      now + atomic_load_explicit(&ch->live_every_ns, memory_order_relaxed),
			      memory_order_relaxed);
	if (!smem__live_alive(ch->reg, pid)) {
		/* Closed cleanly just now, or died? The flag is set before the slot is left. */
		if (atomic_load_explicit(&peer->flags, memory_order_acquire) & SMEM_RPC_END_CLOSED)
			smem__rpc_fail(ch, -ESHUTDOWN);
		else
			smem__rpc_fail(ch, -ECONNRESET);
	}
	return atomic_load_explicit(&ch->state, memory_order_acquire);
}

/* ---- waiting ------------------------------------------------------------------------------ */

static int waiter_arm(struct smem__waiter *w, uint64_t *max_ns)
{
	struct smem__rpc_waiter *rw = (struct smem__rpc_waiter *)w;
	uint64_t bound = UINT64_MAX;
	int ret;

	smem__rpc_ws_init(&rw->ws);
	ret = rw->fill(rw, &bound);
	if (ret != -EAGAIN)
		return ret;
	*max_ns = smem__rpc_min(*max_ns, bound);
	smem__rpc_ws_arm(&rw->ws, rw->stat_ch, max_ns);
	return -EAGAIN;
}

static void waiter_disarm(struct smem__waiter *w, int fired)
{
	struct smem__rpc_waiter *rw = (struct smem__rpc_waiter *)w;
	unsigned i;

	smem__rpc_ws_disarm(&rw->ws, fired);
	/* A peer's pidfd fired: look at its liveness now. */
	if (fired > 0)
		for (i = 0; i < rw->ws.npid; i++)
			if (rw->ws.it[rw->ws.pidbase[i]].fired)
				smem__rpc_refresh(rw->ws.pidch[i], true);
}

void smem__rpc_waiter_init(struct smem__rpc_waiter *rw, int (*poll)(struct smem__waiter *w),
			   int (*fill)(struct smem__rpc_waiter *rw, uint64_t *bound),
			   struct smem_rpc *stat_ch, uint32_t spin_ns, uint64_t deadline)
{
	rw->w.poll = poll;
	rw->w.arm = waiter_arm;
	rw->w.disarm = waiter_disarm;
	rw->w.set = &rw->ws.set;
	rw->w.spin = (struct smem__spin){ .ns = spin_ns };
	rw->w.deadline = deadline;
	rw->fill = fill;
	rw->stat_ch = stat_ch;
	smem__rpc_ws_init(&rw->ws);
}
