/* SPDX-License-Identifier: MIT */
/*
 * What the broker's source files share among themselves and nobody else: socket plumbing,
 * auto-start, and the client's half of the wire (docs/PROTOCOL.md). The interfaces other
 * modules use (smem__broker_create/open/release, addresses, the server, administration) are in
 * internal.h.
 *
 *   broker_addr.c       addresses, the default directory, private addresses, connect, listen
 *   broker_peer.c       whether the broker that answers may be trusted (SO_PEERCRED, pins)
 *   broker_autostart.c  connecting: starting a broker, or waiting for a supervisor's
 *   broker_wire.c       one request/reply round trip, fd passing, entry records
 *   broker_client.c     shared connections, holds, the restart watcher thread
 *   broker_admin.c      one-shot administration calls (smemctl)
 * The server is smemd's (tools/smemd.h); the library only starts it (broker_autostart.c).
 */
#ifndef SMEM_BROKER_H
#define SMEM_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "internal.h"
#include "proto.h"

/* A broker that does not answer for this long (seconds) is broken. */
#define SMEM__BROKER_IO_TIMEOUT_S	10

/* ---- addresses and sockets (broker_addr.c) --------------------------------------------- */

/* The directory part of a socket path @path ("." for a bare name) into @dir. */
void smem__path_dir(const char *path, char *dir, size_t len);

/*
 * A SOCK_SEQPACKET connection to @a (CLOEXEC, send and receive timeouts of
 * SMEM__BROKER_IO_TIMEOUT_S). fd or -errno from socket(2)/connect(2).
 */
int smem__sock_connect(const struct smem__addr *a);

/*
 * Whether a broker may be started at @a: a path whose directory is owned by our effective uid
 * and grants group and others nothing (a default directory is created first). 1 yes, 0 no,
 * -EACCES: a default directory somebody else owns or may enter.
 */
int smem__addr_private(const struct smem__addr *a);

/* ---- the peer (broker_peer.c) ---------------------------------------------------------- */

/*
 * Whether the broker on @fd, freshly connected to @a, may be trusted: SO_PEERCRED names our
 * effective uid, root, or (path addresses only) the uid this process first found at @a.
 * 0 or -EPERM. Nothing has been sent on @fd; the caller closes it on -EPERM.
 */
int smem__broker_trust(int fd, const struct smem__addr *a);

/* ---- connecting (broker_autostart.c) --------------------------------------------------- */

/* How smem__broker_connect() may wait when nothing answers. */
#define SMEM__CONNECT_START	1u	/* start a broker at a private address */
#define SMEM__CONNECT_WAIT	2u	/* elsewhere, wait a little for a supervisor's broker */

/*
 * Connect to @a and check the peer (smem__broker_trust()). When nothing answers: with
 * SMEM__CONNECT_START at a private address (smem__addr_private()) start a broker, unless
 * $SMEM_NO_AUTOSTART is "1"; with SMEM__CONNECT_WAIT at any other address retry for up to
 * SMEM__SUPERVISOR_WAIT_MS. fd, or -ECONNREFUSED (nothing answers), -EPERM (the kernel
 * refused us the socket, a default directory is not ours alone, a stale socket could not be
 * removed, or a broker of a uid we do not trust answers: the broker is not ours to use; never
 * -EACCES, which is a name's mode). Every failure sets smem_last_error(), naming @a.
 */
int smem__broker_connect(const struct smem__addr *a, unsigned how);

/* How long a client waits for a supervisor to bring back a broker it may not start. */
#define SMEM__SUPERVISOR_WAIT_MS	1000

/* ---- the wire (broker_wire.c) ---------------------------------------------------------- */

/* One request and what to do with its reply. */
struct smem__req {
	uint16_t op;
	const void *p1, *p2;		/* payload in two pieces (fixed part, name) */
	size_t l1, l2;
	int send_fd;			/* -1: none */
	bool noreply;
	bool dontwait;			/* send without blocking: -EAGAIN when the socket is full */
	void *rbuf;			/* reply payload */
	size_t rcap, rlen;
	int *recv_fd;			/* NULL: no fd expected */
};

/* Room for one entry record in a reply (STAT, OPEN, CREATE). */
#define SMEM__ENTRY_REPLY_MAX	(sizeof(struct smem_msg_entry) + SMEM_NAME_MAX + 8)

/*
 * One round trip on @fd. Returns the broker's status; *broken is set (and -ECONNREFUSED
 * returned) when the connection failed, so that the caller reconnects. With r->dontwait
 * (noreply requests only), -EAGAIN when the socket has no room, the connection intact.
 */
int smem__broker_xfer(int fd, uint32_t *seqp, struct smem__req *r, bool *broken);

/*
 * Set the thread's smem_last_error() for status @err of request @r (its op, and its name in
 * p2/l2) at the broker @a, in words a person can act on. Returns @err.
 */
int smem__broker_error(const struct smem__addr *a, const struct smem__req *r, int err);

/* The HELLO handshake on a fresh connection; fills @info when not NULL. 0 or -errno. */
int smem__broker_greet(int fd, uint32_t *seq, struct smem__broker_info *info);

/*
 * Decode one entry record from @p (@len bytes); sets *used to its size when not NULL.
 * 0 or -EPROTO.
 */
int smem__entry_parse(const unsigned char *p, size_t len, struct smem__entry_info *out,
		      size_t *used);

/*
 * Attach @fd to @msg as SCM_RIGHTS, in @cbuf: CMSG_SPACE(sizeof(int)) bytes aligned for a
 * struct cmsghdr (a union with one, as the callers declare it).
 */
void smem__cmsg_put_fd(struct msghdr *msg, void *cbuf, int fd);

/*
 * Collect the fds a received @msg carries into @fds (at most @max; the control buffer is sized
 * so that no more can arrive). Returns how many: each is the caller's to close or keep.
 */
int smem__cmsg_take_fds(struct msghdr *msg, int *fds, int max);

#endif
