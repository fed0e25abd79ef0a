/* SPDX-License-Identifier: MIT */
/*
 * smem_topic: publish/subscribe with zero-copy loans. A named topic has a pool of fixed-size
 * sample buffers; publishers loan a buffer, fill it in place and publish it; every subscriber
 * sees every sample published after it joined, in order (plus, if asked, up to `history` of
 * the last samples), through a read-only view it releases when done. Publishing costs the
 * same whatever the sample size: nothing is copied.
 *
 * Slow subscribers, chosen per topic: SMEM_TOPIC_BLOCK makes a publisher wait (up to its
 * timeout) until the slowest live subscriber is less than `depth` samples behind;
 * SMEM_TOPIC_OVERWRITE never waits for subscribers: a subscriber that falls `depth` behind
 * skips the oldest samples and counts each one it skipped in its `lost` statistic.
 *
 * Read-only samples, enforced by the kernel. The samples live in a second memfd
 * ("<name>.samples") that subscribers open read-only and map PROT_READ. By default the
 * creator seals it with F_SEAL_FUTURE_WRITE once its own writable mapping exists: nobody,
 * whatever its uid, can then map it writable or write(2) it, even through a reopen of
 * /proc/PID/fd; publishers are the creating handle (any of its process's threads). With
 * SMEM_TOPIC_MULTI_PUBLISHER the memfd is not sealed so that other processes can open
 * publishers (smem_topic_open_publisher); the memfd's inode carries the name's mode (as every
 * smem memfd's does), so the kernel refuses an O_RDWR reopen through /proc to every uid the
 * mode does not let write; a subscriber whose uid may write the name is then held only by
 * its read-only mapping. The control memfd ("<name>") stays writable by every participant: a
 * hostile subscriber can disturb delivery, never a sample's bytes.
 *
 * Crashes: a publisher or subscriber killed at any instruction frees its loans and views
 * (they are recovered through its owner id and the kernel's liveness locks), and under
 * SMEM_TOPIC_BLOCK a dead subscriber stops holding publishers back.
 *
 * Concurrency: a publisher handle may be used by several threads at once (each loans and
 * publishes its own samples); a subscriber handle by one thread at a time. Close a handle
 * when no call on it is in progress. Handles are not for use in a forked child.
 */
#ifndef SMEM_TOPIC_H
#define SMEM_TOPIC_H

#include <sys/types.h>

#include <smem/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct smem_topic_pub;
struct smem_topic_sub;

/* Slow-subscriber policies (smem_topic_config.policy). */
#define SMEM_TOPIC_BLOCK	0u	/* publishers wait for the slowest subscriber */
#define SMEM_TOPIC_OVERWRITE	1u	/* the oldest unread samples are overwritten, counted */

/* smem_topic_config.flags */
#define SMEM_TOPIC_MULTI_PUBLISHER	(1u << 0)	/* other processes may publish: no seal */

/* Most views a subscriber may hold at once (smem_topic_config.views). */
#define SMEM_TOPIC_MAX_VIEWS	4u

struct smem_topic_config {
	uint64_t sample_size;	/* bytes per sample (> 0) */
	uint32_t depth;		/* samples kept between publishers and the slowest reader (>= 2) */
	uint32_t history;	/* samples a late joiner may get (< depth); 0: none */
	uint32_t max_subscribers;	/* 1..256; 0 means 16 */
	uint32_t views;		/* views one subscriber holds at once, 1..4; 0 means 1 */
	uint32_t loans;		/* samples loaned at once over all publishers; 0 means 4 */
	uint32_t policy;	/* SMEM_TOPIC_BLOCK or SMEM_TOPIC_OVERWRITE */
	uint32_t flags;		/* SMEM_TOPIC_* flags */
	uint32_t reserved[7];	/* zero */
};

/* A loaned sample (publisher) or a received view (subscriber). */
struct smem_topic_sample {
	void *data;		/* publisher: writable, cap bytes */
	const void *view;	/* subscriber: read-only, len bytes */
	size_t len;		/* subscriber: the published length */
	size_t cap;		/* the sample size */
	uint64_t seq;		/* subscriber: the sample's position in the topic (0, 1, ...) */
	uint32_t _buf;		/* private to the library */
	uint32_t _reserved;
};

struct smem_topic_sub_stats {
	uint64_t received;	/* samples received through this subscriber */
	uint64_t lost;		/* samples skipped because they were overwritten (exact) */
	uint64_t lag;		/* samples published and not yet received */
	uint64_t reserved[5];
};

/*
 * Create topic @name and its first publisher. Returns 0 and sets *ret, or -EINVAL (bad
 * config or name, a name longer than SMEM_NAME_MAX - 8, SMEM_RDONLY), -EEXIST, -ENOMEM and
 * the errors of smem_region_create(). Blocks on broker round trips.
 */
int smem_topic_create(const char *name, const struct smem_topic_config *cfg,
		      const struct smem_opts *opts, struct smem_topic_pub **ret);
/*
 * Open another publisher on a SMEM_TOPIC_MULTI_PUBLISHER topic. Returns 0, -ENOENT,
 * -EMEDIUMTYPE, -EPROTO, -EUSERS, -EACCES (the topic is sealed: only its creator publishes;
 * or the mode denies writing).
 */
int smem_topic_open_publisher(const char *name, const struct smem_opts *opts,
			      struct smem_topic_pub **ret);
/*
 * Subscribe to @name. With @history, the first samples received are up to that many of the
 * last ones published before (at most the topic's history). Returns 0, -ENOENT,
 * -EMEDIUMTYPE, -EPROTO, -EUSERS (max_subscribers live subscribers), -EACCES.
 */
int smem_topic_subscribe(const char *name, uint32_t history, const struct smem_opts *opts,
			 struct smem_topic_sub **ret);

/*
 * Loan a sample to fill (s->data, s->cap), waiting up to @timeout_ms for a free buffer or,
 * under SMEM_TOPIC_BLOCK, for the slowest subscriber. Returns 0, -ETIMEDOUT, -ESHUTDOWN,
 * -EPROTO. With timeout 0 and room, no system call.
 */
int smem_topic_loan(struct smem_topic_pub *p, struct smem_topic_sample *s, int timeout_ms);
/*
 * Publish a loaned sample with @len bytes (<= cap). Under SMEM_TOPIC_BLOCK, waits up to
 * @timeout_ms for room (the loan stays ours on -ETIMEDOUT). Returns 0, -EMSGSIZE, -EINVAL
 * (not a loan of this handle), -ETIMEDOUT, -ESHUTDOWN, -EPROTO. A system call only when a
 * subscriber sleeps.
 */
int smem_topic_publish(struct smem_topic_pub *p, struct smem_topic_sample *s, size_t len,
		       int timeout_ms);
/* Give a loaned sample back unpublished. 0, -EINVAL. */
int smem_topic_discard(struct smem_topic_pub *p, struct smem_topic_sample *s);
/* Close the publisher; the creator's close shuts the topic down. Loans are freed. NULL ok. */
void smem_topic_pub_close(struct smem_topic_pub *p);

/*
 * Receive the next sample as a read-only view (s->view, s->len, s->seq), waiting up to
 * @timeout_ms. Returns 0, -ETIMEDOUT, -ESHUTDOWN (the creator closed and nothing is left),
 * -ENOBUFS (this subscriber already holds `views` views), -EPROTO. Samples skipped because
 * they were overwritten are counted in lost. Timeout 0 on no data: no system call.
 */
int smem_topic_receive(struct smem_topic_sub *sub, struct smem_topic_sample *s, int timeout_ms);
/* Release a view. 0, -EINVAL (not a view of this handle). */
int smem_topic_release(struct smem_topic_sub *sub, struct smem_topic_sample *s);
/* This subscriber's statistics. 0 or -EINVAL. */
int smem_topic_sub_stats(struct smem_topic_sub *sub, struct smem_topic_sub_stats *st);
/* Leave the topic; views still held are released. NULL is ignored. */
void smem_topic_sub_close(struct smem_topic_sub *sub);

/*
 * Pollable subscriber waits for event loops (epoll, poll, io_uring, libuv's uv_poll_t), with
 * no helper thread: a poller's fd becomes readable when the subscriber has a sample to
 * receive (or the topic was shut down) since it was armed. The loop, as for rings
 * (smem_ring_poll_open() in ring.h, which it follows in every point):
 *     for (;;) {
 *         rc = smem_topic_poll_arm(p);      1: ready now, 0: armed, < 0: error
 *         if (rc == 0)
 *             wait until smem_topic_poll_fd(p) is readable (with the loop's other fds);
 *         smem_topic_poll_disarm(p);         optional: stops the publishers' wakes at once
 *         receive with timeout 0 (and release) until -ETIMEDOUT, or as much as wanted;
 *     }
 * Arming announces the poller to publishers, re-checks, and only then waits: a sample
 * published before returns 1 and arms nothing, one published after wakes the fd. A
 * readable fd is a hint; the timeout-0 receive decides (-ESHUTDOWN, -EPROTO included).
 *
 * Cost: while a poller is armed, each publish costs its publisher one futex wake, as a
 * subscriber asleep in smem_topic_receive() does; while it is not armed, publishers make no
 * system call for it. Arming makes one system call. A sample whose publisher was killed
 * between committing it and advancing the topic's tail is seen by the next arm (or the
 * next publish), as a blocked receive sees it on its next look.
 *
 * Mechanism: where io_uring has futex waits (Linux 6.7) the fd is a private io_uring's
 * with a futex wait on the topic's data word; elsewhere (smem_topic_poll_threaded() true) a
 * helper thread per poller sleeps on the armed wait and writes an eventfd. The fd is owned
 * by the poller; poll it for reading, level- or edge-triggered.
 *
 * open:  0 and *ret, -EINVAL, -ENOMEM, -EMFILE, or io_uring's / pthread_create's errors.
 *        Close the poller before the subscriber.
 * arm:   1 (ready now; nothing armed), 0 (armed), -EINVAL, -ENOMEM/-EBUSY (io_uring could
 *        not take the wait).
 * A poller is used by one thread at a time, the one that uses the subscriber; the thread
 * that arms must outlive the arming. Not for use in a forked child.
 */
struct smem_topic_poll;
int smem_topic_poll_open(struct smem_topic_sub *sub, struct smem_topic_poll **ret);
/* The fd to poll for reading, or -EINVAL. Never blocks. */
int smem_topic_poll_fd(const struct smem_topic_poll *p);
int smem_topic_poll_arm(struct smem_topic_poll *p);
/* Withdraw the arming (harmless when not armed): the fd is not readable afterwards. */
void smem_topic_poll_disarm(struct smem_topic_poll *p);
/* Does this poller use a helper thread (no io_uring futex waits here)? */
bool smem_topic_poll_threaded(const struct smem_topic_poll *p);
/* Disarm and free. NULL is ignored. */
void smem_topic_poll_close(struct smem_topic_poll *p);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
