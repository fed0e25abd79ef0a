/* SPDX-License-Identifier: MIT */
/*
 * The broker client: addresses, auto-start, one shared connection per broker address, holds,
 * and re-registration with a restarted broker (docs/PROTOCOL.md).
 *
 * Connections. A process keeps one connection per broker address (struct bconn), reused by
 * every create/open/release so that an open costs one round trip. c->io serialises a request
 * and its reply (and reconnection); g_lock protects the list of connections and each one's
 * `users` count, which keeps a connection alive while a thread works on it without g_lock.
 * Lock order: c->io, then g_lock (briefly); nobody waits for an io lock while holding g_lock.
 * Nothing that can block for long (connect, auto-start, a round trip) runs under g_lock, and
 * fork() is never called with g_lock held (the atfork prepare handler takes it).
 *
 * Holds. Each create/open returns a hold: the entry id the broker gave, a dup of the region's
 * fd, and the name's owner, group and mode as the broker reported them. The broker counts holds
 * per connection, so a process that dies releases them all. RELEASE is sent without waiting for
 * a reply (SMEM_RELEASE_NOREPLY): replies stay in order because the broker answers nothing else.
 *
 * Restart. A helper thread, started at the first hold and stopped by smem__broker_disconnect()
 * when there are none, polls the connections that carry holds for POLLHUP. When the broker
 * goes away it reconnects (auto-starting a broker when allowed) and re-registers every hold
 * with CREATE|REREGISTER and the kept fd. A request that finds its connection broken does the
 * same itself before retrying once, so whichever notices first repairs the connection.
 *
 * fork(). A child must not share its parent's connection (replies would interleave): the
 * atfork child handler closes the inherited sockets and orphans the inherited holds, which the
 * child can still release (a no-op at the broker: they were the parent's).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"

#define AUTOSTART_IDLE_S	30	/* an auto-started broker exits after this long unused */
#define CONNECT_WAIT_MS		2000	/* how long to retry connect after starting a broker */
#define IO_TIMEOUT_S		10	/* a broker that does not answer for this long is broken */

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
};

struct smem__hold {
	struct smem__hold *prev, *next;
	struct bconn *c;		/* only meaningful while forks == g_forks */
	unsigned forks;			/* g_forks when made: a different value means inherited */
	uint64_t id;			/* entry id at the current broker */
	int fd;				/* dup of the region's fd, to re-register it */
	bool lost;			/* could not be re-registered: nothing to release */
	bool rdonly;
	uint32_t kind, mode, uid, gid, eflags;
	char name[SMEM_NAME_MAX + 1];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct bconn *g_conns;
/* Bumped in every fork child: holds made before belong to the parent's connection. */
static unsigned g_forks;

/* The helper thread (under g_lock). */
static bool g_thr_running, g_thr_stop;
static pthread_t g_thr;
static int g_thr_efd = -1;

/* ---- addresses ----------------------------------------------------------------------- */

int smem__addr_resolve(const char *addr, struct smem__addr *out)
{
	struct smem__addr a;
	char buf[sizeof(a.text) + 32];
	const char *env;
	size_t n;

	memset(&a, 0, sizeof(a));
	if (!addr || !*addr) {
		env = getenv("SMEM_BROKER");
		if (env && *env)
			addr = env;
	}
	if (!addr || !*addr) {
		env = getenv("XDG_RUNTIME_DIR");
		if (env && env[0] == '/')
			snprintf(buf, sizeof(buf), "%s/smem/broker.sock", env);
		else
			snprintf(buf, sizeof(buf), "/tmp/smem-%u/broker.sock", (unsigned)geteuid());
		addr = buf;
		a.is_default = true;
	}
	n = strlen(addr);
	if (n >= sizeof(a.sun.sun_path) || (addr[0] == '@' && n < 2))
		return -EINVAL;
	memcpy(a.text, addr, n + 1);
	a.sun.sun_family = AF_UNIX;
	if (addr[0] == '@') {
		/* Abstract: a leading NUL, then the name, and the length says where it ends. */
		a.abstract = true;
		memcpy(a.sun.sun_path + 1, addr + 1, n - 1);
		a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		memcpy(a.sun.sun_path, addr, n);
		a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	*out = a;
	return 0;
}

/* The directory of a path socket ("." for a bare name). */
static void addr_dir(const struct smem__addr *a, char *dir, size_t len)
{
	char *slash;

	snprintf(dir, len, "%s", a->text);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, len, ".");
	else if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
}

/*
 * The default directories are ours alone: create them 0700, and refuse one that somebody else
 * owns or that others can enter (they could plant a socket of their own in it).
 */
static int default_dir_prepare(const struct smem__addr *a)
{
	char dir[sizeof(a->text)];
	struct stat st;

	if (!a->is_default)
		return 0;
	addr_dir(a, dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return -EACCES;
	return 0;
}

static int sock_connect(const struct smem__addr *a)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int fd, err;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&a->sun, a->len) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int smem__broker_listen(const struct smem__addr *a, uint32_t mode, long gid, int *lfd)
{
	char dir[sizeof(a->text)];
	struct stat st;
	int dfd = -1, fd, err;

	err = default_dir_prepare(a);
	if (err)
		return err;
	if (!a->abstract) {
		/*
		 * Whoever holds the directory's lock decides whether the socket there is live
		 * or stale: racing starters serialise here and all but the first find a broker.
		 * Locking the directory leaves no lock file behind.
		 */
		addr_dir(a, dir, sizeof(dir));
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		if (flock(dfd, LOCK_EX) < 0) {
			err = -errno;
			goto out;
		}
	}
	fd = sock_connect(a);
	if (fd >= 0) {
		close(fd);
		err = -EADDRINUSE;
		goto out;
	}
	if (!a->abstract && lstat(a->text, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			err = -EEXIST;	/* never remove somebody's file */
			goto out;
		}
		unlink(a->text);	/* stale: nobody listens, and we hold the lock */
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (bind(fd, (const struct sockaddr *)&a->sun, a->len) < 0 ||
	    (!a->abstract && chmod(a->text, mode) < 0) ||
	    (!a->abstract && gid >= 0 && chown(a->text, (uid_t)-1, (gid_t)gid) < 0) ||
	    listen(fd, 128) < 0) {
		err = errno == EADDRINUSE ? -EADDRINUSE : -errno;
		close(fd);
		goto out;
	}
	*lfd = fd;
	err = 0;
out:
	if (dfd >= 0)
		close(dfd);	/* drops the flock */
	return err;
}

/* ---- auto-start ---------------------------------------------------------------------- */

/* The grandchild: a detached broker serving @lfd. Never returns. */
static void __attribute__((noreturn)) broker_child(const struct smem__addr *a, int lfd)
{
	struct smem__broker_config cfg = { .group = -1, .idle_exit_s = AUTOSTART_IDLE_S };
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2 };
	char path[sizeof(a->text) + 4096];
	const char *idle = getenv("SMEM_BROKER_IDLE_EXIT");
	sigset_t none;
	unsigned i;
	int null;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 0; i < SMEM__ARRAY_SIZE(sigs); i++)
		signal(sigs[i], SIG_DFL);
	/* Keep the listening socket above stdio, then close everything else we inherited. */
	if (lfd < 3) {
		int moved = fcntl(lfd, F_DUPFD_CLOEXEC, 3);

		if (moved < 0)
			_exit(1);
		lfd = moved;
	}
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (lfd > 3)
		close_range(3, (unsigned)lfd - 1, 0);
	close_range((unsigned)lfd + 1, ~0u, 0);

	if (!a->abstract) {
		/* Absolute, so that the socket can be removed at exit after chdir("/"). */
		if (a->text[0] == '/' || !getcwd(path, sizeof(path) - sizeof(a->text) - 2))
			snprintf(path, sizeof(path), "%s", a->text);
		else
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s", a->text);
		cfg.path = path;
	}
	if (chdir("/") < 0) {
		/* not fatal: we only keep a directory busy */
	}
	if (idle && *idle)
		cfg.idle_exit_s = atoi(idle);
	cfg.listen_fd = lfd;
	_exit(smem__broker_serve(&cfg) < 0 ? 1 : 0);
}

/*
 * Start a broker at @a unless one answers (the check and the bind happen under the directory
 * lock, see smem__broker_listen()). The listening socket exists before we return, so a connect
 * right after succeeds even if the broker has not reached its loop yet.
 */
static int autostart(const struct smem__addr *addr)
{
	/* A copy: @addr may live in a connection, which the atfork child handler frees. */
	const struct smem__addr copy = *addr, *a = &copy;
	int lfd, err, status;
	pid_t pid;

	err = smem__broker_listen(a, 0600, -1, &lfd);
	if (err == -EADDRINUSE)
		return 0;
	if (err)
		return err;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(lfd);
		return err;
	}
	if (pid == 0) {
		/* Double fork and a session of its own: no zombie, no controlling terminal. */
		pid_t grandchild;

		setsid();
		grandchild = fork();
		if (grandchild != 0)
			_exit(grandchild < 0 ? 1 : 0);
		broker_child(a, lfd);
	}
	close(lfd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static bool autostart_allowed(void)
{
	const char *e = getenv("SMEM_NO_AUTOSTART");

	return !(e && strcmp(e, "1") == 0);
}

/* Connect to @a, starting a broker if none answers and that is allowed. fd or -errno. */
static int connect_broker(const struct smem__addr *a, bool may_start)
{
	uint64_t deadline = 0;
	unsigned delay_us = 1000;
	bool started = false;
	int fd, err;

	for (;;) {
		fd = sock_connect(a);
		if (fd >= 0)
			return fd;
		if (fd != -ENOENT && fd != -ECONNREFUSED)
			return fd == -EACCES ? -EACCES : -ECONNREFUSED;
		if (!may_start || !autostart_allowed())
			return -ECONNREFUSED;
		if (!started) {
			err = autostart(a);
			if (err)
				return err == -EACCES ? -EACCES : -ECONNREFUSED;
			started = true;
			deadline = smem__now_ns() + CONNECT_WAIT_MS * 1000000ull;
			continue;
		}
		if (smem__now_ns() >= deadline)
			return -ECONNREFUSED;
		usleep(delay_us);
		if (delay_us < 50000)
			delay_us *= 2;
	}
}

/* ---- messages ------------------------------------------------------------------------ */

struct req {
	uint16_t op;
	const void *p1, *p2;		/* payload in two pieces (fixed part, name) */
	size_t l1, l2;
	int send_fd;			/* -1: none */
	bool noreply;
	void *rbuf;			/* reply payload */
	size_t rcap, rlen;
	int *recv_fd;			/* NULL: no fd expected */
};

/* Broker-side protocol errors are our bug or a foreign broker: -EPROTO to callers. */
static int map_status(int32_t st)
{
	switch (st) {
	case -EBADMSG: case -EOPNOTSUPP: case -EPROTONOSUPPORT: case -EMSGSIZE:
		return -EPROTO;
	default:
		return st > 0 ? -EPROTO : st;
	}
}

/*
 * One round trip on @fd. Returns the broker's status; *broken is set (and -ECONNREFUSED
 * returned) when the connection failed, so that the caller reconnects.
 */
static int xfer(int fd, uint32_t *seqp, struct req *r, bool *broken)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct smem_msg_hdr h = {
		.version = SMEM_PROTO_VERSION, .op = r->op, .length = (uint32_t)(r->l1 + r->l2),
		.seq = ++*seqp,
	};
	struct iovec iov[3] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)r->p1, .iov_len = r->l1 },
		{ .iov_base = (void *)r->p2, .iov_len = r->l2 },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
	struct cmsghdr *cmsg;
	unsigned char small[512];
	unsigned char *buf;
	size_t cap;
	ssize_t n;
	int st;

	*broken = false;
	if (r->send_fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &r->send_fd, sizeof(int));
	}
	while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n < 0) {
		*broken = true;
		return -ECONNREFUSED;
	}
	if (r->noreply)
		return 0;

	cap = sizeof(struct smem_msg_hdr) + r->rcap;
	buf = cap <= sizeof(small) ? small : malloc(cap);
	if (!buf) {
		*broken = true;	/* the reply would be left unread: start afresh */
		return -ENOMEM;
	}
	for (;;) {
		int fds[4], nfds = 0, i;

		iov[0].iov_base = buf;
		iov[0].iov_len = cap;
		msg = (struct msghdr){ .msg_iov = iov, .msg_iovlen = 1,
				       .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		for (cmsg = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cmsg;
		     cmsg = CMSG_NXTHDR(&msg, cmsg)) {
			if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
				continue;
			for (i = 0; i < (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int)); i++)
				if (nfds < 4)
					memcpy(&fds[nfds++], CMSG_DATA(cmsg) + i * sizeof(int),
					       sizeof(int));
		}
		if (n <= 0) {
			for (i = 0; i < nfds; i++)
				close(fds[i]);
			*broken = true;
			st = -ECONNREFUSED;
			goto done;
		}
		memcpy(&h, buf, n >= (ssize_t)sizeof(h) ? sizeof(h) : 0);
		if (n < (ssize_t)sizeof(h) || h.seq != *seqp) {
			/* Not ours (a stale reply): drop it with whatever it carried. */
			for (i = 0; i < nfds; i++)
				close(fds[i]);
			if (n < (ssize_t)sizeof(h)) {
				*broken = true;
				st = -EPROTO;
				goto done;
			}
			continue;
		}
		st = map_status(h.status);
		if (h.version != SMEM_PROTO_VERSION || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
		    h.length != (size_t)n - sizeof(h))
			st = -EPROTO;
		if (st == 0 && r->recv_fd && nfds != 1)
			st = -EPROTO;
		if (st == 0 && !r->recv_fd && nfds != 0)
			st = -EPROTO;
		if (st == 0 && r->recv_fd) {
			*r->recv_fd = fds[0];
			nfds = 0;
		}
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		if (st == 0) {
			r->rlen = (size_t)n - sizeof(h);
			if (r->rbuf)
				memcpy(r->rbuf, buf + sizeof(h), r->rlen);
		}
		goto done;
	}
done:
	if (buf != small)
		free(buf);
	return st;
}

static int hello(int fd, uint32_t *seq, struct smem__broker_info *info)
{
	struct smem_msg_hello m = { .version = SMEM_PROTO_VERSION };
	struct smem_msg_hello_reply rep;
	struct req r = { .op = SMEM_OP_HELLO, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
			 .rbuf = &rep, .rcap = sizeof(rep) };
	bool broken;
	int err;

	err = xfer(fd, seq, &r, &broken);
	if (err)
		return err;
	if (r.rlen != sizeof(rep) || rep.version != SMEM_PROTO_VERSION)
		return -EPROTO;
	if (info) {
		info->version = rep.version;
		info->pid = rep.pid;
		info->uid = rep.uid;
	}
	return 0;
}

static int parse_entry(const unsigned char *p, size_t len, struct smem__entry_info *out,
		       size_t *used)
{
	struct smem_msg_entry e;
	size_t n;

	if (len < sizeof(e))
		return -EPROTO;
	memcpy(&e, p, sizeof(e));
	if (e.name_len == 0 || e.name_len > SMEM_NAME_MAX)
		return -EPROTO;
	n = smem_msg_entry_size(e.name_len);
	if (n > len)
		return -EPROTO;
	memset(out, 0, sizeof(*out));
	out->id = e.id;
	out->size = e.size;
	out->ctime_ns = e.ctime_ns;
	out->kind = e.kind;
	out->mode = e.mode;
	out->uid = e.uid;
	out->gid = e.gid;
	out->holders = e.holders;
	out->flags = e.flags;
	memcpy(out->name, p + sizeof(e), e.name_len);
	out->name[e.name_len] = 0;
	if (used)
		*used = n;
	return 0;
}

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
 * protected by c->io, which we do not take around fork). g_forks marks them all inherited.
 */
static void atfork_child(void)
{
	struct bconn *c, *next;

	g_forks++;
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

static void once_init(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
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

static void conn_drop(struct bconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->gen++;
}

static int reregister(struct bconn *c, struct smem__hold *h, bool *broken)
{
	struct smem_msg_create m = {
		.size = 0, .kind = h->kind, .mode = h->mode, .uid = h->uid, .gid = h->gid,
		.flags = SMEM_CREATE_REREGISTER |
			 ((h->eflags & SMEM_ENTRY_PERSIST) ? SMEM_CREATE_PERSIST : 0),
		.name_len = (uint16_t)strlen(h->name),
	};
	unsigned char rep[sizeof(struct smem_msg_entry) + SMEM_NAME_MAX + 8];
	struct req r = { .op = SMEM_OP_CREATE, .p1 = &m, .l1 = sizeof(m), .p2 = h->name,
			 .l2 = m.name_len, .send_fd = h->fd, .rbuf = rep, .rcap = sizeof(rep) };
	struct smem__entry_info e;
	int err;

	err = xfer(c->fd, &c->seq, &r, broken);
	if (err)
		return err;
	err = parse_entry(rep, r.rlen, &e, NULL);
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
static int conn_connect(struct bconn *c)
{
	struct smem__hold *h;
	bool broken;
	int fd, err;

	conn_drop(c);
	fd = connect_broker(&c->addr, true);
	if (fd < 0)
		return fd;
	err = hello(fd, &c->seq, NULL);
	if (err) {
		close(fd);
		return err == -ECONNREFUSED ? err : -EPROTO;
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

/* A request on @c with c->io held: (re)connects as needed and retries once if it broke. */
static int request(struct bconn *c, struct req *r)
{
	bool broken = false;
	int attempt, err = -ECONNREFUSED;

	for (attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0) {
			err = conn_connect(c);
			if (err)
				return err;
		}
		err = xfer(c->fd, &c->seq, r, &broken);
		if (!broken)
			return err;
		conn_drop(c);
	}
	return err;
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

			if (!atomic_load_explicit(&c->nholds, memory_order_relaxed))
				continue;
			/* A connection that failed to come back is retried on a timer. */
			if (fd < 0)
				timeout = 200;
			/* events 0: only POLLHUP/POLLERR, never the replies meant for requests. */
			pfd[n] = (struct pollfd){ .fd = fd, .events = 0 };
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
			if (c->gen == gens[i] && atomic_load(&c->nholds))
				conn_connect(c);
			pthread_mutex_unlock(&c->io);
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
	if (pthread_create(&g_thr, NULL, helper_main, NULL) != 0) {
		close(g_thr_efd);
		g_thr_efd = -1;
		return;
	}
	g_thr_running = true;
}

static void hold_attach(struct bconn *c, struct smem__hold *h)
{
	h->c = c;
	h->forks = g_forks;
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

static struct smem__hold *hold_new(const char *name, int fd, const struct smem__entry_info *e,
				   bool rdonly)
{
	struct smem__hold *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (h->fd < 0) {
		free(h);
		return NULL;
	}
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

/* ---- the contract in internal.h ------------------------------------------------------ */

int smem__broker_create(const struct smem_opts *opts, const char *name, uint32_t kind, int fd,
			uint32_t mode, uint32_t flags, struct smem__hold **ret)
{
	unsigned char rep[sizeof(struct smem_msg_entry) + SMEM_NAME_MAX + 8];
	struct smem_msg_create m = { .kind = kind, .mode = mode };
	struct req r = { .op = SMEM_OP_CREATE, .p1 = &m, .l1 = sizeof(m), .send_fd = fd,
			 .rbuf = rep, .rcap = sizeof(rep) };
	struct smem__entry_info e;
	struct smem__hold *h;
	struct bconn *c;
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

	err = conn_get(opts, &c);
	if (err)
		return err;
	pthread_mutex_lock(&c->io);
	err = request(c, &r);
	if (!err)
		err = parse_entry(rep, r.rlen, &e, NULL);
	if (!err) {
		h = hold_new(name, fd, &e, false);
		if (h) {
			hold_attach(c, h);
			*ret = h;
		} else {
			/* We could not keep it: give the name back. */
			struct smem_msg_release rel = { .id = e.id, .flags = SMEM_RELEASE_NOREPLY };
			struct req rr = { .op = SMEM_OP_RELEASE, .p1 = &rel, .l1 = sizeof(rel),
					  .send_fd = -1, .noreply = true };

			request(c, &rr);
			err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&c->io);
	conn_put(c);
	return err;
}

int smem__broker_open(const struct smem_opts *opts, const char *name, uint32_t flags,
		      int *fd_out, struct smem__hold **ret)
{
	unsigned char rep[sizeof(struct smem_msg_entry) + SMEM_NAME_MAX + 8];
	struct smem_msg_name m = { .flags = (flags & SMEM_RDONLY) ? SMEM_OPEN_RDONLY : 0 };
	int fd = -1;
	struct req r = { .op = SMEM_OP_OPEN, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
			 .rbuf = rep, .rcap = sizeof(rep), .recv_fd = &fd };
	struct smem__entry_info e;
	struct smem__hold *h = NULL;
	struct bconn *c;
	int err;

	err = smem__name_check(name);
	if (err)
		return err;
	if (!fd_out || !ret)
		return -EINVAL;
	m.name_len = (uint16_t)strlen(name);
	r.p2 = name;
	r.l2 = m.name_len;

	err = conn_get(opts, &c);
	if (err)
		return err;
	pthread_mutex_lock(&c->io);
	err = request(c, &r);
	if (!err)
		err = parse_entry(rep, r.rlen, &e, NULL);
	if (!err) {
		h = hold_new(name, fd, &e, flags & SMEM_RDONLY);
		if (h) {
			hold_attach(c, h);
		} else {
			struct smem_msg_release rel = { .id = e.id, .flags = SMEM_RELEASE_NOREPLY };
			struct req rr = { .op = SMEM_OP_RELEASE, .p1 = &rel, .l1 = sizeof(rel),
					  .send_fd = -1, .noreply = true };

			request(c, &rr);
			err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&c->io);
	conn_put(c);
	if (err) {
		if (fd >= 0)
			close(fd);
		return err;
	}
	*fd_out = fd;
	*ret = h;
	return 0;
}

void smem__broker_release(struct smem__hold *h)
{
	struct bconn *c;

	if (!h)
		return;
	/* An inherited hold is the parent's at the broker: just forget it. */
	c = h->forks == g_forks ? h->c : NULL;
	if (c) {
		pthread_mutex_lock(&g_lock);
		c->users++;
		pthread_mutex_unlock(&g_lock);
		pthread_mutex_lock(&c->io);
		if (h->prev)
			h->prev->next = h->next;
		else
			c->holds = h->next;
		if (h->next)
			h->next->prev = h->prev;
		atomic_fetch_sub(&c->nholds, 1);
		if (!h->lost && c->fd >= 0) {
			struct smem_msg_release rel = { .id = h->id, .flags = SMEM_RELEASE_NOREPLY };
			struct req r = { .op = SMEM_OP_RELEASE, .p1 = &rel, .l1 = sizeof(rel),
					 .send_fd = -1, .noreply = true };
			bool broken;

			/* A broken connection means a dead broker: the hold went with it. */
			xfer(c->fd, &c->seq, &r, &broken);
			if (broken)
				conn_drop(c);
		}
		pthread_mutex_unlock(&c->io);
		conn_put(c);
	}
	close(h->fd);
	free(h);
}

void smem__broker_disconnect(void)
{
	struct bconn **pp, *c;
	bool holds = false, join = false;

	pthread_mutex_lock(&g_lock);
	for (pp = &g_conns; (c = *pp);) {
		if (c->users == 0 && atomic_load(&c->nholds) == 0) {
			*pp = c->next;
			if (c->fd >= 0)
				close(c->fd);
			pthread_mutex_destroy(&c->io);
			free(c);
			continue;
		}
		if (atomic_load(&c->nholds))
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
		if (atomic_load(&c->nholds)) {
			thread_ensure();
			break;
		}
	pthread_mutex_unlock(&g_lock);
}

int smem_unlink(const char *name, const struct smem_opts *opts)
{
	struct smem_msg_name m = { 0 };
	struct req r = { .op = SMEM_OP_UNLINK, .p1 = &m, .l1 = sizeof(m), .send_fd = -1 };
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
	pthread_mutex_unlock(&c->io);
	conn_put(c);
	return err;
}

/* ---- administration (one-shot connections, never auto-start) ------------------------- */

static int admin_connect(const char *addr, uint32_t *seq, struct smem__broker_info *info)
{
	struct smem__addr a;
	int fd, err;

	err = smem__addr_resolve(addr, &a);
	if (err)
		return err;
	fd = connect_broker(&a, false);
	if (fd < 0)
		return fd;
	err = hello(fd, seq, info);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int smem__broker_hello(const char *addr, struct smem__broker_info *out)
{
	struct smem__broker_info info;
	uint32_t seq = 0;
	int fd;

	fd = admin_connect(addr, &seq, &info);
	if (fd < 0)
		return fd;
	close(fd);
	if (out)
		*out = info;
	return 0;
}

int smem__broker_stat(const char *addr, const char *name, struct smem__entry_info *out)
{
	unsigned char rep[sizeof(struct smem_msg_entry) + SMEM_NAME_MAX + 8];
	struct smem_msg_name m = { 0 };
	struct req r = { .op = SMEM_OP_STAT, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
			 .rbuf = rep, .rcap = sizeof(rep) };
	struct smem__entry_info e;
	uint32_t seq = 0;
	bool broken;
	int fd, err;

	err = smem__name_check(name);
	if (err)
		return err;
	m.name_len = (uint16_t)strlen(name);
	r.p2 = name;
	r.l2 = m.name_len;
	fd = admin_connect(addr, &seq, NULL);
	if (fd < 0)
		return fd;
	err = xfer(fd, &seq, &r, &broken);
	close(fd);
	if (!err)
		err = parse_entry(rep, r.rlen, &e, NULL);
	if (!err && out)
		*out = e;
	return err;
}

int smem__broker_list(const char *addr, int (*fn)(const struct smem__entry_info *e, void *arg),
		      void *arg)
{
	struct smem_msg_list m = { .after = 0 };
	struct smem_msg_list_reply lr;
	struct smem__entry_info e;
	unsigned char *rep;
	uint32_t seq = 0, i;
	bool broken;
	int fd, err = 0;

	rep = malloc(SMEM_PROTO_MAX_REPLY);
	if (!rep)
		return -ENOMEM;
	fd = admin_connect(addr, &seq, NULL);
	if (fd < 0) {
		free(rep);
		return fd;
	}
	do {
		struct req r = { .op = SMEM_OP_LIST, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
				 .rbuf = rep, .rcap = SMEM_PROTO_MAX_REPLY };
		size_t off, used;

		err = xfer(fd, &seq, &r, &broken);
		if (err)
			break;
		if (r.rlen < sizeof(lr)) {
			err = -EPROTO;
			break;
		}
		memcpy(&lr, rep, sizeof(lr));
		off = sizeof(lr);
		for (i = 0; i < lr.count && !err; i++) {
			err = parse_entry(rep + off, r.rlen - off, &e, &used);
			if (err)
				break;
			off += used;
			m.after = e.id;
			err = fn(&e, arg);
		}
		if (!err && lr.more && lr.count == 0)
			err = -EPROTO;	/* would never end */
	} while (!err && lr.more);
	close(fd);
	free(rep);
	return err;
}

int smem__broker_stop(const char *addr)
{
	struct req r = { .op = SMEM_OP_STOP, .send_fd = -1 };
	uint32_t seq = 0;
	bool broken;
	int fd, err;

	fd = admin_connect(addr, &seq, NULL);
	if (fd < 0)
		return fd;
	err = xfer(fd, &seq, &r, &broken);
	close(fd);
	return err;
}
