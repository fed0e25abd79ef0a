/* SPDX-License-Identifier: MIT */
/*
 * smem_array: a named fixed-length array of fixed-size elements shared between processes,
 * with the same robust reader-writer lock as smem_buffer (see smem/buffer.h for the lock's
 * semantics, timeouts, SMEM_RAW and SMEM_RDONLY).
 *
 * The element size is recorded in shared memory when the array is created, and an opener
 * that expects another size gets -EPROTO, even one that divides the array's byte size.
 * SMEM_ARRAY_DECLARE(prefix, type) generates type-checked inline wrappers:
 *
 *	SMEM_ARRAY_DECLARE(int_array, int)
 *	struct smem_array *a;
 *	int v;
 *	int_array_create("counts", 10, NULL, &a);
 *	int_array_set(a, 0, 123);
 *	int_array_get(a, 0, &v);
 *
 * Plain get/set/read/write calls take the lock for their duration (read lock to read, write
 * lock to write) unless the calling thread already holds it through this handle.
 *
 * Concurrency: every call may run concurrently with any other on the same or other handles,
 * except smem_array_close().
 */
#ifndef SMEM_ARRAY_H
#define SMEM_ARRAY_H

#include <smem/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct smem_array;

/*
 * Create an array of @length (> 0) zeroed elements of @elem_size (> 0) bytes under @name.
 * Returns 0 and sets *ret, or -EINVAL (bad name, zero or overflowing sizes, bad timeout),
 * -EEXIST, -EACCES, -ENOMEM, -EDQUOT, -EUSERS, -ECONNREFUSED, -EPERM. Blocks on broker round
 * trips.
 */
int smem_array_create(const char *name, size_t elem_size, size_t length,
		      const struct smem_opts *opts, struct smem_array **ret);

/*
 * Open the array called @name, whose elements must be @elem_size bytes (0: accept the
 * recorded size). Returns 0 and sets *ret, or -EINVAL, -ENOENT, -EACCES, -EMEDIUMTYPE (the
 * name holds another kind of object), -EPROTO (a header that fails validation, or an element
 * size other than @elem_size), -EUSERS, -ECONNREFUSED, -EPERM.
 */
int smem_array_open(const char *name, size_t elem_size, const struct smem_opts *opts,
		    struct smem_array **ret);

/* Close the handle (NULL is ignored); as smem_buffer_close(). */
void smem_array_close(struct smem_array *a);

/*
 * Copy element @index to @dst / from @src (elem_size bytes). Returns 0, -ERANGE (index >=
 * length), -EINVAL (NULL), -ETIMEDOUT, -EDEADLK, -EPERM, or -EOWNERDEAD (copied; the lock was
 * recovered from a dead holder), as smem_buffer_read/write.
 */
int smem_array_get(struct smem_array *a, size_t index, void *dst);
int smem_array_set(struct smem_array *a, size_t index, const void *src);

/*
 * Copy @count elements starting at @start, all or nothing. Returns 0, -ERANGE (start + count
 * > length), -EINVAL (NULL with count > 0), and the lock errors above.
 */
int smem_array_read_range(struct smem_array *a, size_t start, void *dst, size_t count);
int smem_array_write_range(struct smem_array *a, size_t start, const void *src, size_t count);

/*
 * First index >= @from whose element equals *value byte for byte (mind struct padding).
 * Returns 0 and sets *index, -ENOENT (not found), -EINVAL, or the lock errors. The scan holds
 * the read lock (unless the handle is raw).
 */
int smem_array_find(struct smem_array *a, const void *value, size_t from, size_t *index);

/* Geometry (private copies), data pointer and state. Never fail; NULL gives NULL, 0, false. */
size_t smem_array_length(const struct smem_array *a);
size_t smem_array_elem_size(const struct smem_array *a);
void *smem_array_data(const struct smem_array *a);
const char *smem_array_name(const struct smem_array *a);
bool smem_array_is_owner(const struct smem_array *a);
bool smem_array_shutting_down(const struct smem_array *a);

/* The lock, as smem_buffer_lock_read/lock_write/unlock/set_timeout. */
int smem_array_lock_read(struct smem_array *a, int timeout_ms);
int smem_array_lock_write(struct smem_array *a, int timeout_ms);
int smem_array_unlock(struct smem_array *a);
int smem_array_set_timeout(struct smem_array *a, int timeout_ms);
int smem_array_timeout(const struct smem_array *a);

/*
 * Typed wrappers for element type @type, named prefix_create, _open, _get, _set, _read,
 * _write, _find, _data. _open passes sizeof(type), so an array of another element size is
 * refused with -EPROTO; _set takes the value itself.
 */
#define SMEM_ARRAY_DECLARE(prefix, type)						\
static inline int prefix##_create(const char *name, size_t length,			\
				  const struct smem_opts *opts, struct smem_array **ret)	\
{ return smem_array_create(name, sizeof(type), length, opts, ret); }			\
static inline int prefix##_open(const char *name, const struct smem_opts *opts,	\
				struct smem_array **ret)				\
{ return smem_array_open(name, sizeof(type), opts, ret); }				\
static inline int prefix##_get(struct smem_array *a, size_t index, type *out)		\
{ return smem_array_get(a, index, out); }						\
static inline int prefix##_set(struct smem_array *a, size_t index, type value)		\
{ return smem_array_set(a, index, &value); }						\
static inline int prefix##_read(struct smem_array *a, size_t start, type *dst,		\
				size_t count)						\
{ return smem_array_read_range(a, start, dst, count); }					\
static inline int prefix##_write(struct smem_array *a, size_t start, const type *src,	\
				 size_t count)						\
{ return smem_array_write_range(a, start, src, count); }				\
static inline int prefix##_find(struct smem_array *a, type value, size_t from,		\
				size_t *index)						\
{ return smem_array_find(a, &value, from, index); }					\
static inline type *prefix##_data(struct smem_array *a)				\
{ return (type *)smem_array_data(a); }

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
