/* SPDX-License-Identifier: MIT */
/*
 * smem_buffer: a named block of bytes shared between processes, with a robust reader-writer
 * lock in the same shared memory (a holder that dies never leaves it held).
 *
 * Reads and writes are bounds-checked copies at byte offsets. By default each plain
 * smem_buffer_read/write takes the lock for its duration (read lock for reads, write lock for
 * writes) with the handle's timeout: opts->timeout_ms, 100 ms when 0;
 * smem_buffer_set_timeout() changes it. A thread that already holds the lock
 * through the same handle is not locked again: take the write lock once, then write many
 * values. With SMEM_RAW in opts->flags, plain calls take no lock at all (for callers that lock
 * for themselves or need no lock). smem_buffer_data() gives the bytes for zero-copy use.
 *
 * The lock: many readers or one writer, writers are not starved by readers, every acquire
 * has a timeout. If a holder dies (even by SIGKILL), the lock does not stay held: the next
 * acquirer gets it and is told -EOWNERDEAD once (it holds the lock; the data may be
 * inconsistent); later acquirers see 0. A reader that dies is reported to the next writer.
 * The lock belongs to the pair (thread, handle): recursion gives -EDEADLK, unlock without lock
 * -EPERM. Two handles of one buffer in one thread are two participants (they exclude each
 * other like two processes would). A child process that uses a handle inherited over fork()
 * takes part under its own identity and does not inherit the parent's locks.
 *
 * A handle opened with SMEM_RDONLY maps the buffer read-only: it cannot lock, its reads are
 * unlocked, its writes and lock calls give -EPERM.
 *
 * Concurrency: every call may run concurrently with any other on the same or other handles
 * (threads of a process may share a handle), except smem_buffer_close().
 */
#ifndef SMEM_BUFFER_H
#define SMEM_BUFFER_H

#include <smem/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct smem_buffer;

/*
 * Create a zeroed buffer of @size (> 0) bytes under @name. Returns 0 and sets *ret, or -EINVAL
 * (bad name, size 0 or too large, bad timeout), -EEXIST, -EACCES, -ENOMEM, -EDQUOT, -EUSERS,
 * -ECONNREFUSED, -EPERM. Blocks on broker round trips.
 */
int smem_buffer_create(const char *name, size_t size, const struct smem_opts *opts,
		       struct smem_buffer **ret);

/*
 * Open the buffer called @name; its size comes from shared memory. Returns 0 and sets *ret, or
 * -EINVAL, -ENOENT, -EACCES, -EMEDIUMTYPE (the name holds another kind of object: an array,
 * a ring...), -EPROTO (a header that fails validation), -EUSERS (every participant slot is
 * taken), -ECONNREFUSED, -EPERM.
 */
int smem_buffer_open(const char *name, const struct smem_opts *opts, struct smem_buffer **ret);

/*
 * Close the handle (NULL is ignored). If the calling thread holds the lock through it, it is
 * released; holds of other threads look to peers like holders that died. The creator's close
 * marks the buffer as shut down for openers; the name lives while some handle holds it.
 */
void smem_buffer_close(struct smem_buffer *b);

/*
 * Copy @len bytes to / from offset @off. Returns 0, -ERANGE (the range is not inside the
 * buffer: nothing is copied), -EINVAL (NULL with len > 0), -ETIMEDOUT (lock not acquired within
 * the handle's timeout: nothing copied), -EDEADLK (write while the calling thread holds a read
 * lock through this handle), -EPERM (write on a read-only handle), or -EOWNERDEAD: the copy
 * WAS done, and the lock had to be recovered from a dead holder (data may be inconsistent).
 * Blocks for at most the timeout.
 */
int smem_buffer_write(struct smem_buffer *b, size_t off, const void *src, size_t len);
int smem_buffer_read(struct smem_buffer *b, size_t off, void *dst, size_t len);

/* The bytes, for zero-copy use under the lock (or raw). Never fails. */
void *smem_buffer_data(const struct smem_buffer *b);
/* The size in bytes (a private copy: a peer cannot change it). Never fails. */
size_t smem_buffer_size(const struct smem_buffer *b);
const char *smem_buffer_name(const struct smem_buffer *b);
bool smem_buffer_is_owner(const struct smem_buffer *b);
/* true once the creator has closed its handle. */
bool smem_buffer_shutting_down(const struct smem_buffer *b);

/*
 * Acquire the lock for reading / writing within @timeout_ms (poll(2) style: -1 forever, 0 try
 * once). Returns 0, -EOWNERDEAD (acquired; a previous holder died, data may be inconsistent),
 * -ETIMEDOUT, -EDEADLK (the calling thread already holds it through this handle), -ENOLCK (the
 * thread holds 16 smem locks already), -EAGAIN (2^24 - 1 readers), -EPERM (read-only handle),
 * -EPROTO (lock state corrupted beyond repair while we waited).
 */
int smem_buffer_lock_read(struct smem_buffer *b, int timeout_ms);
int smem_buffer_lock_write(struct smem_buffer *b, int timeout_ms);
/* Release what the calling thread holds. 0, -EPERM (nothing held), -EPROTO (see lock.c). */
int smem_buffer_unlock(struct smem_buffer *b);

/*
 * Timeout of plain read/write calls on this handle: -1, 0 or positive ms. 0 or -EINVAL.
 * smem_buffer_timeout() gives it, or -EINVAL for a NULL handle; the accessors above give
 * NULL, 0 or false for a NULL handle.
 */
int smem_buffer_set_timeout(struct smem_buffer *b, int timeout_ms);
int smem_buffer_timeout(const struct smem_buffer *b);

/* Bytes in @n elements of @elem bytes, SIZE_MAX (always out of range) on overflow. */
static inline size_t smem__array_bytes(size_t elem, size_t n)
{
	return n != 0 && elem > SIZE_MAX / n ? SIZE_MAX : elem * n;
}

/*
 * Typed helpers. The VALUE forms copy sizeof(lvalue) bytes at byte offset @off; the ARRAY
 * forms copy @n elements of *(ptr)'s type. With GCC or Clang, WRITE_VALUE also accepts an
 * rvalue (SMEM_BUFFER_WRITE_VALUE(b, 0, 123) writes an int).
 */
#if defined(__GNUC__)
#define SMEM_BUFFER_WRITE_VALUE(b, off, value) \
	smem_buffer_write((b), (off), (__typeof__(value)[1]){ (value) }, sizeof(value))
#else
#define SMEM_BUFFER_WRITE_VALUE(b, off, lvalue) \
	smem_buffer_write((b), (off), &(lvalue), sizeof(lvalue))
#endif
#define SMEM_BUFFER_READ_VALUE(b, off, lvalue) \
	smem_buffer_read((b), (off), &(lvalue), sizeof(lvalue))
#define SMEM_BUFFER_WRITE_ARRAY(b, off, ptr, n) \
	smem_buffer_write((b), (off), (ptr), smem__array_bytes(sizeof(*(ptr)), (n)))
#define SMEM_BUFFER_READ_ARRAY(b, off, ptr, n) \
	smem_buffer_read((b), (off), (ptr), smem__array_bytes(sizeof(*(ptr)), (n)))

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
