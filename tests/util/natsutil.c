/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/natsutil.h"
#include "util/testutil.h"

/* Where the helpers make their directories: $SMEM_TEST_TMP (a suite's own directory,
 * removed by its unchecked fixture whatever the tests did), else /tmp. */
static const char *tmp_base(void)
{
	const char *t = getenv("SMEM_TEST_TMP");

	return t && *t ? t : "/tmp";
}

void t_tmp_setup(void)
{
	char dir[] = "/tmp/smem-suite.XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(dir));
	setenv("SMEM_TEST_TMP", dir, 1);
}

void t_tmp_teardown(void)
{
	t_rm_rf(tmp_base());
	unsetenv("SMEM_TEST_TMP");
}

int t_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

size_t t_msg_make(char *buf, size_t len, unsigned i)
{
	int n = snprintf(buf, len, "%u:", i);

	for (size_t k = (size_t)n; k < len; k++)
		buf[k] = (char)('a' + (i + k) % 26);
	return len;
}

unsigned t_msg_index(const char *buf)
{
	return (unsigned)strtoul(buf, NULL, 10);
}

void t_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* fork + exec @argv (inside the network namespace of pid @netns when set, through nsenter),
 * dying with us. */
pid_t t_spawn(const char *netns, char **argv, const char *log, const char *broker)
{
	pid_t parent = getpid(), pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *full[48];
		int n = 0, fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (broker && *broker)
			setenv("SMEM_BROKER", broker, 1);
		if (netns && *netns) {
			full[n++] = "nsenter";
			full[n++] = "-t";
			full[n++] = (char *)netns;
			full[n++] = "-n";
		}
		for (int i = 0; argv[i] && n < 47; i++)
			full[n++] = argv[i];
		full[n] = NULL;
		execvp(full[0], full);
		_exit(127);
	}
	return pid;
}

static bool file_has(const char *path, const char *needle)
{
	char buf[65536];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return false;
	buf[got] = 0;
	return strstr(buf, needle) != NULL;
}

void t_nats_restart(struct t_nats *n)
{
	char port[16], cport[64], log[300], store[300], *argv[24];
	int a = 0;

	snprintf(log, sizeof(log), "%s/server.log", n->dir);
	unlink(log);
	snprintf(port, sizeof(port), "%d", n->port);
	argv[a++] = "nats-server";
	argv[a++] = "-a";
	argv[a++] = n->host;
	argv[a++] = "-p";
	argv[a++] = port;
	argv[a++] = "-l";
	argv[a++] = log;
	if (n->server_name[0]) {
		argv[a++] = "-n";
		argv[a++] = n->server_name;
	}
	snprintf(store, sizeof(store), "%s/js", n->dir);
	if (access(store, F_OK) == 0) {
		argv[a++] = "-js";
		argv[a++] = "-sd";
		argv[a++] = store;
	}
	if (n->cluster_port) {
		snprintf(cport, sizeof(cport), "nats://%s:%d", n->host, n->cluster_port);
		argv[a++] = "--cluster";
		argv[a++] = cport;
		argv[a++] = "--cluster_name";
		argv[a++] = n->cluster_name[0] ? n->cluster_name : "smemtest";
		if (n->routes[0]) {
			argv[a++] = "--routes";
			argv[a++] = n->routes;
		}
	}
	argv[a] = NULL;
	n->pid = t_spawn(n->netns, argv, NULL, NULL);
	for (int i = 0; i < 1000; i++) {
		if (file_has(log, "Server is ready"))
			return;
		ck_assert_msg(waitpid(n->pid, NULL, WNOHANG) == 0, "nats-server exited at start");
		t_sleep_ms(10);
	}
	ck_abort_msg("nats-server did not become ready in 10 s");
}

void t_nats_start(struct t_nats *n, bool js)
{
	char store[300];

	snprintf(n->dir, sizeof(n->dir), "%s/smem-nats.XXXXXX", tmp_base());
	ck_assert_ptr_nonnull(mkdtemp(n->dir));
	if (js) {
		snprintf(store, sizeof(store), "%s/js", n->dir);
		ck_assert_int_eq(mkdir(store, 0700), 0);
	}
	if (!n->host[0])
		snprintf(n->host, sizeof(n->host), "127.0.0.1");
	if (!n->port)
		n->port = t_free_port();
	snprintf(n->url, sizeof(n->url), "nats://%s:%d", n->host, n->port);
	t_nats_restart(n);
}

void t_nats_kill(struct t_nats *n)
{
	if (n->pid > 0) {
		kill(n->pid, SIGKILL);
		waitpid(n->pid, NULL, 0);
	}
	n->pid = 0;
}

void t_rm_rf(const char *dir)
{
	char cmd[400];

	if (!dir[0] || strncmp(dir, "/tmp/smem-", 10))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

void t_nats_stop(struct t_nats *n)
{
	t_nats_kill(n);
	t_rm_rf(n->dir);
	n->dir[0] = 0;
}

void t_bridge_restart(struct t_bridge *b)
{
	char tool[512], log[300], *argv[12];
	int a = 0;

	snprintf(tool, sizeof(tool), "%s/tools/smem-bridge", t_build_dir());
	if (tool[0] != '/') {
		char cwd[256];

		ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
		snprintf(tool, sizeof(tool), "%s/%s/tools/smem-bridge", cwd, t_build_dir());
	}
	snprintf(log, sizeof(log), "%s/bridge.log", b->dir);
	unlink(b->stats);
	argv[a++] = tool;
	argv[a++] = "-c";
	argv[a++] = b->config;
	argv[a++] = "--stats";
	argv[a++] = b->stats;
	argv[a++] = "--stats-interval";
	argv[a++] = "20";
	argv[a] = NULL;
	b->pid = t_spawn(b->netns, argv, log, b->broker);
	for (int i = 0; i < 1000; i++) {
		int status;

		if (access(b->stats, F_OK) == 0)
			return;
		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			char buf[2048] = "";
			int fd = open(log, O_RDONLY | O_CLOEXEC);

			if (fd >= 0) {
				ssize_t got = read(fd, buf, sizeof(buf) - 1);

				buf[got > 0 ? got : 0] = 0;
				close(fd);
			}
			b->pid = 0;
			ck_abort_msg("smem-bridge exited at start (status %d): %s", status, buf);
		}
		t_sleep_ms(10);
	}
	ck_abort_msg("smem-bridge did not start in 10 s");
}

void t_bridge_start(struct t_bridge *b, const char *config)
{
	char text[8192], *out = text;
	const char *p;
	FILE *f;
	int fd;

	snprintf(b->dir, sizeof(b->dir), "%s/smem-bridge.XXXXXX", tmp_base());
	ck_assert_ptr_nonnull(mkdtemp(b->dir));
	snprintf(b->config, sizeof(b->config), "%s/bridge.conf", b->dir);
	snprintf(b->stats, sizeof(b->stats), "%s/stats", b->dir);
	for (p = config; *p && out < text + sizeof(text) - 300;) {
		if (!strncmp(p, "STATE", 5)) {
			out += snprintf(out, 300, "%s", b->dir);
			p += 5;
		} else {
			*out++ = *p++;
		}
	}
	*out = 0;
	fd = open(b->config, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	t_bridge_restart(b);
}

int t_bridge_term(struct t_bridge *b)
{
	int status = -1;

	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		waitpid(b->pid, &status, 0);
	}
	b->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void t_bridge_kill(struct t_bridge *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, NULL, 0);
	}
	b->pid = 0;
}

void t_bridge_stop(struct t_bridge *b)
{
	t_bridge_kill(b);
	t_rm_rf(b->dir);
	b->dir[0] = 0;
}

long long t_bridge_stat(const struct t_bridge *b, int route, const char *key)
{
	char line[1024], prefix[32], pat[64];
	long long v = -1;
	FILE *f = fopen(b->stats, "re");

	if (!f)
		return -1;
	snprintf(prefix, sizeof(prefix), "route %d ", route);
	snprintf(pat, sizeof(pat), " %s ", key);
	while (fgets(line, sizeof(line), f)) {
		char *k;

		if (route < 0 && !strncmp(line, "reconnects ", 11))
			v = strtoll(line + 11, NULL, 10);
		if (strncmp(line, prefix, strlen(prefix)) || !(k = strstr(line, pat)))
			continue;
		v = strtoll(k + strlen(pat), NULL, 10);
	}
	fclose(f);
	return v;
}

long long t_bridge_wait_stat(const struct t_bridge *b, int route, const char *key,
			     long long want, int ms)
{
	long long v = -1;

	for (long long end = t_now_ms() + ms; t_now_ms() < end; t_sleep_ms(10)) {
		v = t_bridge_stat(b, route, key);
		if (v >= want)
			break;
	}
	return v;
}

/* Run @argv to completion (in our namespaces); returns its exit status. */
static int run_cmd(char **argv)
{
	int status;
	pid_t pid = t_spawn(NULL, argv, NULL, NULL);

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool other_netns(pid_t pid)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	return stat(path, &a) == 0 && stat("/proc/self/ns/net", &b) == 0 && a.st_ino != b.st_ino;
}

int t_hosts_start(struct t_host *a, struct t_host *b)
{
	struct t_host *h[2] = { a, b };
	char pa[16], pb[16], va[16], vb[16];
	char *add[] = { "ip", "link", "add", va, "netns", pa, "type", "veth", "peer", "name", vb,
			"netns", pb, NULL };
	unsigned net = (unsigned)getpid() % 250;

	snprintf(va, sizeof(va), "sma%u", (unsigned)getpid());
	snprintf(vb, sizeof(vb), "smb%u", (unsigned)getpid());
	for (int i = 0; i < 2; i++) {
		char *hold[] = { "unshare", "--net", "sleep", "600", NULL };

		memset(h[i], 0, sizeof(*h[i]));
		h[i]->holder = t_spawn(NULL, hold, NULL, NULL);
		for (int k = 0; k < 500 && !other_netns(h[i]->holder); k++) {
			if (waitpid(h[i]->holder, NULL, WNOHANG) == h[i]->holder)
				return -EPERM;	/* no unshare(CLONE_NEWNET) here */
			t_sleep_ms(2);
		}
		if (!other_netns(h[i]->holder))
			return -EPERM;
		snprintf(h[i]->netns, sizeof(h[i]->netns), "%d", (int)h[i]->holder);
		snprintf(h[i]->addr, sizeof(h[i]->addr), "10.231.%u.%d", net, i + 1);
		snprintf(h[i]->dir, sizeof(h[i]->dir), "%s/smem-host.XXXXXX", tmp_base());
		ck_assert_ptr_nonnull(mkdtemp(h[i]->dir));
		snprintf(h[i]->broker, sizeof(h[i]->broker), "%s/broker.sock", h[i]->dir);
	}
	snprintf(pa, sizeof(pa), "%d", (int)a->holder);
	snprintf(pb, sizeof(pb), "%d", (int)b->holder);
	/* The pair is created inside the two namespaces: it dies with them. */
	if (run_cmd(add))
		return -EPERM;
	for (int i = 0; i < 2; i++) {
		char cidr[40];
		char *dev = i ? vb : va;
		char *lo[] = { "nsenter", "-t", h[i]->netns, "-n", "ip", "link", "set", "lo", "up",
			       NULL };
		char *up[] = { "nsenter", "-t", h[i]->netns, "-n", "ip", "link", "set", dev, "up",
			       NULL };
		char *addr[] = { "nsenter", "-t", h[i]->netns, "-n", "ip", "addr", "add", cidr, "dev",
				 dev, NULL };
		char *smemd_argv[] = { NULL, "--socket", h[i]->broker, "--foreground", NULL };
		char smemd[512];

		snprintf(cidr, sizeof(cidr), "%s/30", h[i]->addr);
		ck_assert_int_eq(run_cmd(lo), 0);
		ck_assert_int_eq(run_cmd(addr), 0);
		ck_assert_int_eq(run_cmd(up), 0);
		/* Each host has its own broker, running in its namespace. */
		snprintf(smemd, sizeof(smemd), "%s/tools/smemd", t_build_dir());
		smemd_argv[0] = smemd;
		h[i]->smemd = t_spawn(h[i]->netns, smemd_argv, NULL, NULL);
		for (int k = 0; k < 500 && access(h[i]->broker, F_OK); k++)
			t_sleep_ms(10);
		ck_assert_int_eq(access(h[i]->broker, F_OK), 0);
	}
	return 0;
}

void t_hosts_stop(struct t_host *a, struct t_host *b)
{
	struct t_host *h[2] = { a, b };

	for (int i = 0; i < 2; i++) {
		if (h[i]->smemd > 0) {
			kill(h[i]->smemd, SIGKILL);
			waitpid(h[i]->smemd, NULL, 0);
		}
		if (h[i]->holder > 0) {
			kill(h[i]->holder, SIGKILL);
			waitpid(h[i]->holder, NULL, 0);
		}
		t_rm_rf(h[i]->dir);
		memset(h[i], 0, sizeof(*h[i]));
	}
}
