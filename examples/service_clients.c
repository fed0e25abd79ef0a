/* SPDX-License-Identifier: MIT */
/*
 * One service, many clients: a server process answers "add these numbers" for four client
 * processes, each on its own channel, all from one serve loop. Two clients make a few calls
 * each, one floods the server with 200 calls in flight (it cannot starve the others: each
 * round serves at most 8 requests of each client), and one is killed with kill -9 while its
 * calls are in flight: the server frees its slot and nobody else notices.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <smem.h>

#define FLOOD 200

static unsigned long served[SMEM_SERVICE_MAX_CLIENTS];

/* Request: n uint32_t numbers. Response: their sum (uint64_t). */
static int add(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	const uint32_t *v = req->data;
	uint64_t sum = 0;
	size_t i;
	int client = smem_service_request_client(req);

	(void)arg;
	if (req->len % 4 || client < 0)
		return -EINVAL;
	served[client]++;
	for (i = 0; i < req->len / 4; i++)
		sum += v[i];
	return smem_rpc_reply_set(rep, &sum, sizeof(sum));
}

static uint64_t call_add(struct smem_service_client *c, const uint32_t *v, size_t n)
{
	uint64_t *sum, s;
	size_t len;
	int err = smem_service_call(c, v, n * 4, (void **)&sum, &len, 5000);

	if (err || len != 8) {
		fprintf(stderr, "call: %s\n", smem_strerror(err));
		exit(1);
	}
	s = *sum;
	smem_rpc_free_response(sum);
	return s;
}

/* A quiet client: five calls, each checked. Exit status 0 when every sum was right. */
static int quiet(const char *name)
{
	struct smem_service_client *c;
	uint32_t v[3];
	int i;

	if (smem_service_connect(name, NULL, &c))
		return 1;
	for (i = 1; i <= 5; i++) {
		v[0] = (uint32_t)i;
		v[1] = (uint32_t)i * 10;
		v[2] = (uint32_t)i * 100;
		if (call_add(c, v, 3) != (uint64_t)i * 111)
			return 2;
	}
	smem_service_disconnect(c);
	return 0;
}

/* The flooding client: FLOOD calls in flight at once, then all their results. */
static int flood(const char *name)
{
	struct smem_service_opts o = { .node_count = 256, .node_size = 256 };
	static struct smem_rpc_call *calls[FLOOD];
	struct smem_service_client *c;
	uint32_t i;

	if (smem_service_connect(name, &o, &c))
		return 1;
	for (i = 0; i < FLOOD; i++)
		if (smem_rpc_call_async(smem_service_channel(c), &i, 4, 5000, &calls[i]))
			return 2;
	if (smem_rpc_wait(calls, FLOOD, SMEM_RPC_WAIT_ALL, 5000) != FLOOD)
		return 3;
	for (i = 0; i < FLOOD; i++) {
		uint64_t *sum;
		size_t len;

		if (smem_rpc_call_result(calls[i], (void **)&sum, &len) || *sum != i)
			return 4;
		smem_rpc_free_response(sum);
		smem_rpc_call_free(calls[i]);
	}
	smem_service_disconnect(c);
	return 0;
}

/* A client that sends 10 calls and waits to be killed. */
static int victim(const char *name, int ready)
{
	struct smem_service_client *c;
	struct smem_rpc_call *call;
	uint32_t i;

	if (smem_service_connect(name, NULL, &c))
		return 1;
	for (i = 0; i < 10; i++)
		smem_rpc_call_async(smem_service_channel(c), &i, 4, -1, &call);
	if (write(ready, "x", 1) != 1)
		return 2;
	pause();
	return 0;
}

int main(void)
{
	struct smem_service_opts o = { .max_clients = 8, .handler = add };
	struct smem_service *svc;
	const char *who[3] = { "sensor-a", "sensor-b", "flooder" };
	pid_t pids[3], vpid;
	int i, err, st, left = 3, p[2], ok = 1, good[3] = { 0, 0, 0 };
	unsigned long total = 0;
	char name[64], b;

	snprintf(name, sizeof(name), "example-service-%d", (int)getpid());
	err = smem_service_create(name, &o, &svc);
	if (err) {
		fprintf(stderr, "smem_service_create: %s\n", smem_strerror(err));
		return 1;
	}
	printf("service %s: up to %u clients\n", "calc", o.max_clients);
	fflush(stdout);
	if (pipe(p))
		return 1;
	vpid = fork();
	if (vpid == 0)
		_exit(victim(name, p[1]));
	/* Serve until the victim has its calls in flight, then kill it. */
	while (read(p[0], &b, 1) != 1)
		;
	kill(vpid, SIGKILL);
	waitpid(vpid, NULL, 0);
	for (i = 0; i < 3; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(i < 2 ? quiet(name) : flood(name));
	}
	/* One loop serves every client; children report by their exit status. */
	while (left || smem_service_clients(svc) > 0) {
		if (smem_service_serve(svc, 20) < 0)
			return 1;
		for (i = 0; i < 3; i++)
			if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
				good[i] = WIFEXITED(st) && WEXITSTATUS(st) == 0;
				pids[i] = 0;
				left--;
			}
	}
	for (i = 0; i < 3; i++) {
		printf("%-9s %s\n", who[i], !good[i] ? "FAILED" : i < 2 ?
		       "5 calls, every sum right" : "200 calls in flight, every sum right");
		ok &= good[i];
	}
	for (i = 0; i < (int)SMEM_SERVICE_MAX_CLIENTS; i++)
		total += served[i];
	printf("victim    killed -9 with 10 calls in flight: its slot freed, nobody else failed\n");
	printf("server    %lu requests served; %d clients connected now\n", total,
	       smem_service_clients(svc));
	smem_service_close(svc);
	return ok ? 0 : 1;
}
