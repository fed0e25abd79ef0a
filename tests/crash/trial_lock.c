/* SPDX-License-Identifier: MIT */
/*
 * The lock scenario: processes increment a two-word counter under the buffer's write lock and
 * are killed mid-update; checked: locks are acquired in time, a torn counter is seen only after
 * -EOWNERDEAD, and the final count is within the kills (see crash.c).
 */
#include "crash.h"

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

void trial_lock(void)
{
	struct lock_shared *sh = shared_alloc(sizeof(*sh));
	struct smem_buffer *b;
	struct counter *c;
	unsigned kills = 1 + rnd_below(3), k, before = g_stats.kills[S_LOCK];
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
		if (a < done || a > done + (g_stats.kills[S_LOCK] - before))
			fail("lock: counter %llu, increments reported %llu, kills %lu",
			     (unsigned long long)a, (unsigned long long)done,
			     g_stats.kills[S_LOCK] - before);
		smem_buffer_unlock(b);
	}
	if (atomic_load(&sh->timeouts))
		fail("lock: %u acquisitions timed out (2 s): a dead holder was not recovered",
		     atomic_load(&sh->timeouts));
	if (atomic_load(&sh->torn))
		fail("lock: %u torn counters seen without EOWNERDEAD", atomic_load(&sh->torn));
	if (atomic_load(&sh->errors))
		fail("lock: %u workers failed", atomic_load(&sh->errors));
	g_stats.work[S_LOCK] += atomic_load(&sh->done);
	g_stats.recovered[S_LOCK] += atomic_load(&sh->eownerdead);
	smem_buffer_close(b);
	munmap(sh, sizeof(*sh));
}
