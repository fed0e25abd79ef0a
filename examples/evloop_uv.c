/* SPDX-License-Identifier: MIT */
/*
 * A ring reader, an RPC server and a topic subscriber in one libuv loop, with no thread per
 * handle: each smem handle gives a poller fd (smem_ring_poll_fd, smem_rpc_poll_fd,
 * smem_topic_poll_fd) that a uv_poll_t watches.
 * When one fires, the callback drains with timeout-0 calls and re-arms; arming reports
 * "ready now" instead of arming when work is already there, so nothing is missed.
 *
 * A forked child plays the other side: it writes MESSAGES messages into the ring, makes
 * CALLS calls to the server and publishes SAMPLES samples on the topic (a multi-publisher
 * topic, so that the child may publish). The loop stops when all three are done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <smem.h>

#define MESSAGES	1000
#define CALLS		100
#define SAMPLES		500

static struct smem_ring *ring;
static struct smem_ring_poll *ring_p;
static struct smem_rpc *chan;
static struct smem_rpc_poll *chan_p;
static struct smem_topic_pub *topic;
static struct smem_topic_sub *sub;
static struct smem_topic_poll *sub_p;
static uv_poll_t ring_w, chan_w, sub_w;
static unsigned got, served, samples;
static uint64_t sum, ssum;

static int square(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	uint32_t x, y;

	(void)arg;
	if (req->len != sizeof(x))
		return -EINVAL;
	memcpy(&x, req->data, sizeof(x));
	y = x * x;
	return smem_rpc_reply_set(rep, &y, sizeof(y));
}

static void maybe_stop(void)
{
	if (got == MESSAGES && served == CALLS && samples == SAMPLES) {
		uv_poll_stop(&ring_w);
		uv_poll_stop(&chan_w);
		uv_poll_stop(&sub_w);
	}
}

/* Drain the ring, then arm again; arm says 1 when more arrived meanwhile. */
static void on_ring(uv_poll_t *w, int status, int events)
{
	uint32_t v;
	int rc;

	(void)w, (void)status, (void)events;
	do {
		smem_ring_poll_disarm(ring_p);
		while (smem_ring_read(ring, &v, sizeof(v), 0) == (ssize_t)sizeof(v)) {
			sum += v;
			got++;
		}
		rc = smem_ring_poll_arm(ring_p);
	} while (rc == 1);
	if (rc < 0)
		fprintf(stderr, "ring arm: %s\n", smem_strerror(rc));
	maybe_stop();
}

static void on_chan(uv_poll_t *w, int status, int events)
{
	int rc;

	(void)w, (void)status, (void)events;
	do {
		smem_rpc_poll_disarm(chan_p);
		rc = smem_rpc_dispatch(chan, 0);
		if (rc < 0) {
			fprintf(stderr, "dispatch: %s\n", smem_strerror(rc));
			uv_poll_stop(&chan_w);
			return;
		}
		served += (unsigned)rc;
		rc = smem_rpc_poll_arm(chan_p);
	} while (rc == 1);
	maybe_stop();
}

/* Receive (zero-copy views, released at once), then arm again, as for the ring. */
static void on_sub(uv_poll_t *w, int status, int events)
{
	struct smem_topic_sample s;
	uint32_t v;
	int rc;

	(void)w, (void)status, (void)events;
	do {
		smem_topic_poll_disarm(sub_p);
		while (smem_topic_receive(sub, &s, 0) == 0) {
			memcpy(&v, s.view, sizeof(v));
			smem_topic_release(sub, &s);
			ssum += v;
			samples++;
		}
		rc = smem_topic_poll_arm(sub_p);
	} while (rc == 1);
	if (rc < 0)
		fprintf(stderr, "topic arm: %s\n", smem_strerror(rc));
	maybe_stop();
}

static int publish(const char *tname)
{
	struct smem_topic_pub *p = NULL;
	struct smem_topic_sample s;
	uint32_t i;

	if (smem_topic_open_publisher(tname, NULL, &p))
		return 4;
	for (i = 0; i < SAMPLES; i++) {
		if (smem_topic_loan(p, &s, 5000))
			return 5;
		memcpy(s.data, &i, sizeof(i));
		if (smem_topic_publish(p, &s, sizeof(i), 5000))
			return 6;
	}
	smem_topic_pub_close(p);
	return 0;
}

static int child(const char *rname, const char *cname, const char *tname)
{
	struct smem_rpc_opts o = { .spin_ns = SMEM_RPC_NO_SPIN };
	struct smem_ring *w = NULL;
	struct smem_rpc *c = NULL;
	uint32_t i, *sq, x;
	size_t len;

	if (smem_ring_open(rname, NULL, &w) || smem_rpc_open(cname, &o, &c))
		return 1;
	for (i = 0; i < MESSAGES; i++)
		if (smem_ring_write(w, &i, sizeof(i), 5000))
			return 2;
	for (x = 1; x <= CALLS; x++) {
		if (smem_rpc_call(c, &x, sizeof(x), (void **)&sq, &len, 5000) || len != 4 ||
		    *sq != x * x)
			return 3;
		smem_rpc_free_response(sq);
	}
	if ((x = (uint32_t)publish(tname)))
		return (int)x;
	smem_rpc_close(c);
	smem_ring_close(w);
	return 0;
}

int main(void)
{
	struct smem_rpc_opts o = { .handler = square, .service = SMEM_RPC_SERVICE_DISPATCH };
	/* BLOCK: the child waits for us when we fall behind, so every sample arrives. */
	struct smem_topic_config tc = {
		.sample_size = 64, .depth = 64, .policy = SMEM_TOPIC_BLOCK,
		.flags = SMEM_TOPIC_MULTI_PUBLISHER,
	};
	char rname[64], cname[64], tname[64];
	uv_loop_t *loop = uv_default_loop();
	int rc, st;
	pid_t pid;

	snprintf(rname, sizeof(rname), "evloop-ring-%d", (int)getpid());
	snprintf(cname, sizeof(cname), "evloop-rpc-%d", (int)getpid());
	snprintf(tname, sizeof(tname), "evloop-topic-%d", (int)getpid());
	if ((rc = smem_ring_create(rname, 64, 64, NULL, &ring)) ||
	    (rc = smem_rpc_open(cname, &o, &chan)) ||
	    (rc = smem_ring_poll_open(ring, SMEM_RING_POLL_READ, &ring_p)) ||
	    (rc = smem_rpc_poll_open(chan, &chan_p)) ||
	    (rc = smem_topic_create(tname, &tc, NULL, &topic)) ||
	    (rc = smem_topic_subscribe(tname, 0, NULL, &sub)) ||
	    (rc = smem_topic_poll_open(sub, &sub_p))) {
		fprintf(stderr, "evloop_uv: %s\n", smem_strerror(rc));
		return 1;
	}
	uv_poll_init(loop, &ring_w, smem_ring_poll_fd(ring_p));
	uv_poll_init(loop, &chan_w, smem_rpc_poll_fd(chan_p));
	uv_poll_start(&ring_w, UV_READABLE, on_ring);
	uv_poll_init(loop, &sub_w, smem_topic_poll_fd(sub_p));
	uv_poll_start(&chan_w, UV_READABLE, on_chan);
	uv_poll_start(&sub_w, UV_READABLE, on_sub);
	/* Look once before the first wait (arming may say "ready now"). */
	on_ring(&ring_w, 0, 0);
	on_chan(&chan_w, 0, 0);
	on_sub(&sub_w, 0, 0);
	pid = fork();
	if (pid == 0)
		_exit(child(rname, cname, tname));
	uv_run(loop, UV_RUN_DEFAULT);
	waitpid(pid, &st, 0);
	printf("evloop_uv: one libuv loop, %s: %u ring messages (sum %llu), %u RPC calls served, "
	       "%u topic samples (sum %llu); child %s\n",
	       smem_ring_poll_threaded(ring_p) ? "helper threads" : "no threads",
	       got, (unsigned long long)sum, served, samples, (unsigned long long)ssum,
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "FAILED");
	uv_close((uv_handle_t *)&ring_w, NULL);
	uv_close((uv_handle_t *)&chan_w, NULL);
	uv_close((uv_handle_t *)&sub_w, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	smem_topic_poll_close(sub_p);
	smem_topic_sub_close(sub);
	smem_topic_pub_close(topic);
	smem_rpc_poll_close(chan_p);
	smem_ring_poll_close(ring_p);
	smem_rpc_close(chan);
	smem_ring_close(ring);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == MESSAGES && served == CALLS &&
	       samples == SAMPLES ? 0 : 1;
}
