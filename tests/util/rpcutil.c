/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the RPC suites (check_rpc.c and check_rpc_faults.c): the wait-backend
 * fixtures, channel openers, the common handlers and a payload filler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "wait.h"
#include "util/rpcutil.h"
#include "util/testutil.h"

int t_rpc_want_backend;	/* what the TCase's fixture asked for */

void t_rpc_uring_setup(void)
{
	unsetenv("SMEM_NO_URING");
	t_rpc_want_backend = SMEM__WAIT_URING;
	t_fds_setup();
}

void t_rpc_fallback_setup(void)
{
	setenv("SMEM_NO_URING", "1", 1);
	t_rpc_want_backend = SMEM__WAIT_FUTEX_WAITV;
	t_fds_setup();
}

void t_rpc_check_backend(void)
{
	int b = smem__wait_backend();

	if (t_rpc_want_backend == SMEM__WAIT_URING && b != SMEM__WAIT_URING)
		fprintf(stderr, "note: io_uring futex waits unavailable here, using backend %d\n", b);
	else
		ck_assert_int_eq(b, t_rpc_want_backend);
}

struct smem_rpc *t_rpc_open(const char *name, smem_rpc_handler_fn h, void *arg)
{
	struct smem_rpc_opts o = { .handler = h, .handler_arg = arg };
	struct smem_rpc *ch = NULL;
	int rc = smem_rpc_open(name, &o, &ch);

	ck_assert_msg(rc == 0, "open %s: %s", name, smem_strerror(rc));
	return ch;
}

struct smem_rpc *t_rpc_open_opts(const char *name, const struct smem_rpc_opts *o)
{
	struct smem_rpc *ch = NULL;
	int rc = smem_rpc_open(name, o, &ch);

	ck_assert_msg(rc == 0, "open %s: %s", name, smem_strerror(rc));
	return ch;
}

int t_rpc_h_mul(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	const uint8_t *b = req->data;
	uint8_t p;

	(void)arg;
	if (req->len < 2)
		return -EINVAL;
	p = (uint8_t)(b[0] * b[1]);
	return smem_rpc_reply_set(rep, &p, 1);
}

int t_rpc_h_noop(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	(void)arg;
	(void)req;
	(void)rep;
	return 0;
}

int t_rpc_h_echo(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	(void)arg;
	return smem_rpc_reply_set(rep, req->data, req->len);
}

void t_rpc_fill(uint8_t *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}
