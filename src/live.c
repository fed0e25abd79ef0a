/* SPDX-License-Identifier: MIT */
/*
 * Liveness of participants, without trusting pids.
 *
 * Pids are not identities across pid namespaces, and anything written in shared memory can be
 * forged by a peer. What a peer cannot forge is a lock held in the kernel. So each handle that
 * takes part in a lock or a ring:
 *
 *   1. opens the memfd again through /proc/self/fd/N: a private open file description, so its
 *      locks are its own (the fd received from the broker is one description shared by all);
 *   2. claims a slot i by taking an OFD write lock (F_OFD_SETLK, non-blocking) on byte
 *      SMEM_LIVE_LOCK_BASE + i of the memfd: the kernel decides who wins, nobody else can
 *      hold that byte while we live;
 *   3. bumps the slot's generation in the header and uses gen << 8 | i as its owner id.
 *
 * The kernel drops an OFD lock when the last fd of its description closes, that is when the
 * handle is closed or the process dies, however it dies (SIGKILL included). To ask whether
 * owner id X is alive, read slot(X)'s generation (a mismatch means the slot was reclaimed,
 * so X is dead) and ask F_OFD_GETLK whether anybody holds byte slot(X). Byte locks need no
 * data: they do not touch the memfd's contents or size.
 *
 * A scribbling peer can rewrite generations, which makes a live owner look dead (the damage a
 * scribbler can do to that object anyway) but it cannot make a dead one look alive for long:
 * the kernel lock is gone.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

/*
 * Joined handles, so that a forked child can drop its copies of their descriptions: while a
 * child held one, the kernel would keep the parent's slot locked after the parent died.
 */
static pthread_mutex_t joined_lock = PTHREAD_MUTEX_INITIALIZER;
static struct smem_region *joined;

static void atfork_prepare(void)
{
	pthread_mutex_lock(&joined_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&joined_lock);
}

static void atfork_child(void)
{
	struct smem_region *r, *next;

	for (r = joined; r; r = next) {
		next = r->live_next;
		close(r->live_fd);	/* our copy only: the parent keeps its lock */
		r->live_fd = -1;
		r->live_id = 0;
		r->live_next = r->live_prev = NULL;
	}
	joined = NULL;
	pthread_mutex_unlock(&joined_lock);
}

/* Rank SMEM__FORK_LIVE, the innermost: modules call into live.c with their own mutex held. */
static const struct smem__fork_ops live_fork_ops = {
	.prepare = atfork_prepare,
	.parent = atfork_parent,
	.child = atfork_child,
};

__attribute__((constructor)) static void live_atfork_init(void)
{
	smem__fork_register(SMEM__FORK_LIVE, &live_fork_ops);
}

static int ofd_lock(int fd, int cmd, short type, unsigned slot, struct flock *out)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = (off_t)(SMEM_LIVE_LOCK_BASE + slot),
		.l_len = 1,
		.l_pid = 0,	/* required by OFD locks */
	};

	if (fcntl(fd, cmd, &fl) < 0)
		return -errno;
	if (out)
		*out = fl;
	return 0;
}

int smem__live_join(struct smem_region *r)
{
	char path[64];
	unsigned i;
	int fd, ret;

	if (r->live_id)
		return 0;
	if (r->rdonly)
		return -EINVAL;	/* a write lock needs a writable description */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;

	for (i = 0; i < SMEM_LIVE_SLOTS; i++) {
		struct smem_live_slot *s = &r->hdr->live[i];
		uint32_t gen;

		ret = ofd_lock(fd, F_OFD_SETLK, F_WRLCK, i, NULL);
		if (ret == -EAGAIN || ret == -EACCES)
			continue;	/* held by a live participant */
		if (ret < 0) {
			close(fd);
			return ret;
		}
		/*
		 * The slot is ours. A new generation tells everyone that owner ids naming the
		 * previous claimant are dead. 24 bits, never 0 so that no id is 0.
		 */
		gen = (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & 0xffffffu;
		if (gen == 0)
			gen = 1;
		s->pid = (uint32_t)getpid();
		/* Release: pairs with the acquire in smem__live_alive(). */
		atomic_store_explicit(&s->gen, gen, memory_order_release);
		r->live_fd = fd;
		r->live_id = gen << 8 | i;
		pthread_mutex_lock(&joined_lock);
		r->live_prev = NULL;
		r->live_next = joined;
		if (joined)
			joined->live_prev = r;
		joined = r;
		pthread_mutex_unlock(&joined_lock);
		return 0;
	}
	close(fd);
	return -EUSERS;
}

void smem__live_leave(struct smem_region *r)
{
	pthread_mutex_lock(&joined_lock);
	if (r->live_fd >= 0) {
		if (r->live_prev)
			r->live_prev->live_next = r->live_next;
		else
			joined = r->live_next;
		if (r->live_next)
			r->live_next->live_prev = r->live_prev;
		r->live_next = r->live_prev = NULL;
		close(r->live_fd);	/* drops the kernel lock */
	}
	r->live_fd = -1;
	r->live_id = 0;
	pthread_mutex_unlock(&joined_lock);
}

bool smem__live_alive(const struct smem_region *r, uint32_t id)
{
	unsigned slot = id & 0xffu;
	uint32_t gen = id >> 8;
	struct flock fl = { .l_type = F_UNLCK };
	int fd;

	if (id == 0 || gen == 0)
		return false;
	if (id == r->live_id)
		return true;
	/* Acquire: pairs with the release in smem__live_join(). */
	if (atomic_load_explicit(&r->hdr->live[slot].gen, memory_order_acquire) != gen)
		return false;
	/*
	 * F_OFD_GETLK reports locks of other descriptions only; our own live_fd would not see
	 * itself, but our own id was answered above. Without a private description (read-only
	 * handles), the shared one serves: nobody locks through it.
	 */
	fd = r->live_fd >= 0 ? r->live_fd : r->fd;
	if (ofd_lock(fd, F_OFD_GETLK, F_WRLCK, slot, &fl) < 0)
		return true;	/* cannot tell: never declare a live peer dead */
	return fl.l_type != F_UNLCK;
}
