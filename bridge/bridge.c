/* SPDX-License-Identifier: MIT */
/*
 * The bridge: one NATS connection (reconnecting forever across the configured servers), one
 * JetStream context, and the routes, each run by route.c (rings, topics) or rpc_route.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bridge_internal.h"

int smem__bridge_errno(natsStatus s)
{
	switch (s) {
	case NATS_OK: return 0;
	case NATS_TIMEOUT: return -ETIMEDOUT;
	case NATS_NO_RESPONDERS:
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_STALE_CONNECTION:
	case NATS_IO_ERROR: return -ECONNRESET;
	case NATS_NO_SERVER: return -ECONNREFUSED;
	case NATS_CONNECTION_AUTH_FAILED:
	case NATS_NOT_PERMITTED: return -EACCES;
	case NATS_NO_MEMORY: return -ENOMEM;
	case NATS_MAX_PAYLOAD: return -EMSGSIZE;
	case NATS_SLOW_CONSUMER: return -ENOBUFS;
	case NATS_INVALID_ARG: return -EINVAL;
	default: return -EPROTO;
	}
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct smem_bridge *b = closure;

	(void)nc;
	atomic_fetch_add(&b->reconnects, 1);
}

static int build_options(const struct smem_bridge_config *cfg, struct smem_bridge *b,
			 natsOptions **ret)
{
	static const char *default_server = "nats://127.0.0.1:4222";
	natsOptions *o = NULL;
	natsStatus s;

	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, cfg->nservers ? (const char **)cfg->servers
							    : &default_server,
					   cfg->nservers ? cfg->nservers : 1);
	if (s == NATS_OK && cfg->client_name)
		s = natsOptions_SetName(o, cfg->client_name);
	/* A bridge outlives server restarts and failovers: reconnect forever, quickly, and
	 * keep publishes made while disconnected in a bounded buffer (8 MiB). */
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 100);
	/* Servers are tried in the order given: the first is the preferred (nearest) one. */
	if (s == NATS_OK)
		s = natsOptions_SetNoRandomize(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(o, 8 << 20);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, false, NULL, NULL);
	/* Buffered (libnats's flusher sends in batches) unless the config asks for latency. */
	if (s == NATS_OK && cfg->send_asap)
		s = natsOptions_SetSendAsap(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, b);
	if (s == NATS_OK && cfg->user)
		s = natsOptions_SetUserInfo(o, cfg->user, cfg->password);
	if (s == NATS_OK && cfg->token)
		s = natsOptions_SetToken(o, cfg->token);
	if (s == NATS_OK && cfg->nkey_seed_file) {
		/* The public key is derived from the seed by the client. */
		s = natsOptions_SetNKeyFromSeed(o, NULL, cfg->nkey_seed_file);
	}
	if (s == NATS_OK && (cfg->tls_ca || cfg->tls_cert))
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && cfg->tls_ca)
		s = natsOptions_LoadCATrustedCertificates(o, cfg->tls_ca);
	if (s == NATS_OK && cfg->tls_cert)
		s = natsOptions_LoadCertificatesChain(o, cfg->tls_cert, cfg->tls_key);
	if (s != NATS_OK) {
		natsOptions_Destroy(o);
		return s == NATS_NO_MEMORY ? -ENOMEM : -EINVAL;
	}
	*ret = o;
	return 0;
}

static void stop_routes(struct smem_bridge *b)
{
	atomic_store(&b->stop, true);
	for (int i = 0; i < b->nroutes; i++) {
		struct smem_bridge_route *rt = &b->routes[i];

		if (smem__bridge_is_message_route(rt->cfg.kind))
			smem__bridge_route_stop(rt);
		else
			smem__bridge_rpc_stop(rt);
	}
}

void smem_bridge_stop(struct smem_bridge *b)
{
	if (!b)
		return;
	stop_routes(b);
	jsCtx_Destroy(b->js);
	jsCtx_Destroy(b->js_in);
	if (b->nc) {
		natsConnection_Close(b->nc);
		natsConnection_Destroy(b->nc);
	}
	if (b->nc_in) {
		natsConnection_Close(b->nc_in);
		natsConnection_Destroy(b->nc_in);
	}
	if (b->nc_asap) {
		natsConnection_Close(b->nc_asap);
		natsConnection_Destroy(b->nc_asap);
	}
	free(b);
}

int smem_bridge_start(const struct smem_bridge_config *cfg, struct smem_bridge **ret)
{
	struct smem_bridge *b;
	natsOptions *o = NULL;
	natsStatus s;
	int rc;
	bool need_js = false, need_in = false, need_asap = false;

	if (!cfg || !ret || cfg->nroutes == 0)
		return -EINVAL;
	for (int i = 0; i < cfg->nroutes; i++) {
		bool import = cfg->routes[i].kind == SMEM_BRIDGE_IMPORT_RING ||
			      cfg->routes[i].kind == SMEM_BRIDGE_IMPORT_TOPIC;

		if (import)
			need_in = true;
		if (!import && smem__bridge_is_message_route(cfg->routes[i].kind) &&
		    !cfg->routes[i].stream[0] && !cfg->send_asap)
			need_asap = true;
		if (cfg->routes[i].stream[0]) {
			need_js = true;
			if (import && !cfg->state_dir)
				return -EINVAL;
		}
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	if (cfg->broker) {
		snprintf(b->broker, sizeof(b->broker), "%s", cfg->broker);
		b->sopts.broker = b->broker;
	}
	if (cfg->state_dir)
		snprintf(b->state_dir, sizeof(b->state_dir), "%s", cfg->state_dir);
	b->request_timeout_ms = cfg->request_timeout_ms;
	b->max_pending_msgs = cfg->max_pending_msgs;
	b->send_asap = cfg->send_asap;
	if (cfg->client_name)
		snprintf(b->name, sizeof(b->name), "%s", cfg->client_name);
	if (getrandom(&b->sender, sizeof(b->sender), 0) != sizeof(b->sender) || !b->sender)
		b->sender = 1;
	rc = build_options(cfg, b, &o);
	if (rc) {
		free(b);
		return rc;
	}
	s = natsConnection_Connect(&b->nc, o);
	if (s == NATS_OK && need_in)
		s = natsConnection_Connect(&b->nc_in, o);
	if (s == NATS_OK && need_asap) {
		s = natsOptions_SetSendAsap(o, true);
		if (s == NATS_OK)
			s = natsConnection_Connect(&b->nc_asap, o);
	}
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		smem_bridge_stop(b);
		return s == NATS_NO_SERVER ? -ECONNREFUSED : smem__bridge_errno(s);
	}
	if (need_js && (natsConnection_JetStream(&b->js, b->nc, NULL) != NATS_OK ||
			(need_in && natsConnection_JetStream(&b->js_in, b->nc_in, NULL) != NATS_OK))) {
		smem_bridge_stop(b);
		return -ENOMEM;
	}
	for (int i = 0; i < cfg->nroutes; i++) {
		struct smem_bridge_route *rt = &b->routes[i];

		rt->cfg = cfg->routes[i];
		rt->bridge = b;
		b->nroutes = i + 1;
		if (smem__bridge_is_message_route(rt->cfg.kind))
			rc = smem__bridge_route_start(rt);
		else
			rc = smem__bridge_rpc_start(rt);
		if (rc) {
			smem_bridge_stop(b);
			return rc;
		}
	}
	*ret = b;
	return 0;
}

int smem_bridge_route_count(const struct smem_bridge *b)
{
	return b ? b->nroutes : 0;
}

int smem_bridge_route_stats(const struct smem_bridge *b, int i,
			    struct smem_bridge_route_stats *out)
{
	const struct smem_bridge_route *rt;

	if (!b || !out || i < 0 || i >= b->nroutes)
		return -ERANGE;
	rt = &b->routes[i];
	memset(out, 0, sizeof(*out));
	out->kind = rt->cfg.kind;
	out->jetstream = rt->cfg.stream[0] != '\0';
	snprintf(out->local, sizeof(out->local), "%s", rt->cfg.local);
	snprintf(out->subject, sizeof(out->subject), "%s", rt->cfg.subject);
	out->messages = atomic_load(&rt->c.messages);
	out->bytes = atomic_load(&rt->c.bytes);
	out->lost = atomic_load(&rt->c.lost);
	out->errors = atomic_load(&rt->c.errors);
	out->duplicates = atomic_load(&rt->c.duplicates);
	out->retries = atomic_load(&rt->c.retries);
	out->cursor = atomic_load(&rt->c.cursor);
	return 0;
}

uint64_t smem_bridge_reconnects(const struct smem_bridge *b)
{
	return b ? atomic_load(&b->reconnects) : 0;
}
