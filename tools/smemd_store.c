/* SPDX-License-Identifier: MIT */
/*
 * Persistent names across a restart of smemd, through the service manager's fd store
 * (sd_notify(3): FDSTORE=1, FDNAME=, FDSTOREREMOVE=1; the unit needs FileDescriptorStoreMax=).
 *
 * A persistent name nobody holds lives only in the broker: without this, `systemctl restart
 * smemd` would lose it (names that are held come back anyway: their holders re-register them,
 * see src/broker_client.c). So each persistent name puts two fds in the store:
 *
 *   smemd-store.<id>.data   the name's memfd itself (the writable description when there is one)
 *   smemd-store.<id>.meta   a memfd sealed against any change, holding struct store_meta: the name,
 *                     owner, group, mode, kind, size, and the data memfd's device and inode
 *
 * FDNAME allows at most 255 characters of printable ASCII without ':', and names are 1..255
 * arbitrary bytes, so the name cannot travel in FDNAME; the metadata memfd carries it. <id>
 * is the entry's id in decimal, kept across the restart (the next ids come after the largest
 * taken back), so that the names in the store stay unique.
 *
 * At start-up the service manager hands the stored fds back with LISTEN_FDS/LISTEN_FDNAMES
 * (after the listening socket). Nothing read back is trusted: the store is the service
 * manager's, but an entry may be garbled, half-written (one fd of the pair) or stale, so each
 * one is held to the rules a CREATE is (a memfd sealed against resizing, its size, the owner
 * the kernel recorded for it, an inode no wider than the name's mode), and whatever fails is
 * logged, closed and removed from the store.
 *
 * Only the UNLINK of a name takes it out of the store; a smemd that exits (stop, restart,
 * crash) leaves the store as it is, which is the point. The layout of the metadata is in
 * docs/PROTOCOL.md ("smemd's fd store").
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "smemd_server.h"

#define STORE_PREFIX		"smemd-store."
#define STORE_MAGIC		0x54534d53u	/* "SMST" */
#define STORE_VERSION		1u
#define META_SEALS		(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

/* The metadata memfd's contents: exactly this many bytes, host byte order. */
struct store_meta {
	uint32_t magic;		/*   0: STORE_MAGIC */
	uint32_t version;	/*   4: STORE_VERSION */
	uint64_t id;		/*   8: the entry's id, as in the FDNAMEs */
	uint64_t size;		/*  16: the data memfd's size */
	uint64_t ctime_ns;	/*  24: CLOCK_REALTIME when the name was registered */
	uint64_t dev;		/*  32: the data memfd's st_dev */
	uint64_t ino;		/*  40: the data memfd's st_ino */
	uint32_t kind;		/*  48: SMEM_KIND_* */
	uint32_t mode;		/*  52: <= 0777 */
	uint32_t uid;		/*  56: owner */
	uint32_t gid;		/*  60 */
	uint32_t flags;		/*  64: SMEM_ENTRY_PERSIST */
	uint16_t name_len;	/*  68: 1..SMEM_NAME_MAX */
	uint16_t reserved;	/*  70: zero */
	char name[SMEM_NAME_MAX + 1];	/* 72: name_len bytes, then zeros */
};
_Static_assert(sizeof(struct store_meta) == 328, "store layout");
_Static_assert(offsetof(struct store_meta, kind) == 48, "store layout");
_Static_assert(offsetof(struct store_meta, name) == 72, "store layout");

enum part { PART_DATA, PART_META };

static void fdname(char *buf, size_t len, uint64_t id, enum part p)
{
	snprintf(buf, len, STORE_PREFIX "%" PRIu64 ".%s", id, p == PART_DATA ? "data" : "meta");
}

static void store_remove(const char *name)
{
	char msg[64 + 256];

	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	sd_notify(0, msg);
}

bool smem__srv_store_name_ours(const char *name)
{
	return strncmp(name, STORE_PREFIX, sizeof(STORE_PREFIX) - 1) == 0;
}

/* "smemd-store.<id>.data|meta" with <id> decimal, 1.., no leading zero. 0, or -1 for anything else. */
static int parse_fdname(const char *name, uint64_t *id, enum part *p)
{
	const char *s = name + sizeof(STORE_PREFIX) - 1;
	char *end;

	if (!smem__srv_store_name_ours(name) || *s < '1' || *s > '9')
		return -1;
	errno = 0;
	*id = strtoull(s, &end, 10);
	if (errno || *end != '.')
		return -1;
	if (strcmp(end, ".data") == 0)
		*p = PART_DATA;
	else if (strcmp(end, ".meta") == 0)
		*p = PART_META;
	else
		return -1;
	return 0;
}

/* A memfd holding @m, sealed against any change. fd or -errno. */
static int meta_make(const struct store_meta *m)
{
	int fd = memfd_create("smemd-store", MFD_CLOEXEC | MFD_ALLOW_SEALING), err;

	if (fd < 0)
		return -errno;
	if (pwrite(fd, m, sizeof(*m), 0) != (ssize_t)sizeof(*m) ||
	    fcntl(fd, F_ADD_SEALS, META_SEALS) < 0) {
		err = errno ? -errno : -EIO;
		close(fd);
		return err;
	}
	return fd;
}

static int store_fd(int fd, const char *name)
{
	char msg[64 + 256];

	/*
	 * FDPOLL=0: a memfd never hangs up, and there is nothing for the service manager to
	 * watch (systemd 246 and later; older ones ignore the key).
	 */
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
	return sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
}

void smem__srv_store_put(struct broker *b, struct entry *e)
{
	struct store_meta m = {
		.magic = STORE_MAGIC, .version = STORE_VERSION, .id = e->id, .size = e->size,
		.ctime_ns = e->ctime_ns, .dev = (uint64_t)e->dev, .ino = (uint64_t)e->ino,
		.kind = e->kind, .mode = e->mode, .uid = e->uid, .gid = e->gid,
		.flags = SMEM_ENTRY_PERSIST, .name_len = e->name_len,
	};
	char dname[64], mname[64];
	int mfd, r1, r2 = -1;

	if (!b->fdstore || !(e->flags & SMEM_ENTRY_PERSIST))
		return;
	smem__srv_store_drop(b, e);
	memcpy(m.name, e->name, e->name_len);
	fdname(dname, sizeof(dname), e->id, PART_DATA);
	fdname(mname, sizeof(mname), e->id, PART_META);
	mfd = meta_make(&m);
	if (mfd < 0) {
		fprintf(stderr, "smemd: cannot keep '%s' in the fd store: %s\n", e->name,
			strerror(-mfd));
		return;
	}
	/* The data first: a store that holds only one of the two is rejected at restore. */
	r1 = store_fd(e->fd, dname);
	if (r1 > 0)
		r2 = store_fd(mfd, mname);
	close(mfd);
	if (r1 <= 0 || r2 <= 0) {
		fprintf(stderr, "smemd: cannot keep '%s' in the fd store: %s\n", e->name,
			r1 < 0 ? strerror(-r1) : r2 < 0 ? strerror(-r2) : "no service manager");
		store_remove(dname);
		return;
	}
	e->stored = true;
}

void smem__srv_store_drop(struct broker *b, struct entry *e)
{
	char name[64];

	if (!e->stored)
		return;
	(void)b;
	fdname(name, sizeof(name), e->id, PART_DATA);
	store_remove(name);
	fdname(name, sizeof(name), e->id, PART_META);
	store_remove(name);
	e->stored = false;
}

/* ---- taking names back at start-up --------------------------------------------------- */

struct piece {
	uint64_t id;
	enum part part;
	int fd;
	const char *fdname;
};

static int piece_cmp(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (int)x->part - (int)y->part;
}

/* Read and check the metadata memfd @fd for entry @id into @m. NULL, or why it is refused. */
static const char *meta_read(int fd, uint64_t id, struct store_meta *m)
{
	struct stat st;
	int seals;
	size_t i;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return "metadata is not a memfd";
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & META_SEALS) != META_SEALS)
		return "metadata is not a sealed memfd";
	if (st.st_size != (off_t)sizeof(*m) || pread(fd, m, sizeof(*m), 0) != (ssize_t)sizeof(*m))
		return "metadata has the wrong size";
	if (m->magic != STORE_MAGIC || m->version != STORE_VERSION)
		return "metadata has an unknown magic or version";
	if (m->id != id)
		return "metadata names another entry";
	if (m->name_len == 0 || m->name_len > SMEM_NAME_MAX || memchr(m->name, 0, m->name_len))
		return "metadata has a bad name";
	for (i = m->name_len; i < sizeof(m->name); i++)
		if (m->name[i])
			return "metadata has a bad name";
	if (m->kind == 0 || m->kind > SMEM_KIND_MAX || m->mode > 0777 ||
	    m->flags != SMEM_ENTRY_PERSIST || m->reserved)
		return "metadata has a bad kind, mode or flags";
	return NULL;
}

/*
 * Check the data memfd @fd against @m as a CREATE is checked, and link it. NULL, or why it is
 * refused (the caller closes @fd then; on success it is the entry's).
 */
static const char *restore_one(struct broker *b, int fd, const struct store_meta *m)
{
	struct uidrec *owner;
	struct entry *e;
	struct stat st;
	int seals, acc;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return "data is not a memfd";
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS)
		return "data is not a memfd sealed against resizing";
	if ((uint64_t)st.st_size != m->size || st.st_size < (off_t)SMEM_HDR_SIZE)
		return "data has the wrong size";
	if ((uint64_t)st.st_dev != m->dev || (uint64_t)st.st_ino != m->ino)
		return "data is another memfd than the metadata's";
	/* The kernel's record decides the owner, as for a re-registration (root may own any). */
	if ((uint32_t)st.st_uid != m->uid && m->uid != 0)
		return "metadata claims an owner the memfd does not have";
	if (!smem__srv_inode_within(&st, m->mode, m->gid))
		return "the memfd's inode grants more than the name's mode";
	acc = fcntl(fd, F_GETFL);
	if (acc < 0)
		return "data is unreadable";
	acc &= O_ACCMODE;
	if (acc != O_RDWR && acc != O_RDONLY)
		return "data is not readable";
	if (smem__srv_lookup(b, m->name, m->name_len))
		return "the name is taken twice";
	owner = smem__srv_uid(b, m->uid, true);
	if (!owner)
		return "out of memory";
	if (!smem__srv_charge_ok(b, owner, m->size)) {
		smem__srv_uid_put(b, owner);
		return "its owner is over its limits";
	}
	e = smem__srv_entry_new(m->name, m->name_len, &st, m->kind, m->uid, m->gid, m->mode);
	if (!e) {
		smem__srv_uid_put(b, owner);
		return "out of memory";
	}
	e->fd = fd;
	e->rw_lost = acc != O_RDWR;
	e->id = m->id;
	e->ctime_ns = m->ctime_ns;
	e->flags = SMEM_ENTRY_PERSIST;
	e->stored = b->fdstore;
	if (e->id > b->next_id)
		b->next_id = e->id;
	smem__srv_link(b, e, owner);
	return NULL;
}

static void reject(const struct piece *p, const char *why)
{
	fprintf(stderr, "smemd: fd store entry '%s' rejected: %s\n", p->fdname, why);
	store_remove(p->fdname);
	close(p->fd);
}

int smem__srv_store_restore(struct broker *b, const int *fds, char *const *names, int n)
{
	struct piece *pieces;
	int i, k = 0, j, restored = 0;

	if (n <= 0)
		return 0;
	pieces = calloc((size_t)n, sizeof(*pieces));
	if (!pieces) {
		for (i = 0; i < n; i++)
			close(fds[i]);
		fprintf(stderr, "smemd: out of memory: %d fds from the fd store dropped\n", n);
		return 0;
	}
	for (i = 0; i < n; i++) {
		struct piece p = { .fd = fds[i], .fdname = names[i] };

		if (parse_fdname(names[i], &p.id, &p.part) < 0) {
			reject(&p, "not a name smemd gives (smemd-store.<id>.data or .meta)");
			continue;
		}
		pieces[k++] = p;
	}
	qsort(pieces, (size_t)k, sizeof(*pieces), piece_cmp);
	for (i = 0; i < k; i = j) {
		struct store_meta m;
		const char *why = NULL;

		/* The run of pieces with this id: exactly one data, then one meta. */
		for (j = i + 1; j < k && pieces[j].id == pieces[i].id; j++)
			;
		if (j - i != 2 || pieces[i].part != PART_DATA || pieces[i + 1].part != PART_META)
			why = j - i < 2 ? "its other half (data or meta) is missing" :
			      "more than one fd under that name";
		if (!why)
			why = meta_read(pieces[i + 1].fd, pieces[i].id, &m);
		if (!why)
			why = restore_one(b, pieces[i].fd, &m);
		if (why) {
			for (int x = i; x < j; x++)
				reject(&pieces[x], why);
			continue;
		}
		close(pieces[i + 1].fd);	/* the store keeps its own copy of both */
		restored++;
		if (b->cfg->verbose)
			fprintf(stderr, "smemd: '%s' taken back from the fd store\n", m.name);
	}
	free(pieces);
	return restored;
}
