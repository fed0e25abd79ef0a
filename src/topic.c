/* SPDX-License-Identifier: MIT */
/*
 * smem_topic: publish/subscribe with zero-copy loans. This file holds the protocol; the
 * layout is in topic_int.h (docs/LAYOUT.md), create/open/close in topic_open.c.
 *
 * THE PARTS. A pool of `pool` sample buffers in the samples memfd (read-only to subscribers),
 * and in the control memfd: one state word and length per buffer, a ring of `depth` entries
 * mapping a position to the buffer published there, the position counter `tail`, a publish
 * lock (lock.c's robust lock), and one slot per subscriber (owner id, cursor, losses, the
 * buffers of the views it holds). pool = depth + max_subs * views + loans + 1, so a buffer
 * that is free, or can be reclaimed, always exists while loans stay within `loans`.
 *
 * BUFFER STATES (64-bit word): 0 free; LOAN|owner, loaned to the publisher with that owner
 * id; PUB|p, published at position p.
 *
 * PUBLISH (under the publish lock): state = PUB|t (release), entry[t % depth] = b (release:
 * the commit), tail = t + 1 (seq_cst). A publisher killed before the entry store leaves a
 * buffer in PUB|t that no entry names, reclaimed like any other once t is a lap behind; one
 * killed between the entry and tail leaves position t committed. The robust lock tells the
 * next publisher (-EOWNERDEAD), which then looks: if entry[t % depth] names a buffer in
 * PUB|t, it stores tail = t + 1 for it (helping) instead of overwriting, and goes on.
 *
 * RECEIVE at cursor c. Fast path, no read of tail: b = entry[c % depth] (acquire, pairs with
 * the commit) and b's state is PUB|c: c is committed, hold it. A look of a spin (not armed
 * for a sleep, not a timeout-0 call's) that finds b's state PUB|p with p < c says "nothing
 * yet" there too: a spinning subscriber reads the entry's line, not tail's. Else read tail:
 * c >= tail is "nothing yet" (c may be tail + 1 while a publisher is between its commit and
 * tail); if tail - c > depth the samples in between were overwritten (OVERWRITE only): skip
 * to tail - depth, counting each skipped one as lost; then hold entry[c % depth]'s buffer,
 * or count c lost if it no longer holds c. A hold: held[k] = b + 1 (seq_cst), then load b's
 * state (seq_cst); still PUB|c: the view is ours until released. A RECLAIM by a publisher:
 * CAS PUB|p -> LOAN|me (seq_cst), then load every live slot's held words (seq_cst); if one
 * names b, put it back. The two seq_cst store/load pairs are a Dekker handshake: either the
 * subscriber sees the LOAN and lets go, or the publisher sees the hold and lets go, never
 * neither. A publisher only reclaims PUB|p when p + depth <= tail (its entry is being or was
 * overwritten). A release stores held[k] = 0 (release: the reads of the view come first) and
 * wakes nobody: the pool has room for every subscriber's views, so no loan waits for one.

 * POLICIES. OVERWRITE: a loan never waits for subscribers. BLOCK: a loan (and a publish)
 * waits until tail - cursor < depth for every live subscriber, so a reclaimed p was passed
 * by all of them; the minimum is cached (room_until) and rescanned only when reached, and
 * includes tail - history so that a late joiner's history is not reclaimed under it (a
 * joiner whose slot still shows a previous owner's cursor may lose history: counted).
 *
 * LOSSES are counted by the subscriber itself, one per position it skipped: exact.
 *
 * WAITING. Subscribers on data_seq/data_waiters, publishers on room_seq/room_waiters, as the
 * ring does (ring.c, WAITING): announce (seq_cst), load the word, re-check, sleep on it;
 * wakers store (seq_cst), then load the waiter count and only then bump and FUTEX_WAKE. The
 * loop is the wait engine's (smem__wait_for()). Subscribers spin SUB_SPIN_NS first; publishers
 * sleep at once (topic_wait() says why). A subscriber wakes a sleeping publisher only once it
 * is at most half the depth behind, so that each wakeup publishes a batch.
 *
 * CRASHES. A publisher killed holding loans: its LOAN|id states are freed by a publisher
 * that finds no buffer, after smem__live_alive(id) says dead (rate-limited to one pass per
 * 2 ms). A subscriber killed holding views or lagging: its slot (owner id) is evicted by a
 * publisher that needs its buffers or waits for it, after the same check; its held words
 * count for nothing once the owner is 0.
 *
 * HOSTILE MEMORY. Positions map to entries modulo the private depth; buffer indices read
 * from entries and slots are checked against the private pool; lengths against the private
 * sample size; a tail that goes backwards, or a cursor beyond tail, is corruption: -EPROTO
 * and the corruptions counter.
 */
#include <limits.h>
#include <string.h>

#include "topic_int.h"
#include "wait.h"

#define STUCK_NS	2000000ull		/* a laggard or an empty pool this long: liveness */
#define IDLE_SLEEP_NS	(50ull * 1000 * 1000)	/* bounded sleeps notice shutdown and the dead */
#define RECHECK_NS	(5ull * 1000 * 1000)
#define SUB_SPIN_NS	20000u			/* a subscriber's spin before it sleeps */

static int corrupt(struct smem__topic *t)
{
	atomic_fetch_add_explicit(&t->shm->corruptions, 1, memory_order_relaxed);
	return -EPROTO;
}

static bool is_shutdown(const struct smem__topic *t)
{
	/* Acquire: pairs with the creator's release store at close. */
	return atomic_load_explicit(&t->ctl->hdr->shutdown, memory_order_acquire) != 0;
}

/* After a seq_cst store of the state the waiter re-checks: wake it if it announced. */
static void wake_if(_Atomic uint32_t *waiters, _Atomic uint32_t *seqw)
{
	if (atomic_load_explicit(waiters, memory_order_seq_cst) == 0)
		return;
	/* Release: a waiter that loads the bumped word also sees the change (ring.c, wake()). */
	atomic_fetch_add_explicit(seqw, 1, memory_order_release);
	smem__futex_wake(seqw, INT_MAX);
}

static uint32_t announce(_Atomic uint32_t *waiters, _Atomic uint32_t *seqw)
{
	atomic_fetch_add_explicit(waiters, 1, memory_order_seq_cst);
	/* Pairs with the seq_cst store + waiter load of wake_if(). */
	atomic_thread_fence(memory_order_seq_cst);
	/* Acquire: pairs with wake_if()'s release bump. */
	return atomic_load_explicit(seqw, memory_order_acquire);
}

/* Read tail once, checked: positions are below 2^62. */
static int load_tail(struct smem__topic *t, uint64_t *out)
{
	/* Acquire: pairs with the publisher's store of tail; entries, states, lengths. */
	uint64_t v = atomic_load_explicit(&t->shm->tail, memory_order_acquire);

	if (v > SMEM_TOPIC_POS_MASK)
		return corrupt(t);
	*out = v;
	return 0;
}

/* ---- waits ---------------------------------------------------------------------------- */

/*
 * An attempt looks once: -EAGAIN for "not yet". @full: read every shared word the answer
 * depends on. Armed looks (we announced ourselves as a waiter) must, for the Dekker pair with
 * the wakers (see WAITING), and so must the only look of a timeout-0 call, which reports what
 * it finds wrong there; the looks of a spin may take cheaper shortcuts to "not yet", since the
 * armed look before any sleep checks everything again.
 */
typedef int (*topic_attempt)(void *ctx, bool full);

struct topic_wait {
	struct smem__waiter w;		/* first: the callbacks get &tw->w */
	topic_attempt attempt;
	void *ctx;
	struct smem__topic *t;
	_Atomic uint32_t *seqw, *waiters;
	uint64_t cap;
	struct smem__wait_set set;
	struct smem__wait_item item;
};

static int tw_poll(struct smem__waiter *w)
{
	struct topic_wait *tw = (struct topic_wait *)w;

	return tw->attempt(tw->ctx, false);
}

static int tw_arm(struct smem__waiter *w, uint64_t *max_ns)
{
	struct topic_wait *tw = (struct topic_wait *)w;
	uint32_t v = announce(tw->waiters, tw->seqw);
	int ret = tw->attempt(tw->ctx, true);

	if (ret != -EAGAIN)
		return ret;
	if (is_shutdown(tw->t))
		return -ESHUTDOWN;
	smem__wait_set_init(&tw->set, &tw->item, 1);
	smem__wait_set_word(&tw->set, tw->seqw, v);
	if (*max_ns > tw->cap)
		*max_ns = tw->cap;
	return -EAGAIN;
}

static void tw_disarm(struct smem__waiter *w, int fired)
{
	struct topic_wait *tw = (struct topic_wait *)w;

	(void)fired;
	atomic_fetch_sub_explicit(tw->waiters, 1, memory_order_relaxed);
}

/* Try @attempt, then wait in the engine's loop until it stops saying -EAGAIN. */
static int topic_wait(struct smem__topic *t, bool room, topic_attempt attempt, void *ctx,
		      int timeout_ms)
{
	struct topic_wait tw;
	int ret = attempt(ctx, timeout_ms == 0);

	if (ret != -EAGAIN)
		return ret;
	if (is_shutdown(t))
		return -ESHUTDOWN;
	if (timeout_ms == 0)
		return -ETIMEDOUT;
	tw.w.poll = tw_poll;
	tw.w.arm = tw_arm;
	tw.w.disarm = tw_disarm;
	tw.w.set = &tw.set;
	/*
	 * Subscribers spin before sleeping; publishers waiting for room or a buffer do not. The
	 * room they wait for is made by the slowest subscriber, which wakes a sleeping publisher
	 * once it is at most half the depth behind (try_recv()), so that each wakeup publishes a
	 * batch. A spinning publisher instead takes each slot as soon as it frees (one sample
	 * per hand-over), rescans the subscribers' cursor lines on every look (stealing them
	 * from the laggard that writes them on every receive), and, with more processes than
	 * cores, burns the CPU that laggard needs. Measured in bench/results/2026-12-03-topic-
	 * speed.md: 8 MiB samples, depth 8, 2 subscribers on 2 cores, load 1: 43-45k samples/s
	 * with a 20 us spin against 144-146k without (mixed at load 3, better at load 6).
	 */
	tw.w.spin = (struct smem__spin){ .ns = room ? 0 : SUB_SPIN_NS };
	tw.w.deadline = smem__deadline(timeout_ms);
	tw.attempt = attempt;
	tw.ctx = ctx;
	tw.t = t;
	tw.seqw = room ? &t->shm->room_seq : &t->shm->data_seq;
	tw.waiters = room ? &t->shm->room_waiters : &t->shm->data_waiters;
	tw.cap = room ? RECHECK_NS : IDLE_SLEEP_NS;
	return smem__wait_for(&tw.w);
}

/*
 * For pollers (topic_poll.c): a subscriber's sleep as a blocked receive takes it, without the
 * sleep. Announce on data_waiters and load data_seq (*word, *val), then look: 0 when there
 * is nothing to receive (the announcement stays up until smem__topic_sub_wait_done()),
 * -EAGAIN when a receive would not wait (a sample, a loss to count, corruption to report)
 * and -ESHUTDOWN when the topic is shut; on both, nothing stays announced. Looking at tail
 * after the announcement is the Dekker pair with publish's seq_cst store of tail and its
 * load of data_waiters (wake_if()); the entry at our cursor is looked at too, so that a
 * commit whose publisher died before storing tail (nobody will wake us for it) counts.
 */
int smem__topic_sub_wait_prepare(struct smem_topic_sub *s, _Atomic uint32_t **word,
				 uint32_t *val)
{
	struct smem__topic *t = &s->t;
	uint64_t tail, c = s->cursor;
	uint32_t v = announce(&t->shm->data_waiters, &t->shm->data_seq), b;
	bool ready = true;	/* a sample or a loss (tail > c), or corruption: receive tells */
	int ret;

	if (load_tail(t, &tail) == 0 && tail <= c) {
		/* Acquire: pairs with the commit's release store, as try_recv()'s fast path. */
		b = atomic_load_explicit(&t->entry[c % t->g.depth], memory_order_acquire);
		ready = b < t->g.pool && atomic_load_explicit(&t->buf[b].state,
							      memory_order_relaxed) ==
					 (SMEM_TOPIC_PUB | c);
	}
	ret = ready ? -EAGAIN : is_shutdown(t) ? -ESHUTDOWN : 0;
	if (ret) {
		smem__topic_sub_wait_done(s);
		return ret;
	}
	*word = &t->shm->data_seq;
	*val = v;
	return 0;
}

void smem__topic_sub_wait_done(struct smem_topic_sub *s)
{
	atomic_fetch_sub_explicit(&s->t.shm->data_waiters, 1, memory_order_relaxed);
}

/* ---- publishers: recovery ------------------------------------------------------------- */

/* Remove a dead subscriber's slot. True if we did (or somebody else already had). */
static bool evict(struct smem_topic_pub *p, uint32_t i, uint32_t owner)
{
	struct smem__topic *t = &p->t;
	struct smem_topic_slot *sl = &t->slot[i];
	uint32_t e = owner;
	unsigned k;

	if (owner == 0 || smem__live_alive(t->ctl, owner))
		return false;
	if (!atomic_compare_exchange_strong_explicit(&sl->owner, &e, 0, memory_order_acq_rel,
						     memory_order_relaxed))
		return e != owner;
	/* Held words of a free slot count for nothing; cleared for whoever joins next. */
	for (k = 0; k < SMEM_TOPIC_MAX_VIEWS; k++)
		atomic_store_explicit(&sl->held[k], 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->shm->evicted, 1, memory_order_relaxed);
	return true;
}

/* Free dead publishers' loans and evict dead subscribers: at most once per STUCK_NS. */
static bool recover(struct smem_topic_pub *p)
{
	struct smem__topic *t = &p->t;
	uint64_t now = smem__now_ns();
	bool any = false;
	uint32_t i;

	if (p->stuck_since == 0 || now - p->stuck_since < STUCK_NS) {
		if (p->stuck_since == 0)
			p->stuck_since = now;
		return false;
	}
	p->stuck_since = now;
	for (i = 0; i < t->g.pool; i++) {
		uint64_t st = atomic_load_explicit(&t->buf[i].state, memory_order_relaxed);
		uint32_t o = (uint32_t)st;

		if (!(st & SMEM_TOPIC_LOAN) || (st & SMEM_TOPIC_PUB) || o == t->ctl->live_id ||
		    smem__live_alive(t->ctl, o))
			continue;
		if (atomic_compare_exchange_strong_explicit(&t->buf[i].state, &st, 0,
							    memory_order_acq_rel,
							    memory_order_relaxed)) {
			atomic_fetch_add_explicit(&t->shm->recovered, 1, memory_order_relaxed);
			any = true;
		}
	}
	for (i = 0; i < t->g.max_subs; i++)
		any |= evict(p, i, atomic_load_explicit(&t->slot[i].owner, memory_order_relaxed));
	return any;
}

/* ---- publishers: room, loans, publish --------------------------------------------------- */

/*
 * BLOCK: is there room to publish position @tail? Rescans the slots only when the cached
 * bound is reached; a laggard stuck for STUCK_NS gets a liveness check. 1, 0, -EPROTO.
 */
static int room_for(struct smem_topic_pub *p, uint64_t tail)
{
	struct smem__topic *t = &p->t;
	uint64_t lo = tail >= t->g.history ? tail - t->g.history : 0;
	uint32_t i, lag_i = UINT32_MAX, lag_o = 0;

	if (t->g.policy != SMEM_TOPIC_BLOCK || tail < p->room_until)
		return 1;
	for (i = 0; i < t->g.max_subs; i++) {
		struct smem_topic_slot *sl = &t->slot[i];
		uint32_t o = atomic_load_explicit(&sl->owner, memory_order_acquire);
		uint64_t c;

		if (o == 0)
			continue;
		/* Acquire: pairs with the subscriber's release of its cursor (after its holds). */
		c = atomic_load_explicit(&sl->cursor, memory_order_acquire);
		if (c > tail + 1)	/* a subscriber may be one ahead: see RECEIVE */
			return corrupt(t);
		if (c < lo) {
			lo = c;
			lag_i = i;
			lag_o = o;
		}
	}
	p->room_until = lo + t->g.depth;
	if (tail < p->room_until) {
		p->stuck_since = 0;
		return 1;
	}
	/* A laggard that stays put: evict it if it is dead. */
	if (lag_i != UINT32_MAX && p->stuck_since &&
	    smem__now_ns() - p->stuck_since >= STUCK_NS) {
		p->stuck_since = smem__now_ns();
		if (evict(p, lag_i, lag_o))
			p->room_until = 0;	/* rescan at once */
	} else if (!p->stuck_since) {
		p->stuck_since = smem__now_ns();
	}
	return 0;
}

/* Does any live subscriber hold a view of buffer @b? Loads are seq_cst: see RECEIVE. */
static bool held_anywhere(const struct smem__topic *t, uint32_t b)
{
	uint32_t i, k;

	for (i = 0; i < t->g.max_subs; i++) {
		const struct smem_topic_slot *sl = &t->slot[i];

		for (k = 0; k < t->g.views; k++) {
			if (atomic_load_explicit(&sl->held[k], memory_order_seq_cst) == b + 1 &&
			    atomic_load_explicit(&sl->owner, memory_order_relaxed) != 0)
				return true;
		}
	}
	return false;
}

struct loan_ctx {
	struct smem_topic_pub *p;
	struct smem_topic_sample *s;
};

static int try_loan(void *arg, bool full)
{
	struct loan_ctx *lc = arg;
	struct smem_topic_pub *p = lc->p;
	struct smem__topic *t = &p->t;
	uint64_t me = SMEM_TOPIC_LOAN | t->ctl->live_id, tail;
	uint32_t n, b = 0;
	int ret;

	(void)full;	/* every look reads tail and the cursors */
	ret = load_tail(t, &tail);
	if (ret)
		return ret;
	ret = room_for(p, tail);
	if (ret <= 0)
		return ret < 0 ? ret : -EAGAIN;
	for (n = 0; n < t->g.pool; n++) {
		uint64_t st;

		b = p->hint + n;
		if (b >= t->g.pool)
			b -= t->g.pool;
		st = atomic_load_explicit(&t->buf[b].state, memory_order_relaxed);
		if (st == 0) {
			/* Acquire: pairs with the release that freed it (discard, recovery). */
			if (atomic_compare_exchange_strong_explicit(&t->buf[b].state, &st, me,
								    memory_order_acquire,
								    memory_order_relaxed))
				goto got;
			continue;
		}
		if (!(st & SMEM_TOPIC_PUB) || (st & SMEM_TOPIC_POS_MASK) + t->g.depth > tail)
			continue;
		/* Reclaim: seq_cst CAS, then seq_cst loads of the holds (see RECEIVE). */
		if (!atomic_compare_exchange_strong_explicit(&t->buf[b].state, &st, me,
							     memory_order_seq_cst,
							     memory_order_relaxed))
			continue;
		if (!held_anywhere(t, b))
			goto got;
		/* Somebody reads it: put it back as it was. */
		atomic_store_explicit(&t->buf[b].state, st, memory_order_release);
	}
	if (recover(p))
		return try_loan(arg, full);
	return -EAGAIN;
got:
	p->hint = b + 1 < t->g.pool ? b + 1 : 0;
	p->stuck_since = 0;
	lc->s->data = t->base + (size_t)b * t->g.stride;
	lc->s->view = NULL;
	lc->s->len = 0;
	lc->s->cap = (size_t)t->g.sample_size;
	lc->s->seq = 0;
	lc->s->_buf = b;
	lc->s->_reserved = 0;
	return 0;
}

int smem_topic_loan(struct smem_topic_pub *p, struct smem_topic_sample *s, int timeout_ms)
{
	struct loan_ctx lc = { p, s };

	if (!p || !s)
		return -EINVAL;
	if (is_shutdown(&p->t))
		return -ESHUTDOWN;
	return topic_wait(&p->t, true, try_loan, &lc, timeout_ms);
}

/* Is @s a loan of @p's process? Its buffer index, or -EINVAL. */
static int loaned(struct smem_topic_pub *p, const struct smem_topic_sample *s)
{
	struct smem__topic *t = &p->t;
	uint32_t b;

	if (!s)
		return -EINVAL;
	b = s->_buf;
	if (b >= t->g.pool || s->data != t->base + (size_t)b * t->g.stride)
		return -EINVAL;
	if (atomic_load_explicit(&t->buf[b].state, memory_order_relaxed) !=
	    (SMEM_TOPIC_LOAN | t->ctl->live_id))
		return -EINVAL;
	return (int)b;
}

/*
 * Under the lock: a publisher killed between its commit (the entry) and its store of tail
 * left position *tail committed; finish its publish (tail + 1) rather than overwrite it.
 */
static int help_tail(struct smem__topic *t, uint64_t *tail)
{
	uint32_t b = atomic_load_explicit(&t->entry[*tail % t->g.depth], memory_order_acquire);

	if (b < t->g.pool &&
	    atomic_load_explicit(&t->buf[b].state, memory_order_acquire) ==
	    (SMEM_TOPIC_PUB | *tail)) {
		*tail += 1;
		if (*tail > SMEM_TOPIC_POS_MASK)
			return corrupt(t);
		atomic_store_explicit(&t->shm->tail, *tail, memory_order_seq_cst);
	}
	return 0;
}

struct room_ctx {
	struct smem_topic_pub *p;
};

static int try_room(void *arg, bool full)
{
	struct smem_topic_pub *p = ((struct room_ctx *)arg)->p;
	uint64_t tail;
	int ret = load_tail(&p->t, &tail);

	(void)full;	/* every look reads tail and the cursors */
	if (ret)
		return ret;
	ret = room_for(p, tail);
	return ret < 0 ? ret : ret ? 0 : -EAGAIN;
}

int smem_topic_publish(struct smem_topic_pub *p, struct smem_topic_sample *s, size_t len,
		       int timeout_ms)
{
	struct smem__topic *t;
	struct room_ctx rc = { p };
	uint64_t tail;
	bool dead;
	int b, ret;

	if (!p)
		return -EINVAL;
	t = &p->t;
	b = loaned(p, s);
	if (b < 0)
		return b;
	if (len > t->g.sample_size)
		return -EMSGSIZE;
	atomic_store_explicit(&t->buf[b].len, len, memory_order_relaxed);
	for (;;) {
		if (is_shutdown(t))
			return -ESHUTDOWN;
		ret = smem__lock_wrlock(&p->lock, timeout_ms);
		if (ret && ret != -EOWNERDEAD)
			return ret;	/* a dead holder's section left nothing half-done */
		dead = ret == -EOWNERDEAD;
		ret = load_tail(t, &tail);
		/*
		 * Only a holder killed in its section can have left a commit without its tail,
		 * and the robust lock tells its next acquirer exactly then (never a missed
		 * -EOWNERDEAD, lock.c): other publishes skip the look at the entry and its state.
		 */
		if (ret == 0 && dead)
			ret = help_tail(t, &tail);
		if (ret == 0)
			ret = room_for(p, tail);
		if (ret == 1)
			break;
		smem__lock_unlock(&p->lock);
		if (ret < 0)
			return ret;
		ret = topic_wait(t, true, try_room, &rc, timeout_ms);
		if (ret)
			return ret;
	}
	/* Release: the length and the sample's bytes before the state. */
	atomic_store_explicit(&t->buf[b].state, SMEM_TOPIC_PUB | tail, memory_order_release);
	/* The commit. Release: pairs with subscribers' acquire load of the entry. */
	atomic_store_explicit(&t->entry[tail % t->g.depth], (uint32_t)b, memory_order_release);
	/* seq_cst: pairs with subscribers' announce before we load data_waiters. */
	atomic_store_explicit(&t->shm->tail, tail + 1, memory_order_seq_cst);
	smem__lock_unlock(&p->lock);
	s->data = NULL;
	wake_if(&t->shm->data_waiters, &t->shm->data_seq);
	/* Other publishers may wait for a buffer this publish made reclaimable. */
	wake_if(&t->shm->room_waiters, &t->shm->room_seq);
	return 0;
}

int smem_topic_discard(struct smem_topic_pub *p, struct smem_topic_sample *s)
{
	int b;

	if (!p)
		return -EINVAL;
	b = loaned(p, s);
	if (b < 0)
		return b;
	/* Release: pairs with the acquire CAS of the next loan. */
	atomic_store_explicit(&p->t.buf[b].state, 0, memory_order_seq_cst);
	s->data = NULL;
	wake_if(&p->t.shm->room_waiters, &p->t.shm->room_seq);
	return 0;
}

void smem__topic_pub_drop_loans(struct smem_topic_pub *p)
{
	struct smem__topic *t = &p->t;
	uint64_t me = SMEM_TOPIC_LOAN | t->ctl->live_id;
	uint32_t i;

	if (!t->ctl->live_id)
		return;
	for (i = 0; i < t->g.pool; i++) {
		uint64_t e = me;

		atomic_compare_exchange_strong_explicit(&t->buf[i].state, &e, 0,
							memory_order_release, memory_order_relaxed);
	}
	atomic_thread_fence(memory_order_seq_cst);
	wake_if(&t->shm->room_waiters, &t->shm->room_seq);
}

/* ---- subscribers ------------------------------------------------------------------------ */

struct recv_ctx {
	struct smem_topic_sub *s;
	struct smem_topic_sample *out;
	unsigned k;			/* the free view index */
};

/* Skip @n positions: they were overwritten before we got to them. */
static void skip(struct smem_topic_sub *s, uint64_t n)
{
	s->lost += n;
	s->cursor += n;
	atomic_store_explicit(&s->me->lost, s->lost, memory_order_relaxed);
	atomic_store_explicit(&s->me->cursor, s->cursor, memory_order_release);
}

/*
 * Hold buffer @b for position @c: announce, then check that it still holds c (the handshake
 * with reclaims, RECEIVE). Its length on success, else -EAGAIN (the hold withdrawn).
 */
static int64_t hold(struct smem_topic_sub *s, unsigned k, uint32_t b, uint64_t c)
{
	struct smem__topic *t = &s->t;

	atomic_store_explicit(&s->me->held[k], b + 1, memory_order_seq_cst);
	if (atomic_load_explicit(&t->buf[b].state, memory_order_seq_cst) == (SMEM_TOPIC_PUB | c))
		return (int64_t)atomic_load_explicit(&t->buf[b].len, memory_order_relaxed);
	atomic_store_explicit(&s->me->held[k], 0, memory_order_release);
	return -EAGAIN;
}

static int try_recv(void *arg, bool full)
{
	struct recv_ctx *rc = arg;
	struct smem_topic_sub *s = rc->s;
	struct smem__topic *t = &s->t;
	struct smem_topic_slot *me = s->me;
	uint64_t tail, c = s->cursor, st;
	int64_t len = -EAGAIN;
	uint32_t b;
	int ret;

	/*
	 * Fast path, no read of tail: the entry (acquire: pairs with the commit's release)
	 * names a buffer whose state says position c, so c is committed.
	 */
	b = atomic_load_explicit(&t->entry[c % t->g.depth], memory_order_acquire);
	if (b < t->g.pool) {
		st = atomic_load_explicit(&t->buf[b].state, memory_order_relaxed);
		if (st == (SMEM_TOPIC_PUB | c))
			len = hold(s, rc->k, b, c);
		/*
		 * Not yet, still without tail: the entry names a sample of an earlier lap. Entries
		 * only move forward (position c's commit stores a buffer in PUB|c there, which is
		 * reclaimed only after c + depth's commit replaced it), so c is not committed yet,
		 * or was just now and the next look sees it. A spinning subscriber thus reads
		 * the entry's line, which the publisher writes with a plain store, and not the
		 * tail line, whose seq_cst store (a locked xchg) would wait for the line to come
		 * back on every publish. A full look reads tail (for an armed one, the Dekker pair
		 * with the publisher's tail store, WAITING): the slow path.
		 */
		else if (!full && (st & SMEM_TOPIC_PUB) && (st & SMEM_TOPIC_POS_MASK) < c)
			return -EAGAIN;
	}
	while (len < 0) {
		ret = load_tail(t, &tail);
		if (ret)
			return ret;
		c = s->cursor;
		/* One ahead of tail: we took the commit of a publisher still storing tail. */
		if (c >= tail)
			return c <= tail + 1 ? -EAGAIN : corrupt(t);
		if (tail - c > t->g.depth) {
			skip(s, tail - t->g.depth - c);
			continue;
		}
		b = atomic_load_explicit(&t->entry[c % t->g.depth], memory_order_acquire);
		if (b >= t->g.pool) {
			skip(s, 1);
			return corrupt(t);
		}
		len = hold(s, rc->k, b, c);
		if (len < 0)
			skip(s, 1);	/* overwritten since tail passed c: lost */
	}
	if ((uint64_t)len > t->g.sample_size) {
		atomic_store_explicit(&me->held[rc->k], 0, memory_order_release);
		skip(s, 1);
		return corrupt(t);
	}
	s->held[rc->k] = b + 1;
	s->received++;
	s->cursor = c + 1;
	atomic_store_explicit(&me->received, s->received, memory_order_relaxed);
	if (t->g.policy == SMEM_TOPIC_BLOCK) {
		/* seq_cst: a release for publishers' room scans, and before room_waiters. */
		atomic_store_explicit(&me->cursor, s->cursor, memory_order_seq_cst);
		/*
		 * Wake a waiting publisher once we are at most half the depth behind, not at
		 * each receive: it then publishes a batch per wakeup instead of one sample per
		 * context switch. Our lag only shrinks until it publishes, so the wake comes.
		 */
		if (atomic_load_explicit(&t->shm->room_waiters, memory_order_seq_cst) &&
		    atomic_load_explicit(&t->shm->tail, memory_order_relaxed) <=
		    s->cursor + t->g.depth / 2)
			wake_if(&t->shm->room_waiters, &t->shm->room_seq);
	} else {
		/* Release: for lag and statistics readers; nobody waits for it. */
		atomic_store_explicit(&me->cursor, s->cursor, memory_order_release);
	}
	rc->out->data = NULL;
	rc->out->view = t->base + (size_t)b * t->g.stride;
	rc->out->len = (size_t)len;
	rc->out->cap = (size_t)t->g.sample_size;
	rc->out->seq = c;
	rc->out->_buf = rc->k;
	rc->out->_reserved = 0;
	return 0;
}

int smem_topic_receive(struct smem_topic_sub *s, struct smem_topic_sample *out, int timeout_ms)
{
	struct recv_ctx rc = { s, out, 0 };

	if (!s || !out)
		return -EINVAL;
	while (rc.k < s->t.g.views && s->held[rc.k])
		rc.k++;
	if (rc.k == s->t.g.views)
		return -ENOBUFS;
	return topic_wait(&s->t, false, try_recv, &rc, timeout_ms);
}

int smem_topic_release(struct smem_topic_sub *s, struct smem_topic_sample *v)
{
	struct smem__topic *t;
	uint32_t k;

	if (!s || !v)
		return -EINVAL;
	t = &s->t;
	k = v->_buf;
	if (k >= t->g.views || !s->held[k] ||
	    v->view != t->base + (size_t)(s->held[k] - 1) * t->g.stride)
		return -EINVAL;
	s->held[k] = 0;
	/*
	 * Release: our reads of the sample come before its reuse. No wake: a loan never waits
	 * for a view (the pool has room for every subscriber's views, see PARTS).
	 */
	atomic_store_explicit(&s->me->held[k], 0, memory_order_release);
	v->view = NULL;
	return 0;
}

int smem_topic_sub_stats(struct smem_topic_sub *s, struct smem_topic_sub_stats *st)
{
	uint64_t tail;

	if (!s || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->received = s->received;
	st->lost = s->lost;
	if (load_tail(&s->t, &tail) == 0 && tail > s->cursor)
		st->lag = tail - s->cursor;
	return 0;
}

int smem__topic_sub_join(struct smem_topic_sub *s, uint32_t history)
{
	struct smem__topic *t = &s->t;
	uint32_t me = t->ctl->live_id, i, k;
	uint64_t tail, h;
	int ret;

	for (i = 0; i < t->g.max_subs; i++) {
		uint32_t e = 0;

		/* Acquire: pairs with the release of the last leaver. */
		if (atomic_compare_exchange_strong_explicit(&t->slot[i].owner, &e, me,
							    memory_order_acquire,
							    memory_order_relaxed))
			goto got;
	}
	/* Full: take the slot of a dead subscriber, if any. */
	for (i = 0; i < t->g.max_subs; i++) {
		uint32_t e = atomic_load_explicit(&t->slot[i].owner, memory_order_relaxed);

		if (e == 0 || smem__live_alive(t->ctl, e))
			continue;
		if (atomic_compare_exchange_strong_explicit(&t->slot[i].owner, &e, me,
							    memory_order_acquire,
							    memory_order_relaxed)) {
			atomic_fetch_add_explicit(&t->shm->evicted, 1, memory_order_relaxed);
			goto got;
		}
	}
	return -EUSERS;
got:
	s->idx = i;
	s->me = &t->slot[i];
	for (k = 0; k < SMEM_TOPIC_MAX_VIEWS; k++)
		atomic_store_explicit(&s->me->held[k], 0, memory_order_relaxed);
	atomic_store_explicit(&s->me->lost, 0, memory_order_relaxed);
	atomic_store_explicit(&s->me->received, 0, memory_order_relaxed);
	ret = load_tail(t, &tail);
	if (ret) {
		atomic_store_explicit(&s->me->owner, 0, memory_order_release);
		return ret;
	}
	h = history < t->g.history ? history : t->g.history;
	s->cursor = tail - (h < tail ? h : tail);
	atomic_store_explicit(&s->me->cursor, s->cursor, memory_order_seq_cst);
	return 0;
}

void smem__topic_sub_leave(struct smem_topic_sub *s)
{
	struct smem__topic *t = &s->t;
	uint32_t me = t->ctl->live_id;
	unsigned k;

	if (!s->me)
		return;
	for (k = 0; k < SMEM_TOPIC_MAX_VIEWS; k++)
		atomic_store_explicit(&s->me->held[k], 0, memory_order_relaxed);
	/* Release: our reads of held samples are done before the slot looks free. */
	atomic_compare_exchange_strong_explicit(&s->me->owner, &me, 0, memory_order_seq_cst,
						memory_order_relaxed);
	s->me = NULL;
	wake_if(&t->shm->room_waiters, &t->shm->room_seq);
}
