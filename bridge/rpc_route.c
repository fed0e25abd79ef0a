/* SPDX-License-Identifier: MIT */
/*
 * RPC routes.
 *
 * serve rpc NAME as SUBJECT: NATS requests on SUBJECT become calls on the local channel NAME
 * (the bridge is the service's peer endpoint); the response, or the error, is the reply.
 * call SUBJECT as rpc NAME: the bridge is the service end of the local channel NAME; each
 * call a local client makes becomes a NATS request to SUBJECT.
 *
 * Errors cross as the negative errno in the "Smem-Status" header (and the handler's message
 * in "Smem-Error"), so a local caller sees the remote handler's own error. When the remote
 * side is gone the caller gets -ECONNRESET (no responder on the subject, or the local service
 * died) or -ETIMEDOUT (no reply within request-timeout-ms): nothing waits longer than that.
 * Calls are not repeated by the bridge (at most once): a request that got no answer may or
 * may not have run.
 *
 * A local endpoint whose peer died or closed keeps failing (smem_rpc semantics), so the bridge
 * closes it and opens the channel again: a restarted service or client is picked up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge_internal.h"

#define STATUS_HDR "Smem-Status"
#define ERROR_HDR "Smem-Error"
#define WAIT_MS 100

struct rpc_priv {
	pthread_mutex_t lock;		/* serve: the channel, opened lazily */
	struct smem_rpc *ch;
	natsSubscription *sub;
};

static bool gone(int rc)
{
	return rc == -ECONNRESET || rc == -ESHUTDOWN;
}

/* The channel, opened with @handler (NULL: the bridge only calls) in dispatch mode. */
static int open_channel(struct smem_bridge_route *rt, struct rpc_priv *p,
			smem_rpc_handler_fn handler)
{
	struct smem_rpc_opts o;

	memset(&o, 0, sizeof(o));
	o.base = rt->bridge->sopts;
	o.service = SMEM_RPC_SERVICE_DISPATCH;
	o.handler = handler;
	o.handler_arg = rt;
	return smem_rpc_open(rt->cfg.local, &o, &p->ch);
}

/* serve: one NATS request, answered by a call on the local channel. */
static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
	struct smem_bridge_route *rt = arg;
	struct rpc_priv *p = rt->priv;
	const char *reply_to = natsMsg_GetReply(m);
	void *resp = NULL;
	size_t resp_len = 0;
	natsMsg *r = NULL;
	int rc;

	(void)sub;
	pthread_mutex_lock(&p->lock);
	rc = p->ch ? 0 : open_channel(rt, p, NULL);
	if (rc == 0)
		rc = smem_rpc_call(p->ch, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
				   &resp, &resp_len, rt->bridge->request_timeout_ms);
	if (gone(rc)) {
		/* The service went away: the next request opens the channel afresh. */
		smem_rpc_close(p->ch);
		p->ch = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		atomic_fetch_add(&rt->c.messages, 1);
	else if (gone(rc) || rc == -ETIMEDOUT || rc == -ENOENT)
		atomic_fetch_add(&rt->c.lost, 1);
	else
		atomic_fetch_add(&rt->c.errors, 1);
	if (rc == 0)
		atomic_fetch_add(&rt->c.bytes, resp_len);
	if (reply_to && natsMsg_Create(&r, reply_to, NULL, resp, (int)resp_len) == NATS_OK) {
		if (rc) {
			char status[16];
			const char *why = smem_rpc_last_error_message();

			/* A service that is not there (never was, died, or closed) is, to the
			 * remote caller, a reset peer. */
			if (rc == -ENOENT || rc == -ESHUTDOWN)
				rc = -ECONNRESET;
			snprintf(status, sizeof(status), "%d", rc);
			natsMsgHeader_Set(r, STATUS_HDR, status);
			if (why && *why)
				natsMsgHeader_Set(r, ERROR_HDR, why);
		}
		natsConnection_PublishMsg(nc, r);
		natsMsg_Destroy(r);
	}
	smem_rpc_free_response(resp);
	natsMsg_Destroy(m);
}

/* call: the handler of the local channel; each local call is one NATS request. */
static int on_local_call(void *arg, const struct smem_rpc_request *req,
			 struct smem_rpc_reply *reply)
{
	struct smem_bridge_route *rt = arg;
	natsMsg *m = NULL, *r = NULL;
	const char *status = NULL, *why = NULL;
	natsStatus s;
	int rc = 0;

	s = natsMsg_Create(&m, rt->cfg.subject, NULL, req->data, (int)req->len);
	if (s == NATS_OK)
		s = natsConnection_RequestMsg(&r, rt->bridge->nc, m,
					      rt->bridge->request_timeout_ms);
	natsMsg_Destroy(m);
	if (s != NATS_OK) {
		rc = smem__bridge_errno(s);
		atomic_fetch_add(&rt->c.lost, 1);
		smem_rpc_reply_error(reply, s == NATS_NO_RESPONDERS ? "smem-bridge: no responder"
								     : natsStatus_GetText(s));
		return rc;
	}
	if (natsMsgHeader_Get(r, STATUS_HDR, &status) == NATS_OK && status) {
		char *end;
		long v = strtol(status, &end, 10);

		/* Only a negative errno is believed; anything else is a protocol error. */
		rc = (*end || v >= 0 || v < -4095) ? -EPROTO : (int)v;
		if (natsMsgHeader_Get(r, ERROR_HDR, &why) == NATS_OK && why)
			smem_rpc_reply_error(reply, why);
		atomic_fetch_add(&rt->c.errors, 1);
	} else {
		rc = smem_rpc_reply_set(reply, natsMsg_GetData(r), (size_t)natsMsg_GetDataLength(r));
		if (rc == 0) {
			atomic_fetch_add(&rt->c.messages, 1);
			atomic_fetch_add(&rt->c.bytes, (uint64_t)natsMsg_GetDataLength(r));
		}
	}
	natsMsg_Destroy(r);
	return rc;
}

static void *call_thread(void *arg)
{
	struct smem_bridge_route *rt = arg;
	struct rpc_priv *p = rt->priv;

	while (!atomic_load(&rt->bridge->stop)) {
		int rc;

		if (!p->ch && open_channel(rt, p, on_local_call)) {
			struct timespec ts = { 0, WAIT_MS * 1000000L };

			p->ch = NULL;
			nanosleep(&ts, NULL);
			continue;
		}
		rc = smem_rpc_dispatch(p->ch, WAIT_MS);
		if (gone(rc)) {
			/* The local client left: serve the next one. */
			smem_rpc_close(p->ch);
			p->ch = NULL;
		}
	}
	return NULL;
}

int smem__bridge_rpc_start(struct smem_bridge_route *rt)
{
	struct rpc_priv *p = calloc(1, sizeof(*p));
	natsStatus s;
	int rc;

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	rt->priv = p;
	if (rt->cfg.kind == SMEM_BRIDGE_SERVE_RPC) {
		s = natsConnection_Subscribe(&p->sub, rt->bridge->nc, rt->cfg.subject, on_request,
					     rt);
		rc = smem__bridge_errno(s);
		if (rc == 0)
			/* The subscription exists at the server before start returns, so a
			 * request made right after start finds its responder. */
			rc = smem__bridge_errno(natsConnection_Flush(rt->bridge->nc));
	} else {
		rc = -pthread_create(&rt->thread, NULL, call_thread, rt);
		if (rc == 0)
			rt->thread_started = true;
	}
	if (rc) {
		smem__bridge_rpc_stop(rt);
		return rc;
	}
	return 0;
}

void smem__bridge_rpc_stop(struct smem_bridge_route *rt)
{
	struct rpc_priv *p = rt->priv;

	if (!p)
		return;
	if (rt->thread_started)
		pthread_join(rt->thread, NULL);
	rt->thread_started = false;
	if (p->sub) {
		/* Drain: no new request is taken, and the wait returns once the callback that
		 * may be running (it uses the channel and this route) has returned. */
		if (natsSubscription_Drain(p->sub) == NATS_OK)
			natsSubscription_WaitForDrainCompletion(p->sub,
								rt->bridge->request_timeout_ms + 2000);
		natsSubscription_Destroy(p->sub);
	}
	smem_rpc_close(p->ch);
	pthread_mutex_destroy(&p->lock);
	free(p);
	rt->priv = NULL;
}
