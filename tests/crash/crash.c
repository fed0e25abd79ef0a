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
#include "crash.h"

/* ---- campaign-wide ------------------------------------------------------------------- */

static const char *const s_names[S_COUNT] = { "ring", "lock", "rpc", "broker" };

struct crash_stats g_stats;
int g_timeout_s = 10;
bool g_verbose;
unsigned long g_trial;
uint64_t g_rng;
const char *g_broker;
char g_prefix[64];
char g_fail[512];

struct proc procs[MAX_PROCS];
int nprocs;

uint64_t rnd(void)
{
	/* xorshift64*: reproducible from -s */
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return g_rng * 2685821657736338717ull;
}

unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

long long now_ms(void)
{
	return (long long)(smem__now_ns() / 1000000u);
}

void sleep_us(unsigned us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

void fail(const char *fmt, ...)
{
	va_list ap;

	if (g_fail[0])
		return;		/* keep the first */
	va_start(ap, fmt);
	vsnprintf(g_fail, sizeof(g_fail), fmt, ap);
	va_end(ap);
}

int count_fds(void)
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

void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("crash: mmap");
		exit(2);
	}
	return p;
}

/* ---- processes ------------------------------------------------------------------------ */

int spawn(int role, int id, int (*fn)(int role, int id, void *arg), void *arg)
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
int pick_victim(int role)
{
	int idx[MAX_PROCS], n = 0, i;

	for (i = 0; i < nprocs; i++)
		if (procs[i].pid > 0 && !procs[i].killed && (role < 0 || procs[i].role == role))
			idx[n++] = i;
	return n ? idx[rnd_below((unsigned)n)] : -1;
}

void kill9(int i, int s)
{
	kill(procs[i].pid, SIGKILL);
	procs[i].killed = true;
	g_stats.kills[s]++;
}

/*
 * Wait for the processes of @role (-1: all) until @deadline_ms. A process that is still
 * running then is a hang: it is killed and the trial fails. Exit codes other than 0 of
 * processes we did not kill fail the trial too (the child says why on stderr).
 */
void reap(int role, long long deadline_ms)
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

void reap_all_now(void)
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
unsigned leaked_names(void)
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
		g_stats.trials[s]++;
		if (g_fail[0]) {
			g_stats.failures[s]++;
			total_fail++;
			printf("crash: trial %lu (%s) FAILED: %s\n", g_trial, s_names[s], g_fail);
			fflush(stdout);
		} else if (g_verbose) {
			printf("crash: trial %lu (%s) ok\n", g_trial, s_names[s]);
		}
		s++;
	}
	for (s = 0; s < S_COUNT; s++) {
		if (!g_stats.trials[s])
			continue;
		total_kills += g_stats.kills[s];
		printf("crash: %-6s %u trials, %lu kills, %u failures; %llu %s", s_names[s],
		       g_stats.trials[s], g_stats.kills[s], g_stats.failures[s], g_stats.work[s],
		       s == S_RING ? "messages read" : s == S_LOCK ? "increments" :
		       s == S_RPC ? "calls answered" : "create/open/close rounds");
		if (s == S_RING)
			printf(", %llu lost with killed readers, %llu claims recovered",
			       g_stats.lost[s], g_stats.recovered[s]);
		if (s == S_LOCK)
			printf(", %llu EOWNERDEAD", g_stats.recovered[s]);
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
