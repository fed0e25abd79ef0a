/* SPDX-License-Identifier: MIT */
/*
 * Waiting on a ring from outside its own calls: the wait_prepare/wait_done contract that lets
 * rpc.c (and ring_poll.c) sleep on a ring's event count in io_uring or futex_waitv, and the
 * eventfd bridge thread behind smem_ring_fd(). Both follow the WAITING part of the protocol at
 * the top of ring.c; see ring_core_int.h for the other ring files.
 */
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ring_core_int.h"

int smem__ring_wait_prepare(struct smem_ring *r, bool for_write, _Atomic uint32_t **word,
			    uint32_t *val)
{
	bool held;

	return smem__ring_wait_prepare_held(r, for_write, word, val, &held);
}

int smem__ring_wait_prepare_held(struct smem_ring *r, bool for_write, _Atomic uint32_t **word,
				 uint32_t *val, bool *held)
{
	struct smem_ring_shm *shm = r->shm;
	_Atomic uint32_t *seqw = for_write ? &shm->room_seq : &shm->data_seq;
	_Atomic uint32_t *waiters = for_write ? &shm->room_waiters : &shm->data_waiters;
	struct smem__ring_op op = { .write = for_write, .peek = true };
	struct smem__ring_obs ob;
	uint32_t v;
	int ret;

	if (smem__ring_is_shutdown(r))
		return -ESHUTDOWN;
	ret = smem__ring_check_fork(r);
	if (ret)
		return ret;	/* the caller's operation reports it */
	v = smem__ring_announce(waiters, seqw);
	ret = smem__ring_try(r, &op, &ob);
	/* A recovered node may have made the condition true: look again rather than sleep. */
	if (ret == -EAGAIN && ob.held &&
	    smem__ring_recover(r, for_write ? &r->wstuck : &r->rstuck, &ob))
		ret = 0;
	if (ret != -EAGAIN || smem__ring_is_shutdown(r)) {
		atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
		/* -EPROTO and the like: something is there; the caller's read reports it. */
		return ret == -EAGAIN ? -ESHUTDOWN : -EAGAIN;
	}
	*word = seqw;
	*val = v;
	*held = ob.held;
	return 0;
}

void smem__ring_wait_done(struct smem_ring *r, bool for_write)
{
	struct smem_ring_shm *shm = r->shm;

	atomic_fetch_sub_explicit(for_write ? &shm->room_waiters : &shm->data_waiters, 1,
				  memory_order_relaxed);
	smem__ring_stat_inc(&r->sleeps);
}

_Atomic uint64_t *smem__ring_wake_ns(struct smem_ring *r, bool for_write)
{
	return for_write ? &r->shm->room_wake_ns : &r->shm->data_wake_ns;
}

/* ---- the eventfd bridge ------------------------------------------------------------------ */

struct bridge {
	struct smem__waiter w;		/* first: the callbacks get &b->w */
	struct smem_ring *r;
	uint64_t last_tail;
	bool shut_signalled;
	struct smem__wait_set set;
	struct smem__wait_item item;
};

static int bridge_poll(struct smem__waiter *w)
{
	struct bridge *b = (struct bridge *)w;

	/* Acquire: pairs with the release store of close. */
	return atomic_load_explicit(&b->r->bridge_stop, memory_order_acquire) ? 0 : -EAGAIN;
}

/* Announced as a reader, signal what arrived since the last signal, then sleep. */
static int bridge_arm(struct smem__waiter *w, uint64_t *max_ns)
{
	struct bridge *b = (struct bridge *)w;
	struct smem_ring *r = b->r;
	struct smem_ring_shm *shm = r->shm;
	struct smem__ring_op op = { .peek = true };
	uint64_t one = 1, tail;
	struct smem__ring_obs ob;
	uint32_t v;
	int ret;

	v = smem__ring_announce(&shm->data_waiters, &shm->data_seq);
	tail = atomic_load_explicit(&shm->tail, memory_order_acquire);
	ret = smem__ring_try(r, &op, &ob);
	if (ret == -EAGAIN && ob.held)
		smem__ring_recover(r, &r->rstuck, &ob);
	if ((ret != -EAGAIN && tail != b->last_tail) ||
	    (smem__ring_is_shutdown(r) && !b->shut_signalled)) {
		if (write(r->efd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is at its maximum, readable anyway. */
		}
		b->last_tail = tail;
		b->shut_signalled = smem__ring_is_shutdown(r);
	}
	smem__wait_set_init(&b->set, &b->item, 1);
	smem__wait_set_word(&b->set, &shm->data_seq, v);
	*max_ns = ob.held ? SMEM__RING_RECHECK_NS : SMEM__RING_IDLE_SLEEP_NS;
	return -EAGAIN;
}

static void bridge_disarm(struct smem__waiter *w, int fired)
{
	struct bridge *b = (struct bridge *)w;

	(void)fired;
	atomic_fetch_sub_explicit(&b->r->shm->data_waiters, 1, memory_order_relaxed);
}

/*
 * smem_ring_fd() starts this thread on first use; until then the ring pays nothing for it.
 * It sleeps on the ring's data event count like any reader (so committers wake it only while
 * it sleeps) and writes the eventfd when a message is available that it has not signalled
 * yet (the tail moved since the last signal): edge-triggered, one signal per batch of
 * arrivals. It never consumes anything, never spins (the wait engine's loop with a spin of
 * 0), and stops when smem_ring_close() sets bridge_stop.
 */
static void *bridge_main(void *arg)
{
	struct bridge b = {
		.w = {
			.poll = bridge_poll,
			.arm = bridge_arm,
			.disarm = bridge_disarm,
			.set = &b.set,
			.spin = { .ns = 0 },
			.deadline = UINT64_MAX,
		},
		.r = arg,
		.last_tail = UINT64_MAX,
	};

	if (bridge_poll(&b.w) == -EAGAIN)
		(void)smem__wait_for(&b.w);
	return NULL;
}

int smem_ring_fd(struct smem_ring *r)
{
	sigset_t all, old;
	int ret;

	if (!r)
		return -EINVAL;
	ret = smem__ring_check_fork(r);
	if (ret)
		return ret;
	pthread_mutex_lock(&r->fd_lock);
	if (!r->bridge_on) {
		/* In a forked child, the inherited eventfd (shared with the parent) is kept. */
		if (r->efd < 0)
			r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (r->efd < 0) {
			ret = -errno;
			pthread_mutex_unlock(&r->fd_lock);
			return ret;
		}
		/*
		 * The bridge takes no signals: they belong to the application's threads. Started,
		 * not just created, when we return: the caller may fork next (fork.h).
		 */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		ret = smem__thread_start(&r->bridge, bridge_main, r);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (ret) {
			close(r->efd);
			r->efd = -1;
			pthread_mutex_unlock(&r->fd_lock);
			return ret;
		}
		r->bridge_on = true;
		r->bridge_gen = smem__fork_generation();
	}
	ret = r->efd;
	pthread_mutex_unlock(&r->fd_lock);
	return ret;
}
