/* SPDX-License-Identifier: MIT */
/*
 * RPC waiting: a thread that has nothing to do for its channels (a caller, the service thread,
 * a dispatch loop) collects everything that could give it work into one wait set and sleeps
 * once in the wait engine (wait.h: io_uring, futex_waitv or futex). The set is a
 * smem__wait_set over ws->it, and the RPC's waits are the wait engine's one loop
 * (smem__wait_for()): their arm fills the ws and ends with smem__rpc_ws_arm() (the bound, the
 * statistics, the missed wake-up check's start), their disarm is smem__rpc_ws_disarm() (see
 * struct smem__rpc_waiter in rpc_int.h, built in rpc_peer.c).
 *
 * Each channel has a process-local event word (ev) bumped when a call completes, a request is
 * queued, the channel fails, or a pump lock is released that somebody skipped. A waiter
 * snapshots ev before looking at its conditions, then sleeps on: every channel's ev, the
 * receive rings' data words (when nobody is pumping them), the peers' pidfds, and its
 * deadline. The ev protocol: the waker increments ev then reads ev_sleepers (seq_cst); the
 * waiter increments ev_sleepers then sleeps on (ev, snapshot), so either the waker sees a
 * sleeper or the futex sees a changed value. A second word of the same kind, sev, is the
 * service thread's alone (requests other threads queued for it, stopping): while a thread of
 * the process waits on the channel itself (pollers), the service thread sleeps on sev only,
 * so that neither call completions nor the peer's commits wake it for nothing.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "ring_int.h"
#include "rpc_int.h"

static void bump(_Atomic uint32_t *word, _Atomic uint32_t *sleepers, _Atomic uint64_t *wake_ns)
{
	/* seq_cst: pairs with the sleepers++ in ws_event() before the sleep. */
	atomic_fetch_add(word, 1);
	if (atomic_load(sleepers)) {
		smem__futex_wake(word, INT_MAX);
		/* For count_missed(): a clock read beside the system call, none without one. */
		atomic_store_explicit(wake_ns, smem__now_ns(), memory_order_relaxed);
	}
}

void smem__rpc_ev_bump(struct smem_rpc *ch)
{
	bump(&ch->ev, &ch->ev_sleepers, &ch->ev_wake_ns);
}

void smem__rpc_sev_bump(struct smem_rpc *ch)
{
	bump(&ch->sev, &ch->sev_sleepers, &ch->sev_wake_ns);
}

void smem__rpc_bell_ring(_Atomic uint32_t *bell, _Atomic uint32_t *sleepers)
{
	static _Atomic uint64_t no_stamp;	/* the doorbell's wakes are not stamped */

	bump(bell, sleepers, &no_stamp);
}

void smem__rpc_bell(struct smem_rpc *ch)
{
	/* The packet was committed (release) before the bump: a server whose snapshot of the
	 * bell includes it sees the packet (service.c). */
	if (ch->bell)
		smem__rpc_bell_ring(ch->bell, ch->bell_sleepers);
}

void smem__rpc_ws_init(struct smem__rpc_ws *ws)
{
	smem__wait_set_init(&ws->set, ws->it, SMEM__WAIT_MAX);
	ws->np = ws->nev = ws->npid = 0;
	ws->ready = false;
	ws->slept = false;
}

int smem__rpc_ws_word(struct smem__rpc_ws *ws, struct smem_rpc *ch, _Atomic uint32_t *w,
		      uint32_t v)
{
	if (ws->set.n < ws->set.cap) {
		ws->ich[ws->set.n] = ch;
		ws->wake_ns[ws->set.n] = NULL;
	}
	return smem__wait_set_word(&ws->set, w, v);
}

static int ws_event(struct smem__rpc_ws *ws, struct smem_rpc *ch, _Atomic uint32_t *word,
		    _Atomic uint32_t *sleepers, _Atomic uint64_t *wake_ns, uint32_t v)
{
	int rc = smem__rpc_ws_word(ws, ch, word, v);

	if (rc)
		return rc;
	ws->wake_ns[ws->set.n - 1] = wake_ns;
	/* nev <= set.n: every event is also an item. seq_cst: see bump(). */
	atomic_fetch_add(sleepers, 1);
	ws->evsl[ws->nev++] = sleepers;
	return 0;
}

/* Sleep on the channel's event word, from snapshot @v. */
int smem__rpc_ws_ev(struct smem__rpc_ws *ws, struct smem_rpc *ch, uint32_t v)
{
	return ws_event(ws, ch, &ch->ev, &ch->ev_sleepers, &ch->ev_wake_ns, v);
}

/* Sleep on the service thread's event word, from snapshot @v. */
int smem__rpc_ws_sev(struct smem__rpc_ws *ws, struct smem_rpc *ch, uint32_t v)
{
	return ws_event(ws, ch, &ch->sev, &ch->sev_sleepers, &ch->sev_wake_ns, v);
}

int smem__rpc_ws_event(struct smem__rpc_ws *ws, _Atomic uint32_t *word,
		       _Atomic uint32_t *sleepers, uint32_t v)
{
	return ws_event(ws, NULL, word, sleepers, NULL, v);
}

int smem__rpc_ws_ring(struct smem__rpc_ws *ws, struct smem_rpc *ch, struct smem_ring *r,
		      bool wr)
{
	_Atomic uint32_t *word;
	uint32_t val;
	int rc;

	if (ws->set.n >= ws->set.cap) {
		ws->set.err = -E2BIG;
		return -E2BIG;
	}
	rc = smem__ring_wait_prepare(r, wr, &word, &val);
	if (rc) {
		ws->ready = true;	/* -EAGAIN: it holds already; -ESHUTDOWN: go and see */
		return 0;
	}
	ws->prep[ws->np].r = r;
	ws->prep[ws->np].wr = wr;
	ws->np++;
	smem__rpc_ws_word(ws, ch, word, val);	/* fits: checked above */
	ws->wake_ns[ws->set.n - 1] = smem__ring_wake_ns(r, wr);
	return 0;
}

/* Receive ring data, unless somebody is pumping it (they bump ev when they let go). */
int smem__rpc_ws_rx(struct smem__rpc_ws *ws, struct smem_rpc *ch)
{
	/*
	 * seq_cst pair with smem__rpc_try_pump(): once the flag is stored, either we see
	 * pumping == false (and watch the ring ourselves), or the pumper's later load sees the
	 * flag. The flag only when somebody pumps: set by every wait, it made each waiter's own
	 * next pump bump ev, which woke that waiter's next sleep at once (every other sleep of
	 * an idle channel was spurious).
	 */
	if (atomic_load(&ch->pumping)) {
		atomic_store(&ch->pump_skipped, true);
		if (atomic_load(&ch->pumping))
			return 0;
	}
	return smem__rpc_ws_ring(ws, ch, ch->rx, false);
}

int smem__rpc_ws_peer(struct smem__rpc_ws *ws, struct smem_rpc *ch)
{
	int fd, rc;

	pthread_mutex_lock(&ch->lock);
	fd = ch->peer_pidfd;
	pthread_mutex_unlock(&ch->lock);
	if (fd < 0)
		return 0;
	if (ws->set.n < ws->set.cap) {
		ws->ich[ws->set.n] = ch;
		ws->wake_ns[ws->set.n] = NULL;
	}
	rc = smem__wait_set_fd(&ws->set, fd, POLLIN);
	if (rc)
		return rc;
	ws->pidch[ws->npid] = ch;
	ws->pidbase[ws->npid++] = ws->set.n - 1;
	return 0;
}

/* A channel's peer needs polling (no pidfd): bound the sleep. */
uint64_t smem__rpc_peer_poll_bound(struct smem_rpc *ch)
{
	bool pidfd;

	pthread_mutex_lock(&ch->lock);
	pidfd = ch->peer_pidfd >= 0 || atomic_load_explicit(&ch->peer_id, memory_order_relaxed) == 0;
	pthread_mutex_unlock(&ch->lock);
	return pidfd ? SMEM__RPC_MAX_SLEEP_NS : SMEM__RPC_LIVE_POLL_NS;
}

/* ---- missed wake-ups ------------------------------------------------------------------------ */

/*
 * The calling thread's run delay: the time it spent runnable, waiting for a CPU (the second
 * field of /proc/thread-self/schedstat), in ns; UINT64_MAX when it cannot be read. The file
 * stays open per thread (one pread per look), closed at thread exit, by
 * smem__rpc_wait_thread_release(), and in a child of fork().
 */
static pthread_once_t sched_once = PTHREAD_ONCE_INIT;
static pthread_key_t sched_key;
static _Thread_local int tl_sched_fd = -1;
static _Thread_local bool tl_sched_tried;
/* The last reading and when it was taken (0: none), for run_delay_recent(). */
static _Thread_local uint64_t tl_rd, tl_rd_at;

static void sched_fd_close(void *p)
{
	close((int)(intptr_t)p - 1);
}

/* A child of fork() must not read its parent's thread: it opens its own file on demand. */
static void sched_fd_forget(void)
{
	smem__rpc_wait_thread_release();
}

static const struct smem__fork_ops rpc_fork_ops = { .child = sched_fd_forget };

static void sched_key_init(void)
{
	pthread_key_create(&sched_key, sched_fd_close);
	smem__fork_register(SMEM__FORK_RPC, &rpc_fork_ops);
}

static uint64_t run_delay_ns(void)
{
	char buf[96], *end;
	unsigned long long rd;
	ssize_t n;

	if (!tl_sched_tried) {
		tl_sched_tried = true;
		pthread_once(&sched_once, sched_key_init);
		tl_sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
		if (tl_sched_fd >= 0)
			pthread_setspecific(sched_key, (void *)(intptr_t)(tl_sched_fd + 1));
	}
	if (tl_sched_fd < 0)
		return UINT64_MAX;
	n = pread(tl_sched_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = '\0';
	strtoull(buf, &end, 10);	/* time on the CPU */
	rd = strtoull(end, &end, 10);	/* time waiting for one */
	tl_rd = rd;
	tl_rd_at = smem__now_ns();
	return rd;
}

/*
 * The run delay as of at most RD_REUSE_NS ago: the start of a sleep's measure. A fresh
 * reading per sleep was one pread of procfs per sleep on every RPC wait (about 10 us here;
 * a server that sleeps every few calls paid more for it than for the sleep's own
 * io_uring_enter). An older reading is lower, so the sleep's run delay comes out larger and
 * a sleep is counted as missed less readily, never more: a wake that returned within
 * RD_REUSE_NS of the bound, to a thread that also waited for a CPU just before it slept, is
 * the one a stale reading can hide.
 */
#define RD_REUSE_NS	(5ull * 1000 * 1000)

static uint64_t run_delay_recent(void)
{
	if (tl_rd_at && smem__now_ns() - tl_rd_at < RD_REUSE_NS)
		return tl_rd;
	return run_delay_ns();
}

void smem__rpc_wait_thread_release(void)
{
	if (tl_sched_fd >= 0) {
		pthread_setspecific(sched_key, NULL);
		close(tl_sched_fd);
	}
	tl_sched_fd = -1;
	tl_sched_tried = false;
	tl_rd_at = 0;
}

/*
 * A sleep that lasted its whole bound although the bound was a safety net (the cap, or the
 * peer-polling slice), not the caller's deadline: if a word it slept on was woken during the
 * sleep while the peer is alive, the wake-up that should have ended it never came. Counted
 * once per channel with such a word.
 *
 * "Was woken during the sleep" must be proven, not guessed from the word having moved: on a
 * loaded machine the timer ends the sleep at the bound, the thread then waits for a CPU, and
 * the peer (itself just back on a CPU) bumps the word meanwhile; the sleep then looks missed
 * although every wake came after the timer. So the wakers stamp the word's last wake (a
 * CLOCK_MONOTONIC read after their futex wake returned, on the path that makes that system
 * call anyway: ring.c's wake(), bump() above), and a moved word counts only when its stamp @s
 * says a wake returned during the sleep, RUN_DELAY_SLACK_NS before the bound, and the thread
 * was not runnable since: a thread that wake reached waited for a CPU from @s to its end, so
 * its run delay (/proc/thread-self/schedstat) grew by about (end - s); it grew by less, minus
 * the slack. Where the run delay cannot be read, the stamp alone decides. A stamp older than
 * the sleep is the previous wake's (this one's waker had not stamped yet): not counted, and
 * neither are words whose wakers do not stamp (the control word of a channel: opens, closes).
 */
#define RUN_DELAY_SLACK_NS	(250ull * 1000)

static bool wake_missed(struct smem__rpc_ws *ws, unsigned i, uint64_t t0, uint64_t slept,
			uint64_t bound, uint64_t rd)
{
	uint64_t s;

	if (!ws->it[i].word || !ws->wake_ns[i] ||
	    atomic_load_explicit(ws->it[i].word, memory_order_relaxed) == ws->it[i].val)
		return false;
	s = atomic_load_explicit(ws->wake_ns[i], memory_order_relaxed);
	if (s < t0 || s - t0 + RUN_DELAY_SLACK_NS > bound)
		return false;	/* not during the sleep, or too near its timer */
	return rd == UINT64_MAX || rd + RUN_DELAY_SLACK_NS < t0 + slept - s;
}

static void count_missed(struct smem__rpc_ws *ws, uint64_t t0, uint64_t slept, uint64_t bound,
			 uint64_t rd0)
{
	uint64_t rd1 = rd0 == UINT64_MAX ? UINT64_MAX : run_delay_ns();
	uint64_t rd = rd1 == UINT64_MAX ? UINT64_MAX : rd1 - rd0;
	unsigned i, j;

	for (i = 0; i < ws->set.n; i++) {
		struct smem_rpc *ch = ws->ich[i];

		if (!ch || atomic_load_explicit(&ch->state, memory_order_acquire) != 0 ||
		    !wake_missed(ws, i, t0, slept, bound, rd))
			continue;
		for (j = 0; j < i; j++)
			if (ws->ich[j] == ch && wake_missed(ws, j, t0, slept, bound, rd))
				break;
		if (j == i)
			SMEM__RPC_STAT_ADD(ch, missed_wakeups, 1);
	}
}

void smem__rpc_ws_arm(struct smem__rpc_ws *ws, struct smem_rpc *stat_ch, uint64_t *max_ns)
{
	ws->slept = false;
	if (ws->ready || *max_ns == 0) {
		*max_ns = 0;	/* some condition holds already: look again, do not sleep */
		return;
	}
	if (ws->set.err)
		return;		/* the sleep fails with it and does not sleep */
	ws->slept = true;
	ws->stat_ch = stat_ch;
	ws->bound = smem__rpc_min(*max_ns, SMEM__RPC_MAX_SLEEP_NS);
	*max_ns = ws->bound;
	if (stat_ch)
		SMEM__RPC_STAT_ADD(stat_ch, sleeps, 1);
	/* Only a safety net lasts this long: such a sleep is checked for a missed wake-up. */
	ws->rd0 = ws->bound >= SMEM__RPC_LIVE_POLL_NS ? run_delay_recent() : UINT64_MAX;
	ws->t0 = smem__now_ns();
}

void smem__rpc_ws_disarm(struct smem__rpc_ws *ws, int fired)
{
	uint64_t slept;

	if (ws->slept && fired >= 0) {
		slept = smem__now_ns() - ws->t0;
		if (ws->stat_ch)
			smem__rpc_stat_max(&ws->stat_ch->st.max_wait_read_ns, slept);
		if (ws->bound >= SMEM__RPC_LIVE_POLL_NS && slept >= ws->bound)
			count_missed(ws, ws->t0, slept, ws->bound, ws->rd0);
	}
	ws->slept = false;
	smem__rpc_ws_done(ws, fired);
}

void smem__rpc_ws_done(struct smem__rpc_ws *ws, int fired)
{
	unsigned i;

	for (i = 0; i < ws->np; i++)
		smem__ring_wait_done(ws->prep[i].r, ws->prep[i].wr);
	for (i = 0; i < ws->nev; i++)
		atomic_fetch_sub(ws->evsl[i], 1);
	/*
	 * Fired pidfds are the caller's to look at (smem__rpc_sleep() in rpc_peer.c): liveness
	 * is the peer layer's, above this one. An item's fired flag is cleared when it is added,
	 * so after no sleep (@fired < 0) none is set.
	 */
	(void)fired;
}
