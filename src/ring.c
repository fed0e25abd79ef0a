/* SPDX-License-Identifier: MIT */
/*
 * smem_ring: a lock-free MPMC ring of fixed-size nodes in a shared memfd.
 *
 * THE PROTOCOL
 *
 * The basis is Dmitry Vyukov's bounded MPMC queue: 64-bit positions that never wrap in
 * practice (so no ABA on indices), node = position % node_count, and a per-node sequence
 * telling which position the node waits for. Two changes make it crash-tolerant:
 *
 *   - the claim of a node is a CAS on the node's state word that records the claimant's owner
 *     id (the live id of its handle, see live.c) in the same 64-bit word as the sequence;
 *   - the shared cursors (tail for writers, head for readers) are advanced *after* the claim,
 *     by the claimant or by anyone who sees the claim ("helping"), so a claimant that dies
 *     between its claim and the cursor bump cannot stop the cursor.
 *
 * Node state = seq << 32 | owner, seq being the low 32 bits of a position (differences are
 * taken in int32_t; node_count <= 2^24 keeps them unambiguous). For position p of a node:
 *
 *     (p, 0)        free: the writer of position p may claim it
 *     (p, W)        claimed by writer W, payload being filled
 *     (p+1, 0)      committed: message of position p readable, len valid
 *     (p+1, R)      claimed by reader R, payload being read
 *     (p+n, 0)      released: free for position p+n (next lap)
 *
 * Writer at tail = p:   state (p,0): CAS -> (p,W) [acquire: pairs with the release CAS of the
 *                       reader that freed the node], then CAS tail p -> p+1 [release: pairs
 *                       with the acquire load of tail by other writers]. Fill payload, store
 *                       len (relaxed), CAS (p,W) -> (p+1,0) [seq_cst: release pairs with the
 *                       readers' acquire load of the state, so len and payload are visible;
 *                       and a full barrier before reading data_waiters, see waiting].
 *                       (p,X≠0) or seq ahead by 1..n: position p is taken: help tail, reload.
 *                       seq behind by n or n-1: the node still holds position p-n: full.
 * Reader at head = p:   state (p+1,0): CAS -> (p+1,R) [acquire: pairs with the commit], CAS
 *                       head p -> p+1 [release], read, CAS (p+1,R) -> (p+n,0) [seq_cst, as
 *                       the commit, pairing with the next writer's claim and room_waiters].
 *                       (p+1,X≠0) or seq ahead by 1..n: taken: help head. (p,*) or seq behind
 *                       by n: nothing committed at p yet: empty.
 *
 * Messages become visible in reservation order: a reader at head = p waits for position p even
 * if p+1 is already committed (nested or concurrent zero-copy writes completing out of order).
 * An aborted write and a dead writer's claim both turn (p,W) into (p+n,0): readers that find
 * a state ahead of their head step over it by helping the head along. Since no reader took
 * position p, writers may lap that node again before any reader passes p; a reader therefore
 * steps over any state ahead of its head that is not more than a lap ahead of the tail.
 *
 * WAITING (an event count, as concurrencykit's ck_ec): data_seq/data_waiters for readers,
 * room_seq/room_waiters for writers. A waiter increments *_waiters (seq_cst) and fences, loads
 * the sequence word, re-checks the ring, and sleeps with FUTEX_WAIT(seq, loaded value). A
 * committer (releaser) does its state CAS (seq_cst) and then loads data_waiters (room_waiters);
 * only if it is non-zero does it bump the sequence and FUTEX_WAKE. The two seq_cst pairs form a
 * Dekker handshake: either the waiter's re-check sees the new state, or the committer sees the
 * waiter and the bumped word makes its FUTEX_WAIT return at once. No waiter, no system call.
 * Sleeps are bounded (50 ms, 5 ms while a peer holds the node we wait for) so that claims of
 * dead peers are noticed even when nobody wakes us.
 *
 * CRASHES. Each step is one CAS, so a participant killed at any point leaves the ring in one
 * of the states above:
 *   - killed after claiming and before the cursor bump: others help the cursor along;
 *   - writer killed while holding (p,W): readers at head p (or writers a lap later) find the
 *     claim unchanged for 2 ms, ask smem__live_alive(W) (one fcntl), and if it is dead CAS
 *     (p,W) -> (p+n,0): the message is dropped and counted (drops_recovered);
 *   - reader killed while holding (p+1,R): writers at tail p+n (or readers) do the same and
 *     CAS (p+1,R) -> (p+n,0): the node is released and counted (nodes_reclaimed).
 * A live owner is never recovered (the kernel lock proves it alive; our own id is always
 * alive), and recovery CASes from the exact state observed, so it races safely with itself.
 *
 * HOSTILE MEMORY. Node indices come from positions modulo the private node_count; payload
 * addresses from private stride and base; len is checked against the private node_size before
 * any copy; sequence differences outside the possible ones, and node states more than a lap
 * ahead of the cursors, are corruption: -EPROTO and the ring-wide corruptions counter. A node whose
 * length is corrupt is consumed (released) so the ring keeps flowing.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ring_int.h"

#define STUCK_NS	2000000ull	/* a claim unchanged this long gets a liveness check */
#define RECHECK_NS	((uint64_t)SMEM__RING_RECHECK_MS * 1000000ull)
#define IDLE_SLEEP_NS	50000000ull	/* longest sleep: notices peers dying while holding */
#define MAX_TRIES	(1u << 16)	/* CAS retries in one attempt before reporting "busy" */

enum { SLOT_NONE = 0, SLOT_WRITE = 0x5752u, SLOT_READ = 0x5244u };

/* A claim by somebody else that blocks us, and what to do if its owner is dead. */
struct obs {
	bool held;
	bool drop;		/* fix drops a writer's message (else frees a reader's node) */
	uint64_t pos;		/* position whose node we looked at */
	uint64_t state;		/* what we saw */
	uint64_t fix;		/* state to install if the owner is dead */
};

/* Last claim seen blocking this handle, per direction (racy between threads: harmless). */
struct stuck {
	_Atomic uint64_t state;
	_Atomic uint64_t pos;
	_Atomic uint64_t since;
};

struct smem_ring {
	struct smem_region *reg;
	struct smem_ring_shm *shm;
	struct smem_ring_node *nodes;
	unsigned char *data;
	_Atomic uint32_t *shutdown;	/* the region header's shutdown word */
	/* private copies of the geometry, validated once */
	uint32_t n, size, stride;
	uint64_t mask;			/* n - 1 when n is a power of two, else 0 */
	uint32_t id;			/* our owner id (a forked child takes its own, see fork) */
	_Atomic unsigned fork_gen;	/* the process generation id belongs to */
	_Atomic uint32_t spin_ns;
	struct stuck wstuck, rstuck;
	_Atomic uint64_t written, nread, full_waits, empty_waits, sleeps, wakes;
	/* the eventfd bridge (smem_ring_fd) */
	pthread_mutex_t fd_lock;
	int efd;
	bool bridge_on;
	pid_t bridge_pid;		/* the process the bridge thread runs in */
	_Atomic bool bridge_stop;
	pthread_t bridge;
};

struct op {
	bool write;
	bool peek;		/* read: only report the next length */
	size_t cap;		/* read: -EMSGSIZE above this, nothing consumed */
	uint64_t pos;		/* out: the position claimed */
	uint32_t idx;		/* out: its node (pos % node_count, computed once) */
	ssize_t len;		/* out (peek): the length */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline uint64_t mkst(uint64_t seq, uint32_t owner)
{
	return (uint64_t)(uint32_t)seq << 32 | owner;
}

static inline uint32_t st_seq(uint64_t s)
{
	return (uint32_t)(s >> 32);
}

static inline uint32_t st_owner(uint64_t s)
{
	return (uint32_t)s;
}

static inline uint32_t idx_of(const struct smem_ring *r, uint64_t pos)
{
	return (uint32_t)(r->mask ? pos & r->mask : pos % r->n);
}

static inline struct smem_ring_node *node_at(const struct smem_ring *r, uint64_t pos)
{
	return &r->nodes[idx_of(r, pos)];
}

static inline unsigned char *payload(const struct smem_ring *r, uint32_t idx)
{
	return r->data + (size_t)idx * r->stride;
}

static inline void stat_inc(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline bool is_shutdown(const struct smem_ring *r)
{
	/* Acquire: pairs with the release store of the owner's close. */
	return atomic_load_explicit(r->shutdown, memory_order_acquire) != 0;
}

static int corrupt(struct smem_ring *r)
{
	atomic_fetch_add_explicit(&r->shm->corruptions, 1, memory_order_relaxed);
	return -EPROTO;
}

/* Move a cursor from @pos to @pos+1 if nobody did. Release: pairs with the acquire loads. */
static inline void advance(_Atomic uint64_t *cursor, uint64_t pos)
{
	uint64_t e = pos;

	atomic_compare_exchange_strong_explicit(cursor, &e, pos + 1, memory_order_release,
						memory_order_relaxed);
}

static void wake(struct smem_ring *r, _Atomic uint32_t *seq)
{
	/*
	 * Release: pairs with the waiter's acquire load of the word before its re-check. A
	 * waiter that loads the bumped value must also see the state change (commit, release,
	 * recovery, shutdown) that led to this wake, or it would sleep on a value nobody bumps
	 * again (until its bounded timeout).
	 */
	atomic_fetch_add_explicit(seq, 1, memory_order_release);
	smem__futex_wake(seq, INT_MAX);
	stat_inc(&r->wakes);
}

/* ---- fork ------------------------------------------------------------------------------ */

/*
 * A forked child inherits the handle but not its participation: live.c's atfork handler drops
 * the child's copy of the liveness description. Claiming with the parent's owner id would let
 * others "recover" the child's live claims once the parent's handle goes away (a torn or lost
 * message), and keep a dead child's claims looking alive while the parent lives (a wedged
 * ring). So before its first claim, a child joins under an id of its own, as lock.c does.
 */
static pthread_mutex_t fork_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
	pthread_mutex_lock(&fork_mutex);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&fork_mutex);
}

static void atfork_child(void)
{
	atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
	pthread_mutex_unlock(&fork_mutex);
}

/*
 * Registered on first attach, so after live.c's constructor: our prepare handler runs first,
 * and fork_mutex is taken before live.c's joined_lock, the order rejoin() takes them in.
 */
static void atfork_register(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int __attribute__((noinline)) rejoin(struct smem_ring *r, unsigned gen)
{
	int err = 0;

	pthread_mutex_lock(&fork_mutex);
	if (atomic_load_explicit(&r->fork_gen, memory_order_relaxed) != gen) {
		smem__live_leave(r->reg);	/* no-op: the atfork handler did it */
		err = smem__live_join(r->reg);
		if (!err) {
			r->id = r->reg->live_id;
			/* The parent's bridge thread does not exist here; smem_ring_fd starts ours. */
			r->bridge_on = false;
			pthread_mutex_init(&r->fd_lock, NULL);	/* a parent thread may have held it */
			/* Release: pairs with the acquire in check_fork(); r->id is visible. */
			atomic_store_explicit(&r->fork_gen, gen, memory_order_release);
		}
	}
	pthread_mutex_unlock(&fork_mutex);
	return err;
}

/* 0, or the error of joining under an id of our own in a forked child (-EUSERS). */
static inline int check_fork(struct smem_ring *r)
{
	unsigned gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);

	/* Acquire: pairs with the release in rejoin(), so r->id is the one for this process. */
	if (smem__likely(atomic_load_explicit(&r->fork_gen, memory_order_acquire) == gen))
		return 0;
	return rejoin(r, gen);
}

/* ---- one attempt, never a system call ------------------------------------------------ */

/* Claim a node for writing (or, with op->peek, only tell whether one is free). 0 or -EAGAIN (full),
 * -EPROTO. */
static int try_write(struct smem_ring *r, struct op *op, struct obs *ob)
{
	_Atomic uint64_t *tail = &r->shm->tail;
	const int32_t n = (int32_t)r->n;
	unsigned tries = 0;
	uint64_t pos, s;
	int32_t d;

	ob->held = false;
	/* Acquire: pairs with the release of tail bumps; the claims below pos are visible. */
	pos = atomic_load_explicit(tail, memory_order_acquire);
	while (++tries < MAX_TRIES) {
		uint32_t idx = idx_of(r, pos);
		struct smem_ring_node *nd = &r->nodes[idx];

		/* Acquire: pairs with the release (seq_cst) CAS that freed the node. */
		s = atomic_load_explicit(&nd->state, memory_order_acquire);
		d = (int32_t)(st_seq(s) - (uint32_t)pos);
		if (d == 0 && st_owner(s) == 0) {
			if (op->peek)
				return 0;
			/* Acquire: the previous reader's reads of the payload are done. */
			if (atomic_compare_exchange_strong_explicit(&nd->state, &s, mkst(pos, r->id),
								    memory_order_acquire,
								    memory_order_relaxed)) {
				advance(tail, pos);
				op->pos = pos;
				op->idx = idx;
				return 0;
			}
			continue;	/* another writer won position pos: look again */
		}
		if (d == 0 || (d > 0 && d <= n)) {
			/* Position pos is taken (its claimant may have died before the bump). */
			advance(tail, pos);
			pos = atomic_load_explicit(tail, memory_order_acquire);
			continue;
		}
		if (d > 0) {
			uint64_t np = atomic_load_explicit(tail, memory_order_acquire);

			if (np == pos)
				return corrupt(r);	/* a node far ahead of a tail that does not move */
			pos = np;
			continue;
		}
		if (d == -n || d == 1 - n) {
			/* Full: the node still holds position pos - n (being written or read). */
			uint32_t owner = st_owner(s);

			if (owner != 0 && owner != r->id) {
				ob->held = true;
				ob->drop = d == -n;
				ob->pos = pos;
				ob->state = s;
				ob->fix = mkst(pos, 0);
			}
			return -EAGAIN;
		}
		return corrupt(r);
	}
	return -EAGAIN;
}

/*
 * Claim the next message (or, with op->peek, report its length). Returns 0 (claimed, op->pos),
 * -EAGAIN (empty), -EMSGSIZE (longer than op->cap: nothing consumed), -EPROTO.
 */
static int try_read(struct smem_ring *r, struct op *op, struct obs *ob)
{
	_Atomic uint64_t *head = &r->shm->head;
	const int32_t n = (int32_t)r->n;
	unsigned tries = 0;
	uint64_t pos, s;
	int32_t d;

	ob->held = false;
	/* Acquire: pairs with the release of head bumps. */
	pos = atomic_load_explicit(head, memory_order_acquire);
	while (++tries < MAX_TRIES) {
		uint32_t idx = idx_of(r, pos);
		struct smem_ring_node *nd = &r->nodes[idx];

		/* Acquire: pairs with the commit CAS (release): len and payload are visible. */
		s = atomic_load_explicit(&nd->state, memory_order_acquire);
		d = (int32_t)(st_seq(s) - (uint32_t)(pos + 1));
		if (d == 0 && st_owner(s) == 0) {
			if (op->peek || op->cap < r->size) {
				/* Seqlock-style: the length counts only if the state did not move. */
				uint32_t len = atomic_load_explicit(&nd->len, memory_order_relaxed);

				/* Acquire fence: orders the len load before the state re-load. */
				atomic_thread_fence(memory_order_acquire);
				if (atomic_load_explicit(&nd->state, memory_order_relaxed) != s)
					continue;
				if (len > r->size && op->peek)
					return corrupt(r);
				if (op->peek) {
					op->len = len;
					return 0;
				}
				if (len > op->cap && len <= r->size)
					return -EMSGSIZE;
			}
			/* Acquire: pairs with the commit (len and payload). */
			if (atomic_compare_exchange_strong_explicit(&nd->state, &s,
								    mkst(pos + 1, r->id),
								    memory_order_acquire,
								    memory_order_relaxed)) {
				advance(head, pos);
				op->pos = pos;
				op->idx = idx;
				return 0;
			}
			continue;
		}
		if (d == 0 || (d > 0 && d <= n)) {
			/* Taken by another reader, dropped or aborted: step over it. */
			advance(head, pos);
			pos = atomic_load_explicit(head, memory_order_acquire);
			continue;
		}
		if (d > 0) {
			uint64_t np = atomic_load_explicit(head, memory_order_acquire);

			if (np == pos) {
				/*
				 * More than a lap ahead of a head that stands still. An aborted
				 * write or a dead writer's recovered claim frees its node for the
				 * next lap with no reader taking the position, so writers may lap
				 * such a position: it was skipped, step over it. No protocol step
				 * puts a node more than a lap ahead of tail (claims are below
				 * tail, frees add n), so that is corruption. Acquire: pairs with
				 * the tail bumps, made before the node state we loaded.
				 */
				uint64_t t = atomic_load_explicit(&r->shm->tail,
								  memory_order_acquire);

				if ((int32_t)(st_seq(s) - (uint32_t)t) > n)
					return corrupt(r);
				advance(head, pos);
				np = atomic_load_explicit(head, memory_order_acquire);
			}
			pos = np;
			continue;
		}
		if (d == -1 || d == -n) {
			/* Empty: nothing committed at pos (a writer may hold it: d == -1), or the
			 * node still holds position pos - n in a reader's hands (d == -n). */
			uint32_t owner = st_owner(s);

			if (owner != 0 && owner != r->id) {
				ob->held = true;
				ob->drop = d == -1;
				ob->pos = pos;
				ob->state = s;
				ob->fix = d == -1 ? mkst(pos + r->n, 0) : mkst(pos, 0);
			}
			return -EAGAIN;
		}
		return corrupt(r);
	}
	return -EAGAIN;
}

static inline int try_op(struct smem_ring *r, struct op *op, struct obs *ob)
{
	return op->write ? try_write(r, op, ob) : try_read(r, op, ob);
}

/*
 * A claim blocks us. If it has not changed for STUCK_NS (as seen by this handle), ask the
 * kernel whether its owner lives; if not, recover the node. Returns true when the node
 * changed (recovered by us or anybody), so that the caller tries again at once.
 */
static bool stuck_recover(struct smem_ring *r, struct stuck *st, const struct obs *ob)
{
	uint64_t now = smem__now_ns(), e;
	struct smem_ring_node *nd;

	if (atomic_load_explicit(&st->state, memory_order_relaxed) != ob->state ||
	    atomic_load_explicit(&st->pos, memory_order_relaxed) != ob->pos) {
		atomic_store_explicit(&st->state, ob->state, memory_order_relaxed);
		atomic_store_explicit(&st->pos, ob->pos, memory_order_relaxed);
		atomic_store_explicit(&st->since, now, memory_order_relaxed);
		return false;
	}
	if (now - atomic_load_explicit(&st->since, memory_order_relaxed) < STUCK_NS)
		return false;
	atomic_store_explicit(&st->since, now, memory_order_relaxed);
	if (smem__live_alive(r->reg, st_owner(ob->state)))
		return false;
	nd = node_at(r, ob->pos);
	e = ob->state;
	/* seq_cst: as a commit or release (it publishes a node state), then the wakes. */
	if (atomic_compare_exchange_strong_explicit(&nd->state, &e, ob->fix, memory_order_seq_cst,
						    memory_order_relaxed)) {
		atomic_fetch_add_explicit(ob->drop ? &r->shm->drops_recovered
						   : &r->shm->nodes_reclaimed, 1,
					  memory_order_relaxed);
		/* Rare: wake both sides whether or not anyone sleeps. */
		wake(r, &r->shm->data_seq);
		wake(r, &r->shm->room_seq);
	}
	return true;
}

/* ---- waiting -------------------------------------------------------------------------- */

static int wait_op(struct smem_ring *r, struct op *op, int timeout_ms)
{
	struct smem_ring_shm *shm = r->shm;
	_Atomic uint32_t *seqw = op->write ? &shm->room_seq : &shm->data_seq;
	_Atomic uint32_t *waiters = op->write ? &shm->room_waiters : &shm->data_waiters;
	struct stuck *st = op->write ? &r->wstuck : &r->rstuck;
	uint64_t deadline, spin, start;
	struct obs ob;
	unsigned i;
	int ret;

	ret = check_fork(r);
	if (smem__unlikely(ret))
		return ret;
	ret = try_op(r, op, &ob);
	if (smem__likely(ret != -EAGAIN))
		return ret;
	/* Rate-limited by STUCK_NS: a polling caller pays one fcntl per 2 ms at most. */
	if (ob.held && stuck_recover(r, st, &ob)) {
		ret = try_op(r, op, &ob);
		if (ret != -EAGAIN)
			return ret;
	}
	if (is_shutdown(r))
		return -ESHUTDOWN;
	if (timeout_ms == 0)
		return -ETIMEDOUT;
	stat_inc(op->write ? &r->full_waits : &r->empty_waits);
	deadline = smem__deadline(timeout_ms);

	spin = atomic_load_explicit(&r->spin_ns, memory_order_relaxed);
	if (spin) {
		start = smem__now_ns();
		for (i = 1;; i++) {
			cpu_relax();
			ret = try_op(r, op, &ob);
			if (ret != -EAGAIN)
				return ret;
			if ((i & 15) == 0) {
				uint64_t now = smem__now_ns();

				if (now - start >= spin || now >= deadline)
					break;
			}
		}
	}

	for (;;) {
		uint64_t rem, cap;
		uint32_t v;

		atomic_fetch_add_explicit(waiters, 1, memory_order_seq_cst);
		/* Pairs with the seq_cst state CAS + waiters load of committers/releasers. */
		atomic_thread_fence(memory_order_seq_cst);
		/* Acquire: the ring re-check below cannot move before this load. */
		v = atomic_load_explicit(seqw, memory_order_acquire);
		ret = try_op(r, op, &ob);
		if (ret == -EAGAIN && ob.held && stuck_recover(r, st, &ob))
			ret = try_op(r, op, &ob);
		if (ret == -EAGAIN) {
			if (is_shutdown(r))
				ret = -ESHUTDOWN;
			else if ((rem = smem__remaining_ns(deadline)) == 0)
				ret = -ETIMEDOUT;
		}
		if (ret != -EAGAIN) {
			atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
			return ret;
		}
		cap = ob.held ? RECHECK_NS : IDLE_SLEEP_NS;
		smem__futex_wait(seqw, v, rem < cap ? rem : cap);
		stat_inc(&r->sleeps);
		atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
		ret = try_op(r, op, &ob);
		if (ret != -EAGAIN)
			return ret;
	}
}

/* ---- commit and release ----------------------------------------------------------------- */

static int commit_at(struct smem_ring *r, uint64_t pos, uint32_t idx, uint32_t len)
{
	struct smem_ring_node *nd = &r->nodes[idx];
	uint64_t e = mkst(pos, r->id);

	atomic_store_explicit(&nd->len, len, memory_order_relaxed);
	/*
	 * seq_cst: the release half pairs with the readers' acquire load of the state (len and
	 * payload visible); the full barrier orders it before the data_waiters load (Dekker with
	 * the waiter's fetch_add + fence in wait_op).
	 */
	if (!atomic_compare_exchange_strong_explicit(&nd->state, &e, mkst(pos + 1, 0),
						     memory_order_seq_cst, memory_order_relaxed))
		return corrupt(r);	/* somebody took our claim: only a scribbler does that */
	stat_inc(&r->written);
	if (atomic_load_explicit(&r->shm->data_waiters, memory_order_seq_cst))
		wake(r, &r->shm->data_seq);
	return 0;
}

static int release_at(struct smem_ring *r, uint64_t pos, uint32_t idx)
{
	struct smem_ring_node *nd = &r->nodes[idx];
	uint64_t e = mkst(pos + 1, r->id);

	/* seq_cst: release pairs with the next writer's acquire claim; Dekker with room_waiters. */
	if (!atomic_compare_exchange_strong_explicit(&nd->state, &e, mkst(pos + r->n, 0),
						     memory_order_seq_cst, memory_order_relaxed))
		return corrupt(r);
	if (atomic_load_explicit(&r->shm->room_waiters, memory_order_seq_cst))
		wake(r, &r->shm->room_seq);
	return 0;
}

/* The length of a message we hold, validated; a corrupt one is consumed. */
static ssize_t claimed_len(struct smem_ring *r, uint64_t pos, uint32_t idx)
{
	uint32_t len = atomic_load_explicit(&r->nodes[idx].len, memory_order_relaxed);

	if (len > r->size) {
		release_at(r, pos, idx);
		return corrupt(r);
	}
	return len;
}

/* ---- the public calls ----------------------------------------------------------------- */

int smem_ring_write(struct smem_ring *r, const void *src, size_t len, int timeout_ms)
{
	struct op op = { .write = true };
	int ret;

	if (!r || (!src && len))
		return -EINVAL;
	if (len > r->size)
		return -EMSGSIZE;
	if (is_shutdown(r))
		return -ESHUTDOWN;
	ret = wait_op(r, &op, timeout_ms);
	if (ret)
		return ret;
	if (len)
		memcpy(payload(r, op.idx), src, len);
	return commit_at(r, op.pos, op.idx, (uint32_t)len);
}

ssize_t smem_ring_read(struct smem_ring *r, void *dst, size_t cap, int timeout_ms)
{
	struct op op = { .write = false, .cap = cap };
	ssize_t len;
	int ret;

	if (!r || (!dst && cap))
		return -EINVAL;
	ret = wait_op(r, &op, timeout_ms);
	if (ret)
		return ret;
	len = claimed_len(r, op.pos, op.idx);
	if (len < 0)
		return len;
	if ((size_t)len > cap) {
		/* Checked before the claim; only a scribbler changes a committed length. */
		release_at(r, op.pos, op.idx);
		return corrupt(r);
	}
	if (len)
		memcpy(dst, payload(r, op.idx), (size_t)len);
	ret = release_at(r, op.pos, op.idx);
	stat_inc(&r->nread);
	return ret ? ret : len;
}

ssize_t smem_ring_next_len(struct smem_ring *r)
{
	struct op op = { .peek = true };
	struct obs ob;
	int ret;

	if (!r)
		return -EINVAL;
	ret = try_read(r, &op, &ob);
	return ret ? ret : op.len;
}

int smem_ring_reserve_write(struct smem_ring *r, struct smem_ring_slot *slot, int timeout_ms)
{
	struct op op = { .write = true };
	int ret;

	if (!r || !slot)
		return -EINVAL;
	if (is_shutdown(r))
		return -ESHUTDOWN;
	ret = wait_op(r, &op, timeout_ms);
	if (ret)
		return ret;
	slot->_node = op.idx;
	slot->data = payload(r, op.idx);
	slot->len = 0;
	slot->cap = r->size;
	slot->_pos = op.pos;
	slot->_reserved = SLOT_WRITE;
	return 0;
}

/*
 * _node is trusted only as an index below node_count: the state CAS that follows expects our
 * claim of _pos, which no other node can hold, so a mismatched slot fails there.
 */
static bool slot_ok(const struct smem_ring *r, const struct smem_ring_slot *slot, uint32_t kind)
{
	return slot && slot->_reserved == kind && slot->_node < r->n;
}

int smem_ring_commit(struct smem_ring *r, struct smem_ring_slot *slot, size_t len)
{
	if (!r || !slot_ok(r, slot, SLOT_WRITE) || len > r->size)
		return -EINVAL;
	slot->_reserved = SLOT_NONE;
	return commit_at(r, slot->_pos, slot->_node, (uint32_t)len);
}

int smem_ring_abort(struct smem_ring *r, struct smem_ring_slot *slot)
{
	struct smem_ring_node *nd;
	uint64_t e;

	if (!r || !slot_ok(r, slot, SLOT_WRITE))
		return -EINVAL;
	slot->_reserved = SLOT_NONE;
	nd = &r->nodes[slot->_node];
	e = mkst(slot->_pos, r->id);
	/* seq_cst: publishes the free node as a release does; readers step over it. */
	if (!atomic_compare_exchange_strong_explicit(&nd->state, &e, mkst(slot->_pos + r->n, 0),
						     memory_order_seq_cst, memory_order_relaxed))
		return corrupt(r);
	atomic_fetch_add_explicit(&r->shm->aborted, 1, memory_order_relaxed);
	/* Readers waiting at this position may now step over it to later messages. */
	if (atomic_load_explicit(&r->shm->data_waiters, memory_order_seq_cst))
		wake(r, &r->shm->data_seq);
	if (atomic_load_explicit(&r->shm->room_waiters, memory_order_seq_cst))
		wake(r, &r->shm->room_seq);
	return 0;
}

int smem_ring_reserve_read(struct smem_ring *r, struct smem_ring_slot *slot, int timeout_ms)
{
	struct op op = { .write = false, .cap = SIZE_MAX };
	ssize_t len;
	int ret;

	if (!r || !slot)
		return -EINVAL;
	ret = wait_op(r, &op, timeout_ms);
	if (ret)
		return ret;
	len = claimed_len(r, op.pos, op.idx);
	if (len < 0)
		return (int)len;
	slot->_node = op.idx;
	slot->data = payload(r, op.idx);
	slot->len = (size_t)len;
	slot->cap = r->size;
	slot->_pos = op.pos;
	slot->_reserved = SLOT_READ;
	return 0;
}

int smem_ring_release(struct smem_ring *r, struct smem_ring_slot *slot)
{
	int ret;

	if (!r || !slot_ok(r, slot, SLOT_READ))
		return -EINVAL;
	slot->_reserved = SLOT_NONE;
	ret = release_at(r, slot->_pos, slot->_node);
	if (!ret)
		stat_inc(&r->nread);
	return ret;
}

uint32_t smem_ring_node_count(const struct smem_ring *r)
{
	return r ? r->n : 0;
}

uint32_t smem_ring_node_size(const struct smem_ring *r)
{
	return r ? r->size : 0;
}

void smem_ring_set_spin(struct smem_ring *r, uint32_t spin_ns)
{
	if (r)
		atomic_store_explicit(&r->spin_ns, spin_ns, memory_order_relaxed);
}

int smem_ring_stats(const struct smem_ring *r, struct smem_ring_stats *out)
{
	struct smem_ring_stats s;

	if (!r || !out)
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	s.written = atomic_load_explicit(&r->written, memory_order_relaxed);
	s.read = atomic_load_explicit(&r->nread, memory_order_relaxed);
	s.full_waits = atomic_load_explicit(&r->full_waits, memory_order_relaxed);
	s.empty_waits = atomic_load_explicit(&r->empty_waits, memory_order_relaxed);
	s.sleeps = atomic_load_explicit(&r->sleeps, memory_order_relaxed);
	s.wakes = atomic_load_explicit(&r->wakes, memory_order_relaxed);
	s.drops_recovered = atomic_load_explicit(&r->shm->drops_recovered, memory_order_relaxed);
	s.nodes_reclaimed = atomic_load_explicit(&r->shm->nodes_reclaimed, memory_order_relaxed);
	s.corruptions = atomic_load_explicit(&r->shm->corruptions, memory_order_relaxed);
	*out = s;
	return 0;
}

/* ---- the internal contract (ring_int.h) ------------------------------------------------- */

int smem__ring_wait_prepare(struct smem_ring *r, bool for_write, _Atomic uint32_t **word,
			    uint32_t *val)
{
	struct smem_ring_shm *shm = r->shm;
	_Atomic uint32_t *seqw = for_write ? &shm->room_seq : &shm->data_seq;
	_Atomic uint32_t *waiters = for_write ? &shm->room_waiters : &shm->data_waiters;
	struct op op = { .write = for_write, .peek = true };
	struct obs ob;
	uint32_t v;
	int ret;

	if (is_shutdown(r))
		return -ESHUTDOWN;
	ret = check_fork(r);
	if (ret)
		return ret;	/* the caller's operation reports it */
	atomic_fetch_add_explicit(waiters, 1, memory_order_seq_cst);
	/* As in wait_op: pairs with the committers' seq_cst CAS + waiters load. */
	atomic_thread_fence(memory_order_seq_cst);
	v = atomic_load_explicit(seqw, memory_order_acquire);
	ret = try_op(r, &op, &ob);
	/* A recovered node may have made the condition true: look again rather than sleep. */
	if (ret == -EAGAIN && ob.held &&
	    stuck_recover(r, for_write ? &r->wstuck : &r->rstuck, &ob))
		ret = 0;
	if (ret != -EAGAIN || is_shutdown(r)) {
		atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
		/* -EPROTO and the like: something is there; the caller's read reports it. */
		return ret == -EAGAIN ? -ESHUTDOWN : -EAGAIN;
	}
	*word = seqw;
	*val = v;
	return 0;
}

void smem__ring_wait_done(struct smem_ring *r, bool for_write)
{
	struct smem_ring_shm *shm = r->shm;

	atomic_fetch_sub_explicit(for_write ? &shm->room_waiters : &shm->data_waiters, 1,
				  memory_order_relaxed);
	stat_inc(&r->sleeps);
}

struct smem_region *smem__ring_region(const struct smem_ring *r)
{
	return r->reg;
}

struct smem_ring_shm *smem__ring_shm(const struct smem_ring *r)
{
	return r->shm;
}

uint32_t smem__ring_owner_id(const struct smem_ring *r)
{
	return r->id;
}

/* ---- the eventfd bridge ------------------------------------------------------------------ */

/*
 * smem_ring_fd() starts this thread on first use; until then the ring pays nothing for it.
 * It sleeps on the ring's data event count like any reader (so committers wake it only while
 * it sleeps) and writes the eventfd when a message is available that it has not signalled
 * yet (the tail moved since the last signal): edge-triggered, one signal per batch of
 * arrivals. It never consumes anything. Stopped by smem_ring_close().
 */
static void *bridge_main(void *arg)
{
	struct smem_ring *r = arg;
	struct smem_ring_shm *shm = r->shm;
	uint64_t last_tail = UINT64_MAX, one = 1, tail;
	bool shut_signalled = false;

	/* Acquire: pairs with the release store of close. */
	while (!atomic_load_explicit(&r->bridge_stop, memory_order_acquire)) {
		struct op op = { .peek = true };
		struct obs ob;
		uint32_t v;
		int ret;

		atomic_fetch_add_explicit(&shm->data_waiters, 1, memory_order_seq_cst);
		/* As in wait_op: pairs with the committers' seq_cst CAS + waiters load. */
		atomic_thread_fence(memory_order_seq_cst);
		v = atomic_load_explicit(&shm->data_seq, memory_order_acquire);
		tail = atomic_load_explicit(&shm->tail, memory_order_acquire);
		ret = try_read(r, &op, &ob);
		if (ret == -EAGAIN && ob.held)
			stuck_recover(r, &r->rstuck, &ob);
		if ((ret != -EAGAIN && tail != last_tail) || (is_shutdown(r) && !shut_signalled)) {
			if (write(r->efd, &one, sizeof(one)) < 0) {
				/* EAGAIN: the counter is at its maximum, readable anyway. */
			}
			last_tail = tail;
			shut_signalled = is_shutdown(r);
		}
		smem__futex_wait(&shm->data_seq, v, ob.held ? RECHECK_NS : IDLE_SLEEP_NS);
		atomic_fetch_sub_explicit(&shm->data_waiters, 1, memory_order_relaxed);
	}
	return NULL;
}

int smem_ring_fd(struct smem_ring *r)
{
	sigset_t all, old;
	int ret;

	if (!r)
		return -EINVAL;
	ret = check_fork(r);
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
		/* The bridge takes no signals: they belong to the application's threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		ret = pthread_create(&r->bridge, NULL, bridge_main, r);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (ret) {
			close(r->efd);
			r->efd = -1;
			pthread_mutex_unlock(&r->fd_lock);
			return -ret;
		}
		r->bridge_on = true;
		r->bridge_pid = getpid();
	}
	ret = r->efd;
	pthread_mutex_unlock(&r->fd_lock);
	return ret;
}

/* ---- create, open, close ------------------------------------------------------------------ */

size_t smem__ring_obj_size(uint32_t node_count, uint32_t node_size)
{
	uint64_t stride;

	if (node_count < 2 || node_count > SMEM_RING_MAX_NODES || node_size == 0 ||
	    node_size > SMEM_RING_MAX_NODE_SIZE)
		return 0;
	stride = ((uint64_t)node_size + 63) & ~63ull;
	/* At most 512 + 2^30 + 2^24 * 2^32: no overflow in 64 bits. */
	return (size_t)(SMEM_RING_HDR_SIZE + (uint64_t)SMEM_RING_NODE_SIZE * node_count +
			stride * node_count);
}

int smem__ring_format(void *obj, size_t obj_size, uint32_t node_count, uint32_t node_size)
{
	struct smem_ring_shm *shm = obj;
	struct smem_ring_node *nodes;
	size_t need = smem__ring_obj_size(node_count, node_size);
	uint32_t i;

	if (!need || obj_size < need)
		return -EINVAL;
	shm->magic = SMEM_RING_MAGIC;
	shm->version = SMEM_RING_VERSION;
	shm->node_count = node_count;
	shm->node_size = node_size;
	shm->node_stride = (node_size + 63) & ~63u;
	shm->nodes_off = SMEM_RING_HDR_SIZE;
	shm->data_off = SMEM_RING_HDR_SIZE + (uint64_t)SMEM_RING_NODE_SIZE * node_count;
	shm->obj_size = need;
	atomic_store_explicit(&shm->tail, 0, memory_order_relaxed);
	atomic_store_explicit(&shm->head, 0, memory_order_relaxed);
	nodes = (struct smem_ring_node *)((char *)obj + SMEM_RING_HDR_SIZE);
	/* Node i waits for position i. Published by the region's release of its magic. */
	for (i = 0; i < node_count; i++)
		atomic_store_explicit(&nodes[i].state, mkst(i, 0), memory_order_relaxed);
	return 0;
}

int smem__ring_attach(struct smem_region *reg, struct smem_ring **ret)
{
	struct smem_ring_shm geo, *shm;
	struct smem_ring *r;
	size_t need;
	int err;

	if (!reg || !ret || reg->rdonly)
		return -EINVAL;
	if (reg->obj_size < SMEM_RING_HDR_SIZE)
		return -EPROTO;
	shm = reg->obj;
	/* One private copy of the geometry line; the shared one is never used for bounds. */
	memcpy(&geo, shm, 64);
	need = smem__ring_obj_size(geo.node_count, geo.node_size);
	if (geo.magic != SMEM_RING_MAGIC || geo.version != SMEM_RING_VERSION || !need ||
	    geo.node_stride != ((geo.node_size + 63) & ~63u) ||
	    geo.nodes_off != SMEM_RING_HDR_SIZE ||
	    geo.data_off != SMEM_RING_HDR_SIZE + (uint64_t)SMEM_RING_NODE_SIZE * geo.node_count ||
	    geo.obj_size != need || need > reg->obj_size)
		return -EPROTO;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = smem__live_join(reg);
	if (err) {
		free(r);
		return err;
	}
	r->reg = reg;
	r->shm = shm;
	r->n = geo.node_count;
	r->size = geo.node_size;
	r->stride = geo.node_stride;
	r->mask = (r->n & (r->n - 1)) == 0 ? r->n - 1 : 0;
	r->nodes = (struct smem_ring_node *)((char *)reg->obj + SMEM_RING_HDR_SIZE);
	r->data = (unsigned char *)reg->obj + geo.data_off;
	r->shutdown = &reg->hdr->shutdown;
	r->id = reg->live_id;
	r->efd = -1;
	pthread_once(&atfork_once, atfork_register);
	atomic_store_explicit(&r->fork_gen, atomic_load_explicit(&fork_gen, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&r->spin_ns, SMEM_RING_SPIN_DEFAULT_NS, memory_order_relaxed);
	pthread_mutex_init(&r->fd_lock, NULL);
	*ret = r;
	return 0;
}

struct geom {
	uint32_t count, size;
};

static int ring_init(void *obj, size_t obj_size, void *arg)
{
	const struct geom *g = arg;

	return smem__ring_format(obj, obj_size, g->count, g->size);
}

int smem_ring_create(const char *name, uint32_t node_count, uint32_t node_size,
		     const struct smem_opts *opts, struct smem_ring **ret)
{
	struct geom g = { node_count, node_size };
	struct smem_region *reg;
	size_t size;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	size = smem__ring_obj_size(node_count, node_size);
	if (!ret || !size || (opts && (opts->flags & SMEM_RDONLY)))
		return -EINVAL;
	err = smem__region_create(name, SMEM_KIND_RING, size, ring_init, &g, opts, &reg);
	if (err)
		return err;
	err = smem__ring_attach(reg, ret);
	if (err)
		smem_region_close(reg);
	return err;
}

int smem_ring_open(const char *name, const struct smem_opts *opts, struct smem_ring **ret)
{
	struct smem_region *reg;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	/* A ring participant writes node states: there is no read-only ring handle. */
	if (!ret || (opts && (opts->flags & SMEM_RDONLY)))
		return -EINVAL;
	err = smem__region_open(name, SMEM_KIND_RING, opts, &reg);
	if (err)
		return err;
	err = smem__ring_attach(reg, ret);
	if (err)
		smem_region_close(reg);
	return err;
}

void smem_ring_close(struct smem_ring *r)
{
	pid_t me;

	if (!r)
		return;
	/*
	 * A forked child closing the handle it inherited: the bridge thread runs in the parent
	 * only (joining its stale copy would be undefined), and the owner is the parent, so the
	 * child's close is not the owner going away (as smem_region_close decides).
	 */
	me = getpid();
	if (r->bridge_on && r->bridge_pid == me) {
		/* Release: pairs with the bridge's acquire load. */
		atomic_store_explicit(&r->bridge_stop, true, memory_order_release);
		wake(r, &r->shm->data_seq);
		pthread_join(r->bridge, NULL);
	}
	if (r->efd >= 0)
		close(r->efd);
	if (r->reg->owner && r->reg->pid == me) {
		/* Release: pairs with is_shutdown(); then every waiter wakes and sees it. */
		atomic_store_explicit(r->shutdown, 1, memory_order_release);
		wake(r, &r->shm->data_seq);
		wake(r, &r->shm->room_seq);
	}
	pthread_mutex_destroy(&r->fd_lock);
	smem_region_close(r->reg);	/* leaves our participant slot: claims we hold are dead */
	free(r);
}
