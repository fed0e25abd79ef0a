/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: opening a region whose memory a hostile peer wrote. The region header
 * (smem__region_validate against the real file size), then each kind's own validation of its
 * object area (buffer, array, ring) and a few calls over whatever an open accepted.
 *
 * A broker runs in a thread of this process (abstract address, nothing on disk). Per input:
 * a real object of the chosen kind and geometry is created through the public API; its bytes
 * are copied into a new memfd whose size the input may change, patched by the input, sealed
 * (or not), and registered at the broker under a second name; then it is opened by that name
 * the way any peer would, and used. The open must fail with -EPROTO (-EMEDIUMTYPE when the
 * input changed the header's kind; the broker's -EINVAL / -EPROTO for files it refuses), or
 * succeed and then never touch memory outside the file:
 * every page of the accepted object is read, so a mapping larger than the file would fault.
 *
 *   byte 0   kind: 0 region, 1 buffer, 2 array, 3 ring
 *   byte 1   geometry a (region/buffer size in 64-byte units, array element size, ring nodes)
 *   byte 2   geometry b (array length, ring node size in 8-byte units)
 *   byte 3-4 file size change in 512-byte units (int16; the copy is cut or zero-extended)
 *   byte 5   bit 0: open read-only, bit 1: do not seal the copy, bit 2: SMEM_RAW
 *   then     patches: offset (2 bytes, little-endian, from the file's start), length (1 byte),
 *            that many bytes
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "smemd.h"
#include "blob.h"
#include "ring_int.h"

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_region: check failed at line %d: %s\n", __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#define MAX_FILE	(1u << 20)

/* FUZZ_TRACE=1: say what each open returned (to check what a seed reaches). */
static void trace(const char *what, int err)
{
	if (getenv("FUZZ_TRACE"))
		fprintf(stderr, "  %s open: %d\n", what, err);
}

static struct smem_opts g_opts;
static char g_addr[64];
static struct smem__broker_config g_cfg;

static void *broker_main(void *arg)
{
	(void)arg;
	smem__broker_serve(&g_cfg);
	return NULL;
}

static void start_broker(void)
{
	struct smem__addr a;
	pthread_t t;
	int lfd;

	snprintf(g_addr, sizeof(g_addr), "@smem-fuzz-region-%d", (int)getpid());
	CHECK(smem__addr_resolve(g_addr, &a) == 0);
	CHECK(smem__broker_listen(&a, 0600, -1, &lfd) == 0);
	g_cfg.listen_fd = lfd;
	g_cfg.group = -1;
	CHECK(pthread_create(&t, NULL, broker_main, NULL) == 0);
	pthread_detach(t);
	g_opts.broker = g_addr;
	g_opts.timeout_ms = 1;	/* a lock left "held" by the patch costs 1 ms, not 100 */
	setenv("SMEM_NO_AUTOSTART", "1", 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	start_broker();
	return 0;
}

/* Every byte of [p, p+n): a mapping past the file's end would SIGBUS here. */
static unsigned touch(const void *p, size_t n)
{
	const volatile unsigned char *c = p;
	unsigned sum = 0;
	size_t i;

	for (i = 0; i < n; i += 512)
		sum += c[i];
	if (n)
		sum += c[n - 1];
	return sum;
}

/* The base object; returns its region (to copy from) and sets *close_fn's argument. */
struct base {
	int kind;
	struct smem_region *reg;
	void *h;
};

static int make_base(struct base *b, const char *name, const uint8_t *d)
{
	size_t a = d[1], bb = d[2];
	int err = -EINVAL;

	b->kind = d[0] & 3;
	switch (b->kind) {
	case 0:
		err = smem_region_create(name, 64 * (a + 1), &g_opts, (struct smem_region **)&b->h);
		if (!err)
			b->reg = b->h;
		break;
	case 1:
		err = smem_buffer_create(name, 64 * (a + 1), &g_opts, (struct smem_buffer **)&b->h);
		if (!err)
			b->reg = ((struct smem__blob *)b->h)->r;
		break;
	case 2:
		err = smem_array_create(name, a % 64 + 1, bb + 1, &g_opts,
					(struct smem_array **)&b->h);
		if (!err)
			b->reg = ((struct smem__blob *)b->h)->r;
		break;
	case 3:
		err = smem_ring_create(name, a % 64 + 2, 8 * (bb % 64 + 1), &g_opts,
				       (struct smem_ring **)&b->h);
		if (!err)
			b->reg = smem__ring_region(b->h);
		break;
	}
	return err;
}

static void close_base(struct base *b)
{
	switch (b->kind) {
	case 0: smem_region_close(b->h); break;
	case 1: smem_buffer_close(b->h); break;
	case 2: smem_array_close(b->h); break;
	case 3: smem_ring_close(b->h); break;
	}
}

/*
 * The kind field of the header as the input left it: an open of a header that is sound but
 * says another kind is -EMEDIUMTYPE (the caller named the wrong object), anything else wrong
 * is -EPROTO.
 */
static uint32_t g_hdr_kind;

static bool open_refusal_ok(int err, uint32_t kind)
{
	return err == -EPROTO || (err == -EMEDIUMTYPE && g_hdr_kind != kind);
}

/* What a locked call may say about a lock whose word a peer scribbled on (lock.h). */
static bool lock_err_ok(int err)
{
	return err == 0 || err == -ETIMEDOUT || err == -EOWNERDEAD || err == -EPROTO ||
	       err == -EAGAIN;
}

static void use_region(const char *name, const struct smem_opts *o)
{
	struct smem_region *r;
	int err = smem_region_open(name, o, &r);

	trace("region", err);
	if (err) {
		CHECK(open_refusal_ok(err, SMEM_KIND_REGION));
		return;
	}
	touch(smem_region_data(r), smem_region_size(r));
	smem_region_close(r);
}

static void use_buffer(const char *name, const struct smem_opts *o)
{
	unsigned char tmp[256];
	struct smem_buffer *b;
	size_t n;
	int err = smem_buffer_open(name, o, &b);

	trace("buffer", err);
	if (err) {
		CHECK(open_refusal_ok(err, SMEM_KIND_BUFFER));
		return;
	}
	n = smem_buffer_size(b);
	touch(smem_buffer_data(b), n);
	err = smem_buffer_read(b, 0, tmp, n < sizeof(tmp) ? n : sizeof(tmp));
	CHECK(lock_err_ok(err));
	err = smem_buffer_read(b, n, tmp, 1);
	CHECK(err == -ERANGE);
	if (!(o->flags & SMEM_RDONLY)) {
		err = smem_buffer_write(b, n - 1, tmp, 1);
		CHECK(lock_err_ok(err));
		err = smem_buffer_lock_write(b, 0);
		CHECK(lock_err_ok(err) || err == -ETIMEDOUT);
		if (err == 0 || err == -EOWNERDEAD) {
			err = smem_buffer_unlock(b);
			CHECK(err == 0 || err == -EPROTO);
		}
	}
	smem_buffer_close(b);
}

static void use_array(const char *name, const struct smem_opts *o)
{
	unsigned char tmp[64 * 4];
	struct smem_array *a;
	size_t len, es;
	int err = smem_array_open(name, 0, o, &a);

	trace("array", err);
	if (err) {
		CHECK(open_refusal_ok(err, SMEM_KIND_ARRAY));
		return;
	}
	len = smem_array_length(a);
	es = smem_array_elem_size(a);
	CHECK(es >= 1 && len >= 1);
	touch(smem_array_data(a), len * es);
	if (es <= sizeof(tmp)) {
		err = smem_array_get(a, len - 1, tmp);
		CHECK(lock_err_ok(err));
	}
	CHECK(smem_array_get(a, len, tmp) == -ERANGE || es > sizeof(tmp));
	if (!(o->flags & SMEM_RDONLY) && es <= sizeof(tmp)) {
		err = smem_array_set(a, 0, tmp);
		CHECK(lock_err_ok(err));
	}
	smem_array_close(a);
}

static void use_ring(const char *name, const struct smem_opts *o)
{
	unsigned char tmp[512];
	struct smem_ring_slot slot;
	struct smem_ring *r;
	ssize_t n;
	int err = smem_ring_open(name, o, &r);

	trace("ring", err);
	if (err) {
		CHECK(open_refusal_ok(err, SMEM_KIND_RING) ||
		      (err == -EINVAL && (o->flags & SMEM_RDONLY)));
		return;
	}
	smem_ring_set_spin(r, 0);
	n = smem_ring_next_len(r);
	CHECK(n >= 0 ? (size_t)n <= smem_ring_node_size(r) : (n == -EAGAIN || n == -EPROTO));
	n = smem_ring_read(r, tmp, sizeof(tmp), 0);
	CHECK(n >= 0 ? (size_t)n <= sizeof(tmp) :
	      (n == -ETIMEDOUT || n == -EPROTO || n == -EMSGSIZE || n == -ESHUTDOWN));
	err = smem_ring_write(r, tmp, 1, 0);
	CHECK(err == 0 || err == -ETIMEDOUT || err == -EPROTO || err == -ESHUTDOWN);
	err = smem_ring_reserve_read(r, &slot, 0);
	if (err == 0) {
		CHECK(slot.len <= smem_ring_node_size(r));
		touch(slot.data, slot.len);
		err = smem_ring_release(r, &slot);
		CHECK(err == 0 || err == -EPROTO);
	} else {
		CHECK(err == -ETIMEDOUT || err == -EPROTO || err == -ESHUTDOWN);
	}
	smem_ring_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned counter;
	char base_name[64], name[64];
	struct smem_opts o = g_opts;
	struct smem__hold *hold = NULL;
	struct base b = { 0 };
	size_t base_size, fsize, off = 6;
	int16_t delta;
	unsigned char *copy;
	int fd, err;

	if (size < 6)
		return 0;
	snprintf(base_name, sizeof(base_name), "fz-base-%u", ++counter);
	snprintf(name, sizeof(name), "fz-copy-%u", counter);
	if (make_base(&b, base_name, data))
		return 0;	/* a geometry create refuses: nothing to open */
	base_size = b.reg->map_size;
	memcpy(&delta, data + 3, sizeof(delta));
	fsize = base_size + (ssize_t)delta * 512 > 0 ? base_size + (ssize_t)delta * 512 : 0;
	if (fsize > MAX_FILE)
		fsize = MAX_FILE;
	copy = calloc(1, fsize ? fsize : 1);
	CHECK(copy);
	memcpy(copy, b.reg->hdr, fsize < base_size ? fsize : base_size);
	close_base(&b);

	while (off + 3 <= size) {
		size_t at = (size_t)data[off] | (size_t)data[off + 1] << 8, n = data[off + 2];

		off += 3;
		if (n > size - off)
			n = size - off;
		if (at < fsize)
			memcpy(copy + at, data + off, n < fsize - at ? n : fsize - at);
		off += n;
	}

	fd = memfd_create("fuzz-copy", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)fsize) == 0);
	CHECK(pwrite(fd, copy, fsize, 0) == (ssize_t)fsize);
	g_hdr_kind = fsize >= 16 ? ((struct smem_region_hdr *)(void *)copy)->kind : 0;
	free(copy);
	if (!(data[5] & 2))
		CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
	err = smem__broker_create(&o, name, (uint32_t)(b.kind == 0 ? SMEM_KIND_REGION :
					b.kind == 1 ? SMEM_KIND_BUFFER :
					b.kind == 2 ? SMEM_KIND_ARRAY : SMEM_KIND_RING),
				  fd, 0600, 0, &hold);
	if (err) {
		close(fd);	/* on success the hold owns it: closed by the release below */
		/* The broker refuses what it can see is wrong: short, unsealed. */
		CHECK(err == -EINVAL || err == -EPROTO);
		CHECK(fsize < SMEM_HDR_SIZE || (data[5] & 2));
		return 0;
	}
	o.flags = (data[5] & 1 ? SMEM_RDONLY : 0) | (data[5] & 4 ? SMEM_RAW : 0);
	switch (b.kind) {
	case 0: use_region(name, &o); break;
	case 1: use_buffer(name, &o); break;
	case 2: use_array(name, &o); break;
	case 3: use_ring(name, &o); break;
	}
	smem__broker_release(hold);
	return 0;
}
