/* SPDX-License-Identifier: MIT */
/*
 * The broker's state, shared by its three files: smemd_state.c (names, quotas, holds,
 * connections), smemd_request.c (one message in, one reply out) and smemd_loop.c (the
 * event loop, accepting connections, and the request path without the loop). The design is
 * described at the top of smemd_loop.c; the wire is in proto.h.
 */
#ifndef SMEM_BROKER_SERVER_H
#define SMEM_BROKER_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "broker.h"
#include "smemd.h"

#define REQUIRED_SEALS		(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define HASH_BUCKETS		4096u
#define MAX_RX_FDS		8
#define MAX_GROUPS		64
#define DEFAULT_MAX_NAMES	4096u
#define DEFAULT_MAX_BYTES	(64ull << 30)
#define DEFAULT_MAX_CONNS	256u
#define DEFAULT_MAX_HOLDS	4096u
/*
 * Connections of a uid over its cap are accepted and answered -EDQUOT on their first request
 * (so the client can say why), up to this many at once; beyond that they are closed unread.
 */
#define REFUSE_SLACK		16u
#define UID_BUCKETS		1024u

struct uidrec;

struct entry {
	struct entry *hnext;		/* hash chain */
	struct entry *prev, *next;	/* id order */
	struct uidrec *owner;		/* charged with this entry until it is freed */
	uint64_t id, size, ctime_ns;
	uint32_t kind, mode, uid, gid, flags;
	uint32_t holders;
	int fd;				/* O_RDWR unless rw_lost */
	int ro_fd;			/* O_RDONLY description, made on first read-only open; -1 */
	bool rw_lost;			/* re-registered from a read-only fd that could not be reopened */
	bool linked;			/* in the table (the name resolves to it) */
	bool stored;			/* in the service manager's fd store (smemd_store.c) */
	dev_t dev;
	ino_t ino;
	uint16_t name_len;
	char name[SMEM_NAME_MAX + 1];
};

struct hold {
	struct entry *e;
	uint32_t count;
};

struct conn {
	struct conn *prev, *next;
	int fd;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int ngroups;
	gid_t groups[MAX_GROUPS];
	bool hello;
	int refuse;			/* 0, or the status every request gets before the close */
	struct uidrec *rec;		/* the peer uid's record, charged with this connection */
	struct hold *holds;
	size_t nholds, cap;
};

/*
 * What one uid has at the broker: names and bytes it owns (linked or not: an unlinked name
 * still held keeps its memfd, as an unlinked open file keeps its inode), its connections and
 * its holds. Freed when all four are zero, so that uids that come and go leave nothing.
 */
struct uidrec {
	struct uidrec *next;		/* hash chain */
	uid_t uid;
	uint32_t names;
	uint32_t conns;
	uint32_t holds;
	uint64_t bytes;
};

struct broker {
	const struct smem__broker_config *cfg;
	int epfd, lfd, sigfd;
	struct conn *conns;
	unsigned nconns;
	struct entry *table[HASH_BUCKETS];
	struct entry *first, *last;	/* id order, linked entries only */
	unsigned nentries;
	uint64_t next_id;
	struct uidrec *uids[UID_BUCKETS];
	unsigned nuids;
	uint32_t max_names, max_conns, max_holds;
	uint64_t max_bytes;
	uint64_t grace_end_ns;		/* CLOCK_MONOTONIC: plain CREATEs get -EAGAIN before it */
	int reserve;			/* /dev/null, given up to accept (and close) at EMFILE */
	bool fdstore;			/* persistent names go to the service manager's fd store */
	bool stop;
	/* The request being handled and its reply. */
	_Alignas(8) unsigned char rx[SMEM_PROTO_MAX_REQ];
	_Alignas(8) unsigned char tx[SMEM_PROTO_MAX_REPLY];
};

/* ---- smemd_state.c ---------------------------------------------------------------------- */

/* Fill a zeroed @b for @cfg: limits from @cfg or the defaults, no fds yet (-1). */
void smem__srv_init(struct broker *b, const struct smem__broker_config *cfg);
/*
 * Whether the memfd's inode, as @st gives it, grants nobody more than a name of @mode and
 * @gid does (the kernel checks the inode when anyone re-opens /proc/PID/fd/N).
 */
bool smem__srv_inode_within(const struct stat *st, uint32_t mode, uint32_t gid);
/*
 * A new entry named @name (@len bytes, 1..SMEM_NAME_MAX) for the memfd @st describes, its
 * size, device and inode from @st, no fd yet (-1) and no id. Not linked; NULL without memory.
 */
struct entry *smem__srv_entry_new(const char *name, size_t len, const struct stat *st,
				  uint32_t kind, uint32_t uid, uint32_t gid, uint32_t mode);
/* Whether owner @r may be charged one more name of @size bytes (its per-uid limits). */
bool smem__srv_charge_ok(const struct broker *b, const struct uidrec *r, uint64_t size);
/* The entry named @name (@len bytes, no NUL), or NULL. */
struct entry *smem__srv_lookup(struct broker *b, const char *name, size_t len);
/* @uid's record, made (zeroed) if @make and missing; NULL if none or out of memory. */
struct uidrec *smem__srv_uid(struct broker *b, uid_t uid, bool make);
/* Free @r if it no longer counts anything. */
void smem__srv_uid_put(struct broker *b, struct uidrec *r);
/*
 * Put @e in the table under its name and charge its owner @r (names, bytes) until @e is
 * freed, which is after its unlink and its last hold.
 */
void smem__srv_link(struct broker *b, struct entry *e, struct uidrec *r);
/* Take @e out of the table (the name no longer resolves); freed now if nobody holds it. */
void smem__srv_unlink(struct broker *b, struct entry *e);
/* One more hold of @c on @e. 0, -EDQUOT (the uid's holds are at the cap) or -ENOMEM. */
int smem__srv_hold_add(struct broker *b, struct conn *c, struct entry *e);
/* Drop one hold of @c on the entry with @id. 0 or -ENOENT. */
int smem__srv_hold_drop(struct broker *b, struct conn *c, uint64_t id);
/*
 * Add @c (its uid filled in) to the broker's connections and charge its uid. 0; -EDQUOT if
 * the uid is far over its connection cap (@c is not linked: close its fd and free it); over
 * the cap by less, @c is linked with c->refuse set. -ENOMEM without a record.
 */
int smem__srv_conn_link(struct broker *b, struct conn *c);
/* Close @c, releasing every hold it had, and free it. */
void smem__srv_conn_close(struct broker *b, struct conn *c);
/* Close every connection (releasing its holds), then every name, then the broker's own fds. */
void smem__srv_destroy(struct broker *b);

/* ---- smemd_store.c (the service manager's fd store) ------------------------------------- */

/*
 * Keep @e, if persistent, in the service manager's fd store (when b->fdstore): its memfd and a
 * sealed memfd of its metadata, so that the next smemd takes it back. An entry already there
 * is replaced. A failure is logged; the name then just does not outlive this smemd.
 */
void smem__srv_store_put(struct broker *b, struct entry *e);
/* Take @e out of the store (an unlink): the next smemd must not bring it back. */
void smem__srv_store_drop(struct broker *b, struct entry *e);
/*
 * Take back the names a previous smemd kept: @fds (@n, each named by @names as
 * LISTEN_FDNAMES gives them, all store names: smem__srv_store_name_ours()) are validated and
 * linked as persistent names nobody holds. What fails validation is logged, closed and
 * removed from the store. Every fd is consumed or closed. Returns the names restored.
 */
int smem__srv_store_restore(struct broker *b, const int *fds, char *const *names, int n);

/* ---- smemd_request.c -------------------------------------------------------------------- */

/*
 * Read one message from @c and answer it. Returns true if there may be more to read: a
 * message was handled and @c is still open (false also means @c may have been freed).
 */
bool smem__srv_handle(struct broker *b, struct conn *c, uint32_t events);

#endif
