/* SPDX-License-Identifier: MIT */
/*
 * The one pthread_atfork handler of the library, and the process generation (fork.h says
 * why and in which order the modules' handlers run).
 *
 * Registered by a constructor, so before any handler a module (or the application) registers
 * with pthread_atfork later: our prepare runs after theirs, our parent and child handlers
 * before theirs, and the innermost lock (live.c's) is still taken last and released first.
 */
#include <pthread.h>
#include <stddef.h>

#include "fork.h"

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
