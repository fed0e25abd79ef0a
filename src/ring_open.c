/* SPDX-License-Identifier: MIT */
/*
 * A ring handle's life: the geometry and layout of a new ring, create, open (validating the
 * shared geometry into private copies), close (shutdown by the owner), a forked child's own
 * participation, and the accessors and statistics. The protocol is at the top of ring.c; see
 * ring_core_int.h for the other ring files.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring_core_int.h"

/* ---- fork ------------------------------------------------------------------------------ */

/*
 * A forked child inherits the handle but not its participation: live.c's atfork handler drops
 * the child's copy of the liveness description. Claiming with the parent's owner id would let
 * others "recover" the child's live claims once the parent's handle goes away (a torn or lost
 * message), and keep a dead child's claims looking alive while the parent lives (a wedged
 * ring). So before its first claim, a child joins under an id of its own, as lock.c does.
 */
static pthread_mutex_t fork_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
	pthread_mutex_lock(&fork_mutex);
}

/* In the parent and in the child: the generation has changed already (fork.c). */
static void atfork_release(void)
{
	pthread_mutex_unlock(&fork_mutex);
}

/*
 * Rank SMEM__FORK_RING, below live.c's: fork_mutex is taken before live.c's joined_lock, the
 * order smem__ring_rejoin() takes them in.
 */
static const struct smem__fork_ops ring_fork_ops = {
	.prepare = atfork_prepare,
	.parent = atfork_release,
	.child = atfork_release,
};

static void atfork_register(void)
{
	smem__fork_register(SMEM__FORK_RING, &ring_fork_ops);
}

int smem__ring_rejoin(struct smem_ring *r, unsigned gen)
{
	int err = 0;

	pthread_mutex_lock(&fork_mutex);
	if (atomic_load_explicit(&r->fork_gen, memory_order_relaxed) != gen) {
		smem__live_leave(r->reg);	/* no-op: the atfork handler did it */
		err = smem__live_join(r->reg);
		if (!err) {
			r->id = r->reg->live_id;
			/* The parent's bridge thread does not exist here; smem_ring_fd starts ours. */
			r->bridge_on = false;
			pthread_mutex_init(&r->fd_lock, NULL);	/* a parent thread may have held it */
			/* Release: pairs with the acquire in smem__ring_check_fork(); r->id is
			 * visible. */
			atomic_store_explicit(&r->fork_gen, gen, memory_order_release);
		}
	}
	pthread_mutex_unlock(&fork_mutex);
	return err;
}


/* ---- create, open, close ------------------------------------------------------------------ */

size_t smem__ring_obj_size(uint32_t node_count, uint32_t node_size)
{
	uint64_t stride;

	if (node_count < 2 || node_count > SMEM_RING_MAX_NODES || node_size == 0 ||
	    node_size > SMEM_RING_MAX_NODE_SIZE)
		return 0;
	stride = ((uint64_t)node_size + 63) & ~63ull;
	/* At most 512 + 2^30 + 2^24 * 2^32: no overflow in 64 bits. */
	return (size_t)(SMEM_RING_HDR_SIZE + (uint64_t)SMEM_RING_NODE_SIZE * node_count +
			stride * node_count);
}

int smem__ring_format(void *obj, size_t obj_size, uint32_t node_count, uint32_t node_size)
{
	struct smem_ring_shm *shm = obj;
	struct smem_ring_node *nodes;
	size_t need = smem__ring_obj_size(node_count, node_size);
	uint32_t i;

	if (!need || obj_size < need)
		return -EINVAL;
	shm->magic = SMEM_RING_MAGIC;
	shm->version = SMEM_RING_VERSION;
	shm->node_count = node_count;
	shm->node_size = node_size;
	shm->node_stride = (node_size + 63) & ~63u;
	shm->nodes_off = SMEM_RING_HDR_SIZE;
	shm->data_off = SMEM_RING_HDR_SIZE + (uint64_t)SMEM_RING_NODE_SIZE * node_count;
	shm->obj_size = need;
	atomic_store_explicit(&shm->tail, 0, memory_order_relaxed);
	atomic_store_explicit(&shm->head, 0, memory_order_relaxed);
	nodes = (struct smem_ring_node *)((char *)obj + SMEM_RING_HDR_SIZE);
	/* Node i waits for position i. Published by the region's release of its magic. */
	for (i = 0; i < node_count; i++)
		atomic_store_explicit(&nodes[i].state, mkst(i, 0), memory_order_relaxed);
	return 0;
}

int smem__ring_geometry(const struct smem_region *reg, struct smem_ring_shm *geo)
{
	size_t need;

	if (reg->obj_size < SMEM_RING_HDR_SIZE)
		return -EPROTO;
	/* One private copy of the geometry line; the shared one is never used for bounds. */
	memcpy(geo, reg->obj, 64);
	need = smem__ring_obj_size(geo->node_count, geo->node_size);
	if (geo->magic != SMEM_RING_MAGIC || geo->version != SMEM_RING_VERSION || !need ||
	    geo->node_stride != ((geo->node_size + 63) & ~63u) ||
	    geo->nodes_off != SMEM_RING_HDR_SIZE ||
	    geo->data_off != SMEM_RING_HDR_SIZE + (uint64_t)SMEM_RING_NODE_SIZE * geo->node_count ||
	    geo->obj_size != need || need > reg->obj_size)
		return -EPROTO;
	return 0;
}

int smem__ring_attach(struct smem_region *reg, struct smem_ring **ret)
{
	struct smem_ring_shm geo, *shm;
	struct smem_ring *r;
	int err;

	if (!reg || !ret || reg->rdonly)
		return -EINVAL;
	err = smem__ring_geometry(reg, &geo);
	if (err)
		return err;
	shm = reg->obj;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = smem__live_join(reg);
	if (err) {
		free(r);
		return err;
	}
	r->reg = reg;
	r->shm = shm;
	r->n = geo.node_count;
	r->size = geo.node_size;
	r->stride = geo.node_stride;
	r->mask = (r->n & (r->n - 1)) == 0 ? r->n - 1 : 0;
	r->nodes = (struct smem_ring_node *)((char *)reg->obj + SMEM_RING_HDR_SIZE);
	r->data = (unsigned char *)reg->obj + geo.data_off;
	r->shutdown = &reg->hdr->shutdown;
	r->id = reg->live_id;
	r->efd = -1;
	pthread_once(&atfork_once, atfork_register);
	atomic_store_explicit(&r->fork_gen, smem__fork_generation(), memory_order_relaxed);
	atomic_store_explicit(&r->spin_ns, SMEM_RING_SPIN_AUTO, memory_order_relaxed);
	r->spin_cap = smem__ring_spin_cap(r->size);
	pthread_mutex_init(&r->fd_lock, NULL);
	*ret = r;
	return 0;
}

struct geom {
	uint32_t count, size;
};

static int ring_init(void *obj, size_t obj_size, void *arg)
{
	const struct geom *g = arg;

	return smem__ring_format(obj, obj_size, g->count, g->size);
}

/* The tail of create and open: a handle over @reg, or @reg closed. */
static int attach_or_close(struct smem_region *reg, struct smem_ring **ret)
{
	int err = smem__ring_attach(reg, ret);

	if (err)
		smem_region_close(reg);
	return err;
}

int smem_ring_create(const char *name, uint32_t node_count, uint32_t node_size,
		     const struct smem_opts *opts, struct smem_ring **ret)
{
	struct geom g = { node_count, node_size };
	struct smem_region *reg;
	size_t size;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	size = smem__ring_obj_size(node_count, node_size);
	if (!ret || !size || (opts && (opts->flags & SMEM_RDONLY)))
		return -EINVAL;
	err = smem__region_create(name, SMEM_KIND_RING, size, ring_init, &g, opts, &reg);
	if (err)
		return err;
	return attach_or_close(reg, ret);
}

int smem_ring_open(const char *name, const struct smem_opts *opts, struct smem_ring **ret)
{
	struct smem_region *reg;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	/* A ring participant writes node states: there is no read-only ring handle. */
	if (!ret || (opts && (opts->flags & SMEM_RDONLY)))
		return -EINVAL;
	err = smem__region_open(name, SMEM_KIND_RING, opts, &reg);
	if (err)
		return err;
	return attach_or_close(reg, ret);
}

void smem_ring_close(struct smem_ring *r)
{
	unsigned me;

	if (!r)
		return;
	/*
	 * A forked child closing the handle it inherited: the bridge thread runs in the parent
	 * only (joining its stale copy would be undefined), and the owner is the parent, so the
	 * child's close is not the owner going away (as smem_region_close decides).
	 */
	me = smem__fork_generation();
	if (r->bridge_on && r->bridge_gen == me) {
		/* Release: pairs with the bridge's acquire load. */
		atomic_store_explicit(&r->bridge_stop, true, memory_order_release);
		smem__ring_wake(r, &r->shm->data_seq);
		pthread_join(r->bridge, NULL);
	}
	if (r->efd >= 0)
		close(r->efd);
	if (r->reg->owner && r->reg->fork_gen == me) {
		/* Release: pairs with smem__ring_is_shutdown(); every waiter wakes and sees it. */
		atomic_store_explicit(r->shutdown, 1, memory_order_release);
		smem__ring_wake(r, &r->shm->data_seq);
		smem__ring_wake(r, &r->shm->room_seq);
	}
	pthread_mutex_destroy(&r->fd_lock);
	smem_region_close(r->reg);	/* leaves our participant slot: claims we hold are dead */
	free(r);
}

/* ---- accessors and statistics ------------------------------------------------------------ */

uint32_t smem_ring_node_count(const struct smem_ring *r)
{
	return r ? r->n : 0;
}

uint32_t smem_ring_node_size(const struct smem_ring *r)
{
	return r ? r->size : 0;
}

void smem_ring_set_spin(struct smem_ring *r, uint32_t spin_ns)
{
	if (!r)
		return;
	/* Relaxed: a hint read by each wait; a new choice starts with nothing learned. */
	atomic_store_explicit(&r->learned[0], 0, memory_order_relaxed);
	atomic_store_explicit(&r->learned[1], 0, memory_order_relaxed);
	atomic_store_explicit(&r->spin_ns, spin_ns, memory_order_relaxed);
}

uint32_t smem__ring_spin_budget(const struct smem_ring *r, bool for_write)
{
	struct smem__spin sp = smem__ring_spin((struct smem_ring *)r, for_write);

	return (uint32_t)smem__spin_budget(&sp);
}

int smem_ring_stats(const struct smem_ring *r, struct smem_ring_stats *out)
{
	struct smem_ring_stats s;

	if (!r || !out)
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	s.written = atomic_load_explicit(&r->written, memory_order_relaxed);
	s.read = atomic_load_explicit(&r->nread, memory_order_relaxed);
	s.full_waits = atomic_load_explicit(&r->full_waits, memory_order_relaxed);
	s.empty_waits = atomic_load_explicit(&r->empty_waits, memory_order_relaxed);
	s.sleeps = atomic_load_explicit(&r->sleeps, memory_order_relaxed);
	s.wakes = atomic_load_explicit(&r->wakes, memory_order_relaxed);
	s.drops_recovered = atomic_load_explicit(&r->shm->drops_recovered, memory_order_relaxed);
	s.nodes_reclaimed = atomic_load_explicit(&r->shm->nodes_reclaimed, memory_order_relaxed);
	s.corruptions = atomic_load_explicit(&r->shm->corruptions, memory_order_relaxed);
	*out = s;
	return 0;
}

struct smem_region *smem__ring_region(const struct smem_ring *r)
{
	return r->reg;
}

struct smem_ring_shm *smem__ring_shm(const struct smem_ring *r)
{
	return r->shm;
}

uint32_t smem__ring_owner_id(const struct smem_ring *r)
{
	return r->id;
}
