/* SPDX-License-Identifier: MIT */
/*
 * smemctl: what a name holds, read from shared memory through a read-only mapping.
 *
 * smemctl is an observer: it opens regions read-only (SMEM_RDONLY), never joins as a
 * participant, never takes a lock and never writes. Everything in the mapping is untrusted:
 * the geometry is validated by the library's own checks (smem__region_open,
 * smem__ring_geometry, smem__blob_validate, smem__rpc_ctl_ok) and only the private copies
 * they return bound a scan; live counters (ring positions, lock words) are read once each and
 * checked for consistency, and what does not add up is shown as garbage, not believed.
 */
#include <string.h>

#include "blob.h"
#include "proto.h"
#include "ring_int.h"
#include "rpc_int.h"
#include "service_int.h"
#include "topic_int.h"
#include "smemctl.h"

/* Nodes and reader slots scanned at most per object: a stat stays quick on huge rings. */
#define SCAN_MAX	65536u

static void add_mode(struct json_object *o, const char *key, uint32_t mode)
{
	char m[8];

	snprintf(m, sizeof(m), "%04o", mode & 07777);
	sc_add_str(o, key, m);
}

static double age_s(uint64_t ctime_ns)
{
	struct timespec now;
	uint64_t n;

	clock_gettime(CLOCK_REALTIME, &now);
	n = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	return n > ctime_ns ? (double)(n - ctime_ns) / 1e9 : 0.0;
}

struct json_object *sc_entry_json(const struct smem__entry_info *e)
{
	struct json_object *o = json_object_new_object();
	char age[32];

	sc_add_name(o, "name", e->name);
	sc_add_u64(o, "id", e->id);
	sc_add_str(o, "kind", smem__kind_name(e->kind));
	sc_add_u64(o, "size", e->size);
	sc_add_u64(o, "uid", e->uid);
	sc_add_u64(o, "gid", e->gid);
	add_mode(o, "mode", e->mode);
	sc_add_u64(o, "holders", e->holders);
	sc_add_bool(o, "persist", e->flags & SMEM_ENTRY_PERSIST);
	snprintf(age, sizeof(age), "%.3f", age_s(e->ctime_ns));
	json_object_object_add(o, "age_s", json_object_new_double_s(age_s(e->ctime_ns), age));
	return o;
}

/*
 * A participant (owner id gen << 8 | slot) as JSON: its id, the pid its slot records (a hint
 * from shared memory, in the participant's own pid namespace) and whether the kernel says it
 * is alive (its OFD lock is held).
 */
static struct json_object *owner_json(const struct smem_region *r, uint32_t id)
{
	struct json_object *o = json_object_new_object();

	sc_add_u64(o, "id", id);
	sc_add_u64(o, "slot", id & 0xffu);
	sc_add_u64(o, "pid_hint", r->hdr->live[id & 0xffu].pid);
	sc_add_bool(o, "alive", smem__live_alive(r, id));
	return o;
}

static struct json_object *header_json(const struct smem_region *r)
{
	const struct smem_region_hdr *h = r->hdr;
	struct json_object *o = json_object_new_object();
	char layout[16];

	snprintf(layout, sizeof(layout), "%u.%u", h->layout_major, h->layout_minor);
	sc_add_str(o, "layout", layout);
	sc_add_str(o, "kind", smem__kind_name(h->kind));
	/* The validated private copies, not the shared fields. */
	sc_add_u64(o, "total_size", r->map_size);
	sc_add_u64(o, "data_off", SMEM_HDR_SIZE);
	sc_add_u64(o, "data_size", r->obj_size);
	sc_add_u64(o, "flags", h->flags);
	sc_add_bool(o, "shutdown", atomic_load_explicit(&h->shutdown, memory_order_relaxed));
	sc_add_u64(o, "create_time_ns", h->create_time_ns);
	sc_add_u64(o, "creator_uid", h->creator_uid);
	sc_add_u64(o, "creator_pid", h->creator_pid);
	return o;
}

/* Participant slots: claimed ever (generation set) and alive now (kernel lock held). */
static struct json_object *participants_json(const struct smem_region *r)
{
	struct json_object *o = json_object_new_object();
	unsigned i, claimed = 0, alive = 0;
	uint32_t gen;

	for (i = 0; i < SMEM_LIVE_SLOTS; i++) {
		/* Acquire: pairs with the release in smem__live_join(), as smem__live_alive(). */
		gen = atomic_load_explicit(&r->hdr->live[i].gen, memory_order_acquire);
		if (!gen)
			continue;
		claimed++;
		if (smem__live_alive(r, (gen << 8) | i))
			alive++;
	}
	sc_add_u64(o, "slots", SMEM_LIVE_SLOTS);
	sc_add_u64(o, "claimed", claimed);
	sc_add_u64(o, "alive", alive);
	return o;
}

/* ---- rings ------------------------------------------------------------------------------ */

/* A small cache of liveness answers for one scan: one fcntl per distinct owner. */
struct live_cache {
	uint32_t id[64];
	bool alive[64];
	unsigned n;
};

static bool cached_alive(const struct smem_region *r, struct live_cache *c, uint32_t id)
{
	unsigned i;
	bool a;

	for (i = 0; i < c->n; i++)
		if (c->id[i] == id)
			return c->alive[i];
	a = smem__live_alive(r, id);
	if (c->n < SMEM__ARRAY_SIZE(c->id)) {
		c->id[c->n] = id;
		c->alive[c->n++] = a;
	}
	return a;
}

static struct json_object *ring_json(const struct smem_region *r)
{
	struct json_object *o = json_object_new_object(), *w, *claims;
	const struct smem_ring_shm *shm = r->obj;
	struct smem_ring_shm geo;
	struct live_cache lc = { .n = 0 };
	uint64_t head = 0, tail = 0, head2;
	uint32_t i, scan, held = 0, dead = 0;
	bool steady = false;
	int err, tries;

	err = smem__ring_geometry(r, &geo);
	sc_add_bool(o, "valid", err == 0);
	if (err) {
		json_object_object_add(o, "error", sc_errno_json(err));
		return o;
	}
	sc_add_u64(o, "node_count", geo.node_count);
	sc_add_u64(o, "node_size", geo.node_size);
	/*
	 * Fill: head <= tail <= head + node_count holds at every instant, but two loads are two
	 * instants; a busy ring is sampled again (head, tail, head unchanged) before its values
	 * are called garbage.
	 */
	for (tries = 0; tries < 8 && !steady; tries++) {
		head = atomic_load_explicit(&shm->head, memory_order_acquire);
		tail = atomic_load_explicit(&shm->tail, memory_order_acquire);
		head2 = atomic_load_explicit(&shm->head, memory_order_acquire);
		steady = head == head2 && tail >= head && tail - head <= geo.node_count;
	}
	if (steady)
		sc_add_u64(o, "fill", tail - head);
	else
		json_object_object_add(o, "fill", NULL);
	sc_add_bool(o, "positions_consistent", steady);
	sc_add_u64(o, "written", tail);
	sc_add_u64(o, "read", head);
	w = json_object_new_object();
	sc_add_u64(w, "readers", atomic_load_explicit(&shm->data_waiters, memory_order_relaxed));
	sc_add_u64(w, "writers", atomic_load_explicit(&shm->room_waiters, memory_order_relaxed));
	json_object_object_add(o, "waiters", w);
	sc_add_u64(o, "dropped",
		   atomic_load_explicit(&shm->drops_recovered, memory_order_relaxed));
	sc_add_u64(o, "reclaimed",
		   atomic_load_explicit(&shm->nodes_reclaimed, memory_order_relaxed));
	sc_add_u64(o, "aborted", atomic_load_explicit(&shm->aborted, memory_order_relaxed));
	sc_add_u64(o, "corruptions", atomic_load_explicit(&shm->corruptions, memory_order_relaxed));
	/* Nodes claimed by a participant (a message being written or read) and by dead ones. */
	scan = geo.node_count < SCAN_MAX ? geo.node_count : SCAN_MAX;
	for (i = 0; i < scan; i++) {
		const struct smem_ring_node *n = (const struct smem_ring_node *)
			((const char *)r->obj + geo.nodes_off + (uint64_t)i * SMEM_RING_NODE_SIZE);
		uint32_t owner = (uint32_t)atomic_load_explicit(&n->state, memory_order_relaxed);

		if (!owner)
			continue;
		held++;
		if (!cached_alive(r, &lc, owner))
			dead++;
	}
	claims = json_object_new_object();
	sc_add_u64(claims, "scanned", scan);
	sc_add_u64(claims, "held", held);
	sc_add_u64(claims, "held_by_dead", dead);
	json_object_object_add(o, "claims", claims);
	return o;
}

/* ---- buffers and arrays: geometry and the lock ------------------------------------------ */

static struct json_object *lock_json(const struct smem_region *r, const struct smem_lock_shm *l)
{
	struct json_object *o = json_object_new_object(), *readers = json_object_new_array();
	uint64_t s = atomic_load_explicit(&l->state, memory_order_acquire);
	uint32_t writer = (uint32_t)(s >> SMEM_LOCK_WRITER_SHIFT);
	uint64_t nread = s & SMEM_LOCK_READERS_MASK;
	bool garbage = (s & SMEM_LOCK_RESERVED) || (writer && nread) ||
		       (writer && !(writer >> 8));
	unsigned i, listed = 0, scan = SMEM_LOCK_READER_SLOTS;

	sc_add_str(o, "state", garbage ? "garbage" : writer ? "write" : nread ? "read" : "free");
	sc_add_u64(o, "state_word", s);
	sc_add_u64(o, "readers", nread);
	if (writer && !garbage)
		json_object_object_add(o, "writer", owner_json(r, writer));
	else
		json_object_object_add(o, "writer", NULL);
	sc_add_bool(o, "waiters", s & SMEM_LOCK_WAITERS);
	sc_add_bool(o, "inconsistent", s & SMEM_LOCK_INCONSISTENT);
	sc_add_u64(o, "recoveries", atomic_load_explicit(&l->recoveries, memory_order_relaxed));
	/* Read holds by participant: owner id << 32 | count in each (slot, thread) word. */
	for (i = 0; i < scan && listed < 32; i++) {
		uint64_t v = atomic_load_explicit(&l->readers[i], memory_order_relaxed);
		struct json_object *h;

		if (!(v & 0xffffffffu))
			continue;
		h = owner_json(r, (uint32_t)(v >> 32));
		sc_add_u64(h, "holds", v & 0xffffffffu);
		/* A word is (slot * 8 + sub): one not in its owner's slot was not written by us. */
		sc_add_bool(h, "in_own_slot", ((v >> 32) & 0xffu) == i / SMEM_LOCK_SUBSLOTS);
		json_object_array_add(readers, h);
		listed++;
	}
	json_object_object_add(o, "read_holders", readers);
	return o;
}

static struct json_object *blob_json(const struct smem_region *r, uint32_t kind,
				     struct json_object **lock)
{
	struct json_object *o = json_object_new_object();
	size_t elem = 0, len = 0;
	int err = smem__blob_validate(r, kind, 0, &elem, &len);

	*lock = NULL;
	sc_add_bool(o, "valid", err == 0);
	if (err) {
		json_object_object_add(o, "error", sc_errno_json(err));
		return o;
	}
	sc_add_u64(o, "elem_size", elem);
	sc_add_u64(o, "length", len);
	sc_add_u64(o, "data_size", (uint64_t)elem * len);
	*lock = lock_json(r, &((const struct smem_blob_hdr *)r->obj)->lock);
	return o;
}

/* ---- RPC channels ----------------------------------------------------------------------- */

static struct json_object *end_json(const struct smem_region *r, const struct smem_rpc_ctl *c,
				    int which, uint32_t session)
{
	const struct smem_rpc_ctl_end *e = &c->end[which];
	uint32_t id = atomic_load_explicit(&e->live_id, memory_order_acquire);
	uint32_t s = atomic_load_explicit(&e->session, memory_order_relaxed);
	uint32_t flags = atomic_load_explicit(&e->flags, memory_order_relaxed);
	struct json_object *o;

	if (!id)
		return NULL;	/* never taken, or given back */
	o = owner_json(r, id);
	sc_add_u64(o, "session", s);
	sc_add_bool(o, "current", s == session);
	sc_add_bool(o, "closed", flags & SMEM_RPC_END_CLOSED);
	sc_add_u64(o, "pid", e->pid);
	sc_add_u64(o, "max_message", e->max_message);
	return o;
}

/* One of the channel's rings, opened read-only by name as any ring would be. */
/*
 * A topic's control area, read-only: the geometry must reproduce the area's size (as an
 * opener checks); then the position, and per live subscriber slot its lag and losses.
 * Every value is a sample of memory others write; lags are clamped, never trusted.
 */
static struct json_object *topic_json(const struct smem_region *r)
{
	struct json_object *o = json_object_new_object(), *subs;
	const struct smem_topic_shm *shm = r->obj;
	struct live_cache lc = { .n = 0 };
	struct smem__topic_geo g;
	const struct smem_topic_slot *slot;
	uint64_t tail;
	uint32_t i, k;
	bool valid;

	valid = r->obj_size >= sizeof(*shm);
	if (valid) {
		g = (struct smem__topic_geo){
			.sample_size = shm->sample_size, .depth = shm->depth,
			.history = shm->history, .max_subs = shm->max_subs, .views = shm->views,
			.loans = shm->loans, .policy = shm->policy, .flags = shm->flags,
		};
		valid = smem__topic_geometry(&g) == 0 && g.ctl_size == r->obj_size &&
			g.pool == shm->pool && g.stride == shm->stride;
	}
	sc_add_bool(o, "valid", valid);
	if (!valid) {
		json_object_object_add(o, "error", sc_errno_json(-EPROTO));
		return o;
	}
	sc_add_u64(o, "sample_size", g.sample_size);
	sc_add_u64(o, "depth", g.depth);
	sc_add_u64(o, "pool", g.pool);
	sc_add_u64(o, "history", g.history);
	json_object_object_add(o, "policy", json_object_new_string(
		g.policy == SMEM_TOPIC_OVERWRITE ? "overwrite" : "block"));
	sc_add_bool(o, "multi_publisher", g.flags & SMEM_TOPIC_MULTI_PUBLISHER);
	tail = atomic_load_explicit(&shm->tail, memory_order_acquire);
	sc_add_u64(o, "published", tail);
	slot = (const struct smem_topic_slot *)((const char *)r->obj + g.slot_off);
	subs = json_object_new_array();
	for (i = 0; i < g.max_subs; i++) {
		uint32_t owner = atomic_load_explicit(&slot[i].owner, memory_order_acquire);
		uint64_t c = atomic_load_explicit(&slot[i].cursor, memory_order_relaxed);
		struct json_object *so;
		unsigned views = 0;

		if (!owner)
			continue;
		for (k = 0; k < g.views; k++)
			views += atomic_load_explicit(&slot[i].held[k], memory_order_relaxed) != 0;
		so = json_object_new_object();
		sc_add_u64(so, "slot", i);
		sc_add_u64(so, "owner", owner);
		sc_add_bool(so, "alive", cached_alive(r, &lc, owner));
		sc_add_u64(so, "lag", c < tail ? tail - c : 0);
		sc_add_u64(so, "lost", atomic_load_explicit(&slot[i].lost, memory_order_relaxed));
		sc_add_u64(so, "received",
			   atomic_load_explicit(&slot[i].received, memory_order_relaxed));
		sc_add_u64(so, "views", views);
		json_object_array_add(subs, so);
	}
	json_object_object_add(o, "subscribers", subs);
	sc_add_u64(o, "loans_recovered", atomic_load_explicit(&shm->recovered,
							      memory_order_relaxed));
	sc_add_u64(o, "subscribers_evicted", atomic_load_explicit(&shm->evicted,
								  memory_order_relaxed));
	sc_add_u64(o, "corruptions", atomic_load_explicit(&shm->corruptions,
							  memory_order_relaxed));
	return o;
}

static struct json_object *rpc_ring_json(const char *broker, const char *name, uint32_t gen,
					 const char *dir)
{
	struct smem_opts opts = { .broker = broker, .flags = SMEM_RDONLY };
	char rname[SMEM_NAME_MAX + 32];
	struct smem_region *r;
	struct json_object *o;
	int err;

	snprintf(rname, sizeof(rname), "%s.%u.%s", name, gen, dir);
	err = smem__region_open(rname, SMEM_KIND_RING, &opts, &r);
	if (err) {
		o = json_object_new_object();
		sc_add_name(o, "name", rname);
		json_object_object_add(o, "error", sc_errno_json(err));
		return o;
	}
	o = ring_json(r);
	sc_add_name(o, "name", rname);
	smem_region_close(r);
	return o;
}

static struct json_object *rpc_json(const char *broker, const struct smem_region *r)
{
	struct json_object *o = json_object_new_object(), *m, *s;
	const struct smem_rpc_ctl *c = r->obj;
	uint32_t session, gen;

	sc_add_bool(o, "valid", smem__rpc_ctl_ok(r));
	if (!smem__rpc_ctl_ok(r))
		return o;
	/* Acquire: pairs with the release store of a new session in rpc.c's election. */
	session = atomic_load_explicit(&c->session, memory_order_acquire);
	gen = atomic_load_explicit(&c->ring_gen, memory_order_relaxed);
	sc_add_u64(o, "session", session);
	sc_add_u64(o, "ring_gen", gen);
	sc_add_u64(o, "events", atomic_load_explicit(&c->event, memory_order_relaxed));
	m = end_json(r, c, SMEM_RPC_MASTER, session);
	s = end_json(r, c, SMEM_RPC_SLAVE, session);
	sc_add_bool(o, "connected",
		    m && s && json_object_get_boolean(json_object_object_get(m, "alive")) &&
		    json_object_get_boolean(json_object_object_get(s, "alive")) &&
		    json_object_get_boolean(json_object_object_get(m, "current")) &&
		    json_object_get_boolean(json_object_object_get(s, "current")));
	json_object_object_add(o, "master", m);
	json_object_object_add(o, "slave", s);
	if (session) {
		/* Packets waiting each way: requests and responses not yet taken by the peer. */
		json_object_object_add(o, "m2s", rpc_ring_json(broker, r->name, gen, "m2s"));
		json_object_object_add(o, "s2m", rpc_ring_json(broker, r->name, gen, "s2m"));
	}
	return o;
}

/* ---- services ----------------------------------------------------------------------------- */

static const char *slot_state_name(uint32_t st)
{
	switch (st) {
	case SMEM_SVC_FREE:	return "free";
	case SMEM_SVC_FILLING:	return "connecting";
	case SMEM_SVC_READY:	return "waiting";
	case SMEM_SVC_ATTACHED:	return "attached";
	case SMEM_SVC_REFUSED:	return "refused";
	default:		return "garbage";
	}
}

/*
 * A service's table, read-only: the server's record, and per claimed slot its client's owner
 * id, liveness (the kernel's lock, not the table's word), state and calls served. The slot
 * count is checked against the area's size (smem__svc_map) before any slot is read.
 */
static struct json_object *service_json(const struct smem_region *r)
{
	struct json_object *o = json_object_new_object(), *clients, *srv;
	struct live_cache lc = { .n = 0 };
	struct smem__svc_map m;
	uint32_t i, id, connected = 0;
	int err;

	err = smem__svc_map(r->obj, r->obj_size, &m);
	sc_add_bool(o, "valid", err == 0);
	if (err) {
		json_object_object_add(o, "error", sc_errno_json(err));
		return o;
	}
	sc_add_u64(o, "max_clients", m.nslots);
	id = atomic_load_explicit(&m.hdr->server.live_id, memory_order_acquire);
	if (id) {
		srv = owner_json(r, id);
		sc_add_u64(srv, "pid", m.hdr->server.pid);
		sc_add_bool(srv, "closed", atomic_load_explicit(&m.hdr->flags, memory_order_relaxed) &
					   SMEM_SVC_CLOSED);
		json_object_object_add(o, "server", srv);
	} else {
		json_object_object_add(o, "server", NULL);
	}
	clients = json_object_new_array();
	for (i = 0; i < m.nslots; i++) {
		const struct smem_svc_slot *sl = &m.slots[i];
		uint64_t own = atomic_load_explicit(&sl->own, memory_order_acquire);
		uint32_t owner = smem__svc_own_id(own);
		struct json_object *co;
		bool alive;

		if (!owner)
			continue;
		alive = cached_alive(r, &lc, owner);
		connected += alive;
		co = json_object_new_object();
		sc_add_u64(co, "slot", i);
		sc_add_u64(co, "owner", owner);
		sc_add_bool(co, "alive", alive);
		json_object_object_add(co, "state", json_object_new_string(slot_state_name(
			atomic_load_explicit(&sl->state, memory_order_relaxed))));
		sc_add_u64(co, "pid", sl->ctl.end[SMEM_RPC_MASTER].pid);
		sc_add_u64(co, "calls", atomic_load_explicit(&sl->calls, memory_order_relaxed));
		json_object_array_add(clients, co);
	}
	sc_add_u64(o, "connected", connected);
	json_object_object_add(o, "clients", clients);
	return o;
}

struct json_object *sc_inspect(const char *broker, const struct smem__entry_info *e)
{
	struct smem_opts opts = { .broker = broker, .flags = SMEM_RDONLY };
	struct json_object *doc = json_object_new_object(), *lock = NULL;
	struct smem_region *r = NULL;
	int err;

	json_object_object_add(doc, "broker", sc_entry_json(e));
	/* The header as any opener sees it: the kind the broker recorded must be the header's. */
	err = smem__region_open(e->name, e->kind, &opts, &r);
	if (err) {
		json_object_object_add(doc, "header", NULL);
		json_object_object_add(doc, "header_error", sc_errno_json(err));
		return doc;
	}
	json_object_object_add(doc, "header", header_json(r));
	json_object_object_add(doc, "participants", participants_json(r));
	switch (e->kind) {
	case SMEM_KIND_RING:
		json_object_object_add(doc, "ring", ring_json(r));
		break;
	case SMEM_KIND_BUFFER:
	case SMEM_KIND_ARRAY:
		json_object_object_add(doc, smem__kind_name(e->kind), blob_json(r, e->kind, &lock));
		json_object_object_add(doc, "lock", lock);
		break;
	case SMEM_KIND_RPC:
		json_object_object_add(doc, "rpc", rpc_json(broker, r));
		break;
	case SMEM_KIND_TOPIC:
		json_object_object_add(doc, "topic", topic_json(r));
		break;
	case SMEM_KIND_SERVICE:
		json_object_object_add(doc, "service", service_json(r));
		break;
	default:
		break;
	}
	smem_region_close(r);
	return doc;
}
