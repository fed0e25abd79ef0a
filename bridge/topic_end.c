/* SPDX-License-Identifier: MIT */
/*
 * A topic as the local end of a route. The exporter is a subscriber like any other: it holds
 * a read-only view while route.c copies it into the route's journal, and the samples the
 * topic overwrote before it read them (SMEM_TOPIC_OVERWRITE) are reported as lost. The
 * importer publishes through a loan: it creates the topic ("create DEPTH SIZE": blocking
 * policy, so a slow local subscriber pushes back on the route) or opens a publisher on a
 * multi-publisher topic. A publish that times out keeps its loan for the retry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"

struct topic_end {
	struct smem_topic_sub *sub;
	struct smem_topic_pub *pub;
	struct smem_topic_sample s;
	size_t cap;
	uint64_t lost;			/* sub: the subscriber's lost count already reported */
	bool held;			/* sub: a view; pub: a loan */
};

static int topic_open(const struct smem_bridge_route *rt, bool export, void **ret)
{
	const struct smem_opts *o = &rt->bridge->sopts;
	struct topic_end *e = calloc(1, sizeof(*e));
	int rc;

	if (!e)
		return -ENOMEM;
	if (export) {
		rc = smem_topic_subscribe(rt->cfg.local, 0, o, &e->sub);
	} else {
		rc = smem_topic_open_publisher(rt->cfg.local, o, &e->pub);
		if (rc == -ENOENT && rt->cfg.create_nodes) {
			struct smem_topic_config c = {
				.sample_size = rt->cfg.create_size,
				.depth = rt->cfg.create_nodes,
				.policy = SMEM_TOPIC_BLOCK,
			};

			rc = smem_topic_create(rt->cfg.local, &c, o, &e->pub);
		}
	}
	if (rc) {
		smem_topic_sub_close(e->sub);
		smem_topic_pub_close(e->pub);
		free(e);
		return rc;
	}
	*ret = e;
	return 0;
}

static void topic_close(void *end)
{
	struct topic_end *e = end;

	if (!e)
		return;
	smem_topic_sub_close(e->sub);	/* views and loans still held go with the handles */
	smem_topic_pub_close(e->pub);
	free(e);
}

static ssize_t topic_peek(void *end, const void **data, uint64_t *lost, int ms)
{
	struct topic_end *e = end;
	struct smem_topic_sub_stats st;
	int rc = smem_topic_receive(e->sub, &e->s, ms);

	*lost = 0;
	if (rc)
		return rc;
	e->held = true;
	if (e->cap == 0)
		e->cap = e->s.cap;
	if (smem_topic_sub_stats(e->sub, &st) == 0 && st.lost > e->lost) {
		*lost = st.lost - e->lost;
		e->lost = st.lost;
	}
	*data = e->s.view;
	return (ssize_t)e->s.len;
}

/* The sample size, learnt from the first sample or loan: 0 until then. */
static size_t topic_max_len(void *end)
{
	return ((struct topic_end *)end)->cap;
}

static void topic_done(void *end)
{
	struct topic_end *e = end;

	if (e->held && e->sub)
		smem_topic_release(e->sub, &e->s);
	e->held = false;
}

static bool topic_idle(void *end)
{
	struct smem_topic_sub_stats st;

	/* The lag (published, not yet received) is read from shared memory: no system call. */
	return smem_topic_sub_stats(((struct topic_end *)end)->sub, &st) || st.lag == 0;
}

static int topic_write(void *end, const void *data, size_t len, int ms)
{
	struct topic_end *e = end;
	int rc;

	if (!e->held) {
		/* The sample size is known once a loan tells it (a blocking topic may have no
		 * room at open to ask earlier). */
		if (e->cap && len > e->cap)
			return -EMSGSIZE;
		rc = smem_topic_loan(e->pub, &e->s, ms);
		if (rc)
			return rc;
		e->cap = e->s.cap;
		if (len > e->cap) {
			smem_topic_discard(e->pub, &e->s);
			return -EMSGSIZE;
		}
		memcpy(e->s.data, data, len);
		e->held = true;
	}
	rc = smem_topic_publish(e->pub, &e->s, len, ms);
	if (rc == -ETIMEDOUT)
		return rc;	/* the loan stays ours, filled: the retry publishes it */
	if (rc)
		smem_topic_discard(e->pub, &e->s);
	e->held = false;
	return rc;
}

const struct smem__bridge_end_ops smem__bridge_topic_end = {
	.open = topic_open,
	.close = topic_close,
	.max_len = topic_max_len,
	.peek = topic_peek,
	.done = topic_done,
	.idle = topic_idle,
	.write = topic_write,
};
