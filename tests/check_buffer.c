/* SPDX-License-Identifier: MIT */
/*
 * smem_buffer: the seed's BufferReadWriteTests (§4.3) and README snippet ported, then bounds,
 * argument errors, locking of plain calls, raw and read-only handles, a holder killed with
 * SIGKILL, and corrupted shared headers.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "util/testutil.h"

static void fill_random(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)rand_r(&seed);
}

static struct smem_blob_hdr *hdr_of(struct smem_buffer *b)
{
	return (struct smem_blob_hdr *)(void *)((char *)smem_buffer_data(b) - SMEM_BLOB_DATA_OFF);
}

/* ---- the seed's tests ----------------------------------------------------------------- */

START_TEST(buffer_producer_creates_and_consumer_opens_by_name)
{
	struct smem_buffer *p = NULL, *c = NULL;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 1024, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), 0);
	ck_assert_uint_eq(smem_buffer_size(p), 1024);
	ck_assert_uint_eq(smem_buffer_size(c), 1024);
	ck_assert(smem_buffer_is_owner(p));
	ck_assert(!smem_buffer_is_owner(c));
	ck_assert_str_eq(smem_buffer_name(c), name);
	ck_assert_int_eq(smem_buffer_timeout(c), 100);	/* the seed's ReadWriteTimeout */
	ck_assert(!smem_buffer_shutting_down(c));
	smem_buffer_close(p);
	ck_assert(smem_buffer_shutting_down(c));
	smem_buffer_close(c);
}
END_TEST

START_TEST(buffer_bytes_written_by_producer_are_read_by_consumer)
{
	unsigned char data[1024], got[1024];
	struct smem_buffer *p, *c;
	T_NAME(name, "buf");

	fill_random(data, sizeof(data), 42);
	ck_assert_int_eq(smem_buffer_create(name, 1024, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), 0);
	ck_assert_int_eq(smem_buffer_write(p, 0, data, sizeof(data)), 0);
	memset(got, 0, sizeof(got));
	ck_assert_int_eq(smem_buffer_read(c, 0, got, sizeof(got)), 0);
	ck_assert_mem_eq(got, data, sizeof(data));
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_read_times_out_while_another_handle_holds_the_write_lock)
{
	unsigned char data[1024], got[1024];
	struct smem_buffer *buf, *buf2;
	T_NAME(name, "buf");

	fill_random(data, sizeof(data), 7);
	ck_assert_int_eq(smem_buffer_create(name, 1024, NULL, &buf), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &buf2), 0);
	ck_assert_int_eq(smem_buffer_write(buf, 0, data, sizeof(data)), 0);
	ck_assert_int_eq(smem_buffer_set_timeout(buf2, 0), 0);
	ck_assert_int_eq(smem_buffer_lock_write(buf, -1), 0);
	ck_assert_int_eq(smem_buffer_lock_read(buf2, 1), -ETIMEDOUT);
	memset(got, 0xee, sizeof(got));
	ck_assert_int_eq(smem_buffer_read(buf2, 0, got, sizeof(got)), -ETIMEDOUT);
	ck_assert_uint_eq(got[0], 0xee);	/* untouched on failure */
	ck_assert_int_eq(smem_buffer_unlock(buf), 0);
	ck_assert_int_eq(smem_buffer_lock_read(buf, 1), 0);
	ck_assert_int_eq(smem_buffer_read(buf2, 0, got, sizeof(got)), 0);	/* readers share */
	ck_assert_mem_eq(got, data, sizeof(data));
	ck_assert_int_eq(smem_buffer_unlock(buf), 0);
	smem_buffer_close(buf2);
	smem_buffer_close(buf);
}
END_TEST

START_TEST(buffer_readme_ints_at_offsets_0_and_1000)
{
	struct smem_buffer *p, *c;
	int data = 123, got = 0;
	T_NAME(name, "MySharedBuffer");

	ck_assert_int_eq(smem_buffer_create(name, 1024, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 0, data), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 1000, 456), 0);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 0, got), 0);
	ck_assert_int_eq(got, 123);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 1000, got), 0);
	ck_assert_int_eq(got, 456);
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

/* ---- structs, arrays, bounds ------------------------------------------------------------ */

struct point {
	double x;
	int32_t id;
	char tag[12];
};

START_TEST(buffer_structs_and_arrays_of_structs_round_trip)
{
	struct point one = { 1.5, 7, "seven" }, got1, many[5], got[5];
	struct smem_buffer *p, *c;
	T_NAME(name, "buf");

	memset(many, 0, sizeof(many));
	memset(got, 0, sizeof(got));
	for (int i = 0; i < 5; i++) {
		many[i].x = i * 0.25;
		many[i].id = 100 + i;
		many[i].tag[0] = (char)('a' + i);
	}
	ck_assert_int_eq(smem_buffer_create(name, 1024, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 1, one), 0);	/* unaligned offset */
	ck_assert_int_eq(SMEM_BUFFER_WRITE_ARRAY(p, 200, many, 5), 0);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 1, got1), 0);
	ck_assert_mem_eq(&got1, &one, sizeof(one));
	ck_assert_int_eq(SMEM_BUFFER_READ_ARRAY(c, 200, got, 5), 0);
	ck_assert_mem_eq(got, many, sizeof(many));
	/* The same bytes through the data pointer. */
	ck_assert_mem_eq((char *)smem_buffer_data(c) + 200, many, sizeof(many));
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_out_of_range_gives_erange_and_writes_nothing)
{
	unsigned char buf[16] = { 1, 2, 3, 4, 5, 6, 7, 8 }, zero[16] = { 0 };
	struct smem_buffer *p;
	uint64_t v = 0;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 1024, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_write(p, 1020, buf, 8), -ERANGE);	/* no partial write */
	ck_assert_mem_eq((char *)smem_buffer_data(p) + 1016, zero, 8);
	ck_assert_int_eq(smem_buffer_write(p, 1016, buf, 8), 0);	/* the last 8 bytes */
	ck_assert_int_eq(smem_buffer_read(p, 1017, buf, 8), -ERANGE);
	ck_assert_int_eq(smem_buffer_read(p, 1025, buf, 0), -ERANGE);
	ck_assert_int_eq(smem_buffer_read(p, 1024, buf, 0), 0);
	ck_assert_int_eq(smem_buffer_write(p, SIZE_MAX, buf, 1), -ERANGE);
	ck_assert_int_eq(smem_buffer_write(p, 8, buf, SIZE_MAX), -ERANGE);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_ARRAY(p, 0, &v, SIZE_MAX / 4), -ERANGE);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(p, 1017, v), -ERANGE);
	ck_assert_int_eq(smem_buffer_write(p, 0, NULL, 1), -EINVAL);
	ck_assert_int_eq(smem_buffer_read(p, 0, NULL, 0), 0);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_bad_creation_arguments_are_einval)
{
	struct smem_buffer *p = (struct smem_buffer *)0x1;
	struct smem_opts o = { .timeout_ms = -5 };
	char longname[SMEM_NAME_MAX + 2];
	T_NAME(name, "buf");

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ck_assert_int_eq(smem_buffer_create(name, 0, NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(name, SIZE_MAX, NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(NULL, 16, NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_buffer_create("", 16, NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(longname, 16, NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(name, 16, &o, &p), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(name, 16, NULL, NULL), -EINVAL);
	ck_assert_ptr_eq(p, (struct smem_buffer *)0x1);	/* untouched on failure */
	ck_assert_int_eq(smem_buffer_open(name, NULL, &p), -ENOENT);	/* nothing was made */
	smem_buffer_close(NULL);
}
END_TEST

START_TEST(buffer_open_of_a_missing_name_is_enoent)
{
	struct smem_buffer *c = (struct smem_buffer *)0x1;
	T_NAME(name, "nobody");

	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), -ENOENT);
	ck_assert_ptr_eq(c, (struct smem_buffer *)0x1);
}
END_TEST

START_TEST(buffer_open_of_an_array_name_is_emediumtype)
{
	struct smem_array *a;
	struct smem_buffer *c;
	T_NAME(name, "arr");

	ck_assert_int_eq(smem_array_create(name, 4, 10, NULL, &a), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), -EMEDIUMTYPE);
	smem_array_close(a);
}
END_TEST

START_TEST(buffer_name_in_use_is_eexist)
{
	struct smem_buffer *p, *q;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &q), -EEXIST);
	smem_buffer_close(p);
}
END_TEST

/* ---- locking of plain calls ------------------------------------------------------------- */

START_TEST(buffer_plain_calls_inside_own_lock_do_not_relock)
{
	struct smem_buffer *p;
	int v = 5, got = 0;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_lock_write(p, 0), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 0, v), 0);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(p, 0, got), 0);
	ck_assert_int_eq(got, 5);
	ck_assert_int_eq(smem_buffer_lock_write(p, 0), -EDEADLK);
	ck_assert_int_eq(smem_buffer_unlock(p), 0);
	ck_assert_int_eq(smem_buffer_unlock(p), -EPERM);
	ck_assert_int_eq(smem_buffer_lock_read(p, 0), 0);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(p, 0, got), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 0, v), -EDEADLK);	/* would need write */
	ck_assert_int_eq(smem_buffer_unlock(p), 0);
	ck_assert_int_eq(smem_buffer_lock_read(p, -2), -EINVAL);
	ck_assert_int_eq(smem_buffer_set_timeout(p, -2), -EINVAL);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_plain_write_waits_the_default_100_ms_then_times_out)
{
	struct smem_buffer *p, *c;
	long long t0, dt;
	int v = 1;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), 0);
	ck_assert_int_eq(smem_buffer_lock_read(p, 0), 0);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 0, v), 0);	/* readers share */
	t0 = t_now_ms();
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(c, 0, v), -ETIMEDOUT);
	dt = t_now_ms() - t0;
	ck_assert_int_ge(dt, 99);
	ck_assert_int_lt(dt, 1000);
	ck_assert_int_eq(smem_buffer_unlock(p), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(c, 0, v), 0);
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_raw_handle_ignores_the_lock)
{
	struct smem_opts raw = { .flags = SMEM_RAW };
	struct smem_buffer *p, *c;
	int v = 77, got = 0;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_open(name, &raw, &c), 0);
	ck_assert_int_eq(smem_buffer_lock_write(p, 0), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(c, 4, v), 0);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 4, got), 0);
	ck_assert_int_eq(got, 77);
	/* A raw handle can still lock explicitly. */
	ck_assert_int_eq(smem_buffer_lock_read(c, 0), -ETIMEDOUT);
	ck_assert_int_eq(smem_buffer_unlock(p), 0);
	ck_assert_int_eq(smem_buffer_lock_read(c, 0), 0);
	ck_assert_int_eq(smem_buffer_unlock(c), 0);
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_read_only_handle_reads_and_refuses_writes_and_locks)
{
	struct smem_opts ro = { .flags = SMEM_RDONLY };
	struct smem_buffer *p, *c;
	int v = 9, got = 0;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &p), 0);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 0, v), 0);
	ck_assert_int_eq(smem_buffer_open(name, &ro, &c), 0);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 0, got), 0);
	ck_assert_int_eq(got, 9);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(c, 0, v), -EPERM);
	ck_assert_int_eq(smem_buffer_lock_read(c, 0), -EPERM);
	ck_assert_int_eq(smem_buffer_unlock(c), -EPERM);
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

/* ---- processes and crashes -------------------------------------------------------------- */

static char g_name[128];

static int child_write_and_die(void *arg)
{
	struct smem_buffer *c;
	uint64_t half = 1;

	(void)arg;
	if (smem_buffer_open(g_name, NULL, &c) != 0)
		return 10;
	if (smem_buffer_lock_write(c, 2000) != 0)
		return 11;
	SMEM_BUFFER_WRITE_VALUE(c, 0, half);	/* half an update, then killed */
	if (smem_buffer_write(c, 63, "!", 1) != 0)
		return 12;
	for (;;)
		pause();
}

START_TEST(buffer_writer_killed_mid_update_is_reported_once)
{
	struct smem_buffer *p;
	char flag = 0;
	long long t0;
	pid_t pid;
	int v = 0;

	t_name(g_name, sizeof(g_name), "buf");
	ck_assert_int_eq(smem_buffer_create(g_name, 64, NULL, &p), 0);
	pid = t_fork(child_write_and_die, NULL);
	t0 = t_now_ms();
	while (((volatile char *)smem_buffer_data(p))[63] != '!') {
		ck_assert_msg(t_now_ms() - t0 < 3000, "child never wrote");
		usleep(500);
	}
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(p, 0, v), -ETIMEDOUT);	/* held */
	t_kill9(pid);
	ck_assert_int_eq(smem_buffer_set_timeout(p, 2000), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(smem_buffer_read(p, 63, &flag, 1), -EOWNERDEAD);	/* read done */
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_int_eq(flag, '!');
	ck_assert_int_eq(smem_buffer_read(p, 63, &flag, 1), 0);
	ck_assert_int_eq(smem_buffer_lock_write(p, 100), 0);
	ck_assert_int_eq(smem_buffer_unlock(p), 0);
	smem_buffer_close(p);
}
END_TEST

/* ---- hostile memory --------------------------------------------------------------------- */

START_TEST(buffer_corrupt_header_is_refused_at_open)
{
	struct smem_buffer *p, *c = (struct smem_buffer *)0x1;
	struct smem_blob_hdr *h, saved;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 1024, NULL, &p), 0);
	h = hdr_of(p);
	saved = *h;
	h->magic ^= 1;
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), -EPROTO);
	*h = saved;
	h->data_size = 1ull << 40;	/* beyond the mapping */
	h->length = 1ull << 40;
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), -EPROTO);
	*h = saved;
	h->elem_size = 2;		/* a buffer's elements are bytes */
	h->length = 512;
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), -EPROTO);
	*h = saved;
	h->data_off = 0;
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), -EPROTO);
	*h = saved;
	h->version = 99;
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), -EPROTO);
	ck_assert_ptr_eq(c, (struct smem_buffer *)0x1);
	*h = saved;
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), 0);
	/* Changed after open: the private geometry still rules. */
	h->data_size = 1ull << 40;
	ck_assert_int_eq(smem_buffer_write(c, 4096, "x", 1), -ERANGE);
	ck_assert_uint_eq(smem_buffer_size(c), 1024);
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_corrupt_lock_word_gives_errors_or_recovery_never_a_hang)
{
	struct smem_buffer *p, *c;
	_Atomic uint64_t *state;
	long long t0;
	int v = 1;
	T_NAME(name, "buf");

	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &p), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, &c), 0);
	state = &hdr_of(p)->lock.state;
	atomic_store(state, ~0ull);	/* dead writer id, full reader count, every flag */
	t0 = t_now_ms();
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 0, v), -EAGAIN);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(c, 0, v), -EOWNERDEAD);
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 0, v), 0);
	atomic_store(state, (uint64_t)0x00ffff07u << 32 | 3);	/* never-used id, 3 readers */
	ck_assert_int_eq(SMEM_BUFFER_WRITE_VALUE(p, 0, v), -EOWNERDEAD);
	ck_assert_int_eq(SMEM_BUFFER_READ_VALUE(c, 0, v), 0);
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	smem_buffer_close(c);
	smem_buffer_close(p);
}
END_TEST

START_TEST(buffer_every_call_refuses_bad_arguments_without_crashing)
{
	struct smem_buffer *b = NULL;
	char name[128], buf[8] = { 0 };

	t_name(name, sizeof(name), "buf-bad");
	ck_assert_int_eq(smem_buffer_create(NULL, 64, NULL, &b), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(name, 0, NULL, &b), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(name, SIZE_MAX, NULL, &b), -EINVAL);
	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, NULL), -EINVAL);
	ck_assert_int_eq(smem_buffer_open(NULL, NULL, &b), -EINVAL);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &b), 0);
	ck_assert_int_eq(smem_buffer_open(name, NULL, NULL), -EINVAL);

	ck_assert_int_eq(smem_buffer_write(NULL, 0, buf, 1), -EINVAL);
	ck_assert_int_eq(smem_buffer_write(b, 0, NULL, 1), -EINVAL);
	ck_assert_int_eq(smem_buffer_write(b, 1, buf, SIZE_MAX), -ERANGE);
	ck_assert_int_eq(smem_buffer_write(b, SIZE_MAX, buf, 1), -ERANGE);
	ck_assert_int_eq(smem_buffer_read(NULL, 0, buf, 1), -EINVAL);
	ck_assert_int_eq(smem_buffer_read(b, 0, NULL, 1), -EINVAL);
	ck_assert_int_eq(smem_buffer_read(b, 1, buf, SIZE_MAX), -ERANGE);
	ck_assert_int_eq(smem_buffer_lock_read(NULL, 0), -EINVAL);
	ck_assert_int_eq(smem_buffer_lock_write(NULL, 0), -EINVAL);
	ck_assert_int_eq(smem_buffer_unlock(NULL), -EINVAL);
	ck_assert_int_eq(smem_buffer_unlock(b), -EPERM);
	ck_assert_int_eq(smem_buffer_set_timeout(NULL, 1), -EINVAL);
	ck_assert_int_eq(smem_buffer_set_timeout(b, -5), -EINVAL);
	ck_assert_int_eq(smem_buffer_timeout(NULL), -EINVAL);
	ck_assert_ptr_null(smem_buffer_data(NULL));
	ck_assert_uint_eq(smem_buffer_size(NULL), 0);
	ck_assert_ptr_null(smem_buffer_name(NULL));
	ck_assert(!smem_buffer_is_owner(NULL));
	ck_assert(!smem_buffer_shutting_down(NULL));
	smem_buffer_close(NULL);
	smem_buffer_close(b);
}
END_TEST

static Suite *buffer_suite(void)
{
	Suite *s = suite_create("buffer");
	TCase *tc = tcase_create("seed");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, buffer_producer_creates_and_consumer_opens_by_name);
	tcase_add_test(tc, buffer_bytes_written_by_producer_are_read_by_consumer);
	tcase_add_test(tc, buffer_read_times_out_while_another_handle_holds_the_write_lock);
	tcase_add_test(tc, buffer_readme_ints_at_offsets_0_and_1000);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, buffer_structs_and_arrays_of_structs_round_trip);
	tcase_add_test(tc, buffer_out_of_range_gives_erange_and_writes_nothing);
	tcase_add_test(tc, buffer_bad_creation_arguments_are_einval);
	tcase_add_test(tc, buffer_every_call_refuses_bad_arguments_without_crashing);
	tcase_add_test(tc, buffer_open_of_a_missing_name_is_enoent);
	tcase_add_test(tc, buffer_open_of_an_array_name_is_emediumtype);
	tcase_add_test(tc, buffer_name_in_use_is_eexist);
	tcase_add_test(tc, buffer_plain_calls_inside_own_lock_do_not_relock);
	tcase_add_test(tc, buffer_plain_write_waits_the_default_100_ms_then_times_out);
	tcase_add_test(tc, buffer_raw_handle_ignores_the_lock);
	tcase_add_test(tc, buffer_read_only_handle_reads_and_refuses_writes_and_locks);
	suite_add_tcase(s, tc);

	tc = tcase_create("crash");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, buffer_writer_killed_mid_update_is_reported_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, buffer_corrupt_header_is_refused_at_open);
	tcase_add_test(tc, buffer_corrupt_lock_word_gives_errors_or_recovery_never_a_hang);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(buffer_suite)
