/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the ring suites (check_ring.c: the API and the seed's tests;
 * check_ring_stress.c: exactly-once stress, crashes, hostile memory).
 */
#ifndef SMEM_RINGUTIL_H
#define SMEM_RINGUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <smem.h>

/* Create a ring of @n nodes of @size bytes under a fresh name (written to @name). */
struct smem_ring *t_ring_new(char *name, size_t len, uint32_t n, uint32_t size);
/* Open @name; the test fails if that does not work. */
struct smem_ring *t_ring_open(const char *name);
/* The handle's statistics; the test fails if they cannot be read. */
struct smem_ring_stats t_ring_stats(struct smem_ring *r);

/* xorshift64*: deterministic per seed. */
uint64_t t_rng_next(uint64_t *s);

/* A test case in @s with the fd-leak fixture and @timeout seconds. */
TCase *t_ring_tcase(Suite *s, const char *name, int timeout);

/*
 * ThreadSanitizer cannot follow a process that forks while other threads run (the broker
 * client has one), so under TSan the multi-process tests are left out; the threaded ones are
 * what TSan is for. Everything runs in the plain and ASan builds.
 */
#if defined(__SANITIZE_THREAD__)
#define add_fork_test(tc, fn) do { \
	(void)(tc); (void)(fn); \
	fprintf(stderr, "ring: %s skipped under ThreadSanitizer (fork)\n", #fn); \
} while (0)
#else
#define add_fork_test(tc, fn) tcase_add_test(tc, fn)
#endif

#endif
