/* SPDX-License-Identifier: MIT */
/*
 * Regions: named, sealed, mapped memfds with a validated header (src/layout.h).
 *
 * The creator writes the whole header and the kind's object area while nobody can see the
 * memfd, publishes the magic last with a release store, seals the memfd against shrinking and
 * growing, and only then hands it to the broker. An opener trusts nothing: it checks the seals
 * (so nobody can truncate the file under its mapping and make it take SIGBUS), compares the
 * header with fstat(2), and keeps private copies of the geometry.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define REQUIRED_SEALS	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
/* How long a create waits out a broker's grace period (above any default --grace). */
#define GRACE_WAIT_S	10

int smem__name_check(const char *name)
{
	size_t len;

	if (!name)
		return -EINVAL;
	len = strnlen(name, SMEM_NAME_MAX + 1);
	if (len == 0 || len > SMEM_NAME_MAX)
		return -EINVAL;
	return 0;
}

static size_t page_size(void)
{
	static size_t cached;

	if (!cached)
		cached = (size_t)sysconf(_SC_PAGESIZE);
	return cached;
}

static struct smem_region *region_alloc(const char *name)
{
	struct smem_region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = -1;
	r->live_fd = -1;
	r->fork_gen = smem__fork_generation();
	snprintf(r->name, sizeof(r->name), "%s", name);
	return r;
}

static void region_free(struct smem_region *r)
{
	smem__live_leave(r);
	if (r->hdr)
		munmap(r->hdr, r->map_size);
	/* Once the broker gave us a hold, the fd is the hold's: it goes with the release. */
	if (r->fd >= 0 && !r->hold)
		close(r->fd);
	smem__broker_release(r->hold);
	free(r);
}

/*
 * The memfd inode's mode for a name of @mode (0: the broker's default, at most 0660). The
 * inode's group is our own, which need not be the name's (a broker with --group), so a bit
 * goes to the inode's group and others only if the name gives it to its group and to others.
 */
static mode_t inode_mode(uint32_t mode)
{
	uint32_t m = mode ? mode : 0600, go = (m >> 3) & m & 7;

	return (mode_t)((m & 0700) | (go << 3) | go);
}

/*
 * A broker in its grace period after a restart (docs/SECURITY.md) refuses plain creates with
 * -EAGAIN for a few seconds while holders re-register: wait it out, up to GRACE_WAIT_S, then
 * report -EAGAIN.
 */
static int broker_create_retry(const struct smem_opts *opts, const char *name, uint32_t kind,
			       int fd, uint32_t mode, uint32_t flags, struct smem__hold **hold)
{
	uint64_t end = smem__now_ns() + (uint64_t)GRACE_WAIT_S * 1000000000u;
	int err;

	while ((err = smem__broker_create(opts, name, kind, fd, mode, flags, hold)) == -EAGAIN &&
	       smem__now_ns() < end)
		usleep(20000);
	return err;
}

int smem__region_create(const char *name, uint32_t kind, size_t obj_size, smem__init_fn init,
			void *arg, const struct smem_opts *opts, struct smem_region **ret)
{
	return smem__region_create_sealed(name, kind, obj_size, init, arg, opts, 0, ret);
}

int smem__region_create_sealed(const char *name, uint32_t kind, size_t obj_size,
			       smem__init_fn init, void *arg, const struct smem_opts *opts,
			       uint32_t extra_seals, struct smem_region **ret)
{
	uint32_t mode = opts ? opts->mode : 0;	/* 0: the broker's default (0600, 0660 with --group) */
	uint32_t flags = opts ? opts->flags : 0;
	struct smem_region_hdr *hdr;
	struct smem_region *r;
	struct timespec now;
	size_t total, pg = page_size();
	char label[64];
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	if (!ret || obj_size == 0 || mode > 0777 || (flags & SMEM_RDONLY) ||
	    kind == 0 || kind > SMEM_KIND_MAX)
		return -EINVAL;
	/* Header page plus the object area rounded up to pages, without overflow. */
	if (obj_size > SIZE_MAX - SMEM_HDR_SIZE - pg || obj_size > (size_t)INT64_MAX / 2)
		return -EINVAL;
	total = SMEM_HDR_SIZE + ((obj_size + pg - 1) & ~(pg - 1));

	r = region_alloc(name);
	if (!r)
		return -ENOMEM;
	/* The memfd's own name only shows in /proc/PID/fd and maps: a hint for humans. */
	snprintf(label, sizeof(label), "smem:%.58s", name);
	r->fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->fd < 0) {
		err = -errno;
		goto fail;
	}
	if (ftruncate(r->fd, (off_t)total) < 0) {
		err = -errno;
		goto fail;
	}
	hdr = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (hdr == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	r->hdr = hdr;
	r->map_size = total;
	r->obj = (char *)hdr + SMEM_HDR_SIZE;
	r->obj_size = obj_size;
	r->kind = kind;
	r->owner = true;

	clock_gettime(CLOCK_REALTIME, &now);
	hdr->layout_major = SMEM_LAYOUT_MAJOR;
	hdr->layout_minor = SMEM_LAYOUT_MINOR;
	hdr->kind = kind;
	hdr->total_size = total;
	hdr->data_off = SMEM_HDR_SIZE;
	hdr->data_size = obj_size;
	hdr->create_time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	hdr->creator_uid = (uint32_t)getuid();
	hdr->creator_pid = (uint32_t)getpid();
	if (init) {
		err = init(r->obj, obj_size, arg);
		if (err)
			goto fail;
	}
	/* Release: everything above is visible to whoever sees the magic (acquire at open). */
	atomic_store_explicit(&hdr->magic, SMEM_MAGIC, memory_order_release);

	/*
	 * memfd_create makes a 0777 inode: anyone handed a read-only fd could re-open
	 * /proc/self/fd/N writable. Narrow it before anyone sees it; the broker widens it to the
	 * name's exact mode and group where it may (docs/SECURITY.md).
	 */
	if (fchmod(r->fd, inode_mode(mode)) < 0) {
		err = -errno;
		goto fail;
	}
	/* Before F_SEAL_SEAL: nothing can be added after it. Our writable mapping above stays. */
	if (fcntl(r->fd, F_ADD_SEALS, REQUIRED_SEALS | extra_seals) < 0) {
		err = -errno;
		goto fail;
	}
	err = broker_create_retry(opts, name, kind, r->fd, mode, flags, &r->hold);
	if (err)
		goto fail;
	*ret = r;
	return 0;
fail:
	region_free(r);
	return err;
}

int smem__region_validate(const struct smem_region_hdr *hdr, size_t file_size, uint32_t kind)
{
	uint64_t total, off, size;

	if (file_size < SMEM_HDR_SIZE)
		return -EPROTO;
	/* Acquire: pairs with the creator's release of the magic. */
	if (atomic_load_explicit(&hdr->magic, memory_order_acquire) != SMEM_MAGIC)
		return -EPROTO;
	if (hdr->layout_major != SMEM_LAYOUT_MAJOR)
		return -EPROTO;
	/* A valid header of another kind: the caller opened the wrong name, not corruption. */
	if (hdr->kind != kind)
		return -EMEDIUMTYPE;
	total = hdr->total_size;
	off = hdr->data_off;
	size = hdr->data_size;
	if (total != file_size || off != SMEM_HDR_SIZE || size == 0 || size > total - off)
		return -EPROTO;
	return 0;
}

/*
 * What is wrong with the object name @name holds (a header @hdr that failed validation with
 * @err), for smem_last_error(). The kind read from shared memory is only a number to name.
 */
static void region_open_error(const char *name, const struct smem_opts *opts, uint32_t kind,
			      const struct smem_region_hdr *hdr, int err)
{
	char addr[128];

	if (smem_broker_address(opts, addr, sizeof(addr)) < 0)
		snprintf(addr, sizeof(addr), "(unknown)");
	if (err == -EMEDIUMTYPE)
		smem__error(err, "name '%s' at broker %s holds a %s, not a %s (-EMEDIUMTYPE)", name,
			    addr, smem__kind_name(hdr->kind), smem__kind_name(kind));
	else
		smem__error(err, "name '%s' at broker %s: its memory fails validation as a %s "
			    "(header, size or layout version)", name, addr, smem__kind_name(kind));
}

int smem__region_open(const char *name, uint32_t kind, const struct smem_opts *opts,
		      struct smem_region **ret)
{
	uint32_t flags = opts ? opts->flags : 0;
	struct smem_region *r;
	struct stat st;
	int seals, prot, err;
	void *map;

	err = smem__name_check(name);
	if (err)
		return err;
	if (!ret || kind == 0 || kind > SMEM_KIND_MAX)
		return -EINVAL;
	r = region_alloc(name);
	if (!r)
		return -ENOMEM;
	r->rdonly = flags & SMEM_RDONLY;
	err = smem__broker_open(opts, name, flags & SMEM_RDONLY, &r->fd, &r->hold);
	if (err)
		goto fail;

	/* The broker checks this too, but the broker may be somebody else's. */
	seals = fcntl(r->fd, F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
		err = -EPROTO;
		goto fail;
	}
	if (fstat(r->fd, &st) < 0) {
		err = -errno;
		goto fail;
	}
	if (st.st_size < (off_t)SMEM_HDR_SIZE || (uint64_t)st.st_size > SIZE_MAX) {
		err = -EPROTO;
		goto fail;
	}
	prot = PROT_READ | (r->rdonly ? 0 : PROT_WRITE);
	map = mmap(NULL, (size_t)st.st_size, prot, MAP_SHARED, r->fd, 0);
	if (map == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	r->hdr = map;
	r->map_size = (size_t)st.st_size;
	err = smem__region_validate(r->hdr, r->map_size, kind);
	if (err) {
		region_open_error(name, opts, kind, r->hdr, err);
		goto fail;
	}
	r->kind = kind;
	r->obj = (char *)map + SMEM_HDR_SIZE;
	r->obj_size = (size_t)r->hdr->data_size;
	/* Read once above; a peer changing it later cannot move our private copy. */
	if (r->obj_size > r->map_size - SMEM_HDR_SIZE) {
		err = -EPROTO;
		goto fail;
	}
	*ret = r;
	return 0;
fail:
	region_free(r);
	return err;
}

void smem__region_shutdown(struct smem_region *r)
{
	if (r->rdonly)
		return;
	atomic_store_explicit(&r->hdr->shutdown, 1, memory_order_release);
	smem__futex_wake(&r->hdr->shutdown, INT32_MAX);
}

int smem_region_create(const char *name, size_t size, const struct smem_opts *opts,
		       struct smem_region **ret)
{
	return smem__region_create(name, SMEM_KIND_REGION, size, NULL, NULL, opts, ret);
}

int smem_region_open(const char *name, const struct smem_opts *opts, struct smem_region **ret)
{
	return smem__region_open(name, SMEM_KIND_REGION, opts, ret);
}

void smem_region_close(struct smem_region *r)
{
	if (!r)
		return;
	/* A child that inherited the creator's handle is not the owner going away. */
	if (r->owner && r->fork_gen == smem__fork_generation())
		smem__region_shutdown(r);
	region_free(r);
}

/* The accessors take NULL (a handle whose create failed) and answer NULL, 0 or false. */
void *smem_region_data(const struct smem_region *r)
{
	return r ? r->obj : NULL;
}

size_t smem_region_size(const struct smem_region *r)
{
	return r ? r->obj_size : 0;
}

const char *smem_region_name(const struct smem_region *r)
{
	return r ? r->name : NULL;
}

bool smem_region_is_owner(const struct smem_region *r)
{
	return r && r->owner;
}

bool smem_region_shutting_down(const struct smem_region *r)
{
	/* Acquire: pairs with the release store of the owner's close. */
	return r && atomic_load_explicit(&r->hdr->shutdown, memory_order_acquire) != 0;
}
