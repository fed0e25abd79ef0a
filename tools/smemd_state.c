/* SPDX-License-Identifier: MIT */
/*
 * The broker's state: names (a hash table and an id-ordered list), per-uid records (quotas
 * and caps), each connection's holds, and what closing a connection releases. See
 * smemd_loop.c for the design and smemd_server.h for the other broker files.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smemd_server.h"

void smem__srv_init(struct broker *b, const struct smem__broker_config *cfg)
{
	b->cfg = cfg;
	b->lfd = b->epfd = b->sigfd = b->reserve = -1;
	b->max_names = cfg->max_names ? cfg->max_names : DEFAULT_MAX_NAMES;
	b->max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES;
	b->max_conns = cfg->max_conns ? cfg->max_conns : DEFAULT_MAX_CONNS;
	b->max_holds = cfg->max_holds ? cfg->max_holds : DEFAULT_MAX_HOLDS;
	b->fdstore = cfg->fdstore;
	if (cfg->grace_ms > 0)
		b->grace_end_ns = smem__now_ns() + (uint64_t)cfg->grace_ms * 1000000u;
}

/* ---- entries ------------------------------------------------------------------------- */

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (n--)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & (HASH_BUCKETS - 1);
}

struct entry *smem__srv_lookup(struct broker *b, const char *name, size_t len)
{
	struct entry *e;

	for (e = b->table[name_hash(name, len)]; e; e = e->hnext)
		if (e->name_len == len && memcmp(e->name, name, len) == 0)
			return e;
	return NULL;
}

/*
 * Whether the memfd's inode (its mode and group, which the kernel checks when anyone re-opens
 * /proc/PID/fd/N) grants nobody more than the name's @mode and @gid do. When the groups
 * differ, a member of the inode's group may or may not be in the name's, so its bits must be
 * within both the name's group and other bits; and so must the inode's other bits.
 */
bool smem__srv_inode_within(const struct stat *st, uint32_t mode, uint32_t gid)
{
	uint32_t ig = (st->st_mode >> 3) & 7, io = st->st_mode & 7;
	uint32_t g = (mode >> 3) & 7, o = mode & 7;

	if ((uint32_t)st->st_gid == gid)
		return !(ig & ~g) && !(io & ~o);
	return !(ig & ~(g & o)) && !(io & ~(g & o));
}

struct entry *smem__srv_entry_new(const char *name, size_t len, const struct stat *st,
				  uint32_t kind, uint32_t uid, uint32_t gid, uint32_t mode)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->fd = e->ro_fd = -1;
	e->uid = uid;
	e->gid = gid;
	e->mode = mode;
	e->size = (uint64_t)st->st_size;
	e->kind = kind;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->name_len = (uint16_t)len;
	memcpy(e->name, name, len);
	e->name[len] = 0;
	return e;
}

/* ---- per-uid records ---------------------------------------------------------------- */

struct uidrec *smem__srv_uid(struct broker *b, uid_t uid, bool make)
{
	struct uidrec **head = &b->uids[(uint32_t)uid * 2654435761u % UID_BUCKETS], *r;

	for (r = *head; r; r = r->next)
		if (r->uid == uid)
			return r;
	if (!make || !(r = calloc(1, sizeof(*r))))
		return NULL;
	r->uid = uid;
	r->next = *head;
	*head = r;
	b->nuids++;
	return r;
}

void smem__srv_uid_put(struct broker *b, struct uidrec *r)
{
	struct uidrec **pp = &b->uids[(uint32_t)r->uid * 2654435761u % UID_BUCKETS];

	if (r->names || r->conns || r->holds || r->bytes)
		return;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	b->nuids--;
	free(r);
}

bool smem__srv_charge_ok(const struct broker *b, const struct uidrec *r, uint64_t size)
{
	return r->names + 1 <= b->max_names && size <= b->max_bytes - r->bytes;
}

/* The memfd goes, and only now its owner gets the name and the bytes back. */
static void entry_free(struct broker *b, struct entry *e)
{
	struct uidrec *r = e->owner;

	r->names--;
	r->bytes -= e->size;
	close(e->fd);
	if (e->ro_fd >= 0)
		close(e->ro_fd);
	free(e);
	smem__srv_uid_put(b, r);
}

void smem__srv_unlink(struct broker *b, struct entry *e)
{
	struct entry **pp = &b->table[name_hash(e->name, e->name_len)];

	if (!e->linked)
		return;
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		b->first = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		b->last = e->prev;
	e->linked = false;
	b->nentries--;
	if (!e->holders)
		entry_free(b, e);
}

void smem__srv_link(struct broker *b, struct entry *e, struct uidrec *r)
{
	uint32_t h = name_hash(e->name, e->name_len);

	e->hnext = b->table[h];
	b->table[h] = e;
	e->prev = b->last;
	e->next = NULL;
	if (b->last)
		b->last->next = e;
	else
		b->first = e;
	b->last = e;
	e->linked = true;
	b->nentries++;
	e->owner = r;
	r->names++;
	r->bytes += e->size;
}

/* One hold fewer on @e: the name goes with its last hold unless persistent. */
static void entry_put(struct broker *b, struct entry *e)
{
	if (--e->holders)
		return;
	if (!e->linked)
		entry_free(b, e);
	else if (!(e->flags & SMEM_ENTRY_PERSIST))
		smem__srv_unlink(b, e);
}

/* ---- connections and holds ----------------------------------------------------------- */

int smem__srv_hold_add(struct broker *b, struct conn *c, struct entry *e)
{
	size_t i;

	if (c->rec->holds >= b->max_holds)
		return -EDQUOT;
	for (i = 0; i < c->nholds; i++)
		if (c->holds[i].e == e)
			break;
	if (i == c->nholds) {
		if (c->nholds == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 8;
			struct hold *h = realloc(c->holds, cap * sizeof(*h));

			if (!h)
				return -ENOMEM;
			c->holds = h;
			c->cap = cap;
		}
		c->holds[c->nholds++] = (struct hold){ .e = e, .count = 0 };
	}
	c->holds[i].count++;
	c->rec->holds++;
	e->holders++;
	return 0;
}

int smem__srv_hold_drop(struct broker *b, struct conn *c, uint64_t id)
{
	size_t i;

	for (i = 0; i < c->nholds; i++) {
		struct entry *e = c->holds[i].e;

		if (e->id != id)
			continue;
		if (--c->holds[i].count == 0)
			c->holds[i] = c->holds[--c->nholds];
		c->rec->holds--;
		entry_put(b, e);
		return 0;
	}
	return -ENOENT;
}

void smem__srv_conn_close(struct broker *b, struct conn *c)
{
	size_t i, j;

	/* A process that exits or is killed releases every hold it had. */
	for (i = 0; i < c->nholds; i++)
		for (j = 0; j < c->holds[i].count; j++) {
			c->rec->holds--;
			entry_put(b, c->holds[i].e);
		}
	free(c->holds);
	/*
	 * Out of the epoll set before the close, not by it: the set drops a file only when its
	 * last reference goes, and another process may hold one for a moment (reading
	 * /proc/PID/fd), which would leave an event pointing at the conn freed below. The state
	 * without a loop (smem__broker_new) has no set.
	 */
	if (b->epfd >= 0)
		epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	b->nconns--;
	c->rec->conns--;
	smem__srv_uid_put(b, c->rec);
	free(c);
}

int smem__srv_conn_link(struct broker *b, struct conn *c)
{
	struct uidrec *r = smem__srv_uid(b, c->uid, true);

	if (!r)
		return -ENOMEM;
	if (r->conns >= b->max_conns + REFUSE_SLACK) {
		smem__srv_uid_put(b, r);
		return -EDQUOT;
	}
	if (r->conns >= b->max_conns)
		c->refuse = -EDQUOT;
	r->conns++;
	c->rec = r;
	c->next = b->conns;
	if (b->conns)
		b->conns->prev = c;
	b->conns = c;
	b->nconns++;
	return 0;
}

/* Close every connection (releasing its holds), then every name, then the broker's own fds. */
void smem__srv_destroy(struct broker *b)
{
	while (b->conns)
		smem__srv_conn_close(b, b->conns);
	while (b->first)
		smem__srv_unlink(b, b->first);
	/* Every record was freed with the last thing it counted. */
	if (b->sigfd >= 0)
		close(b->sigfd);
	if (b->epfd >= 0)
		close(b->epfd);
	if (b->lfd >= 0)
		close(b->lfd);
	if (b->reserve >= 0)
		close(b->reserve);
	free(b);
}
