/* SPDX-License-Identifier: MIT */
/*
 * The broker scenario: a holder keeps a name while a churner creates, opens and closes names,
 * and the broker itself is killed; checked: the held name comes back with its bytes at the
 * restarted broker and the churner recovers (see crash.c).
 */
#include "crash.h"

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

void trial_broker(void)
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
		g_stats.kills[S_BROKER]++;
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
	g_stats.work[S_BROKER] += atomic_load(&sh->ops);
	munmap(sh, sizeof(*sh));
}
