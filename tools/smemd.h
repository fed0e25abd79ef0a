/* SPDX-License-Identifier: MIT */
/*
 * smemd's server, as its main() (smemd.c), the tests and the fuzz targets see it. The server
 * (smemd_loop.c, smemd_state.c, smemd_request.c, their shared state in smemd_server.h) is
 * smemd's alone: libsmem holds no server code, and an auto-starting client execs smemd
 * (src/broker_autostart.c). The wire both sides speak is src/proto.h.
 */
#ifndef SMEM_SMEMD_H
#define SMEM_SMEMD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct smem__broker_config {
	int listen_fd;			/* from smem__broker_listen() or socket activation */
	const char *path;		/* socket path to remove on exit if still ours; NULL */
	int idle_exit_s;		/* exit after this long with no connection and no name; 0 never */
	long group;			/* >= 0: gid given to names, whose default mode is 0660 */
	uint32_t max_names;		/* per uid; 0: 4096 */
	uint64_t max_bytes;		/* per uid; 0: 64 GiB */
	uint32_t max_conns;		/* per uid; 0: 256 */
	uint32_t max_holds;		/* per uid; 0: 4096 */
	int grace_ms;			/* after start, plain CREATEs get -EAGAIN this long; 0 none */
	bool verbose;			/* log requests to stderr */
	bool fdstore;			/* keep persistent names in the service manager's fd store */
	int nstored;			/* fds taken back from the fd store (LISTEN_FDNAMES) */
	const int *stored_fds;		/* ... their numbers, consumed by smem__broker_serve() */
	char *const *stored_names;	/* ... and their names */
};

/*
 * Whether @fdname (an entry of LISTEN_FDNAMES) names an fd smemd put in the service
 * manager's fd store ("smemd-store.<id>.data" or ".meta", or anything else beginning
 * "smemd-store.": a garbled entry of ours is still ours to reject), as opposed to a socket to
 * listen on (systemd names that one after its unit, "smemd.socket").
 */
bool smem__srv_store_name_ours(const char *fdname);

/* Run the broker's event loop until STOP, SIGTERM/SIGINT or idle exit. 0 or a negative errno. */
int smem__broker_serve(const struct smem__broker_config *cfg);

/*
 * The broker's request path without its event loop, for the fuzz targets and tests: a state
 * with no listener, connections adopted from connected SOCK_SEQPACKET sockets with the
 * credentials given (instead of SO_PEERCRED), and one message handled per step, answered on
 * the same socket as the loop would. Not thread-safe; @cfg must outlive the state.
 */
struct smem__broker;
struct smem__broker *smem__broker_new(const struct smem__broker_config *cfg);
/* Take @fd (closed by the broker from now on) as a client with @uid/@gid. 0 or -EINVAL. */
int smem__broker_adopt(struct smem__broker *b, int fd, uid_t uid, gid_t gid);
/*
 * Handle one message waiting on the adopted socket @fd. Returns 1 (handled, still
 * connected), 0 (nothing to read), -ENOTCONN (the broker closed the connection, or @fd was
 * never adopted).
 */
int smem__broker_step(struct smem__broker *b, int fd);
/*
 * Wait until the adopted socket @fd has something for a step (a message, or its peer's
 * hang-up), up to @timeout_ms (-1: forever), as the loop's epoll_wait would. A peer's close()
 * reaches the broker only when the kernel releases the peer's socket, which another process
 * holding a reference to it for a moment can delay: wait before expecting a step to see it.
 * Returns 1 (something to handle), 0 (timed out) or -ENOTCONN (@fd is not adopted).
 */
int smem__broker_wait(struct smem__broker *b, int fd, int timeout_ms);
/* Names in the table. */
unsigned smem__broker_names(const struct smem__broker *b);
/* Per-uid records the broker keeps (a uid with no name, connection or hold has none). */
unsigned smem__broker_uids(const struct smem__broker *b);
/* Close every connection and name, as the loop does on exit. NULL is ignored. */
void smem__broker_free(struct smem__broker *b);

#endif
