/* SPDX-License-Identifier: MIT */
/*
 * RPC pools: the memory a steady stream of calls and requests reuses instead of allocating. This
 * file owns the channel's spares: one call object, one request entry (small requests travel inside
 * it), and up to SMEM__RPC_SPARE_BUFS buffers for large requests (SMEM__RPC_SPARE_BUF_MAX bytes in
 * all), so a stream of large messages does not map, fault in and unmap fresh memory each time.
 *
 * The call and entry spares are single slots exchanged atomically (whoever takes one owns it
 * alone); the buffers sit under ch->lock. It calls nothing else of the RPC module.
 */
#include <stdlib.h>

#include "internal.h"
#include "rpc_int.h"

/* ---- large-request buffers (under ch->lock) --------------------------------------------- */

void *smem__rpc_buf_get(struct smem_rpc *ch, uint64_t len, size_t *cap)
{
	void *buf = NULL;
	unsigned i;

	pthread_mutex_lock(&ch->lock);
	for (i = 0; i < SMEM__RPC_SPARE_BUFS; i++)
		if (ch->spare_buf[i].p && ch->spare_buf[i].cap >= len) {
			buf = ch->spare_buf[i].p;
			*cap = ch->spare_buf[i].cap;
			ch->spare_buf[i].p = NULL;
			ch->spare_buf_bytes -= *cap;
			break;
		}
	pthread_mutex_unlock(&ch->lock);
	return buf;
}

void smem__rpc_buf_put(struct smem_rpc *ch, void *buf, size_t cap)
{
	unsigned i;

	pthread_mutex_lock(&ch->lock);
	if (cap <= SMEM__RPC_SPARE_BUF_MAX - ch->spare_buf_bytes)
		for (i = 0; i < SMEM__RPC_SPARE_BUFS; i++)
			if (!ch->spare_buf[i].p) {
				ch->spare_buf[i].p = buf;
				ch->spare_buf[i].cap = cap;
				ch->spare_buf_bytes += cap;
				buf = NULL;
				break;
			}
	pthread_mutex_unlock(&ch->lock);
	free(buf);
}

/* ---- request entries ---------------------------------------------------------------------- */

struct smem__rpc_req *smem__rpc_req_new(struct smem_rpc *ch, size_t len, void *buf,
					size_t bufcap)
{
	struct smem__rpc_req *q;

	if (!buf && len <= ch->req_room) {
		/* Acquire: pairs with the exchange in smem__rpc_req_recycle(). */
		q = atomic_exchange_explicit(&ch->spare_req, NULL, memory_order_acquire);
		if (!q && (q = malloc(sizeof(*q) + ch->req_room)))
			q->cap = ch->req_room;
		if (q)
			q->data = q->room;
		return q;
	}
	q = malloc(sizeof(*q));
	if (!q)
		return NULL;
	q->cap = 0;
	if (!buf && !(buf = smem__rpc_buf_get(ch, len, &bufcap))) {
		bufcap = len;
		buf = malloc(len);
		if (!buf) {
			free(q);
			return NULL;
		}
	}
	q->data = buf;
	q->bufcap = bufcap;
	return q;
}

void smem__rpc_req_destroy(struct smem__rpc_req *q)
{
	if (q->cap == 0)
		free(q->data);
	free(q);
}

void smem__rpc_req_recycle(struct smem_rpc *ch, struct smem__rpc_req *q)
{
	if (q->cap == 0) {
		smem__rpc_buf_put(ch, q->data, q->bufcap);
		free(q);
		return;
	}
	/* Release: our use of *q happens before the next owner's (smem__rpc_req_new's acquire). */
	q = atomic_exchange_explicit(&ch->spare_req, q, memory_order_acq_rel);
	if (q)
		smem__rpc_req_destroy(q);
}

/* ---- call objects ------------------------------------------------------------------------- */

struct smem_rpc_call *smem__rpc_call_new(struct smem_rpc *ch)
{
	/* Acquire: pairs with the exchange in smem__rpc_call_recycle(); the spare is ours alone. */
	struct smem_rpc_call *c = atomic_exchange_explicit(&ch->spare_call, NULL,
							    memory_order_acquire);

	return c ? c : malloc(sizeof(*c));
}

void smem__rpc_call_recycle(struct smem_rpc *ch, struct smem_rpc_call *c)
{
	/* Release: our writes to *c happen before the next owner's (call_new's acquire). */
	struct smem_rpc_call *old = atomic_exchange_explicit(&ch->spare_call, c,
							      memory_order_acq_rel);

	free(old);
}

void smem__rpc_pools_free(struct smem_rpc *ch)
{
	unsigned i;

	free(atomic_load_explicit(&ch->spare_call, memory_order_acquire));
	free(atomic_load_explicit(&ch->spare_req, memory_order_acquire));
	for (i = 0; i < SMEM__RPC_SPARE_BUFS; i++)
		free(ch->spare_buf[i].p);
}
