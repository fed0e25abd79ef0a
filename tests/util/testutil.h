/* SPDX-License-Identifier: MIT */
/*
 * Shared test helpers: unique names, an fd-leak fixture, fork helpers, one main() for all
 * suites. Every suite runs against the private broker that tests/run-suites points
 * SMEM_BROKER at.
 */
#ifndef SMEM_TESTUTIL_H
#define SMEM_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <smem.h>

/* Fill @buf with "<prefix>-<pid>-<counter>-<random>": unique within and across runs. */
const char *t_name(char *buf, size_t len, const char *prefix);
#define T_NAME(var, prefix) char var[128]; t_name(var, sizeof(var), prefix)

/* Number of open fds in this process. */
int t_count_fds(void);

/*
 * The fd-leak fixture: t_fds_setup() records the count, t_fds_teardown() lets the broker
 * client drop idle connections and fails the test if the count grew. Add with
 * tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown).
 */
void t_fds_setup(void);
void t_fds_teardown(void);

/* Fork a child that runs fn(arg) and _exit()s with its return value. Returns the pid. */
pid_t t_fork(int (*fn)(void *arg), void *arg);
/* Wait for @pid; returns its exit status (0..255), or 128+signal if it was killed. */
int t_wait(pid_t pid);
/* Kill -9 and reap. */
void t_kill9(pid_t pid);

/* Directory of the built binaries (tools), from $BUILD set by the Makefile. */
const char *t_build_dir(void);

/* Milliseconds of CLOCK_MONOTONIC. */
long long t_now_ms(void);

/* Run one suite in CK_FORK mode; the exit code is the number of failures (capped). */
int t_run_suite(Suite *s);
#define T_MAIN(suite_fn) \
	int main(void) { return t_run_suite(suite_fn()); }

#endif
