/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the broker's message decoder and request handling, fds included.
 *
 * One input is a little script run against a fresh broker state (smem__broker_new) with four
 * client connections, each a real SOCK_SEQPACKET socketpair adopted with made-up credentials:
 *
 *   conn 0: uid 1000 gid 1000    conn 1: uid 1000 gid 1000 (the same user again)
 *   conn 2: uid 1001 gid 1000    conn 3: uid 0 (root)
 *
 *   byte 0            config: bits 0-2 max_names (0: default, else 1..7), bit 3 --group 1000,
 *                     bits 4-5 max_bytes (default, 8 KiB, 64 KiB, 1 MiB), bits 6-7: 0 nothing
 *                     more, 1 max_holds 4, 2 max_conns 1 (conn 1, uid 1000 again, is over
 *                     the cap: answered -EDQUOT and closed, then reconnected), 3 a grace
 *                     period that outlasts the input (plain CREATEs get -EAGAIN)
 *   then records      ctl (1 byte), len (2 bytes, little-endian), len bytes of message
 *
 *   ctl bits 0-1      the connection that sends
 *   ctl bits 2-4      what travels with it (SCM_RIGHTS), from fds the harness makes:
 *                     0 nothing, 1 a sealed memfd of (1 + sel) pages (sel 7: the previous one
 *                     again, so that re-registration of the same inode is reachable), 2 an
 *                     unsealed memfd, 3 a pipe, 4 2 + sel copies of one sealed memfd (over 8:
 *                     MSG_CTRUNC), 5 a read-only description of a sealed memfd (sel 7: the
 *                     last fd a reply carried), 6 a sealed memfd of (sel & 3) * 2048 bytes
 *                     with inode mode 0666, owned by the next connection's uid if sel & 4
 *                     (a forged owner, an inode wider than its name), 7 no message: the
 *                     connection hangs up and a new one takes its place
 *                     Sealed memfds other than kind 6 belong to the sender's uid (st_uid, as
 *                     the broker checks) with inode mode 0600, when the harness runs as root.
 *   ctl bits 5-7      sel
 *
 * Checked after every message, not only "no crash": the connection stays open or the broker
 * closed it; an open connection got exactly one reply (none only for a RELEASE that may ask
 * for none); every reply is well formed (version, length, status <= 0, error replies bare,
 * at most one fd and only on a successful OPEN); after the input, freeing the broker leaves
 * exactly the fds that were open before (no fd leak on any path) and LeakSanitizer sees no
 * memory leak.
 */
#include <fcntl.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "smemd.h"
#include "proto.h"

#define NCONN	4

static bool trace;	/* FUZZ_TRACE=1: print every reply (to check what a seed reaches) */
#define MAX_MSG	(SMEM_PROTO_MAX_REQ + 256)	/* a bit over the limit: -EMSGSIZE paths */

static const uid_t conn_uid[NCONN] = { 1000, 1000, 1001, 0 };
static const gid_t conn_gid[NCONN] = { 1000, 1000, 1000, 0 };

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_broker: check failed at line %d: %s\n", __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		abort();
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

struct state {
	struct smem__broker *b;
	int client[NCONN];	/* our end; the broker owns the other */
	int server[NCONN];	/* the broker's end (a number only, for step) */
	int last_memfd;		/* previous sealed memfd sent (kind 1) */
	int last_rx;		/* last fd a reply carried */
	struct smem_msg_hdr req;	/* the request's header (zero if shorter) */
	int last_status;		/* of the last reply drained */
};

static void connect_one(struct state *s, int i)
{
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(smem__broker_adopt(s->b, sv[1], conn_uid[i], conn_gid[i]) == 0);
	s->client[i] = sv[0];
	s->server[i] = sv[1];
}

static void replace_fd(int *slot, int fd)
{
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
}

/* A sealed memfd of @size bytes owned by @uid (when we may) with inode mode @mode. */
static int sealed_memfd(size_t size, uid_t uid, mode_t mode)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)size) == 0);
	CHECK(fchmod(fd, mode) == 0);
	if (geteuid() == 0)
		CHECK(fchown(fd, uid, uid) == 0);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
	return fd;
}

/* The fds that go with a message (ours to close after sending). Returns how many. */
static int make_fds(struct state *s, unsigned ci, unsigned kind, unsigned sel, int *fds)
{
	uid_t uid = conn_uid[ci];

	char path[64];
	int i, n, p[2];

	switch (kind) {
	case 1:
		if (sel == 7 && s->last_memfd >= 0) {
			fds[0] = dup(s->last_memfd);
		} else {
			fds[0] = sealed_memfd((size_t)(1 + sel) * 4096, uid, 0600);
			replace_fd(&s->last_memfd, dup(fds[0]));
		}
		return 1;
	case 2:
		fds[0] = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		CHECK(fds[0] >= 0 && ftruncate(fds[0], (off_t)(1 + sel) * 4096) == 0);
		return 1;
	case 3:
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		close(p[1]);
		fds[0] = p[0];
		return 1;
	case 4:
		n = 2 + (int)sel;
		fds[0] = sealed_memfd(8192, uid, 0600);
		for (i = 1; i < n; i++)
			fds[i] = dup(fds[0]);
		return n;
	case 5:
		if (sel == 7 && s->last_rx >= 0) {
			fds[0] = dup(s->last_rx);
			return 1;
		}
		i = sealed_memfd((size_t)(1 + sel) * 4096, uid, 0600);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		fds[0] = open(path, O_RDONLY | O_CLOEXEC);
		close(i);
		CHECK(fds[0] >= 0);
		return 1;
	case 6:
		fds[0] = sealed_memfd((size_t)(sel & 3) * 2048,
				      (sel & 4) ? conn_uid[(ci + 1) % NCONN] : uid, 0666);
		return 1;
	default:
		return 0;
	}
}

static void send_msg(int sock, const uint8_t *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(16 * sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	/* A zero-length datagram with no fds is a valid thing for a peer to send. */
	CHECK(sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len);
}

/* Read every reply waiting on @sock, check each, close the fds they carry. Returns the count. */
static int drain(struct state *s, int sock)
{
	static _Alignas(8) uint8_t rx[SMEM_PROTO_MAX_REPLY + 64];
	int replies = 0;

	for (;;) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(8 * sizeof(int))];
		} cm;
		struct iovec iov = { .iov_base = rx, .iov_len = sizeof(rx) };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
		};
		struct smem_msg_hdr h;
		struct cmsghdr *c;
		int nfds = 0, i;
		ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0)
			return replies;
		if (n == 0 && msg.msg_controllen == 0)
			return replies;		/* hung up */
		for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (i = 0; i < (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof(fd));
				replace_fd(&s->last_rx, fd);
				nfds++;
			}
		}
		replies++;
		CHECK(!(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)));
		CHECK(n >= (ssize_t)sizeof(h));
		memcpy(&h, rx, sizeof(h));
		CHECK(h.version == SMEM_PROTO_VERSION);
		CHECK(h.length == (size_t)n - sizeof(h));
		CHECK(h.status <= 0);
		s->last_status = h.status;
		/* Replies echo the request's op and seq (0 for one too short to have them). */
		CHECK(h.op == s->req.op && h.seq == s->req.seq);
		if (trace)
			fprintf(stderr, "  reply op %u seq %u status %d len %u fds %d\n", h.op,
				h.seq, h.status, h.length, nfds);
		if (h.status < 0 && h.op != SMEM_OP_HELLO)
			CHECK(h.length == 0);
		CHECK(nfds <= 1);
		if (nfds)
			CHECK(h.op == SMEM_OP_OPEN && h.status == 0);
		if (h.op == SMEM_OP_OPEN && h.status == 0)
			CHECK(nfds == 1 && h.length >= sizeof(struct smem_msg_entry));
	}
}

/* Could this message be a RELEASE that asks for no reply? (The broker alone decides.) */
static bool maybe_noreply(const uint8_t *m, size_t len)
{
	struct smem_msg_hdr h;
	struct smem_msg_release r;

	if (len != sizeof(h) + sizeof(r))
		return false;
	memcpy(&h, m, sizeof(h));
	memcpy(&r, m + sizeof(h), sizeof(r));
	return h.op == SMEM_OP_RELEASE && (r.flags & SMEM_RELEASE_NOREPLY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t max_bytes[4] = { 0, 8192, 65536, 1u << 20 };
	struct smem__broker_config cfg = { .listen_fd = -1, .group = -1 };
	struct state s = { .last_memfd = -1, .last_rx = -1 };
	int before = count_fds(), i;
	size_t off = 1;

	if (size < 1)
		return 0;
	trace = getenv("FUZZ_TRACE") != NULL;
	cfg.max_names = data[0] & 7;
	cfg.group = (data[0] & 8) ? 1000 : -1;
	cfg.max_bytes = max_bytes[(data[0] >> 4) & 3];
	switch (data[0] >> 6) {
	case 1: cfg.max_holds = 4; break;
	case 2: cfg.max_conns = 1; break;
	case 3: cfg.grace_ms = 3600 * 1000; break;
	default: break;
	}
	s.b = smem__broker_new(&cfg);
	CHECK(s.b);
	for (i = 0; i < NCONN; i++)
		connect_one(&s, i);

	while (off + 3 <= size) {
		unsigned ctl = data[off], ci = ctl & 3, kind = (ctl >> 2) & 7, sel = ctl >> 5;
		size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		const uint8_t *m = data + off + 3;
		int fds[16], nfds, step, r, k;

		off += 3;
		if (len > size - off)
			len = size - off;
		if (len > MAX_MSG)
			len = MAX_MSG;
		off += len;
		if (kind == 7) {
			/*
			 * Hang up: the broker must release this connection's holds. Our close()
			 * reaches the broker's end once the kernel releases the socket, which
			 * another process reading /proc/PID/fd can delay: wait for it as the
			 * loop's epoll would (a step at once may find nothing yet). Nothing is
			 * queued, so the first step is the hang-up.
			 */
			close(s.client[ci]);
			CHECK(smem__broker_wait(s.b, s.server[ci], 5000) == 1);
			CHECK(smem__broker_step(s.b, s.server[ci]) == -ENOTCONN);
			connect_one(&s, (int)ci);
			continue;
		}
		memset(&s.req, 0, sizeof(s.req));
		if (len >= sizeof(s.req))
			memcpy(&s.req, m, sizeof(s.req));
		nfds = make_fds(&s, ci, kind, sel, fds);
		send_msg(s.client[ci], m, len, fds, nfds);
		for (k = 0; k < nfds; k++)
			close(fds[k]);
		step = smem__broker_step(s.b, s.server[ci]);
		CHECK(step == 1 || step == -ENOTCONN);
		r = drain(&s, s.client[ci]);
		if (step == 1) {
			/* Nothing left unread, and exactly one answer (or none for NOREPLY). */
			CHECK(smem__broker_step(s.b, s.server[ci]) == 0);
			CHECK(r == 1 || (r == 0 && maybe_noreply(m, len)));
		} else {
			/*
			 * Closed: only a connection over its uid's cap, after answering -EDQUOT;
			 * never because it could not send, which it never should here.
			 */
			CHECK(r == 1 && s.last_status == -EDQUOT);
			close(s.client[ci]);
			connect_one(&s, (int)ci);
		}
	}

	smem__broker_free(s.b);
	for (i = 0; i < NCONN; i++)
		close(s.client[i]);
	if (s.last_memfd >= 0)
		close(s.last_memfd);
	if (s.last_rx >= 0)
		close(s.last_rx);
	CHECK(count_fds() == before);
	return 0;
}
