/* SPDX-License-Identifier: MIT */
/*
 * The RPC scenario: a server and a client, killed and restarted at random, every other trial on
 * the futex_waitv fallback; checked: every response is the right one and calls fail only with
 * -ECONNRESET/-ESHUTDOWN/-ETIMEDOUT, well before their timeout on a dead server (see crash.c).
 */
#include "crash.h"

enum { ROLE_SERVER, ROLE_CLIENT };

struct rpc_shared {
	_Atomic int stop;
	_Atomic uint64_t calls, ok;
	_Atomic uint32_t wrong, bad_errors, slow_failures, errors;
	char name[128];
};

static int rpc_handler(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *reply)
{
	unsigned char *out;
	size_t i;

	(void)arg;
	out = smem_rpc_reply_alloc(reply, req->len);
	if (!out && req->len)
		return -ENOMEM;
	for (i = 0; i < req->len; i++)
		out[i] = (unsigned char)~((const unsigned char *)req->data)[i];
	return 0;
}

static int rpc_server(int role, int id, void *arg)
{
	struct rpc_shared *sh = arg;
	struct smem_rpc_opts o;
	struct smem_rpc *ch = NULL;
	long long end = now_ms() + 3000;
	int err;

	(void)role;
	(void)id;
	memset(&o, 0, sizeof(o));
	o.handler = rpc_handler;
	o.node_count = 4;
	o.node_size = 256;
	o.spin_ns = SMEM_RPC_NO_SPIN;
	/* -EBUSY while the peers' previous incarnation is still seen alive: retry briefly. */
	while ((err = smem_rpc_open(sh->name, &o, &ch)) == -EBUSY && now_ms() < end)
		sleep_us(2000);
	if (err) {
		fprintf(stderr, "crash: rpc server open: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	while (!atomic_load(&sh->stop))
		sleep_us(2000);
	smem_rpc_close(ch);
	return 0;
}

static int rpc_client(int role, int id, void *arg)
{
	struct rpc_shared *sh = arg;
	struct smem_rpc_opts o;
	struct smem_rpc *ch = NULL;
	unsigned char req[600];
	long long end = now_ms() + 3000;
	uint32_t n = 0;
	int err;

	(void)role;
	(void)id;
	memset(&o, 0, sizeof(o));
	o.node_count = 4;
	o.node_size = 256;
	o.spin_ns = SMEM_RPC_NO_SPIN;
	while ((err = smem_rpc_open(sh->name, &o, &ch)) == -EBUSY && now_ms() < end)
		sleep_us(2000);
	if (err) {
		fprintf(stderr, "crash: rpc client open: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	while (!atomic_load(&sh->stop)) {
		size_t len = rnd_below(sizeof(req)), i, rlen = 0;
		void *resp = NULL;
		long long t0 = now_ms();

		for (i = 0; i < len; i++)
			req[i] = (unsigned char)(n + i);
		n++;
		atomic_fetch_add(&sh->calls, 1);
		err = smem_rpc_call(ch, req, len, &resp, &rlen, 5000);
		if (err == 0) {
			bool ok = rlen == len;

			for (i = 0; ok && i < len; i++)
				ok = ((unsigned char *)resp)[i] == (unsigned char)~req[i];
			if (!ok)
				atomic_fetch_add(&sh->wrong, 1);
			else
				atomic_fetch_add(&sh->ok, 1);
			smem_rpc_free_response(resp);
			continue;
		}
		if (err == -ECONNRESET || err == -ESHUTDOWN || err == -ENOSYS) {
			/* Peer gone (or a fresh master without our handler yet): promptly. */
			if (now_ms() - t0 > 2500)
				atomic_fetch_add(&sh->slow_failures, 1);
			if (err != -ENOSYS) {
				/* The channel is over for us: reopen to meet the next server. */
				smem_rpc_close(ch);
				ch = NULL;
				end = now_ms() + 3000;
				while (!atomic_load(&sh->stop) &&
				       (err = smem_rpc_open(sh->name, &o, &ch)) == -EBUSY &&
				       now_ms() < end)
					sleep_us(2000);
				if (!ch)
					break;
			}
			sleep_us(1000);
			continue;
		}
		if (err == -ETIMEDOUT) {
			if (!atomic_load(&sh->stop))
				atomic_fetch_add(&sh->slow_failures, 1);
			continue;
		}
		fprintf(stderr, "crash: rpc call: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->bad_errors, 1);
		break;
	}
	smem_rpc_close(ch);
	return 0;
}

void trial_rpc(void)
{
	struct rpc_shared *sh = shared_alloc(sizeof(*sh));
	unsigned kills = 1 + rnd_below(2), k;

	snprintf(sh->name, sizeof(sh->name), "%srpc", g_prefix);
	/* Every other trial waits without io_uring (the futex_waitv fallback), as where
	 * io_uring is disabled or blocked by seccomp. The children read it at first use. */
	if (g_stats.trials[S_RPC] % 2)
		setenv("SMEM_NO_URING", "1", 1);
	else
		unsetenv("SMEM_NO_URING");
	spawn(ROLE_SERVER, 0, rpc_server, sh);
	sleep_us(5000);
	spawn(ROLE_CLIENT, 0, rpc_client, sh);
	for (k = 0; k < kills && !g_fail[0]; k++) {
		int v;

		sleep_us(5000 + rnd_below(30000));
		v = pick_victim(rnd_below(3) == 0 ? ROLE_CLIENT : ROLE_SERVER);
		if (v < 0)
			break;
		kill9(v, S_RPC);
		spawn(procs[v].role, 0, procs[v].role == ROLE_SERVER ? rpc_server : rpc_client, sh);
	}
	sleep_us(20000 + rnd_below(20000));
	atomic_store(&sh->stop, 1);
	reap(-1, now_ms() + g_timeout_s * 1000);
	unsetenv("SMEM_NO_URING");
	if (atomic_load(&sh->wrong))
		fail("rpc: %u wrong responses", atomic_load(&sh->wrong));
	if (atomic_load(&sh->bad_errors))
		fail("rpc: %u calls failed with an unexpected error", atomic_load(&sh->bad_errors));
	if (atomic_load(&sh->slow_failures))
		fail("rpc: %u calls to a dead peer were not failed promptly",
		     atomic_load(&sh->slow_failures));
	if (atomic_load(&sh->errors))
		fail("rpc: %u participants could not open the channel", atomic_load(&sh->errors));
	g_stats.work[S_RPC] += atomic_load(&sh->ok);
	munmap(sh, sizeof(*sh));
}
