/* SPDX-License-Identifier: MIT */
/*
 * The harness of the peer programs (boost_mq, zmq_ipc): the same workloads as ringbench's,
 * run the same way (two pinned processes, warm-up, a timed window, every payload written in
 * full and every byte read), printing one JSON line that ringbench --compare reads:
 *
 *   PEER stream|pingpong|rpc --size B --reply B --nodes N --seconds S --warmup S
 *        [--count N] [--cpus A,B]
 *
 * stream: the writer sends messages of B bytes, the reader receives and sums them;
 * pingpong and rpc: the pinger sends B bytes, the ponger answers --reply bytes; round trips
 * are timed one by one. Output keys: msgs_per_s, gb_per_s, rtt_ns_p50, rtt_ns_p99,
 * rtt_ns_p999 (null for stream), cpu_s_per_msg, cswitch_per_msg (getrusage of both
 * processes over their whole run, divided by the messages they moved).
 *
 * A peer supplies the transport below; `dir` 0 is writer->reader (pinger->ponger), 1 back.
 */
#ifndef RINGBENCH_PEER_H
#define RINGBENCH_PEER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct peer_cfg {
	int pingpong;		/* 0: stream */
	size_t size, reply;
	unsigned nodes;		/* queue depth in messages */
	const char *id;		/* unique per run: for names */
};

struct peer_ops {
	const char *name;
	/* In the parent, before the workers start: create what has a name. 0 or -1. */
	int (*setup)(const struct peer_cfg *c);
	/* In a worker: open the endpoint of @role (0 writer/pinger, 1 reader/ponger). */
	void *(*open)(const struct peer_cfg *c, int role);
	/* Send or receive one message on direction @dir, waiting at most about 100 ms:
	 * 1 done, 0 timed out (the caller checks whether to stop and retries), -1 error. */
	int (*send)(void *h, int dir, const void *buf, size_t len);
	int (*recv)(void *h, int dir, void *buf, size_t len);
	void (*close)(void *h);
	/* In the parent, after the workers ended: remove names. */
	void (*teardown)(const struct peer_cfg *c);
};

int peer_main(int argc, char **argv, const struct peer_ops *ops);

#ifdef __cplusplus
}
#endif
#endif
