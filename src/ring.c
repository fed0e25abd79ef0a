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
 *                       and a full barrier before reading data_seq, see waiting].
 *                       (p,X≠0) or seq ahead by 1..n: position p is taken: help tail, reload.
 *                       seq behind by n or n-1: the node still holds position p-n: full.
 * Reader at head = p:   state (p+1,0): CAS -> (p+1,R) [acquire: pairs with the commit], CAS
 *                       head p -> p+1 [release], read, CAS (p+1,R) -> (p+n,0) [seq_cst, as
 *                       the commit, pairing with the next writer's claim and room_seq].
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
 * WAITING (an event count, as concurrencykit's ck_ec): data_seq for readers, room_seq for
 * writers; bit 31 of each (SMEM__RING_SLEEPERS) says "somebody announced a sleep since the
 * last wake", bits 0-30 count wakes. A waiter counts itself in *_waiters (for observers only),
 * sets the flag with a seq_cst fetch_or and fences, re-checks the ring, and sleeps with
 * FUTEX_WAIT(seq, the value with the flag). A committer (releaser) does its state CAS
 * (seq_cst) and then loads the sequence word (seq_cst); only if the flag is set does it CAS
 * the word to (count + 1, flag clear) and FUTEX_WAKE everyone. The two seq_cst pairs form a
 * Dekker handshake: either the waiter's re-check sees the new state, or the committer sees
 * the flag and the changed word makes the waiter's FUTEX_WAIT return at once. No waiter, no
 * system call; and one wake per announcement, not one per message: the committers that come
 * while a woken waiter is still on its way back to the CPU find the flag clear. (Version 1
 * woke whenever the waiter count was non-zero, and a waiter stays counted until it runs
 * again: a writer streaming into a ring whose reader had just been woken paid a FUTEX_WAKE
 * per message for tens of microseconds.) A waiter that leaves without being woken (its
 * re-check or a spin found what it wanted, or it timed out) leaves the flag set: the next
 * commit makes one needless wake, which is also all that a waiter killed while announced
 * costs. A committer that saw the flag but finds it cleared by another waker skips the wake:
 * the sleepers are that waker's, and a waiter that sets the flag again comes after our load
 * in the total order, so its re-check sees our state.
 * Sleeps are bounded (50 ms, 5 ms while a peer holds the node we wait for) so that claims of
 * dead peers are noticed even when nobody wakes us. The spin and this sleep loop are the wait
 * engine's one loop (smem__wait_for(), wait.c); this file gives it the attempts and the
 * arming (announce, load, re-check), and a single word is one FUTEX_WAIT on every backend.
 *
 * HOW LONG TO SPIN before announcing and sleeping (private to each handle, nothing shared):
 * a fixed smem_ring_set_spin() value, or by default (SMEM_RING_SPIN_AUTO) a budget learned
 * per direction. A wait measures the time t from its first failed attempt to its success
 * (spinning or after a sleep and wakeup); the next wait spins max(base 20 us, learned), the
 * learned budget rising to 1.25 t at once and falling by an eighth of the gap per quicker
 * wait, bounded by a cap of 1 ns per node byte within [20 us, 1 ms]; a wait longer than the
 * cap or a timeout resets it to the base (smem__spin_next() in wait.h). A stream of
 * 1 MiB messages, each a ~200 us copy apart, is then caught spinning instead of paying a
 * futex sleep, a futex wake by the committer and a cross-core wakeup per message; an idle
 * ring costs one cap of spinning, then sleeps as before. Spinning announces nothing, so the
 * handshake above and its guarantees (no system call without a sleeper, no lost wakeup,
 * shutdown and recovery seen by the sleep loop) are unchanged; a spin is only a longer run of
 * attempts before it.
 *
 * POLLS. A timeout-0 read (or reserve_read) first loads the head and its node's state: (p, 0),
 * nothing committed and no claim, is the one case where the full attempt would also say
 * "empty" with nothing to recover, so it returns at once (-ETIMEDOUT, or -ESHUTDOWN); the node
 * index comes from the private geometry, and every other state takes the full path.
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
 *
 * FILES. This file holds the protocol: claims, commits, releases, recovery and the ring's own
 * waits. ring_wait.c: waiting from outside (the contract with rpc.c, the eventfd bridge);
 * ring_open.c: create, open, close, fork and the accessors; ring_core_int.h: what they share.
 */
#include <limits.h>
#include <string.h>

#include "ring_core_int.h"

#define STUCK_NS	2000000ull	/* a claim unchanged this long gets a liveness check */
#define MAX_TRIES	(1u << 16)	/* CAS retries in one attempt before reporting "busy" */

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

/* The event count after a wake: bits 0-30 bumped, the sleepers flag clear. */
static inline uint32_t next_seq(uint32_t s)
{
	return (s + 1) & ~SMEM__RING_SLEEPERS;
}

/* The system call and its bookkeeping, once @seq has been moved on from every sleeper's value. */
static void wake_sleepers(struct smem_ring *r, _Atomic uint32_t *seq)
{
	smem__futex_wake(seq, INT_MAX);
	/*
	 * After the wake returned: whoever slept on @seq from an older value has been woken by
	 * now (or saw the new value when it armed). The RPC's missed-wakeup count reads it to
	 * tell a wake that came during a sleep from one that came after its timer (rpc_wait.c).
	 * A vDSO clock read beside the futex system call this path makes anyway.
	 */
	atomic_store_explicit(seq == &r->shm->data_seq ? &r->shm->data_wake_ns :
			      &r->shm->room_wake_ns, smem__now_ns(), memory_order_relaxed);
	smem__ring_stat_inc(&r->wakes);
}

/* Wake everyone asleep on @seq, announced or not (close, recovery): bump it and FUTEX_WAKE. */
static void wake(struct smem_ring *r, _Atomic uint32_t *seq)
{
	uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);

	/*
	 * Release: pairs with the acquire half of the waiter's fetch_or in smem__ring_announce().
	 * A waiter whose value comes from this bump (or later) also sees the state change
	 * (commit, release, recovery, shutdown) that led to this wake, or it would sleep on a
	 * value nobody bumps again (until its bounded timeout).
	 */
	while (!atomic_compare_exchange_weak_explicit(seq, &s, next_seq(s), memory_order_release,
						      memory_order_relaxed))
		;
	wake_sleepers(r, seq);
}

/*
 * After a commit, release or abort (a seq_cst CAS of a node state): wake the sleepers of @seq
 * if any announced since the last wake. Only the first such waker clears the flag and makes
 * the system call; the others find it clear, so a sleeper that takes long to run again is
 * woken once, not once per message committed meanwhile.
 */
static inline void wake_if(struct smem_ring *r, _Atomic uint32_t *seq)
{
	/*
	 * seq_cst: the committer's half of the Dekker handshake with smem__ring_announce()'s
	 * seq_cst fetch_or: our state CAS (seq_cst) comes before this load, so either this load
	 * sees the flag, or the waiter's re-check sees our state.
	 */
	uint32_t s = atomic_load_explicit(seq, memory_order_seq_cst);

	while (smem__unlikely(s & SMEM__RING_SLEEPERS)) {
		/*
		 * Release: as in wake(). On failure, a value without the flag means another waker
		 * cleared it and wakes those sleepers; a waiter that sets it again comes after our
		 * load in the total order, so its re-check sees our state.
		 */
		if (atomic_compare_exchange_weak_explicit(seq, &s, next_seq(s),
							  memory_order_release,
							  memory_order_relaxed)) {
			wake_sleepers(r, seq);
			return;
		}
	}
}

/* ---- one attempt, never a system call ------------------------------------------------ */

/* Claim a node for writing (or, with op->peek, only tell whether one is free). 0 or -EAGAIN (full),
 * -EPROTO. */
static int try_write(struct smem_ring *r, struct smem__ring_op *op, struct smem__ring_obs *ob)
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
static int try_read(struct smem_ring *r, struct smem__ring_op *op, struct smem__ring_obs *ob)
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

static inline int try_op(struct smem_ring *r, struct smem__ring_op *op, struct smem__ring_obs *ob)
{
	return op->write ? try_write(r, op, ob) : try_read(r, op, ob);
}

/*
 * A claim blocks us. If it has not changed for STUCK_NS (as seen by this handle), ask the
 * kernel whether its owner lives; if not, recover the node. Returns true when the node
 * changed (recovered by us or anybody), so that the caller tries again at once.
 */
static bool stuck_recover(struct smem_ring *r, struct smem__ring_stuck *st,
			  const struct smem__ring_obs *ob)
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
	nd = smem__ring_node_at(r, ob->pos);
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

/*
 * A wait of the ring for data or room, in the wait engine's loop (wait.h): the looks are
 * attempts; arming announces on *_waiters, loads the event count and tries once more (the
 * WAITING handshake above), then sleeps on the count, bounded so that stuck claims are
 * looked at again.
 */
struct ring_wait {
	struct smem__waiter w;		/* first: the callbacks get &rw->w */
	struct smem_ring *r;
	struct smem__ring_op *op;
	struct smem__ring_obs ob;
	struct smem__ring_stuck *st;
	_Atomic uint32_t *seqw, *waiters;
	struct smem__wait_set set;
	struct smem__wait_item item;
};

static int rw_poll(struct smem__waiter *w)
{
	struct ring_wait *rw = (struct ring_wait *)w;

	return try_op(rw->r, rw->op, &rw->ob);
}

static int rw_arm(struct smem__waiter *w, uint64_t *max_ns)
{
	struct ring_wait *rw = (struct ring_wait *)w;
	struct smem_ring *r = rw->r;
	uint32_t v = smem__ring_announce(rw->waiters, rw->seqw);
	uint64_t cap;
	int ret;

	ret = try_op(r, rw->op, &rw->ob);
	if (ret == -EAGAIN && rw->ob.held && stuck_recover(r, rw->st, &rw->ob))
		ret = try_op(r, rw->op, &rw->ob);
	if (ret != -EAGAIN)
		return ret;
	if (smem__ring_is_shutdown(r))
		return -ESHUTDOWN;
	smem__wait_set_init(&rw->set, &rw->item, 1);
	smem__wait_set_word(&rw->set, rw->seqw, v);
	cap = rw->ob.held ? SMEM__RING_RECHECK_NS : SMEM__RING_IDLE_SLEEP_NS;
	if (*max_ns > cap)
		*max_ns = cap;
	return -EAGAIN;
}

static void rw_disarm(struct smem__waiter *w, int fired)
{
	struct ring_wait *rw = (struct ring_wait *)w;

	if (fired >= 0)
		smem__ring_stat_inc(&rw->r->sleeps);
	atomic_fetch_sub_explicit(rw->waiters, 1, memory_order_relaxed);
}

static int wait_op(struct smem_ring *r, struct smem__ring_op *op, int timeout_ms)
{
	struct ring_wait rw;
	int ret;

	ret = smem__ring_check_fork(r);
	if (smem__unlikely(ret))
		return ret;
	ret = try_op(r, op, &rw.ob);
	if (smem__likely(ret != -EAGAIN))
		return ret;
	/* Rate-limited by STUCK_NS: a polling caller pays one fcntl per 2 ms at most. */
	rw.st = op->write ? &r->wstuck : &r->rstuck;
	if (rw.ob.held && stuck_recover(r, rw.st, &rw.ob)) {
		ret = try_op(r, op, &rw.ob);
		if (ret != -EAGAIN)
			return ret;
	}
	if (smem__ring_is_shutdown(r))
		return -ESHUTDOWN;
	if (timeout_ms == 0)
		return -ETIMEDOUT;
	smem__ring_stat_inc(op->write ? &r->full_waits : &r->empty_waits);
	rw.w.poll = rw_poll;
	rw.w.arm = rw_arm;
	rw.w.disarm = rw_disarm;
	rw.w.set = &rw.set;
	rw.w.spin = smem__ring_spin(r, op->write);
	rw.w.deadline = smem__deadline(timeout_ms);
	rw.r = r;
	rw.op = op;
	rw.seqw = op->write ? &r->shm->room_seq : &r->shm->data_seq;
	rw.waiters = op->write ? &r->shm->room_waiters : &r->shm->data_waiters;
	return smem__wait_for(&rw.w);
}

/*
 * A poll (timeout 0) of an empty ring, in two loads: the head, then its node, still (p, 0):
 * nothing committed and nobody holding it. Exactly the state in which try_read() reports
 * "empty" with no claim to recover, so the answer is the one wait_op() would give; any other
 * state (data, a claim, corruption) takes the full path. The node index comes from the
 * private geometry. No fork check: nothing is claimed.
 */
static inline bool empty_now(const struct smem_ring *r)
{
	/* Acquire: pairs with the release of head bumps, as in try_read(). */
	uint64_t pos = atomic_load_explicit(&r->shm->head, memory_order_acquire);

	/* Acquire: pairs with the commit (release), as in try_read(). */
	return atomic_load_explicit(&smem__ring_node_at(r, pos)->state, memory_order_acquire) ==
	       mkst(pos, 0);
}

static inline int poll_empty(const struct smem_ring *r)
{
	return smem__ring_is_shutdown(r) ? -ESHUTDOWN : -ETIMEDOUT;
}

/* ---- commit and release ----------------------------------------------------------------- */

static int commit_at(struct smem_ring *r, uint64_t pos, uint32_t idx, uint32_t len)
{
	struct smem_ring_node *nd = &r->nodes[idx];
	uint64_t e = mkst(pos, r->id);

	atomic_store_explicit(&nd->len, len, memory_order_relaxed);
	/*
	 * seq_cst: the release half pairs with the readers' acquire load of the state (len and
	 * payload visible); the full barrier orders it before wake_if()'s load of data_seq
	 * (Dekker with the waiter's fetch_or + fence in smem__ring_announce()).
	 */
	if (!atomic_compare_exchange_strong_explicit(&nd->state, &e, mkst(pos + 1, 0),
						     memory_order_seq_cst, memory_order_relaxed))
		return corrupt(r);	/* somebody took our claim: only a scribbler does that */
	smem__ring_stat_inc(&r->written);
	wake_if(r, &r->shm->data_seq);
	return 0;
}

static int release_at(struct smem_ring *r, uint64_t pos, uint32_t idx)
{
	struct smem_ring_node *nd = &r->nodes[idx];
	uint64_t e = mkst(pos + 1, r->id);

	/*
	 * seq_cst: release pairs with the next writer's acquire claim; the full barrier orders it
	 * before wake_if()'s load of room_seq (Dekker with the writers' announce).
	 */
	if (!atomic_compare_exchange_strong_explicit(&nd->state, &e, mkst(pos + r->n, 0),
						     memory_order_seq_cst, memory_order_relaxed))
		return corrupt(r);
	wake_if(r, &r->shm->room_seq);
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
	struct smem__ring_op op = { .write = true };
	int ret;

	if (!r || (!src && len))
		return -EINVAL;
	if (len > r->size)
		return -EMSGSIZE;
	if (smem__ring_is_shutdown(r))
		return -ESHUTDOWN;
	ret = wait_op(r, &op, timeout_ms);
	if (ret)
		return ret;
	if (len)
		memcpy(smem__ring_payload(r, op.idx), src, len);
	return commit_at(r, op.pos, op.idx, (uint32_t)len);
}

/* The read past the argument checks and the poll of an empty ring: kept out of line so that
 * a poll pays no frame for it. */
static __attribute__((noinline)) ssize_t read_op(struct smem_ring *r, void *dst, size_t cap,
						  int timeout_ms)
{
	struct smem__ring_op op = { .write = false, .cap = cap };
	ssize_t len;
	int ret;

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
		memcpy(dst, smem__ring_payload(r, op.idx), (size_t)len);
	ret = release_at(r, op.pos, op.idx);
	smem__ring_stat_inc(&r->nread);
	return ret ? ret : len;
}

ssize_t smem_ring_read(struct smem_ring *r, void *dst, size_t cap, int timeout_ms)
{
	if (!r || (!dst && cap))
		return -EINVAL;
	if (timeout_ms == 0 && empty_now(r))
		return poll_empty(r);
	return read_op(r, dst, cap, timeout_ms);
}

ssize_t smem_ring_next_len(struct smem_ring *r)
{
	struct smem__ring_op op = { .peek = true };
	struct smem__ring_obs ob;
	int ret;

	if (!r)
		return -EINVAL;
	ret = try_read(r, &op, &ob);
	return ret ? ret : op.len;
}

int smem_ring_reserve_write(struct smem_ring *r, struct smem_ring_slot *slot, int timeout_ms)
{
	struct smem__ring_op op = { .write = true };
	int ret;

	if (!r || !slot)
		return -EINVAL;
	if (smem__ring_is_shutdown(r))
		return -ESHUTDOWN;
	ret = wait_op(r, &op, timeout_ms);
	if (ret)
		return ret;
	slot->_node = op.idx;
	slot->data = smem__ring_payload(r, op.idx);
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
	wake_if(r, &r->shm->data_seq);
	wake_if(r, &r->shm->room_seq);
	return 0;
}

static __attribute__((noinline)) int reserve_read_op(struct smem_ring *r,
						      struct smem_ring_slot *slot, int timeout_ms)
{
	struct smem__ring_op op = { .write = false, .cap = SIZE_MAX };
	ssize_t len;
	int ret;

	ret = wait_op(r, &op, timeout_ms);
	if (ret)
		return ret;
	len = claimed_len(r, op.pos, op.idx);
	if (len < 0)
		return (int)len;
	slot->_node = op.idx;
	slot->data = smem__ring_payload(r, op.idx);
	slot->len = (size_t)len;
	slot->cap = r->size;
	slot->_pos = op.pos;
	slot->_reserved = SLOT_READ;
	return 0;
}

int smem_ring_reserve_read(struct smem_ring *r, struct smem_ring_slot *slot, int timeout_ms)
{
	if (!r || !slot)
		return -EINVAL;
	if (timeout_ms == 0 && empty_now(r))
		return poll_empty(r);
	return reserve_read_op(r, slot, timeout_ms);
}

int smem_ring_release(struct smem_ring *r, struct smem_ring_slot *slot)
{
	int ret;

	if (!r || !slot_ok(r, slot, SLOT_READ))
		return -EINVAL;
	slot->_reserved = SLOT_NONE;
	ret = release_at(r, slot->_pos, slot->_node);
	if (!ret)
		smem__ring_stat_inc(&r->nread);
	return ret;
}

/* ---- for ring_wait.c and ring_open.c (ring_core_int.h) ------------------------------------ */

int smem__ring_try(struct smem_ring *r, struct smem__ring_op *op, struct smem__ring_obs *ob)
{
	return try_op(r, op, ob);
}

bool smem__ring_recover(struct smem_ring *r, struct smem__ring_stuck *st,
			const struct smem__ring_obs *ob)
{
	return stuck_recover(r, st, ob);
}

void smem__ring_wake(struct smem_ring *r, _Atomic uint32_t *seq)
{
	wake(r, seq);
}
