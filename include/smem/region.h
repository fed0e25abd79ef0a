/* SPDX-License-Identifier: MIT */
/*
 * smem_region: a named, sealed, mapped memfd with a validated header.
 *
 * The creator makes a memfd of the requested size plus a one-page header, seals it against
 * shrinking and growing, and registers it with the broker under the name. Openers receive the
 * fd from the broker, validate the header against fstat(2) and the seals, and map it.
 * The name exists while some process holds it (see smem_opts.flags SMEM_PERSIST).
 */
#ifndef SMEM_REGION_H
#define SMEM_REGION_H

#include <smem/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct smem_region;

/*
 * Create a region of @size bytes (> 0) under @name and map it read-write; the data is zeroed.
 * Returns 0 and sets *ret, or -EINVAL (bad name or size), -EEXIST, -EACCES, -ENOMEM, -EDQUOT
 * (per-uid limit at the broker), -ECONNREFUSED, -EPERM. Blocks on broker round trips.
 * Thread-safe.
 */
int smem_region_create(const char *name, size_t size, const struct smem_opts *opts,
		       struct smem_region **ret);

/*
 * Open the region called @name (read-only with SMEM_RDONLY).
 * Returns 0 and sets *ret, or -EINVAL, -ENOENT, -EACCES, -EMEDIUMTYPE (the name holds another
 * kind of object), -EPROTO (header fails validation), -ECONNREFUSED, -EPERM. Blocks on broker
 * round trips.
 */
int smem_region_open(const char *name, const struct smem_opts *opts, struct smem_region **ret);

/*
 * Unmap and release. If this handle created the region, its shutdown flag is set first so
 * that openers can see the owner has gone. NULL is ignored. Not concurrent with other calls on
 * the same handle. Never waits for the broker: the release is sent without blocking, or left
 * to whichever thread is talking to the broker at the time.
 */
void smem_region_close(struct smem_region *r);

/*
 * Accessors: never fail, never block, safe from any thread while the handle is open. A NULL
 * handle gives NULL, 0 or false.
 */
void *smem_region_data(const struct smem_region *r);
size_t smem_region_size(const struct smem_region *r);
const char *smem_region_name(const struct smem_region *r);
bool smem_region_is_owner(const struct smem_region *r);
bool smem_region_shutting_down(const struct smem_region *r);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
