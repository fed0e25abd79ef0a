/* SPDX-License-Identifier: MIT */
/*
 * The broker: maps names to sealed memfds and hands them out (docs/PROTOCOL.md).
 *
 * It is smemd's alone (smemd.c is its main; a client that finds no broker execs smemd, see
 * src/broker_autostart.c), so that no application carries a server in its address space.
 *
 * This file holds the event loop, accepting connections, and the request path without the
 * loop (fuzz targets, tests); the state is in smemd_state.c, the requests in
 * smemd_request.c, both declared in smemd_server.h.
 *
 * One thread, one epoll loop, level-triggered, one message handled per ready connection per
 * turn. Every request gets exactly one reply (except RELEASE with SMEM_RELEASE_NOREPLY), even
 * when it cannot be parsed; the connection stays usable. Replies are sent with MSG_DONTWAIT:
 * a client that does not read its replies is disconnected rather than allowed to stall the loop.
 *
 * State: entries (one per name) in a hash table and in an id-ordered list; connections with
 * their holds (entry, count). An entry is freed when it is out of the table (unlinked, or its
 * last hold went and it is not persistent) and nobody holds it. Quotas are charged to the
 * entry's owner uid until the entry is freed (an unlinked name still held keeps its memfd, so
 * it keeps counting), connections and holds to the uid that has them; a uid's record goes
 * with the last thing it counts. smemd_request.c says what a claimed owner and mode are held
 * against (the memfd's st_uid and inode mode) and what the grace period after a start is.
 *
 * fd ownership: a received fd is owned by the request being handled; it is either moved into an
 * entry or closed before the reply goes out, on every path.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smemd_server.h"

/*
 * Out of fds with a connection waiting: the listener would stay readable and the loop spin.
 * Give up the reserve fd for a moment to accept the connection and close it at once (its
 * client sees the broker hang up), then take the reserve back. Never sleep here: every other
 * client waits on this loop.
 */
static void accept_shed(struct broker *b)
{
	int fd;

	if (b->reserve < 0)
		return;
	close(b->reserve);
	fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd >= 0)
		close(fd);
	b->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void conn_accept(struct broker *b)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct epoll_event ev;
	struct conn *c;
	int fd;

	fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			accept_shed(b);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	len = sizeof(c->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
		c->ngroups = (int)(len / sizeof(gid_t));
	/* Far over its uid's cap: not even an answer (the fd is what a flood is after). */
	if (smem__srv_conn_link(b, c) < 0) {
		free(c);
		close(fd);
		return;
	}
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		smem__srv_conn_close(b, c);
}

/* ---- the request path without the loop (fuzz targets, tests) ------------------------- */

/* A broker state with no listener and no epoll set: connections are adopted by hand. */
struct smem__broker {
	struct broker b;
};

struct smem__broker *smem__broker_new(const struct smem__broker_config *cfg)
{
	struct smem__broker *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	smem__srv_init(&sb->b, cfg);
	return sb;
}

static struct conn *conn_by_fd(struct broker *b, int fd)
{
	struct conn *c;

	for (c = b->conns; c; c = c->next)
		if (c->fd == fd)
			return c;
	return NULL;
}

int smem__broker_adopt(struct smem__broker *sb, int fd, uid_t uid, gid_t gid)
{
	struct conn *c;
	int err;

	if (fd < 0 || conn_by_fd(&sb->b, fd))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->uid = uid;
	c->gid = gid;
	c->pid = 0;
	err = smem__srv_conn_link(&sb->b, c);
	if (err)
		free(c);
	return err;
}

/*
 * A peer's close() is not its hang-up: the kernel delivers that when the last reference to the
 * peer's socket file goes, and anybody may hold one for a moment (a process reading
 * /proc/PID/fd of the client takes one while it reads the link). So a step right after the
 * close may find nothing yet, as the loop's epoll_wait would; this waits as it does.
 */
int smem__broker_wait(struct smem__broker *sb, int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	int n;

	if (!conn_by_fd(&sb->b, fd))
		return -ENOTCONN;
	/* A signal restarts the wait: the timeout is a bound for tests, not a deadline. */
	while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	return n > 0 ? 1 : 0;
}

int smem__broker_step(struct smem__broker *sb, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	struct conn *c = conn_by_fd(&sb->b, fd);
	uint32_t events = 0;

	if (!c)
		return -ENOTCONN;
	/* The events the loop's level-triggered epoll would have reported. */
	if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLRDHUP | POLLERR)))
		return 0;
	if (p.revents & POLLIN)
		events |= EPOLLIN;
	if (p.revents & POLLHUP)
		events |= EPOLLHUP;
	if (p.revents & POLLRDHUP)
		events |= EPOLLRDHUP;
	if (p.revents & POLLERR)
		events |= EPOLLERR;
	smem__srv_handle(&sb->b, c, events);
	return conn_by_fd(&sb->b, fd) ? 1 : -ENOTCONN;
}

void smem__broker_free(struct smem__broker *sb)
{
	if (sb)
		smem__srv_destroy(&sb->b);	/* b is the first member: frees sb */
}

unsigned smem__broker_names(const struct smem__broker *sb)
{
	return sb->b.nentries;
}

unsigned smem__broker_uids(const struct smem__broker *sb)
{
	return sb->b.nuids;
}

/* ---- the loop ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
	return smem__now_ns() / 1000000u;
}

/* Remove our socket file if it is still ours, under the same lock auto-start takes. */
static void remove_socket(const struct smem__broker_config *cfg, const struct stat *mine)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct stat now;
	int dfd = -1;

	if (!cfg->path)
		return;
	smem__path_dir(cfg->path, dir, sizeof(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		flock(dfd, LOCK_EX);
	if (stat(cfg->path, &now) == 0 && now.st_dev == mine->st_dev && now.st_ino == mine->st_ino)
		unlink(cfg->path);
	if (dfd >= 0)
		close(dfd);
}

int smem__broker_serve(const struct smem__broker_config *cfg)
{
	struct epoll_event ev, evs[32];
	struct broker *b;
	struct stat sock_st = { 0 };
	bool have_sock_st = false;
	uint64_t idle_since = mono_ms();
	struct rlimit rl;
	sigset_t mask;
	int i, n, err = 0;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	smem__srv_init(b, cfg);
	b->lfd = cfg->listen_fd;
	/* Persistent names a previous smemd kept in the service manager's fd store. */
	n = smem__srv_store_restore(b, cfg->stored_fds, cfg->stored_names, cfg->nstored);
	if (cfg->nstored > 0)
		fprintf(stderr, "smemd: %d persistent name%s taken back from the fd store\n", n,
			n == 1 ? "" : "s");
	/* Each connection and each name costs an fd: take all the kernel lets us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (cfg->path && stat(cfg->path, &sock_st) == 0)
		have_sock_st = true;
	fcntl(b->lfd, F_SETFL, fcntl(b->lfd, F_GETFL) | O_NONBLOCK);
	b->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);

	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epfd < 0) {
		err = -errno;
		goto out;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &b->lfd;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->lfd, &ev) < 0) {
		err = -errno;
		goto out;
	}
	/* SIGTERM and SIGINT end the loop cleanly (the socket file is removed). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == 0)
		b->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (b->sigfd >= 0) {
		ev.events = EPOLLIN;
		ev.data.ptr = &b->sigfd;
		epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->sigfd, &ev);
	}
	signal(SIGPIPE, SIG_IGN);

	while (!b->stop) {
		int timeout = -1;

		if (cfg->idle_exit_s > 0 && b->nconns == 0 && b->nentries == 0) {
			uint64_t end = idle_since + (uint64_t)cfg->idle_exit_s * 1000u;
			uint64_t now = mono_ms();

			if (now >= end)
				break;
			timeout = (int)(end - now);
		}
		n = epoll_wait(b->epfd, evs, (int)SMEM__ARRAY_SIZE(evs), timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		for (i = 0; i < n && !b->stop; i++) {
			void *p = evs[i].data.ptr;

			if (p == &b->lfd)
				conn_accept(b);
			else if (p == &b->sigfd)
				b->stop = true;
			else
				/*
				 * One message per turn. Most turns find exactly one (an OPEN, or a
				 * RELEASE), and trying for another cost a recvmsg that found nothing
				 * (EAGAIN) on every one of them: a third of the broker's system calls
				 * per open+close. When more is queued (a RELEASE and the next request
				 * together), level-triggered epoll reports the connection again at
				 * once, for an epoll_wait that also serves every other connection.
				 */
				smem__srv_handle(b, p, evs[i].events);
		}
		if (b->nconns || b->nentries)
			idle_since = mono_ms();
	}
out:
	if (have_sock_st)
		remove_socket(cfg, &sock_st);
	smem__srv_destroy(b);
	return err;
}
