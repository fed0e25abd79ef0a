/* SPDX-License-Identifier: MIT */
/*
 * A region the fuzz targets build by hand (no broker): a memfd of the header plus @need bytes
 * rounded up to pages, mapped shared, described by a calloc'd smem_region whose kind and
 * contents the caller sets. Include after defining the target's CHECK(cond).
 */
#ifndef SMEM_FUZZMAP_H
#define SMEM_FUZZMAP_H

static struct smem_region *fuzz_map_region(const char *label, size_t need)
{
	size_t total = SMEM_HDR_SIZE + ((need + 4095) & ~(size_t)4095);
	struct smem_region *reg;
	void *map;
	int fd;

	fd = memfd_create(label, MFD_CLOEXEC);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)total) == 0);
	map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED);
	reg = calloc(1, sizeof(*reg));
	CHECK(reg);
	reg->hdr = map;
	reg->obj = (char *)map + SMEM_HDR_SIZE;
	reg->obj_size = need;
	reg->map_size = total;
	reg->fd = fd;
	reg->live_fd = -1;
	snprintf(reg->name, sizeof(reg->name), "%s", label);
	return reg;
}

/*
 * Scribble over the first 64 bytes of @obj as a hostile peer would: an offset byte and a
 * length byte at data[*off], then that many bytes of input (as many as are left). Advances
 * *off. False when the input has no room for the two bytes (nothing written).
 */
static inline bool fuzz_scribble_header(void *obj, const uint8_t *data, size_t size, size_t *off)
{
	size_t at, n;

	if (*off + 2 > size)
		return false;
	at = data[*off] % 64;
	n = data[*off + 1];
	*off += 2;
	if (n > size - *off)
		n = size - *off;
	memcpy((char *)obj + at, data + *off, n < 64 - at ? n : 64 - at);
	*off += n;
	return true;
}

#endif
