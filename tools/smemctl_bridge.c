/* SPDX-License-Identifier: MIT */
/*
 * smemctl bridges: the counters running smem-bridge daemons publish in the broker, one region
 * "smem-bridge.NAME" each (layout and reading rules in bridge/smem_bridge_shm.h). Read as
 * everything else smemctl reads: mapped read-only, untrusted (magic, version, sizes checked,
 * the route count clamped to what the region holds, strings bounded), and copied under the
 * writer's sequence word so that one route's counters are from one rewrite.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smem_bridge_shm.h"
#include "layout.h"
#include "smemctl.h"

#define MAX_ROUTES 256u		/* a bridge has at most 64; more is garbage */
#define SEQ_TRIES 200

/* A consistent copy of the header and @n routes into @out. 0, -EAGAIN (always mid-rewrite). */
static int copy_stable(const struct smem_bridge_shm *m, struct smem_bridge_shm *out, uint32_t n)
{
	size_t len = sizeof(*m) + (size_t)n * sizeof(m->routes[0]);

	for (int i = 0; i < SEQ_TRIES; i++) {
		/* Acquire: pairs with the writer's release of the even value. */
		uint64_t s1 = __atomic_load_n(&m->seq, __ATOMIC_ACQUIRE), s2;

		if (s1 & 1) {
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
			continue;
		}
		memcpy(out, m, len);
		/* Acquire fence: the copy before the second load (pairs with the writer's
		 * release fence after its odd store). */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&m->seq, __ATOMIC_RELAXED);
		if (s1 == s2)
			return 0;
	}
	return -EAGAIN;
}

static struct json_object *route_json(const struct smem_bridge_shm_route *r)
{
	struct json_object *o = json_object_new_object();
	char local[sizeof(r->local)], subject[sizeof(r->subject)];

	memcpy(local, r->local, sizeof(local));
	local[sizeof(local) - 1] = 0;
	memcpy(subject, r->subject, sizeof(subject));
	subject[sizeof(subject) - 1] = 0;
	sc_add_str(o, "kind", smem_bridge_kind_name(r->kind));
	sc_add_name(o, "local", local);
	sc_add_name(o, "subject", subject);
	sc_add_bool(o, "jetstream", r->jetstream != 0);
	sc_add_u64(o, "messages", r->messages);
	sc_add_u64(o, "bytes", r->bytes);
	sc_add_u64(o, "lost", r->lost);
	sc_add_u64(o, "errors", r->errors);
	sc_add_u64(o, "duplicates", r->duplicates);
	sc_add_u64(o, "retries", r->retries);
	sc_add_u64(o, "cursor", r->cursor);
	return o;
}

/* One bridge's document, or {"name", "error"} when its region does not validate. */
static struct json_object *bridge_json(const char *broker, const char *name)
{
	struct smem_opts opts = { .broker = broker, .flags = SMEM_RDONLY };
	struct json_object *o = json_object_new_object(), *arr;
	const struct smem_bridge_shm *m;
	struct smem_bridge_shm *copy = NULL;
	struct smem_region *r = NULL;
	uint32_t n;
	size_t size;
	int err;

	sc_add_name(o, "name", name + strlen(SMEM_BRIDGE_STATS_PREFIX));
	err = smem_region_open(name, &opts, &r);
	if (err)
		goto fail;
	m = smem_region_data(r);
	size = smem_region_size(r);
	err = -EPROTO;
	/* Acquire: pairs with the release store of the magic, made last at creation. */
	if (size < sizeof(*m) ||
	    __atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) != SMEM_BRIDGE_STATS_MAGIC ||
	    m->version != SMEM_BRIDGE_STATS_VERSION || m->route_size != sizeof(m->routes[0]))
		goto fail;
	/* The count as the region can hold it, whatever the header says. */
	n = __atomic_load_n(&m->nroutes, __ATOMIC_RELAXED);
	if (n > (size - sizeof(*m)) / sizeof(m->routes[0]) || n > MAX_ROUTES)
		goto fail;
	copy = malloc(sizeof(*m) + (size_t)n * sizeof(m->routes[0]));
	err = copy ? copy_stable(m, copy, n) : -ENOMEM;
	if (err)
		goto fail;
	sc_add_i64(o, "pid", copy->pid);
	sc_add_u64(o, "reconnects", copy->reconnects);
	sc_add_u64(o, "started_ns", copy->started_ns);
	sc_add_u64(o, "updated_ns", copy->updated_ns);
	arr = json_object_new_array();
	for (uint32_t i = 0; i < n; i++)
		json_object_array_add(arr, route_json(&copy->routes[i]));
	json_object_object_add(o, "routes", arr);
	free(copy);
	smem_region_close(r);
	return o;
fail:
	json_object_object_add(o, "error", sc_errno_json(err));
	free(copy);
	smem_region_close(r);
	return o;
}

struct names {
	char (*v)[SMEM_NAME_MAX + 1];
	size_t n, cap;
};

static int collect_bridge(const struct smem__entry_info *e, void *arg)
{
	struct names *ns = arg;
	void *nv;

	if (e->kind != SMEM_KIND_REGION ||
	    strncmp(e->name, SMEM_BRIDGE_STATS_PREFIX, strlen(SMEM_BRIDGE_STATS_PREFIX)))
		return 0;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? 2 * ns->cap : 8;
		nv = realloc(ns->v, ns->cap * sizeof(ns->v[0]));
		if (!nv)
			return -ENOMEM;
		ns->v = nv;
	}
	memcpy(ns->v[ns->n++], e->name, sizeof(ns->v[0]));
	return 0;
}

int sc_bridges(const char *broker, struct json_object **ret)
{
	struct names ns = { 0 };
	struct json_object *arr;
	int err = smem__broker_list(broker, collect_bridge, &ns);

	if (err) {
		free(ns.v);
		return err;
	}
	arr = json_object_new_array();
	for (size_t i = 0; i < ns.n; i++)
		json_object_array_add(arr, bridge_json(broker, ns.v[i]));
	free(ns.v);
	*ret = arr;
	return 0;
}
