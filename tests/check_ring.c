/* SPDX-License-Identifier: MIT */
/*
 * smem_ring: the seed's CircularBuffer tests ported, the API's semantics beyond the seed
 * (full, oversized, timeouts, abort, shutdown, the eventfd). Handles inherited across fork are
 * in check_ring_fork.c; exactly-once stress, crashes and hostile shared memory in
 * check_ring_stress.c.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring_int.h"
#include "wait.h"
#include "util/ringutil.h"
#include "util/testutil.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void fill_random(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)(t_rng_next(&seed) >> 56);
}


/* ---- construction (seed tests 1-12) ------------------------------------------------------ */

START_TEST(ring_create_rejects_bad_arguments)
{
	struct smem_ring *r = (struct smem_ring *)0x1;
	struct smem_opts ro = { .flags = SMEM_RDONLY };
	char longname[SMEM_NAME_MAX + 2];
	T_NAME(name, "ring");

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(smem_ring_create("", 2, 1, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(NULL, 2, 1, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(longname, 2, 1, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(name, 1, 1, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(name, 0, 1, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(name, 2, 0, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(name, SMEM_RING_MAX_NODES + 1, 1, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(name, 2, 1, &ro, &r), -EINVAL);
	ck_assert_int_eq(smem_ring_create(name, 2, 1, NULL, NULL), -EINVAL);
	/* out-parameter untouched on failure, and nothing was registered */
	ck_assert_ptr_eq(r, (struct smem_ring *)0x1);
	ck_assert_int_eq(smem_ring_open(name, NULL, &r), -ENOENT);
}
END_TEST

START_TEST(ring_create_two_nodes_of_one_byte_succeeds)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 1);

	ck_assert_uint_eq(smem_ring_node_count(r), 2);
	ck_assert_uint_eq(smem_ring_node_size(r), 1);
	smem_ring_close(r);
	smem_ring_close(NULL);
}
END_TEST

START_TEST(ring_open_without_creator_gives_enoent)
{
	struct smem_ring *r = NULL;
	T_NAME(name, "ring");

	ck_assert_int_eq(smem_ring_open(name, NULL, &r), -ENOENT);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(ring_duplicate_create_gives_eexist)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 1), *r2 = NULL;

	ck_assert_int_eq(smem_ring_create(name, 2, 1, NULL, &r2), -EEXIST);
	ck_assert_ptr_null(r2);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_open_reads_geometry_from_shared_memory)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 5, 100), *o = t_ring_open(name);

	ck_assert_uint_eq(smem_ring_node_count(o), 5);
	ck_assert_uint_eq(smem_ring_node_size(o), 100);
	ck_assert_uint_ne(smem__ring_owner_id(o), smem__ring_owner_id(r));
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_open_of_another_kind_gives_emediumtype)
{
	struct smem_region *reg = NULL;
	struct smem_ring *r = NULL;
	T_NAME(name, "ring");

	ck_assert_int_eq(smem_region_create(name, 4096, NULL, &reg), 0);
	ck_assert_int_eq(smem_ring_open(name, NULL, &r), -EMEDIUMTYPE);
	ck_assert_ptr_null(r);
	smem_region_close(reg);
}
END_TEST

START_TEST(ring_owner_close_sets_shutting_down)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 1), *o = t_ring_open(name);
	char b = 1;

	ck_assert(!smem_region_shutting_down(smem__ring_region(o)));
	smem_ring_close(r);
	ck_assert(smem_region_shutting_down(smem__ring_region(o)));
	ck_assert_int_eq(smem_ring_write(o, &b, 1, 0), -ESHUTDOWN);
	ck_assert_int_eq(smem_ring_read(o, &b, 1, 0), -ESHUTDOWN);
	smem_ring_close(o);
}
END_TEST

START_TEST(ring_layout_sizes_are_fixed)
{
	ck_assert_uint_eq(sizeof(struct smem_ring_shm), 512);
	ck_assert_uint_eq(sizeof(struct smem_ring_node), 64);
	ck_assert_uint_eq(sizeof(struct smem_region_hdr), 4096);
	/* 3 nodes of 4 bytes (the seed's README ring): header, 3 node lines, 3 payload lines */
	ck_assert_uint_eq(smem__ring_obj_size(3, 4), 512 + 3 * 64 + 3 * 64);
	ck_assert_uint_eq(smem__ring_obj_size(20, 1 << 20), 512 + 20 * 64 + 20ull * (1 << 20));
	ck_assert_uint_eq(smem__ring_obj_size(1, 4), 0);
}
END_TEST

/* ---- read/write (seed tests 13-24) ------------------------------------------------------ */

START_TEST(ring_single_node_bytes_roundtrip)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 1024);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	unsigned char data[1024], got[1024];

	fill_random(data, sizeof(data), 13);
	ck_assert_int_eq(smem_ring_write(r, data, sizeof(data), 1000), 0);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 1000), 1024);
	ck_assert_mem_eq(data, got, sizeof(data));
	ck_assert_uint_eq(atomic_load(&shm->tail), 1);
	ck_assert_uint_eq(atomic_load(&shm->head), 1);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_zero_copy_positions_follow_reservation)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 1024);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	struct smem_ring_slot w, rd;
	unsigned char data[1024];

	fill_random(data, sizeof(data), 14);
	ck_assert_uint_eq(atomic_load(&shm->tail), 0);
	ck_assert_uint_eq(atomic_load(&shm->head), 0);
	ck_assert_int_eq(smem_ring_reserve_write(r, &w, 1000), 0);
	ck_assert_uint_eq(w.cap, 1024);
	/* reserved but not committed: the tail moved, nothing is readable */
	ck_assert_uint_eq(atomic_load(&shm->tail), 1);
	ck_assert_int_eq(smem_ring_next_len(r), -EAGAIN);
	memcpy(w.data, data, sizeof(data));
	ck_assert_int_eq(smem_ring_commit(r, &w, 1024), 0);
	ck_assert_int_eq(smem_ring_commit(r, &w, 1024), -EINVAL);	/* once only */
	ck_assert_int_eq(smem_ring_next_len(r), 1024);

	ck_assert_int_eq(smem_ring_reserve_read(r, &rd, 1000), 0);
	ck_assert_uint_eq(atomic_load(&shm->head), 1);
	ck_assert_uint_eq(rd.len, 1024);
	ck_assert_mem_eq(rd.data, data, 1024);
	ck_assert_int_eq(smem_ring_release(r, &rd), 0);
	ck_assert_int_eq(smem_ring_release(r, &rd), -EINVAL);
	ck_assert_uint_eq(atomic_load(&shm->tail), 1);
	ck_assert_uint_eq(atomic_load(&shm->head), 1);
	smem_ring_close(r);
}
END_TEST

struct my_test_struct {
	int32_t a, b, c, d;
};

START_TEST(ring_struct_written_by_owner_is_read_by_opener)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, sizeof(struct my_test_struct));
	struct smem_ring *o = t_ring_open(name);
	struct my_test_struct obj = { 1, 2, 3, 4 }, got = { 0 };

	ck_assert_int_eq(smem_ring_write(r, &obj, sizeof(obj), 1000), 0);
	ck_assert_int_eq(smem_ring_read(o, &got, sizeof(got), 1000), (ssize_t)sizeof(obj));
	ck_assert_int_eq(got.a, 1);
	ck_assert_int_eq(got.d, 4);
	ck_assert_mem_eq(&obj, &got, sizeof(obj));
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_1000_messages_through_2_nodes_match)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 32);
	unsigned char data[32], got[32];
	int i;

	for (i = 0; i < 1000; i++) {
		fill_random(data, sizeof(data), 1000 + (uint64_t)i);
		ck_assert_int_eq(smem_ring_write(r, data, 32, 1000), 0);
		ck_assert_int_eq(smem_ring_read(r, got, 32, 1000), 32);
		ck_assert_mem_eq(data, got, 32);
	}
	ck_assert_uint_eq(t_ring_stats(r).written, 1000);
	ck_assert_uint_eq(t_ring_stats(r).read, 1000);
	smem_ring_close(r);
}
END_TEST

/* Seed tests 17-19: a writer process and a reader, with timeouts on either side. */
struct async_arg {
	const char *name;
	int count;
	int timeout_ms;
	int delay_us;		/* before each write */
};

static int async_writer(void *p)
{
	struct async_arg *a = p;
	struct smem_ring *r = NULL;
	unsigned char data[32];
	int i, timeouts = 0, err;

	if (smem_ring_open(a->name, NULL, &r))
		return 10;
	for (i = 0; i < a->count; i++) {
		fill_random(data, sizeof(data), 5000 + (uint64_t)i);
		if (a->delay_us)
			usleep((useconds_t)a->delay_us);
		while ((err = smem_ring_write(r, data, sizeof(data), a->timeout_ms)) == -ETIMEDOUT)
			timeouts++;
		if (err)
			return 11;
	}
	smem_ring_close(r);
	/* 2: finished, and some writes timed out */
	return timeouts ? 2 : 0;
}

static void async_case(int count, int wr_timeout, int wr_delay_us, int rd_timeout,
		       int rd_delay_us, bool want_wr_timeouts, bool want_rd_timeouts,
		       long long limit_ms)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 32);
	struct async_arg a = { name, count, wr_timeout, wr_delay_us };
	unsigned char data[32], got[32];
	long long t0 = t_now_ms();
	int i, rd_timeouts = 0, st;
	ssize_t n;
	pid_t pid;

	pid = t_fork(async_writer, &a);
	for (i = 0; i < count; i++) {
		while ((n = smem_ring_read(r, got, sizeof(got), rd_timeout)) == -ETIMEDOUT)
			rd_timeouts++;
		ck_assert_int_eq(n, 32);
		fill_random(data, sizeof(data), 5000 + (uint64_t)i);
		ck_assert_mem_eq(data, got, 32);
		if (rd_delay_us)
			usleep((useconds_t)rd_delay_us);
	}
	st = t_wait(pid);
	ck_assert_int_eq(st, want_wr_timeouts ? 2 : 0);
	if (want_rd_timeouts)
		ck_assert_int_gt(rd_timeouts, 0);
	ck_assert_int_lt(t_now_ms() - t0, limit_ms);
	smem_ring_close(r);
}

START_TEST(ring_1000_messages_between_processes_match)
{
	async_case(1000, 1000, 0, 1000, 0, false, false, 5000);
}
END_TEST

START_TEST(ring_slow_reader_makes_short_write_timeouts_expire)
{
	async_case(10, 1, 0, 1000, 2000, true, false, 5000);
}
END_TEST

START_TEST(ring_slow_writer_makes_short_read_timeouts_expire)
{
	async_case(10, 1000, 2000, 1, 0, false, true, 10000);
}
END_TEST

START_TEST(ring_nested_zero_copy_writes_become_visible_in_reservation_order)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 5, 1024);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	struct smem_ring_slot w[3], rd[3];
	int i;

	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(smem_ring_reserve_write(r, &w[i], 1000), 0);
		ck_assert_uint_eq(atomic_load(&shm->tail), (uint64_t)i + 1);
		memset(w[i].data, 'A' + i, 1024);
	}
	/* innermost first: nothing visible until the first reservation commits */
	ck_assert_int_eq(smem_ring_commit(r, &w[2], 1024), 0);
	ck_assert_int_eq(smem_ring_next_len(r), -EAGAIN);
	ck_assert_int_eq(smem_ring_read(r, rd, 0, 0), -ETIMEDOUT);
	ck_assert_int_eq(smem_ring_commit(r, &w[1], 512), 0);
	ck_assert_int_eq(smem_ring_next_len(r), -EAGAIN);
	ck_assert_int_eq(smem_ring_commit(r, &w[0], 1024), 0);
	ck_assert_int_eq(smem_ring_next_len(r), 1024);

	/* nested reads: each reservation takes the next message in order */
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(smem_ring_reserve_read(r, &rd[i], 1000), 0);
		ck_assert_uint_eq(atomic_load(&shm->head), (uint64_t)i + 1);
		ck_assert_int_eq(((unsigned char *)rd[i].data)[0], 'A' + i);
	}
	ck_assert_uint_eq(rd[1].len, 512);
	/* out-of-order releases; the nodes come back to writers all the same */
	ck_assert_int_eq(smem_ring_release(r, &rd[2]), 0);
	ck_assert_int_eq(smem_ring_release(r, &rd[0]), 0);
	ck_assert_int_eq(smem_ring_release(r, &rd[1]), 0);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(smem_ring_write(r, "x", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "x", 1, 0), -ETIMEDOUT);
	smem_ring_close(r);
}
END_TEST

struct pair {
	int32_t x, y;
};

START_TEST(ring_struct_array_roundtrip)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 800);
	struct pair data[100], got[100];

	fill_random(data, sizeof(data), 21);
	ck_assert_int_eq(smem_ring_write(r, data, sizeof(data), 1000), 0);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 1000), (ssize_t)sizeof(data));
	ck_assert_int_eq((int)(sizeof(data) / sizeof(data[0])), 100);
	ck_assert_mem_eq(data, got, sizeof(data));
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_partial_struct_arrays_take_thirty_messages)
{
	/* 88 structs of 8 bytes through 24-byte nodes: 3 per message, ceil(88 / 3) = 30 */
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 24);
	struct pair data[88], got[88];
	size_t total = 0, per = 24 / sizeof(struct pair);
	int iterations = 0;

	fill_random(data, sizeof(data), 22);
	memset(got, 0, sizeof(got));
	while (total < 88) {
		size_t k = 88 - total < per ? 88 - total : per;
		ssize_t n;

		ck_assert_int_eq(smem_ring_write(r, &data[total], k * sizeof(struct pair), 1000), 0);
		n = smem_ring_read(r, &got[total], (88 - total) * sizeof(struct pair), 1000);
		ck_assert_int_eq(n, (ssize_t)(k * sizeof(struct pair)));
		total += (size_t)n / sizeof(struct pair);
		iterations++;
	}
	ck_assert_int_eq(iterations, 30);
	ck_assert_uint_eq(total, 88);
	ck_assert_mem_eq(data, got, sizeof(data));
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_zero_copy_callback_style_matches)
{
	/* seed test 24, without its off-by-one: byte i at node offset i */
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 32);
	struct smem_ring_slot s;
	unsigned char data[32], got[32];
	size_t i;

	fill_random(data, sizeof(data), 24);
	ck_assert_int_eq(smem_ring_reserve_write(r, &s, 1000), 0);
	for (i = 0; i < 32; i++)
		((unsigned char *)s.data)[i] = data[i];
	ck_assert_int_eq(smem_ring_commit(r, &s, 32), 0);
	ck_assert_int_eq(smem_ring_reserve_read(r, &s, 1000), 0);
	ck_assert_uint_eq(s.len, 32);
	for (i = 0; i < s.len; i++)
		got[i] = ((unsigned char *)s.data)[i];
	ck_assert_int_eq(smem_ring_release(r, &s), 0);
	ck_assert_mem_eq(data, got, 32);
	/* payloads are 64-byte aligned */
	ck_assert_uint_eq((uintptr_t)s.data % 64, 0);
	smem_ring_close(r);
}
END_TEST

/* ---- semantics beyond the seed ------------------------------------------------------------ */

START_TEST(ring_full_ring_accepts_exactly_node_count_messages)
{
	static const uint32_t counts[] = { 2, 3, 7, 8 };
	unsigned k;

	for (k = 0; k < SMEM__ARRAY_SIZE(counts); k++) {
		char name[128];
		uint32_t n = counts[k], i;
		struct smem_ring *r = t_ring_new(name, sizeof(name), n, 16);
		uint32_t v;

		for (i = 0; i < n; i++)
			ck_assert_int_eq(smem_ring_write(r, &i, sizeof(i), 0), 0);
		ck_assert_int_eq(smem_ring_write(r, &i, sizeof(i), 0), -ETIMEDOUT);
		ck_assert_int_eq(smem_ring_read(r, &v, sizeof(v), 0), 4);
		ck_assert_uint_eq(v, 0);
		ck_assert_int_eq(smem_ring_write(r, &i, sizeof(i), 0), 0);
		ck_assert_int_eq(smem_ring_write(r, &i, sizeof(i), 0), -ETIMEDOUT);
		for (i = 1; i <= n; i++) {
			ck_assert_int_eq(smem_ring_read(r, &v, sizeof(v), 0), 4);
			ck_assert_uint_eq(v, i);
		}
		ck_assert_int_eq(smem_ring_read(r, &v, sizeof(v), 0), -ETIMEDOUT);
		smem_ring_close(r);
	}
}
END_TEST

START_TEST(ring_rejects_oversized_message_and_small_buffer_without_consuming)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 16);
	char buf[17] = "0123456789abcdef", got[16];

	ck_assert_int_eq(smem_ring_write(r, buf, 17, 0), -EMSGSIZE);
	ck_assert_int_eq(smem_ring_next_len(r), -EAGAIN);
	ck_assert_int_eq(smem_ring_write(r, buf, 16, 0), 0);
	ck_assert_int_eq(smem_ring_read(r, got, 15, 0), -EMSGSIZE);
	ck_assert_int_eq(smem_ring_next_len(r), 16);
	ck_assert_int_eq(smem_ring_read(r, got, 16, 0), 16);
	ck_assert_mem_eq(got, buf, 16);
	ck_assert_int_eq(smem_ring_read(r, NULL, 5, 0), -EINVAL);
	ck_assert_int_eq(smem_ring_write(r, NULL, 5, 0), -EINVAL);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_zero_length_message_differs_from_timeout)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 8);
	char got[8];

	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -ETIMEDOUT);
	ck_assert_int_eq(smem_ring_write(r, NULL, 0, 0), 0);
	ck_assert_int_eq(smem_ring_next_len(r), 0);
	ck_assert_int_eq(smem_ring_read(r, NULL, 0, 0), 0);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -ETIMEDOUT);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_timeouts_on_empty_and_full_expire)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 8);
	long long t0;
	char b = 0;

	t0 = t_now_ms();
	ck_assert_int_eq(smem_ring_read(r, &b, 1, 60), -ETIMEDOUT);
	ck_assert_int_ge(t_now_ms() - t0, 59);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_int_eq(smem_ring_write(r, &b, 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, &b, 1, 0), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(smem_ring_write(r, &b, 1, 60), -ETIMEDOUT);
	ck_assert_int_ge(t_now_ms() - t0, 59);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_uint_eq(t_ring_stats(r).full_waits, 1);
	ck_assert_uint_eq(t_ring_stats(r).empty_waits, 1);
	ck_assert_uint_ge(t_ring_stats(r).sleeps, 2);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_poll_of_empty_ring_times_out_without_counting_a_wait)
{
	char name[128], got[8];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 3, 8), *o = t_ring_open(name);
	struct smem_ring_slot s, w;
	struct smem_ring_stats st;
	int i;

	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 0), -ETIMEDOUT);
		ck_assert_int_eq(smem_ring_reserve_read(o, &s, 0), -ETIMEDOUT);
	}
	st = t_ring_stats(o);
	ck_assert_uint_eq(st.empty_waits, 0);
	ck_assert_uint_eq(st.sleeps, 0);
	ck_assert_uint_eq(st.read, 0);
	/* a message is found, then the ring is empty again (one lap and more) */
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(smem_ring_write(r, "m", 1, 0), 0);
		ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 0), 1);
		ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 0), -ETIMEDOUT);
	}
	/* a writer holding the next position: still empty */
	ck_assert_int_eq(smem_ring_reserve_write(r, &w, 0), 0);
	ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 0), -ETIMEDOUT);
	ck_assert_int_eq(smem_ring_reserve_read(o, &s, 0), -ETIMEDOUT);
	ck_assert_int_eq(smem_ring_commit(r, &w, 0), 0);
	ck_assert_int_eq(smem_ring_reserve_read(o, &s, 0), 0);
	ck_assert_uint_eq(s.len, 0);
	ck_assert_int_eq(smem_ring_release(o, &s), 0);
	st = t_ring_stats(o);
	ck_assert_uint_eq(st.empty_waits, 0);
	ck_assert_uint_eq(st.read, 5);
	/* once the owner has gone, an empty ring says so */
	smem_ring_close(r);
	ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 0), -ESHUTDOWN);
	ck_assert_int_eq(smem_ring_reserve_read(o, &s, 0), -ESHUTDOWN);
	smem_ring_close(o);
}
END_TEST

START_TEST(ring_auto_spin_policy_grows_caps_decays_and_forgets)
{
	const uint32_t base = SMEM_RING_SPIN_DEFAULT_NS, cap = 400000;

	/* the cap: 1 ns per byte of node, never below the base spin nor above 1 ms */
	ck_assert_uint_eq(smem__ring_spin_cap(8), base);
	ck_assert_uint_eq(smem__ring_spin_cap(100000), 100000);
	ck_assert_uint_eq(smem__ring_spin_cap(1u << 20), SMEM_RING_SPIN_MAX_NS);
	ck_assert_uint_eq(smem__ring_spin_cap(UINT32_MAX), SMEM_RING_SPIN_MAX_NS);
	/* a wait that ended after t asks for 1.25 t at once */
	ck_assert_uint_eq(smem__spin_next(0, 200000, cap), 250000);
	ck_assert_uint_eq(smem__spin_next(100000, 200000, cap), 250000);
	/* never above the cap */
	ck_assert_uint_eq(smem__spin_next(0, 390000, cap), cap);
	ck_assert_uint_eq(smem__spin_next(0, cap, cap), cap);
	/* a quicker wait lowers it by an eighth of the difference */
	ck_assert_uint_eq(smem__spin_next(250000, 8000, cap), 250000 - (250000 - 10000) / 8);
	/* a wait longer than the cap, or one that timed out, forgets */
	ck_assert_uint_eq(smem__spin_next(250000, cap + 1, cap), 0);
	ck_assert_uint_eq(smem__spin_next(250000, UINT64_MAX, cap), 0);
}
END_TEST

struct waker {
	struct smem_ring *w;
	_Atomic uint32_t *waiters;
};

/* Write one message as soon as a reader sleeps on the ring (after its spin). */
static void *write_when_reader_sleeps(void *p)
{
	struct waker *k = p;
	long long t0 = t_now_ms();

	while (atomic_load(k->waiters) == 0 && t_now_ms() - t0 < 5000)
		;
	return (void *)(intptr_t)smem_ring_write(k->w, "x", 1, 1000);
}

/* A read of @o woken by a write from another thread; its duration (ns) in *took. */
static void woken_read(struct smem_ring *w, struct smem_ring *o, uint64_t *took)
{
	struct waker k = { w, &smem__ring_shm(o)->data_waiters };
	struct timespec a, b;
	pthread_t tid;
	void *ret;
	char got[4];

	ck_assert_int_eq(pthread_create(&tid, NULL, write_when_reader_sleeps, &k), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 5000), 1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(tid, &ret);
	ck_assert_int_eq((intptr_t)ret, 0);
	*took = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec -
		(uint64_t)a.tv_nsec;
}

START_TEST(ring_auto_spin_learns_from_a_woken_read_and_forgets_on_timeout)
{
	const uint32_t base = SMEM_RING_SPIN_DEFAULT_NS;
	char name[128], got[4];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 1u << 20), *o = t_ring_open(name);
	uint64_t took = 0;
	uint32_t b;
	int tries;

	ck_assert_uint_eq(smem__ring_spin_budget(o, false), base);
	ck_assert_uint_eq(smem__ring_spin_budget(o, true), base);
	/*
	 * A read woken well within the cap (1 ms for 1 MiB nodes) spins longer next time. Our
	 * own clock brackets the wait from outside; a machine too busy to wake us within
	 * 800 us makes the wait teach nothing, so look for one prompt wakeup in 50.
	 */
	for (tries = 0; tries < 50; tries++) {
		smem_ring_set_spin(o, SMEM_RING_SPIN_AUTO);	/* nothing learned yet */
		woken_read(r, o, &took);
		if (took <= 800000)
			break;
	}
	ck_assert_uint_le(took, 800000);
	b = smem__ring_spin_budget(o, false);
	ck_assert_uint_gt(b, base);	/* it slept after spinning the base: t > 20 us */
	ck_assert_uint_le(b, took + took / 4);
	ck_assert_uint_eq(smem__ring_spin_budget(o, true), base);	/* writes learnt nothing */
	ck_assert_uint_ge(t_ring_stats(o).sleeps, 1);
	/* a wait that times out (the peer went idle) forgets */
	ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 3), -ETIMEDOUT);
	ck_assert_uint_eq(smem__ring_spin_budget(o, false), base);
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_fixed_spin_does_not_adapt_and_small_nodes_keep_the_base_spin)
{
	const uint32_t base = SMEM_RING_SPIN_DEFAULT_NS;
	char name[128], name2[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 1u << 20), *o = t_ring_open(name);
	struct smem_ring *r2 = t_ring_new(name2, sizeof(name2), 2, 8), *o2 = t_ring_open(name2);
	uint64_t took;

	smem_ring_set_spin(o, 5000);
	woken_read(r, o, &took);
	ck_assert_uint_eq(smem__ring_spin_budget(o, false), 5000);
	smem_ring_set_spin(o, SMEM_RING_SPIN_AUTO);
	ck_assert_uint_eq(smem__ring_spin_budget(o, false), base);
	/* 8-byte nodes: the cap is the base spin, whatever the wait */
	woken_read(r2, o2, &took);
	ck_assert_uint_eq(smem__ring_spin_budget(o2, false), base);
	smem_ring_close(o2);
	smem_ring_close(r2);
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_aborted_write_is_stepped_over)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 3, 8);
	struct smem_ring_slot a, b;
	char got[8];

	ck_assert_int_eq(smem_ring_reserve_write(r, &a, 0), 0);
	ck_assert_int_eq(smem_ring_reserve_write(r, &b, 0), 0);
	memcpy(b.data, "second", 6);
	ck_assert_int_eq(smem_ring_commit(r, &b, 6), 0);
	ck_assert_int_eq(smem_ring_next_len(r), -EAGAIN);
	ck_assert_int_eq(smem_ring_abort(r, &a), 0);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), 6);
	ck_assert_mem_eq(got, "second", 6);
	ck_assert_int_eq(smem_ring_read(r, got, sizeof(got), 0), -ETIMEDOUT);
	/* all three nodes usable again */
	ck_assert_int_eq(smem_ring_write(r, "1", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "2", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "3", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "4", 1, 0), -ETIMEDOUT);
	smem_ring_close(r);
}
END_TEST

static int shutdown_child(void *p)
{
	const char *name = p;
	struct smem_ring *r = NULL;
	char b;
	ssize_t n;

	if (smem_ring_open(name, NULL, &r))
		return 10;
	smem_ring_set_spin(r, 0);
	n = smem_ring_read(r, &b, 1, -1);	/* blocks until the owner closes */
	smem_ring_close(r);
	return n == -ESHUTDOWN ? 0 : 20;
}

START_TEST(ring_owner_close_wakes_blocked_reader_with_eshutdown)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 8);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	long long t0;
	pid_t pid;

	pid = t_fork(shutdown_child, name);
	/* wait until the child sleeps on the ring */
	t0 = t_now_ms();
	while (atomic_load(&shm->data_waiters) == 0 && t_now_ms() - t0 < 5000)
		usleep(1000);
	ck_assert_uint_eq(atomic_load(&shm->data_waiters), 1);
	t0 = t_now_ms();
	smem_ring_close(r);
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
}
END_TEST

static void *shutdown_thread(void *p)
{
	struct smem_ring *o = p;
	char b;

	return (void *)(intptr_t)smem_ring_read(o, &b, 1, -1);
}

START_TEST(ring_owner_close_wakes_blocked_reader_thread_with_eshutdown)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 2, 8), *o = t_ring_open(name);
	struct smem_ring_shm *shm = smem__ring_shm(o);
	pthread_t tid;
	long long t0;
	void *ret;

	smem_ring_set_spin(o, 0);
	ck_assert_int_eq(pthread_create(&tid, NULL, shutdown_thread, o), 0);
	t0 = t_now_ms();
	while (atomic_load(&shm->data_waiters) == 0 && t_now_ms() - t0 < 5000)
		usleep(1000);
	ck_assert_uint_eq(atomic_load(&shm->data_waiters), 1);
	t0 = t_now_ms();
	smem_ring_close(r);
	pthread_join(tid, &ret);
	ck_assert_int_eq((intptr_t)ret, -ESHUTDOWN);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_uint_eq(atomic_load(&shm->data_waiters), 0);
	smem_ring_close(o);
}
END_TEST

/*
 * A reader announced for a sleep stays announced until it runs again; the messages committed
 * meanwhile make one FUTEX_WAKE, not one each (the sleepers flag, WAITING in ring.c). The
 * reader announces through the RPC's contract (wait_prepare) and is left "not yet back".
 */
START_TEST(ring_announced_reader_is_woken_once_however_many_messages_arrive)
{
	char name[128], got[8];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 128, 8), *o = t_ring_open(name);
	struct smem_ring_shm *shm = smem__ring_shm(r);
	_Atomic uint32_t *word;
	uint32_t val;
	int i;

	ck_assert_int_eq(smem__ring_wait_prepare(o, false, &word, &val), 0);
	ck_assert_ptr_eq(word, &smem__ring_shm(o)->data_seq);
	ck_assert_uint_eq(val & SMEM__RING_SLEEPERS, SMEM__RING_SLEEPERS);
	ck_assert_uint_eq(atomic_load(&shm->data_waiters), 1);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(smem_ring_write(r, "m", 1, 0), 0);
	/* woken once: the word left the sleeper's value and the flag is clear */
	ck_assert_uint_eq(atomic_load(word), (val + 1) & ~SMEM__RING_SLEEPERS);
	ck_assert_uint_eq(t_ring_stats(r).wakes, 1);
	smem__ring_wait_done(o, false);
	ck_assert_uint_eq(atomic_load(&shm->data_waiters), 0);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(smem_ring_read(o, got, sizeof(got), 0), 1);
	/* a new announcement sets the flag again: the next commit wakes, the ones after do not */
	ck_assert_int_eq(smem__ring_wait_prepare(o, false, &word, &val), 0);
	ck_assert_uint_eq(val & SMEM__RING_SLEEPERS, SMEM__RING_SLEEPERS);
	ck_assert_int_eq(smem_ring_write(r, "n", 1, 0), 0);
	ck_assert_int_eq(smem_ring_write(r, "o", 1, 0), 0);
	ck_assert_uint_eq(t_ring_stats(r).wakes, 2);
	smem__ring_wait_done(o, false);
	/* nobody announced: no wake at all */
	ck_assert_int_eq(smem_ring_write(r, "p", 1, 0), 0);
	ck_assert_uint_eq(t_ring_stats(r).wakes, 2);
	smem_ring_close(o);
	smem_ring_close(r);
}
END_TEST

START_TEST(ring_fd_becomes_readable_when_data_arrives)
{
	char name[128];
	struct smem_ring *r = t_ring_new(name, sizeof(name), 4, 8), *o = t_ring_open(name);
	struct pollfd pfd;
	uint64_t cnt;
	char b;
	int fd;

	fd = smem_ring_fd(o);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(smem_ring_fd(o), fd);
	pfd.fd = fd;
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 50), 0);
	ck_assert_int_eq(smem_ring_write(r, "a", 1, 0), 0);
	ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
	ck_assert_int_eq(read(fd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
	ck_assert_int_eq(smem_ring_read(o, &b, 1, 0), 1);
	ck_assert_int_eq(smem_ring_read(o, &b, 1, 0), -ETIMEDOUT);
	ck_assert_int_eq(poll(&pfd, 1, 50), 0);
	/* a later arrival signals again */
	ck_assert_int_eq(smem_ring_write(r, "b", 1, 0), 0);
	ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
	ck_assert_int_eq(smem_ring_read(o, &b, 1, 0), 1);
	ck_assert_int_eq(b, 'b');
	smem_ring_close(o);	/* stops the bridge, closes the eventfd (fd fixture checks) */
	smem_ring_close(r);
}
END_TEST


static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc;

	tc = t_ring_tcase(s, "construction", 10);
	tcase_add_test(tc, ring_create_rejects_bad_arguments);
	tcase_add_test(tc, ring_create_two_nodes_of_one_byte_succeeds);
	tcase_add_test(tc, ring_open_without_creator_gives_enoent);
	tcase_add_test(tc, ring_duplicate_create_gives_eexist);
	tcase_add_test(tc, ring_open_reads_geometry_from_shared_memory);
	tcase_add_test(tc, ring_open_of_another_kind_gives_emediumtype);
	tcase_add_test(tc, ring_owner_close_sets_shutting_down);
	tcase_add_test(tc, ring_layout_sizes_are_fixed);

	tc = t_ring_tcase(s, "readwrite", 20);
	tcase_add_test(tc, ring_single_node_bytes_roundtrip);
	tcase_add_test(tc, ring_zero_copy_positions_follow_reservation);
	tcase_add_test(tc, ring_struct_written_by_owner_is_read_by_opener);
	tcase_add_test(tc, ring_1000_messages_through_2_nodes_match);
	add_fork_test(tc, ring_1000_messages_between_processes_match);
	add_fork_test(tc, ring_slow_reader_makes_short_write_timeouts_expire);
	add_fork_test(tc, ring_slow_writer_makes_short_read_timeouts_expire);
	tcase_add_test(tc, ring_nested_zero_copy_writes_become_visible_in_reservation_order);
	tcase_add_test(tc, ring_struct_array_roundtrip);
	tcase_add_test(tc, ring_partial_struct_arrays_take_thirty_messages);
	tcase_add_test(tc, ring_zero_copy_callback_style_matches);

	tc = t_ring_tcase(s, "semantics", 20);
	tcase_add_test(tc, ring_full_ring_accepts_exactly_node_count_messages);
	tcase_add_test(tc, ring_rejects_oversized_message_and_small_buffer_without_consuming);
	tcase_add_test(tc, ring_zero_length_message_differs_from_timeout);
	tcase_add_test(tc, ring_timeouts_on_empty_and_full_expire);
	tcase_add_test(tc, ring_aborted_write_is_stepped_over);
	tcase_add_test(tc, ring_poll_of_empty_ring_times_out_without_counting_a_wait);
	tcase_add_test(tc, ring_auto_spin_policy_grows_caps_decays_and_forgets);
	tcase_add_test(tc, ring_auto_spin_learns_from_a_woken_read_and_forgets_on_timeout);
	tcase_add_test(tc, ring_fixed_spin_does_not_adapt_and_small_nodes_keep_the_base_spin);
	add_fork_test(tc, ring_owner_close_wakes_blocked_reader_with_eshutdown);
	tcase_add_test(tc, ring_owner_close_wakes_blocked_reader_thread_with_eshutdown);
	tcase_add_test(tc, ring_announced_reader_is_woken_once_however_many_messages_arrive);
	tcase_add_test(tc, ring_fd_becomes_readable_when_data_arrives);

	return s;
}

T_MAIN(ring_suite)
