/* SPDX-License-Identifier: MIT */
/*
 * smem_array: the seed's ArrayTests (§4.2) ported with their values, then element-size
 * checking, bounds, the typed wrappers, locking across processes, and corrupted headers.
 * IList_IsReadOnly has no counterpart (C has no IList); the seed's ArraySlice checks become
 * index arithmetic on the same values.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "util/testutil.h"

SMEM_ARRAY_DECLARE(int_array, int)
SMEM_ARRAY_DECLARE(byte_array, unsigned char)

/* The seed's MyTestStruct: fixed char name[100], int ValueA; Name is NUL-terminated. */
struct my_test_struct {
	char name[100];
	int value_a;
};

static void mts_set_name(struct my_test_struct *s, const char *name)
{
	size_t n = strlen(name);

	if (n > sizeof(s->name) - 1)
		n = sizeof(s->name) - 1;	/* truncate at 99 characters */
	memcpy(s->name, name, n);
	s->name[n] = 0;
}

SMEM_ARRAY_DECLARE(mts_array, struct my_test_struct)

static struct smem_blob_hdr *hdr_of(struct smem_array *a)
{
	return (struct smem_blob_hdr *)(void *)((char *)smem_array_data(a) - SMEM_BLOB_DATA_OFF);
}

static int at(struct smem_array *a, size_t i)
{
	int v = -1;

	ck_assert_int_eq(int_array_get(a, i, &v), 0);
	return v;
}

/* ---- the seed's tests ----------------------------------------------------------------- */

START_TEST(array_indexer_read_write_integer_data_matches)
{
	struct smem_array *sma, *r;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &sma), 0);
	ck_assert_int_eq(int_array_set(sma, 0, 3), 0);
	ck_assert_int_eq(int_array_set(sma, 4, 10), 0);
	ck_assert_int_eq(int_array_open(name, NULL, &r), 0);
	ck_assert_int_eq(at(r, 1), 0);
	ck_assert_int_eq(at(r, 0), 3);
	ck_assert_int_eq(at(r, 4), 10);
	smem_array_close(r);

	ck_assert_int_eq(int_array_set(sma, 0, 5), 0);
	ck_assert_int_eq(int_array_set(sma, 4, 55), 0);
	ck_assert_int_eq(int_array_open(name, NULL, &r), 0);
	ck_assert_int_eq(at(r, 1), 0);
	ck_assert_int_eq(at(r, 0), 5);
	ck_assert_int_eq(at(r, 4), 55);
	smem_array_close(r);

	/* list[3] = 68; ArraySlice(list, 1, 8)[0] = 67 writes index 1. */
	ck_assert_int_eq(int_array_set(sma, 3, 68), 0);
	ck_assert_int_eq(int_array_set(sma, 1 + 0, 67), 0);
	ck_assert_int_eq(int_array_open(name, NULL, &r), 0);
	ck_assert_int_eq(at(r, 1 + 0), 67);
	ck_assert_int_eq(at(r, 1 + 2), 68);
	ck_assert_int_eq(at(r, 1 + 3), 55);
	smem_array_close(r);
	smem_array_close(sma);
}
END_TEST

START_TEST(array_indexer_out_of_range_gives_erange)
{
	struct smem_array *sma;
	int v = 0;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &sma), 0);
	ck_assert_int_eq(int_array_set(sma, (size_t)-1, 0), -ERANGE);
	ck_assert_int_eq(int_array_set(sma, smem_array_length(sma), 0), -ERANGE);
	ck_assert_int_eq(int_array_get(sma, (size_t)-1, &v), -ERANGE);
	ck_assert_int_eq(int_array_get(sma, 10, &v), -ERANGE);
	ck_assert_int_eq(int_array_get(sma, 9, &v), 0);
	smem_array_close(sma);
}
END_TEST

START_TEST(array_test_struct_name_honours_the_terminator)
{
	struct my_test_struct s;

	memset(&s, 0, sizeof(s));
	mts_set_name(&s, "long string long string");
	mts_set_name(&s, "short string");
	ck_assert_str_eq(s.name, "short string");
	mts_set_name(&s, "0123456789012345678901234567890123456789012345678901234567890123456789"
			 "012345678901234567890123456789");	/* 100 characters */
	ck_assert_uint_eq(strlen(s.name), 99);
}
END_TEST

START_TEST(array_indexer_read_write_complex_struct_data_matches)
{
	struct my_test_struct w, got;
	struct smem_array *sma, *r;
	T_NAME(name, "arr");

	ck_assert_int_eq(mts_array_create(name, 10, NULL, &sma), 0);
	memset(&w, 0, sizeof(w));
	w.value_a = 3;
	mts_set_name(&w, "My Test Name");
	ck_assert_int_eq(mts_array_set(sma, 0, w), 0);
	w.value_a = 10;
	mts_set_name(&w, "My Test Name2");
	ck_assert_int_eq(mts_array_set(sma, 4, w), 0);

	ck_assert_int_eq(mts_array_open(name, NULL, &r), 0);
	ck_assert_int_eq(mts_array_get(r, 1, &got), 0);
	ck_assert_int_eq(got.value_a, 0);
	ck_assert_int_eq(mts_array_get(r, 0, &got), 0);
	ck_assert_int_eq(got.value_a, 3);
	ck_assert_str_eq(got.name, "My Test Name");
	ck_assert_int_eq(mts_array_get(r, 4, &got), 0);
	ck_assert_int_eq(got.value_a, 10);
	ck_assert_str_eq(got.name, "My Test Name2");
	smem_array_close(r);
	smem_array_close(sma);
}
END_TEST

START_TEST(array_copy_to_and_write_with_null_give_einval)
{
	struct smem_array *sma;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &sma), 0);
	ck_assert_int_eq(int_array_read(sma, 0, NULL, 10), -EINVAL);	/* CopyTo(null) */
	ck_assert_int_eq(int_array_write(sma, 0, NULL, 10), -EINVAL);	/* Write(null) */
	ck_assert_int_eq(smem_array_get(sma, 0, NULL), -EINVAL);
	smem_array_close(sma);
}
END_TEST

START_TEST(array_enumerating_items_matches_the_data)
{
	unsigned char data[1024], item;
	struct smem_array *sma;
	T_NAME(name, "arr");

	memset(data, 0, sizeof(data));	/* the seed's data: never randomised, all zero */
	ck_assert_int_eq(byte_array_create(name, 1024, NULL, &sma), 0);
	for (int pass = 0; pass < 2; pass++) {
		ck_assert_int_eq(byte_array_write(sma, 0, data, 1024), 0);
		for (size_t i = 0; i < smem_array_length(sma); i++) {
			ck_assert_int_eq(byte_array_get(sma, i, &item), 0);
			ck_assert_uint_eq(item, data[i]);
		}
		for (size_t i = 0; i < sizeof(data); i++)	/* and again with real data */
			data[i] = (unsigned char)(i * 7 + 1);
	}
	smem_array_close(sma);
}
END_TEST

struct lock_ctx {
	const char *name;
	_Atomic int sync;
	bool read_is_first, read_blocked;
	unsigned char read_buf[1024];
	_Atomic int err;
};

static void *t1_reader(void *arg)
{
	struct lock_ctx *x = arg;
	struct smem_array *smr;

	if (byte_array_open(x->name, NULL, &smr) != 0) {
		x->err = 1;
		return NULL;
	}
	x->read_is_first = atomic_exchange(&x->sync, 1) == 0;
	if (smem_array_lock_read(smr, -1) != 0)	/* must block until the writer is done */
		x->err = 2;
	x->read_blocked = atomic_exchange(&x->sync, 3) == 4;
	if (byte_array_read(smr, 0, x->read_buf, 1024) != 0)
		x->err = 3;
	smem_array_unlock(smr);
	smem_array_close(smr);
	return NULL;
}

START_TEST(array_acquire_write_lock_blocks_readers_until_released)
{
	unsigned char data[1024];
	struct lock_ctx x = { .sync = 0 };
	struct smem_array *sma;
	pthread_t t1;
	unsigned seed = 3;
	T_NAME(name, "arr");

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)rand_r(&seed);
	x.name = name;
	ck_assert_int_eq(byte_array_create(name, 1024, NULL, &sma), 0);
	ck_assert_int_eq(smem_array_lock_write(sma, -1), 0);
	pthread_create(&t1, NULL, t1_reader, &x);
	/* The seed slept 10 ms and hoped t1 had started; wait for it instead (bounded). */
	for (int k = 0; k < 5000 && atomic_load(&x.sync) == 0 && x.err == 0; k++)
		usleep(1000);
	usleep(10000);	/* let t1 reach its blocking lock_read */
	/* t2's part, on this thread: it already holds the write lock. */
	if (atomic_exchange(&x.sync, 2) != 1)
		x.read_is_first = false;
	usleep(10000);
	ck_assert_int_eq(byte_array_write(sma, 0, data, 1024), 0);
	atomic_store(&x.sync, 4);
	ck_assert_int_eq(smem_array_unlock(sma), 0);
	pthread_join(t1, NULL);
	ck_assert_int_eq(x.err, 0);
	ck_assert(x.read_is_first);
	ck_assert(x.read_blocked);
	ck_assert_mem_eq(x.read_buf, data, sizeof(data));
	smem_array_close(sma);
}
END_TEST

START_TEST(array_acquire_read_write_locks_block_each_other)
{
	struct smem_array *sma, *smr;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &sma), 0);
	ck_assert_int_eq(int_array_open(name, NULL, &smr), 0);
	ck_assert_int_eq(smem_array_lock_write(sma, -1), 0);
	ck_assert_int_eq(smem_array_lock_read(smr, 10), -ETIMEDOUT);
	ck_assert_int_eq(smem_array_unlock(sma), 0);
	ck_assert_int_eq(smem_array_lock_read(smr, -1), 0);
	ck_assert_int_eq(smem_array_lock_write(sma, 10), -ETIMEDOUT);
	ck_assert_int_eq(smem_array_unlock(smr), 0);
	smem_array_close(smr);
	smem_array_close(sma);
}
END_TEST

START_TEST(array_contains_and_index_of)
{
	struct smem_array *sma;
	size_t idx = 99;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &sma), 0);
	ck_assert_int_eq(int_array_set(sma, 0, 3), 0);
	ck_assert_int_eq(int_array_set(sma, 4, 10), 0);
	ck_assert_int_eq(int_array_find(sma, 10, 0, &idx), 0);	/* Contains(10), IndexOf == 4 */
	ck_assert_uint_eq(idx, 4);
	ck_assert_int_eq(int_array_find(sma, 11, 0, &idx), -ENOENT);	/* IndexOf(11) == -1 */
	ck_assert_uint_eq(idx, 4);
	ck_assert_int_eq(int_array_find(sma, 3, 1, &idx), -ENOENT);	/* from index 1 */
	ck_assert_int_eq(int_array_find(sma, 0, 1, &idx), 0);
	ck_assert_uint_eq(idx, 1);
	smem_array_close(sma);
}
END_TEST

START_TEST(array_readme_snippet_123_and_456)
{
	struct smem_array *producer, *consumer;
	T_NAME(name, "MySharedArray");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &producer), 0);
	ck_assert_int_eq(int_array_open(name, NULL, &consumer), 0);
	ck_assert_int_eq(int_array_set(producer, 0, 123), 0);
	ck_assert_int_eq(int_array_set(producer, smem_array_length(producer) - 1, 456), 0);
	ck_assert_int_eq(at(consumer, 0), 123);
	ck_assert_int_eq(at(consumer, smem_array_length(consumer) - 1), 456);
	smem_array_close(consumer);
	smem_array_close(producer);
}
END_TEST

/* ---- element size, geometry, arguments -------------------------------------------------- */

START_TEST(array_open_with_another_element_size_is_eproto)
{
	struct smem_array *a, *b = (struct smem_array *)0x1;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 6, NULL, &a), 0);
	/* 24 bytes would divide by 2, 3, 6, 8, 12: the seed accepted all of these. */
	ck_assert_int_eq(smem_array_open(name, 2, NULL, &b), -EPROTO);
	ck_assert_int_eq(smem_array_open(name, 8, NULL, &b), -EPROTO);
	ck_assert_int_eq(mts_array_open(name, NULL, &b), -EPROTO);
	ck_assert_ptr_eq(b, (struct smem_array *)0x1);
	ck_assert_int_eq(smem_array_open(name, 0, NULL, &b), 0);	/* 0: take what is there */
	ck_assert_uint_eq(smem_array_elem_size(b), sizeof(int));
	ck_assert_uint_eq(smem_array_length(b), 6);
	smem_array_close(b);
	smem_array_close(a);
}
END_TEST

START_TEST(array_bad_creation_arguments_are_einval)
{
	struct smem_array *a = (struct smem_array *)0x1;
	T_NAME(name, "arr");

	ck_assert_int_eq(smem_array_create(name, 4, 0, NULL, &a), -EINVAL);
	ck_assert_int_eq(smem_array_create(name, 0, 10, NULL, &a), -EINVAL);
	ck_assert_int_eq(smem_array_create(name, SIZE_MAX / 2, 3, NULL, &a), -EINVAL);
	ck_assert_int_eq(smem_array_create("", 4, 10, NULL, &a), -EINVAL);
	ck_assert_ptr_eq(a, (struct smem_array *)0x1);
	ck_assert_int_eq(smem_array_open(name, 4, NULL, &a), -ENOENT);
	ck_assert_int_eq(smem_array_open(name, 4, NULL, NULL), -EINVAL);
	smem_array_close(NULL);
}
END_TEST

START_TEST(array_ranges_are_all_or_nothing)
{
	int src[4] = { 1, 2, 3, 4 }, dst[4] = { 0 };
	struct smem_array *a;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &a), 0);
	ck_assert_int_eq(int_array_write(a, 7, src, 4), -ERANGE);
	ck_assert_int_eq(at(a, 7), 0);
	ck_assert_int_eq(int_array_write(a, 6, src, 4), 0);
	ck_assert_int_eq(int_array_read(a, 6, dst, 4), 0);
	ck_assert_mem_eq(dst, src, sizeof(src));
	ck_assert_int_eq(int_array_read(a, (size_t)-2, dst, 4), -ERANGE);
	ck_assert_int_eq(int_array_read(a, 2, dst, SIZE_MAX), -ERANGE);
	ck_assert_int_eq(int_array_read(a, 10, dst, 0), 0);
	ck_assert_int_eq(int_array_data(a)[9], 4);
	smem_array_close(a);
}
END_TEST

/* ---- processes -------------------------------------------------------------------------- */

static char g_name[128];

static int child_fill(void *arg)
{
	int base = (int)(intptr_t)arg;
	struct smem_array *a;

	if (int_array_open(g_name, NULL, &a) != 0)
		return 10;
	for (int round = 0; round < 200; round++) {
		/* Write the whole array under one write lock: readers see all or nothing. */
		if (smem_array_lock_write(a, 2000) != 0)
			return 11;
		for (size_t i = 0; i < smem_array_length(a); i++)
			if (int_array_set(a, i, base + round) != 0)
				return 12;
		smem_array_unlock(a);
	}
	smem_array_close(a);
	return 0;
}

START_TEST(array_whole_array_updates_are_atomic_across_processes)
{
	struct smem_array *a;
	int snap[64];
	pid_t p1, p2;
	int torn = 0;

	t_name(g_name, sizeof(g_name), "arr");
	ck_assert_int_eq(int_array_create(g_name, 64, NULL, &a), 0);
	ck_assert_int_eq(smem_array_set_timeout(a, 2000), 0);
	p1 = t_fork(child_fill, (void *)(intptr_t)1000);
	p2 = t_fork(child_fill, (void *)(intptr_t)5000);
	for (int k = 0; k < 300; k++) {
		ck_assert_int_eq(int_array_read(a, 0, snap, 64), 0);	/* read-locked */
		for (int i = 1; i < 64; i++)
			torn += snap[i] != snap[0];
	}
	ck_assert_int_eq(t_wait(p1), 0);
	ck_assert_int_eq(t_wait(p2), 0);
	ck_assert_int_eq(torn, 0);
	ck_assert_int_eq(int_array_read(a, 0, snap, 64), 0);
	ck_assert(snap[0] == 1199 || snap[0] == 5199);
	smem_array_close(a);
}
END_TEST

/* ---- hostile memory --------------------------------------------------------------------- */

START_TEST(array_corrupt_header_is_refused_and_private_geometry_rules)
{
	struct smem_array *a, *b = (struct smem_array *)0x1;
	struct smem_blob_hdr *h, saved;
	int v = 0;
	T_NAME(name, "arr");

	ck_assert_int_eq(int_array_create(name, 10, NULL, &a), 0);
	h = hdr_of(a);
	saved = *h;
	h->length = 1000000;		/* beyond the mapping */
	h->data_size = 4000000;
	ck_assert_int_eq(int_array_open(name, NULL, &b), -EPROTO);
	*h = saved;
	h->length = 11;			/* length and data size disagree */
	ck_assert_int_eq(int_array_open(name, NULL, &b), -EPROTO);
	*h = saved;
	h->elem_size = 0;
	ck_assert_int_eq(smem_array_open(name, 0, NULL, &b), -EPROTO);
	*h = saved;
	h->elem_size = 1ull << 62;	/* elem * length overflows */
	h->length = 8;
	ck_assert_int_eq(smem_array_open(name, 0, NULL, &b), -EPROTO);
	*h = saved;
	h->magic = SMEM_BLOB_MAGIC_BUFFER;
	ck_assert_int_eq(int_array_open(name, NULL, &b), -EPROTO);
	ck_assert_ptr_eq(b, (struct smem_array *)0x1);
	*h = saved;
	ck_assert_int_eq(int_array_open(name, NULL, &b), 0);
	/* Corrupted after open: our private copies still bound every access. */
	h->length = 1u << 30;
	h->elem_size = 1;
	ck_assert_int_eq(int_array_set(b, 10, 1), -ERANGE);
	ck_assert_int_eq(int_array_get(b, 100000, &v), -ERANGE);
	ck_assert_int_eq(int_array_set(b, 9, 99), 0);
	ck_assert_int_eq(at(a, 9), 99);
	ck_assert_uint_eq(smem_array_length(b), 10);
	/* A corrupted lock word: recovered within the timeout, no hang. */
	atomic_store(&h->lock.state, (uint64_t)0x00abcd11u << 32);
	ck_assert_int_eq(int_array_set(b, 0, 1), -EOWNERDEAD);
	ck_assert_int_eq(at(b, 0), 1);
	smem_array_close(b);
	smem_array_close(a);
}
END_TEST

START_TEST(array_every_call_refuses_bad_arguments_without_crashing)
{
	struct smem_array *a = NULL;
	char name[128], buf[8] = { 0 };
	size_t idx = 77;

	t_name(name, sizeof(name), "arr-bad");
	ck_assert_int_eq(smem_array_create(NULL, 8, 8, NULL, &a), -EINVAL);
	ck_assert_int_eq(smem_array_create(name, 0, 8, NULL, &a), -EINVAL);
	ck_assert_int_eq(smem_array_create(name, 8, 0, NULL, &a), -EINVAL);
	ck_assert_int_eq(smem_array_create(name, SIZE_MAX, 2, NULL, &a), -EINVAL);
	ck_assert_int_eq(smem_array_create(name, 8, 8, NULL, NULL), -EINVAL);
	ck_assert_int_eq(smem_array_open(NULL, 8, NULL, &a), -EINVAL);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(smem_array_create(name, 8, 8, NULL, &a), 0);
	ck_assert_int_eq(smem_array_open(name, 8, NULL, NULL), -EINVAL);

	ck_assert_int_eq(smem_array_get(NULL, 0, buf), -EINVAL);
	ck_assert_int_eq(smem_array_get(a, 0, NULL), -EINVAL);
	ck_assert_int_eq(smem_array_get(a, SIZE_MAX, buf), -ERANGE);
	ck_assert_int_eq(smem_array_set(NULL, 0, buf), -EINVAL);
	ck_assert_int_eq(smem_array_set(a, 0, NULL), -EINVAL);
	ck_assert_int_eq(smem_array_read_range(NULL, 0, buf, 1), -EINVAL);
	ck_assert_int_eq(smem_array_read_range(a, 0, NULL, 1), -EINVAL);
	ck_assert_int_eq(smem_array_read_range(a, 1, buf, SIZE_MAX), -ERANGE);
	ck_assert_int_eq(smem_array_write_range(NULL, 0, buf, 1), -EINVAL);
	ck_assert_int_eq(smem_array_write_range(a, 0, NULL, 1), -EINVAL);
	ck_assert_int_eq(smem_array_write_range(a, SIZE_MAX / 4, buf, SIZE_MAX / 4 * 3), -ERANGE);
	ck_assert_int_eq(smem_array_find(NULL, buf, 0, &idx), -EINVAL);
	ck_assert_int_eq(smem_array_find(a, NULL, 0, &idx), -EINVAL);
	ck_assert_int_eq(smem_array_find(a, buf, 0, NULL), -EINVAL);
	ck_assert_uint_eq(idx, 77);
	ck_assert_int_eq(smem_array_lock_read(NULL, 0), -EINVAL);
	ck_assert_int_eq(smem_array_lock_write(NULL, 0), -EINVAL);
	ck_assert_int_eq(smem_array_unlock(NULL), -EINVAL);
	ck_assert_int_eq(smem_array_set_timeout(NULL, 1), -EINVAL);
	ck_assert_int_eq(smem_array_timeout(NULL), -EINVAL);
	ck_assert_uint_eq(smem_array_length(NULL), 0);
	ck_assert_uint_eq(smem_array_elem_size(NULL), 0);
	ck_assert_ptr_null(smem_array_data(NULL));
	ck_assert_ptr_null(smem_array_name(NULL));
	ck_assert(!smem_array_is_owner(NULL));
	ck_assert(!smem_array_shutting_down(NULL));
	smem_array_close(NULL);
	smem_array_close(a);
}
END_TEST

static Suite *array_suite(void)
{
	Suite *s = suite_create("array");
	TCase *tc = tcase_create("seed");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, array_indexer_read_write_integer_data_matches);
	tcase_add_test(tc, array_indexer_out_of_range_gives_erange);
	tcase_add_test(tc, array_test_struct_name_honours_the_terminator);
	tcase_add_test(tc, array_indexer_read_write_complex_struct_data_matches);
	tcase_add_test(tc, array_copy_to_and_write_with_null_give_einval);
	tcase_add_test(tc, array_enumerating_items_matches_the_data);
	tcase_add_test(tc, array_acquire_write_lock_blocks_readers_until_released);
	tcase_add_test(tc, array_acquire_read_write_locks_block_each_other);
	tcase_add_test(tc, array_contains_and_index_of);
	tcase_add_test(tc, array_readme_snippet_123_and_456);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, array_open_with_another_element_size_is_eproto);
	tcase_add_test(tc, array_bad_creation_arguments_are_einval);
	tcase_add_test(tc, array_every_call_refuses_bad_arguments_without_crashing);
	tcase_add_test(tc, array_ranges_are_all_or_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("processes");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, array_whole_array_updates_are_atomic_across_processes);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, array_corrupt_header_is_refused_and_private_geometry_rules);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(array_suite)
