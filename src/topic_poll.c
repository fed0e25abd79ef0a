/* SPDX-License-Identifier: MIT */
/*
 * Pollable subscriber waits (smem_topic_poll_*, topic.h): an fd that an event loop polls for
 * "a sample to receive", with no thread of ours where io_uring has futex waits.
 *
 * Arming is the sleep of a blocked receive (topic.c, WAITING) handed to the wait engine's
 * pollable waits (smem__waitfd, wait_fd.c), as the ring's pollers do (ring_poll.c): announce
 * on data_waiters, load data_seq, re-check (smem__topic_sub_wait_prepare), then arm a futex
 * wait on data_seq with the loaded value. A publish after the re-check sees the announcement,
 * bumps data_seq and wakes it: the futex wait completes and the fd becomes readable; the
 * creator's close does the same (shutdown). Between two armings nothing is announced, so
 * publishers make no system call for a subscriber that nobody polls; while armed, each
 * publish costs its publisher one futex wake, as for a subscriber asleep in receive.
 */
#include <stdlib.h>

#include "topic_int.h"
#include "wait.h"

struct smem_topic_poll {
	struct smem__waitfd *wfd;	/* first: smem__poller_alloc() */
	struct smem_topic_sub *s;
	bool announced;		/* an announcement to withdraw (smem__topic_sub_wait_done) */
};

int smem_topic_poll_open(struct smem_topic_sub *s, struct smem_topic_poll **ret)
{
	struct smem_topic_poll *p;
	void *mem;
	int err;

	if (!s || !ret)
		return -EINVAL;
	err = smem__poller_alloc(sizeof(*p), &mem);
	if (err)
		return err;
	p = mem;
	p->s = s;
	*ret = p;
	return 0;
}

int smem_topic_poll_fd(const struct smem_topic_poll *p)
{
	return p ? smem__waitfd_fd(p->wfd) : -EINVAL;
}

bool smem_topic_poll_threaded(const struct smem_topic_poll *p)
{
	return p && smem__waitfd_threaded(p->wfd);
}

void smem_topic_poll_disarm(struct smem_topic_poll *p)
{
	if (!p)
		return;
	smem__waitfd_disarm(p->wfd);
	if (p->announced)
		smem__topic_sub_wait_done(p->s);
	p->announced = false;
}

int smem_topic_poll_arm(struct smem_topic_poll *p)
{
	_Atomic uint32_t *word;
	uint32_t val;
	int ret;

	if (!p)
		return -EINVAL;
	smem_topic_poll_disarm(p);
	ret = smem__topic_sub_wait_prepare(p->s, &word, &val);
	if (ret)
		return 1;	/* a sample (or shutdown, or corruption): the receive tells */
	p->announced = true;
	ret = smem__waitfd_arm(p->wfd, &(struct smem__wait_item){ .word = word, .val = val,
								  .fd = -1 },
			       1, UINT64_MAX);
	if (ret)
		smem_topic_poll_disarm(p);
	return ret;
}

void smem_topic_poll_close(struct smem_topic_poll *p)
{
	if (!p)
		return;
	smem_topic_poll_disarm(p);
	smem__poller_free(p);
}
