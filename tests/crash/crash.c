/* SPDX-License-Identifier: MIT */
/*
 * The crash campaign: real participants in separate processes, SIGKILLed at random points,
 * thousands of times, with the promises of docs/RELIABILITY.md checked after every trial.
 *
 *   crash [-t TRIALS] [-s SEED] [-k ring,lock,rpc,broker] [-T TIMEOUT_S] [-v]
 *
 * Scenarios (one per trial, in turn):
 *   ring    2 writers and 2 readers in processes over a small ring (copying and zero-copy
 *           calls, some aborted writes); 1-3 of them killed at random moments and replaced.
 *           Checked: no message read twice, none corrupted, per-writer order kept, every
 *           message a writer saw committed is read unless a killed reader held it (the loss
 *           must be covered by the ring's nodes_reclaimed counter), nothing read that was
 *           never written, the ring drains (dead writers' claims are stepped over).
 *   lock    3 processes increment a two-word counter under the buffer's write lock (and check
 *           it under read locks); holders killed mid-update. Checked: a lock is always
 *           acquired within its timeout, an inconsistent counter is seen only right after
 *           -EOWNERDEAD, and the final count is between the increments reported and that plus
 *           the kills.
 *   rpc     a server (service thread) and a client making calls; the server, the client or
 *           both killed at random moments and restarted. Every other trial without io_uring
 *           (SMEM_NO_URING=1: the futex_waitv fallback). Checked: every response is the
 *           right one, calls fail only with -ECONNRESET/-ESHUTDOWN/-ETIMEDOUT, and a call
 *           pending on a dead server fails well before its timeout.
 *   broker  a holder keeps a name, a churner creates/opens/closes names; the broker itself
 *           (and sometimes the churner) is killed. Checked: the held name comes back at the
 *           restarted broker with its bytes, the churner recovers.
 * After every trial, whatever the scenario: every process ended before the timeout, no name
 * of the trial is left at the broker (smem__broker_list), and this process has the same fds
 * open as before.
 *
 * The campaign uses a broker of its own (a fresh directory), unless SMEM_BROKER is set.
 * Prints one line per scenario and "crash: N trials, N kills, N failures". Exit 0 iff no
 * failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- campaign-wide ------------------------------------------------------------------- */

enum { S_RING, S_LOCK, S_RPC, S_BROKER, S_COUNT };
static const char *const s_names[S_COUNT] = { "ring", "lock", "rpc", "broker" };

static struct {
	unsigned trials[S_COUNT], failures[S_COUNT];
	unsigned long kills[S_COUNT];
	unsigned long long work[S_COUNT];	/* messages, increments, calls, operations */
	unsigned long long lost[S_COUNT];	/* ring: messages lost with killed readers */
	unsigned long long recovered[S_COUNT];	/* ring: drops+reclaims; lock: EOWNERDEAD */
} g;

static int g_timeout_s = 10;
static bool g_verbose;
static unsigned long g_trial;
static uint64_t g_rng;
static const char *g_broker;		/* the address, for smem__broker_* admin calls */
static char g_prefix[64];		/* names of this trial start with it */
static char g_fail[512];		/* the first failure of the trial */

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from -s */
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return g_rng * 2685821657736338717ull;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static long long now_ms(void)
{
	return (long long)(smem__now_ns() / 1000000u);
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

static void fail(const char *fmt, ...)
{
	va_list ap;

	if (g_fail[0])
		return;		/* keep the first */
	va_start(ap, fmt);
	vsnprintf(g_fail, sizeof(g_fail), fmt, ap);
	va_end(ap);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("crash: mmap");
		exit(2);
	}
	return p;
}

/* ---- processes ------------------------------------------------------------------------ */

#define MAX_PROCS	16

struct proc {
	pid_t pid;
	int role;		/* scenario-specific */
	int id;			/* scenario-specific (writer id, worker index) */
	bool killed;
};

static struct proc procs[MAX_PROCS];
static int nprocs;

static int spawn(int role, int id, int (*fn)(int role, int id, void *arg), void *arg)
{
	pid_t pid;

	if (nprocs == MAX_PROCS)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* Fresh randomness per child; the campaign's stream stays reproducible. */
		g_rng ^= (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
		_exit(fn(role, id, arg) & 0xff);
	}
	procs[nprocs] = (struct proc){ .pid = pid, .role = role, .id = id };
	return nprocs++;
}

/* A random live process of @role (-1: any); its index, or -1. */
static int pick_victim(int role)
{
	int idx[MAX_PROCS], n = 0, i;

	for (i = 0; i < nprocs; i++)
		if (procs[i].pid > 0 && !procs[i].killed && (role < 0 || procs[i].role == role))
			idx[n++] = i;
	return n ? idx[rnd_below((unsigned)n)] : -1;
}

static void kill9(int i, int s)
{
	kill(procs[i].pid, SIGKILL);
	procs[i].killed = true;
	g.kills[s]++;
}

/*
 * Wait for the processes of @role (-1: all) until @deadline_ms. A process that is still
 * running then is a hang: it is killed and the trial fails. Exit codes other than 0 of
 * processes we did not kill fail the trial too (the child says why on stderr).
 */
static void reap(int role, long long deadline_ms)
{
	int i, status;

	for (i = 0; i < nprocs; i++) {
		struct proc *p = &procs[i];

		if (p->pid <= 0 || (role >= 0 && p->role != role))
			continue;
		for (;;) {
			pid_t r = waitpid(p->pid, &status, WNOHANG);

			if (r == p->pid)
				break;
			if (r < 0 && errno != EINTR) {
				status = 0;
				break;
			}
			if (now_ms() > deadline_ms) {
				fail("hang: process %d (role %d) still running after the timeout",
				     (int)p->pid, p->role);
				kill(p->pid, SIGKILL);
				waitpid(p->pid, &status, 0);
				p->killed = true;
				break;
			}
			sleep_us(1000);
		}
		if (!p->killed) {
			if (WIFSIGNALED(status))
				fail("process %d (role %d) died of signal %d", (int)p->pid, p->role,
				     WTERMSIG(status));
			else if (WEXITSTATUS(status) != 0)
				fail("process %d (role %d) exited with %d", (int)p->pid, p->role,
				     WEXITSTATUS(status));
		}
		p->pid = 0;
	}
}

static void reap_all_now(void)
{
	int i;

	for (i = 0; i < nprocs; i++)
		if (procs[i].pid > 0) {
			kill(procs[i].pid, SIGKILL);
			waitpid(procs[i].pid, NULL, 0);
			procs[i].pid = 0;
		}
	nprocs = 0;
}

/* ---- after every trial: names at the broker --------------------------------------------- */

static int count_ours(const struct smem__entry_info *e, void *arg)
{
	if (strncmp(e->name, g_prefix, strlen(g_prefix)) == 0) {
		(*(unsigned *)arg)++;
		if (g_verbose)
			fprintf(stderr, "  left at the broker: %s (holders %u)\n", e->name,
				e->holders);
	}
	return 0;
}

/* Names of the trial still at the broker once the broker has seen every hangup. */
static unsigned leaked_names(void)
{
	long long end = now_ms() + 3000;
	unsigned n;
	int err;

	for (;;) {
		n = 0;
		err = smem__broker_list(g_broker, count_ours, &n);
		if (err == 0 && n == 0)
			return 0;
		if (now_ms() > end)
			return err ? 1000 : n;
		sleep_us(10000);
	}
}

/* ---- ring --------------------------------------------------------------------------------- */

#define R_WRITERS	2
#define R_READERS	2
#define R_IDS		16		/* writer ids, replacements included */
#define R_MAXSEQ	4096		/* messages per writer id per trial at most */
#define R_NODE		64

enum { ROLE_WRITER, ROLE_READER };

struct ring_msg {
	uint32_t writer, seq, len, sum;
	unsigned char pad[R_NODE - 16];
};

struct ring_shared {
	_Atomic int stop;			/* 1: writers stop; 2: readers drain and stop */
	_Atomic uint32_t committed[R_IDS];	/* messages the writer saw committed */
	_Atomic uint8_t seen[R_IDS][R_MAXSEQ];	/* reads of each message */
	_Atomic uint32_t corrupt, disorder, beyond, errors;
	_Atomic uint64_t reads;
	/* Reader rid is inside smem_ring_read() or has its copy unaccounted: a kill then loses
	 * that message in the reader's hands, with no node of the ring left to reclaim. */
	_Atomic uint8_t copying[R_IDS];
	char name[128];
};

static uint32_t msg_sum(const struct ring_msg *m)
{
	uint32_t s = m->writer * 2654435761u ^ m->seq * 40503u ^ m->len, i;

	for (i = 0; i + 16 < m->len; i++)
		s = s * 31 + m->pad[i];
	return s;
}

static void msg_make(struct ring_msg *m, uint32_t w, uint32_t seq)
{
	uint32_t i;

	m->writer = w;
	m->seq = seq;
	m->len = 16 + (seq * 7 + w) % (R_NODE - 16 + 1);
	for (i = 0; i + 16 < m->len; i++)
		m->pad[i] = (unsigned char)(seq + i * 3 + w);
	m->sum = msg_sum(m);
}

static int ring_writer(int role, int id, void *arg)
{
	struct ring_shared *sh = arg;
	struct smem_ring *r;
	struct ring_msg m;
	uint32_t seq = 0;
	int err;

	(void)role;
	err = smem_ring_open(sh->name, NULL, &r);
	if (err) {
		fprintf(stderr, "crash: writer open: %s\n", smem_strerror(err));
		return 1;
	}
	smem_ring_set_spin(r, 2000);
	while (!atomic_load(&sh->stop) && seq < R_MAXSEQ) {
		msg_make(&m, (uint32_t)id, seq);
		if (rnd_below(4) == 0) {
			struct smem_ring_slot slot;

			err = smem_ring_reserve_write(r, &slot, 100);
			if (err == 0 && rnd_below(8) == 0) {
				/* An aborted write: nothing is sent, the same seq goes next. */
				memcpy(slot.data, &m, 8);
				err = smem_ring_abort(r, &slot);
				if (err)
					break;
				continue;
			}
			if (err == 0) {
				memcpy(slot.data, &m, m.len);
				/* a window for the kill to land while we hold the node */
				for (volatile unsigned spin = rnd_below(20000); spin > 0; spin--)
					;
				err = smem_ring_commit(r, &slot, m.len);
			}
		} else {
			err = smem_ring_write(r, &m, m.len, 100);
		}
		if (err == -ETIMEDOUT)
			continue;	/* full: readers may be dead for a moment */
		if (err)
			break;
		/* Committed: only now may the campaign hold us to it. */
		atomic_store(&sh->committed[id], ++seq);
	}
	smem_ring_close(r);
	if (err && err != -ETIMEDOUT) {
		fprintf(stderr, "crash: writer %d: %s\n", id, smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	return 0;
}

/* Check and record one message; @last is the reader's per-writer order state. */
static void ring_account(struct ring_shared *sh, const void *data, size_t len, int64_t *last)
{
	struct ring_msg m;

	memset(&m, 0, sizeof(m));
	if (len < 16 || len > sizeof(m)) {
		atomic_fetch_add(&sh->corrupt, 1);
		return;
	}
	memcpy(&m, data, len);
	if (m.len != len || m.writer >= R_IDS || m.seq >= R_MAXSEQ || msg_sum(&m) != m.sum) {
		atomic_fetch_add(&sh->corrupt, 1);
		return;
	}
	if ((int64_t)m.seq <= last[m.writer])
		atomic_fetch_add(&sh->disorder, 1);
	last[m.writer] = m.seq;
	atomic_fetch_add(&sh->seen[m.writer][m.seq], 1);
	atomic_fetch_add(&sh->reads, 1);
}

static int ring_reader(int role, int rid, void *arg)
{
	struct ring_shared *sh = arg;
	int64_t last[R_IDS];
	struct smem_ring *r;
	unsigned char buf[R_NODE];
	int err = 0, i;

	(void)role;
	for (i = 0; i < R_IDS; i++)
		last[i] = -1;
	err = smem_ring_open(sh->name, NULL, &r);
	if (err) {
		fprintf(stderr, "crash: reader open: %s\n", smem_strerror(err));
		return 1;
	}
	smem_ring_set_spin(r, 2000);
	for (;;) {
		ssize_t n;

		if (rnd_below(3) == 0) {
			struct smem_ring_slot slot;

			err = smem_ring_reserve_read(r, &slot, 20);
			if (err == 0) {
				for (volatile unsigned spin = rnd_below(20000); spin > 0; spin--)
					;
				ring_account(sh, slot.data, slot.len, last);
				err = smem_ring_release(r, &slot);
			}
		} else {
			atomic_store(&sh->copying[rid], 1);
			n = smem_ring_read(r, buf, sizeof(buf), 20);
			err = n < 0 ? (int)n : 0;
			if (n >= 0)
				ring_account(sh, buf, (size_t)n, last);
			atomic_store(&sh->copying[rid], 0);
		}
		if (err == -ETIMEDOUT) {
			if (atomic_load(&sh->stop) == 2)
				break;		/* drained: nothing for 20 ms after the writers ended */
			continue;
		}
		if (err)
			break;
	}
	smem_ring_close(r);
	if (err != -ETIMEDOUT) {
		fprintf(stderr, "crash: reader: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	return 0;
}

static void trial_ring(void)
{
	struct ring_shared *sh = shared_alloc(sizeof(*sh));
	struct smem_ring_stats st;
	struct smem_ring *r;
	unsigned kills = 1 + rnd_below(3), k, w, next_id = 0, next_rid = 0, in_hands = 0;
	uint32_t nodes = 2 + rnd_below(7);
	unsigned long long missing = 0, reads;
	int err, i;

	snprintf(sh->name, sizeof(sh->name), "%sring", g_prefix);
	err = smem_ring_create(sh->name, nodes, R_NODE, NULL, &r);
	if (err) {
		fail("ring create: %s", smem_strerror(err));
		munmap(sh, sizeof(*sh));
		return;
	}
	for (w = 0; w < R_WRITERS; w++)
		spawn(ROLE_WRITER, (int)next_id++, ring_writer, sh);
	for (i = 0; i < R_READERS; i++)
		spawn(ROLE_READER, (int)next_rid++, ring_reader, sh);

	for (k = 0; k < kills && !g_fail[0]; k++) {
		int v;

		sleep_us(500 + rnd_below(15000));
		v = pick_victim(-1);
		if (v < 0)
			break;
		kill9(v, S_RING);
		/* A replacement keeps the traffic going (a new writer id: the old one's last
		 * message may or may not have been committed). */
		if (procs[v].role == ROLE_WRITER && next_id < R_IDS - 1)
			spawn(ROLE_WRITER, (int)next_id++, ring_writer, sh);
		else if (procs[v].role == ROLE_READER && next_rid < R_IDS)
			spawn(ROLE_READER, (int)next_rid++, ring_reader, sh);
	}
	sleep_us(2000 + rnd_below(10000));
	atomic_store(&sh->stop, 1);
	reap(ROLE_WRITER, now_ms() + g_timeout_s * 1000);
	atomic_store(&sh->stop, 2);
	reap(ROLE_READER, now_ms() + g_timeout_s * 1000);
	/*
	 * Nothing may be left once the readers drained it (a reader killed early is replaced,
	 * so there is always one). Then the ring must be whole again: a full lap of messages
	 * goes through it, which also makes us recover any node a killed reader still held
	 * (nobody may have come round to it yet).
	 */
	{
		struct ring_msg m, got;
		ssize_t n = smem_ring_read(r, &got, sizeof(got), 50);

		if (n != -ETIMEDOUT)
			fail("ring not drained: read gave %zd", n);
		for (k = 0; k < nodes && !g_fail[0]; k++) {
			msg_make(&m, R_IDS - 1, R_MAXSEQ - 1 - k);
			err = smem_ring_write(r, &m, m.len, 3000);
			if (err)
				fail("ring unusable after the crashes: write: %s", smem_strerror(err));
		}
		for (k = 0; k < nodes && !g_fail[0]; k++) {
			msg_make(&m, R_IDS - 1, R_MAXSEQ - 1 - k);
			n = smem_ring_read(r, &got, sizeof(got), 3000);
			if (n != (ssize_t)m.len || memcmp(&got, &m, m.len) != 0)
				fail("ring unusable after the crashes: read gave %zd", n);
		}
	}
	smem_ring_stats(r, &st);
	smem_ring_close(r);

	if (atomic_load(&sh->errors))
		fail("ring: %u participants failed", atomic_load(&sh->errors));
	if (atomic_load(&sh->corrupt))
		fail("ring: %u corrupted messages", atomic_load(&sh->corrupt));
	if (atomic_load(&sh->disorder))
		fail("ring: %u messages out of order", atomic_load(&sh->disorder));
	for (w = 0; w < R_IDS; w++) {
		uint32_t c = atomic_load(&sh->committed[w]), s;

		for (s = 0; s < R_MAXSEQ; s++) {
			uint8_t n = atomic_load(&sh->seen[w][s]);

			if (n > 1)
				fail("ring: writer %u message %u read %u times", w, s, n);
			if (s < c && n == 0)
				missing++;
			/* c itself may have been committed by a writer killed before it counted */
			if (s > c && n)
				fail("ring: writer %u message %u read but never written", w, s);
		}
	}
	/*
	 * A lost message is one a killed reader held: in a node it had claimed (the ring
	 * reclaimed and counted that node) or in its own buffer after a copying read.
	 */
	for (i = 0; i < nprocs; i++)
		if (procs[i].role == ROLE_READER && procs[i].killed &&
		    atomic_load(&sh->copying[procs[i].id]))
			in_hands++;
	if (missing > st.nodes_reclaimed + in_hands)
		fail("ring: %llu messages lost, only %llu reader nodes reclaimed and %u copies "
		     "in killed readers' hands", missing, (unsigned long long)st.nodes_reclaimed,
		     in_hands);
	reads = atomic_load(&sh->reads);
	g.work[S_RING] += reads;
	g.lost[S_RING] += missing;
	g.recovered[S_RING] += st.drops_recovered + st.nodes_reclaimed;
	if (st.corruptions)
		fail("ring: %llu corruptions counted in an honest run",
		     (unsigned long long)st.corruptions);
	munmap(sh, sizeof(*sh));
}

/* ---- lock --------------------------------------------------------------------------------- */

#define L_WORKERS	3

struct lock_shared {
	_Atomic int stop;
	_Atomic uint64_t done;			/* increments reported */
	_Atomic uint32_t eownerdead, repaired, torn, timeouts, errors;
	_Atomic int torn_known;			/* told by a reader's EOWNERDEAD, not repaired */
	char name[128];
};

/* The counter: two words that agree whenever no writer is between its two stores. */
struct counter {
	volatile uint64_t a, b;
};

static int lock_worker(int role, int id, void *arg)
{
	struct lock_shared *sh = arg;
	struct smem_buffer *b;
	struct counter *c;
	int err;

	(void)role;
	(void)id;
	err = smem_buffer_open(sh->name, NULL, &b);
	if (err) {
		fprintf(stderr, "crash: lock worker open: %s\n", smem_strerror(err));
		return 1;
	}
	c = smem_buffer_data(b);
	while (!atomic_load(&sh->stop)) {
		bool reader = rnd_below(4) == 0;

		err = reader ? smem_buffer_lock_read(b, 2000) : smem_buffer_lock_write(b, 2000);
		if (err == -ETIMEDOUT) {
			atomic_fetch_add(&sh->timeouts, 1);
			continue;
		}
		if (err != 0 && err != -EOWNERDEAD) {
			fprintf(stderr, "crash: lock: %s\n", smem_strerror(err));
			atomic_fetch_add(&sh->errors, 1);
			break;
		}
		if (err == -EOWNERDEAD)
			atomic_fetch_add(&sh->eownerdead, 1);
		if (c->a != c->b) {
			/*
			 * A dead writer's half-done increment. The lock tells exactly one
			 * acquirer, reader or writer (lock.c); a reader cannot repair, so it
			 * leaves a note for the next writer. Torn data nobody was told of is a
			 * failure.
			 */
			if (err == -EOWNERDEAD || atomic_load(&sh->torn_known)) {
				if (!reader) {
					c->b = c->a;
					atomic_store(&sh->torn_known, 0);
					atomic_fetch_add(&sh->repaired, 1);
				} else {
					atomic_store(&sh->torn_known, 1);
				}
			} else {
				atomic_fetch_add(&sh->torn, 1);
			}
		}
		if (!reader) {
			c->a = c->a + 1;
			/* a window for the kill to land in the middle */
			for (volatile int spin = rnd_below(2000); spin > 0; spin--)
				;
			c->b = c->a;
		}
		err = smem_buffer_unlock(b);
		if (err) {
			fprintf(stderr, "crash: unlock: %s\n", smem_strerror(err));
			atomic_fetch_add(&sh->errors, 1);
			break;
		}
		if (!reader)
			atomic_fetch_add(&sh->done, 1);
	}
	smem_buffer_close(b);
	return atomic_load(&sh->errors) ? 1 : 0;
}

static void trial_lock(void)
{
	struct lock_shared *sh = shared_alloc(sizeof(*sh));
	struct smem_buffer *b;
	struct counter *c;
	unsigned kills = 1 + rnd_below(3), k, before = g.kills[S_LOCK];
	uint64_t a, done;
	int err, i;

	snprintf(sh->name, sizeof(sh->name), "%slock", g_prefix);
	err = smem_buffer_create(sh->name, sizeof(struct counter), NULL, &b);
	if (err) {
		fail("buffer create: %s", smem_strerror(err));
		munmap(sh, sizeof(*sh));
		return;
	}
	for (i = 0; i < L_WORKERS; i++)
		spawn(0, i, lock_worker, sh);
	for (k = 0; k < kills && !g_fail[0]; k++) {
		int v;

		sleep_us(500 + rnd_below(10000));
		v = pick_victim(-1);
		if (v < 0)
			break;
		kill9(v, S_LOCK);
		spawn(0, procs[v].id, lock_worker, sh);
	}
	sleep_us(2000 + rnd_below(5000));
	atomic_store(&sh->stop, 1);
	reap(-1, now_ms() + g_timeout_s * 1000);

	/* The last word: the lock is free (or its holder died), and the counter adds up. */
	err = smem_buffer_lock_write(b, 2000);
	c = smem_buffer_data(b);
	if (err != 0 && err != -EOWNERDEAD) {
		fail("lock: final lock: %s", smem_strerror(err));
	} else {
		if (c->a != c->b && err != -EOWNERDEAD && !atomic_load(&sh->torn_known))
			fail("lock: counter torn (%llu/%llu) without EOWNERDEAD",
			     (unsigned long long)c->a, (unsigned long long)c->b);
		a = c->a;
		done = atomic_load(&sh->done);
		if (a < done || a > done + (g.kills[S_LOCK] - before))
			fail("lock: counter %llu, increments reported %llu, kills %lu",
			     (unsigned long long)a, (unsigned long long)done,
			     g.kills[S_LOCK] - before);
		smem_buffer_unlock(b);
	}
	if (atomic_load(&sh->timeouts))
		fail("lock: %u acquisitions timed out (2 s): a dead holder was not recovered",
		     atomic_load(&sh->timeouts));
	if (atomic_load(&sh->torn))
		fail("lock: %u torn counters seen without EOWNERDEAD", atomic_load(&sh->torn));
	if (atomic_load(&sh->errors))
		fail("lock: %u workers failed", atomic_load(&sh->errors));
	g.work[S_LOCK] += atomic_load(&sh->done);
	g.recovered[S_LOCK] += atomic_load(&sh->eownerdead);
	smem_buffer_close(b);
	munmap(sh, sizeof(*sh));
}

/* ---- rpc ---------------------------------------------------------------------------------- */

enum { ROLE_SERVER, ROLE_CLIENT };

struct rpc_shared {
	_Atomic int stop;
	_Atomic uint64_t calls, ok;
	_Atomic uint32_t wrong, bad_errors, slow_failures, errors;
	char name[128];
};

static int rpc_handler(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *reply)
{
	unsigned char *out;
	size_t i;

	(void)arg;
	out = smem_rpc_reply_alloc(reply, req->len);
	if (!out && req->len)
		return -ENOMEM;
	for (i = 0; i < req->len; i++)
		out[i] = (unsigned char)~((const unsigned char *)req->data)[i];
	return 0;
}

static int rpc_server(int role, int id, void *arg)
{
	struct rpc_shared *sh = arg;
	struct smem_rpc_opts o;
	struct smem_rpc *ch = NULL;
	long long end = now_ms() + 3000;
	int err;

	(void)role;
	(void)id;
	memset(&o, 0, sizeof(o));
	o.handler = rpc_handler;
	o.node_count = 4;
	o.node_size = 256;
	o.spin_ns = SMEM_RPC_NO_SPIN;
	/* -EBUSY while the peers' previous incarnation is still seen alive: retry briefly. */
	while ((err = smem_rpc_open(sh->name, &o, &ch)) == -EBUSY && now_ms() < end)
		sleep_us(2000);
	if (err) {
		fprintf(stderr, "crash: rpc server open: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	while (!atomic_load(&sh->stop))
		sleep_us(2000);
	smem_rpc_close(ch);
	return 0;
}

static int rpc_client(int role, int id, void *arg)
{
	struct rpc_shared *sh = arg;
	struct smem_rpc_opts o;
	struct smem_rpc *ch = NULL;
	unsigned char req[600];
	long long end = now_ms() + 3000;
	uint32_t n = 0;
	int err;

	(void)role;
	(void)id;
	memset(&o, 0, sizeof(o));
	o.node_count = 4;
	o.node_size = 256;
	o.spin_ns = SMEM_RPC_NO_SPIN;
	while ((err = smem_rpc_open(sh->name, &o, &ch)) == -EBUSY && now_ms() < end)
		sleep_us(2000);
	if (err) {
		fprintf(stderr, "crash: rpc client open: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	while (!atomic_load(&sh->stop)) {
		size_t len = rnd_below(sizeof(req)), i, rlen = 0;
		void *resp = NULL;
		long long t0 = now_ms();

		for (i = 0; i < len; i++)
			req[i] = (unsigned char)(n + i);
		n++;
		atomic_fetch_add(&sh->calls, 1);
		err = smem_rpc_call(ch, req, len, &resp, &rlen, 5000);
		if (err == 0) {
			bool ok = rlen == len;

			for (i = 0; ok && i < len; i++)
				ok = ((unsigned char *)resp)[i] == (unsigned char)~req[i];
			if (!ok)
				atomic_fetch_add(&sh->wrong, 1);
			else
				atomic_fetch_add(&sh->ok, 1);
			smem_rpc_free_response(resp);
			continue;
		}
		if (err == -ECONNRESET || err == -ESHUTDOWN || err == -ENOSYS) {
			/* Peer gone (or a fresh master without our handler yet): promptly. */
			if (now_ms() - t0 > 2500)
				atomic_fetch_add(&sh->slow_failures, 1);
			if (err != -ENOSYS) {
				/* The channel is over for us: reopen to meet the next server. */
				smem_rpc_close(ch);
				ch = NULL;
				end = now_ms() + 3000;
				while (!atomic_load(&sh->stop) &&
				       (err = smem_rpc_open(sh->name, &o, &ch)) == -EBUSY &&
				       now_ms() < end)
					sleep_us(2000);
				if (!ch)
					break;
			}
			sleep_us(1000);
			continue;
		}
		if (err == -ETIMEDOUT) {
			if (!atomic_load(&sh->stop))
				atomic_fetch_add(&sh->slow_failures, 1);
			continue;
		}
		fprintf(stderr, "crash: rpc call: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->bad_errors, 1);
		break;
	}
	smem_rpc_close(ch);
	return 0;
}

static void trial_rpc(void)
{
	struct rpc_shared *sh = shared_alloc(sizeof(*sh));
	unsigned kills = 1 + rnd_below(2), k;

	snprintf(sh->name, sizeof(sh->name), "%srpc", g_prefix);
	/* Every other trial waits without io_uring (the futex_waitv fallback), as where
	 * io_uring is disabled or blocked by seccomp. The children read it at first use. */
	if (g.trials[S_RPC] % 2)
		setenv("SMEM_NO_URING", "1", 1);
	else
		unsetenv("SMEM_NO_URING");
	spawn(ROLE_SERVER, 0, rpc_server, sh);
	sleep_us(5000);
	spawn(ROLE_CLIENT, 0, rpc_client, sh);
	for (k = 0; k < kills && !g_fail[0]; k++) {
		int v;

		sleep_us(5000 + rnd_below(30000));
		v = pick_victim(rnd_below(3) == 0 ? ROLE_CLIENT : ROLE_SERVER);
		if (v < 0)
			break;
		kill9(v, S_RPC);
		spawn(procs[v].role, 0, procs[v].role == ROLE_SERVER ? rpc_server : rpc_client, sh);
	}
	sleep_us(20000 + rnd_below(20000));
	atomic_store(&sh->stop, 1);
	reap(-1, now_ms() + g_timeout_s * 1000);
	unsetenv("SMEM_NO_URING");
	if (atomic_load(&sh->wrong))
		fail("rpc: %u wrong responses", atomic_load(&sh->wrong));
	if (atomic_load(&sh->bad_errors))
		fail("rpc: %u calls failed with an unexpected error", atomic_load(&sh->bad_errors));
	if (atomic_load(&sh->slow_failures))
		fail("rpc: %u calls to a dead peer were not failed promptly",
		     atomic_load(&sh->slow_failures));
	if (atomic_load(&sh->errors))
		fail("rpc: %u participants could not open the channel", atomic_load(&sh->errors));
	g.work[S_RPC] += atomic_load(&sh->ok);
	munmap(sh, sizeof(*sh));
}

/* ---- broker ------------------------------------------------------------------------------- */

enum { ROLE_HOLDER, ROLE_CHURNER };

struct broker_shared {
	_Atomic int stop, ready;
	_Atomic uint64_t ops;
	_Atomic uint32_t corrupt, errors;
	char held[128];
};

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 13);
}

static bool check_fill(const unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i * 13))
			return false;
	return true;
}

static int broker_holder(int role, int id, void *arg)
{
	struct broker_shared *sh = arg;
	struct smem_region *r;
	int err;

	(void)role;
	(void)id;
	err = smem_region_create(sh->held, 8192, NULL, &r);
	if (err) {
		fprintf(stderr, "crash: holder create: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	fill(smem_region_data(r), 8192, 77);
	atomic_store(&sh->ready, 1);
	while (!atomic_load(&sh->stop)) {
		/* Our mapping is ours whatever happens to the broker. */
		if (!check_fill(smem_region_data(r), 8192, 77))
			atomic_fetch_add(&sh->corrupt, 1);
		sleep_us(2000);
	}
	smem_region_close(r);
	return 0;
}

static int broker_churner(int role, int id, void *arg)
{
	struct broker_shared *sh = arg;
	unsigned i = 0;

	(void)role;
	while (!atomic_load(&sh->stop)) {
		struct smem_region *r, *o;
		char name[160];
		int err;

		snprintf(name, sizeof(name), "%s-c%d-%u", sh->held, id, i++);
		err = smem_region_create(name, 4096, NULL, &r);
		if (err) {
			/* The broker is being killed and restarted under us: only these. */
			if (err != -ECONNREFUSED && err != -ECONNRESET && err != -EPIPE &&
			    err != -EPROTO && err != -ENOENT) {
				fprintf(stderr, "crash: churner create: %s\n", smem_strerror(err));
				atomic_fetch_add(&sh->errors, 1);
				return 1;
			}
			sleep_us(1000);
			continue;
		}
		fill(smem_region_data(r), 4096, i);
		err = smem_region_open(name, NULL, &o);
		if (err == 0) {
			if (!check_fill(smem_region_data(o), 4096, i))
				atomic_fetch_add(&sh->corrupt, 1);
			smem_region_close(o);
		}
		smem_region_close(r);
		atomic_fetch_add(&sh->ops, 1);
	}
	return 0;
}

static pid_t broker_pid(void)
{
	struct smem__broker_info info;

	return smem__broker_hello(g_broker, &info) == 0 ? (pid_t)info.pid : -1;
}

static void trial_broker(void)
{
	struct broker_shared *sh = shared_alloc(sizeof(*sh));
	struct smem_region *r = NULL;
	long long end;
	pid_t bp;
	int err;

	snprintf(sh->held, sizeof(sh->held), "%sheld", g_prefix);
	spawn(ROLE_HOLDER, 0, broker_holder, sh);
	spawn(ROLE_CHURNER, 0, broker_churner, sh);
	spawn(ROLE_CHURNER, 1, broker_churner, sh);
	end = now_ms() + 3000;
	while (!atomic_load(&sh->ready) && now_ms() < end)
		sleep_us(1000);
	sleep_us(1000 + rnd_below(10000));

	/* Kill the broker; the clients' next requests start another one. */
	bp = broker_pid();
	if (bp > 0) {
		kill(bp, SIGKILL);
		g.kills[S_BROKER]++;
	}
	if (rnd_below(2)) {
		int v = pick_victim(ROLE_CHURNER);

		sleep_us(rnd_below(5000));
		if (v >= 0) {
			kill9(v, S_BROKER);
			spawn(ROLE_CHURNER, procs[v].id, broker_churner, sh);
		}
	}
	/* The held name must come back (the holder re-registers it) with its bytes. */
	end = now_ms() + 3000;
	while ((err = smem_region_open(sh->held, NULL, &r)) != 0 && now_ms() < end)
		sleep_us(5000);
	if (err) {
		fail("broker: held name not back 3 s after the broker was killed: %s",
		     smem_strerror(err));
	} else {
		if (!check_fill(smem_region_data(r), 8192, 77))
			fail("broker: held region's bytes changed");
		smem_region_close(r);
	}
	sleep_us(2000 + rnd_below(5000));
	atomic_store(&sh->stop, 1);
	reap(-1, now_ms() + g_timeout_s * 1000);
	if (atomic_load(&sh->corrupt))
		fail("broker: %u regions read back wrong", atomic_load(&sh->corrupt));
	if (atomic_load(&sh->errors))
		fail("broker: %u clients failed", atomic_load(&sh->errors));
	g.work[S_BROKER] += atomic_load(&sh->ops);
	munmap(sh, sizeof(*sh));
}

/* ---- the campaign ------------------------------------------------------------------------- */

static void (*const trial_fn[S_COUNT])(void) = { trial_ring, trial_lock, trial_rpc, trial_broker };

static char g_dir[128];

static void own_broker(void)
{
	static char sock[192];

	snprintf(g_dir, sizeof(g_dir), "/tmp/smem-crash.XXXXXX");
	if (!mkdtemp(g_dir)) {
		perror("crash: mkdtemp");
		exit(2);
	}
	snprintf(sock, sizeof(sock), "%s/broker.sock", g_dir);
	setenv("SMEM_BROKER", sock, 1);
	setenv("SMEM_BROKER_IDLE_EXIT", "30", 1);
}

static void usage(void)
{
	fprintf(stderr, "usage: crash [-t TRIALS] [-s SEED] [-k ring,lock,rpc,broker] "
			"[-T TIMEOUT_S] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long trials = 200, total_fail = 0, total_kills = 0;
	bool enabled[S_COUNT] = { true, true, true, true };
	unsigned long long seed = (unsigned long long)time(NULL);
	long long start;
	int opt, s;

	while ((opt = getopt(argc, argv, "t:s:k:T:v")) != -1) {
		switch (opt) {
		case 't': trials = strtoul(optarg, NULL, 10); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'T': g_timeout_s = atoi(optarg); break;
		case 'v': g_verbose = true; break;
		case 'k':
			memset(enabled, 0, sizeof(enabled));
			for (s = 0; s < S_COUNT; s++)
				if (strstr(optarg, s_names[s]))
					enabled[s] = true;
			break;
		default: usage();
		}
	}
	g_rng = seed ? seed : 1;
	if (!getenv("SMEM_BROKER"))
		own_broker();
	g_broker = getenv("SMEM_BROKER");
	signal(SIGPIPE, SIG_IGN);
	printf("crash: seed %llu, broker %s\n", seed, g_broker);
	fflush(stdout);

	start = now_ms();
	for (g_trial = 0, s = 0; g_trial < trials; g_trial++) {
		int fds_before, fds_after;
		unsigned leaked;

		while (!enabled[s % S_COUNT])
			s++;
		s %= S_COUNT;
		g_fail[0] = 0;
		nprocs = 0;
		snprintf(g_prefix, sizeof(g_prefix), "crash-%d-%lu-", (int)getpid(), g_trial);
		smem__broker_disconnect();
		fds_before = count_fds();

		trial_fn[s]();
		reap_all_now();

		leaked = leaked_names();
		if (leaked)
			fail("%u names of the trial left at the broker", leaked);
		smem__broker_disconnect();
		fds_after = count_fds();
		if (fds_after != fds_before)
			fail("fd leak: %d open before the trial, %d after", fds_before, fds_after);
		g.trials[s]++;
		if (g_fail[0]) {
			g.failures[s]++;
			total_fail++;
			printf("crash: trial %lu (%s) FAILED: %s\n", g_trial, s_names[s], g_fail);
			fflush(stdout);
		} else if (g_verbose) {
			printf("crash: trial %lu (%s) ok\n", g_trial, s_names[s]);
		}
		s++;
	}
	for (s = 0; s < S_COUNT; s++) {
		if (!g.trials[s])
			continue;
		total_kills += g.kills[s];
		printf("crash: %-6s %u trials, %lu kills, %u failures; %llu %s", s_names[s],
		       g.trials[s], g.kills[s], g.failures[s], g.work[s],
		       s == S_RING ? "messages read" : s == S_LOCK ? "increments" :
		       s == S_RPC ? "calls answered" : "create/open/close rounds");
		if (s == S_RING)
			printf(", %llu lost with killed readers, %llu claims recovered",
			       g.lost[s], g.recovered[s]);
		if (s == S_LOCK)
			printf(", %llu EOWNERDEAD", g.recovered[s]);
		printf("\n");
	}
	printf("crash: %lu trials, %lu kills, %lu failures in %.1f s\n", trials, total_kills,
	       total_fail, (double)(now_ms() - start) / 1000.0);
	if (g_dir[0]) {
		smem__broker_stop(g_broker);
		rmdir(g_dir);	/* the broker removes its socket when it stops */
	}
	return total_fail ? 1 : 0;
}
