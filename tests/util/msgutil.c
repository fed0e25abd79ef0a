/* SPDX-License-Identifier: MIT */
/* Raw socket helpers (msgutil.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"
#include "util/msgutil.h"

ssize_t t_send_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

int t_raw_connect(void)
{
	struct smem__addr a;
	int s, err;

	err = smem__addr_resolve(NULL, &a);
	if (err)
		return err;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a.sun, a.len) < 0) {
		err = -errno;
		close(s);
		return err;
	}
	return s;
}

int t_raw_send(int s, uint16_t op, uint32_t seq, const void *p1, size_t l1, const void *p2,
	       size_t l2, int send_fd)
{
	_Alignas(8) unsigned char buf[SMEM_PROTO_MAX_REQ];
	struct smem_msg_hdr h = { .version = SMEM_PROTO_VERSION, .op = op,
				  .length = (uint32_t)(l1 + l2), .seq = seq };

	if (sizeof(h) + l1 + l2 > sizeof(buf))
		return T_RAW_GONE;
	memcpy(buf, &h, sizeof(h));
	if (l1)
		memcpy(buf + sizeof(h), p1, l1);
	if (l2)
		memcpy(buf + sizeof(h) + l1, p2, l2);
	return t_send_fd(s, buf, sizeof(h) + l1 + l2, send_fd) < 0 ? T_RAW_GONE : 0;
}

int t_raw_recv(int s, int *recv_fd)
{
	_Alignas(8) unsigned char buf[1024];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			      .msg_controllen = sizeof(cm.buf) };
	struct smem_msg_hdr h;
	struct cmsghdr *c;
	ssize_t n;

	if (recv_fd)
		*recv_fd = -1;
	n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
	if (n < (ssize_t)sizeof(h))
		return T_RAW_GONE;
	memcpy(&h, buf, sizeof(h));
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		int fd;

		memcpy(&fd, CMSG_DATA(c), sizeof(int));
		if (recv_fd)
			*recv_fd = fd;
		else
			close(fd);
	}
	return h.status;
}

int t_raw_xchg(int s, uint16_t op, uint32_t seq, const void *p1, size_t l1, const void *p2,
	       size_t l2, int send_fd, int *recv_fd)
{
	if (recv_fd)
		*recv_fd = -1;
	if (t_raw_send(s, op, seq, p1, l1, p2, l2, send_fd))
		return T_RAW_GONE;
	return t_raw_recv(s, recv_fd);
}

int t_raw_hello(int s)
{
	struct smem_msg_hello m = { .version = SMEM_PROTO_VERSION };

	return t_raw_xchg(s, SMEM_OP_HELLO, 1, &m, sizeof(m), NULL, 0, -1, NULL);
}

int t_raw_create(int s, const char *name, int fd, uint32_t flags, uint32_t uid, uint32_t gid,
		 uint32_t mode)
{
	struct smem_msg_create m = { .kind = SMEM_KIND_REGION, .mode = mode, .flags = flags,
				     .uid = uid, .gid = gid, .name_len = (uint16_t)strlen(name) };

	return t_raw_xchg(s, SMEM_OP_CREATE, 2, &m, sizeof(m), name, m.name_len, fd, NULL);
}

int t_raw_named(int s, uint16_t op, const char *name, uint32_t flags, int *recv_fd)
{
	struct smem_msg_name m = { .flags = flags, .name_len = (uint16_t)strlen(name) };

	return t_raw_xchg(s, op, 3, &m, sizeof(m), name, m.name_len, -1, recv_fd);
}

int t_sealed_memfd(size_t size, unsigned mode)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING), err;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || fchmod(fd, mode) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}
