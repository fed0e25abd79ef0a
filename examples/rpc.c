/* SPDX-License-Identifier: MIT */
/*
 * The seed's RpcBuffer example: a master that only calls, a slave whose handler adds the two
 * bytes of the request, and one call with 123 and 10. Prints the seed's heading, then 133.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <smem.h>

/* The broker's failures come with a sentence naming its address (smem_last_error). */
static const char *why(int err)
{
	return *smem_last_error() ? smem_last_error() : smem_strerror(err);
}

static int add_bytes(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *reply)
{
	const uint8_t *b = req->data;
	int32_t sum;

	(void)arg;
	if (req->len != 2)
		return -EINVAL;
	sum = b[0] + b[1];
	return smem_rpc_reply_set(reply, &sum, sizeof(sum));
}

int main(void)
{
	struct smem_rpc_opts slave_opts = { .handler = add_bytes };
	struct smem_rpc *master, *slave;
	uint8_t args[2] = { 123, 10 };
	size_t len = 0;
	void *resp = NULL;
	char name[64];
	int32_t sum;
	int rc;

	snprintf(name, sizeof(name), "RpcTest-%d", (int)getpid());
	rc = smem_rpc_open(name, NULL, &master);
	if (rc) {
		fprintf(stderr, "rpc: open master: %s\n", why(rc));
		return 1;
	}
	rc = smem_rpc_open(name, &slave_opts, &slave);
	if (rc) {
		fprintf(stderr, "rpc: open slave: %s\n", why(rc));
		smem_rpc_close(master);
		return 1;
	}
	rc = smem_rpc_call(master, args, sizeof(args), &resp, &len, 5000);
	if (rc || len != sizeof(sum)) {
		fprintf(stderr, "rpc: call: %s\n", smem_strerror(rc));
		smem_rpc_close(master);
		smem_rpc_close(slave);
		return 1;
	}
	memcpy(&sum, resp, sizeof(sum));
	smem_rpc_free_response(resp);
	printf("SharedMemory.RpcBuffer:\n%d\n", (int)sum);
	smem_rpc_close(master);
	smem_rpc_close(slave);
	return 0;
}
