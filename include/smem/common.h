/* SPDX-License-Identifier: MIT */
/*
 * smem: conventions shared by every object.
 *
 * Every function returns 0 (or a non-negative count) on success and a negative errno on failure:
 *   -EINVAL      bad argument                 -ERANGE     offset or index outside the object
 *   -ENOENT      no such name                 -EEXIST     name taken
 *   -EACCES      denied by the name's mode    -ETIMEDOUT  timeout expired
 *   -EMSGSIZE    message larger than a node or than the caller's buffer
 *   -ESHUTDOWN   the owner closed the object  -EPROTO     shared memory failed validation
 *   -EOWNERDEAD  lock acquired, its previous holder died (data may be inconsistent)
 *   -ECONNRESET  the peer process died        -ENOSYS     kernel feature missing
 *   -ECONNREFUSED no broker answers: none may be started at that address (only in a directory
 *                that is the caller's alone), auto-start is off or failed, or a supervisor did
 *                not bring one back within a second
 *   -EACCES      the broker refused the caller by the name's mode (or, for an unlink, because
 *                the caller does not own the name): the broker answered, the name exists
 *   -EPERM       the broker may not be used at all, and nothing was sent: its socket, or a
 *                directory above it, does not let the caller connect (connect(2) said
 *                EACCES), a default socket directory is not the caller's alone, or the broker
 *                answering runs as a uid the caller does not trust (not the caller's, not
 *                root's, not the one first seen at that path)
 *   -EUSERS      all participant slots of an object are taken
 *   -EMEDIUMTYPE the name holds another kind of object (a ring opened as a buffer, ...)
 * smem_last_error() tells what failed, at which broker address and why, after any failure
 * that involved the broker (these and -ENOENT, -EEXIST, -EDQUOT, -EPROTO from it).
 * smem_strerror() names them. Out-parameters are left untouched on failure.
 *
 * Timeouts are "int timeout_ms" as in poll(2): -1 waits forever, 0 tries once.
 * Every fd the library creates is close-on-exec.
 */
#ifndef SMEM_COMMON_H
#define SMEM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what is declared here is its ABI. */
#pragma GCC visibility push(default)

#define SMEM_VERSION_MAJOR 0
#define SMEM_VERSION_MINOR 1

/* Longest name, in bytes, without the terminating NUL. Names are 1..255 bytes, no NUL. */
#define SMEM_NAME_MAX 255

/* struct smem_opts flags. */
#define SMEM_RDONLY	(1u << 0)	/* open: map read-only (PROT_READ) */
#define SMEM_PERSIST	(1u << 1)	/* create: the name outlives its holders until smem_unlink() */
#define SMEM_RAW	(1u << 2)	/* buffer/array: plain read/write calls take no lock */

/*
 * Options for create and open. Zero-initialise, then set what you need; a zeroed struct (or
 * NULL) means the defaults. Fields added later go into the reserved space, so a zeroed struct
 * compiled against an older header keeps meaning "defaults".
 */
struct smem_opts {
	const char *broker;	/* broker address (path, or "@name" for abstract); NULL: default */
	uint32_t mode;		/* create: permission bits for the name; 0 means 0600 */
	uint32_t flags;		/* SMEM_* flags above */
	int32_t timeout_ms;	/* buffer/array: default lock timeout of plain calls; 0 means 100 */
	uint32_t reserved[7];
};

/*
 * Name of a (negative or positive) errno value as returned by smem: a static string.
 * Thread-safe.
 */
const char *smem_strerror(int err);

/*
 * The detail of the calling thread's last failure that involved the broker, for people: what
 * failed, the broker's address and why, e.g. "cannot connect to broker at /run/smem/broker.sock:
 * permission denied (socket)" or "broker at /tmp/smem-0/broker.sock refused name 'frames':
 * its mode does not let uid 65534 open it read-write (-EACCES)". A thread-local string, valid
 * until the thread's next failing smem call; "" if the thread has had none. Success does not
 * clear it: read it right after the call that failed. Never fails, never blocks. Thread-safe.
 */
const char *smem_last_error(void);

/*
 * Remove a name from the broker, whatever its holders. Mappings already made stay valid;
 * later opens get -ENOENT. Returns 0, -ENOENT, -EACCES (not the owner), -EINVAL.
 * Blocks on one broker round trip. Thread-safe.
 */
int smem_unlink(const char *name, const struct smem_opts *opts);

/*
 * The broker address @opts (or NULL) leads to: opts->broker, else $SMEM_BROKER, else
 * $XDG_RUNTIME_DIR/smem/broker.sock, else /tmp/smem-<uid>/broker.sock; "@name" for an abstract
 * one. Written with its NUL into @buf (@len bytes), for error messages. Returns its length,
 * -EINVAL (an address too long for a socket), -ERANGE (@buf too small). Never blocks.
 * Thread-safe.
 */
int smem_broker_address(const struct smem_opts *opts, char *buf, size_t len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
