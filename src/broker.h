/* SPDX-License-Identifier: MIT */
/*
 * What the broker's source files share among themselves and nobody else: socket plumbing,
 * auto-start, and the client's half of the wire (docs/PROTOCOL.md). The interfaces other
 * modules use (smem__broker_create/open/release, addresses, the server, administration) are in
 * internal.h.
 *
 *   broker_addr.c       addresses, the default directory, connect, listen
 *   broker_autostart.c  starting a broker when none answers
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

/* ---- auto-start (broker_autostart.c) --------------------------------------------------- */

/*
 * Connect to @a, starting a broker if none answers and @may_start (and $SMEM_NO_AUTOSTART is
 * not "1"). fd, or -EACCES or -ECONNREFUSED.
 */
int smem__broker_connect(const struct smem__addr *a, bool may_start);

/* ---- the wire (broker_wire.c) ---------------------------------------------------------- */

/* One request and what to do with its reply. */
struct smem__req {
	uint16_t op;
	const void *p1, *p2;		/* payload in two pieces (fixed part, name) */
	size_t l1, l2;
	int send_fd;			/* -1: none */
	bool noreply;
	void *rbuf;			/* reply payload */
	size_t rcap, rlen;
	int *recv_fd;			/* NULL: no fd expected */
};

/* Room for one entry record in a reply (STAT, OPEN, CREATE). */
#define SMEM__ENTRY_REPLY_MAX	(sizeof(struct smem_msg_entry) + SMEM_NAME_MAX + 8)

/*
 * One round trip on @fd. Returns the broker's status; *broken is set (and -ECONNREFUSED
 * returned) when the connection failed, so that the caller reconnects.
 */
int smem__broker_xfer(int fd, uint32_t *seqp, struct smem__req *r, bool *broken);

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
