/* SPDX-License-Identifier: MIT */
/*
 * The "blob": a region whose object area is a small header, a robust reader-writer lock, then
 * the data. smem_buffer (buffer.c) and smem_array (array.c) are blobs; blob.c creates, opens
 * and validates them, and the per-call paths below are inline. Calls go one way: buffer and
 * array -> blob -> lock (lock.h) and region. Internal: nothing here is exported.
 *
 * The byte layout is specified in docs/LAYOUT.md ("Buffer and array").
 */
#ifndef SMEM_BLOB_H
#define SMEM_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lock.h"

#define SMEM_BLOB_MAGIC_BUFFER	0x46554253u	/* "SBUF" */
#define SMEM_BLOB_MAGIC_ARRAY	0x52524153u	/* "SARR" */
#define SMEM_BLOB_VERSION	1u
#define SMEM_BLOB_DATA_OFF	(64u + (uint32_t)sizeof(struct smem_lock_shm))

/* At offset 0 of the region's object area. Written by the creator before publication. */
struct smem_blob_hdr {
	uint32_t magic;			/*  0: SMEM_BLOB_MAGIC_* */
	uint32_t version;		/*  4: SMEM_BLOB_VERSION */
	uint64_t data_off;		/*  8: offset of the data in the object area */
	uint64_t data_size;		/* 16: bytes of data = elem_size * length */
	uint64_t elem_size;		/* 24: array element size; 1 for a buffer */
	uint64_t length;		/* 32: array length; data_size for a buffer */
	uint8_t reserved[24];		/* 40: zero */
	struct smem_lock_shm lock;	/* 64 */
};

_Static_assert(offsetof(struct smem_blob_hdr, data_off) == 8, "layout");
_Static_assert(offsetof(struct smem_blob_hdr, data_size) == 16, "layout");
_Static_assert(offsetof(struct smem_blob_hdr, elem_size) == 24, "layout");
_Static_assert(offsetof(struct smem_blob_hdr, length) == 32, "layout");
_Static_assert(offsetof(struct smem_blob_hdr, lock) == 64, "layout");
_Static_assert(sizeof(struct smem_blob_hdr) == SMEM_BLOB_DATA_OFF, "layout");
_Static_assert(SMEM_BLOB_DATA_OFF % 64 == 0, "data is cache-line aligned");

/*
 * A handle on a buffer or an array: everything here is a private, validated copy.
 * blob.c implements it; struct smem_buffer and struct smem_array are this struct.
 */
struct smem__blob {
	struct smem_region *r;
	unsigned char *data;		/* r->obj + SMEM_BLOB_DATA_OFF */
	size_t size;			/* bytes of data */
	size_t elem_size;
	size_t length;
	int timeout_ms;			/* of plain calls */
	bool raw;			/* plain calls take no lock (SMEM_RAW or read-only) */
	bool rdonly;
	bool locked;			/* lk is attached */
	struct smem__lock lk;
};

/*
 * Validate the object header of an opened buffer or array region (any handle, read-only ones
 * too: smemctl inspects with this) and give its geometry, each field read once. 0 or -EPROTO
 * (also when @want_elem is not 0 and differs from the recorded element size).
 */
int smem__blob_validate(const struct smem_region *r, uint32_t kind, size_t want_elem,
			size_t *elem_out, size_t *len_out);

/*
 * Create / open a buffer (@kind SMEM_KIND_BUFFER, @elem_size 1) or an array
 * (SMEM_KIND_ARRAY). Open checks @elem_size against the header (0 accepts any).
 */
int smem__blob_create(const char *name, uint32_t kind, size_t elem_size, size_t length,
		      const struct smem_opts *opts, struct smem__blob **ret);
int smem__blob_open(const char *name, uint32_t kind, size_t elem_size,
		    const struct smem_opts *opts, struct smem__blob **ret);
void smem__blob_close(struct smem__blob *b);
int smem__blob_set_timeout(struct smem__blob *b, int timeout_ms);

/*
 * The per-call paths, inline so that a locked read or write is one function deep apart from
 * the copy (the lock's uncontended paths are inline too, above).
 */

/* Bounds-checked copy of @len bytes at @off, locked as the handle says. */
static inline int smem__blob_copy(struct smem__blob *b, size_t off, void *buf, size_t len,
				  bool write)
{
	unsigned char *p;
	void *tok;
	int ret;

	if (!b || (!buf && len))
		return -EINVAL;
	if (off > b->size || len > b->size - off)
		return -ERANGE;
	if (write && b->rdonly)
		return -EPERM;
	if (len == 0)
		return 0;
	p = b->data + off;
	if (b->raw) {
		if (write)
			memcpy(p, buf, len);
		else
			memcpy(buf, p, len);
		return 0;
	}
	ret = smem__lock_enter(&b->lk, write ? SMEM_LOCK_WRITE : SMEM_LOCK_READ, b->timeout_ms,
			       &tok);
	if (smem__unlikely(ret != 0 && ret != -EOWNERDEAD))
		return ret;
	if (write)
		memcpy(p, buf, len);
	else
		memcpy(buf, p, len);
	smem__lock_leave(&b->lk, tok);
	return ret;
}

static inline int smem__blob_lock(struct smem__blob *b, int mode, int timeout_ms)
{
	if (!b || timeout_ms < -1)
		return -EINVAL;
	if (!b->locked)
		return -EPERM;
	return mode == SMEM_LOCK_WRITE ? smem__lock_wrlock(&b->lk, timeout_ms)
				       : smem__lock_rdlock(&b->lk, timeout_ms);
}

static inline int smem__blob_unlock(struct smem__blob *b)
{
	if (!b)
		return -EINVAL;
	if (!b->locked)
		return -EPERM;
	return smem__lock_unlock(&b->lk);
}

/* Hold the read lock for a multi-step read (unless raw or already held): see lock_enter. */
static inline int smem__blob_read_begin(struct smem__blob *b, void **tok)
{
	*tok = NULL;
	if (b->raw)
		return 0;
	return smem__lock_enter(&b->lk, SMEM_LOCK_READ, b->timeout_ms, tok);
}

static inline void smem__blob_read_end(struct smem__blob *b, void *tok)
{
	smem__lock_leave(&b->lk, tok);
}

#endif
