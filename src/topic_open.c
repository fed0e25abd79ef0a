/* SPDX-License-Identifier: MIT */
/*
 * smem_topic: create, open and close (the protocol is in topic.c). A topic is two names: the
 * control memfd "<name>" that every participant maps writable, and the sample pool
 * "<name>.samples" that subscribers open read-only. The pool is created first, so a control
 * region that can be opened always has its pool; its geometry is validated against the
 * control area's own size and the pool's, from private copies taken once.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "topic_int.h"

#define ALIGN_UP(x, a)	(((x) + (a) - 1) & ~((uint64_t)(a) - 1))

int smem__topic_geometry(struct smem__topic_geo *g)
{
	uint64_t pool, ctl, off;

	if (g->sample_size == 0 || g->sample_size > (1ull << 40) || g->depth < 2 ||
	    g->depth > SMEM_TOPIC_MAX_DEPTH || g->history >= g->depth || g->max_subs == 0 ||
	    g->max_subs > SMEM_TOPIC_MAX_SUBS || g->views == 0 ||
	    g->views > SMEM_TOPIC_MAX_VIEWS || g->loans == 0 || g->loans > 4096 ||
	    g->policy > SMEM_TOPIC_OVERWRITE || (g->flags & ~SMEM_TOPIC_MULTI_PUBLISHER))
		return -EINVAL;
	g->stride = ALIGN_UP(g->sample_size, SMEM_CACHELINE);
	pool = (uint64_t)g->depth + (uint64_t)g->max_subs * g->views + g->loans + 1;
	if (pool > SMEM_TOPIC_MAX_POOL || g->stride > (UINT64_MAX >> 1) / pool ||
	    g->stride * pool > (uint64_t)SIZE_MAX / 2)
		return -EINVAL;
	g->pool = (uint32_t)pool;
	g->pool_size = (size_t)(g->stride * pool);
	off = sizeof(struct smem_topic_shm);
	g->lock_off = (size_t)off;
	off += sizeof(struct smem_lock_shm);
	g->entry_off = (size_t)off;
	off = ALIGN_UP(off + 4ull * g->depth, SMEM_CACHELINE);
	g->buf_off = (size_t)off;
	off += sizeof(struct smem_topic_buf) * pool;
	g->slot_off = (size_t)off;
	ctl = off + sizeof(struct smem_topic_slot) * (uint64_t)g->max_subs;
	g->ctl_size = (size_t)ctl;
	return 0;
}

static int samples_name(const char *name, char *out, size_t len)
{
	int err = smem__name_check(name);

	if (err)
		return err;
	if (strlen(name) + strlen(SMEM_TOPIC_SUFFIX) > SMEM_NAME_MAX)
		return -EINVAL;
	snprintf(out, len, "%s%s", name, SMEM_TOPIC_SUFFIX);
	return 0;
}

int smem__topic_format(void *obj, size_t size, const struct smem__topic_geo *g)
{
	struct smem_topic_shm *shm = obj;

	if (size != g->ctl_size)
		return -EINVAL;
	shm->sample_size = g->sample_size;
	shm->stride = g->stride;
	shm->depth = g->depth;
	shm->pool = g->pool;
	shm->history = g->history;
	shm->max_subs = g->max_subs;
	shm->views = g->views;
	shm->loans = g->loans;
	shm->policy = g->policy;
	shm->flags = g->flags;
	smem__lock_init((struct smem_lock_shm *)((char *)obj + g->lock_off));
	return 0;
}

static int init_ctl(void *obj, size_t size, void *arg)
{
	return smem__topic_format(obj, size, arg);
}

/* Point @t's private pointers into the mappings, from its trusted geometry. */
static void topic_bind(struct smem__topic *t)
{
	char *o = t->ctl->obj;

	t->shm = (struct smem_topic_shm *)o;
	t->entry = (_Atomic uint32_t *)(o + t->g.entry_off);
	t->buf = (struct smem_topic_buf *)(o + t->g.buf_off);
	t->slot = (struct smem_topic_slot *)(o + t->g.slot_off);
	t->base = t->samples->obj;
}

static void topic_unbind(struct smem__topic *t)
{
	smem_region_close(t->samples);
	smem_region_close(t->ctl);
	t->samples = t->ctl = NULL;
}

int smem__topic_validate(struct smem__topic *t)
{
	const struct smem_topic_shm *shm;

	if (t->ctl->obj_size < sizeof(*shm))
		return -EPROTO;
	shm = t->ctl->obj;
	t->g = (struct smem__topic_geo){
		.sample_size = shm->sample_size, .depth = shm->depth, .history = shm->history,
		.max_subs = shm->max_subs, .views = shm->views, .loans = shm->loans,
		.policy = shm->policy, .flags = shm->flags,
	};
	if (smem__topic_geometry(&t->g) || t->g.ctl_size != t->ctl->obj_size ||
	    t->g.pool != shm->pool || t->g.stride != shm->stride ||
	    t->g.pool_size > t->samples->obj_size)
		return -EPROTO;
	topic_bind(t);
	return 0;
}

/*
 * Open an existing topic's two regions: the geometry is read once from the control area and
 * must reproduce the control area's size exactly and fit in the pool. 0, -EPROTO, open errors.
 */
static int topic_open(const char *name, bool writer, const struct smem_opts *opts,
		      struct smem__topic *t)
{
	struct smem_opts o = opts ? *opts : (struct smem_opts){ 0 };
	char sname[SMEM_NAME_MAX + 1];
	int err;

	err = samples_name(name, sname, sizeof(sname));
	if (err)
		return err;
	if (o.flags & SMEM_RDONLY)
		return -EINVAL;
	err = smem__region_open(name, SMEM_KIND_TOPIC, &o, &t->ctl);
	if (err)
		return err;
	if (!writer)
		o.flags |= SMEM_RDONLY;
	err = smem__region_open(sname, SMEM_KIND_TOPIC_SAMPLES, &o, &t->samples);
	if (err == -EPERM)
		err = -EACCES;	/* a sealed pool refuses writable mappings */
	if (err)
		goto fail;
	err = smem__topic_validate(t);
	if (err)
		goto fail;
	return 0;
fail:
	topic_unbind(t);
	return err;
}

int smem__topic_pub_attach(struct smem_topic_pub *p)
{
	int err = smem__lock_attach(&p->lock, p->t.ctl, smem__topic_lock(&p->t));

	return err ? err : smem__live_join(p->t.ctl);
}

int smem_topic_create(const char *name, const struct smem_topic_config *cfg,
		      const struct smem_opts *opts, struct smem_topic_pub **ret)
{
	char sname[SMEM_NAME_MAX + 1];
	struct smem_topic_pub *p;
	struct smem__topic_geo g;
	uint32_t seals, i;
	int err;

	err = samples_name(name, sname, sizeof(sname));
	if (err)
		return err;
	if (!cfg || !ret || (opts && (opts->flags & SMEM_RDONLY)))
		return -EINVAL;
	for (i = 0; i < SMEM__ARRAY_SIZE(cfg->reserved); i++)
		if (cfg->reserved[i])
			return -EINVAL;
	g = (struct smem__topic_geo){
		.sample_size = cfg->sample_size, .depth = cfg->depth, .history = cfg->history,
		.max_subs = cfg->max_subscribers ? cfg->max_subscribers : 16,
		.views = cfg->views ? cfg->views : 1, .loans = cfg->loans ? cfg->loans : 4,
		.policy = cfg->policy, .flags = cfg->flags,
	};
	err = smem__topic_geometry(&g);
	if (err)
		return err;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->creator = true;
	p->t.g = g;
	/*
	 * Sealed: our mapping (made by the create) is the last writable one. Either way the
	 * inode carries the name's mode (region.c, the broker), so a reopen for writing through
	 * /proc is refused to whoever the mode does not let write.
	 */
	seals = (g.flags & SMEM_TOPIC_MULTI_PUBLISHER) ? 0 : F_SEAL_FUTURE_WRITE;
	err = smem__region_create_sealed(sname, SMEM_KIND_TOPIC_SAMPLES, g.pool_size, NULL, NULL,
					 opts, seals, &p->t.samples);
	if (err)
		goto fail;
	err = smem__region_create(name, SMEM_KIND_TOPIC, g.ctl_size, init_ctl, &g, opts,
				  &p->t.ctl);
	if (err)
		goto fail;
	topic_bind(&p->t);
	err = smem__topic_pub_attach(p);
	if (err)
		goto fail;
	*ret = p;
	return 0;
fail:
	smem__lock_detach(&p->lock);
	topic_unbind(&p->t);
	free(p);
	return err;
}

/*
 * Allocate a handle of @size bytes whose first member is its struct smem__topic, and open
 * @name into it. The handle, or NULL and *err.
 */
static void *handle_open(size_t size, const char *name, bool writer,
			 const struct smem_opts *opts, int *err)
{
	struct smem__topic *t = calloc(1, size);

	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = topic_open(name, writer, opts, t);
	if (*err) {
		free(t);
		return NULL;
	}
	return t;
}

int smem_topic_open_publisher(const char *name, const struct smem_opts *opts,
			      struct smem_topic_pub **ret)
{
	struct smem_topic_pub *p;
	int err;

	if (!ret)
		return -EINVAL;
	p = handle_open(sizeof(*p), name, true, opts, &err);
	if (!p)
		return err;
	err = -EACCES;
	if (p->t.g.flags & SMEM_TOPIC_MULTI_PUBLISHER)
		err = smem__topic_pub_attach(p);
	if (err) {
		smem__lock_detach(&p->lock);
		topic_unbind(&p->t);
		free(p);
		return err;
	}
	*ret = p;
	return 0;
}

void smem_topic_pub_close(struct smem_topic_pub *p)
{
	struct smem_topic_shm *shm;

	if (!p)
		return;
	smem__topic_pub_drop_loans(p);
	smem__lock_detach(&p->lock);
	shm = p->t.shm;
	if (p->creator && p->t.ctl->fork_gen == smem__fork_generation()) {
		/* Shut down, then wake every sleeper on both counts: they see the flag. */
		smem__region_shutdown(p->t.ctl);
		atomic_fetch_add_explicit(&shm->data_seq, 1, memory_order_release);
		smem__futex_wake(&shm->data_seq, INT32_MAX);
		atomic_fetch_add_explicit(&shm->room_seq, 1, memory_order_release);
		smem__futex_wake(&shm->room_seq, INT32_MAX);
	}
	topic_unbind(&p->t);
	free(p);
}

int smem_topic_subscribe(const char *name, uint32_t history, const struct smem_opts *opts,
			 struct smem_topic_sub **ret)
{
	struct smem_topic_sub *s;
	int err;

	if (!ret)
		return -EINVAL;
	s = handle_open(sizeof(*s), name, false, opts, &err);
	if (!s)
		return err;
	err = smem__live_join(s->t.ctl);
	if (!err)
		err = smem__topic_sub_join(s, history);
	if (err) {
		topic_unbind(&s->t);
		free(s);
		return err;
	}
	*ret = s;
	return 0;
}

void smem_topic_sub_close(struct smem_topic_sub *s)
{
	if (!s)
		return;
	smem__topic_sub_leave(s);
	topic_unbind(&s->t);
	free(s);
}
