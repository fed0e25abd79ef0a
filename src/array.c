/* SPDX-License-Identifier: MIT */
/*
 * smem_array: a blob (blob.h, blob.c) whose header records the element size and the length,
 * so that an opener expecting another element type is refused. Index arithmetic uses the
 * private copies of the geometry, overflow-checked.
 */
#include <string.h>

#include "blob.h"

#define A(a) ((struct smem__blob *)(void *)(a))
#define CA(a) ((const struct smem__blob *)(const void *)(a))

int smem_array_create(const char *name, size_t elem_size, size_t length,
		      const struct smem_opts *opts, struct smem_array **ret)
{
	struct smem__blob *b;
	int err;

	if (!ret)
		return -EINVAL;
	err = smem__blob_create(name, SMEM_KIND_ARRAY, elem_size, length, opts, &b);
	if (!err)
		*ret = (struct smem_array *)(void *)b;
	return err;
}

int smem_array_open(const char *name, size_t elem_size, const struct smem_opts *opts,
		    struct smem_array **ret)
{
	struct smem__blob *b;
	int err;

	if (!ret)
		return -EINVAL;
	err = smem__blob_open(name, SMEM_KIND_ARRAY, elem_size, opts, &b);
	if (!err)
		*ret = (struct smem_array *)(void *)b;
	return err;
}

void smem_array_close(struct smem_array *a)
{
	smem__blob_close(A(a));
}

/* Byte range of elements [start, start + count), or -ERANGE. */
static int span(const struct smem__blob *b, size_t start, size_t count, size_t *off,
		size_t *len)
{
	if (start > b->length || count > b->length - start)
		return -ERANGE;
	*off = start * b->elem_size;	/* <= size: no overflow */
	*len = count * b->elem_size;
	return 0;
}

int smem_array_get(struct smem_array *a, size_t index, void *dst)
{
	return smem_array_read_range(a, index, dst, 1);
}

int smem_array_set(struct smem_array *a, size_t index, const void *src)
{
	return smem_array_write_range(a, index, src, 1);
}

int smem_array_read_range(struct smem_array *a, size_t start, void *dst, size_t count)
{
	size_t off, len;
	int err;

	if (!a || (!dst && count))
		return -EINVAL;
	err = span(A(a), start, count, &off, &len);
	if (err)
		return err;
	return smem__blob_copy(A(a), off, dst, len, false);
}

int smem_array_write_range(struct smem_array *a, size_t start, const void *src, size_t count)
{
	size_t off, len;
	int err;

	if (!a || (!src && count))
		return -EINVAL;
	err = span(A(a), start, count, &off, &len);
	if (err)
		return err;
	return smem__blob_copy(A(a), off, (void *)(uintptr_t)src, len, true);
}

int smem_array_find(struct smem_array *a, const void *value, size_t from, size_t *index)
{
	struct smem__blob *b = A(a);
	void *tok;
	size_t i;
	int ret;

	if (!b || !value || !index)
		return -EINVAL;
	ret = smem__blob_read_begin(b, &tok);
	if (ret != 0 && ret != -EOWNERDEAD)
		return ret;
	ret = -ENOENT;
	for (i = from; i < b->length; i++) {
		if (memcmp(b->data + i * b->elem_size, value, b->elem_size) == 0) {
			*index = i;
			ret = 0;
			break;
		}
	}
	smem__blob_read_end(b, tok);
	return ret;
}

/* The accessors take NULL and answer NULL, 0, false (or -EINVAL for the timeout). */
size_t smem_array_length(const struct smem_array *a)
{
	return a ? CA(a)->length : 0;
}

size_t smem_array_elem_size(const struct smem_array *a)
{
	return a ? CA(a)->elem_size : 0;
}

void *smem_array_data(const struct smem_array *a)
{
	return a ? CA(a)->data : NULL;
}

const char *smem_array_name(const struct smem_array *a)
{
	return a ? smem_region_name(CA(a)->r) : NULL;
}

bool smem_array_is_owner(const struct smem_array *a)
{
	return a && smem_region_is_owner(CA(a)->r);
}

bool smem_array_shutting_down(const struct smem_array *a)
{
	return a && smem_region_shutting_down(CA(a)->r);
}

int smem_array_lock_read(struct smem_array *a, int timeout_ms)
{
	return smem__blob_lock(A(a), SMEM_LOCK_READ, timeout_ms);
}

int smem_array_lock_write(struct smem_array *a, int timeout_ms)
{
	return smem__blob_lock(A(a), SMEM_LOCK_WRITE, timeout_ms);
}

int smem_array_unlock(struct smem_array *a)
{
	return smem__blob_unlock(A(a));
}

int smem_array_set_timeout(struct smem_array *a, int timeout_ms)
{
	return smem__blob_set_timeout(A(a), timeout_ms);
}

int smem_array_timeout(const struct smem_array *a)
{
	return a ? CA(a)->timeout_ms : -EINVAL;
}
