/* SPDX-License-Identifier: MIT */
/*
 * The client's half of the broker wire (proto.h, docs/PROTOCOL.md): one request and its reply
 * on a connection, fds passed with SCM_RIGHTS, and the entry records replies carry. Used by
 * the shared connections (broker_client.c) and the one-shot administration calls
 * (broker_admin.c); the fd-passing helpers serve the broker too. See broker.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"

static const char *op_name(uint16_t op)
{
	switch (op) {
	case SMEM_OP_HELLO:	return "handshake";
	case SMEM_OP_CREATE:	return "create";
	case SMEM_OP_OPEN:	return "open";
	case SMEM_OP_RELEASE:	return "release";
	case SMEM_OP_UNLINK:	return "unlink";
	case SMEM_OP_LIST:	return "list";
	case SMEM_OP_STAT:	return "stat";
	case SMEM_OP_STOP:	return "stop";
	default:		return "request";
	}
}

/* See broker.h. */
int smem__broker_error(const struct smem__addr *a, const struct smem__req *r, int err)
{
	const char *op = op_name(r->op), *at = a->text;
	int n = r->op == SMEM_OP_HELLO ? 0 : (int)r->l2;
	const char *name = n ? r->p2 : "";
	uint32_t flags = 0;

	if (r->op == SMEM_OP_OPEN && r->p1 && r->l1 >= sizeof(struct smem_msg_name))
		memcpy(&flags, r->p1, sizeof(flags));	/* struct smem_msg_name.flags */
	switch (err) {
	case -ENOENT:
		return smem__error(err, "no name '%.*s' at broker %s (%s)", n, name, at, op);
	case -EEXIST:
		return smem__error(err, "name '%.*s' already exists at broker %s", n, name, at);
	case -EACCES:
		if (r->op == SMEM_OP_UNLINK)
			return smem__error(err, "broker at %s refused to unlink name '%.*s': only its "
					   "owner or root may (-EACCES)", at, n, name);
		return smem__error(err, "broker at %s refused name '%.*s': its mode does not let "
				   "uid %u %s it%s (-EACCES)", at, n, name, (unsigned)geteuid(), op,
				   r->op != SMEM_OP_OPEN ? "" :
				   (flags & SMEM_OPEN_RDONLY) ? " read-only" : " read-write");
	case -EPERM:
		return smem__error(err, "broker at %s refused %s%s%.*s%s: not permitted to uid %u%s",
				   at, op, n ? " of '" : "", n, name, n ? "'" : "",
				   (unsigned)geteuid(), r->op == SMEM_OP_STOP ?
				   " (only the broker's own uid or root may stop it)" : "");
	case -EDQUOT:
		return smem__error(err, "broker at %s refused %s%s%.*s%s: uid %u is at one of its "
				   "per-uid limits (names, bytes, connections or holds: smemd --max-*)",
				   at, op, n ? " of '" : "", n, name, n ? "'" : "", (unsigned)geteuid());
	case -ECONNREFUSED:
		return smem__error(err, "broker at %s closed the connection during %s%s%.*s%s", at,
				   op, n ? " of '" : "", n, name, n ? "'" : "");
	case -EPROTO:
		return smem__error(err, "broker at %s: protocol error in %s%s%.*s%s (a broker of "
				   "another version, or not a broker)", at, op, n ? " of '" : "", n,
				   name, n ? "'" : "");
	default:
		return smem__error(err, "broker at %s: %s%s%.*s%s: %s", at, op, n ? " of '" : "", n,
				   name, n ? "'" : "", smem_strerror(err));
	}
}

void smem__cmsg_put_fd(struct msghdr *msg, void *cbuf, int fd)
{
	struct cmsghdr *cmsg;

	memset(cbuf, 0, CMSG_SPACE(sizeof(int)));
	msg->msg_control = cbuf;
	msg->msg_controllen = CMSG_SPACE(sizeof(int));
	cmsg = CMSG_FIRSTHDR(msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
}

int smem__cmsg_take_fds(struct msghdr *msg, int *fds, int max)
{
	struct cmsghdr *cmsg;
	int nfds = 0, i;

	for (cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; i < (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int)); i++)
			if (nfds < max)
				memcpy(&fds[nfds++], CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
	}
	return nfds;
}

/* Broker-side protocol errors are our bug or a foreign broker: -EPROTO to callers. */
static int map_status(int32_t st)
{
	switch (st) {
	case -EBADMSG: case -EOPNOTSUPP: case -EPROTONOSUPPORT: case -EMSGSIZE:
		return -EPROTO;
	default:
		return st > 0 ? -EPROTO : st;
	}
}

/* One round trip on @fd (see broker.h). */
int smem__broker_xfer(int fd, uint32_t *seqp, struct smem__req *r, bool *broken)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct smem_msg_hdr h = {
		.version = SMEM_PROTO_VERSION, .op = r->op, .length = (uint32_t)(r->l1 + r->l2),
		.seq = ++*seqp,
	};
	struct iovec iov[3] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)r->p1, .iov_len = r->l1 },
		{ .iov_base = (void *)r->p2, .iov_len = r->l2 },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
	unsigned char small[512];
	unsigned char *buf;
	size_t cap;
	ssize_t n;
	int st;

	*broken = false;
	if (r->send_fd >= 0)
		smem__cmsg_put_fd(&msg, cm.buf, r->send_fd);
	while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL | (r->dontwait ? MSG_DONTWAIT : 0))) < 0 &&
	       errno == EINTR)
		;
	if (n < 0 && r->dontwait && errno == EAGAIN)
		return -EAGAIN;	/* nothing was sent: the connection is as it was */
	if (n < 0) {
		*broken = true;
		return -ECONNREFUSED;
	}
	if (r->noreply)
		return 0;

	cap = sizeof(struct smem_msg_hdr) + r->rcap;
	buf = cap <= sizeof(small) ? small : malloc(cap);
	if (!buf) {
		*broken = true;	/* the reply would be left unread: start afresh */
		return -ENOMEM;
	}
	for (;;) {
		int fds[4], nfds = 0, i;

		iov[0].iov_base = buf;
		iov[0].iov_len = cap;
		msg = (struct msghdr){ .msg_iov = iov, .msg_iovlen = 1,
				       .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n >= 0)
			nfds = smem__cmsg_take_fds(&msg, fds, 4);
		if (n <= 0) {
			for (i = 0; i < nfds; i++)
				close(fds[i]);
			*broken = true;
			st = -ECONNREFUSED;
			goto done;
		}
		memcpy(&h, buf, n >= (ssize_t)sizeof(h) ? sizeof(h) : 0);
		if (n < (ssize_t)sizeof(h) || h.seq != *seqp) {
			/* Not ours (a stale reply): drop it with whatever it carried. */
			for (i = 0; i < nfds; i++)
				close(fds[i]);
			if (n < (ssize_t)sizeof(h)) {
				*broken = true;
				st = -EPROTO;
				goto done;
			}
			continue;
		}
		st = map_status(h.status);
		if (h.version != SMEM_PROTO_VERSION || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
		    h.length != (size_t)n - sizeof(h))
			st = -EPROTO;
		if (st == 0 && r->recv_fd && nfds != 1)
			st = -EPROTO;
		if (st == 0 && !r->recv_fd && nfds != 0)
			st = -EPROTO;
		if (st == 0 && r->recv_fd) {
			*r->recv_fd = fds[0];
			nfds = 0;
		}
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		if (st == 0) {
			r->rlen = (size_t)n - sizeof(h);
			if (r->rbuf)
				memcpy(r->rbuf, buf + sizeof(h), r->rlen);
		}
		goto done;
	}
done:
	if (buf != small)
		free(buf);
	return st;
}

int smem__broker_greet(int fd, uint32_t *seq, struct smem__broker_info *info)
{
	struct smem_msg_hello m = { .version = SMEM_PROTO_VERSION };
	struct smem_msg_hello_reply rep;
	struct smem__req r = { .op = SMEM_OP_HELLO, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
			       .rbuf = &rep, .rcap = sizeof(rep) };
	bool broken;
	int err;

	err = smem__broker_xfer(fd, seq, &r, &broken);
	if (err)
		return err;
	if (r.rlen != sizeof(rep) || rep.version != SMEM_PROTO_VERSION)
		return -EPROTO;
	if (info) {
		info->version = rep.version;
		info->pid = rep.pid;
		info->uid = rep.uid;
	}
	return 0;
}

int smem__entry_parse(const unsigned char *p, size_t len, struct smem__entry_info *out,
		       size_t *used)
{
	struct smem_msg_entry e;
	size_t n;

	if (len < sizeof(e))
		return -EPROTO;
	memcpy(&e, p, sizeof(e));
	if (e.name_len == 0 || e.name_len > SMEM_NAME_MAX)
		return -EPROTO;
	n = smem_msg_entry_size(e.name_len);
	if (n > len)
		return -EPROTO;
	memset(out, 0, sizeof(*out));
	out->id = e.id;
	out->size = e.size;
	out->ctime_ns = e.ctime_ns;
	out->kind = e.kind;
	out->mode = e.mode;
	out->uid = e.uid;
	out->gid = e.gid;
	out->holders = e.holders;
	out->flags = e.flags;
	memcpy(out->name, p + sizeof(e), e.name_len);
	out->name[e.name_len] = 0;
	if (used)
		*used = n;
	return 0;
}
