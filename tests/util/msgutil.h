/* SPDX-License-Identifier: MIT */
/* Raw socket helpers for tests and harnesses that speak the broker's wire by hand. */
#ifndef SMEM_MSGUTIL_H
#define SMEM_MSGUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Send @len bytes of @buf as one message on @sock, with @fd attached (SCM_RIGHTS) unless it
 * is negative. MSG_NOSIGNAL. Returns what sendmsg(2) returns (errno set on -1).
 */
ssize_t t_send_fd(int sock, const void *buf, size_t len, int fd);

/*
 * The calls below never assert, so that children running as another uid can use them: they
 * return the broker's status, or T_RAW_GONE when the broker closed the connection (or the
 * exchange failed) instead of answering.
 */
#define T_RAW_GONE	(-100000)

/* A raw SOCK_SEQPACKET connection to the broker at $SMEM_BROKER (no auto-start); -errno. */
int t_raw_connect(void);
/* Send one request: header, @p1/@l1, @p2/@l2, @send_fd unless -1. 0 or T_RAW_GONE. */
int t_raw_send(int s, uint16_t op, uint32_t seq, const void *p1, size_t l1, const void *p2,
	       size_t l2, int send_fd);
/* Receive one reply: its status; *recv_fd (when not NULL) gets its fd or -1. */
int t_raw_recv(int s, int *recv_fd);
/* One request (header, @p1/@l1, @p2/@l2, @send_fd or -1) and its reply's status. *recv_fd
 * (when not NULL) gets the fd the reply carried, or -1. */
int t_raw_xchg(int s, uint16_t op, uint32_t seq, const void *p1, size_t l1, const void *p2,
	       size_t l2, int send_fd, int *recv_fd);
/* HELLO. */
int t_raw_hello(int s);
/* CREATE @name for the sealed memfd @fd with CREATE @flags and the claimed @uid/@gid/@mode. */
int t_raw_create(int s, const char *name, int fd, uint32_t flags, uint32_t uid, uint32_t gid,
		 uint32_t mode);
/* OPEN (@flags: SMEM_OPEN_*) or UNLINK of @name; *recv_fd as for t_raw_xchg. */
int t_raw_named(int s, uint16_t op, const char *name, uint32_t flags, int *recv_fd);
/* A sealed memfd of @size bytes whose inode has @mode. -errno on failure. */
int t_sealed_memfd(size_t size, unsigned mode);

#endif
