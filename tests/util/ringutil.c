/* SPDX-License-Identifier: MIT */
/* Helpers shared by the ring suites (ringutil.h). */
#include "util/ringutil.h"
#include "util/testutil.h"

struct smem_ring *t_ring_new(char *name, size_t len, uint32_t n, uint32_t size)
{
	struct smem_ring *r = NULL;
	int err;

	t_name(name, len, "ring");
	err = smem_ring_create(name, n, size, NULL, &r);
	ck_assert_msg(err == 0, "create: %s", smem_strerror(err));
	return r;
}

struct smem_ring *t_ring_open(const char *name)
{
	struct smem_ring *r = NULL;
	int err = smem_ring_open(name, NULL, &r);

	ck_assert_msg(err == 0, "open: %s", smem_strerror(err));
	return r;
}

struct smem_ring_stats t_ring_stats(struct smem_ring *r)
{
	struct smem_ring_stats s;

	ck_assert_int_eq(smem_ring_stats(r, &s), 0);
	return s;
}

uint64_t t_rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

TCase *t_ring_tcase(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}
