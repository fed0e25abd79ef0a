/* SPDX-License-Identifier: MIT */
/*
 * Fork handling in one place (fork.c): one process generation and one pthread_atfork handler
 * that calls each module's handlers in a fixed order. Internal: nothing here is exported.
 *
 * A forked child inherits every handle but none of the parent's threads, and must not pass
 * for the parent in shared memory (a dead child's claims would look alive while the parent
 * lives, and the parent's claims would look like the child's). So:
 *   - smem__fork_generation() changes in every forked child, before any module's child
 *     handler runs. A handle records the generation it was made (or rejoined) in; a handle
 *     whose recorded generation differs was inherited, and its module rejoins lazily.
 *   - A module whose lock is held across fork registers handlers at a rank. Ranks are lock
 *     nesting order: prepare handlers run from the lowest rank up (outermost lock first),
 *     parent and child handlers from the highest rank down (innermost first). A module that
 *     calls into another with its own mutex held must have the lower rank.
 */
#ifndef SMEM_FORK_H
#define SMEM_FORK_H

#include <pthread.h>
#include <stdatomic.h>

enum smem__fork_rank {
	SMEM__FORK_RING,	/* ring_open.c: fork_mutex; its rejoin calls live.c under it */
	SMEM__FORK_LOCK,	/* lock.c: reg_mutex; its rejoin calls live.c under it */
	SMEM__FORK_RPC,		/* rpc_wait.c: a child forgets its parent thread's schedstat fd */
	SMEM__FORK_BROKER,	/* broker_client.c: g_lock; its child drops the parent's sockets */
	SMEM__FORK_LIVE,	/* live.c: joined_lock, innermost: its child handler runs first */
	SMEM__FORK_RANKS
};

struct smem__fork_ops {
	void (*prepare)(void);	/* in the forking thread, before fork(): take the module's lock */
	void (*parent)(void);	/* in the parent after fork(): release it */
	void (*child)(void);	/* in the child's only thread: forget the parent's threads, fds */
};

/*
 * Register @ops (static storage) at @rank. Each rank is registered once; a second call for
 * the same rank is ignored. Any member may be NULL. Thread-safe, and safe against a
 * concurrent fork().
 */
void smem__fork_register(enum smem__fork_rank rank, const struct smem__fork_ops *ops);

/* Hidden in the declaration too: read through a PC-relative load, not the GOT (ring ops). */
extern _Atomic unsigned smem__fork_gen __attribute__((visibility("hidden")));

/* The process generation: 0 in a process that was not forked, bumped in every child. */
static inline unsigned smem__fork_generation(void)
{
	return atomic_load_explicit(&smem__fork_gen, memory_order_relaxed);
}

/*
 * Start a thread of the library's: pthread_create(@t, NULL, @fn, @arg), returning only once
 * the new thread has entered @fn. 0, or a negative errno (nothing started).
 *
 * Why: fork() copies every lock of the process as it is at that instant, and a thread that
 * is still starting holds locks of its runtime. GCC 12's AddressSanitizer, which takes none
 * of its locks around fork, holds its thread-registry mutex and allocator size-class mutexes
 * while a new thread registers and allocates its first blocks. An application that forks
 * right after the call that started our thread (a create, smem_ring_fd(), ...) cannot know a
 * thread is starting, and its child got a mutex nobody releases: the child's first
 * pthread_create() (the broker client's helper on its first open) or allocation of that size
 * slept forever. Once @fn runs, the runtime's start-up is over. Costs one futex handshake per
 * thread started. Threads may still allocate later; the library's own (broker helper, ring
 * bridge, waitfd helper) allocate nothing while they idle.
 */
int smem__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
