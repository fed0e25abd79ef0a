/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the broker suites (check_broker*.c): a private broker per test, its pid
 * and fds, and a one-shot pipe signal between processes.
 */
#ifndef SMEM_BROKERUTIL_H
#define SMEM_BROKERUTIL_H

#include <stdbool.h>
#include <sys/types.h>

/* The private broker's directory ("" for an abstract one) and address. */
extern char tb_dir[256];
extern char tb_sock[320];

/*
 * A broker address nobody else uses: a path in a fresh directory, made inside the suite's
 * private directory (tests/run-suites removes it) when there is one. Sets SMEM_BROKER.
 */
const char *tb_private_path_broker(void);
/*
 * A fresh directory of mode @mode directly in /tmp (other uids must be able to reach it, which
 * the suite's private directory does not let them), as tb_dir, its broker.sock as tb_sock and
 * SMEM_BROKER. tb_private_broker_end() removes it.
 */
void tb_shared_dir(mode_t mode);
/* Whether we are root (tests that run parts as other uids need it); else says "skip". */
bool tb_need_root(void);
/*
 * An abstract address: no file permissions, so another uid can reach the broker. Sets
 * SMEM_BROKER. Nothing auto-starts a broker there: start one with tb_start_smemd().
 */
const char *tb_private_abstract_broker(void);
/*
 * Run tools/smemd --socket tb_sock --foreground with @args (NULL-terminated, or NULL) and
 * wait until it answers. Returns its pid; tb_private_broker_end() stops and reaps it.
 */
pid_t tb_start_smemd(const char *const *args);
/*
 * The same as @uid (its gid the same number, no supplementary groups), left to the caller to
 * stop and reap: tb_private_broker_end() does not know it.
 */
pid_t tb_spawn_smemd(uid_t uid, const char *const *args);
/* SIGKILL the smemd that tb_start_smemd() started, and reap it. */
void tb_kill_smemd(void);
/* Gone, or a zombie nobody reaps (the broker is not our child), within @ms. */
bool tb_pid_gone(pid_t pid, int ms);
/* The pid of the broker we talk to (asserts it answers HELLO). */
pid_t tb_broker_pid(void);
/* STOP the private broker, check that it went (and exited 0, if ours) and left nothing behind. */
void tb_private_broker_end(void);
/* Entries in directory @path other than . and .., or -1. */
int tb_count_dir(const char *path);
/* How many fds @pid has beyond those of an idle broker (stdio, listener, epoll, signalfd). */
int tb_broker_extra_fds(pid_t pid);
/* Open @name, retrying while it is not there yet (-ENOENT) or until it is gone. */
int tb_open_until(const char *name, int want, int ms);
/* A pipe used as a one-shot signal between processes. */
void tb_sig_send(int fd);
bool tb_sig_wait(int fd);

#endif
