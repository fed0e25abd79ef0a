/* SPDX-License-Identifier: MIT */
/*
 * Topics (topic.c, topic_open.c): the control layout in shared memory and the private
 * handles. docs/LAYOUT.md ("Topic") specifies the bytes; topic.c's block comment the protocol.
 */
#ifndef SMEM_TOPIC_INT_H
#define SMEM_TOPIC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "lock.h"

#define SMEM_TOPIC_SUFFIX	".samples"
#define SMEM_TOPIC_MAX_SUBS	256u
#define SMEM_TOPIC_MAX_DEPTH	(1u << 20)
#define SMEM_TOPIC_MAX_POOL	(1u << 22)

/* Buffer state word: 0 free, LOAN | owner id, PUB | position. */
#define SMEM_TOPIC_PUB		(1ull << 63)
#define SMEM_TOPIC_LOAN		(1ull << 62)
#define SMEM_TOPIC_POS_MASK	(SMEM_TOPIC_LOAN - 1)

/*
 * The control area's first 256 bytes: geometry (creator-written), then the hot words, each
 * group on a line of its own: tail changes with every publish, while the waiter counts that
 * both sides read after every step change only when somebody sleeps.
 */
struct smem_topic_shm {
	uint64_t sample_size;		/*   0 */
	uint64_t stride;		/*   8: bytes between samples in the pool, 64-aligned */
	uint32_t depth;			/*  16: entries of the position ring */
	uint32_t pool;			/*  20: sample buffers */
	uint32_t history;		/*  24 */
	uint32_t max_subs;		/*  28 */
	uint32_t views;			/*  32 */
	uint32_t loans;			/*  36 */
	uint32_t policy;		/*  40 */
	uint32_t flags;			/*  44 */
	uint8_t reserved0[16];		/*  48: zero */
	_Atomic uint64_t tail;		/*  64: next position to publish */
	uint8_t reserved1[56];		/*  72: zero */
	_Atomic uint32_t data_seq;	/* 128: futex word: bumped when subscribers sleep */
	_Atomic uint32_t data_waiters;	/* 132 */
	_Atomic uint32_t room_seq;	/* 136: futex word: bumped when publishers sleep */
	_Atomic uint32_t room_waiters;	/* 140 */
	uint8_t reserved2[48];		/* 144: zero */
	_Atomic uint64_t corruptions;	/* 192: invalid values found (statistics) */
	_Atomic uint64_t recovered;	/* 200: loans of dead publishers freed */
	_Atomic uint64_t evicted;	/* 208: dead subscribers removed */
	uint8_t reserved3[40];		/* 216: zero */
};

_Static_assert(offsetof(struct smem_topic_shm, stride) == 8, "layout");
_Static_assert(offsetof(struct smem_topic_shm, depth) == 16, "layout");
_Static_assert(offsetof(struct smem_topic_shm, flags) == 44, "layout");
_Static_assert(offsetof(struct smem_topic_shm, tail) == 64, "layout");
_Static_assert(offsetof(struct smem_topic_shm, data_seq) == 128, "layout");
_Static_assert(offsetof(struct smem_topic_shm, room_seq) == 136, "layout");
_Static_assert(offsetof(struct smem_topic_shm, corruptions) == 192, "layout");
_Static_assert(offsetof(struct smem_topic_shm, evicted) == 208, "layout");
_Static_assert(sizeof(struct smem_topic_shm) == 256, "layout");

/*
 * A sample buffer's record, a line of its own: a publisher's loan of one buffer does not
 * steal the line a subscriber is checking the next one on.
 */
struct smem_topic_buf {
	_Atomic uint64_t state;		/*  0 */
	_Atomic uint64_t len;		/*  8: published length, written before PUB */
	uint8_t reserved[48];		/* 16: zero */
};
_Static_assert(sizeof(struct smem_topic_buf) == 64, "layout");

/* A subscriber's slot, one cache line, written by that subscriber (and by evicters). */
struct smem_topic_slot {
	_Atomic uint32_t owner;		/*  0: owner id, 0 = free */
	uint32_t reserved0;		/*  4: zero */
	_Atomic uint64_t cursor;	/*  8: next position to receive */
	_Atomic uint64_t lost;		/* 16 */
	_Atomic uint64_t received;	/* 24 */
	_Atomic uint32_t held[4];	/* 32: buffer index + 1 of each view, 0 = none */
	uint8_t reserved1[16];		/* 48: zero */
};
_Static_assert(offsetof(struct smem_topic_slot, cursor) == 8, "layout");
_Static_assert(offsetof(struct smem_topic_slot, held) == 32, "layout");
_Static_assert(sizeof(struct smem_topic_slot) == 64, "layout");

/* Offsets of the areas, from the geometry alone (never stored: an opener recomputes them). */
struct smem__topic_geo {
	uint64_t sample_size, stride;
	uint32_t depth, pool, history, max_subs, views, loans, policy, flags;
	size_t lock_off, entry_off, buf_off, slot_off, ctl_size;
	size_t pool_size;		/* bytes of the samples memfd's object area */
};

/* Fill @g's derived fields from its geometry; 0 or -EINVAL (out of range, overflow). */
int smem__topic_geometry(struct smem__topic_geo *g);

/* What both handle kinds share: the control region and private copies of the geometry. */
struct smem__topic {
	struct smem_region *ctl, *samples;
	struct smem_topic_shm *shm;
	_Atomic uint32_t *entry;
	struct smem_topic_buf *buf;
	struct smem_topic_slot *slot;
	unsigned char *base;		/* first sample in the samples mapping */
	struct smem__topic_geo g;	/* private, trusted */
};

struct smem_topic_pub {
	struct smem__topic t;		/* first (topic_open.c's handle_open) */
	struct smem__lock lock;		/* the publish lock (serialises positions) */
	uint32_t hint;			/* where the next loan scan starts */
	uint64_t room_until;		/* BLOCK: positions below this have room (cached) */
	uint64_t stuck_since;		/* BLOCK: when we first waited for the current laggard */
	bool creator;
};

struct smem_topic_sub {
	struct smem__topic t;		/* first (topic_open.c's handle_open) */
	struct smem_topic_slot *me;
	uint32_t idx;			/* our slot */
	uint64_t cursor;		/* private copy of our cursor */
	uint64_t lost, received;
	uint32_t held[SMEM_TOPIC_MAX_VIEWS];	/* private copies (index + 1) */
};

/* The publish lock sits at lock_off. */
static inline struct smem_lock_shm *smem__topic_lock(const struct smem__topic *t)
{
	return (struct smem_lock_shm *)((char *)t->shm + t->g.lock_off);
}

/* topic_open.c, also for the fuzz target (regions made by hand, no broker) */
/* Write the control area of geometry @g (filled by smem__topic_geometry) into @obj. */
int smem__topic_format(void *obj, size_t size, const struct smem__topic_geo *g);
/* With t->ctl and t->samples mapped: take the geometry once, check it, bind. 0 or -EPROTO. */
int smem__topic_validate(struct smem__topic *t);
/* Join the participants and attach the publish lock. 0 or -EUSERS, system errors. */
int smem__topic_pub_attach(struct smem_topic_pub *p);

/* topic.c: the protocol, for topic_open.c */
int smem__topic_sub_join(struct smem_topic_sub *s, uint32_t history);
void smem__topic_sub_leave(struct smem_topic_sub *s);
void smem__topic_pub_drop_loans(struct smem_topic_pub *p);
/* topic.c, for topic_poll.c: a subscriber's announced look before sleeping (see there). */
int smem__topic_sub_wait_prepare(struct smem_topic_sub *s, _Atomic uint32_t **word,
				 uint32_t *val);
void smem__topic_sub_wait_done(struct smem_topic_sub *s);

#endif
