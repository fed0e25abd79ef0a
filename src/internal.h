/* SPDX-License-Identifier: MIT */
/*
 * Internal interfaces between the library's modules. Nothing here is exported: every symbol
 * is static or smem__-prefixed and hidden by -fvisibility=hidden and src/libsmem.map.
 *
 * Private headers in src/ follow one rule: a header of a module split over several files ends
 * in `_int.h` (ring_int.h, ring_core_int.h, rpc_int.h, rpc_proto_int.h), a header of a
 * one-file module or of a contract between modules is plain `<name>.h` (lock.h, blob.h,
 * wait.h, fork.h, layout.h, proto.h, broker.h); internal.h itself is the core every module
 * includes (region, liveness, broker client, errors). Every type, function (inline ones too)
 * and macro shared through any of them is smem__- or SMEM__-prefixed (SMEM__RPC_MAX_SLEEP_NS,
 * smem__ring_node_at()); the public handle types and the shared-memory and wire layouts of
 * docs/LAYOUT.md and docs/PROTOCOL.md, with their constants, keep their smem_/SMEM_ names.
 */
#ifndef SMEM_INTERNAL_H
#define SMEM_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <smem.h>
#include "fork.h"
#include "layout.h"

#define smem__likely(x)		__builtin_expect(!!(x), 1)
#define smem__unlikely(x)	__builtin_expect(!!(x), 0)
#define SMEM__ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- regions (region.c) --------------------------------------------------------------- */

/* Private to the process: everything here is a trusted copy, taken at create or open. */
struct smem_region {
	struct smem_region_hdr *hdr;	/* the mapping (header page first) */
	void *obj;			/* hdr + data_off */
	size_t obj_size;		/* private copy of data_size, validated at open */
	size_t map_size;		/* private copy of total_size */
	uint32_t kind;
	int fd;				/* the memfd (shared description); the hold's once there is one */
	bool owner;
	bool rdonly;
	unsigned fork_gen;		/* the process generation that made this handle (fork.h) */
	int live_fd;			/* private description holding our liveness lock; -1 */
	uint32_t live_id;		/* our owner id (gen << 8 | slot); 0 until joined */
	struct smem_region *live_next;	/* live.c's list of joined handles, for fork */
	struct smem_region *live_prev;
	struct smem__hold *hold;	/* our hold on the name at the broker */
	char name[SMEM_NAME_MAX + 1];
};

/*
 * Called by smem__region_create() on the zeroed object area before the header is published:
 * nobody else can see the region yet. Returns 0 or a negative errno (creation is undone).
 */
typedef int (*smem__init_fn)(void *obj, size_t obj_size, void *arg);

/*
 * Create a region of @kind whose object area is @obj_size bytes, run @init on it, publish the
 * header (magic last, release), and register the name. Returns 0 or a negative errno.
 */
int smem__region_create(const char *name, uint32_t kind, size_t obj_size, smem__init_fn init,
			void *arg, const struct smem_opts *opts, struct smem_region **ret);

/*
 * The same, adding @extra_seals (F_SEAL_FUTURE_WRITE: the caller's mapping is the last
 * writable one).
 */
int smem__region_create_sealed(const char *name, uint32_t kind, size_t obj_size,
			       smem__init_fn init, void *arg, const struct smem_opts *opts,
			       uint32_t extra_seals, struct smem_region **ret);

/*
 * Open @name, checking that it holds a @kind object (-EMEDIUMTYPE otherwise) and that its
 * header is sound (-EPROTO otherwise). The object area is the kind's to validate further.
 */
int smem__region_open(const char *name, uint32_t kind, const struct smem_opts *opts,
		      struct smem_region **ret);

/* Validate a mapped header against the fd's real size and seals. 0, -EMEDIUMTYPE, -EPROTO. */
int smem__region_validate(const struct smem_region_hdr *hdr, size_t file_size, uint32_t kind);

/*
 * Set the calling thread's smem_last_error() text (printf @fmt) and return @err, so that a
 * failure path reads `return smem__error(-EPERM, "...", ...)`. Every failure that involves the
 * broker sets it, naming the broker's address.
 */
int smem__error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "ring", "buffer", ... for SMEM_KIND_* (error.c); "unknown" for anything else. */
const char *smem__kind_name(uint32_t kind);

/* Check a name: 1..SMEM_NAME_MAX bytes. 0 or -EINVAL. */
int smem__name_check(const char *name);

/* Wake everybody sleeping on the region's shutdown word (and set it). Owner's close. */
void smem__region_shutdown(struct smem_region *r);

/* ---- liveness of participants (live.c) ------------------------------------------------- */

/*
 * Claim a participant slot for this handle (idempotent): sets r->live_id. Returns 0, -EUSERS
 * when every slot is taken by a live handle, or a negative errno from the system.
 */
int smem__live_join(struct smem_region *r);
/*
 * Give the slot back (close of the private description releases the kernel lock).
 * A forked child does not inherit participation: an atfork handler closes the child's copies
 * of every liveness description (so a dead parent looks dead even while its children live)
 * and zeroes live_id; a handle used in the child must join again.
 */
void smem__live_leave(struct smem_region *r);
/*
 * Is the participant @id alive? Reads the slot's generation (shared, untrusted) and asks the
 * kernel whether the slot's lock is held. One fcntl(2) unless @id is our own. An id that is 0,
 * malformed or outdated counts as dead.
 */
bool smem__live_alive(const struct smem_region *r, uint32_t id);

/* ---- time and futexes (futex.c) ------------------------------------------------------- */

uint64_t smem__now_ns(void);	/* CLOCK_MONOTONIC */

/* A deadline from a poll(2)-style timeout: UINT64_MAX for -1. */
uint64_t smem__deadline(int timeout_ms);
/* Nanoseconds left before @deadline (0 when passed; UINT64_MAX for "forever"). */
uint64_t smem__remaining_ns(uint64_t deadline);

/*
 * Shared (not FUTEX_PRIVATE) futex wait on @addr while it holds @val, for at most @max_ns
 * (UINT64_MAX: no limit). Returns 0 when woken, -EAGAIN if *addr != val, -ETIMEDOUT, -EINTR.
 */
int smem__futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t max_ns);
/* Wake up to @n waiters on @addr. Returns the number woken or a negative errno. */
int smem__futex_wake(_Atomic uint32_t *addr, int n);

/* ---- the broker client (broker_client.c) ------------------------------------------------ */

struct smem__hold;

/*
 * Register the sealed memfd @fd under @name (the broker checks the seals and the size, and
 * keeps its own reference). The returned hold keeps the name alive until released; the client
 * re-registers held names with a restarted broker. On success the hold owns @fd (it closes it
 * when released: the caller may use it until then, never close it); on failure it stays the
 * caller's. Returns 0 or -EINVAL, -EEXIST, -EACCES, -EDQUOT, -ECONNREFUSED, -EPROTO.
 */
int smem__broker_create(const struct smem_opts *opts, const char *name, uint32_t kind, int fd,
			uint32_t mode, uint32_t flags, struct smem__hold **ret);
/*
 * Look @name up and receive its fd (read-only description when SMEM_RDONLY is in @flags).
 * The fd belongs to the hold, as for a create: usable until smem__broker_release(*ret), which
 * closes it. Returns 0, sets *fd_out and *ret; or -ENOENT, -EACCES, -EINVAL, -ECONNREFUSED,
 * -EPROTO.
 */
int smem__broker_open(const struct smem_opts *opts, const char *name, uint32_t flags,
		      int *fd_out, struct smem__hold **ret);
/*
 * Drop a hold (NULL is ignored) and close its fd, now or when its RELEASE is sent. The name
 * disappears with its last hold unless persistent.
 */
void smem__broker_release(struct smem__hold *h);
/*
 * Close the process's broker connections that carry no hold and stop the client's helper
 * thread if nothing needs it. Tests call it before counting fds; harmless at any time.
 */
void smem__broker_disconnect(void);

/* ---- broker addresses and administration (broker_addr.c, broker_client.c, broker_admin.c) */

#include <sys/socket.h>
#include <sys/un.h>

/* A resolved broker address. */
struct smem__addr {
	struct sockaddr_un sun;
	socklen_t len;
	bool abstract;			/* "@name": Linux abstract namespace */
	bool is_default;		/* from XDG_RUNTIME_DIR or /tmp/smem-<uid>: dir is ours */
	char text[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];	/* as a user writes it */
};

/*
 * Resolve @addr ("@name", a path, or NULL for $SMEM_BROKER, $XDG_RUNTIME_DIR/smem/broker.sock,
 * /tmp/smem-<uid>/broker.sock). No system call. 0 or -EINVAL (empty or too long).
 */
int smem__addr_resolve(const char *addr, struct smem__addr *out);

/*
 * Make a listening socket at @a for a broker: the default directory is created (0700) and
 * checked; under a flock(2) on the socket's directory, a live broker gives -EADDRINUSE, a
 * stale socket file is unlinked, then bind and listen. Sets *lfd (CLOEXEC, non-blocking).
 * @mode is applied to a path socket (0600 or 0660); @gid (>= 0) becomes its group.
 */
int smem__broker_listen(const struct smem__addr *a, uint32_t mode, long gid, int *lfd);

/* A name's record as the broker reports it (LIST, STAT). */
struct smem__entry_info {
	uint64_t id, size, ctime_ns;
	uint32_t kind, mode, uid, gid, holders, flags;	/* flags: SMEM_ENTRY_* (proto.h) */
	char name[SMEM_NAME_MAX + 1];
};

struct smem__broker_info {
	uint32_t version;
	int32_t pid;			/* in the broker's pid namespace */
	uint32_t uid;
};

/*
 * Administration over a one-shot connection that never auto-starts a broker (@addr as for
 * smem__addr_resolve). Each returns 0 or a negative errno (-ECONNREFUSED: no broker).
 */
int smem__broker_hello(const char *addr, struct smem__broker_info *out);
int smem__broker_stat(const char *addr, const char *name, struct smem__entry_info *out);
/* Calls @fn for every name in id order; a non-zero return from @fn stops and is returned. */
int smem__broker_list(const char *addr, int (*fn)(const struct smem__entry_info *e, void *arg),
		      void *arg);
int smem__broker_stop(const char *addr);

#endif
