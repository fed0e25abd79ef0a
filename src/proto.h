/* SPDX-License-Identifier: MIT */
/*
 * The broker wire format (docs/PROTOCOL.md, "Broker protocol"). One SOCK_SEQPACKET message
 * per request and per reply: a fixed 16-byte header, then op-specific payload. Every struct is
 * declared with fixed-width types, explicit padding and build-time checks; integers are in the
 * host's byte order (both ends are on the same machine) which is little-endian on every
 * platform we build for.
 */
#ifndef SMEM_PROTO_H
#define SMEM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SMEM_PROTO_VERSION	1

/* Largest request the broker accepts (header included); larger ones get -EMSGSIZE. */
#define SMEM_PROTO_MAX_REQ	1024u
/* Largest reply the broker sends (LIST pages are cut to fit). */
#define SMEM_PROTO_MAX_REPLY	65536u

enum smem_proto_op {
	SMEM_OP_HELLO = 1,	/* version handshake; must be the first request */
	SMEM_OP_CREATE = 2,	/* register a sealed memfd (SCM_RIGHTS) under a name */
	SMEM_OP_OPEN = 3,	/* look a name up; the reply carries its fd */
	SMEM_OP_RELEASE = 4,	/* drop one hold (by entry id) */
	SMEM_OP_UNLINK = 5,	/* remove a name whatever its holders */
	SMEM_OP_LIST = 6,	/* page through the names */
	SMEM_OP_STAT = 7,	/* one name's record */
	SMEM_OP_STOP = 8,	/* shut the broker down (its own uid or root) */
	SMEM_OP_MAX = 8,
};

/* Every message starts with this. Requests carry status 0; replies echo op and seq. */
struct smem_msg_hdr {
	uint16_t version;	/* 0: SMEM_PROTO_VERSION (a reply to a bad version carries ours) */
	uint16_t op;		/* 2: enum smem_proto_op; 0 in a reply to an unreadable message */
	uint32_t length;	/* 4: payload bytes after this header */
	uint32_t seq;		/* 8: chosen by the client, echoed in the reply */
	int32_t status;		/* 12: reply: 0 or a negative errno */
};
_Static_assert(sizeof(struct smem_msg_hdr) == 16, "wire");
_Static_assert(offsetof(struct smem_msg_hdr, version) == 0, "wire");
_Static_assert(offsetof(struct smem_msg_hdr, op) == 2, "wire");
_Static_assert(offsetof(struct smem_msg_hdr, length) == 4, "wire");
_Static_assert(offsetof(struct smem_msg_hdr, seq) == 8, "wire");
_Static_assert(offsetof(struct smem_msg_hdr, status) == 12, "wire");

/* HELLO request. */
struct smem_msg_hello {
	uint32_t version;	/* 0: the client's SMEM_PROTO_VERSION */
	uint32_t reserved[3];	/* 4: zero */
};
_Static_assert(sizeof(struct smem_msg_hello) == 16, "wire");

/* HELLO reply. */
struct smem_msg_hello_reply {
	uint32_t version;	/* 0: the broker's SMEM_PROTO_VERSION */
	int32_t pid;		/* 4: the broker's pid in its own namespace (a hint) */
	uint32_t uid;		/* 8: the broker's uid */
	uint32_t max_reply;	/* 12: SMEM_PROTO_MAX_REPLY */
};
_Static_assert(sizeof(struct smem_msg_hello_reply) == 16, "wire");

/* CREATE flags (request). */
#define SMEM_CREATE_PERSIST	(1u << 0)	/* the name outlives its holders */
#define SMEM_CREATE_REREGISTER	(1u << 1)	/* a holder re-registers after a broker restart */
#define SMEM_CREATE_FLAGS	(SMEM_CREATE_PERSIST | SMEM_CREATE_REREGISTER)

/*
 * CREATE request; the name follows (name_len bytes, no NUL) and exactly one fd is attached.
 * uid and gid are only read with SMEM_CREATE_REREGISTER (the owner the holder was told).
 */
struct smem_msg_create {
	uint64_t size;		/*  0: the memfd's size as the client declares it */
	uint32_t kind;		/*  8: SMEM_KIND_* */
	uint32_t mode;		/* 12: permission bits (<= 0777); 0: the broker's default */
	uint32_t flags;		/* 16: SMEM_CREATE_* */
	uint32_t uid;		/* 20: reregister: the recorded owner */
	uint32_t gid;		/* 24: reregister: the recorded group */
	uint16_t name_len;	/* 28: 1..255 */
	uint16_t reserved;	/* 30: zero */
};
_Static_assert(sizeof(struct smem_msg_create) == 32, "wire");
_Static_assert(offsetof(struct smem_msg_create, name_len) == 28, "wire");

/* OPEN flags (request). */
#define SMEM_OPEN_RDONLY	(1u << 0)	/* send a read-only description */
#define SMEM_OPEN_FLAGS		SMEM_OPEN_RDONLY

/* OPEN, UNLINK and STAT requests: a name (name_len bytes, no NUL) follows. */
struct smem_msg_name {
	uint32_t flags;		/* 0: OPEN: SMEM_OPEN_*; others: zero */
	uint16_t name_len;	/* 4: 1..255 */
	uint16_t reserved;	/* 6: zero */
};
_Static_assert(sizeof(struct smem_msg_name) == 8, "wire");

/* RELEASE flags. */
#define SMEM_RELEASE_NOREPLY	(1u << 0)	/* no reply is sent, not even an error */

/* RELEASE request. */
struct smem_msg_release {
	uint64_t id;		/* 0: entry id from the CREATE/OPEN reply */
	uint32_t flags;		/* 8: SMEM_RELEASE_* */
	uint32_t reserved;	/* 12: zero */
};
_Static_assert(sizeof(struct smem_msg_release) == 16, "wire");

/* LIST request: entries with id > after, in id order. */
struct smem_msg_list {
	uint64_t after;		/* 0 */
};
_Static_assert(sizeof(struct smem_msg_list) == 8, "wire");

/* Entry flags (in records). */
#define SMEM_ENTRY_PERSIST	(1u << 0)
#define SMEM_ENTRY_UNLINKED	(1u << 1)

/*
 * One name's record: the CREATE, OPEN and STAT replies carry one, a LIST reply carries a
 * u32 count, a u32 "more" flag, then that many. Each record is followed by its name and
 * padded with zeros to a multiple of 8 bytes.
 */
struct smem_msg_entry {
	uint64_t id;		/*  0: unique for the broker's lifetime, never 0 */
	uint64_t size;		/*  8: the memfd's size */
	uint64_t ctime_ns;	/* 16: CLOCK_REALTIME when the broker registered it */
	uint32_t kind;		/* 24 */
	uint32_t mode;		/* 28 */
	uint32_t uid;		/* 32 */
	uint32_t gid;		/* 36 */
	uint32_t holders;	/* 40: holds over all connections */
	uint32_t flags;		/* 44: SMEM_ENTRY_* */
	uint16_t name_len;	/* 48 */
	uint16_t reserved0;	/* 50: zero */
	uint32_t reserved1;	/* 52: zero */
};
_Static_assert(sizeof(struct smem_msg_entry) == 56, "wire");
_Static_assert(offsetof(struct smem_msg_entry, holders) == 40, "wire");
_Static_assert(offsetof(struct smem_msg_entry, name_len) == 48, "wire");

struct smem_msg_list_reply {
	uint32_t count;		/* 0: records that follow */
	uint32_t more;		/* 4: 1 if the page was cut: ask again after the last id */
};
_Static_assert(sizeof(struct smem_msg_list_reply) == 8, "wire");

/* Size of a record with its name, padded. */
static inline size_t smem_msg_entry_size(size_t name_len)
{
	return (sizeof(struct smem_msg_entry) + name_len + 7) & ~(size_t)7;
}

#endif
