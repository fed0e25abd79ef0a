/* SPDX-License-Identifier: MIT */
/*
 * smem_ring: a lock-free multi-producer multi-consumer ring of fixed-size nodes between
 * processes. Every one of node_count nodes is usable; each message is read exactly once, FIFO
 * per producer, never torn. Waiters spin briefly, then sleep on a futex; writers and readers
 * make no system call when nobody sleeps.
 *
 * Concurrency: every call may run concurrently with any other on the same or other handles,
 * except smem_ring_close() (no call on that handle may be in progress). A zero-copy slot
 * belongs to the thread that reserved it until commit/abort/release.
 *
 * fork: a child may use a handle it inherited; before its first read or write it takes part
 * under an owner id of its own (so its claims die with it, not with the parent), which fails
 * with -EUSERS when all 256 participant slots are taken. A child's close of an inherited
 * creator handle does not shut the ring down. smem_ring_fd() in a child keeps the inherited
 * eventfd (shared with the parent) and starts the child's own helper thread.
 */
#ifndef SMEM_RING_H
#define SMEM_RING_H

#include <sys/types.h>

#include <smem/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct smem_ring;

/* A reserved node, for zero-copy writes and reads. Fill data[0..cap), or read data[0..len). */
struct smem_ring_slot {
	void *data;		/* the node's payload, in shared memory */
	size_t len;		/* read: the message length */
	size_t cap;		/* write: the node size */
	uint64_t _pos;		/* private to the library */
	uint32_t _node;		/* private to the library */
	uint32_t _reserved;
};

struct smem_ring_stats {
	uint64_t written;	/* messages committed through this handle */
	uint64_t read;		/* messages consumed through this handle */
	uint64_t full_waits;	/* writes that had to wait (spin or sleep) for room */
	uint64_t empty_waits;	/* reads that had to wait for data (a timeout-0 poll that finds
				 * the ring empty waits for nothing: counted nowhere) */
	uint64_t sleeps;	/* futex sleeps (system calls) by this handle */
	uint64_t wakes;		/* futex wakes (system calls) by this handle */
	uint64_t drops_recovered;	/* ring-wide: messages of dead writers stepped over */
	uint64_t nodes_reclaimed;	/* ring-wide: nodes of dead readers reclaimed */
	uint64_t corruptions;	/* ring-wide: invalid values found in shared memory */
	uint64_t reserved[7];
};

/*
 * Create a ring of @node_count (>= 2) nodes of @node_size (> 0) bytes under @name.
 * Returns 0 and sets *ret, or -EINVAL (count < 2, size 0, overflow, bad name), -EEXIST, and
 * the errors of smem_region_create(). Blocks on broker round trips.
 */
int smem_ring_create(const char *name, uint32_t node_count, uint32_t node_size,
		     const struct smem_opts *opts, struct smem_ring **ret);
/*
 * Open an existing ring; its geometry is read from (and validated in) shared memory.
 * Returns 0, -ENOENT, -EMEDIUMTYPE (the name holds another kind of object), -EPROTO (a
 * corrupt ring), -EUSERS (256 handles already take part), -EINVAL (SMEM_RDONLY: every
 * participant writes node states). Blocks on the broker.
 */
int smem_ring_open(const char *name, const struct smem_opts *opts, struct smem_ring **ret);
/*
 * Close the handle. The creator's close marks the ring shut down and wakes every waiter,
 * which then gets -ESHUTDOWN; after that, writes fail with -ESHUTDOWN and reads return what
 * is left, then -ESHUTDOWN. Nodes this handle still holds (zero-copy) are recovered by the
 * others as if it had died. NULL is ignored.
 */
void smem_ring_close(struct smem_ring *r);

uint32_t smem_ring_node_count(const struct smem_ring *r);
uint32_t smem_ring_node_size(const struct smem_ring *r);

/*
 * Copy @len bytes (0 <= len <= node_size) into the next node, waiting up to @timeout_ms for
 * room. Returns 0, -EMSGSIZE (too long: nothing written), -ETIMEDOUT, -ESHUTDOWN, -EPROTO.
 * With timeout 0 no system call is made (except, at most once per 2 ms, a liveness check of
 * a peer that has held the node we need for that long).
 */
int smem_ring_write(struct smem_ring *r, const void *src, size_t len, int timeout_ms);
/*
 * Consume the next message into @dst, waiting up to @timeout_ms. Returns its length (0 is a
 * valid, empty message), or -EMSGSIZE (@cap too small: nothing consumed; see next_len),
 * -ETIMEDOUT, -ESHUTDOWN, -EPROTO. With timeout 0 on an empty ring (and on
 * smem_ring_reserve_read()) the answer comes from two loads of shared memory and the shutdown
 * flag, no system call: cheap enough to poll.
 */
ssize_t smem_ring_read(struct smem_ring *r, void *dst, size_t cap, int timeout_ms);
/* Length of the next message without consuming it, or -EAGAIN if none is ready. */
ssize_t smem_ring_next_len(struct smem_ring *r);

/*
 * Batches, for callers whose cost per call dominates (an interpreter through an FFI): loops of
 * the calls above, so not atomic (other readers and writers interleave), with only the first
 * message waiting.
 *
 * smem_ring_read_many() consumes up to @max (>= 1) messages, waiting up to @timeout_ms for the
 * first, then taking those already there: they are packed one after another into @dst (@cap
 * bytes), lens[i] the length of the i-th. It stops at @max, at an empty ring, or before a
 * message longer than the room left (that one stays for the next call). Returns the count
 * (>= 1), or, when none was read, the errors of smem_ring_read() (-EMSGSIZE: the next
 * message is longer than @cap). An error after the first message ends the batch; the next
 * call returns it.
 *
 * smem_ring_write_many() writes @count (>= 1) messages packed one after another in @src,
 * lens[i] bytes the i-th, waiting up to @timeout_ms for room for the first, then writing while
 * there is room. Returns the count written (>= 1; fewer than @count when the ring filled or
 * an error stopped it: the next call with the rest reports that error), or, when none was
 * written, the errors of smem_ring_write(). -EINVAL for NULL pointers or a zero count.
 * Thread-safe as the single calls.
 */
ssize_t smem_ring_read_many(struct smem_ring *r, void *dst, size_t cap, size_t *lens,
			    size_t max, int timeout_ms);
ssize_t smem_ring_write_many(struct smem_ring *r, const void *src, const size_t *lens,
			     size_t count, int timeout_ms);

/*
 * Zero-copy write: reserve a node (slot->data, slot->cap), fill it, then commit @len bytes or
 * abort (the node then carries no message). Messages become visible in reservation order.
 */
int smem_ring_reserve_write(struct smem_ring *r, struct smem_ring_slot *slot, int timeout_ms);
int smem_ring_commit(struct smem_ring *r, struct smem_ring_slot *slot, size_t len);
int smem_ring_abort(struct smem_ring *r, struct smem_ring_slot *slot);
/* Zero-copy read: reserve the next message (slot->data, slot->len), use it, release it. */
int smem_ring_reserve_read(struct smem_ring *r, struct smem_ring_slot *slot, int timeout_ms);
int smem_ring_release(struct smem_ring *r, struct smem_ring_slot *slot);

/*
 * An eventfd that becomes readable when messages are available to read, for epoll, io_uring
 * or libuv. Costs nothing until first called: the first call starts a helper thread that
 * sleeps on the ring like a blocked reader and writes the eventfd when messages arrive that it
 * has not signalled yet (edge-triggered: read the eventfd, then drain the ring with timeout-0
 * reads until -ETIMEDOUT; later arrivals signal again). It never consumes messages. While it
 * sleeps, each commit that finds it asleep costs the writer one futex wake. Returns the fd
 * (owned by the handle, closed by smem_ring_close()) or a negative errno. Thread-safe.
 * smem_ring_poll_open() below does the same without a thread where io_uring allows it.
 */
int smem_ring_fd(struct smem_ring *r);

/*
 * Pollable waits for event loops (epoll, poll, io_uring, libuv's uv_poll_t), with no helper
 * thread: a poller's fd becomes readable when the ring has a message to read
 * (SMEM_RING_POLL_READ) or room to write (SMEM_RING_POLL_WRITE) since it was armed.
 *
 * The loop, which cannot lose a wakeup:
 *     for (;;) {
 *         rc = smem_ring_poll_arm(p);       1: ready now, 0: armed, < 0: error
 *         if (rc == 0)
 *             wait until smem_ring_poll_fd(p) is readable (with the loop's other fds);
 *         smem_ring_poll_disarm(p);          optional: stops the writers' wakes at once
 *         drain: read (write) with timeout 0 until -ETIMEDOUT (or as much as wanted);
 *     }
 * Arming announces the poller to the other side, re-checks the ring, and only then waits:
 * if the condition already holds it returns 1 and arms nothing; otherwise whoever makes it
 * true afterwards wakes the fd. A readable fd is a hint, never a promise (another reader may
 * have taken the message): the timeout-0 calls decide. The fd stays readable until the next
 * arm or disarm. When the owner closes the ring, an armed fd becomes readable and the
 * calls report -ESHUTDOWN (arm returns 1 from then on).
 *
 * Cost: while a poller is armed, each commit (for readers) or each release (for writers)
 * costs its maker one futex wake, as a blocked reader (writer) does; while it is not armed,
 * the ring's writers and readers make no system call for it. Arming makes one system call.
 * A claim held by another participant (a message being written) arms a 5 ms timeout as well,
 * so that a participant who died holding it is noticed: the fd then fires, the drain finds
 * nothing, and the next arm recovers the claim.
 *
 * Where io_uring futex waits are available (Linux 6.7, io_uring not disabled by sysctl or
 * seccomp, SMEM_NO_URING unset), the fd is a private io_uring's, readable when its futex
 * wait completes; elsewhere (smem_ring_poll_threaded() true) a helper thread per poller
 * sleeps on the armed wait and writes an eventfd. The fd is owned by the poller (do not
 * close it); poll it for reading (POLLIN / EPOLLIN / UV_READABLE), level- or edge-triggered.
 *
 * open:  @what is SMEM_RING_POLL_READ or SMEM_RING_POLL_WRITE. 0 and *ret, -EINVAL, -ENOMEM,
 *        -EMFILE, or io_uring's / pthread_create's errors. Close the poller before the ring.
 * arm:   1 (ready now; nothing armed), 0 (armed), -EINVAL, -EUSERS (a forked child found no
 *        free participant slot), -ENOMEM/-EBUSY (io_uring could not take the wait).
 * A poller is used by one thread at a time (it is not thread-safe); the ring handle stays
 * usable by any thread meanwhile. The thread that arms must outlive the arming (io_uring ties
 * a request to the thread that submitted it, and completes it through that thread). Not
 * inherited usefully across fork(): open a new one in the child.
 */
struct smem_ring_poll;
#define SMEM_RING_POLL_READ	0u
#define SMEM_RING_POLL_WRITE	1u
int smem_ring_poll_open(struct smem_ring *r, unsigned what, struct smem_ring_poll **ret);
/* The fd to poll for reading, or -EINVAL. Never blocks. */
int smem_ring_poll_fd(const struct smem_ring_poll *p);
int smem_ring_poll_arm(struct smem_ring_poll *p);
/* Withdraw the arming (harmless when not armed): the fd is not readable afterwards. */
void smem_ring_poll_disarm(struct smem_ring_poll *p);
/* Does this poller use a helper thread (no io_uring futex waits here)? */
bool smem_ring_poll_threaded(const struct smem_ring_poll *p);
/* Disarm and free. NULL is ignored. */
void smem_ring_poll_close(struct smem_ring_poll *p);

/*
 * How long a blocking call spins (re-checking the ring) before it sleeps on the futex.
 *
 * The default, SMEM_RING_SPIN_AUTO, adapts per handle and per direction (reads waiting for
 * data, writes waiting for room): a wait spins for SMEM_RING_SPIN_DEFAULT_NS, or longer when
 * this handle's recent waits were longer but still short: after a wait that got its message
 * t ns after it began (spinning or asleep), the next wait spins about 1.25 t, at most the
 * handle's cap: 1 ns per byte of node size (about five times the time a peer takes to copy a
 * node at memory speed), between SMEM_RING_SPIN_DEFAULT_NS and SMEM_RING_SPIN_MAX_NS. Waits
 * that end sooner lower the budget by an eighth of the difference each; a wait that lasts
 * longer than the cap, or times out, sets it back to SMEM_RING_SPIN_DEFAULT_NS. So a steady
 * stream of large messages (each arriving a copy time after the last) is caught spinning
 * instead of paying a sleep and a cross-core wakeup per message, while a ring that goes idle
 * costs at most one cap of spinning before its waiters sleep. With nodes of up to 20000 bytes
 * the cap is the base spin: the default then behaves as a fixed 20 us spin.
 *
 * Any other value fixes the spin at that many nanoseconds with no adaptation; 0 sleeps at
 * once (use it when cores are oversubscribed). Per handle; thread-safe.
 */
#define SMEM_RING_SPIN_AUTO 0xffffffffu
#define SMEM_RING_SPIN_DEFAULT_NS 20000u
#define SMEM_RING_SPIN_MAX_NS 1000000u
void smem_ring_set_spin(struct smem_ring *r, uint32_t spin_ns);

/* Snapshot of the statistics: per-handle counters plus ring-wide recovery counters. */
int smem_ring_stats(const struct smem_ring *r, struct smem_ring_stats *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
