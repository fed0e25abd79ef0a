/* SPDX-License-Identifier: MIT */
/*
 * Pollable ring waits (smem_ring_poll_*, ring.h): an fd that an event loop polls for "a message
 * to read" or "room to write", with no thread of ours where io_uring has futex waits.
 *
 * Arming is a sleep of the WAITING protocol (ring.c) whose sleep is handed to the wait
 * engine's pollable waits (smem__waitfd, wait_fd.c): announce (the sleepers flag in the event
 * word), re-check the ring (smem__ring_wait_prepare_held), then arm a futex wait on the word
 * with the value announced. A committer that makes the condition true after the re-check sees
 * the flag, bumps the word and wakes it: the futex wait completes and the fd becomes readable.
 * Between two armings nothing is announced, so writers make no system call for a ring that
 * nobody polls; an arming costs the first commit (release) after it one futex wake, as a
 * sleeping reader (writer) does.
 *
 * A claim held by somebody else (ob.held) may belong to a dead participant whom nobody will
 * wake us for: the arming then carries a SMEM__RING_RECHECK_NS timeout, and the next arm's re-check
 * recovers the claim as a blocked call would.
 */
#include <stdlib.h>

#include "ring_core_int.h"

struct smem_ring_poll {
	struct smem__waitfd *wfd;	/* first: smem__poller_alloc() */
	struct smem_ring *r;
	bool wr;
	bool announced;		/* an announcement to withdraw (smem__ring_wait_done) */
};

int smem_ring_poll_open(struct smem_ring *r, unsigned what, struct smem_ring_poll **ret)
{
	struct smem_ring_poll *p;
	void *mem;
	int err;

	if (!r || !ret || (what != SMEM_RING_POLL_READ && what != SMEM_RING_POLL_WRITE))
		return -EINVAL;
	err = smem__poller_alloc(sizeof(*p), &mem);
	if (err)
		return err;
	p = mem;
	p->r = r;
	p->wr = what == SMEM_RING_POLL_WRITE;
	*ret = p;
	return 0;
}

int smem_ring_poll_fd(const struct smem_ring_poll *p)
{
	return p ? smem__waitfd_fd(p->wfd) : -EINVAL;
}

bool smem_ring_poll_threaded(const struct smem_ring_poll *p)
{
	return p && smem__waitfd_threaded(p->wfd);
}

void smem_ring_poll_disarm(struct smem_ring_poll *p)
{
	if (!p)
		return;
	smem__waitfd_disarm(p->wfd);
	if (p->announced)
		smem__ring_wait_done(p->r, p->wr);
	p->announced = false;
}

int smem_ring_poll_arm(struct smem_ring_poll *p)
{
	_Atomic uint32_t *word;
	uint32_t val;
	bool held;
	int ret;

	if (!p)
		return -EINVAL;
	smem_ring_poll_disarm(p);
	ret = smem__ring_wait_prepare_held(p->r, p->wr, &word, &val, &held);
	if (ret == -EAGAIN || ret == -ESHUTDOWN)
		return 1;	/* it holds now (or the ring is shut: the read/write tells) */
	if (ret)
		return ret;
	p->announced = true;
	ret = smem__waitfd_arm(p->wfd, &(struct smem__wait_item){ .word = word, .val = val,
								  .fd = -1 },
			       1, held ? SMEM__RING_RECHECK_NS : UINT64_MAX);
	if (ret)
		smem_ring_poll_disarm(p);
	return ret;
}

void smem_ring_poll_close(struct smem_ring_poll *p)
{
	if (!p)
		return;
	smem_ring_poll_disarm(p);
	smem__poller_free(p);
}
