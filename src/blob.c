/* SPDX-License-Identifier: MIT */
/*
 * The blob shared by smem_buffer and smem_array: a region whose object area is a small header,
 * a robust reader-writer lock, then the data (struct smem_blob_hdr in blob.h; docs/LAYOUT.md
 * "Buffer and array").
 *
 * The creator writes the header and an all-zero lock before the region is published. An opener
 * reads every header field once, checks it against the region's private geometry, and keeps
 * private copies: no later change by a peer can move an access outside the mapping.
 */
#include <stdlib.h>
#include <string.h>

#include "blob.h"

#define DEFAULT_TIMEOUT_MS	100

struct blob_init {
	uint32_t magic;
	size_t elem_size, length, data_size;
};

static int blob_init(void *obj, size_t obj_size, void *arg)
{
	const struct blob_init *bi = arg;
	struct smem_blob_hdr *h = obj;

	if (obj_size < SMEM_BLOB_DATA_OFF + bi->data_size)
		return -EINVAL;
	h->magic = bi->magic;
	h->version = SMEM_BLOB_VERSION;
	h->data_off = SMEM_BLOB_DATA_OFF;
	h->data_size = bi->data_size;
	h->elem_size = bi->elem_size;
	h->length = bi->length;
	smem__lock_init(&h->lock);
	return 0;
}

static uint32_t kind_magic(uint32_t kind)
{
	return kind == SMEM_KIND_ARRAY ? SMEM_BLOB_MAGIC_ARRAY : SMEM_BLOB_MAGIC_BUFFER;
}

static int opts_timeout(const struct smem_opts *opts, int *out)
{
	int t = opts ? opts->timeout_ms : 0;

	if (t < -1)
		return -EINVAL;
	*out = t == 0 ? DEFAULT_TIMEOUT_MS : t;
	return 0;
}

/* Common tail of create and open: the handle around a region. */
static int blob_attach(struct smem_region *r, const struct smem_opts *opts, size_t elem_size,
		       size_t length, struct smem__blob **ret)
{
	struct smem_blob_hdr *h = r->obj;
	struct smem__blob *b;
	int err;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->r = r;
	b->data = (unsigned char *)r->obj + SMEM_BLOB_DATA_OFF;
	b->elem_size = elem_size;
	b->length = length;
	b->size = elem_size * length;	/* checked by the callers */
	b->rdonly = r->rdonly;
	b->raw = r->rdonly || (opts && (opts->flags & SMEM_RAW));
	err = opts_timeout(opts, &b->timeout_ms);
	if (!err && !b->rdonly) {
		err = smem__lock_attach(&b->lk, r, &h->lock);
		b->locked = err == 0;
	}
	if (err) {
		free(b);
		return err;
	}
	*ret = b;
	return 0;
}

int smem__blob_create(const char *name, uint32_t kind, size_t elem_size, size_t length,
		      const struct smem_opts *opts, struct smem__blob **ret)
{
	struct blob_init bi = { .magic = kind_magic(kind), .elem_size = elem_size,
				.length = length };
	struct smem_region *r;
	int err, t;

	if (!ret || elem_size == 0 || length == 0 || elem_size > SIZE_MAX / length)
		return -EINVAL;
	bi.data_size = elem_size * length;
	if (bi.data_size > SIZE_MAX - SMEM_BLOB_DATA_OFF)
		return -EINVAL;
	err = opts_timeout(opts, &t);
	if (err)
		return err;
	err = smem__region_create(name, kind, SMEM_BLOB_DATA_OFF + bi.data_size, blob_init, &bi,
				  opts, &r);
	if (err)
		return err;
	err = blob_attach(r, opts, elem_size, length, ret);
	if (err)
		smem_region_close(r);
	return err;
}

int smem__blob_validate(const struct smem_region *r, uint32_t kind, size_t want_elem,
			size_t *elem_out, size_t *len_out)
{
	const struct smem_blob_hdr *h = r->obj;
	uint64_t data_off, data_size, elem, len;

	if (r->obj_size < sizeof(*h))
		return -EPROTO;
	/* Each field read once: what we check is what we use. */
	if (h->magic != kind_magic(kind) || h->version != SMEM_BLOB_VERSION)
		return -EPROTO;
	data_off = h->data_off;
	data_size = h->data_size;
	elem = h->elem_size;
	len = h->length;
	if (data_off != SMEM_BLOB_DATA_OFF || elem == 0 || len == 0 ||
	    elem > UINT64_MAX / len || elem * len != data_size ||
	    data_size > r->obj_size - SMEM_BLOB_DATA_OFF)
		return -EPROTO;
	if (kind == SMEM_KIND_BUFFER && elem != 1)
		return -EPROTO;
	if (want_elem != 0 && want_elem != elem)
		return -EPROTO;
	*elem_out = (size_t)elem;
	*len_out = (size_t)len;
	return 0;
}

int smem__blob_open(const char *name, uint32_t kind, size_t elem_size,
		    const struct smem_opts *opts, struct smem__blob **ret)
{
	struct smem_region *r;
	size_t elem = 0, len = 0;
	int err, t;

	if (!ret)
		return -EINVAL;
	err = opts_timeout(opts, &t);
	if (err)
		return err;
	err = smem__region_open(name, kind, opts, &r);
	if (err)
		return err;
	err = smem__blob_validate(r, kind, elem_size, &elem, &len);
	if (!err)
		err = blob_attach(r, opts, elem, len, ret);
	if (err)
		smem_region_close(r);
	return err;
}

void smem__blob_close(struct smem__blob *b)
{
	if (!b)
		return;
	if (b->locked)
		smem__lock_detach(&b->lk);
	smem_region_close(b->r);
	free(b);
}

int smem__blob_set_timeout(struct smem__blob *b, int timeout_ms)
{
	if (!b || timeout_ms < -1)
		return -EINVAL;
	b->timeout_ms = timeout_ms;
	return 0;
}
