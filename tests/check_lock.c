/* SPDX-License-Identifier: MIT */
/*
 * The robust reader-writer lock (src/lock.c), over regions built by hand on a memfd so that
 * the lock is tested apart from the broker: exclusion across processes, writer preference,
 * timeouts, recursion errors, holders killed with SIGKILL, a randomised kill loop, a stress
 * test with processes and threads, corrupted lock words, and fork with an inherited handle.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "util/testutil.h"

/* ---- a region by hand: header page + lock + a little test data ---------------------- */

struct tdata {
	_Atomic uint32_t go;		/* parent -> children */
	_Atomic uint32_t ready;		/* children -> parent */
	_Atomic uint32_t inside;	/* holders inside the critical section */
	_Atomic uint32_t max_inside;
	_Atomic uint32_t readers_seen;	/* max readers seen together */
	_Atomic uint32_t stop;
	uint64_t x, y;			/* x == ~y whenever the data is consistent */
	uint64_t c0, c1;		/* stress counters: c1 == 2 * c0 */
	_Atomic uint64_t bad;		/* invariant violations seen */
};

struct tobj {
	struct smem_lock_shm lock;
	struct tdata d;
};

static int mfd = -1;
static void *map;
static size_t map_size;

static struct smem_region *region_new(void)
{
	struct smem_region *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->hdr = map;
	r->obj = (char *)map + SMEM_HDR_SIZE;
	r->obj_size = map_size - SMEM_HDR_SIZE;
	r->map_size = map_size;
	r->fd = mfd;
	r->live_fd = -1;
	r->kind = SMEM_KIND_BUFFER;
	return r;
}

static void region_free_(struct smem_region *r)
{
	smem__live_leave(r);
	free(r);
}

static struct tobj *obj(void)
{
	return (struct tobj *)(void *)((char *)map + SMEM_HDR_SIZE);
}

/* A handle: a private region view plus an attached lock. */
struct h {
	struct smem_region *r;
	struct smem__lock lk;
};

static struct h *h_open(void)
{
	struct h *h = calloc(1, sizeof(*h));

	ck_assert_ptr_nonnull(h);
	h->r = region_new();
	ck_assert_int_eq(smem__lock_attach(&h->lk, h->r, &obj()->lock), 0);
	return h;
}

static void h_close(struct h *h)
{
	smem__lock_detach(&h->lk);
	region_free_(h->r);
	free(h);
}

static void setup(void)
{
	t_fds_setup();
	map_size = SMEM_HDR_SIZE + ((sizeof(struct tobj) + 4095) & ~(size_t)4095);
	mfd = memfd_create("check_lock", MFD_CLOEXEC);
	ck_assert_int_ge(mfd, 0);
	ck_assert_int_eq(ftruncate(mfd, (off_t)map_size), 0);
	map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ck_assert_ptr_ne(map, MAP_FAILED);
	smem__lock_init(&obj()->lock);
}

static void teardown(void)
{
	munmap(map, map_size);
	close(mfd);
	mfd = -1;
	t_fds_teardown();
}

/* Wait (bounded) until *v >= n. */
static bool wait_ge(_Atomic uint32_t *v, uint32_t n, int ms)
{
	long long end = t_now_ms() + ms;

	while (atomic_load(v) < n) {
		if (t_now_ms() > end)
			return false;
		usleep(200);
	}
	return true;
}

static uint64_t state(void)
{
	return atomic_load(&obj()->lock.state);
}

/* ---- basics --------------------------------------------------------------------------- */

START_TEST(lock_uncontended_read_and_write_return_zero)
{
	struct h *a = h_open();

	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), 0);
	ck_assert_int_eq(smem__lock_held(&a->lk), SMEM_LOCK_WRITE);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), 0);
	ck_assert_int_eq(smem__lock_held(&a->lk), SMEM_LOCK_READ);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_held(&a->lk), SMEM_LOCK_NONE);
	ck_assert_uint_eq(state(), 0);
	/* Nobody slept, so nobody woke: the futex word never moved. */
	ck_assert_uint_eq(atomic_load(&obj()->lock.seq), 0);
	h_close(a);
}
END_TEST

START_TEST(lock_recursion_gives_edeadlk_and_stray_unlock_eperm)
{
	struct h *a = h_open();

	ck_assert_int_eq(smem__lock_unlock(&a->lk), -EPERM);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), 0);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), -EDEADLK);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), -EDEADLK);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), -EPERM);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), 0);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), -EDEADLK);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), -EDEADLK);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_uint_eq(state(), 0);
	h_close(a);
}
END_TEST

START_TEST(lock_two_handles_exclude_each_other_in_one_thread)
{
	struct h *a = h_open(), *b = h_open();

	ck_assert_uint_ne(a->lk.id, b->lk.id);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), 0);
	ck_assert_int_eq(smem__lock_rdlock(&b->lk, 0), 0);	/* readers share */
	ck_assert_uint_eq(state() & SMEM_LOCK_READERS_MASK, 2);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 0), -EDEADLK);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 0), -ETIMEDOUT);	/* a reads */
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 0), 0);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), -ETIMEDOUT);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), -ETIMEDOUT);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_uint_eq(state(), 0);
	h_close(a);
	h_close(b);
}
END_TEST

START_TEST(lock_timeout_is_honoured)
{
	struct h *a = h_open(), *b = h_open();
	long long t0, dt;

	ck_assert_int_eq(smem__lock_wrlock(&a->lk, -1), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(smem__lock_rdlock(&b->lk, 120), -ETIMEDOUT);
	dt = t_now_ms() - t0;
	ck_assert_int_ge(dt, 119);
	ck_assert_int_lt(dt, 1000);
	t0 = t_now_ms();
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 60), -ETIMEDOUT);
	dt = t_now_ms() - t0;
	ck_assert_int_ge(dt, 59);
	ck_assert_int_lt(dt, 1000);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	/* The timed-out waiters left nothing behind. */
	ck_assert_uint_eq(state() & ~SMEM_LOCK_WAITERS, 0);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 0), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	h_close(a);
	h_close(b);
}
END_TEST

/* ---- across processes ----------------------------------------------------------------- */

static int child_hold(void *arg)
{
	int mode = (int)(intptr_t)arg;
	struct h *c = h_open();
	int ret = mode == SMEM_LOCK_WRITE ? smem__lock_wrlock(&c->lk, 2000)
					  : smem__lock_rdlock(&c->lk, 2000);

	if (ret != 0)
		return 10;
	atomic_fetch_add(&obj()->d.ready, 1);
	while (!atomic_load(&obj()->d.go))
		usleep(200);
	if (smem__lock_unlock(&c->lk) != 0)
		return 11;
	h_close(c);
	return 0;
}

START_TEST(lock_writer_in_another_process_excludes_readers_and_writers)
{
	struct h *a = h_open();
	pid_t pid = t_fork(child_hold, (void *)(intptr_t)SMEM_LOCK_WRITE);

	ck_assert(wait_ge(&obj()->d.ready, 1, 2000));
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 30), -ETIMEDOUT);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 30), -ETIMEDOUT);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), -ETIMEDOUT);
	atomic_store(&obj()->d.go, 1);
	/* Woken by the child's unlock, long before the timeout. */
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 5000), 0);
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	h_close(a);
}
END_TEST

static int child_read_together(void *arg)
{
	int n = (int)(intptr_t)arg;
	struct h *c = h_open();
	uint32_t in;

	if (smem__lock_rdlock(&c->lk, 2000) != 0)
		return 10;
	in = atomic_fetch_add(&obj()->d.inside, 1) + 1;
	if (in > atomic_load(&obj()->d.readers_seen))
		atomic_store(&obj()->d.readers_seen, in);
	/* Everybody must get in while we hold: readers do not exclude readers. */
	if (!wait_ge(&obj()->d.inside, (uint32_t)n, 3000))
		return 12;
	atomic_fetch_add(&obj()->d.ready, 1);
	if (!wait_ge(&obj()->d.ready, (uint32_t)n, 3000))
		return 13;
	atomic_fetch_sub(&obj()->d.inside, 1);
	if (smem__lock_unlock(&c->lk) != 0)
		return 11;
	h_close(c);
	return 0;
}

START_TEST(lock_readers_in_many_processes_hold_together)
{
	enum { N = 4 };
	pid_t pids[N];
	int i;

	for (i = 0; i < N; i++)
		pids[i] = t_fork(child_read_together, (void *)(intptr_t)N);
	for (i = 0; i < N; i++)
		ck_assert_int_eq(t_wait(pids[i]), 0);
	ck_assert_uint_eq(atomic_load(&obj()->d.readers_seen), N);
	ck_assert_uint_eq(state() & SMEM_LOCK_READERS_MASK, 0);
}
END_TEST

static int child_writer_waits(void *arg)
{
	struct h *c = h_open();
	int ret;

	(void)arg;
	ret = smem__lock_wrlock(&c->lk, 5000);
	if (ret != 0)
		return 10;
	/* The reader must be gone by now. */
	if (atomic_load(&obj()->d.inside) != 0)
		return 12;
	obj()->d.x = 42;
	smem__lock_unlock(&c->lk);
	h_close(c);
	return 0;
}

START_TEST(lock_writer_waiting_behind_readers_gets_in_and_blocks_new_readers)
{
	struct h *a = h_open(), *b = h_open();
	pid_t pid;
	long long end;

	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), 0);
	atomic_store(&obj()->d.inside, 1);
	pid = t_fork(child_writer_waits, NULL);
	/* Wait until the child has claimed the writer field (it is draining our read). */
	end = t_now_ms() + 3000;
	while ((state() >> SMEM_LOCK_WRITER_SHIFT) == 0)
		ck_assert(t_now_ms() < end);
	/* Writer preference: a new reader does not overtake the waiting writer. */
	ck_assert_int_eq(smem__lock_rdlock(&b->lk, 30), -ETIMEDOUT);
	atomic_store(&obj()->d.inside, 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_rdlock(&b->lk, 5000), 0);
	ck_assert_uint_eq(obj()->d.x, 42);	/* the writer went first */
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(t_wait(pid), 0);
	h_close(a);
	h_close(b);
}
END_TEST

/* ---- crashes -------------------------------------------------------------------------- */

static int child_hold_forever(void *arg)
{
	int mode = (int)(intptr_t)arg;
	struct h *c = h_open();
	int ret = mode == SMEM_LOCK_WRITE ? smem__lock_wrlock(&c->lk, 2000)
					  : smem__lock_rdlock(&c->lk, 2000);

	if (ret != 0)
		return 10;
	if (mode == SMEM_LOCK_WRITE)
		obj()->d.x = 1;		/* half an update: y is not ~x */
	atomic_fetch_add(&obj()->d.ready, 1);
	for (;;)
		pause();
}

START_TEST(lock_write_holder_killed_gives_eownerdead_once)
{
	struct h *a = h_open(), *b = h_open();
	pid_t pid = t_fork(child_hold_forever, (void *)(intptr_t)SMEM_LOCK_WRITE);
	long long t0;

	ck_assert(wait_ge(&obj()->d.ready, 1, 2000));
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 20), -ETIMEDOUT);	/* alive: held */
	t_kill9(pid);
	t0 = t_now_ms();
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 2000), -EOWNERDEAD);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	obj()->d.y = ~obj()->d.x;	/* repair */
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 100), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 100), 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_uint_eq(atomic_load(&obj()->lock.recoveries), 1);
	h_close(a);
	h_close(b);
}
END_TEST

START_TEST(lock_write_holder_killed_is_reported_to_the_next_reader)
{
	struct h *a = h_open(), *b = h_open();
	pid_t pid = t_fork(child_hold_forever, (void *)(intptr_t)SMEM_LOCK_WRITE);

	ck_assert(wait_ge(&obj()->d.ready, 1, 2000));
	t_kill9(pid);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 2000), -EOWNERDEAD);
	ck_assert_int_eq(smem__lock_rdlock(&b->lk, 100), 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 100), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	h_close(a);
	h_close(b);
}
END_TEST

START_TEST(lock_read_holder_killed_gives_eownerdead_to_the_writer_once)
{
	struct h *a = h_open(), *b = h_open();
	pid_t pid = t_fork(child_hold_forever, (void *)(intptr_t)SMEM_LOCK_READ);
	long long t0;

	ck_assert(wait_ge(&obj()->d.ready, 1, 2000));
	/* Readers share with the live reader and with its corpse alike. */
	ck_assert_int_eq(smem__lock_rdlock(&b->lk, 0), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 20), -ETIMEDOUT);	/* alive: held */
	t_kill9(pid);
	t0 = t_now_ms();
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 2000), -EOWNERDEAD);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 100), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 100), 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_uint_eq(state(), 0);
	h_close(a);
	h_close(b);
}
END_TEST

static int child_drain_forever(void *arg)
{
	struct h *c = h_open();

	(void)arg;
	smem__lock_wrlock(&c->lk, -1);	/* claims the writer field, then drains forever */
	return 10;
}

/*
 * INCONSISTENT found while readers hold stays in the state until somebody really acquires:
 * neither a draining writer that times out nor one killed while draining (whose recovery
 * sees readers != 0 and adds no flag) may lose it.
 */
START_TEST(lock_flag_survives_writers_that_time_out_or_die_while_draining)
{
	struct h *a = h_open(), *b = h_open();
	pid_t pid;
	long long end;

	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), 0);
	/* A dead writer's flag that no acquirer has consumed yet, under a live reader. */
	atomic_fetch_or(&obj()->lock.state, SMEM_LOCK_INCONSISTENT);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 30), -ETIMEDOUT);	/* drains, gives up */
	ck_assert_uint_eq(state() & ~SMEM_LOCK_WAITERS, SMEM_LOCK_INCONSISTENT | 1);
	pid = t_fork(child_drain_forever, NULL);
	end = t_now_ms() + 3000;
	while ((state() >> SMEM_LOCK_WRITER_SHIFT) == 0) {
		ck_assert(t_now_ms() < end);
		usleep(200);
	}
	t_kill9(pid);
	/* b recovers the dead writer while a still reads, then drains and gives up itself. */
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 100), -ETIMEDOUT);
	ck_assert_uint_eq(atomic_load(&obj()->lock.recoveries), 1);
	ck_assert_uint_eq(state() & ~SMEM_LOCK_WAITERS, SMEM_LOCK_INCONSISTENT | 1);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	/* The first real acquirer is told, once. */
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 100), -EOWNERDEAD);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 100), 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_uint_eq(state(), 0);
	h_close(a);
	h_close(b);
}
END_TEST

START_TEST(lock_closing_a_handle_that_holds_it_releases_it)
{
	struct h *a = h_open(), *b = h_open();

	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), 0);
	h_close(a);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 0), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	h_close(b);
}
END_TEST

/*
 * The kill loop. A long-lived child B and a short-lived child A per iteration both loop
 * "lock, check, update in two halves, unlock" (A also takes read locks). The parent kills A
 * at a random moment, then takes the lock itself. Whoever acquires must see consistent data
 * unless told -EOWNERDEAD (then it repairs); nobody may time out (no hang, no lost wakeup).
 */
static int update(struct h *c, int ret)
{
	struct tdata *d = &obj()->d;

	if (ret == -EOWNERDEAD)
		d->y = ~d->x;			/* repair */
	else if (ret != 0)
		return 20;
	else if (d->y != ~d->x)
		return 21;			/* inconsistent and nobody told us */
	d->x++;
	for (volatile int k = 0; k < 50; k++)
		;				/* widen the window between the halves */
	d->y = ~d->x;
	return smem__lock_unlock(&c->lk) ? 22 : 0;
}

static int child_loop(void *arg)
{
	bool forever = arg != NULL;
	struct h *c = h_open();
	unsigned i = 0;
	int ret;

	if (!forever)
		atomic_fetch_add(&obj()->d.ready, 1);
	while (!atomic_load(&obj()->d.stop)) {
		if (!forever && (i & 3) == 3) {
			ret = smem__lock_rdlock(&c->lk, 3000);
			if (ret != 0 && ret != -EOWNERDEAD)
				return 30;
			smem__lock_unlock(&c->lk);
		} else {
			ret = update(c, smem__lock_wrlock(&c->lk, 3000));
			if (ret)
				return ret;
		}
		if (forever)
			usleep(20);	/* leave the short-lived child the lock most of the time */
		i++;
	}
	h_close(c);
	return 0;
}

START_TEST(lock_random_kills_never_hang_or_lose_consistency)
{
	struct h *a = h_open();
	pid_t b, k;
	int i, ret, owner_dead = 0;
	unsigned seed = (unsigned)getpid();

	obj()->d.y = ~obj()->d.x;
	b = t_fork(child_loop, (void *)1);
	for (i = 0; i < 200; i++) {
		atomic_store(&obj()->d.ready, 0);
		k = t_fork(child_loop, NULL);
		ck_assert(wait_ge(&obj()->d.ready, 1, 3000));
		usleep((useconds_t)(rand_r(&seed) % 1500));
		t_kill9(k);
		ret = smem__lock_wrlock(&a->lk, 3000);
		ck_assert_msg(ret == 0 || ret == -EOWNERDEAD, "iteration %d: %d", i, ret);
		owner_dead += ret == -EOWNERDEAD;
		ck_assert_int_eq(update(a, ret), 0);
	}
	atomic_store(&obj()->d.stop, 1);
	ck_assert_int_eq(t_wait(b), 0);
	ck_assert_uint_eq(state() & ~SMEM_LOCK_WAITERS, 0);
	/* Each recovery was reported once; some kills landed outside the lock. */
	ck_assert_int_le(owner_dead, (int)atomic_load(&obj()->lock.recoveries));
	h_close(a);
}
END_TEST

/* ---- stress: 4 processes x 2 threads sharing the process's handle ------------------- */

#define STRESS_ITERS 20000

static void *stress_thread(void *arg)
{
	struct h *c = arg;
	struct tdata *d = &obj()->d;
	int i;

	for (i = 0; i < STRESS_ITERS; i++) {
		if (smem__lock_wrlock(&c->lk, 5000) != 0)
			return (void *)1;
		d->c0++;
		d->c1 += 2;
		smem__lock_unlock(&c->lk);
		if ((i & 7) == 0) {
			if (smem__lock_rdlock(&c->lk, 5000) != 0)
				return (void *)2;
			if (d->c1 != 2 * d->c0)
				atomic_fetch_add(&d->bad, 1);
			smem__lock_unlock(&c->lk);
		}
	}
	return NULL;
}

static int child_stress(void *arg)
{
	struct h *c = h_open();
	pthread_t t[2];
	void *r0, *r1;

	(void)arg;
	pthread_create(&t[0], NULL, stress_thread, c);
	pthread_create(&t[1], NULL, stress_thread, c);
	pthread_join(t[0], &r0);
	pthread_join(t[1], &r1);
	h_close(c);
	return r0 || r1 ? 1 : 0;
}

START_TEST(lock_stress_counts_are_exact)
{
	enum { P = 4 };
	pid_t pids[P];
	int i;

	for (i = 0; i < P; i++)
		pids[i] = t_fork(child_stress, NULL);
	for (i = 0; i < P; i++)
		ck_assert_int_eq(t_wait(pids[i]), 0);
	ck_assert_uint_eq(obj()->d.c0, (uint64_t)P * 2 * STRESS_ITERS);
	ck_assert_uint_eq(obj()->d.c1, (uint64_t)P * 2 * 2 * STRESS_ITERS);
	ck_assert_uint_eq(atomic_load(&obj()->d.bad), 0);
	ck_assert_uint_eq(state() & ~SMEM_LOCK_WAITERS, 0);
	ck_assert_uint_eq(atomic_load(&obj()->lock.recoveries), 0);
}
END_TEST

/* ---- hostile memory ------------------------------------------------------------------- */

START_TEST(lock_corrupt_writer_id_is_recovered)
{
	struct h *a = h_open();
	long long t0 = t_now_ms();

	/* An owner id naming a slot nobody ever claimed. */
	atomic_store(&obj()->lock.state, (uint64_t)(0x123456u << 8 | 200) << 32);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 1000), -EOWNERDEAD);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	/* Garbage with every bit set: a writer id that is not alive, and a full count. */
	atomic_store(&obj()->lock.state, ~0ull);
	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 1000), -EAGAIN);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 1000), -EOWNERDEAD);
	ck_assert_uint_eq(state() & SMEM_LOCK_READERS_MASK, 0);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	h_close(a);
}
END_TEST

START_TEST(lock_impossible_reader_count_is_recovered_by_a_writer)
{
	struct h *a = h_open(), *b = h_open();

	atomic_store(&obj()->lock.state, 12345);
	ck_assert_int_eq(smem__lock_rdlock(&b->lk, 0), 0);	/* readers still share */
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), -EOWNERDEAD);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_uint_eq(state(), 0);
	/* Reader slots full of garbage owned by nobody alive are ignored and cleared. */
	for (unsigned i = 0; i < SMEM_LOCK_READER_SLOTS; i++)
		if (i / SMEM_LOCK_SUBSLOTS != a->lk.slot && i / SMEM_LOCK_SUBSLOTS != b->lk.slot)
			atomic_store(&obj()->lock.readers[i], 0xdeadbeefcafef00dull);
	atomic_store(&obj()->lock.state, 7);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 100), -EOWNERDEAD);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_int_eq(smem__lock_wrlock(&b->lk, 0), 0);
	ck_assert_int_eq(smem__lock_unlock(&b->lk), 0);
	h_close(a);
	h_close(b);
}
END_TEST

START_TEST(lock_unlock_after_corruption_reports_eproto)
{
	struct h *a = h_open();

	ck_assert_int_eq(smem__lock_rdlock(&a->lk, 0), 0);
	atomic_store(&obj()->lock.state, 0);	/* our read hold vanished */
	ck_assert_int_eq(smem__lock_unlock(&a->lk), -EPROTO);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 0), 0);
	atomic_store(&obj()->lock.state, (uint64_t)(a->lk.id + 1) << 32);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), -EPROTO);
	ck_assert_int_eq(smem__lock_held(&a->lk), SMEM_LOCK_NONE);
	h_close(a);
}
END_TEST

/* ---- fork ----------------------------------------------------------------------------- */

static struct h *inherited;

static int child_inherited_hold(void *arg)
{
	(void)arg;
	if (smem__lock_held(&inherited->lk) != SMEM_LOCK_NONE)
		return 10;	/* the parent's holds are not ours */
	if (smem__lock_wrlock(&inherited->lk, 2000) != 0)
		return 11;
	atomic_fetch_add(&obj()->d.ready, 1);
	for (;;)
		pause();
}

START_TEST(lock_child_using_an_inherited_handle_is_a_participant_of_its_own)
{
	pid_t pid;

	inherited = h_open();
	ck_assert_int_eq(smem__lock_rdlock(&inherited->lk, 0), 0);
	ck_assert_int_eq(smem__lock_unlock(&inherited->lk), 0);
	pid = t_fork(child_inherited_hold, NULL);
	ck_assert(wait_ge(&obj()->d.ready, 1, 2000));
	ck_assert_uint_ne(state() >> SMEM_LOCK_WRITER_SHIFT, inherited->lk.id);
	ck_assert_int_eq(smem__lock_wrlock(&inherited->lk, 20), -ETIMEDOUT);
	t_kill9(pid);
	ck_assert_int_eq(smem__lock_wrlock(&inherited->lk, 2000), -EOWNERDEAD);
	ck_assert_int_eq(smem__lock_unlock(&inherited->lk), 0);
	h_close(inherited);
}
END_TEST

static _Noreturn void child_sleep(void *arg)
{
	(void)arg;
	obj()->d.c0 = (uint64_t)getpid();
	atomic_fetch_add(&obj()->d.ready, 1);
	for (;;)
		pause();
}

static int grandparent_holds(void *arg)
{
	struct h *c = h_open();
	pid_t sleeper;

	(void)arg;
	if (smem__lock_wrlock(&c->lk, 2000) != 0)
		return 10;
	/* A child that inherits our handle and outlives us must not keep us "alive". */
	sleeper = fork();
	if (sleeper == 0)
		child_sleep(NULL);
	for (;;)
		pause();
}

START_TEST(lock_holder_dies_while_its_child_lives_on)
{
	struct h *a = h_open();
	pid_t pid = t_fork(grandparent_holds, NULL);

	ck_assert(wait_ge(&obj()->d.ready, 1, 2000));
	t_kill9(pid);
	ck_assert_int_eq(smem__lock_wrlock(&a->lk, 2000), -EOWNERDEAD);
	ck_assert_int_eq(smem__lock_unlock(&a->lk), 0);
	ck_assert_uint_gt(obj()->d.c0, 1);
	kill((pid_t)obj()->d.c0, SIGKILL);
	h_close(a);
}
END_TEST

static Suite *lock_suite(void)
{
	Suite *s = suite_create("lock");
	TCase *tc = tcase_create("basics");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, lock_uncontended_read_and_write_return_zero);
	tcase_add_test(tc, lock_recursion_gives_edeadlk_and_stray_unlock_eperm);
	tcase_add_test(tc, lock_two_handles_exclude_each_other_in_one_thread);
	tcase_add_test(tc, lock_timeout_is_honoured);
	tcase_add_test(tc, lock_closing_a_handle_that_holds_it_releases_it);
	suite_add_tcase(s, tc);

	tc = tcase_create("processes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, lock_writer_in_another_process_excludes_readers_and_writers);
	tcase_add_test(tc, lock_readers_in_many_processes_hold_together);
	tcase_add_test(tc, lock_writer_waiting_behind_readers_gets_in_and_blocks_new_readers);
	tcase_add_test(tc, lock_stress_counts_are_exact);
	suite_add_tcase(s, tc);

	tc = tcase_create("crash");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, lock_write_holder_killed_gives_eownerdead_once);
	tcase_add_test(tc, lock_write_holder_killed_is_reported_to_the_next_reader);
	tcase_add_test(tc, lock_read_holder_killed_gives_eownerdead_to_the_writer_once);
	tcase_add_test(tc, lock_flag_survives_writers_that_time_out_or_die_while_draining);
	tcase_add_test(tc, lock_random_kills_never_hang_or_lose_consistency);
	tcase_add_test(tc, lock_child_using_an_inherited_handle_is_a_participant_of_its_own);
	tcase_add_test(tc, lock_holder_dies_while_its_child_lives_on);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, lock_corrupt_writer_id_is_recovered);
	tcase_add_test(tc, lock_impossible_reader_count_is_recovered_by_a_writer);
	tcase_add_test(tc, lock_unlock_after_corruption_reports_eproto);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(lock_suite)
