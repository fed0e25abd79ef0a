/* SPDX-License-Identifier: MIT */
/*
 * The bridge's counters in a smem region of its local broker, for smemctl (layout and reading
 * rules in smem_bridge_shm.h). The name lives while the bridge holds it: a bridge killed with
 * kill -9 leaves no stale entry. Uses only the bridge's public calls for the counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge_internal.h"
#include "smem_bridge_shm.h"

struct smem_bridge_stats_pub {
	struct smem_region *region;
	struct smem_bridge_shm *shm;
	uint32_t nroutes;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int smem_bridge_stats_open(const struct smem_bridge *b, const char *name,
			   struct smem_bridge_stats_pub **ret)
{
	struct smem_bridge_stats_pub *p;
	char full[SMEM_NAME_MAX + 1];
	int n, rc;

	if (!b || !ret)
		return -EINVAL;
	if (!name || !*name)
		name = b->name;
	if (*name)
		n = snprintf(full, sizeof(full), "%s%s", SMEM_BRIDGE_STATS_PREFIX, name);
	else
		n = snprintf(full, sizeof(full), "%s%d", SMEM_BRIDGE_STATS_PREFIX, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(full))
		return -ENAMETOOLONG;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->nroutes = (uint32_t)smem_bridge_route_count(b);
	rc = smem_region_create(full, sizeof(struct smem_bridge_shm) +
				p->nroutes * sizeof(struct smem_bridge_shm_route), &b->sopts,
				&p->region);
	if (rc) {
		free(p);
		return rc;
	}
	p->shm = smem_region_data(p->region);
	p->shm->version = SMEM_BRIDGE_STATS_VERSION;
	p->shm->route_size = sizeof(struct smem_bridge_shm_route);
	p->shm->nroutes = p->nroutes;
	p->shm->pid = (int32_t)getpid();
	p->shm->started_ns = now_ns();
	for (uint32_t i = 0; i < p->nroutes; i++) {
		struct smem_bridge_route_stats s;

		if (smem_bridge_route_stats(b, (int)i, &s) == 0) {
			p->shm->routes[i].kind = s.kind;
			p->shm->routes[i].jetstream = s.jetstream;
			snprintf(p->shm->routes[i].local, sizeof(p->shm->routes[i].local), "%s",
				 s.local);
			snprintf(p->shm->routes[i].subject, sizeof(p->shm->routes[i].subject), "%s",
				 s.subject);
		}
	}
	/* Release: a reader that sees the magic sees the fields above. */
	__atomic_store_n(&p->shm->magic, SMEM_BRIDGE_STATS_MAGIC, __ATOMIC_RELEASE);
	smem_bridge_stats_update(p, b);
	*ret = p;
	return 0;
}

void smem_bridge_stats_update(struct smem_bridge_stats_pub *p, const struct smem_bridge *b)
{
	struct smem_bridge_shm *m;
	uint64_t seq;

	if (!p || !b)
		return;
	m = p->shm;
	seq = __atomic_load_n(&m->seq, __ATOMIC_RELAXED);
	/* Odd: readers retry. The fence keeps the counters' stores after it (pairs with the
	 * readers' acquire fence between their copy and their second load of seq). */
	__atomic_store_n(&m->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (uint32_t i = 0; i < p->nroutes; i++) {
		struct smem_bridge_shm_route *r = &m->routes[i];
		struct smem_bridge_route_stats s;

		if (smem_bridge_route_stats(b, (int)i, &s))
			continue;
		__atomic_store_n(&r->messages, s.messages, __ATOMIC_RELAXED);
		__atomic_store_n(&r->bytes, s.bytes, __ATOMIC_RELAXED);
		__atomic_store_n(&r->lost, s.lost, __ATOMIC_RELAXED);
		__atomic_store_n(&r->errors, s.errors, __ATOMIC_RELAXED);
		__atomic_store_n(&r->duplicates, s.duplicates, __ATOMIC_RELAXED);
		__atomic_store_n(&r->retries, s.retries, __ATOMIC_RELAXED);
		__atomic_store_n(&r->cursor, s.cursor, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&m->reconnects, smem_bridge_reconnects(b), __ATOMIC_RELAXED);
	__atomic_store_n(&m->updated_ns, now_ns(), __ATOMIC_RELAXED);
	/* Release: the counters before the even value that vouches for them. */
	__atomic_store_n(&m->seq, seq + 2, __ATOMIC_RELEASE);
}

void smem_bridge_stats_close(struct smem_bridge_stats_pub *p)
{
	if (!p)
		return;
	smem_region_close(p->region);
	free(p);
}
