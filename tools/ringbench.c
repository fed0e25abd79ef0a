/* SPDX-License-Identifier: MIT */
/*
 * ringbench: throughput and round-trip time of smem_ring against baselines measured in the
 * same run (machines are shared and noisy: compare ratios, not absolute numbers).
 *
 *   ringbench stream   --size BYTES --nodes N --writers W --readers R --seconds S
 *                      [--threads] [--wait spin|block|auto] [--cpus A,B,...] [--json]
 *                      [--compare] [--transport NAME] [--repeat N]
 *   ringbench pingpong --size BYTES [--nodes N] [--seconds S] [same options]
 *
 * stream: W writers and R readers (separate processes unless --threads) move messages of
 * BYTES for S seconds; every message is written in full (copied from a buffer whose first
 * 8 bytes change per message) and read in full (copied out, and every byte summed).
 * pingpong: one process sends BYTES, the other answers BYTES; round trips are timed one by
 * one (msgs_per_s counts round trips).
 *
 * Transports (the table below; --compare runs every baseline that supports the bench):
 *   smem   smem_ring (pingpong: two rings)
 *   naive  a spinning single-producer single-consumer byte ring in a memfd (1w/1r only)
 *   pipe   a pipe (pingpong: two pipes)
 *   unix   a UNIX stream socketpair
 *   futex  pingpong only: a shared buffer and a raw futex turn word, sleeping every time
 *
 * --repeat N runs every transport N times, interleaved, and reports each one's median run.
 *
 * --wait (smem only): spin = try calls in a loop (timeout 0, never a system call);
 * block = sleep at once (spin 0); auto = the library default (spin briefly, then sleep).
 *
 * Output: one line per transport, or with --json one object per line with the keys bench,
 * transport, size, nodes, writers, readers, msgs_per_s, gb_per_s, rtt_ns_p50, rtt_ns_p99,
 * syscalls_per_msg (null where not applicable), plus wait, mode and seconds.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <smem.h>

#define MAX_WORKERS 64
#define MAX_SAMPLES (1u << 22)

enum wait_mode { WAIT_AUTO, WAIT_SPIN, WAIT_BLOCK };
static const char *const wait_names[] = { "auto", "spin", "block" };

struct cfg {
	bool pingpong;
	size_t size;
	uint32_t nodes;
	int writers, readers;
	double seconds;
	bool threads;
	enum wait_mode wait;
	bool json;
	bool compare;
	int repeat;		/* runs per transport, interleaved; the median is reported */
	const char *only;
	int cpus[MAX_WORKERS];
	int ncpus;
	char name[64];		/* smem ring name (pingpong: name + "-a"/"-b") */
};

struct result {
	double msgs_per_s, gb_per_s;
	double rtt_p50, rtt_p99;	/* < 0: not applicable */
	double syscalls_per_msg;	/* < 0: not applicable */
};

/* Shared between the parent and its workers (processes or threads): MAP_SHARED. */
struct ctl {
	_Atomic int ready;
	_Atomic int go;
	_Atomic int stop;
	_Atomic int errors;
	_Atomic uint64_t syscalls;
	_Atomic uint64_t total;			/* messages, counted at the end */
	_Atomic uint64_t sink;			/* sums, so the compiler keeps them */
	struct {
		_Atomic uint64_t n;		/* messages read by this worker so far */
		char pad[56];
	} count[MAX_WORKERS];
	uint64_t nsamples;
	uint64_t samples[];			/* pingpong round trips, ns */
};

static struct ctl *ctl;
static size_t ctl_size;

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void die(const char *what, int err)
{
	fprintf(stderr, "ringbench: %s: %s\n", what, smem_strerror(err));
	exit(1);
}

static void *shared_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", -errno);
	return p;
}

static void pin(const struct cfg *c, int worker)
{
	cpu_set_t set;

	if (!c->ncpus)
		return;
	CPU_ZERO(&set);
	CPU_SET(c->cpus[worker % c->ncpus], &set);
	sched_setaffinity(0, sizeof(set), &set);	/* the calling thread */
}

/* Sum every byte (8 at a time), so that a reader really reads what it received. */
static uint64_t touch(const unsigned char *p, size_t len)
{
	uint64_t s = 0, w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		s += w;
	}
	for (; i < len; i++)
		s += p[i];
	return s;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
	return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

/* ---- workers: processes or threads -------------------------------------------------------- */

struct worker {
	const struct cfg *c;
	int index;		/* pinning and count slot */
	int role;		/* transport-specific */
	void (*fn)(struct worker *w);
	void *tp;		/* transport state */
	pthread_t tid;
	pid_t pid;
};

static void *worker_thread(void *p)
{
	struct worker *w = p;

	pin(w->c, w->index);
	w->fn(w);
	return NULL;
}

static void spawn(struct worker *w)
{
	if (w->c->threads) {
		if (pthread_create(&w->tid, NULL, worker_thread, w))
			die("pthread_create", -EAGAIN);
		return;
	}
	w->pid = fork();
	if (w->pid < 0)
		die("fork", -errno);
	if (w->pid == 0) {
		worker_thread(w);
		_exit(0);
	}
}

static void reap(struct worker *w)
{
	int st;

	if (w->c->threads)
		pthread_join(w->tid, NULL);
	else
		while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
			;
}

static void ready_and_wait_go(void)
{
	atomic_fetch_add(&ctl->ready, 1);
	while (!atomic_load_explicit(&ctl->go, memory_order_acquire))
		cpu_relax();
}

static bool stopping(void)
{
	return atomic_load_explicit(&ctl->stop, memory_order_relaxed) != 0;
}

/*
 * Run the workers: wait until all are ready, let them go, stop them after the configured
 * time, and compute messages/s from the read counts at the moment of stopping.
 */
static void run(const struct cfg *c, struct worker *ws, int n, struct result *res,
		void (*after_stop)(struct worker *ws, int n))
{
	uint64_t t0, t1, msgs = 0;
	int i;

	memset(ctl, 0, ctl_size);
	for (i = 0; i < n; i++)
		spawn(&ws[i]);
	while (atomic_load(&ctl->ready) < n)
		usleep(1000);
	t0 = now_ns();
	atomic_store_explicit(&ctl->go, 1, memory_order_release);
	usleep((useconds_t)(c->seconds * 1e6));
	atomic_store(&ctl->stop, 1);
	t1 = now_ns();
	for (i = 0; i < MAX_WORKERS; i++)
		msgs += atomic_load(&ctl->count[i].n);
	if (after_stop)
		after_stop(ws, n);
	for (i = 0; i < n; i++)
		reap(&ws[i]);
	if (atomic_load(&ctl->errors))
		fprintf(stderr, "ringbench: %d worker errors\n", atomic_load(&ctl->errors));
	res->msgs_per_s = (double)msgs / ((double)(t1 - t0) / 1e9);
	res->gb_per_s = res->msgs_per_s * (double)c->size / 1e9;
	res->rtt_p50 = res->rtt_p99 = -1;
	res->syscalls_per_msg = -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Pingpong results: round trips per second from the samples, percentiles. */
static void rtt_result(const struct cfg *c, struct result *res)
{
	uint64_t n = ctl->nsamples, sum = 0, i;

	for (i = 0; i < n; i++)
		sum += ctl->samples[i];
	qsort(ctl->samples, n, sizeof(uint64_t), cmp_u64);
	res->msgs_per_s = n && sum ? (double)n / ((double)sum / 1e9) : 0;
	res->gb_per_s = res->msgs_per_s * 2.0 * (double)c->size / 1e9;
	res->rtt_p50 = n ? (double)ctl->samples[n / 2] : -1;
	res->rtt_p99 = n ? (double)ctl->samples[n * 99 / 100] : -1;
}

/* The pinger's loop: one timed round trip at a time until the time is up. */
static void pinger_loop(struct worker *w, bool (*rt)(struct worker *w, unsigned char *buf),
			unsigned char *buf)
{
	uint64_t end = now_ns() + (uint64_t)(w->c->seconds * 1e9), n = 0, t;

	while ((t = now_ns()) < end && n < MAX_SAMPLES) {
		if (!rt(w, buf)) {
			atomic_fetch_add(&ctl->errors, 1);
			break;
		}
		ctl->samples[n++] = now_ns() - t;
	}
	ctl->nsamples = n;
	atomic_store(&ctl->stop, 1);
}

/* ---- smem ------------------------------------------------------------------------------- */

static struct smem_ring *smem_join(const struct cfg *c, const char *name)
{
	struct smem_ring *r;
	int err = smem_ring_open(name, NULL, &r);

	if (err)
		die("smem_ring_open", err);
	if (c->wait == WAIT_BLOCK)
		smem_ring_set_spin(r, 0);
	return r;
}

static int smem_timeout(const struct cfg *c)
{
	return c->wait == WAIT_SPIN ? 0 : 100;
}

static void smem_account(struct smem_ring *r)
{
	struct smem_ring_stats st;

	smem_ring_stats(r, &st);
	atomic_fetch_add(&ctl->syscalls, st.sleeps + st.wakes);
	atomic_fetch_add(&ctl->total, st.read);
}

static void smem_stream_worker(struct worker *w)
{
	const struct cfg *c = w->c;
	struct smem_ring *r = smem_join(c, c->name);
	unsigned char *buf = malloc(c->size + 8);
	int tmo = smem_timeout(c);
	uint64_t seq = 0, sum = 0;

	memset(buf, 0x5a, c->size + 8);
	ready_and_wait_go();
	if (w->role == 0) {
		while (!stopping()) {
			int err;

			if (c->size >= 8)
				memcpy(buf, &seq, 8);
			err = smem_ring_write(r, buf, c->size, tmo);
			if (err == 0)
				seq++;
			else if (err != -ETIMEDOUT) {
				atomic_fetch_add(&ctl->errors, 1);
				break;
			} else if (tmo == 0)
				cpu_relax();
		}
	} else {
		while (!stopping()) {
			ssize_t n = smem_ring_read(r, buf, c->size, tmo);

			if (n >= 0) {
				sum += touch(buf, (size_t)n);
				atomic_store_explicit(&ctl->count[w->index].n,
						      atomic_load_explicit(&ctl->count[w->index].n,
									   memory_order_relaxed) + 1,
						      memory_order_relaxed);
			} else if (n != -ETIMEDOUT) {
				atomic_fetch_add(&ctl->errors, 1);
				break;
			} else if (tmo == 0)
				cpu_relax();
		}
	}
	atomic_fetch_add(&ctl->sink, sum);
	smem_account(r);
	smem_ring_close(r);
	free(buf);
}

static struct smem_ring *smem_make(const struct cfg *c, const char *name)
{
	struct smem_ring *r;
	int err = smem_ring_create(name, c->nodes, (uint32_t)c->size, NULL, &r);

	if (err)
		die("smem_ring_create", err);
	return r;
}

static int smem_stream(const struct cfg *c, struct result *res)
{
	struct worker ws[MAX_WORKERS];
	struct smem_ring *owner = smem_make(c, c->name);
	int i, n = c->writers + c->readers;

	for (i = 0; i < n; i++)
		ws[i] = (struct worker){ .c = c, .index = i, .role = i >= c->writers,
					 .fn = smem_stream_worker };
	run(c, ws, n, res, NULL);
	res->syscalls_per_msg = atomic_load(&ctl->total) ?
		(double)atomic_load(&ctl->syscalls) / (double)atomic_load(&ctl->total) : -1;
	smem_ring_close(owner);
	return 0;
}

struct smem_pp {
	char a[80], b[80];
};

static bool smem_rt(struct worker *w, unsigned char *buf)
{
	struct smem_ring **rr = w->tp;
	int tmo = w->c->wait == WAIT_SPIN ? 0 : -1;
	ssize_t n;

	while (smem_ring_write(rr[0], buf, w->c->size, tmo) == -ETIMEDOUT)
		cpu_relax();
	while ((n = smem_ring_read(rr[1], buf, w->c->size, tmo)) == -ETIMEDOUT)
		cpu_relax();
	return n == (ssize_t)w->c->size;
}

static void smem_pp_worker(struct worker *w)
{
	const struct cfg *c = w->c;
	const struct smem_pp *pp = w->tp;
	struct smem_ring *rr[2];
	unsigned char *buf = malloc(c->size + 8);
	int tmo = c->wait == WAIT_SPIN ? 0 : 100;

	memset(buf, 0x33, c->size + 8);
	/* the pinger writes a, reads b; the ponger the other way round */
	rr[0] = smem_join(c, w->role == 0 ? pp->a : pp->b);
	rr[1] = smem_join(c, w->role == 0 ? pp->b : pp->a);
	ready_and_wait_go();
	if (w->role == 0) {
		struct worker me = *w;

		me.tp = rr;
		pinger_loop(&me, smem_rt, buf);
	} else {
		while (!stopping()) {
			ssize_t n = smem_ring_read(rr[1], buf, c->size, tmo);

			if (n < 0) {
				if (n == -ETIMEDOUT)
					continue;
				break;
			}
			while (smem_ring_write(rr[0], buf, (size_t)n, tmo) == -ETIMEDOUT &&
			       !stopping())
				;
		}
	}
	smem_account(rr[0]);
	smem_account(rr[1]);
	smem_ring_close(rr[0]);
	smem_ring_close(rr[1]);
	free(buf);
}

static int smem_pingpong(const struct cfg *c, struct result *res)
{
	struct smem_pp pp;
	struct smem_ring *a, *b;
	struct worker ws[2];
	int i;

	snprintf(pp.a, sizeof(pp.a), "%s-a", c->name);
	snprintf(pp.b, sizeof(pp.b), "%s-b", c->name);
	a = smem_make(c, pp.a);
	b = smem_make(c, pp.b);
	for (i = 0; i < 2; i++)
		ws[i] = (struct worker){ .c = c, .index = i, .role = i, .fn = smem_pp_worker,
					 .tp = &pp };
	run(c, ws, 2, res, NULL);
	rtt_result(c, res);
	/* two messages per round trip */
	res->syscalls_per_msg = ctl->nsamples ?
		(double)atomic_load(&ctl->syscalls) / (2.0 * (double)ctl->nsamples) : -1;
	smem_ring_close(a);
	smem_ring_close(b);
	return 0;
}

/* ---- naive: a spinning SPSC byte ring in a memfd ------------------------------------------- */

struct naive {
	_Atomic uint64_t head;		/* consumer */
	char pad0[56];
	_Atomic uint64_t tail;		/* producer */
	char pad1[56];
	uint64_t cap;
	char pad2[56];
	unsigned char data[];
};

static struct naive *naive_new(size_t cap)
{
	size_t size = sizeof(struct naive) + cap;
	int fd = memfd_create("ringbench-naive", MFD_CLOEXEC);
	struct naive *q;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("memfd", -errno);
	q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (q == MAP_FAILED)
		die("mmap", -errno);
	close(fd);
	q->cap = cap;
	return q;
}

static void naive_free(struct naive *q)
{
	munmap(q, sizeof(struct naive) + q->cap);
}

/* Returns false when asked to stop while waiting. */
static bool naive_put(struct naive *q, const unsigned char *src, size_t len, uint64_t *head_cache)
{
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed), off;

	while (tail + len - *head_cache > q->cap) {
		/* Acquire: pairs with the consumer's release of head (its copy is done). */
		*head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
		if (tail + len - *head_cache <= q->cap)
			break;
		if (stopping())
			return false;
		cpu_relax();
	}
	off = tail % q->cap;
	if (off + len <= q->cap) {
		memcpy(q->data + off, src, len);
	} else {
		memcpy(q->data + off, src, q->cap - off);
		memcpy(q->data, src + (q->cap - off), len - (q->cap - off));
	}
	/* Release: pairs with the consumer's acquire of tail. */
	atomic_store_explicit(&q->tail, tail + len, memory_order_release);
	return true;
}

static bool naive_get(struct naive *q, unsigned char *dst, size_t len, uint64_t *tail_cache)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed), off;

	while (*tail_cache - head < len) {
		*tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
		if (*tail_cache - head >= len)
			break;
		if (stopping())
			return false;
		cpu_relax();
	}
	off = head % q->cap;
	if (off + len <= q->cap) {
		memcpy(dst, q->data + off, len);
	} else {
		memcpy(dst, q->data + off, q->cap - off);
		memcpy(dst + (q->cap - off), q->data, len - (q->cap - off));
	}
	atomic_store_explicit(&q->head, head + len, memory_order_release);
	return true;
}

static void naive_stream_worker(struct worker *w)
{
	struct naive *q = w->tp;
	size_t size = w->c->size;
	unsigned char *buf = malloc(size + 8);
	uint64_t seq = 0, cache = 0, sum = 0;

	memset(buf, 0x5a, size + 8);
	ready_and_wait_go();
	if (w->role == 0) {
		for (;; seq++) {
			if (size >= 8)
				memcpy(buf, &seq, 8);
			if (!naive_put(q, buf, size, &cache) || stopping())
				break;
		}
	} else {
		while (naive_get(q, buf, size, &cache)) {
			sum += touch(buf, size);
			atomic_store_explicit(&ctl->count[w->index].n,
					      atomic_load_explicit(&ctl->count[w->index].n,
								   memory_order_relaxed) + 1,
					      memory_order_relaxed);
			if (stopping())
				break;
		}
	}
	atomic_fetch_add(&ctl->sink, sum);
	free(buf);
}

static int naive_stream(const struct cfg *c, struct result *res)
{
	struct naive *q = naive_new((size_t)c->nodes * c->size);
	struct worker ws[2];
	int i;

	for (i = 0; i < 2; i++)
		ws[i] = (struct worker){ .c = c, .index = i, .role = i, .fn = naive_stream_worker,
					 .tp = q };
	run(c, ws, 2, res, NULL);
	res->syscalls_per_msg = 0;
	naive_free(q);
	return 0;
}

struct naive_pp {
	struct naive *q[2];
	uint64_t cache[2];
};

static bool naive_rt(struct worker *w, unsigned char *buf)
{
	struct naive_pp *pp = w->tp;

	return naive_put(pp->q[0], buf, w->c->size, &pp->cache[0]) &&
	       naive_get(pp->q[1], buf, w->c->size, &pp->cache[1]);
}

static void naive_pp_worker(struct worker *w)
{
	struct naive **qs = w->tp;
	struct naive_pp pp = { { qs[w->role], qs[1 - w->role] }, { 0, 0 } };
	unsigned char *buf = malloc(w->c->size + 8);

	memset(buf, 0x33, w->c->size + 8);
	ready_and_wait_go();
	if (w->role == 0) {
		struct worker me = *w;

		me.tp = &pp;
		pinger_loop(&me, naive_rt, buf);
	} else {
		while (naive_get(pp.q[1], buf, w->c->size, &pp.cache[1]) &&
		       naive_put(pp.q[0], buf, w->c->size, &pp.cache[0]))
			;
	}
	free(buf);
}

static int naive_pingpong(const struct cfg *c, struct result *res)
{
	struct naive *qs[2] = { naive_new((size_t)c->nodes * c->size),
				naive_new((size_t)c->nodes * c->size) };
	struct worker ws[2];
	int i;

	for (i = 0; i < 2; i++)
		ws[i] = (struct worker){ .c = c, .index = i, .role = i, .fn = naive_pp_worker,
					 .tp = qs };
	run(c, ws, 2, res, NULL);
	rtt_result(c, res);
	res->syscalls_per_msg = 0;
	naive_free(qs[0]);
	naive_free(qs[1]);
	return 0;
}

/* ---- pipe and unix: byte streams through the kernel ------------------------------------ */

struct fdpair {
	int wr, rd;		/* stream: writer's and reader's ends */
	int fds[4];		/* pingpong: a->b write/read, b->a write/read */
	bool sock;		/* pingpong: fds are the two ends of one socketpair */
};

/* Close every fd of the pingpong set except @keep1 and @keep2 (each fd once). */
static void fd_close_others(struct fdpair *fp, int keep1, int keep2)
{
	int i, j;

	for (i = 0; i < 4; i++) {
		bool seen = false;

		for (j = 0; j < i; j++)
			seen |= fp->fds[j] == fp->fds[i];
		if (!seen && fp->fds[i] != keep1 && fp->fds[i] != keep2)
			close(fp->fds[i]);
	}
}

static bool full_write(int fd, const unsigned char *p, size_t len, uint64_t *calls)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		++*calls;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool full_read(int fd, unsigned char *p, size_t len, uint64_t *calls)
{
	while (len) {
		ssize_t n = read(fd, p, len);

		++*calls;
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void fd_stream_worker(struct worker *w)
{
	struct fdpair *fp = w->tp;
	size_t size = w->c->size;
	unsigned char *buf = malloc(size + 8);
	uint64_t seq = 0, calls = 0, sum = 0;

	memset(buf, 0x5a, size + 8);
	if (!w->c->threads)	/* our own copies of the other side's end */
		close(w->role == 0 ? fp->rd : fp->wr);
	ready_and_wait_go();
	if (w->role == 0) {
		for (; !stopping(); seq++) {
			if (size >= 8)
				memcpy(buf, &seq, 8);
			if (!full_write(fp->wr, buf, size, &calls))
				break;
		}
		close(fp->wr);	/* EOF tells the reader */
	} else {
		while (full_read(fp->rd, buf, size, &calls)) {
			sum += touch(buf, size);
			atomic_store_explicit(&ctl->count[w->index].n,
					      atomic_load_explicit(&ctl->count[w->index].n,
								   memory_order_relaxed) + 1,
					      memory_order_relaxed);
		}
		close(fp->rd);
		atomic_fetch_add(&ctl->total, atomic_load(&ctl->count[w->index].n));
	}
	atomic_fetch_add(&ctl->syscalls, calls);
	atomic_fetch_add(&ctl->sink, sum);
	free(buf);
}

static void fd_close_parent(struct worker *ws, int n)
{
	struct fdpair *fp = ws[0].tp;

	(void)n;
	if (!ws[0].c->threads) {
		close(fp->wr);
		close(fp->rd);
	}
}

static int fd_stream(const struct cfg *c, struct result *res, bool sock)
{
	struct fdpair fp;
	struct worker ws[2];
	int fds[2], i, sz = (int)((size_t)c->nodes * c->size);

	if (sock) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
			die("socketpair", -errno);
		setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		fp.wr = fds[0];
		fp.rd = fds[1];
	} else {
		if (pipe2(fds, O_CLOEXEC) < 0)
			die("pipe", -errno);
		fcntl(fds[1], F_SETPIPE_SZ, sz < (1 << 20) ? sz : (1 << 20));	/* best effort */
		fp.wr = fds[1];
		fp.rd = fds[0];
	}
	for (i = 0; i < 2; i++)
		ws[i] = (struct worker){ .c = c, .index = i, .role = i, .fn = fd_stream_worker,
					 .tp = &fp };
	/* processes: the parent drops its ends once the children have theirs (EOF works) */
	run(c, ws, 2, res, c->threads ? NULL : fd_close_parent);
	res->syscalls_per_msg = atomic_load(&ctl->total) ?
		(double)atomic_load(&ctl->syscalls) / (double)atomic_load(&ctl->total) : -1;
	return 0;
}

static int pipe_stream(const struct cfg *c, struct result *res)
{
	return fd_stream(c, res, false);
}

static int unix_stream(const struct cfg *c, struct result *res)
{
	return fd_stream(c, res, true);
}

struct fd_pp {
	int out, in;
	uint64_t calls;
};

static bool fd_rt(struct worker *w, unsigned char *buf)
{
	struct fd_pp *pp = w->tp;

	return full_write(pp->out, buf, w->c->size, &pp->calls) &&
	       full_read(pp->in, buf, w->c->size, &pp->calls);
}

static void fd_pp_worker(struct worker *w)
{
	struct fdpair *fp = w->tp;
	/* fds: 0 = a->b write end, 1 = a->b read end, 2 = b->a write end, 3 = b->a read end */
	struct fd_pp pp = w->role == 0 ? (struct fd_pp){ fp->fds[0], fp->fds[3], 0 }
				       : (struct fd_pp){ fp->fds[2], fp->fds[1], 0 };
	unsigned char *buf = malloc(w->c->size + 8);

	memset(buf, 0x33, w->c->size + 8);
	if (!w->c->threads)	/* only our two ends, so that EOF reaches the ponger */
		fd_close_others(fp, pp.out, pp.in);
	ready_and_wait_go();
	if (w->role == 0) {
		struct worker me = *w;

		me.tp = &pp;
		pinger_loop(&me, fd_rt, buf);
		/* unblock the ponger: it sees EOF on its next read */
		if (fp->sock)
			shutdown(pp.out, SHUT_WR);
		else
			close(pp.out);
	} else {
		while (full_read(pp.in, buf, w->c->size, &pp.calls) &&
		       full_write(pp.out, buf, w->c->size, &pp.calls))
			;
	}
	atomic_fetch_add(&ctl->syscalls, pp.calls);
	free(buf);
}

static void fd_pp_close_parent(struct worker *ws, int n)
{
	(void)n;
	fd_close_others(ws[0].tp, -1, -1);
}

static int fd_pingpong(const struct cfg *c, struct result *res, bool sock)
{
	struct fdpair fp;
	struct worker ws[2];
	int i, a[2], b[2];

	if (sock) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0)
			die("socketpair", -errno);
		fp.fds[0] = a[0];
		fp.fds[3] = a[0];
		fp.fds[1] = a[1];
		fp.fds[2] = a[1];
	} else {
		if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
			die("pipe", -errno);
		fp.fds[0] = a[1];
		fp.fds[1] = a[0];
		fp.fds[2] = b[1];
		fp.fds[3] = b[0];
	}
	fp.sock = sock;
	for (i = 0; i < 2; i++)
		ws[i] = (struct worker){ .c = c, .index = i, .role = i, .fn = fd_pp_worker,
					 .tp = &fp };
	run(c, ws, 2, res, c->threads ? NULL : fd_pp_close_parent);
	rtt_result(c, res);
	res->syscalls_per_msg = ctl->nsamples ?
		(double)atomic_load(&ctl->syscalls) / (2.0 * (double)ctl->nsamples) : -1;
	/* threads: the pinger closed the a->b write end of a pipe pair itself */
	if (c->threads)
		fd_close_others(&fp, sock ? -1 : fp.fds[0], -1);
	return 0;
}

static int pipe_pingpong(const struct cfg *c, struct result *res)
{
	return fd_pingpong(c, res, false);
}

static int unix_pingpong(const struct cfg *c, struct result *res)
{
	return fd_pingpong(c, res, true);
}

/* ---- futex: a raw futex ping-pong (the floor for a sleeping round trip) ------------------ */

struct futex_pp {
	_Atomic uint32_t turn;		/* 0: pinger's turn, 1: ponger's, 2: stop */
	char pad[60];
	_Atomic uint64_t calls;
	unsigned char buf[];
};

static bool futex_rt(struct worker *w, unsigned char *buf)
{
	struct futex_pp *f = w->tp;
	uint64_t calls = 0;

	memcpy(f->buf, buf, w->c->size);
	/* Release: pairs with the ponger's acquire of turn (the buffer is written). */
	atomic_store_explicit(&f->turn, 1, memory_order_release);
	futex(&f->turn, FUTEX_WAKE, 1);
	calls++;
	while (atomic_load_explicit(&f->turn, memory_order_acquire) == 1) {
		futex(&f->turn, FUTEX_WAIT, 1);
		calls++;
	}
	memcpy(buf, f->buf, w->c->size);
	atomic_fetch_add_explicit(&f->calls, calls, memory_order_relaxed);
	return true;
}

static void futex_pp_worker(struct worker *w)
{
	struct futex_pp *f = w->tp;
	unsigned char *buf = malloc(w->c->size + 8);

	memset(buf, 0x33, w->c->size + 8);
	ready_and_wait_go();
	if (w->role == 0) {
		pinger_loop(w, futex_rt, buf);
		atomic_store(&f->turn, 2);
		futex(&f->turn, FUTEX_WAKE, 1);
	} else {
		uint64_t calls = 0;
		uint32_t t;

		for (;;) {
			while ((t = atomic_load_explicit(&f->turn, memory_order_acquire)) == 0) {
				futex(&f->turn, FUTEX_WAIT, 0);
				calls++;
			}
			if (t == 2)
				break;
			memcpy(buf, f->buf, w->c->size);
			memcpy(f->buf, buf, w->c->size);
			atomic_store_explicit(&f->turn, 0, memory_order_release);
			futex(&f->turn, FUTEX_WAKE, 1);
			calls++;
		}
		atomic_fetch_add(&f->calls, calls);
	}
	free(buf);
}

static int futex_pingpong(const struct cfg *c, struct result *res)
{
	struct futex_pp *f = shared_map(sizeof(*f) + c->size);
	struct worker ws[2];
	int i;

	for (i = 0; i < 2; i++)
		ws[i] = (struct worker){ .c = c, .index = i, .role = i, .fn = futex_pp_worker,
					 .tp = f };
	run(c, ws, 2, res, NULL);
	rtt_result(c, res);
	res->syscalls_per_msg = ctl->nsamples ?
		(double)atomic_load(&f->calls) / (2.0 * (double)ctl->nsamples) : -1;
	munmap(f, sizeof(*f) + c->size);
	return 0;
}

/* ---- the table of transports --------------------------------------------------------------- */

struct transport {
	const char *name;
	int (*stream)(const struct cfg *c, struct result *res);	/* NULL: not this bench */
	int (*pingpong)(const struct cfg *c, struct result *res);
	bool baseline;		/* run by --compare */
	bool spsc;		/* stream only with one writer and one reader */
};

static const struct transport transports[] = {
	{ "smem", smem_stream, smem_pingpong, false, false },
	{ "naive", naive_stream, naive_pingpong, true, true },
	{ "pipe", pipe_stream, pipe_pingpong, true, true },
	{ "unix", unix_stream, unix_pingpong, true, true },
	{ "futex", NULL, futex_pingpong, true, true },
};

static void print_num(double v, int decimals)
{
	if (v < 0)
		fputs("null", stdout);
	else
		printf("%.*f", decimals, v);
}

static void report(const struct cfg *c, const char *transport, const struct result *r,
		   const struct result *ref)
{
	const char *bench = c->pingpong ? "pingpong" : "stream";

	if (c->json) {
		printf("{\"bench\":\"%s\",\"transport\":\"%s\",\"size\":%zu,\"nodes\":%u,"
		       "\"writers\":%d,\"readers\":%d,\"msgs_per_s\":", bench, transport, c->size,
		       c->nodes, c->writers, c->readers);
		print_num(r->msgs_per_s, 0);
		fputs(",\"gb_per_s\":", stdout);
		print_num(r->gb_per_s, 4);
		fputs(",\"rtt_ns_p50\":", stdout);
		print_num(r->rtt_p50, 0);
		fputs(",\"rtt_ns_p99\":", stdout);
		print_num(r->rtt_p99, 0);
		fputs(",\"syscalls_per_msg\":", stdout);
		print_num(r->syscalls_per_msg, 5);
		printf(",\"wait\":\"%s\",\"mode\":\"%s\",\"seconds\":%g}\n", wait_names[c->wait],
		       c->threads ? "threads" : "processes", c->seconds);
	} else {
		printf("%-8s %-6s size=%-8zu nodes=%-3u w=%d r=%d  %12.0f msgs/s %8.3f GB/s",
		       bench, transport, c->size, c->nodes, c->writers, c->readers, r->msgs_per_s,
		       r->gb_per_s);
		if (r->rtt_p50 >= 0)
			printf("  rtt p50 %.0f ns p99 %.0f ns", r->rtt_p50, r->rtt_p99);
		if (r->syscalls_per_msg >= 0)
			printf("  %.4f syscalls/msg", r->syscalls_per_msg);
		if (ref && ref != r && r->msgs_per_s > 0)
			printf("  (smem/this: %.2fx msgs/s%s)", ref->msgs_per_s / r->msgs_per_s,
			       "");
		if (ref && ref != r && r->rtt_p50 > 0)
			printf(" (smem/this rtt p50: %.2fx)", ref->rtt_p50 / r->rtt_p50);
		putchar('\n');
	}
	fflush(stdout);
}

static int cmp_rate(const void *a, const void *b)
{
	double x = ((const struct result *)a)->msgs_per_s, y = ((const struct result *)b)->msgs_per_s;

	return x < y ? -1 : x > y;
}

/* The run with the median message rate (its other figures come with it). */
static struct result median(struct result *runs, int n)
{
	qsort(runs, (size_t)n, sizeof(*runs), cmp_rate);
	return runs[n / 2];
}

static void usage(FILE *f)
{
	fputs("usage: ringbench stream|pingpong --size BYTES [--nodes N] [--writers W]\n"
	      "         [--readers R] [--seconds S] [--threads] [--wait spin|block|auto]\n"
	      "         [--cpus A,B,...] [--json] [--compare] [--transport NAME] [--repeat N]\n"
	      "transports: smem naive pipe unix futex (pingpong)\n", f);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	return (size_t)v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "nodes", required_argument, NULL, 'n' },
		{ "writers", required_argument, NULL, 'w' },
		{ "readers", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "threads", no_argument, NULL, 't' },
		{ "wait", required_argument, NULL, 'W' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "compare", no_argument, NULL, 'C' },
		{ "transport", required_argument, NULL, 'T' },
		{ "repeat", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg c = { .size = 1024, .nodes = 20, .writers = 1, .readers = 1, .seconds = 2,
			 .repeat = 1 };
	enum { NT = sizeof(transports) / sizeof(transports[0]), MAX_REPEAT = 99 };
	static struct result runs[NT][MAX_REPEAT];
	struct result res[NT], *ref = NULL;
	bool sel[NT];
	unsigned i;
	int o, k;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "pingpong"))
		c.pingpong = true;
	else if (strcmp(argv[1], "stream")) {
		usage(strcmp(argv[1], "--help") ? stderr : stdout);
		return strcmp(argv[1], "--help") ? 2 : 0;
	}
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': c.size = parse_size(optarg); break;
		case 'n': c.nodes = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'w': c.writers = atoi(optarg); break;
		case 'r': c.readers = atoi(optarg); break;
		case 'S': c.seconds = atof(optarg); break;
		case 't': c.threads = true; break;
		case 'j': c.json = true; break;
		case 'C': c.compare = true; break;
		case 'T': c.only = optarg; break;
		case 'R': c.repeat = atoi(optarg); break;
		case 'W':
			if (!strcmp(optarg, "spin"))
				c.wait = WAIT_SPIN;
			else if (!strcmp(optarg, "block"))
				c.wait = WAIT_BLOCK;
			else if (!strcmp(optarg, "auto"))
				c.wait = WAIT_AUTO;
			else {
				usage(stderr);
				return 2;
			}
			break;
		case 'c': {
			char *s = optarg, *end;

			while (*s && c.ncpus < MAX_WORKERS) {
				c.cpus[c.ncpus++] = (int)strtol(s, &end, 10);
				s = *end == ',' ? end + 1 : end;
				if (end == s && *s)
					break;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (c.pingpong)
		c.writers = c.readers = 1;
	if (!c.size || c.size > UINT32_MAX - 64 || c.nodes < 2 || c.writers < 1 ||
	    c.repeat < 1 || c.repeat > MAX_REPEAT ||
	    c.readers < 1 || c.writers + c.readers > MAX_WORKERS || c.seconds <= 0) {
		usage(stderr);
		return 2;
	}
	snprintf(c.name, sizeof(c.name), "ringbench-%d", (int)getpid());
	ctl_size = sizeof(struct ctl) + (c.pingpong ? MAX_SAMPLES * sizeof(uint64_t) : 0);
	ctl = shared_map(ctl_size);
	signal(SIGPIPE, SIG_IGN);

	/* which transports run */
	for (i = 0; i < NT; i++) {
		const struct transport *t = &transports[i];

		sel[i] = c.pingpong ? t->pingpong != NULL : t->stream != NULL;
		if (c.only ? strcmp(c.only, t->name) != 0 : (t->baseline && !c.compare))
			sel[i] = false;
		if (sel[i] && t->spsc && !c.pingpong && (c.writers != 1 || c.readers != 1)) {
			if (!c.json)
				printf("%-8s %-6s n/a with %d writers and %d readers\n", "stream",
				       t->name, c.writers, c.readers);
			sel[i] = false;
		}
	}
	/* rounds interleave the transports, so that a noisy moment hits them all alike */
	for (k = 0; k < c.repeat; k++)
		for (i = 0; i < NT; i++)
			if (sel[i])
				(c.pingpong ? transports[i].pingpong : transports[i].stream)(&c,
											&runs[i][k]);
	for (i = 0; i < NT; i++) {
		if (!sel[i])
			continue;
		res[i] = median(runs[i], c.repeat);
		if (!strcmp(transports[i].name, "smem"))
			ref = &res[i];
		report(&c, transports[i].name, &res[i], ref);
	}
	munmap(ctl, ctl_size);
	return 0;
}
