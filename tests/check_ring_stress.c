/* SPDX-License-Identifier: MIT */
/*
 * smem_ring under load and attack: exactly-once stress (threads and processes), kill -9 of
 * writers and readers holding nodes and a kill -9 matrix, and hostile shared memory. The
 * API's own tests are in check_ring.c.
 *
 * RING_STRESS_MSGS=N makes the exactly-once cases move N messages (make stress).
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring_int.h"
#include "util/ringutil.h"
#include "util/testutil.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}


static void spin_us(unsigned us)
{
	long long end = (long long)smem__now_ns() + (long long)us * 1000;

	while ((long long)smem__now_ns() < end)
		;
}


/* ---- exactly-once stress ----------------------------------------------------------------- */

#define ST_WRITERS 4
#define ST_READERS 4
#define ST_NODE 96
#define MSG_HDR 24

struct st_shared {
	_Atomic uint64_t received;
	_Atomic uint64_t bad;		/* checksum, pattern or order failures */
	_Atomic uint64_t dups;
	_Atomic uint64_t errors;	/* unexpected return codes */
	uint64_t per_writer;
	_Atomic uint64_t bits[];	/* ST_WRITERS * per_writer bits */
};

struct st_arg {
	struct st_shared *sh;
	const char *name;
	struct smem_ring *ring;		/* threads: a handle (shared or own); NULL: open one */
	uint32_t id;
};

static uint64_t msg_sum(const unsigned char *m, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < len; i++)
		if (i < 16 || i >= MSG_HDR)	/* everything but the sum itself */
			h = (h ^ m[i]) * 1099511628211ull;
	return h;
}

/* (producer, seq, checksum) + pattern; length varies with seq, 24..ST_NODE. */
static size_t msg_make(unsigned char *m, uint32_t producer, uint64_t seq)
{
	uint32_t len = MSG_HDR + (uint32_t)((seq * 7 + producer) % (ST_NODE - MSG_HDR + 1));
	uint64_t sum;
	uint32_t i;

	memcpy(m, &producer, 4);
	memcpy(m + 4, &len, 4);
	memcpy(m + 8, &seq, 8);
	for (i = MSG_HDR; i < len; i++)
		m[i] = (unsigned char)(producer * 31 + seq * 17 + i);
	sum = msg_sum(m, len);
	memcpy(m + 16, &sum, 8);
	return len;
}

static bool msg_check(const unsigned char *m, size_t len, uint32_t *producer, uint64_t *seq)
{
	uint64_t sum;
	uint32_t l;

	if (len < MSG_HDR)
		return false;
	memcpy(producer, m, 4);
	memcpy(&l, m + 4, 4);
	memcpy(seq, m + 8, 8);
	memcpy(&sum, m + 16, 8);
	return l == len && sum == msg_sum(m, len);
}

static int st_writer(struct st_arg *a, struct smem_ring *r)
{
	unsigned char m[ST_NODE];
	uint64_t seq;
	int err;

	for (seq = 0; seq < a->sh->per_writer; seq++) {
		if (seq & 1) {
			struct smem_ring_slot s;

			err = smem_ring_reserve_write(r, &s, -1);
			if (!err) {
				size_t len = msg_make(m, a->id, seq);

				memcpy(s.data, m, len);
				err = smem_ring_commit(r, &s, len);
			}
		} else {
			err = smem_ring_write(r, m, msg_make(m, a->id, seq), -1);
		}
		if (err) {
			atomic_fetch_add(&a->sh->errors, 1);
			return 1;
		}
	}
	return 0;
}

static void st_account(struct st_shared *sh, const unsigned char *m, size_t len,
		       uint64_t *last)
{
	uint32_t p;
	uint64_t seq, bit, old;

	if (!msg_check(m, len, &p, &seq) || p >= ST_WRITERS || seq >= sh->per_writer) {
		atomic_fetch_add(&sh->bad, 1);
		return;
	}
	/* FIFO per producer, as seen by each reader */
	if (last[p] != UINT64_MAX && seq <= last[p])
		atomic_fetch_add(&sh->bad, 1);
	last[p] = seq;
	bit = p * sh->per_writer + seq;
	old = atomic_fetch_or(&sh->bits[bit / 64], 1ull << (bit % 64));
	if (old & (1ull << (bit % 64)))
		atomic_fetch_add(&sh->dups, 1);
}

static int st_reader(struct st_arg *a, struct smem_ring *r)
{
	struct st_shared *sh = a->sh;
	uint64_t total = sh->per_writer * ST_WRITERS, last[ST_WRITERS], i = 0;
	unsigned char m[ST_NODE];

	memset(last, 0xff, sizeof(last));
	while (atomic_load(&sh->received) < total) {
		ssize_t n;

		if (++i & 1) {
			struct smem_ring_slot s;

			n = smem_ring_reserve_read(r, &s, 20);
			if (n == 0) {
				st_account(sh, s.data, s.len, last);
				n = smem_ring_release(r, &s);
			}
		} else {
			n = smem_ring_read(r, m, sizeof(m), 20);
			if (n >= 0) {
				st_account(sh, m, (size_t)n, last);
				n = 0;
			}
		}
		if (n == -ETIMEDOUT)
			continue;
		if (n < 0) {
			atomic_fetch_add(&sh->errors, 1);
			return 1;
		}
		atomic_fetch_add(&sh->received, 1);
	}
	return 0;
}

static int st_proc(void *p)
{
	struct st_arg *a = p;
	struct smem_ring *r = NULL;
	int ret;

	if (smem_ring_open(a->name, NULL, &r))
		return 10;
	/* 8 processes on 2 cores: sleep early rather than spin against the peer we wait for */
	smem_ring_set_spin(r, 2000);
	ret = a->id < ST_WRITERS ? st_writer(a, r) : st_reader(a, r);
	smem_ring_close(r);
	return ret;
}

static void *st_thread(void *p)
{
	struct st_arg *a = p;
	struct smem_ring *r = a->ring;
	int ret;

	if (!r && smem_ring_open(a->name, NULL, &r))
		return (void *)10;
	ret = a->id < ST_WRITERS ? st_writer(a, r) : st_reader(a, r);
	if (!a->ring)
		smem_ring_close(r);
	return (void *)(intptr_t)ret;
}

static uint64_t stress_msgs(uint64_t dflt)
{
	const char *e = getenv("RING_STRESS_MSGS");

	return e && *e ? strtoull(e, NULL, 0) : dflt;
}

static void stress_run(bool threads, uint64_t total)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 8, ST_NODE);
	uint64_t per = total / ST_WRITERS, nbits, words, i, missing;
	struct st_arg args[ST_WRITERS + ST_READERS];
	pthread_t tids[ST_WRITERS + ST_READERS];
	pid_t pids[ST_WRITERS + ST_READERS];
	struct st_shared *sh;
	size_t shsize;
	unsigned k;

	nbits = per * ST_WRITERS;
	words = (nbits + 63) / 64;
	shsize = sizeof(*sh) + words * 8;
	sh = shared_alloc(shsize);
	sh->per_writer = per;
	for (k = 0; k < ST_WRITERS + ST_READERS; k++) {
		args[k] = (struct st_arg){ sh, name, NULL, k };
		/* threads: readers 4 and 5 share the owner's handle, the others open their own */
		if (threads && (k == 4 || k == 5))
			args[k].ring = r;
		if (threads)
			ck_assert_int_eq(pthread_create(&tids[k], NULL, st_thread, &args[k]), 0);
		else
			pids[k] = t_fork(st_proc, &args[k]);
	}
	for (k = 0; k < ST_WRITERS + ST_READERS; k++) {
		if (threads) {
			void *ret;

			pthread_join(tids[k], &ret);
			ck_assert_msg(ret == NULL, "worker %u returned %p", k, ret);
		} else {
			ck_assert_msg(t_wait(pids[k]) == 0, "worker %u failed", k);
		}
	}
	ck_assert_uint_eq(atomic_load(&sh->errors), 0);
	ck_assert_uint_eq(atomic_load(&sh->bad), 0);
	ck_assert_uint_eq(atomic_load(&sh->dups), 0);
	ck_assert_uint_eq(atomic_load(&sh->received), nbits);
	for (i = 0, missing = 0; i < nbits; i++)
		if (!(atomic_load(&sh->bits[i / 64]) & (1ull << (i % 64))))
			missing++;
	ck_assert_uint_eq(missing, 0);
	ck_assert_uint_eq(t_ring_stats(r).corruptions, 0);
	ck_assert_uint_eq(t_ring_stats(r).drops_recovered, 0);
	ck_assert_int_eq(smem_ring_next_len(r), -EAGAIN);
	munmap(sh, shsize);
	smem_ring_close(r);
}

START_TEST(ring_4x4_processes_deliver_every_message_once_in_producer_order)
{
	stress_run(false, stress_msgs(200000));
}
END_TEST

START_TEST(ring_4x4_threads_deliver_every_message_once_in_producer_order)
{
	stress_run(true, stress_msgs(200000));
}
END_TEST

/* ---- crashes ------------------------------------------------------------------------------ */

static int hold_write_child(void *p)
{
	int *pipefd = p;
	struct smem_ring *r = NULL;
	struct smem_ring_slot s;
	char name[128];

	if (read(pipefd[0], name, sizeof(name)) <= 0 || smem_ring_open(name, NULL, &r))
		return 10;
	if (smem_ring_reserve_write(r, &s, 1000))
		return 11;
	memset(s.data, 'X', 8);
	if (write(pipefd[1], "k", 1) != 1)
		return 12;
	pause();	/* killed while holding the node */
	return 0;
}

START_TEST(ring_writer_killed_holding_a_node_loses_only_its_message)
{
	char name[128], got[8];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 8);
	int to_child[2], from_child[2], fds[2];
	long long t0;
	ssize_t n;
	pid_t pid;
	char k;

	ck_assert_int_eq(pipe(to_child), 0);
	ck_assert_int_eq(pipe(from_child), 0);
	fds[0] = to_child[0];
	fds[1] = from_child[1];
	pid = t_fork(hold_write_child, fds);
	ck_assert_int_eq(write(to_child[1], name, sizeof(name)), (ssize_t)sizeof(name));
	ck_assert_int_eq(read(from_child[0], &k, 1), 1);
	ck_assert_int_eq(smem_ring_write(r, "after", 5, 0), 0);	/* position 1 */
	t_kill9(pid);
	t0 = t_now_ms();
	n = smem_ring_read(r, got, sizeof(got), 2000);
	ck_assert_int_eq(n, 5);
	ck_assert_mem_eq(got, "after", 5);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_uint_eq(t_ring_stats(r).drops_recovered, 1);
	ck_assert_uint_eq(t_ring_stats(r).nodes_reclaimed, 0);
	/* the ring is whole: all four nodes usable */
	for (k = 0; k < 4; k++)
		ck_assert_int_eq(smem_ring_write(r, &k, 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, &k, 1, 0), -ETIMEDOUT);
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);
	smem_ring_close(r);
}
END_TEST

static int hold_read_child(void *p)
{
	int *pipefd = p;
	struct smem_ring *r = NULL;
	struct smem_ring_slot s;
	char name[128];

	if (read(pipefd[0], name, sizeof(name)) <= 0 || smem_ring_open(name, NULL, &r))
		return 10;
	if (smem_ring_reserve_read(r, &s, 1000))
		return 11;
	if (write(pipefd[1], "k", 1) != 1)
		return 12;
	pause();
	return 0;
}

START_TEST(ring_reader_killed_holding_a_node_gives_it_back)
{
	char name[128], got[8];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 8);
	int to_child[2], from_child[2], fds[2];
	long long t0;
	pid_t pid;
	char k;

	ck_assert_int_eq(smem_ring_write(r, "A", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "B", 1, 0), 0);
	ck_assert_int_eq(pipe(to_child), 0);
	ck_assert_int_eq(pipe(from_child), 0);
	fds[0] = to_child[0];
	fds[1] = from_child[1];
	pid = t_fork(hold_read_child, fds);
	ck_assert_int_eq(write(to_child[1], name, sizeof(name)), (ssize_t)sizeof(name));
	ck_assert_int_eq(read(from_child[0], &k, 1), 1);
	t_kill9(pid);
	/* full until the dead reader's node (A) is reclaimed */
	t0 = t_now_ms();
	ck_assert_int_eq(smem_ring_write(r, "C", 1, 2000), 0);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_uint_eq(t_ring_stats(r).nodes_reclaimed, 1);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), 1);
	ck_assert_int_eq(got[0], 'B');
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), 1);
	ck_assert_int_eq(got[0], 'C');
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);
	smem_ring_close(r);
}
END_TEST

/*
 * The crash matrix: a survivor writer and a survivor reader keep the ring busy while victims
 * (alternately writers and readers, each with its own handle) are killed at random points,
 * mostly while they hold a node. Every message is (producer, seq); readers record receipt
 * while they still hold the node, writers record their count after commit.
 */
#define CM_TRIALS 520
#define CM_PRODUCERS (CM_TRIALS + 1)
#define CM_SEQS 4096
#define CM_SURVIVOR_SEQS (1u << 20)

struct cm_shared {
	_Atomic uint32_t stop;		/* 1: writer stops; 2: reader drains and stops */
	_Atomic uint32_t ready[CM_PRODUCERS];
	_Atomic uint64_t committed[CM_PRODUCERS];
	_Atomic uint8_t recv0[CM_SURVIVOR_SEQS];
	_Atomic uint8_t recv[CM_PRODUCERS][CM_SEQS];
	_Atomic uint64_t bad;
	_Atomic uint64_t survivor_reads;
};

struct cm_arg {
	struct cm_shared *sh;
	const char *name;
	uint32_t producer;		/* 0: survivor writer */
	uint64_t seed;
	bool victim;
};

static _Atomic uint8_t *cm_slot(struct cm_shared *sh, uint32_t p, uint64_t seq)
{
	if (p == 0)
		return seq < CM_SURVIVOR_SEQS ? &sh->recv0[seq] : NULL;
	return p < CM_PRODUCERS && seq < CM_SEQS ? &sh->recv[p][seq] : NULL;
}

static int cm_writer(void *p)
{
	struct cm_arg *a = p;
	uint64_t limit = a->producer ? CM_SEQS : CM_SURVIVOR_SEQS, seq, rng = a->seed;
	struct smem_ring *r = NULL;

	if (smem_ring_open(a->name, NULL, &r))
		return 10;
	smem_ring_set_spin(r, 1000);
	atomic_store(&a->sh->ready[a->producer], 1);
	for (seq = 0; seq < limit && !(a->producer == 0 && atomic_load(&a->sh->stop)); seq++) {
		struct smem_ring_slot s;
		int err;

		do
			err = smem_ring_reserve_write(r, &s, 100);
		while (err == -ETIMEDOUT && !(a->producer == 0 && atomic_load(&a->sh->stop)));
		if (err == -ETIMEDOUT)
			break;
		if (err)
			return 11;
		memcpy(s.data, &a->producer, 4);
		memcpy((char *)s.data + 4, &seq, 8);
		if (a->victim)
			spin_us((unsigned)(t_rng_next(&rng) % 60));	/* mostly killed in here */
		if (smem_ring_commit(r, &s, 12))
			return 12;
		atomic_store(&a->sh->committed[a->producer], seq + 1);
		if (!a->victim)
			usleep(50);	/* leave the 2 cores to the victims and the kill loop */
	}
	smem_ring_close(r);
	return 0;
}

static int cm_reader(void *p)
{
	struct cm_arg *a = p;
	struct cm_shared *sh = a->sh;
	struct smem_ring *r = NULL;
	uint64_t rng = a->seed;

	if (smem_ring_open(a->name, NULL, &r))
		return 10;
	smem_ring_set_spin(r, 1000);
	if (a->victim)
		atomic_store(&sh->ready[a->producer], 1);
	for (;;) {
		struct smem_ring_slot s;
		_Atomic uint8_t *slot;
		uint32_t prod;
		uint64_t seq;
		int err = smem_ring_reserve_read(r, &s, 100);

		if (err == -ETIMEDOUT) {
			if (!a->victim && atomic_load(&sh->stop) == 2)
				break;
			continue;
		}
		if (err)
			return 11;
		memcpy(&prod, s.data, 4);
		memcpy(&seq, (char *)s.data + 4, 8);
		slot = cm_slot(sh, prod, seq);
		if (s.len != 12 || !slot)
			atomic_fetch_add(&sh->bad, 1);
		else
			atomic_fetch_add(slot, 1);
		if (a->victim)
			spin_us((unsigned)(t_rng_next(&rng) % 400));	/* mostly killed in here */
		else
			atomic_fetch_add(&sh->survivor_reads, 1);
		if (smem_ring_release(r, &s))
			return 12;
	}
	smem_ring_close(r);
	return 0;
}

START_TEST(ring_kill9_matrix_loses_only_claimed_messages_and_keeps_flowing)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16);
	struct cm_shared *sh = shared_alloc(sizeof(*sh));
	struct cm_arg sw = { sh, name, 0, 1, false }, sr = { sh, name, 0, 2, false };
	uint64_t rng = 0x9e3779b97f4a7c15ull, lost = 0, writer_kills = 0, reader_kills = 0;
	uint64_t dups = 0, phantoms = 0;
	pid_t spw, spr;
	uint32_t t, p;
	struct smem_ring_stats st;

	spr = t_fork(cm_reader, &sr);
	spw = t_fork(cm_writer, &sw);
	for (t = 0; t < CM_TRIALS; t++) {
		/* victims use producer ids 1..CM_TRIALS (readers only for their ready flag) */
		struct cm_arg va = { sh, name, t + 1, t_rng_next(&rng), true };
		long long t0 = t_now_ms();
		pid_t v;

		v = t_fork(t % 2 ? cm_reader : cm_writer, &va);
		while (!atomic_load(&sh->ready[t + 1]) && t_now_ms() - t0 < 2000)
			usleep(20);
		ck_assert_msg(atomic_load(&sh->ready[t + 1]), "victim %u never started", t);
		usleep((useconds_t)(t_rng_next(&rng) % 1500));
		t_kill9(v);
		if (t % 2)
			reader_kills++;
		else
			writer_kills++;
	}
	atomic_store(&sh->stop, 1);
	ck_assert_int_eq(t_wait(spw), 0);
	atomic_store(&sh->stop, 2);
	ck_assert_int_eq(t_wait(spr), 0);

	st = t_ring_stats(r);
	ck_assert_uint_eq(atomic_load(&sh->bad), 0);
	/* plain loops: a ck_assert per message would cost a pipe write each in fork mode */
	for (p = 0; p < CM_PRODUCERS; p++) {
		uint64_t c = atomic_load(&sh->committed[p]), s;
		uint64_t lim = p ? CM_SEQS : CM_SURVIVOR_SEQS;

		for (s = 0; s < lim; s++) {
			uint8_t got = atomic_load(cm_slot(sh, p, s));

			if (got > 1)
				dups++;
			/* s == c: committed but killed before recording it */
			if (got && s > c)
				phantoms++;
			if (s < c && !got)
				lost++;
		}
	}
	ck_assert_uint_eq(dups, 0);
	ck_assert_uint_eq(phantoms, 0);
	/* the survivor writer kept writing through all the kills */
	ck_assert_uint_gt(atomic_load(&sh->committed[0]), CM_TRIALS);
	/* losses: only messages claimed by killed readers, each counted as a reclaimed node */
	ck_assert_uint_le(lost, st.nodes_reclaimed);
	ck_assert_uint_le(st.nodes_reclaimed, reader_kills);
	ck_assert_uint_le(st.drops_recovered, writer_kills);
	ck_assert_uint_gt(st.nodes_reclaimed, 0);
	ck_assert_uint_gt(st.drops_recovered, 0);
	ck_assert_uint_eq(st.corruptions, 0);
	fprintf(stderr, "crash matrix: %u kills, %llu drops recovered, %llu nodes reclaimed, "
		"%llu lost, %llu survivor messages\n", CM_TRIALS,
		(unsigned long long)st.drops_recovered, (unsigned long long)st.nodes_reclaimed,
		(unsigned long long)lost, (unsigned long long)atomic_load(&sh->committed[0]));
	munmap(sh, sizeof(*sh));
	smem_ring_close(r);
}
END_TEST

/* ---- hostile memory ----------------------------------------------------------------------- */

START_TEST(ring_corrupt_length_gives_eproto_and_ring_keeps_flowing)
{
	char name[128], got[16];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16);
	struct smem_ring_node *nodes = (void *)((char *)smem__ring_shm(r) + SMEM_RING_HDR_SIZE);
	struct smem_ring_slot s;

	ck_assert_int_eq(smem_ring_write(r, "one", 3, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "two", 3, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "three", 5, 0), 0);
	atomic_store(&nodes[0].len, 17);
	atomic_store(&nodes[1].len, UINT32_MAX);
	ck_assert_int_eq(smem_ring_next_len(r), -EPROTO);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -EPROTO);
	ck_assert_int_eq(smem_ring_reserve_read(r, &s, 0), -EPROTO);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), 5);
	ck_assert_mem_eq(got, "three", 5);
	ck_assert_uint_ge(t_ring_stats(r).corruptions, 2);
	/* the consumed corrupt nodes are free again */
	ck_assert_int_eq(smem_ring_write(r, "a", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "b", 1, 0), 0);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_corrupt_sequences_give_eproto)
{
	char name[128], got[16];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	struct smem_ring_node *nodes = (void *)((char *)shm + SMEM_RING_HDR_SIZE);

	ck_assert_int_eq(smem_ring_write(r, "one", 3, 0), 0);
	/* a sequence that no protocol step produces: two positions behind the head */
	atomic_store(&nodes[0].state, (uint64_t)(uint32_t)-2 << 32);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -EPROTO);
	/* far ahead of a cursor that does not move */
	atomic_store(&nodes[0].state, (uint64_t)1000 << 32);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -EPROTO);
	atomic_store(&shm->tail, 0);
	ck_assert_int_eq(smem_ring_write(r, "x", 1, 0), -EPROTO);
	ck_assert_uint_ge(t_ring_stats(r).corruptions, 3);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_poll_with_corrupt_head_gives_eproto)
{
	static const uint64_t heads[] = { 0xdeadbeef12345678ull, 3, 1ull << 40 | 7 };
	char name[128], got[16];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 3, 16);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	struct smem_ring_slot s;
	size_t i;

	/* The cheap empty check of a timeout-0 read must not take a bogus head for "empty". */
	for (i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		atomic_store(&shm->head, heads[i]);
		ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -EPROTO);
		ck_assert_int_eq(smem_ring_reserve_read(r, &s, 0), -EPROTO);
	}
	ck_assert_uint_eq(t_ring_stats(r).corruptions, 6);
	ck_assert_uint_eq(t_ring_stats(r).empty_waits, 0);
	atomic_store(&shm->head, 0);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -ETIMEDOUT);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_open_refuses_corrupt_geometry)
{
	static const size_t offs[] = { 0, 8, 12, 16, 20, 24, 32, 40 };
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16), *o = NULL;
	unsigned char *geo = (unsigned char *)smem__ring_shm(r), saved[64];
	unsigned k;

	memcpy(saved, geo, 64);
	for (k = 0; k < SMEM__ARRAY_SIZE(offs); k++) {
		geo[offs[k]] ^= 0x40;
		ck_assert_int_eq(smem_ring_open(name, NULL, &o), -EPROTO);
		ck_assert_ptr_null(o);
		memcpy(geo, saved, 64);
	}
	/* a node count that would reach past the mapping */
	((struct smem_ring_shm *)geo)->node_count = 1u << 20;
	ck_assert_int_eq(smem_ring_open(name, NULL, &o), -EPROTO);
	memcpy(geo, saved, 64);
	o = t_ring_open(name);
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

/*
 * A geometry line rewritten consistently (node_size 16 -> 60 under the same 64-byte stride) is
 * a ring an opener cannot tell from an honest one, so the opener takes it; the creator's handle
 * keeps its private copy and must refuse the longer messages written through it (-EPROTO,
 * consumed) instead of handing out a slot or a copy longer than its own nodes. The fuzz
 * target's regression seed regress_geometry_node_size_shrunk is the same case the other way.
 */
START_TEST(ring_rewritten_geometry_bounds_each_handle_by_its_own_copy)
{
	char name[128], got[64], big[60];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 16), *o;
	struct smem_ring_shm *shm = smem__ring_shm(r);
	struct smem_ring_slot s;

	shm->node_size = 60;
	o = t_ring_open(name);
	ck_assert_uint_eq(smem_ring_node_size(o), 60);
	ck_assert_uint_eq(smem_ring_node_size(r), 16);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(smem_ring_write(o, big, sizeof(big), 0), 0);
	ck_assert_int_eq(smem_ring_write(o, big, sizeof(big), 0), 0);
	ck_assert_int_eq(smem_ring_write(o, "ok", 2, 0), 0);
	ck_assert_int_eq(smem_ring_reserve_read(r, &s, 0), -EPROTO);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -EPROTO);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), 2);
	ck_assert_mem_eq(got, "ok", 2);
	ck_assert_uint_eq(t_ring_stats(r).corruptions, 2);
	/* and the creator's slots never exceed its own nodes */
	ck_assert_int_eq(smem_ring_reserve_write(r, &s, 0), 0);
	ck_assert_uint_eq(s.cap, 16);
	ck_assert_int_eq(smem_ring_commit(r, &s, 17), -EINVAL);
	ck_assert_int_eq(smem_ring_commit(r, &s, 16), 0);
	ck_assert_int_eq(smem_ring_reserve_read(o, &s, 0), 0);
	ck_assert_uint_eq(s.len, 16);
	ck_assert_int_eq(smem_ring_release(o, &s), 0);
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_random_scribbles_never_crash)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 5, 24);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	unsigned char *area = (unsigned char *)shm, got[24];
	size_t ctrl = SMEM_RING_HDR_SIZE + 5 * SMEM_RING_NODE_SIZE;
	uint64_t rng = 12345;
	int i, j;

	for (i = 0; i < 3000; i++) {
		struct smem_ring_slot s;
		int ret;

		/* scribble the cursors, node states and lengths (not the geometry line) */
		for (j = 0; j < 4; j++) {
			size_t off = 64 + t_rng_next(&rng) % (ctrl - 64);

			area[off] = (unsigned char)t_rng_next(&rng);
		}
		if (i % 7 == 0)
			atomic_store(&shm->tail, t_rng_next(&rng));
		if (i % 11 == 0)
			atomic_store(&shm->head, t_rng_next(&rng));
		ret = smem_ring_write(r, "abc", 3, 0);
		ck_assert(ret == 0 || ret == -ETIMEDOUT || ret == -EPROTO);
		ret = (int)smem_ring_read(r, got, sizeof(got), 0);
		ck_assert(ret >= 0 || ret == -ETIMEDOUT || ret == -EPROTO || ret == -EMSGSIZE);
		ck_assert_int_le(ret, 24);
		ret = smem_ring_reserve_write(r, &s, 0);
		if (ret == 0) {
			ck_assert((unsigned char *)s.data >= area);
			ck_assert((unsigned char *)s.data + s.cap <= area + smem__ring_obj_size(5, 24));
			ret = smem_ring_commit(r, &s, 24);
			ck_assert(ret == 0 || ret == -EPROTO);
		}
		ret = smem_ring_reserve_read(r, &s, 0);
		if (ret == 0) {
			ck_assert_uint_le(s.len, 24);
			memcpy(got, s.data, s.len);
			ret = smem_ring_release(r, &s);
			ck_assert(ret == 0 || ret == -EPROTO);
		}
		ck_assert(smem_ring_next_len(r) <= 24);
	}
	ck_assert_uint_gt(t_ring_stats(r).corruptions, 0);
	smem_ring_close(r);
}
END_TEST

static Suite *ring_stress_suite(void)
{
	Suite *s = suite_create("ring_stress");
	TCase *tc;

	/* make stress: RING_STRESS_MSGS=1e8 CK_RUN_CASE=exactly_once */
	tc = t_ring_tcase(s, "exactly_once", getenv("RING_STRESS_MSGS") ? 86400 : 60);
	add_fork_test(tc, ring_4x4_processes_deliver_every_message_once_in_producer_order);
	tcase_add_test(tc, ring_4x4_threads_deliver_every_message_once_in_producer_order);

	tc = t_ring_tcase(s, "crash", 60);
	add_fork_test(tc, ring_writer_killed_holding_a_node_loses_only_its_message);
	add_fork_test(tc, ring_reader_killed_holding_a_node_gives_it_back);
	add_fork_test(tc, ring_kill9_matrix_loses_only_claimed_messages_and_keeps_flowing);

	tc = t_ring_tcase(s, "hostile", 30);
	tcase_add_test(tc, ring_corrupt_length_gives_eproto_and_ring_keeps_flowing);
	tcase_add_test(tc, ring_corrupt_sequences_give_eproto);
	tcase_add_test(tc, ring_poll_with_corrupt_head_gives_eproto);
	tcase_add_test(tc, ring_open_refuses_corrupt_geometry);
	tcase_add_test(tc, ring_rewritten_geometry_bounds_each_handle_by_its_own_copy);
	tcase_add_test(tc, ring_random_scribbles_never_crash);
	return s;
}

T_MAIN(ring_stress_suite)
