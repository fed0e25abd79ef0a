/* SPDX-License-Identifier: MIT */
/*
 * ringbench: workers (processes or threads), the measurement window, and what each worker
 * accounts for (see the protocol in ringbench.h).
 *
 * System calls per message are counted in one of two ways, named in the output:
 *   perf     the kernel's raw_syscalls:sys_enter tracepoint, counted by perf_event_open(2)
 *            on each worker (with its children and threads) between go and stop: every
 *            system call the participants make, whoever makes it (libc, the library, us).
 *            Needs tracefs (bench/run mounts it as root) and perf_event_paranoid <= 1 or root.
 *            Counting costs each system call a little (all transports alike).
 *   counted  our own count of the calls a transport makes on its data path: for smem the
 *            ring's futex sleeps and wakes (smem_ring_stats), for RPC the library's
 *            io_uring_enter/futex_waitv calls (wakes not included), for the baselines the
 *            read/write/futex/eventfd calls the benchmark itself issues.
 * CPU time is getrusage(): RUSAGE_SELF of each worker process, or RUSAGE_THREAD of each worker
 * thread, between go and stop, summed over all workers (user + system). Spinning transports
 * therefore cost about one core each, whatever they move.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <smem.h>

#include "wait.h"
#include "ringbench.h"

/*
 * The parent holds names (the broker client runs a helper thread) and forks the workers, as
 * the test suites do: under TSan (make SANITIZE=thread) keep the children alive. They only use
 * smem and libc after the fork.
 */
#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}
#endif

struct rb_ctl *rb_ctl;
size_t rb_samples_bytes;
const char *const rb_wait_names[3] = { "auto", "spin", "block" };
char rb_label[128];
int rb_failed;
const char *rb_transport = "";
int rb_rep;
static long tracepoint_id = -2;		/* -2: not looked up yet, -1: unavailable */

uint64_t rb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rb_die(const char *what, int err)
{
	fprintf(stderr, "ringbench: %s: %s\n", what, smem_strerror(err));
	exit(1);
}

void *rb_shared_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		rb_die("mmap", -errno);
	return p;
}

/* The library's one pause-and-barrier (wait.h), so that the baselines spin as smem does. */
void rb_relax(void)
{
	smem__cpu_relax();
}

long rb_futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
	return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

uint64_t rb_touch(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t s = 0, w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, b + i, 8);
		s += w;
	}
	for (; i < len; i++)
		s += b[i];
	return s;
}

/*
 * Write the whole payload: a sequence word every 64 bytes (one store per cache line, so each
 * message dirties all its lines, as a real producer would), the rest left as filled once.
 */
void rb_stamp(void *buf, size_t len, uint64_t seq)
{
	unsigned char *b = buf;
	size_t i;

	for (i = 0; i + 8 <= len; i += 64)
		memcpy(b + i, &seq, 8);
	if (len && len < 8)
		b[0] = (unsigned char)seq;
}

/* pubsub (topic and its fan-out baselines): a sample's work is every cache line written and
 * every byte read; with --no-work, one 8-byte stamp written and read. */
void rb_pub_fill(const struct rb_cfg *c, void *buf, uint64_t seq)
{
	if (c->no_work)
		memcpy(buf, &seq, c->size < 8 ? c->size : 8);
	else
		rb_stamp(buf, c->size, seq);
}

uint64_t rb_sub_consume(const struct rb_cfg *c, const void *p, size_t len)
{
	uint64_t x = 0;

	if (!c->no_work)
		return rb_touch(p, len);
	memcpy(&x, p, len < 8 ? len : 8);
	return x;
}

/* A pubsub worker's wait: 0 (poll, relaxing between looks) when spinning, else 100 ms. */
int rb_pubsub_timeout(const struct rb_cfg *c)
{
	return c->wait == RB_WAIT_SPIN ? 0 : 100;
}

/* ---- accounting ------------------------------------------------------------------------- */

static long lookup_tracepoint(void)
{
	static const char *const paths[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	unsigned i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		FILE *f = fopen(paths[i], "re");
		long id;

		if (!f)
			continue;
		if (fscanf(f, "%ld", &id) == 1) {
			fclose(f);
			return id;
		}
		fclose(f);
	}
	return -1;
}

static int perf_open(void)
{
	struct perf_event_attr a;

	if (tracepoint_id < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_TRACEPOINT;
	a.size = sizeof(a);
	a.config = (uint64_t)tracepoint_id;
	a.inherit = 1;		/* threads the worker starts (a library service thread) */
	a.disabled = 1;
	return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static uint64_t perf_read(int fd)
{
	uint64_t v = 0;

	if (fd >= 0 && read(fd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	return v;
}

/* The calling thread's run delay (ns it was runnable but waited for a CPU), 0 if unknown. */
static uint64_t run_delay_now(void)
{
	unsigned long long on_cpu, delay;
	FILE *f = fopen("/proc/thread-self/schedstat", "re");
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "%llu %llu", &on_cpu, &delay);
	fclose(f);
	return n == 2 ? delay : 0;
}

static void cpu_now(const struct rb_worker *w, struct rb_usage *u)
{
	struct rusage ru;

	getrusage(w->c->threads ? RUSAGE_THREAD : RUSAGE_SELF, &ru);
	u->cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
		    ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
	u->nvcsw = (uint64_t)ru.ru_nvcsw;
	u->nivcsw = (uint64_t)ru.ru_nivcsw;
	u->run_delay_ns = run_delay_now();
}

void rb_ready(struct rb_worker *w)
{
	/*
	 * Map the sample array into this worker's page tables now: first touched inside the
	 * window, its 32 MiB cost the timing worker a page fault every 512 samples (11 us each
	 * on this PVM guest, up to 0.5 ms) while every call in flight waited. Best effort: the
	 * kernel may lack MADV_POPULATE_WRITE (5.14), and the samples are then faulted in as before.
	 */
	if (rb_samples_bytes) {
		/* from the page the array starts in (madvise wants an aligned start; the
		 * mapping begins with rb_ctl, so that page is ours) */
		uintptr_t a = (uintptr_t)rb_ctl->samples & ~(uintptr_t)4095;

		(void)madvise((void *)a, (uintptr_t)rb_ctl->samples + rb_samples_bytes - a,
			      MADV_POPULATE_WRITE);
	}
	atomic_fetch_add(&rb_ctl->ready, 1);
	/* Acquire: pairs with the parent's release of go (the ctl was reset before). */
	while (!atomic_load_explicit(&rb_ctl->go, memory_order_acquire))
		rb_relax();
	cpu_now(w, &w->u0);
	if (w->perf_fd >= 0) {
		ioctl(w->perf_fd, PERF_EVENT_IOC_ENABLE, 0);
		w->perf0 = perf_read(w->perf_fd);
	}
}

bool rb_stopping(void)
{
	return atomic_load_explicit(&rb_ctl->stop, memory_order_relaxed) != 0;
}

bool rb_measuring(void)
{
	return atomic_load_explicit(&rb_ctl->measuring, memory_order_relaxed) != 0;
}

void rb_count(struct rb_worker *w)
{
	/* One writer per slot: a plain increment, published relaxed for the parent's sums. */
	atomic_store_explicit(&rb_ctl->count[w->index].n,
			      atomic_load_explicit(&rb_ctl->count[w->index].n,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

void rb_sample(uint64_t ns)
{
	uint64_t n = atomic_load_explicit(&rb_ctl->nsamples, memory_order_relaxed);

	if (!rb_measuring() || n >= RB_MAX_SAMPLES)
		return;
	rb_ctl->samples[n] = ns;
	atomic_store_explicit(&rb_ctl->nsamples, n + 1, memory_order_relaxed);
}

void rb_account(struct rb_worker *w, uint64_t msgs, uint64_t counted)
{
	struct rb_usage u;

	if (w->perf_fd >= 0) {
		uint64_t v = perf_read(w->perf_fd);

		atomic_fetch_add(&rb_ctl->perf_syscalls, v - w->perf0);
		atomic_fetch_add(&rb_ctl->perf_workers, 1);
		close(w->perf_fd);
		w->perf_fd = -1;
	}
	cpu_now(w, &u);
	atomic_fetch_add(&rb_ctl->cpu_ns, u.cpu_ns - w->u0.cpu_ns);
	atomic_fetch_add(&rb_ctl->nvcsw, u.nvcsw - w->u0.nvcsw);
	atomic_fetch_add(&rb_ctl->nivcsw, u.nivcsw - w->u0.nivcsw);
	atomic_fetch_add(&rb_ctl->run_delay_ns, u.run_delay_ns - w->u0.run_delay_ns);
	atomic_fetch_add(&rb_ctl->msgs, msgs);
	atomic_fetch_add(&rb_ctl->syscalls, counted);
}

/* ---- workers ------------------------------------------------------------------------------ */

static void pin(const struct rb_worker *w)
{
	cpu_set_t set;

	if (!w->c->ncpus)
		return;
	CPU_ZERO(&set);
	CPU_SET(w->c->cpus[w->index % w->c->ncpus], &set);
	if (sched_setaffinity(0, sizeof(set), &set))	/* the calling thread */
		fprintf(stderr, "ringbench: cannot pin to CPU %d: %s\n",
			w->c->cpus[w->index % w->c->ncpus], strerror(errno));
}

static void *worker_main(void *p)
{
	struct rb_worker *w = p;

	/* Opened (disabled) before the worker starts any thread, so that the counter inherits
	 * to them all (a library service thread); rb_ready() enables it at go. */
	w->perf_fd = w->c->syscalls == RB_SYS_COUNTED ? -1 : perf_open();
	pin(w);
	w->fn(w);
	return NULL;
}

static void spawn(struct rb_worker *w)
{
	if (w->c->threads) {
		pthread_t t;

		if (pthread_create(&t, NULL, worker_main, w))
			rb_die("pthread_create", -EAGAIN);
		w->tid = (unsigned long)t;
		return;
	}
	fflush(NULL);
	w->pid = fork();
	if (w->pid < 0)
		rb_die("fork", -errno);
	if (w->pid == 0) {
		/* A parent that gives up (a peer worker died before the start) must not leave
		 * this one spinning for a peer that never comes. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() == 1)
			_exit(1);
		worker_main(w);
		_exit(atomic_load(&rb_ctl->errors) ? 1 : 0);
	}
}

static void reap(struct rb_worker *w)
{
	int st;

	if (w->c->threads) {
		pthread_join((pthread_t)w->tid, NULL);
		return;
	}
	while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		atomic_fetch_add(&rb_ctl->errors, 1);
}

/* A worker process that died before it was ready would leave us waiting forever. */
static void check_alive(struct rb_worker *ws, int n)
{
	int i, st;

	if (ws[0].c->threads)
		return;
	for (i = 0; i < n; i++)
		if (waitpid(ws[i].pid, &st, WNOHANG) == ws[i].pid) {
			fprintf(stderr, "ringbench: %s: worker %d exited before the start\n",
				rb_label, i);
			exit(1);
		}
}

static uint64_t read_counts(void)
{
	uint64_t s = 0;
	int i;

	for (i = 0; i < RB_MAX_WORKERS; i++)
		s += atomic_load_explicit(&rb_ctl->count[i].n, memory_order_relaxed);
	return s;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void progress(const struct rb_cfg *c, uint64_t t0, uint64_t m0, bool done)
{
	static uint64_t last;
	uint64_t now = rb_now_ns();
	double el = (double)(now - t0) / 1e9;

	if (!c->progress)
		return;
	if (done) {
		fputs("\r\033[K", stderr);
		return;
	}
	if (now - last < 1000000000ull || el < 1)
		return;
	last = now;
	fprintf(stderr, "\r\033[K[ringbench] %s: %.0f s, %.0f msgs/s", rb_label, el,
		el > 0 ? (double)(read_counts() - m0) / el : 0.0);
}

void rb_run(const struct rb_cfg *c, struct rb_worker *ws, int n, struct rb_result *res,
	    void (*after_stop)(struct rb_worker *ws, int n))
{
	uint64_t t0, t1, m0, m1, end, waited = 0;
	int i;

	if (tracepoint_id == -2)
		tracepoint_id = c->syscalls == RB_SYS_COUNTED ? -1 : lookup_tracepoint();
	memset(rb_ctl, 0, sizeof(*rb_ctl));
	for (i = 0; i < n; i++)
		spawn(&ws[i]);
	while (atomic_load(&rb_ctl->ready) < n) {
		sleep_ns(1000000);
		check_alive(ws, n);
		if (++waited > 60000) {
			fprintf(stderr, "ringbench: %s: workers not ready after 60 s\n", rb_label);
			exit(1);
		}
	}
	/* Release: the workers' acquire of go. */
	atomic_store_explicit(&rb_ctl->go, 1, memory_order_release);
	sleep_ns((uint64_t)(c->warmup * 1e9));
	m0 = read_counts();
	t0 = rb_now_ns();
	atomic_store(&rb_ctl->measuring, 1);
	/* --count: poll often (the parent is not pinned and wakes for microseconds); a run that
	 * never gets there ends after 300 s. */
	end = t0 + (c->count ? 300000000000ull : (uint64_t)(c->seconds * 1e9));
	for (;;) {
		uint64_t now = rb_now_ns();
		/*
		 * A window in which a starved worker (a loaded machine, a short --seconds) moved
		 * nothing is no measurement: it stretches until one message went through, and
		 * where round trips are timed (every bench but stream and pubsub) until one was,
		 * for 30 s at most, rather than reporting a rate or a round trip of nothing: the
		 * timed worker (one client of several, say) may be the starved one.
		 */
		bool timed = c->bench != RB_STREAM && c->bench != RB_PUBSUB;
		bool moved = read_counts() != m0 && (!timed || atomic_load(&rb_ctl->nsamples));

		if (atomic_load(&rb_ctl->errors) ||
		    (now >= end && (moved || now >= end + 30000000000ull)))
			break;
		if (c->count && read_counts() - m0 >= c->count &&
		    (moved || now >= t0 + 30000000000ull))
			break;
		progress(c, t0, m0, false);
		sleep_ns(c->count || now >= end ? 2000000 :
			 (end - now < 100000000 ? end - now : 100000000));
	}
	m1 = read_counts();
	t1 = rb_now_ns();
	atomic_store(&rb_ctl->measuring, 0);
	atomic_store(&rb_ctl->stop, 1);
	progress(c, t0, m0, true);
	if (after_stop)
		after_stop(ws, n);
	for (i = 0; i < n; i++)
		reap(&ws[i]);
	if (atomic_load(&rb_ctl->errors)) {
		fprintf(stderr, "ringbench: %s: %d worker errors\n", rb_label,
			atomic_load(&rb_ctl->errors));
		rb_failed = 1;
	}

	res->msgs_per_s = (double)(m1 - m0) / ((double)(t1 - t0) / 1e9);
	res->gb_per_s = res->msgs_per_s * (double)(c->size + (c->bench == RB_STREAM ? 0 : c->reply))
			/ 1e9;
	res->rtt_p50 = res->rtt_p99 = res->rtt_p999 = -1;
	res->syscalls_per_msg = res->cswitch_per_msg = res->cpu_s_per_msg = -1;
	res->run_delay_ms = (double)atomic_load(&rb_ctl->run_delay_ns) / 1e6;
	res->nivcsw = (double)atomic_load(&rb_ctl->nivcsw);
	{
		uint64_t msgs = atomic_load(&rb_ctl->msgs);
		bool perf = atomic_load(&rb_ctl->perf_workers) == n;

		if (msgs) {
			res->syscalls_perf = perf;
			res->syscalls_per_msg = (double)(perf ? atomic_load(&rb_ctl->perf_syscalls)
							      : atomic_load(&rb_ctl->syscalls)) /
						(double)msgs;
			res->cswitch_per_msg = (double)atomic_load(&rb_ctl->nvcsw) / (double)msgs;
			res->cpu_s_per_msg = (double)atomic_load(&rb_ctl->cpu_ns) / 1e9 / (double)msgs;
		}
	}
}

void rb_run_roles(const struct rb_cfg *c, int n, rb_worker_fn fn, void *tp, const char *wait,
		  struct rb_result *res, void (*after_stop)(struct rb_worker *ws, int n))
{
	struct rb_worker ws[RB_MAX_WORKERS];
	int i;

	for (i = 0; i < n; i++)
		ws[i] = (struct rb_worker){ .c = c, .index = i, .role = i, .fn = fn, .tp = tp };
	rb_run(c, ws, n, res, after_stop);
	res->wait = wait;
	if (c->bench != RB_STREAM)
		rb_rtt_result(c, res);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double quantile(uint64_t n, double q)
{
	return (double)rb_ctl->samples[(uint64_t)((double)(n - 1) * q)];
}

/*
 * --cdf: the round-trip distribution of the last repetition as quantile lines
 * "bench transport size wait quantile ns" (100 even steps, then the tail to 0.9999), for
 * bench/plot/latency.gp.
 */
static void write_cdf(const struct rb_cfg *c, const char *wait, uint64_t n)
{
	static const double tail[] = { 0.991, 0.992, 0.993, 0.994, 0.995, 0.996, 0.997, 0.998,
					0.999, 0.9992, 0.9994, 0.9996, 0.9998, 0.9999, 1.0 };
	static const char *const names[] = { "stream", "pingpong", "rpc" };
	FILE *f = fopen(c->cdf, "ae");
	unsigned i;

	if (!f) {
		fprintf(stderr, "ringbench: %s: %s\n", c->cdf, strerror(errno));
		return;
	}
	for (i = 0; i < 100 + sizeof(tail) / sizeof(tail[0]); i++) {
		double q = i < 100 ? (double)i / 100.0 : tail[i - 100];

		fprintf(f, "%s %s %zu %s %.4f %.0f\n", names[c->bench], rb_transport, c->size, wait,
			q, quantile(n, q));
	}
	fclose(f);
}

void rb_rtt_result(const struct rb_cfg *c, struct rb_result *res)
{
	uint64_t n = atomic_load(&rb_ctl->nsamples);

	if (!n)
		return;
	qsort(rb_ctl->samples, n, sizeof(uint64_t), cmp_u64);
	res->rtt_p50 = quantile(n, 0.5);
	res->rtt_p99 = quantile(n, 0.99);
	res->rtt_p999 = quantile(n, 0.999);
	if (c->cdf && rb_rep == c->reps - 1)
		write_cdf(c, res->wait ? res->wait : "", n);
}

void rb_pinger(struct rb_worker *w, bool (*rt)(struct rb_worker *w, void *buf), void *buf)
{
	uint64_t t, seq = 0, sum = 0;

	while (!rb_stopping()) {
		rb_stamp(buf, w->c->size, seq++);
		t = rb_now_ns();
		if (!rt(w, buf)) {
			if (!rb_stopping())
				atomic_fetch_add(&rb_ctl->errors, 1);
			break;
		}
		rb_sample(rb_now_ns() - t);
		sum += rb_touch(buf, w->c->reply);
		rb_count(w);
	}
	atomic_fetch_add(&rb_ctl->sink, sum);
}
