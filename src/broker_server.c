/* SPDX-License-Identifier: MIT */
/*
 * The broker: maps names to sealed memfds and hands them out (docs/PROTOCOL.md).
 *
 * It lives in the library so that any smem process can start one (auto-start, see
 * broker_client.c) without finding a binary; tools/smemd.c is a thin main around it.
 *
 * One thread, one epoll loop, level-triggered, up to 16 messages handled per ready connection
 * per turn. Every request gets exactly one reply (except RELEASE with SMEM_RELEASE_NOREPLY), even
 * when it cannot be parsed; the connection stays usable. Replies are sent with MSG_DONTWAIT:
 * a client that does not read its replies is disconnected rather than allowed to stall the loop.
 *
 * State: entries (one per name) in a hash table and in an id-ordered list; connections with
 * their holds (entry, count). An entry is freed when it is out of the table (unlinked, or its
 * last hold went and it is not persistent) and nobody holds it. Quotas are charged to the
 * entry's owner uid while the name is in the table.
 *
 * fd ownership: a received fd is owned by the request being handled; it is either moved into an
 * entry or closed before the reply goes out, on every path.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"

#define REQUIRED_SEALS		(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define HASH_BUCKETS		4096u
#define MAX_RX_FDS		8
#define MAX_GROUPS		64
#define DEFAULT_MAX_NAMES	4096u
#define DEFAULT_MAX_BYTES	(64ull << 30)

struct entry {
	struct entry *hnext;		/* hash chain */
	struct entry *prev, *next;	/* id order */
	uint64_t id, size, ctime_ns;
	uint32_t kind, mode, uid, gid, flags;
	uint32_t holders;
	int fd;				/* O_RDWR unless rw_lost */
	int ro_fd;			/* O_RDONLY description, made on first read-only open; -1 */
	bool rw_lost;			/* re-registered from a read-only fd that could not be reopened */
	bool linked;			/* in the table (the name resolves to it) */
	dev_t dev;
	ino_t ino;
	uint16_t name_len;
	char name[SMEM_NAME_MAX + 1];
};

struct hold {
	struct entry *e;
	uint32_t count;
};

struct conn {
	struct conn *prev, *next;
	int fd;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int ngroups;
	gid_t groups[MAX_GROUPS];
	bool hello;
	struct hold *holds;
	size_t nholds, cap;
};

struct quota {
	struct quota *next;
	uid_t uid;
	uint32_t names;
	uint64_t bytes;
};

struct broker {
	const struct smem__broker_config *cfg;
	int epfd, lfd, sigfd;
	struct conn *conns;
	unsigned nconns;
	struct entry *table[HASH_BUCKETS];
	struct entry *first, *last;	/* id order, linked entries only */
	unsigned nentries;
	uint64_t next_id;
	struct quota *quotas;
	uint32_t max_names;
	uint64_t max_bytes;
	bool stop;
	/* The request being handled and its reply. */
	_Alignas(8) unsigned char rx[SMEM_PROTO_MAX_REQ];
	_Alignas(8) unsigned char tx[SMEM_PROTO_MAX_REPLY];
};

/* ---- entries ------------------------------------------------------------------------- */

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (n--)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & (HASH_BUCKETS - 1);
}

static struct entry *lookup(struct broker *b, const char *name, size_t len)
{
	struct entry *e;

	for (e = b->table[name_hash(name, len)]; e; e = e->hnext)
		if (e->name_len == len && memcmp(e->name, name, len) == 0)
			return e;
	return NULL;
}

static struct quota *quota_of(struct broker *b, uid_t uid, bool make)
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

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void entry_free(struct entry *e)
{
	close(e->fd);
	if (e->ro_fd >= 0)
		close(e->ro_fd);
	free(e);
}

/* Take @e out of the table (the name no longer resolves) and give its quota back. */
static void entry_unlink(struct broker *b, struct entry *e)
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
	q = quota_of(b, e->uid, false);
	if (q) {
		q->names--;
		q->bytes -= e->size;
	}
	if (!e->holders)
		entry_free(e);
}

static void entry_link(struct broker *b, struct entry *e, struct quota *q)
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
		entry_unlink(b, e);
}

/* ---- connections and holds ----------------------------------------------------------- */

static int hold_add(struct conn *c, struct entry *e)
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

static int hold_drop(struct broker *b, struct conn *c, uint64_t id)
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

static void conn_close(struct broker *b, struct conn *c)
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

static void conn_accept(struct broker *b)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct epoll_event ev;
	struct conn *c;
	int fd;

	fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		/* Out of fds: the listener stays readable; do not spin on it. */
		if (errno == EMFILE || errno == ENFILE)
			usleep(10000);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	len = sizeof(c->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
		c->ngroups = (int)(len / sizeof(gid_t));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(c);
		close(fd);
		return;
	}
	c->next = b->conns;
	if (b->conns)
		b->conns->prev = c;
	b->conns = c;
	b->nconns++;
}

static bool in_group(const struct conn *c, gid_t gid)
{
	int i;

	if (c->gid == gid)
		return true;
	for (i = 0; i < c->ngroups; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

/* The filesystem's rule: owner bits, else group bits, else other bits; root passes. */
static bool may_access(const struct conn *c, uint32_t uid, uint32_t gid, uint32_t mode,
		       bool write)
{
	uint32_t bits;

	if (c->uid == 0)
		return true;
	if (c->uid == uid)
		bits = mode >> 6;
	else if (in_group(c, gid))
		bits = mode >> 3;
	else
		bits = mode;
	return (bits & 4) && (!write || (bits & 2));
}

/* ---- replies ------------------------------------------------------------------------- */

/* Send the reply in b->tx (header filled here); @fd (or -1) goes along. Drops on failure. */
static bool reply(struct broker *b, struct conn *c, const struct smem_msg_hdr *req, int status,
		  size_t len, int fd)
{
	struct smem_msg_hdr *h = (struct smem_msg_hdr *)b->tx;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = b->tx, .iov_len = sizeof(*h) + len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	h->version = SMEM_PROTO_VERSION;
	h->op = req ? req->op : 0;
	h->seq = req ? req->seq : 0;
	h->status = status;
	h->length = (uint32_t)len;
	if (fd >= 0) {
		struct cmsghdr *cmsg;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	if (sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		conn_close(b, c);
		return false;
	}
	return true;
}

static size_t put_entry(unsigned char *p, const struct entry *e)
{
	struct smem_msg_entry r = {
		.id = e->id, .size = e->size, .ctime_ns = e->ctime_ns, .kind = e->kind,
		.mode = e->mode, .uid = e->uid, .gid = e->gid, .holders = e->holders,
		.flags = (e->flags & SMEM_ENTRY_PERSIST) | (e->linked ? 0 : SMEM_ENTRY_UNLINKED),
		.name_len = e->name_len,
	};
	size_t n = smem_msg_entry_size(e->name_len);

	memset(p, 0, n);
	memcpy(p, &r, sizeof(r));
	memcpy(p + sizeof(r), e->name, e->name_len);
	return n;
}

/* ---- requests ------------------------------------------------------------------------ */

/* Parse "fixed struct + name" payloads exactly; the name has no NUL. */
static int parse_named(const unsigned char *p, size_t len, size_t fixed, size_t name_len_off,
		       const char **name, size_t *name_len)
{
	uint16_t n;

	if (len < fixed)
		return -EBADMSG;
	memcpy(&n, p + name_len_off, sizeof(n));
	if (n == 0 || n > SMEM_NAME_MAX || len != fixed + n)
		return -EBADMSG;
	if (memchr(p + fixed, 0, n))
		return -EINVAL;
	*name = (const char *)p + fixed;
	*name_len = n;
	return 0;
}

static int do_create(struct broker *b, struct conn *c, const unsigned char *p, size_t len,
		     int *fdp, size_t *out_len)
{
	struct smem_msg_create m;
	const char *name;
	size_t name_len;
	struct quota *q;
	struct entry *e;
	struct stat st;
	int seals, acc, err, fd = *fdp;
	bool rereg;

	if (len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, p, sizeof(m));
	err = parse_named(p, len, sizeof(m), offsetof(struct smem_msg_create, name_len),
			  &name, &name_len);
	if (err)
		return err;
	if (m.reserved || (m.flags & ~SMEM_CREATE_FLAGS) || m.kind == 0 ||
	    m.kind > SMEM_KIND_MAX || m.mode > 0777)
		return -EINVAL;
	rereg = m.flags & SMEM_CREATE_REREGISTER;

	/* The fd must be a memfd sealed against resizing, at least as large as declared. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -EPROTO;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS)
		return -EPROTO;
	if ((uint64_t)st.st_size < m.size || st.st_size < (off_t)SMEM_HDR_SIZE)
		return -EINVAL;
	acc = fcntl(fd, F_GETFL);
	if (acc < 0)
		return -EPROTO;
	acc &= O_ACCMODE;
	if (acc != O_RDWR && !rereg)
		return -EINVAL;

	e = lookup(b, name, name_len);
	if (e) {
		/* A re-register of the very same memfd joins the entry another holder made. */
		if (!rereg || e->dev != st.st_dev || e->ino != st.st_ino)
			return -EEXIST;
		if (!may_access(c, e->uid, e->gid, e->mode, acc == O_RDWR))
			return -EACCES;
		err = hold_add(c, e);
		if (err)
			return err;
		*out_len = put_entry(b->tx + sizeof(struct smem_msg_hdr), e);
		return 0;	/* *fdp stays ours: the caller closes it */
	}

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->ro_fd = -1;
	e->fd = -1;
	if (rereg) {
		/*
		 * The holder says who owned the name. Believe it from that owner or root; from
		 * anybody else only if the recorded mode grants them the access their fd has,
		 * which is what an OPEN by them would have checked.
		 */
		if (c->uid != 0 && c->uid != m.uid &&
		    !may_access(c, m.uid, m.gid, m.mode, acc == O_RDWR)) {
			free(e);
			return -EACCES;
		}
		e->uid = m.uid;
		e->gid = m.gid;
		e->mode = m.mode ? m.mode : 0600;
	} else {
		e->uid = c->uid;
		e->gid = b->cfg->group >= 0 ? (gid_t)b->cfg->group : c->gid;
		e->mode = m.mode ? m.mode : (b->cfg->group >= 0 ? 0660 : 0600);
	}
	q = quota_of(b, e->uid, true);
	if (!q) {
		free(e);
		return -ENOMEM;
	}
	if (q->names + 1 > b->max_names || (uint64_t)st.st_size > b->max_bytes - q->bytes) {
		free(e);
		return -EDQUOT;
	}
	e->id = ++b->next_id;
	e->size = (uint64_t)st.st_size;
	e->ctime_ns = realtime_ns();
	e->kind = m.kind;
	e->flags = (m.flags & SMEM_CREATE_PERSIST) ? SMEM_ENTRY_PERSIST : 0;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	e->name_len = (uint16_t)name_len;
	memcpy(e->name, name, name_len);
	e->name[name_len] = 0;
	if (hold_add(c, e) < 0) {
		free(e);
		return -ENOMEM;
	}
	if (acc != O_RDWR) {
		/* A read-only holder re-registers: a memfd's inode lets us reopen it rw. */
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		e->fd = open(path, O_RDWR | O_CLOEXEC);
		e->rw_lost = e->fd < 0;
	}
	if (e->fd < 0) {
		e->fd = fd;
		*fdp = -1;	/* moved into the entry */
	}
	entry_link(b, e, q);
	*out_len = put_entry(b->tx + sizeof(struct smem_msg_hdr), e);
	return 0;
}

static int do_open(struct broker *b, struct conn *c, const unsigned char *p, size_t len,
		   int *send_fd, size_t *out_len)
{
	struct smem_msg_name m;
	const char *name;
	size_t name_len;
	struct entry *e;
	bool rdonly;
	int err;

	if (len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, p, sizeof(m));
	err = parse_named(p, len, sizeof(m), offsetof(struct smem_msg_name, name_len),
			  &name, &name_len);
	if (err)
		return err;
	if (m.reserved || (m.flags & ~SMEM_OPEN_FLAGS))
		return -EINVAL;
	rdonly = m.flags & SMEM_OPEN_RDONLY;
	e = lookup(b, name, name_len);
	if (!e)
		return -ENOENT;
	if (!may_access(c, e->uid, e->gid, e->mode, !rdonly) || (!rdonly && e->rw_lost))
		return -EACCES;
	if (rdonly && e->ro_fd < 0) {
		/* A description of its own, opened read-only: mmap(PROT_WRITE) fails on it. */
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", e->fd);
		e->ro_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (e->ro_fd < 0)
			return -EACCES;
	}
	err = hold_add(c, e);
	if (err)
		return err;
	*send_fd = rdonly ? e->ro_fd : e->fd;
	*out_len = put_entry(b->tx + sizeof(struct smem_msg_hdr), e);
	return 0;
}

static int do_unlink_stat(struct broker *b, struct conn *c, uint16_t op, const unsigned char *p,
			  size_t len, size_t *out_len)
{
	struct smem_msg_name m;
	const char *name;
	size_t name_len;
	struct entry *e;
	int err;

	if (len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, p, sizeof(m));
	err = parse_named(p, len, sizeof(m), offsetof(struct smem_msg_name, name_len),
			  &name, &name_len);
	if (err)
		return err;
	if (m.reserved || m.flags)
		return -EINVAL;
	e = lookup(b, name, name_len);
	if (!e)
		return -ENOENT;
	if (op == SMEM_OP_STAT) {
		*out_len = put_entry(b->tx + sizeof(struct smem_msg_hdr), e);
		return 0;
	}
	if (c->uid != 0 && c->uid != e->uid)
		return -EACCES;
	entry_unlink(b, e);
	return 0;
}

static int do_list(struct broker *b, const unsigned char *p, size_t len, size_t *out_len)
{
	unsigned char *out = b->tx + sizeof(struct smem_msg_hdr);
	size_t cap = sizeof(b->tx) - sizeof(struct smem_msg_hdr);
	struct smem_msg_list_reply r = { 0, 0 };
	struct smem_msg_list m;
	size_t off = sizeof(r);
	struct entry *e;

	if (len != sizeof(m))
		return -EBADMSG;
	memcpy(&m, p, sizeof(m));
	for (e = b->first; e; e = e->next) {
		if (e->id <= m.after)
			continue;
		if (off + smem_msg_entry_size(e->name_len) > cap) {
			r.more = 1;
			break;
		}
		off += put_entry(out + off, e);
		r.count++;
	}
	memcpy(out, &r, sizeof(r));
	*out_len = off;
	return 0;
}

/*
 * Read one message from @c and answer it. Returns true if there may be more to read: a
 * message was handled and @c is still open (false also means @c may have been freed).
 */
static bool handle(struct broker *b, struct conn *c, uint32_t events)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(MAX_RX_FDS * sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = b->rx, .iov_len = sizeof(b->rx) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
	};
	struct smem_msg_hdr h;
	struct cmsghdr *cmsg;
	int fds[MAX_RX_FDS], nfds = 0, send_fd = -1, status, i;
	size_t len, out_len = 0;
	bool noreply = false;
	ssize_t n;

	n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(b, c);
		return false;
	}
	/* Collect every fd that came along, so that each one is closed or consumed below. */
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; i < (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int)); i++)
			if (nfds < MAX_RX_FDS)
				memcpy(&fds[nfds++], CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
	}
	if (n == 0 && nfds == 0 && (events & (EPOLLHUP | EPOLLRDHUP))) {
		conn_close(b, c);
		return false;
	}
	if ((size_t)n < sizeof(h)) {
		status = -EBADMSG;
		memset(&h, 0, sizeof(h));
		goto answer_unparsed;
	}
	memcpy(&h, b->rx, sizeof(h));
	len = (size_t)n - sizeof(h);
	if (msg.msg_flags & MSG_TRUNC)
		status = -EMSGSIZE;
	else if (msg.msg_flags & MSG_CTRUNC)
		status = -EBADMSG;
	else if (h.version != SMEM_PROTO_VERSION)
		status = -EPROTONOSUPPORT;
	else if (h.length != len || h.status != 0)
		status = -EBADMSG;
	else if (h.op == 0 || h.op > SMEM_OP_MAX)
		status = -EOPNOTSUPP;
	else if (!c->hello && h.op != SMEM_OP_HELLO)
		status = -EPROTO;
	else if (nfds != (h.op == SMEM_OP_CREATE ? 1 : 0))
		status = -EBADMSG;
	else
		status = 1;	/* well-formed: dispatch */
	if (status != 1)
		goto answer;

	{
		const unsigned char *p = b->rx + sizeof(h);

		switch (h.op) {
		case SMEM_OP_HELLO: {
			struct smem_msg_hello m;
			struct smem_msg_hello_reply r = {
				.version = SMEM_PROTO_VERSION, .pid = getpid(),
				.uid = (uint32_t)geteuid(), .max_reply = SMEM_PROTO_MAX_REPLY,
			};

			if (len != sizeof(m)) {
				status = -EBADMSG;
				break;
			}
			memcpy(&m, p, sizeof(m));
			if (m.version != SMEM_PROTO_VERSION) {
				status = -EPROTONOSUPPORT;
			} else {
				c->hello = true;
				status = 0;
			}
			memcpy(b->tx + sizeof(h), &r, sizeof(r));
			out_len = sizeof(r);
			break;
		}
		case SMEM_OP_CREATE:
			status = do_create(b, c, p, len, &fds[0], &out_len);
			break;
		case SMEM_OP_OPEN:
			status = do_open(b, c, p, len, &send_fd, &out_len);
			break;
		case SMEM_OP_RELEASE: {
			struct smem_msg_release m;

			if (len != sizeof(m)) {
				status = -EBADMSG;
				break;
			}
			memcpy(&m, p, sizeof(m));
			noreply = m.flags & SMEM_RELEASE_NOREPLY;
			status = (m.flags & ~SMEM_RELEASE_NOREPLY) || m.reserved ? -EINVAL :
				 hold_drop(b, c, m.id);
			break;
		}
		case SMEM_OP_UNLINK:
		case SMEM_OP_STAT:
			status = do_unlink_stat(b, c, h.op, p, len, &out_len);
			break;
		case SMEM_OP_LIST:
			status = do_list(b, p, len, &out_len);
			break;
		case SMEM_OP_STOP:
			if (len != 0) {
				status = -EBADMSG;
			} else if (c->uid != 0 && c->uid != geteuid()) {
				status = -EPERM;
			} else {
				b->stop = true;
				status = 0;
			}
			break;
		}
	}
answer:
	if (b->cfg->verbose)
		fprintf(stderr, "smemd: uid %u pid %d op %u seq %u -> %d\n", (unsigned)c->uid,
			(int)c->pid, h.op, h.seq, status);
answer_unparsed:
	for (i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (status < 0 && h.op != SMEM_OP_HELLO)
		out_len = 0;	/* an error reply is a bare header (HELLO's carries our version) */
	if (noreply)
		return true;
	return reply(b, c, (size_t)n >= sizeof(h) ? &h : NULL, status, out_len,
		     status == 0 ? send_fd : -1);
}

/* Close every connection (releasing its holds), then every name, then the broker's own fds. */
static void broker_destroy(struct broker *b)
{
	while (b->conns)
		conn_close(b, b->conns);
	while (b->first)
		entry_unlink(b, b->first);
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

/* ---- the request path without the loop (fuzz targets, tests) ------------------------- */

/* A broker state with no listener and no epoll set: connections are adopted by hand. */
struct smem__broker {
	struct broker b;
};

struct smem__broker *smem__broker_new(const struct smem__broker_config *cfg)
{
	struct smem__broker *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	sb->b.cfg = cfg;
	sb->b.lfd = sb->b.epfd = sb->b.sigfd = -1;
	sb->b.max_names = cfg->max_names ? cfg->max_names : DEFAULT_MAX_NAMES;
	sb->b.max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES;
	return sb;
}

static struct conn *conn_by_fd(struct broker *b, int fd)
{
	struct conn *c;

	for (c = b->conns; c; c = c->next)
		if (c->fd == fd)
			return c;
	return NULL;
}

int smem__broker_adopt(struct smem__broker *sb, int fd, uid_t uid, gid_t gid)
{
	struct conn *c;

	if (fd < 0 || conn_by_fd(&sb->b, fd))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->uid = uid;
	c->gid = gid;
	c->pid = 0;
	c->next = sb->b.conns;
	if (sb->b.conns)
		sb->b.conns->prev = c;
	sb->b.conns = c;
	sb->b.nconns++;
	return 0;
}

int smem__broker_step(struct smem__broker *sb, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	struct conn *c = conn_by_fd(&sb->b, fd);
	uint32_t events = 0;

	if (!c)
		return -ENOTCONN;
	/* The events the loop's level-triggered epoll would have reported. */
	if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLRDHUP | POLLERR)))
		return 0;
	if (p.revents & POLLIN)
		events |= EPOLLIN;
	if (p.revents & POLLHUP)
		events |= EPOLLHUP;
	if (p.revents & POLLRDHUP)
		events |= EPOLLRDHUP;
	if (p.revents & POLLERR)
		events |= EPOLLERR;
	handle(&sb->b, c, events);
	return conn_by_fd(&sb->b, fd) ? 1 : -ENOTCONN;
}

void smem__broker_free(struct smem__broker *sb)
{
	if (sb)
		broker_destroy(&sb->b);	/* b is the first member: frees sb */
}

unsigned smem__broker_names(const struct smem__broker *sb)
{
	return sb->b.nentries;
}

/* ---- the loop ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
	return smem__now_ns() / 1000000u;
}

/* Remove our socket file if it is still ours, under the same lock auto-start takes. */
static void remove_socket(const struct smem__broker_config *cfg, const struct stat *mine)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct stat now;
	char *slash;
	int dfd = -1;

	if (!cfg->path)
		return;
	snprintf(dir, sizeof(dir), "%s", cfg->path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		flock(dfd, LOCK_EX);
	if (stat(cfg->path, &now) == 0 && now.st_dev == mine->st_dev && now.st_ino == mine->st_ino)
		unlink(cfg->path);
	if (dfd >= 0)
		close(dfd);
}

int smem__broker_serve(const struct smem__broker_config *cfg)
{
	struct epoll_event ev, evs[32];
	struct broker *b;
	struct stat sock_st = { 0 };
	bool have_sock_st = false;
	uint64_t idle_since = mono_ms();
	struct rlimit rl;
	sigset_t mask;
	int i, k, n, err = 0;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = cfg;
	b->lfd = cfg->listen_fd;
	b->max_names = cfg->max_names ? cfg->max_names : DEFAULT_MAX_NAMES;
	b->max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES;
	b->sigfd = -1;
	/* Each connection and each name costs an fd: take all the kernel lets us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (cfg->path && stat(cfg->path, &sock_st) == 0)
		have_sock_st = true;
	fcntl(b->lfd, F_SETFL, fcntl(b->lfd, F_GETFL) | O_NONBLOCK);

	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epfd < 0) {
		err = -errno;
		goto out;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &b->lfd;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->lfd, &ev) < 0) {
		err = -errno;
		goto out;
	}
	/* SIGTERM and SIGINT end the loop cleanly (the socket file is removed). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == 0)
		b->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (b->sigfd >= 0) {
		ev.events = EPOLLIN;
		ev.data.ptr = &b->sigfd;
		epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->sigfd, &ev);
	}
	signal(SIGPIPE, SIG_IGN);

	while (!b->stop) {
		int timeout = -1;

		if (cfg->idle_exit_s > 0 && b->nconns == 0 && b->nentries == 0) {
			uint64_t end = idle_since + (uint64_t)cfg->idle_exit_s * 1000u;
			uint64_t now = mono_ms();

			if (now >= end)
				break;
			timeout = (int)(end - now);
		}
		n = epoll_wait(b->epfd, evs, (int)SMEM__ARRAY_SIZE(evs), timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		for (i = 0; i < n && !b->stop; i++) {
			void *p = evs[i].data.ptr;

			if (p == &b->lfd)
				conn_accept(b);
			else if (p == &b->sigfd)
				b->stop = true;
			else
				/*
				 * A few messages per turn: a client's RELEASE (no reply) and its
				 * next request often arrive together. Bounded, to stay fair.
				 */
				for (k = 0; k < 16 && !b->stop && handle(b, p, evs[i].events); k++)
					;
		}
		if (b->nconns || b->nentries)
			idle_since = mono_ms();
	}
out:
	if (have_sock_st)
		remove_socket(cfg, &sock_st);
	broker_destroy(b);
	return err;
}
