/* SPDX-License-Identifier: MIT */
/*
 * Batched ring calls (smem_ring_read_many, smem_ring_write_many, ring.h): many messages per
 * call, for callers whose own cost per call dominates (an interpreter through an FFI, such as
 * the Python package over ctypes, where one foreign call costs more than copying a 1 KiB
 * message). They are loops over the public smem_ring_read()/smem_ring_write(): no protocol
 * of their own, so a batch is not atomic (other readers and writers interleave), and each
 * message keeps every guarantee of the single calls.
 *
 * Only the first message may wait: after it, a batch takes what is there with timeout-0
 * calls (two loads of shared memory each when the ring is empty or full), so a batch never
 * holds back messages it already has while waiting for more.
 */
#include <errno.h>

#include <smem/ring.h>

ssize_t smem_ring_read_many(struct smem_ring *r, void *dst, size_t cap, size_t *lens,
			    size_t max, int timeout_ms)
{
	unsigned char *out = dst;
	size_t n = 0, used = 0;
	ssize_t len;

	if (!r || !lens || !max || (!dst && cap))
		return -EINVAL;
	len = smem_ring_read(r, out, cap, timeout_ms);
	while (len >= 0) {
		lens[n++] = (size_t)len;
		used += (size_t)len;
		if (n == max)
			break;
		/* A message longer than the room left fails with -EMSGSIZE and stays in the
		 * ring for the next call, as every error after the first message does. */
		len = smem_ring_read(r, out ? out + used : NULL, cap - used, 0);
	}
	return n ? (ssize_t)n : len;
}

ssize_t smem_ring_write_many(struct smem_ring *r, const void *src, const size_t *lens,
			     size_t count, int timeout_ms)
{
	const unsigned char *in = src;
	size_t n = 0, off = 0;
	int ret;

	if (!r || !lens || !count || !src)
		return -EINVAL;
	for (; n < count; n++) {
		/* The first waits up to @timeout_ms for room, the others take what room there
		 * is: a full ring ends the batch (the caller calls again for the rest). */
		ret = smem_ring_write(r, in + off, lens[n], n ? 0 : timeout_ms);
		if (ret)
			return n ? (ssize_t)n : ret;
		off += lens[n];
	}
	return (ssize_t)n;
}
