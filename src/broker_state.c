/* SPDX-License-Identifier: MIT */
/*
 * The broker's state: names (a hash table and an id-ordered list), per-uid quotas, each
 * connection's holds, and what closing a connection releases. See broker_server.c for the
 * design and broker_server.h for the other broker files.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "broker_server.h"

void smem__srv_init(struct broker *b, const struct smem__broker_config *cfg)
{
	b->cfg = cfg;
	b->lfd = b->epfd = b->sigfd = -1;
	b->max_names = cfg->max_names ? cfg->max_names : DEFAULT_MAX_NAMES;
	b->max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES;
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

struct quota *smem__srv_quota(struct broker *b, uid_t uid, bool make)
{
	struct quota *q;

	for (q = b->quotas; q; q = q->next)
		if (q->uid == uid)
			return q;
	if (!make || !(q = calloc(1, sizeof(*q))))
		return NULL;
	q->uid = uid;
	q->next = b->quotas;
	b->quotas = q;
	return q;
}
static void entry_free(struct entry *e)
{
	close(e->fd);
	if (e->ro_fd >= 0)
		close(e->ro_fd);
	free(e);
}

/* Take @e out of the table (the name no longer resolves) and give its quota back. */
void smem__srv_unlink(struct broker *b, struct entry *e)
{
	struct entry **pp = &b->table[name_hash(e->name, e->name_len)];
	struct quota *q;

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
	q = smem__srv_quota(b, e->uid, false);
	if (q) {
		q->names--;
		q->bytes -= e->size;
	}
	if (!e->holders)
		entry_free(e);
}

void smem__srv_link(struct broker *b, struct entry *e, struct quota *q)
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
	q->names++;
	q->bytes += e->size;
}

/* One hold fewer on @e: the name goes with its last hold unless persistent. */
static void entry_put(struct broker *b, struct entry *e)
{
	if (--e->holders)
		return;
	if (!e->linked)
		entry_free(e);
	else if (!(e->flags & SMEM_ENTRY_PERSIST))
		smem__srv_unlink(b, e);
}

/* ---- connections and holds ----------------------------------------------------------- */

int smem__srv_hold_add(struct conn *c, struct entry *e)
{
	size_t i;

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
		for (j = 0; j < c->holds[i].count; j++)
			entry_put(b, c->holds[i].e);
	free(c->holds);
	epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	b->nconns--;
	free(c);
}

void smem__srv_conn_link(struct broker *b, struct conn *c)
{
	c->next = b->conns;
	if (b->conns)
		b->conns->prev = c;
	b->conns = c;
	b->nconns++;
}

/* Close every connection (releasing its holds), then every name, then the broker's own fds. */
void smem__srv_destroy(struct broker *b)
{
	while (b->conns)
		smem__srv_conn_close(b, b->conns);
	while (b->first)
		smem__srv_unlink(b, b->first);
	while (b->quotas) {
		struct quota *q = b->quotas;

		b->quotas = q->next;
		free(q);
	}
	if (b->sigfd >= 0)
		close(b->sigfd);
	if (b->epfd >= 0)
		close(b->epfd);
	if (b->lfd >= 0)
		close(b->lfd);
	free(b);
}
