/* SPDX-License-Identifier: MIT */
/*
 * The broker's request path: one message read from a connection, checked, dispatched and
 * answered with exactly one reply (docs/PROTOCOL.md), including the access rules and the
 * quota charge of CREATE. See smemd_loop.c for the design and smemd_server.h for the
 * other broker files.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smemd_server.h"

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
	if (fd >= 0)
		smem__cmsg_put_fd(&msg, cm.buf, fd);
	if (sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		smem__srv_conn_close(b, c);
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

/*
 * Parse "fixed struct + name" payloads exactly: the fixed part is copied to @m (@fixed bytes),
 * the name (no NUL) is left in place.
 */
static int parse_named(const unsigned char *p, size_t len, void *m, size_t fixed,
		       size_t name_len_off, const char **name, size_t *name_len)
{
	uint16_t n;

	if (len < fixed)
		return -EBADMSG;
	memcpy(m, p, fixed);
	memcpy(&n, p + name_len_off, sizeof(n));
	if (n == 0 || n > SMEM_NAME_MAX || len != fixed + n)
		return -EBADMSG;
	if (memchr(p + fixed, 0, n))
		return -EINVAL;
	*name = (const char *)p + fixed;
	*name_len = n;
	return 0;
}

/*
 * Give a fresh name's inode the name's group and mode when we may (we are root or its owner;
 * the group only where the kernel lets us), so that the kernel grants what the broker does.
 * The creator already narrowed it (region.c); a failure here leaves it narrower, never wider.
 */
static void inode_adjust(int fd, struct stat *st, uint32_t mode, uint32_t gid)
{
	uid_t me = geteuid();

	if ((st->st_mode & 0777) == mode && (uint32_t)st->st_gid == gid)
		return;
	if (me != 0 && me != st->st_uid)
		return;
	if ((uint32_t)st->st_gid != gid && fchown(fd, (uid_t)-1, (gid_t)gid) < 0)
		return;
	if (fchmod(fd, (mode_t)mode) < 0 || fstat(fd, st) < 0)
		return;
}

static bool out_of_fds(int err)
{
	return err == EMFILE || err == ENFILE;
}

/*
 * A holder re-registers a name after a broker restart, with the owner, group and mode the
 * previous broker told it. The kernel's record decides the owner (the memfd's st_uid, which
 * nobody but root can change), the inode must not grant more than the claimed mode, and the
 * caller must be the owner, root, or somebody the claimed mode admits with its fd's access.
 */
static int rereg_check(const struct conn *c, const struct smem_msg_create *m,
		       const struct stat *st, int acc)
{
	uint32_t mode = m->mode ? m->mode : 0600;

	if ((uint32_t)st->st_uid != m->uid)
		return -EPERM;
	if (!smem__srv_inode_within(st, mode, m->gid))
		return -EPERM;
	if (c->uid != 0 && c->uid != m->uid && !may_access(c, m->uid, m->gid, mode, acc == O_RDWR))
		return -EACCES;
	return 0;
}

/* A re-register of the very same memfd joins the entry another holder made. */
static int rereg_join(struct broker *b, struct conn *c, struct entry *e, int *fdp, int acc,
		      size_t *out_len)
{
	int err;

	if (!may_access(c, e->uid, e->gid, e->mode, acc == O_RDWR))
		return -EACCES;
	err = smem__srv_hold_add(b, c, e);
	if (err)
		return err;
	if (e->rw_lost && acc == O_RDWR) {
		/* A writable description at last (the owner's, say): keep it, drop the old. */
		close(e->fd);
		e->fd = *fdp;
		e->rw_lost = false;
		*fdp = -1;
		smem__srv_store_put(b, e);	/* the store keeps the writable one from now on */
	}
	*out_len = put_entry(b->tx + sizeof(struct smem_msg_hdr), e);
	return 0;	/* *fdp, unless taken, stays ours: the caller closes it */
}

static int do_create(struct broker *b, struct conn *c, const unsigned char *p, size_t len,
		     int *fdp, size_t *out_len)
{
	struct smem_msg_create m;
	const char *name;
	size_t name_len;
	struct uidrec *owner;
	struct entry *e;
	struct stat st;
	uint32_t uid, gid, mode;
	int seals, acc, err, fd = *fdp, rw_fd = -1;
	bool rereg;

	err = parse_named(p, len, &m, sizeof(m), offsetof(struct smem_msg_create, name_len),
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

	if (rereg) {
		err = rereg_check(c, &m, &st, acc);
		if (err)
			return err;
		uid = m.uid;
		gid = m.gid;
		mode = m.mode ? m.mode : 0600;
	} else {
		/* Only root registers memory somebody else made (and pays for it). */
		if (c->uid != 0 && (uint32_t)st.st_uid != c->uid)
			return -EPERM;
		uid = c->uid;
		gid = b->cfg->group >= 0 ? (gid_t)b->cfg->group : c->gid;
		mode = m.mode ? m.mode : (b->cfg->group >= 0 ? 0660 : 0600);
	}

	e = smem__srv_lookup(b, name, name_len);
	if (e) {
		if (!rereg || e->dev != st.st_dev || e->ino != st.st_ino)
			return -EEXIST;
		return rereg_join(b, c, e, fdp, acc, out_len);
	}

	/*
	 * Just after a restart, live holders are re-registering their names: until the grace
	 * period ends nobody may take a name one of them may be about to claim back.
	 */
	if (!rereg && b->grace_end_ns && smem__now_ns() < b->grace_end_ns)
		return -EAGAIN;

	/* Names and bytes are charged to the owner until the memfd goes, unlinked or not. */
	owner = smem__srv_uid(b, uid, true);
	if (!owner)
		return -ENOMEM;
	if (!smem__srv_charge_ok(b, owner, (uint64_t)st.st_size)) {
		smem__srv_uid_put(b, owner);
		return -EDQUOT;
	}
	if (!rereg)
		inode_adjust(fd, &st, mode, gid);
	if (!smem__srv_inode_within(&st, mode, gid)) {
		/* An inode wider than its name: a read-only opener could re-open it writable. */
		smem__srv_uid_put(b, owner);
		return -EPERM;
	}
	if (acc != O_RDWR && (c->uid == 0 || c->uid == uid)) {
		/*
		 * The owner (or root) re-registers from a read-only description: reopen it
		 * writable, which the inode's mode allows or not. Never for another uid: that
		 * would hand it more than its fd gives.
		 */
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		rw_fd = open(path, O_RDWR | O_CLOEXEC);
		if (rw_fd < 0 && out_of_fds(errno)) {
			smem__srv_uid_put(b, owner);
			return -EMFILE;
		}
	}
	e = smem__srv_entry_new(name, name_len, &st, m.kind, uid, gid, mode);
	if (!e) {
		if (rw_fd >= 0)
			close(rw_fd);
		smem__srv_uid_put(b, owner);
		return -ENOMEM;
	}
	e->fd = rw_fd;
	e->id = ++b->next_id;
	e->ctime_ns = realtime_ns();
	e->flags = (m.flags & SMEM_CREATE_PERSIST) ? SMEM_ENTRY_PERSIST : 0;
	if (e->fd < 0) {
		e->rw_lost = acc != O_RDWR;
		e->fd = fd;
		*fdp = -1;	/* moved into the entry */
	}
	smem__srv_link(b, e, owner);
	err = smem__srv_hold_add(b, c, e);
	if (err) {
		smem__srv_unlink(b, e);	/* nobody holds it: freed, the owner uncharged */
		return err;
	}
	smem__srv_store_put(b, e);	/* a persistent name outlives this smemd */
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

	err = parse_named(p, len, &m, sizeof(m), offsetof(struct smem_msg_name, name_len),
			  &name, &name_len);
	if (err)
		return err;
	if (m.reserved || (m.flags & ~SMEM_OPEN_FLAGS))
		return -EINVAL;
	rdonly = m.flags & SMEM_OPEN_RDONLY;
	e = smem__srv_lookup(b, name, name_len);
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
			return out_of_fds(errno) ? -EMFILE : -EACCES;
	}
	err = smem__srv_hold_add(b, c, e);
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

	err = parse_named(p, len, &m, sizeof(m), offsetof(struct smem_msg_name, name_len),
			  &name, &name_len);
	if (err)
		return err;
	if (m.reserved || m.flags)
		return -EINVAL;
	e = smem__srv_lookup(b, name, name_len);
	if (!e)
		return -ENOENT;
	if (op == SMEM_OP_STAT) {
		*out_len = put_entry(b->tx + sizeof(struct smem_msg_hdr), e);
		return 0;
	}
	if (c->uid != 0 && c->uid != e->uid)
		return -EACCES;
	smem__srv_store_drop(b, e);	/* before the entry (and its id) may go */
	smem__srv_unlink(b, e);
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

bool smem__srv_handle(struct broker *b, struct conn *c, uint32_t events)
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
	int fds[MAX_RX_FDS], nfds = 0, send_fd = -1, status, i;
	size_t len, out_len = 0;
	bool noreply = false;
	ssize_t n;

	n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			smem__srv_conn_close(b, c);
		return false;
	}
	/* Collect every fd that came along, so that each one is closed or consumed below. */
	nfds = smem__cmsg_take_fds(&msg, fds, MAX_RX_FDS);
	if (n == 0 && nfds == 0 && (events & (EPOLLHUP | EPOLLRDHUP))) {
		smem__srv_conn_close(b, c);
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
		/*
		 * Fewer fds than the buffer holds and still cut: the kernel could not give us
		 * one (we are out of fds), which the client must hear as such.
		 */
		status = nfds < MAX_RX_FDS ? -EMFILE : -EBADMSG;
	else if (c->refuse)
		status = c->refuse;	/* see below */
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
				 smem__srv_hold_drop(b, c, m.id);
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
	/* Over its uid's connection cap, whatever it sent: told why, then closed. */
	if (c->refuse)
		status = c->refuse;
	for (i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (status < 0 && h.op != SMEM_OP_HELLO)
		out_len = 0;	/* an error reply is a bare header (HELLO's carries our version) */
	if (noreply && !c->refuse)
		return true;
	if (!reply(b, c, (size_t)n >= sizeof(h) ? &h : NULL, status, out_len,
		   status == 0 ? send_fd : -1))
		return false;
	if (c->refuse) {
		smem__srv_conn_close(b, c);
		return false;
	}
	return true;
}

