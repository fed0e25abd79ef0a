/* SPDX-License-Identifier: MIT */
/*
 * smem_buffer: bounds-checked bytes at offsets in a named region, with a robust reader-writer
 * lock. A buffer is a blob of one-byte elements (blob.h, blob.c).
 */
#include "blob.h"

#define B(b) ((struct smem__blob *)(void *)(b))
#define CB(b) ((const struct smem__blob *)(const void *)(b))

int smem_buffer_create(const char *name, size_t size, const struct smem_opts *opts,
		       struct smem_buffer **ret)
{
	struct smem__blob *b;
	int err;

	if (!ret)
		return -EINVAL;
	err = smem__blob_create(name, SMEM_KIND_BUFFER, 1, size, opts, &b);
	if (!err)
		*ret = (struct smem_buffer *)(void *)b;
	return err;
}

int smem_buffer_open(const char *name, const struct smem_opts *opts, struct smem_buffer **ret)
{
	struct smem__blob *b;
	int err;

	if (!ret)
		return -EINVAL;
	err = smem__blob_open(name, SMEM_KIND_BUFFER, 1, opts, &b);
	if (!err)
		*ret = (struct smem_buffer *)(void *)b;
	return err;
}

void smem_buffer_close(struct smem_buffer *b)
{
	smem__blob_close(B(b));
}

int smem_buffer_write(struct smem_buffer *b, size_t off, const void *src, size_t len)
{
	return smem__blob_copy(B(b), off, (void *)(uintptr_t)src, len, true);
}

int smem_buffer_read(struct smem_buffer *b, size_t off, void *dst, size_t len)
{
	return smem__blob_copy(B(b), off, dst, len, false);
}

/* The accessors take NULL and answer NULL, 0, false (or -EINVAL for the timeout). */
void *smem_buffer_data(const struct smem_buffer *b)
{
	return b ? CB(b)->data : NULL;
}

size_t smem_buffer_size(const struct smem_buffer *b)
{
	return b ? CB(b)->size : 0;
}

const char *smem_buffer_name(const struct smem_buffer *b)
{
	return b ? smem_region_name(CB(b)->r) : NULL;
}

bool smem_buffer_is_owner(const struct smem_buffer *b)
{
	return b && smem_region_is_owner(CB(b)->r);
}

bool smem_buffer_shutting_down(const struct smem_buffer *b)
{
	return b && smem_region_shutting_down(CB(b)->r);
}

int smem_buffer_lock_read(struct smem_buffer *b, int timeout_ms)
{
	return smem__blob_lock(B(b), SMEM_LOCK_READ, timeout_ms);
}

int smem_buffer_lock_write(struct smem_buffer *b, int timeout_ms)
{
	return smem__blob_lock(B(b), SMEM_LOCK_WRITE, timeout_ms);
}

int smem_buffer_unlock(struct smem_buffer *b)
{
	return smem__blob_unlock(B(b));
}

int smem_buffer_set_timeout(struct smem_buffer *b, int timeout_ms)
{
	return smem__blob_set_timeout(B(b), timeout_ms);
}

int smem_buffer_timeout(const struct smem_buffer *b)
{
	return b ? CB(b)->timeout_ms : -EINVAL;
}
