/* SPDX-License-Identifier: MIT */
/*
 * Broker addresses: resolving "@name", a path or the defaults, the default directory (ours
 * alone), which addresses are private (a broker may be started there), connecting, and the
 * listening socket a broker binds under the directory's lock so that racing starters agree on
 * one broker. See broker.h for the other broker files.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "broker.h"

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

int smem_broker_address(const struct smem_opts *opts, char *buf, size_t len)
{
	struct smem__addr a;
	size_t n;
	int err;

	if (!buf && len)
		return -EINVAL;
	err = smem__addr_resolve(opts ? opts->broker : NULL, &a);
	if (err)
		return err;
	n = strlen(a.text);
	if (n >= len)
		return -ERANGE;
	memcpy(buf, a.text, n + 1);
	return (int)n;
}

void smem__path_dir(const char *path, char *dir, size_t len)
{
	char *slash;

	snprintf(dir, len, "%s", path);
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
	smem__path_dir(a->text, dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return -EACCES;
	return 0;
}

/*
 * A broker we start has default settings: mode 0600, no group, default limits. That takes
 * nothing from anybody only where nobody else could reach a broker anyway, that is in a
 * directory that is ours and closed to group and others. Anywhere else a broker was put there
 * by somebody on purpose (a supervisor, with --group and limits), and replacing it with ours
 * would lock its group out and drop its limits. stat(), not lstat(): what matters is the
 * directory the socket is bound in.
 */
int smem__addr_private(const struct smem__addr *a)
{
	char dir[sizeof(a->text)];
	struct stat st;
	int err;

	if (a->abstract)
		return 0;	/* anybody may bind any abstract name */
	if (a->is_default) {
		err = default_dir_prepare(a);
		return err ? err : 1;
	}
	smem__path_dir(a->text, dir, sizeof(dir));
	if (stat(dir, &st) < 0)
		return 0;
	return S_ISDIR(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 077);
}

int smem__sock_connect(const struct smem__addr *a)
{
	struct timeval tv = { .tv_sec = SMEM__BROKER_IO_TIMEOUT_S };
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
		smem__path_dir(a->text, dir, sizeof(dir));
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		if (flock(dfd, LOCK_EX) < 0) {
			err = -errno;
			goto out;
		}
	}
	fd = smem__sock_connect(a);
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
		/*
		 * Stale: nobody listens, and we hold the lock. If it cannot go, say so now: bind
		 * would only report EADDRINUSE, which reads as "somebody else started one".
		 */
		if (unlink(a->text) < 0 && errno != ENOENT) {
			err = -errno;
			goto out;
		}
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
