/* SPDX-License-Identifier: MIT */
/*
 * smemd: the smem broker daemon; this is its main(), the server is smemd_loop.c and its
 * neighbours (smemd.h).
 *
 *   smemd [--socket PATH|@NAME] [--group NAME] [--foreground] [--idle-exit SECONDS]
 *         [--max-names N] [--max-bytes N] [--max-conns N] [--max-holds N] [--grace SECONDS]
 *         [--remove-socket] [--verbose]
 *
 * Under socket activation (LISTEN_PID/LISTEN_FDS: systemd, or a client's auto-start) it
 * serves fd 3 instead of binding, after checking that fd 3 is what a broker listens on.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "internal.h"
#include "smemd.h"

#define DEFAULT_GRACE_S	3

/* What sd_listen_fds_with_names() gave, kept for the life of the process (no leak to report). */
static char **fdnames, **stored_names;
static int *stored;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: smemd [options]\n"
		"  --socket PATH|@NAME  listen there (default: $SMEM_BROKER, else\n"
		"                       $XDG_RUNTIME_DIR/smem/broker.sock, else /tmp/smem-UID/broker.sock)\n"
		"  --group NAME         shared broker: socket mode 0660 with that group; names get\n"
		"                       that group and default mode 0660\n"
		"  --foreground         do not detach\n"
		"  --idle-exit SECONDS  exit after SECONDS with no connection and no name (0: never)\n"
		"  --max-names N        per-uid limit on names (default 4096)\n"
		"  --max-bytes N        per-uid limit on bytes, suffixes K M G (default 64G);\n"
		"                       an unlinked name counts until its last holder lets go\n"
		"  --max-conns N        per-uid limit on connections (default 256)\n"
		"  --max-holds N        per-uid limit on holds of names (default 4096)\n"
		"  --grace SECONDS      after start, only re-registrations for this long: plain\n"
		"                       creates get EAGAIN (default 3 with --group or socket\n"
		"                       activation, else 0)\n"
		"  --remove-socket      with an inherited socket (LISTEN_FDS), remove its file at\n"
		"                       exit if it is still the one bound (what auto-start asks)\n"
		"  --verbose            log every request to stderr\n"
		"  --help               this text\n"
		"  --version            the version of smem it belongs to\n"
		"systemd socket activation (LISTEN_FDS=1) is used when present.\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	default: break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* A socket path's directory: created with its parents if missing (0700, 0750 with a group). */
static int make_parent(const char *path, long gid)
{
	char dir[PATH_MAX];
	char *slash, *p;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	for (p = dir + 1; ; p++) {
		bool last = *p == 0;

		if (*p != '/' && !last)
			continue;
		*p = 0;
		if (mkdir(dir, gid >= 0 ? 0750 : 0700) == 0) {
			if (gid >= 0 && chown(dir, (uid_t)-1, (gid_t)gid) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		if (last)
			return 0;
		*p = '/';
	}
}

/*
 * Whether @fd, inherited through LISTEN_FDS, is a listening AF_UNIX SOCK_SEQPACKET socket.
 * 0, or -1 after saying what it is instead (a unit with ListenStream= instead of
 * ListenSequentialPacket= is the usual mistake).
 */
static int check_inherited(int fd)
{
	int type = 0, domain = 0, listening = 0;
	socklen_t len = sizeof(int);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "smemd: LISTEN_FDS is set but fd %d is not a socket\n", fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX) {
		fprintf(stderr, "smemd: the inherited socket (fd %d) is not AF_UNIX (domain %d): "
			"use a path or @name in ListenSequentialPacket=\n", fd, domain);
		return -1;
	}
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET) {
		fprintf(stderr, "smemd: the inherited socket (fd %d) is %s, not SOCK_SEQPACKET: "
			"the unit needs ListenSequentialPacket=, not %s\n", fd,
			type == SOCK_STREAM ? "SOCK_STREAM" : type == SOCK_DGRAM ? "SOCK_DGRAM" : "of another type",
			type == SOCK_STREAM ? "ListenStream=" : type == SOCK_DGRAM ? "ListenDatagram=" : "that");
		return -1;
	}
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
		fprintf(stderr, "smemd: the inherited socket (fd %d) is not listening "
			"(Accept=yes in the unit? smemd wants Accept=no)\n", fd);
		return -1;
	}
	return 0;
}

/* The path an inherited socket is bound to, absolute (we chdir("/") later), into @out. */
static int inherited_path(int fd, char *out, size_t cap)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	size_t n;

	if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0)
		return -errno;
	n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
	if (n == 0 || sun.sun_path[0] == 0)
		return -EINVAL;		/* unnamed or abstract: no file to remove */
	sun.sun_path[n < sizeof(sun.sun_path) ? n : sizeof(sun.sun_path) - 1] = 0;
	if (sun.sun_path[0] == '/' || !getcwd(out, cap - sizeof(sun.sun_path) - 2))
		snprintf(out, cap, "%s", sun.sun_path);
	else
		snprintf(out + strlen(out), cap - strlen(out), "/%s", sun.sun_path);
	return 0;
}

static void detach(void)
{
	pid_t pid = fork();
	int null;

	if (pid < 0) {
		perror("smemd: fork");
		exit(1);
	}
	if (pid > 0)
		_exit(0);	/* the socket already listens: clients can connect now */
	setsid();
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "group", required_argument, NULL, 'g' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "idle-exit", required_argument, NULL, 'i' },
		{ "max-names", required_argument, NULL, 'n' },
		{ "max-bytes", required_argument, NULL, 'b' },
		{ "max-conns", required_argument, NULL, 'C' },
		{ "max-holds", required_argument, NULL, 'H' },
		{ "grace", required_argument, NULL, 'G' },
		{ "remove-socket", no_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct smem__broker_config cfg = { .listen_fd = -1, .group = -1 };
	const char *sock = NULL, *group = NULL;
	int ninherited;
	char abs_path[PATH_MAX + 110];
	bool foreground = false, remove_socket = false;
	long grace_s = -1;	/* -1: the default, which depends on who may connect */
	bool activated = false;
	struct smem__addr a;
	uint64_t v;
	int c, err;

	while ((c = getopt_long(argc, argv, "s:g:fi:n:b:C:H:G:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'g': group = optarg; break;
		case 'f': foreground = true; break;
		case 'v': cfg.verbose = true; break;
		case 'R': remove_socket = true; break;
		case 'i':
			if (parse_u64(optarg, &v) || v > INT_MAX) {
				fprintf(stderr, "smemd: bad --idle-exit '%s'\n", optarg);
				return 2;
			}
			cfg.idle_exit_s = (int)v;
			break;
		case 'n':
			if (parse_u64(optarg, &v) || v == 0 || v > UINT32_MAX) {
				fprintf(stderr, "smemd: bad --max-names '%s'\n", optarg);
				return 2;
			}
			cfg.max_names = (uint32_t)v;
			break;
		case 'b':
			if (parse_u64(optarg, &v) || v == 0) {
				fprintf(stderr, "smemd: bad --max-bytes '%s'\n", optarg);
				return 2;
			}
			cfg.max_bytes = v;
			break;
		case 'C':
		case 'H':
			if (parse_u64(optarg, &v) || v == 0 || v > UINT32_MAX) {
				fprintf(stderr, "smemd: bad --max-%s '%s'\n",
					c == 'C' ? "conns" : "holds", optarg);
				return 2;
			}
			if (c == 'C')
				cfg.max_conns = (uint32_t)v;
			else
				cfg.max_holds = (uint32_t)v;
			break;
		case 'G':
			if (parse_u64(optarg, &v) || v > INT_MAX / 1000) {
				fprintf(stderr, "smemd: bad --grace '%s'\n", optarg);
				return 2;
			}
			grace_s = (long)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("smemd (smem) %s\n", SMEM_TOOLS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (group) {
		struct group *gr = getgrnam(group);
		char *end;

		if (gr) {
			cfg.group = (long)gr->gr_gid;
		} else {
			cfg.group = strtol(group, &end, 10);
			if (*end || end == group || cfg.group < 0) {
				fprintf(stderr, "smemd: no group '%s'\n", group);
				return 2;
			}
		}
	}

	/*
	 * Inherited fds (sd_listen_fds(3): systemd, or a client's auto-start): the socket to
	 * serve, and the fds a previous smemd kept in the service manager's fd store, told
	 * apart by their names (LISTEN_FDNAMES; without names, every fd is a socket).
	 */
	ninherited = sd_listen_fds_with_names(1, &fdnames);
	if (ninherited < 0) {
		fprintf(stderr, "smemd: bad LISTEN_FDS: %s\n", strerror(-ninherited));
		return 1;
	}
	if (ninherited > 0) {
		stored = calloc((size_t)ninherited, sizeof(*stored));
		stored_names = calloc((size_t)ninherited, sizeof(*stored_names));
		if (!stored || !stored_names) {
			fprintf(stderr, "smemd: out of memory\n");
			return 1;
		}
	}
	for (c = 0; c < ninherited; c++) {
		int fd = SD_LISTEN_FDS_START + c;
		const char *fdname = fdnames && fdnames[c] ? fdnames[c] : "unknown";

		if (smem__srv_store_name_ours(fdname)) {
			stored[cfg.nstored] = fd;
			stored_names[cfg.nstored++] = fdnames[c];
		} else if (cfg.listen_fd < 0) {
			if (check_inherited(fd) < 0)
				return 1;
			cfg.listen_fd = fd;
		} else {
			fprintf(stderr, "smemd: inherited fd %d ('%s') is a second socket: "
				"smemd serves one (fd %d), closing it\n", fd, fdname, cfg.listen_fd);
			close(fd);
		}
	}
	cfg.stored_fds = stored;
	cfg.stored_names = stored_names;
	/*
	 * A service manager that reads $NOTIFY_SOCKET keeps fds for us (it may refuse them
	 * when the unit has no FileDescriptorStoreMax=; smemd cannot tell, see smemd(8)).
	 */
	cfg.fdstore = getenv("NOTIFY_SOCKET") != NULL;
	if (cfg.listen_fd >= 0) {
		/*
		 * Socket activation: whoever passed it owns the socket file and its mode (with
		 * --remove-socket, the file is ours to remove at exit: auto-start).
		 */
		activated = true;
		if (remove_socket && inherited_path(cfg.listen_fd, abs_path, sizeof(abs_path)) == 0)
			cfg.path = abs_path;
	} else {
		err = smem__addr_resolve(sock, &a);
		if (err) {
			fprintf(stderr, "smemd: bad socket address '%s'\n", sock ? sock : "");
			return 2;
		}
		if (!a.abstract && !a.is_default) {
			err = make_parent(a.text, cfg.group);
			if (err) {
				fprintf(stderr, "smemd: cannot create the directory of %s: %s\n",
					a.text, strerror(-err));
				return 1;
			}
		}
		err = smem__broker_listen(&a, cfg.group >= 0 ? 0660 : 0600, cfg.group,
					  &cfg.listen_fd);
		if (err == -EADDRINUSE) {
			fprintf(stderr, "smemd: a broker already answers at %s\n", a.text);
			return 1;
		}
		if (err) {
			fprintf(stderr, "smemd: cannot listen at %s: %s\n", a.text, strerror(-err));
			return 1;
		}
		if (!a.abstract) {
			/* Absolute, so that the file can be removed at exit after chdir("/"). */
			if (a.text[0] == '/' || !getcwd(abs_path, PATH_MAX))
				snprintf(abs_path, sizeof(abs_path), "%s", a.text);
			else
				snprintf(abs_path + strlen(abs_path), sizeof(abs_path) - strlen(abs_path),
					 "/%s", a.text);
			cfg.path = abs_path;
		}
		if (cfg.verbose)
			fprintf(stderr, "smemd: listening at %s\n", a.text);
	}
	/*
	 * A broker only its own uid can reach needs no grace: nobody else could take a name
	 * while its holders re-register. A shared one (a group, or a socket systemd made with
	 * whatever mode) gives them DEFAULT_GRACE_S, as an NFS server gives its clients.
	 */
	if (grace_s < 0)
		grace_s = cfg.group >= 0 || activated ? DEFAULT_GRACE_S : 0;
	cfg.grace_ms = (int)grace_s * 1000;
	if (!foreground)
		detach();
	if (chdir("/") < 0) {
		/* harmless: we would only keep a directory busy */
	}
	/*
	 * Under a service manager (Type=notify): the socket listens, so clients may come. Outside
	 * one, $NOTIFY_SOCKET is unset and these do nothing.
	 */
	sd_notifyf(0, "READY=1\nSTATUS=serving %s%s", activated ? "an inherited socket" : "at ",
		   activated ? "" : a.text);
	err = smem__broker_serve(&cfg);
	sd_notify(0, "STOPPING=1");
	if (err) {
		fprintf(stderr, "smemd: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
