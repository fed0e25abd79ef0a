/* SPDX-License-Identifier: MIT */
/*
 * evloop_bench: what a ring poller (smem_ring_poll_*) costs the writer, in system calls per
 * message, against the same stream with no poller, in the same run. Not a test.
 *
 *   none     the reader drains with timeout-0 reads in a busy loop and never arms: the
 *            writer should make no system call at all (the promise: nothing while nobody
 *            polls);
 *   poller   the reader is an epoll loop: arm, epoll_wait, disarm, drain, arm... The writer
 *            pays one futex wake per commit that finds the poller armed (at most one per
 *            wakeup of the loop when the loop disarms before draining).
 *
 * The writer's system calls are counted by the raw_syscalls:sys_enter tracepoint through
 * perf_event_open(2) where it can be read, and its futex wakes always (ring stats "wakes").
 * The reader's system calls per message are reported too (the poller's own cost).
 *
 *   cc -O2 -Iinclude -Isrc -pthread bench/evloop_bench.c build/default/libsmem.a -luring \
 *      -o /tmp/evloop_bench
 *   /tmp/evloop_bench [messages]
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <smem.h>

static long tracepoint(void)
{
	static const char *const paths[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	long id = -1;

	for (unsigned i = 0; i < 2 && id < 0; i++) {
		FILE *f = fopen(paths[i], "re");

		if (f) {
			if (fscanf(f, "%ld", &id) != 1)
				id = -1;
			fclose(f);
		}
	}
	return id;
}

/* A counter of this thread's system calls, enabled; -1 when perf cannot count them. */
static int perf_start(void)
{
	struct perf_event_attr a;
	long id = tracepoint();
	int fd;

	if (id < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_TRACEPOINT;
	a.size = sizeof(a);
	a.config = (uint64_t)id;
	a.disabled = 1;
	fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd >= 0)
		ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	return fd;
}

static long long perf_stop(int fd)
{
	uint64_t v = 0;

	if (fd < 0)
		return -1;
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	close(fd);
	return (long long)v - 1;	/* the disable ioctl itself */
}

struct shared {
	long long reader_sys;
	unsigned reader_wakeups;
};

static int reader(const char *name, unsigned count, bool poll, struct shared *sh)
{
	struct smem_ring *r = NULL;
	struct smem_ring_poll *p = NULL;
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned got = 0, v;
	int ep = -1, pf;

	if (smem_ring_open(name, NULL, &r))
		return 1;
	if (poll) {
		if (smem_ring_poll_open(r, SMEM_RING_POLL_READ, &p))
			return 2;
		ep = epoll_create1(EPOLL_CLOEXEC);
		epoll_ctl(ep, EPOLL_CTL_ADD, smem_ring_poll_fd(p), &ev);
	}
	pf = perf_start();
	while (got < count) {
		if (poll) {
			if (smem_ring_poll_arm(p) == 0) {
				epoll_wait(ep, &ev, 1, -1);
				sh->reader_wakeups++;
			}
			smem_ring_poll_disarm(p);
		}
		while (smem_ring_read(r, &v, sizeof(v), 0) == (ssize_t)sizeof(v))
			got++;
	}
	sh->reader_sys = perf_stop(pf);
	if (poll) {
		close(ep);
		smem_ring_poll_close(p);
	}
	smem_ring_close(r);
	return 0;
}

static void run(const char *label, unsigned count, bool poll)
{
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct smem_ring *w = NULL;
	struct smem_ring_stats st;
	char name[64];
	long long sys;
	unsigned i;
	pid_t pid;
	int pf, s;

	snprintf(name, sizeof(name), "evloop-bench-%d-%d", (int)getpid(), (int)poll);
	if (smem_ring_create(name, 1024, 64, NULL, &w)) {
		fprintf(stderr, "create failed\n");
		exit(1);
	}
	pid = fork();
	if (pid == 0)
		_exit(reader(name, count, poll, sh));
	usleep(100000);	/* the reader is in its loop */
	pf = perf_start();
	for (i = 0; i < count; i++)
		if (smem_ring_write(w, &i, sizeof(i), -1))
			exit(1);
	sys = perf_stop(pf);
	waitpid(pid, &s, 0);
	smem_ring_stats(w, &st);
	printf("%-7s writer: %s syscalls/msg, %.4f futex wakes/msg; reader: %s syscalls/msg, "
	       "%u loop wakeups (%u messages)\n", label,
	       sys < 0 ? "n/a" : (snprintf(name, sizeof(name), "%.4f", (double)sys / count), name),
	       (double)st.wakes / count,
	       sh->reader_sys < 0 ? "n/a" :
	       (snprintf(name + 32, 32, "%.4f", (double)sh->reader_sys / count), name + 32),
	       sh->reader_wakeups, count);
	smem_ring_close(w);
	munmap(sh, sizeof(*sh));
}

int main(int argc, char **argv)
{
	unsigned count = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200000;

	run("none", count, false);
	run("poller", count, true);
	return 0;
}
