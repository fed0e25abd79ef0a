/* SPDX-License-Identifier: MIT */
/*
 * Test helpers for the NATS bridge: a nats-server and smem-bridge daemons of the test's own,
 * on loopback ports picked free at run time. Every process started here gets
 * PR_SET_PDEATHSIG=SIGKILL, so none outlives the test, whatever path it ends by (a failed
 * assertion exits the test's process); the helpers also kill and reap them explicitly.
 */
#ifndef SMEM_NATSUTIL_H
#define SMEM_NATSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The bridge suites' messages: "<index>:" then filler up to @len bytes (returns @len); and
 * the index back. */
size_t t_msg_make(char *buf, size_t len, unsigned i);
unsigned t_msg_index(const char *buf);

struct t_nats {
	pid_t pid;
	int port, cluster_port;
	char dir[256];		/* JetStream store ("" without) */
	char url[64];
	char host[32];		/* listen address, "127.0.0.1" by default */
	char netns[64];		/* run inside the network namespace of this pid ("" = ours) */
	char routes[512];	/* cluster: --routes value ("" = no cluster) */
	char cluster_name[32];
	char server_name[32];
};

/* A free TCP port on 127.0.0.1 (bound and released: the kernel will not hand it out again
 * at once). */
int t_free_port(void);
/* Start nats-server (JetStream in a new temporary directory when @js); waits until it
 * accepts connections. @n->host, netns, routes, ports may be preset (zeroed: loopback). */
void t_nats_start(struct t_nats *n, bool js);
/* Start it again with the same port and store (after t_nats_kill). */
void t_nats_restart(struct t_nats *n);
/* kill -9 and reap; the store stays. */
void t_nats_kill(struct t_nats *n);
/* kill, reap and remove the store. */
void t_nats_stop(struct t_nats *n);

struct t_bridge {
	pid_t pid;
	char dir[256];		/* config, stats, state */
	char config[300];
	char stats[300];
	char netns[64];
	char broker[300];	/* SMEM_BROKER for the bridge ("" = inherited) */
};

/*
 * Write @config (mode 0600) to a new temporary directory and start smem-bridge on it, with
 * --stats; returns once it has written its first stats (it is connected and its routes are
 * up), or fails the test if it exits. "STATE" in @config is replaced by the directory.
 */
void t_bridge_start(struct t_bridge *b, const char *config);
/* Start again from the same directory (same config and state). */
void t_bridge_restart(struct t_bridge *b);
/* SIGTERM and reap (the last stats are written); returns the exit status. */
int t_bridge_term(struct t_bridge *b);
void t_bridge_kill(struct t_bridge *b);
/* kill and remove the directory. */
void t_bridge_stop(struct t_bridge *b);
/* Counter @key ("messages", "lost", ...) of route @route from the stats file; -1 if absent.
 * Route -1: the bridge's reconnections to NATS. */
long long t_bridge_stat(const struct t_bridge *b, int route, const char *key);
/* Wait up to @ms for counter >= @want; returns the last value. */
long long t_bridge_wait_stat(const struct t_bridge *b, int route, const char *key,
			     long long want, int ms);

/*
 * Two "hosts": two network namespaces of their own (each held by a process that dies with
 * the test, so neither, nor the veth pair between them, can outlive it), joined by a veth
 * pair with addresses 10.231.X.1 and .2/30 that exist only inside them, each with its own
 * smemd (the path socket in @dir is reachable from the test's namespace too). Returns 0, or
 * -EPERM when namespaces or veth cannot be made here (the caller skips).
 */
struct t_host {
	pid_t holder, smemd;
	char netns[16];		/* the holder's pid, for t_nats.netns / t_bridge.netns */
	char addr[32];
	char dir[256];
	char broker[300];
};
int t_hosts_start(struct t_host *a, struct t_host *b);
void t_hosts_stop(struct t_host *a, struct t_host *b);

/*
 * An unchecked fixture (runs in Check's parent process, so even after a failed test): a
 * directory for the suite that every helper's directory goes under, removed at the end.
 */
void t_tmp_setup(void);
void t_tmp_teardown(void);

pid_t t_spawn(const char *netns, char **argv, const char *log, const char *broker);
void t_sleep_ms(int ms);
/* rm -rf of a /tmp/smem-* directory (refuses anything else). */
void t_rm_rf(const char *dir);

#endif
