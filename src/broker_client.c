/* SPDX-License-Identifier: MIT */
/*
 * The broker client: one shared connection per broker address, holds, and re-registration
 * with a restarted broker (docs/PROTOCOL.md). Addresses, auto-start, the wire and the
 * administration calls are in the other broker files (see broker.h).
 *
 * Connections. A process keeps one connection per broker address (struct bconn), reused by
 * every create/open/release so that an open costs one round trip. c->io serialises a request
 * and its reply (and reconnection); g_lock protects the list of connections and each one's
 * `users` count, which keeps a connection alive while a thread works on it without g_lock.
 * Lock order: c->io, then g_lock (briefly); nobody waits for an io lock while holding g_lock.
 * Nothing that can block for long (connect, auto-start, a round trip) runs under g_lock, and
 * fork() is never called with g_lock held (the atfork prepare handler takes it).
 *
 * Holds. Each create/open returns a hold: the entry id the broker gave, the region's fd, and
 * the name's owner, group and mode as the broker reported them. The hold owns the fd (the one
 * the creator sent, or the one OPEN received) and closes it when its RELEASE goes; the region
 * only borrows it, so that an open costs no dup and a close no second close(2). The broker
 * counts holds per connection, so a process that dies releases them all. RELEASE is sent
 * without waiting for a reply (SMEM_RELEASE_NOREPLY): replies stay in order because the broker
 * answers nothing else.
 *
 * Release never waits (smem_region_close() must not stall on a broker that is slow, dead, or
 * being waited for). It puts the hold on c->released, under c->plock, a lock held for a few
 * instructions, and does the RELEASE itself only if c->io is free (trylock). Whoever holds
 * c->io does the released holds before letting go of it (io_unlock) and, since a release may
 * come just after that, checks again once unlocked. A RELEASE is sent with MSG_DONTWAIT; one
 * that finds the socket full waits on c->unsent for the helper thread (POLLOUT) or the next
 * request, which sends it first so that a RELEASE still goes before a later CREATE of the name.
 *
 * Restart. A helper thread, started at the first hold and stopped by smem__broker_disconnect()
 * when there are none, polls the connections that carry holds for POLLHUP. When the broker
 * goes away it reconnects (auto-starting a broker at a private address) and re-registers every
 * hold with CREATE|REREGISTER and the kept fd, once smem__broker_connect() has checked that the
 * broker answering is one we trust (broker_peer.c): an impostor gets no fd. A request that finds
 * its connection broken does the same itself before retrying once, so whichever notices first
 * repairs the connection.
 *
 * fork(). A child must not share its parent's connection (replies would interleave): the
 * atfork child handler closes the inherited sockets and orphans the inherited holds, which the
 * child can still release (a no-op at the broker: they were the parent's).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"

struct bconn {
	struct bconn *next;
	struct smem__addr addr;
	pthread_mutex_t io;
	_Atomic int fd;			/* -1: not connected (or broken); written under io */
	uint32_t seq;
	_Atomic unsigned gen;		/* bumped when a connection is dropped; under io */
	unsigned users;			/* under g_lock */
	_Atomic unsigned nholds;	/* written under io; read by the helper as a hint */
	struct smem__hold *holds;	/* under io */
	pthread_mutex_t plock;		/* guards @released alone, for a few instructions */
	struct smem__hold *released;	/* given up, still on @holds (see "Release never waits") */
	struct smem__hold *unsent;	/* under io: off @holds, RELEASE not sent yet */
	_Atomic bool full;		/* @unsent waits for room (EAGAIN); under io, a hint elsewhere */
};

struct smem__hold {
	struct smem__hold *prev, *next;
	struct smem__hold *rnext;	/* on c->released or c->unsent */
	struct bconn *c;		/* only meaningful in the generation that made it */
	unsigned forks;			/* fork generation when made: another one means inherited */
	uint64_t id;			/* entry id at the current broker */
	int fd;				/* the region's fd (ours to close), to re-register it */
	bool lost;			/* could not be re-registered: nothing to release */
	bool rdonly;
	uint32_t kind, mode, uid, gid, eflags;
	char name[SMEM_NAME_MAX + 1];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct bconn *g_conns;
/* The helper thread (under g_lock). */
static bool g_thr_running, g_thr_stop;
static pthread_t g_thr;
static int g_thr_efd = -1;

/* ---- shared connections -------------------------------------------------------------- */

static void atfork_prepare(void)
{
	pthread_mutex_lock(&g_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&g_lock);
}

/*
 * The child has copies of our connections but must not talk on them. It does not walk the
 * hold lists either: another thread of the parent may have been changing one (they are
 * protected by c->io, which we do not take around fork). The fork generation, already bumped
 * by fork.c, marks them all inherited.
 */
static void atfork_child(void)
{
	struct bconn *c, *next;

	for (c = g_conns; c; c = next) {
		next = c->next;
		if (c->fd >= 0)
			close(c->fd);
		free(c);
	}
	g_conns = NULL;
	if (g_thr_efd >= 0)
		close(g_thr_efd);
	g_thr_efd = -1;
	g_thr_running = false;
	g_thr_stop = false;
	pthread_mutex_init(&g_lock, NULL);
}

static const struct smem__fork_ops fork_ops = {
	.prepare = atfork_prepare, .parent = atfork_parent, .child = atfork_child,
};

static void once_init(void)
{
	smem__fork_register(SMEM__FORK_BROKER, &fork_ops);
}

/* Find or make the connection for @opts' address and mark it in use. */
static int conn_get(const struct smem_opts *opts, struct bconn **ret)
{
	struct smem__addr a;
	struct bconn *c;
	int err;

	err = smem__addr_resolve(opts ? opts->broker : NULL, &a);
	if (err)
		return err;
	pthread_once(&g_once, once_init);
	pthread_mutex_lock(&g_lock);
	for (c = g_conns; c; c = c->next)
		if (c->addr.len == a.len && memcmp(&c->addr.sun, &a.sun, a.len) == 0)
			break;
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			pthread_mutex_unlock(&g_lock);
			return -ENOMEM;
		}
		c->addr = a;
		c->fd = -1;
		pthread_mutex_init(&c->io, NULL);
		pthread_mutex_init(&c->plock, NULL);
		c->next = g_conns;
		g_conns = c;
	}
	c->users++;
	pthread_mutex_unlock(&g_lock);
	*ret = c;
	return 0;
}

static void conn_put(struct bconn *c)
{
	pthread_mutex_lock(&g_lock);
	c->users--;
	pthread_mutex_unlock(&g_lock);
}

static void thread_kick(void)
{
	uint64_t one = 1;

	if (g_thr_efd >= 0 && write(g_thr_efd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread wakes anyway */
	}
}

static void hold_free(struct smem__hold *h)
{
	close(h->fd);
	free(h);
}

static void hold_detach(struct bconn *c, struct smem__hold *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		c->holds = h->next;
	if (h->next)
		h->next->prev = h->prev;
	atomic_fetch_sub(&c->nholds, 1);
}

/* With c->io held. The broker drops a connection's holds with it: nothing is left to release. */
static void conn_drop(struct bconn *c)
{
	struct smem__hold *h;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->gen++;
	while ((h = c->unsent)) {
		c->unsent = h->rnext;
		hold_free(h);
	}
	atomic_store(&c->full, false);
}

/*
 * With c->io held: take the holds given up meanwhile off the connection and send their
 * RELEASEs. @block: the caller is about to wait for the broker anyway (a request), so it waits
 * for room on the socket too; otherwise what does not fit stays on c->unsent for the helper.
 */
static void releases_flush(struct bconn *c, bool block)
{
	struct smem__hold *list, *h;

	pthread_mutex_lock(&c->plock);
	list = c->released;
	c->released = NULL;
	pthread_mutex_unlock(&c->plock);
	while ((h = list)) {
		list = h->rnext;
		hold_detach(c, h);
		h->rnext = c->unsent;
		c->unsent = h;
	}
	while ((h = c->unsent)) {
		if (c->fd >= 0 && !h->lost) {
			struct smem_msg_release rel = { .id = h->id, .flags = SMEM_RELEASE_NOREPLY };
			struct smem__req r = { .op = SMEM_OP_RELEASE, .p1 = &rel, .l1 = sizeof(rel),
					       .send_fd = -1, .noreply = true, .dontwait = !block };
			bool broken;

			if (smem__broker_xfer(c->fd, &c->seq, &r, &broken) == -EAGAIN) {
				atomic_store(&c->full, true);
				thread_kick();	/* to poll for POLLOUT */
				return;
			}
			if (broken) {
				conn_drop(c);	/* frees h and the rest */
				return;
			}
		}
		c->unsent = h->rnext;
		hold_free(h);
	}
	atomic_store(&c->full, false);
}

/* Let go of c->io, doing first the releases handed over while we held it. */
static void io_unlock(struct bconn *c)
{
	bool more;

	for (;;) {
		releases_flush(c, false);
		pthread_mutex_unlock(&c->io);
		/*
		 * A release that came after our flush found io taken and left its hold to us.
		 * If io is free now, do it; if not, its new holder will.
		 */
		pthread_mutex_lock(&c->plock);
		more = c->released != NULL;
		pthread_mutex_unlock(&c->plock);
		if (!more || pthread_mutex_trylock(&c->io) != 0)
			return;
	}
}

static int reregister(struct bconn *c, struct smem__hold *h, bool *broken)
{
	struct smem_msg_create m = {
		.size = 0, .kind = h->kind, .mode = h->mode, .uid = h->uid, .gid = h->gid,
		.flags = SMEM_CREATE_REREGISTER |
			 ((h->eflags & SMEM_ENTRY_PERSIST) ? SMEM_CREATE_PERSIST : 0),
		.name_len = (uint16_t)strlen(h->name),
	};
	unsigned char rep[SMEM__ENTRY_REPLY_MAX];
	struct smem__req r = { .op = SMEM_OP_CREATE, .p1 = &m, .l1 = sizeof(m), .p2 = h->name,
			       .l2 = m.name_len, .send_fd = h->fd, .rbuf = rep,
			       .rcap = sizeof(rep) };
	struct smem__entry_info e;
	int err;

	err = smem__broker_xfer(c->fd, &c->seq, &r, broken);
	if (err)
		return err;
	err = smem__entry_parse(rep, r.rlen, &e, NULL);
	if (err)
		return err;
	h->id = e.id;
	return 0;
}

/*
 * (Re)connect @c (c->io held) and re-register its holds. A hold the new broker refuses (the
 * name was taken by another object meanwhile, or a mode that no longer lets us in) is lost:
 * our mapping still works, the name is just no longer ours to keep alive.
 */
static int conn_connect(struct bconn *c, unsigned how)
{
	struct smem__hold *h;
	bool broken;
	int fd, err;

	conn_drop(c);
	releases_flush(c, false);	/* no connection: they are just freed, not re-registered */
	fd = smem__broker_connect(&c->addr, how);
	if (fd < 0)
		return fd;
	err = smem__broker_greet(fd, &c->seq, NULL);
	if (err) {
		struct smem__req hello = { .op = SMEM_OP_HELLO };

		close(fd);
		/* A broker that refuses us for a reason (a cap of our uid) says which. */
		err = err == -ECONNREFUSED || err == -EDQUOT || err == -EMFILE ? err : -EPROTO;
		return smem__broker_error(&c->addr, &hello, err);
	}
	c->fd = fd;
	for (h = c->holds; h; h = h->next) {
		if (h->lost)
			continue;
		err = reregister(c, h, &broken);
		if (broken) {
			conn_drop(c);
			return -ECONNREFUSED;
		}
		if (err)
			h->lost = true;
	}
	thread_kick();
	return 0;
}

/*
 * A request on @c with c->io held: (re)connects as needed and retries once if it broke.
 * Pending RELEASEs go first, in order with it.
 */
static int request(struct bconn *c, struct smem__req *r)
{
	bool broken = false;
	int attempt, err = -ECONNREFUSED;

	releases_flush(c, true);
	for (attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0) {
			err = conn_connect(c, SMEM__CONNECT_START | SMEM__CONNECT_WAIT);
			if (err)
				return err;
		}
		err = smem__broker_xfer(c->fd, &c->seq, r, &broken);
		if (!broken)
			return err ? smem__broker_error(&c->addr, r, err) : 0;
		conn_drop(c);
	}
	return smem__broker_error(&c->addr, r, err);
}

/* ---- the helper thread --------------------------------------------------------------- */

#define THR_MAX_POLL	64

static void *helper_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pfd[THR_MAX_POLL + 1];
		struct bconn *conns[THR_MAX_POLL + 1];
		unsigned gens[THR_MAX_POLL + 1];
		int n = 1, i, timeout = -1;
		struct bconn *c;
		uint64_t v;

		pthread_mutex_lock(&g_lock);
		if (g_thr_stop) {
			pthread_mutex_unlock(&g_lock);
			break;
		}
		pfd[0] = (struct pollfd){ .fd = g_thr_efd, .events = POLLIN };
		for (c = g_conns; c && n <= THR_MAX_POLL; c = c->next) {
			int fd = c->fd;
			bool full = atomic_load_explicit(&c->full, memory_order_relaxed);

			if (!atomic_load_explicit(&c->nholds, memory_order_relaxed) && !full)
				continue;
			/* A connection that failed to come back is retried on a timer. */
			if (fd < 0)
				timeout = 200;
			/*
			 * Never POLLIN: the replies are meant for requests. POLLOUT while RELEASEs
			 * wait for room; POLLHUP/POLLERR always.
			 */
			pfd[n] = (struct pollfd){ .fd = fd, .events = full ? POLLOUT : 0 };
			conns[n] = c;
			gens[n] = c->gen;
			n++;
		}
		pthread_mutex_unlock(&g_lock);

		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
			usleep(10000);
		if (pfd[0].revents && read(g_thr_efd, &v, sizeof(v)) < 0) {
			/* nothing to drain */
		}
		for (i = 1; i < n; i++) {
			if (pfd[i].fd >= 0 && !pfd[i].revents)
				continue;
			pthread_mutex_lock(&g_lock);
			for (c = g_conns; c && c != conns[i]; c = c->next)
				;
			if (c)
				c->users++;
			pthread_mutex_unlock(&g_lock);
			if (!c)
				continue;
			pthread_mutex_lock(&c->io);
			/* Unless a request repaired it meanwhile. */
			if (c->gen == gens[i] && atomic_load(&c->nholds) &&
			    (pfd[i].fd < 0 || (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL))))
				conn_connect(c, SMEM__CONNECT_START);
			io_unlock(c);	/* sends what waited for POLLOUT */
			conn_put(c);
		}
	}
	return NULL;
}

/* Called with g_lock held when a connection gets its first hold. */
static void thread_ensure(void)
{
	if (g_thr_running) {
		thread_kick();
		return;
	}
	g_thr_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g_thr_efd < 0)
		return;	/* holds are still counted; only re-registration is lost */
	g_thr_stop = false;
	/*
	 * Started, not just created, when we return: the caller (a create or open) may fork
	 * next, and a child must not copy a half-started thread's runtime locks (fork.h).
	 */
	if (smem__thread_start(&g_thr, helper_main, NULL) != 0) {
		close(g_thr_efd);
		g_thr_efd = -1;
		return;
	}
	g_thr_running = true;
}

static void hold_attach(struct bconn *c, struct smem__hold *h)
{
	h->c = c;
	h->forks = smem__fork_generation();
	h->prev = NULL;
	h->next = c->holds;
	if (c->holds)
		c->holds->prev = h;
	c->holds = h;
	if (atomic_fetch_add(&c->nholds, 1) == 0) {
		pthread_mutex_lock(&g_lock);
		thread_ensure();
		pthread_mutex_unlock(&g_lock);
	}
}

/* A hold on @e that owns @fd from now on (NULL without memory: @fd stays the caller's). */
static struct smem__hold *hold_new(const char *name, int fd, const struct smem__entry_info *e,
				   bool rdonly)
{
	struct smem__hold *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->fd = fd;
	h->id = e->id;
	h->rdonly = rdonly;
	h->kind = e->kind;
	h->mode = e->mode;
	h->uid = e->uid;
	h->gid = e->gid;
	h->eflags = e->flags;
	snprintf(h->name, sizeof(h->name), "%s", name);
	return h;
}

/*
 * Send @r (a CREATE or an OPEN of @name) on the connection for @opts and take a hold on the
 * entry its reply describes, which owns the region's fd (the one sent, or the one received)
 * from then on. A hold we cannot make gives the name back and leaves the fd to the caller.
 * 0 (*ret set) or a negative errno.
 */
static int request_hold(const struct smem_opts *opts, struct smem__req *r, const char *name,
			bool rdonly, struct smem__hold **ret)
{
	unsigned char rep[SMEM__ENTRY_REPLY_MAX];
	struct smem__entry_info e;
	struct smem__hold *h;
	struct bconn *c;
	int err;

	r->rbuf = rep;
	r->rcap = sizeof(rep);
	err = conn_get(opts, &c);
	if (err)
		return err;
	pthread_mutex_lock(&c->io);
	err = request(c, r);
	if (!err && smem__entry_parse(rep, r->rlen, &e, NULL) < 0)
		err = smem__broker_error(&c->addr, r, -EPROTO);
	if (!err) {
		h = hold_new(name, r->recv_fd ? *r->recv_fd : r->send_fd, &e, rdonly);
		if (h) {
			hold_attach(c, h);
			*ret = h;
		} else {
			/* We could not keep it: give the name back. */
			struct smem_msg_release rel = { .id = e.id, .flags = SMEM_RELEASE_NOREPLY };
			struct smem__req rr = { .op = SMEM_OP_RELEASE, .p1 = &rel, .l1 = sizeof(rel),
						.send_fd = -1, .noreply = true };

			request(c, &rr);
			err = -ENOMEM;
		}
	}
	io_unlock(c);
	conn_put(c);
	return err;
}

/* ---- the contract in internal.h ------------------------------------------------------ */

int smem__broker_create(const struct smem_opts *opts, const char *name, uint32_t kind, int fd,
			uint32_t mode, uint32_t flags, struct smem__hold **ret)
{
	struct smem_msg_create m = { .kind = kind, .mode = mode };
	struct smem__req r = { .op = SMEM_OP_CREATE, .p1 = &m, .l1 = sizeof(m), .send_fd = fd };
	struct stat st;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	if (!ret || fd < 0 || mode > 0777 || (flags & ~(SMEM_PERSIST | SMEM_RAW)))
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	m.size = (uint64_t)st.st_size;
	m.flags = (flags & SMEM_PERSIST) ? SMEM_CREATE_PERSIST : 0;
	m.name_len = (uint16_t)strlen(name);
	r.p2 = name;
	r.l2 = m.name_len;
	return request_hold(opts, &r, name, false, ret);
}

int smem__broker_open(const struct smem_opts *opts, const char *name, uint32_t flags,
		      int *fd_out, struct smem__hold **ret)
{
	struct smem_msg_name m = { .flags = (flags & SMEM_RDONLY) ? SMEM_OPEN_RDONLY : 0 };
	int fd = -1;
	struct smem__req r = { .op = SMEM_OP_OPEN, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
			       .recv_fd = &fd };
	struct smem__hold *h = NULL;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	if (!fd_out || !ret)
		return -EINVAL;
	m.name_len = (uint16_t)strlen(name);
	r.p2 = name;
	r.l2 = m.name_len;
	err = request_hold(opts, &r, name, flags & SMEM_RDONLY, &h);
	if (err) {
		if (fd >= 0)
			close(fd);
		return err;
	}
	*fd_out = fd;
	*ret = h;
	return 0;
}

/* Never blocks on the broker nor on another thread's request (see "Release never waits"). */
void smem__broker_release(struct smem__hold *h)
{
	struct bconn *c;

	if (!h)
		return;
	/* An inherited hold is the parent's at the broker: just forget it. */
	c = h->forks == smem__fork_generation() ? h->c : NULL;
	if (!c) {
		hold_free(h);
		return;
	}
	/* Keeps c alive until we are done, even if another thread frees h meanwhile. */
	pthread_mutex_lock(&g_lock);
	c->users++;
	pthread_mutex_unlock(&g_lock);
	pthread_mutex_lock(&c->plock);
	h->rnext = c->released;
	c->released = h;
	pthread_mutex_unlock(&c->plock);
	if (pthread_mutex_trylock(&c->io) == 0)
		io_unlock(c);
	conn_put(c);
}

/* Send every RELEASE still waiting, blocking: the caller wants the holds' fds closed now. */
static void conns_flush(void)
{
	struct bconn *c, *next;

	/*
	 * Mark every connection in use: none of them can be freed, and new ones go in at the
	 * head, so the chain from the head we read stays as it is.
	 */
	pthread_mutex_lock(&g_lock);
	for (c = g_conns; c; c = c->next)
		c->users++;
	c = g_conns;
	pthread_mutex_unlock(&g_lock);
	for (; c; c = next) {
		pthread_mutex_lock(&c->io);
		releases_flush(c, true);
		io_unlock(c);
		pthread_mutex_lock(&g_lock);
		next = c->next;
		c->users--;
		pthread_mutex_unlock(&g_lock);
	}
}

void smem__broker_disconnect(void)
{
	struct bconn **pp, *c;
	bool holds = false, join = false;

	conns_flush();
	pthread_mutex_lock(&g_lock);
	for (pp = &g_conns; (c = *pp);) {
		if (c->users == 0 && atomic_load(&c->nholds) == 0 && atomic_load(&c->full) == 0) {
			*pp = c->next;
			if (c->fd >= 0)
				close(c->fd);
			pthread_mutex_destroy(&c->io);
			pthread_mutex_destroy(&c->plock);
			free(c);
			continue;
		}
		if (atomic_load(&c->nholds) || atomic_load(&c->full))
			holds = true;
		pp = &c->next;
	}
	if (!holds && g_thr_running && !g_thr_stop) {
		g_thr_stop = true;
		thread_kick();
		join = true;
	}
	pthread_mutex_unlock(&g_lock);
	if (!join)
		return;
	pthread_join(g_thr, NULL);
	pthread_mutex_lock(&g_lock);
	close(g_thr_efd);
	g_thr_efd = -1;
	g_thr_running = false;
	g_thr_stop = false;
	/* A hold taken while we were stopping the thread starts it again. */
	for (c = g_conns; c; c = c->next)
		if (atomic_load(&c->nholds) || atomic_load(&c->full)) {
			thread_ensure();
			break;
		}
	pthread_mutex_unlock(&g_lock);
}

int smem_unlink(const char *name, const struct smem_opts *opts)
{
	struct smem_msg_name m = { 0 };
	struct smem__req r = { .op = SMEM_OP_UNLINK, .p1 = &m, .l1 = sizeof(m), .send_fd = -1 };
	struct bconn *c;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	m.name_len = (uint16_t)strlen(name);
	r.p2 = name;
	r.l2 = m.name_len;
	err = conn_get(opts, &c);
	if (err)
		return err;
	pthread_mutex_lock(&c->io);
	err = request(c, &r);
	io_unlock(c);
	conn_put(c);
	return err;
}
