/* SPDX-License-Identifier: MIT */
/*
 * A ring as the local end of a route. The exporter is a reader like any other: it holds the
 * next node zero-copy (smem_ring_reserve_read) while route.c copies it into the route's
 * journal, then releases it; the importer is a writer like any other (smem_ring_write), and a
 * full ring makes it wait: the ring's backpressure.
 */
#include <errno.h>
#include <stdlib.h>

#include "bridge_internal.h"

struct ring_end {
	struct smem_ring *ring;
	struct smem_ring_slot slot;
	bool held;
};

static int ring_open(const struct smem_bridge_route *rt, bool export, void **ret)
{
	const struct smem_opts *o = &rt->bridge->sopts;
	struct ring_end *e = calloc(1, sizeof(*e));
	int rc;

	if (!e)
		return -ENOMEM;
	rc = smem_ring_open(rt->cfg.local, o, &e->ring);
	if (rc == -ENOENT && !export && rt->cfg.create_nodes)
		rc = smem_ring_create(rt->cfg.local, rt->cfg.create_nodes, rt->cfg.create_size, o,
				      &e->ring);
	if (rc) {
		free(e);
		return rc;
	}
	*ret = e;
	return 0;
}

static void ring_close(void *end)
{
	struct ring_end *e = end;

	if (!e)
		return;
	if (e->held)
		smem_ring_release(e->ring, &e->slot);
	smem_ring_close(e->ring);
	free(e);
}

static size_t ring_max_len(void *end)
{
	return smem_ring_node_size(((struct ring_end *)end)->ring);
}

static ssize_t ring_peek(void *end, const void **data, uint64_t *lost, int ms)
{
	struct ring_end *e = end;
	int rc = smem_ring_reserve_read(e->ring, &e->slot, ms);

	*lost = 0;
	if (rc)
		return rc;
	e->held = true;
	*data = e->slot.data;
	return (ssize_t)e->slot.len;
}

static void ring_done(void *end)
{
	struct ring_end *e = end;

	if (e->held)
		smem_ring_release(e->ring, &e->slot);
	e->held = false;
}

static bool ring_idle(void *end)
{
	return smem_ring_next_len(((struct ring_end *)end)->ring) == -EAGAIN;
}

static int ring_write(void *end, const void *data, size_t len, int ms)
{
	return smem_ring_write(((struct ring_end *)end)->ring, data, len, ms);
}

const struct smem__bridge_end_ops smem__bridge_ring_end = {
	.open = ring_open,
	.close = ring_close,
	.max_len = ring_max_len,
	.peek = ring_peek,
	.done = ring_done,
	.idle = ring_idle,
	.write = ring_write,
};
