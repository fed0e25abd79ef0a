/* SPDX-License-Identifier: MIT */
/*
 * Peer: ZeroMQ over ipc:// (libzmq3-dev). stream: PUSH -> PULL with a high-water mark of
 * `nodes` messages; pingpong: a PAIR socket each side. zmq_send copies the payload in,
 * zmq_recv copies it out; 100 ms send/receive timeouts let the harness stop. See peer.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "peer.h"

struct zend {
	void *ctx, *sock;
};

static void endpoint(const struct peer_cfg *c, char *buf, size_t n)
{
	snprintf(buf, n, "ipc:///tmp/%s.zmq", c->id);
}

static int setup(const struct peer_cfg *c)
{
	(void)c;
	return 0;
}

static void *zopen(const struct peer_cfg *c, int role)
{
	struct zend *e = calloc(1, sizeof(*e));
	int hwm = (int)c->nodes, tmo = 100, rc;
	char ep[256];

	if (!e)
		return NULL;
	endpoint(c, ep, sizeof(ep));
	e->ctx = zmq_ctx_new();
	e->sock = zmq_socket(e->ctx, c->pingpong ? ZMQ_PAIR : role == 0 ? ZMQ_PUSH : ZMQ_PULL);
	if (!e->sock)
		goto fail;
	zmq_setsockopt(e->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(e->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(e->sock, ZMQ_SNDTIMEO, &tmo, sizeof(tmo));
	zmq_setsockopt(e->sock, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
	/* the reader binds, the writer connects (and retries until the bind is there) */
	rc = role == 1 ? zmq_bind(e->sock, ep) : zmq_connect(e->sock, ep);
	if (rc)
		goto fail;
	return e;
fail:
	fprintf(stderr, "zmq_ipc: %s\n", zmq_strerror(zmq_errno()));
	if (e->sock)
		zmq_close(e->sock);
	zmq_ctx_term(e->ctx);
	free(e);
	return NULL;
}

static int zsend(void *h, int dir, const void *buf, size_t len)
{
	struct zend *e = h;

	(void)dir;
	if (zmq_send(e->sock, buf, len, 0) == (int)len)
		return 1;
	return zmq_errno() == EAGAIN ? 0 : -1;
}

static int zrecv(void *h, int dir, void *buf, size_t len)
{
	struct zend *e = h;
	int n;

	(void)dir;
	n = zmq_recv(e->sock, buf, len, 0);
	if (n < 0)
		return zmq_errno() == EAGAIN ? 0 : -1;
	return (size_t)n == len ? 1 : -1;
}

static void zclose(void *h)
{
	struct zend *e = h;
	int linger = 0;

	zmq_setsockopt(e->sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_close(e->sock);
	zmq_ctx_term(e->ctx);
	free(e);
}

static void teardown(const struct peer_cfg *c)
{
	char path[256];

	snprintf(path, sizeof(path), "/tmp/%s.zmq", c->id);
	unlink(path);
}

static const struct peer_ops ops = { "zmq_ipc", setup, zopen, zsend, zrecv, zclose, teardown };

int main(int argc, char **argv)
{
	return peer_main(argc, argv, &ops);
}
