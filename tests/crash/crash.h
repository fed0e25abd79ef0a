/* SPDX-License-Identifier: MIT */
/*
 * What the crash campaign's scenarios share (tests/crash/crash.c runs them): the campaign's
 * counters and trial state, the random stream, the child processes (spawn, kill, reap) and
 * the checks every trial ends with. Each scenario lives in its own file (trial_*.c) and
 * exports only its trial function.
 */
#ifndef SMEM_TESTS_CRASH_H
#define SMEM_TESTS_CRASH_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

enum { S_RING, S_LOCK, S_RPC, S_BROKER, S_COUNT };

struct crash_stats {
	unsigned trials[S_COUNT], failures[S_COUNT];
	unsigned long kills[S_COUNT];
	unsigned long long work[S_COUNT];	/* messages, increments, calls, operations */
	unsigned long long lost[S_COUNT];	/* ring: messages lost with killed readers */
	unsigned long long recovered[S_COUNT];	/* ring: drops+reclaims; lock: EOWNERDEAD */
};

extern struct crash_stats g_stats;
extern int g_timeout_s;
extern bool g_verbose;
extern unsigned long g_trial;
extern uint64_t g_rng;
extern const char *g_broker;		/* the address, for smem__broker_* admin calls */
extern char g_prefix[64];		/* names of this trial start with it */
extern char g_fail[512];		/* the first failure of the trial ("": none yet) */

#define MAX_PROCS	16

struct proc {
	pid_t pid;
	int role;		/* scenario-specific */
	int id;			/* scenario-specific (writer id, worker index) */
	bool killed;
};

extern struct proc procs[MAX_PROCS];
extern int nprocs;

uint64_t rnd(void);
unsigned rnd_below(unsigned n);
long long now_ms(void);
void sleep_us(unsigned us);
/* The trial fails; the first reason is kept. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int count_fds(void);
void *shared_alloc(size_t size);

/* Fork a child running fn(role, id, arg); its index in procs[], or -1. */
int spawn(int role, int id, int (*fn)(int role, int id, void *arg), void *arg);
int pick_victim(int role);
void kill9(int i, int s);
void reap(int role, long long deadline_ms);
void reap_all_now(void);
unsigned leaked_names(void);

/* The scenarios, one trial each. */
void trial_ring(void);
void trial_lock(void);
void trial_rpc(void);
void trial_broker(void);

#endif
