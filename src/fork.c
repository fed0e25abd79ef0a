/* SPDX-License-Identifier: MIT */
/*
 * The one pthread_atfork handler of the library, the process generation (fork.h says why and
 * in which order the modules' handlers run), and the start of the library's threads, which
 * returns only once the thread is past its start-up so that a fork right after is safe.
 *
 * Registered by a constructor, so before any handler a module (or the application) registers
 * with pthread_atfork later: our prepare runs after theirs, our parent and child handlers
 * before theirs, and the innermost lock (live.c's) is still taken last and released first.
 */
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "fork.h"
#include "internal.h"

_Atomic unsigned smem__fork_gen;

static pthread_mutex_t tbl_mutex = PTHREAD_MUTEX_INITIALIZER;
static const struct smem__fork_ops *tbl[SMEM__FORK_RANKS];

void smem__fork_register(enum smem__fork_rank rank, const struct smem__fork_ops *ops)
{
	if ((unsigned)rank >= SMEM__FORK_RANKS || !ops)
		return;
	pthread_mutex_lock(&tbl_mutex);
	if (!tbl[rank])
		tbl[rank] = ops;
	pthread_mutex_unlock(&tbl_mutex);
}

/* tbl_mutex is held from prepare to parent/child: the table does not change across fork. */
static void fork_prepare(void)
{
	unsigned i;

	pthread_mutex_lock(&tbl_mutex);
	for (i = 0; i < SMEM__FORK_RANKS; i++)
		if (tbl[i] && tbl[i]->prepare)
			tbl[i]->prepare();
}

static void fork_parent(void)
{
	unsigned i;

	for (i = SMEM__FORK_RANKS; i-- > 0;)
		if (tbl[i] && tbl[i]->parent)
			tbl[i]->parent();
	pthread_mutex_unlock(&tbl_mutex);
}

static void fork_child(void)
{
	unsigned i;

	/* First: every child handler, and every later look, sees the new generation. */
	atomic_fetch_add_explicit(&smem__fork_gen, 1, memory_order_relaxed);
	for (i = SMEM__FORK_RANKS; i-- > 0;)
		if (tbl[i] && tbl[i]->child)
			tbl[i]->child();
	pthread_mutex_unlock(&tbl_mutex);
}

__attribute__((constructor)) static void fork_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- starting the library's threads (fork.h says why they are waited for) ---------------- */

struct start {
	void *(*fn)(void *);
	void *arg;
	_Atomic uint32_t running;	/* futex word: 1 once the thread runs our code */
};

static void *thread_trampoline(void *p)
{
	struct start *st = p;
	void *(*fn)(void *) = st->fn;
	void *arg = st->arg;

	/*
	 * Release: pairs with the starter's acquire load (fn and arg were read). The starter
	 * may return, and its frame go, as soon as it sees the store: the wake then reaches
	 * a dead address, which wakes nobody, or some other sleeper on a reused stack word,
	 * whose wait re-checks (every futex wait of the library loops on its condition).
	 */
	atomic_store_explicit(&st->running, 1, memory_order_release);
	smem__futex_wake(&st->running, INT_MAX);
	return fn(arg);
}

int smem__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	struct start st = { .fn = fn, .arg = arg };
	int err;

	err = pthread_create(t, NULL, thread_trampoline, &st);
	if (err)
		return -err;
	/* Acquire: pairs with the trampoline's store; a wake can be spurious, so loop. */
	while (!atomic_load_explicit(&st.running, memory_order_acquire))
		smem__futex_wait(&st.running, 0, UINT64_MAX);
	return 0;
}
