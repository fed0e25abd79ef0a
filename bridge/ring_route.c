/* SPDX-License-Identifier: MIT */
/*
 * Ring routes: an exporter reads a local ring like any other reader and publishes each message
 * behind a 32-byte header; an importer takes messages from a subject and writes their payloads
 * into a local ring like any other writer. One thread per route; each wait is bounded (100 ms)
 * so that smem_bridge_stop() is prompt.
 *
 * Plain NATS (at most once): nothing is retried; the exporter counts publishes that failed,
 * the importer counts sequence gaps per sender and the messages NATS dropped because its
 * bounded pending queue was full while the ring pushed back.
 *
 * JetStream (exactly once into the importing ring): the exporter publishes with Nats-Msg-Id
 * "SENDER-MSGID" and waits for the stream's ack, repeating the same publish until it gets one
 * (the stream drops the repeats by id). The importer reads the stream through an ordered
 * consumer that starts after its cursor: the stream sequence of the last message the ring
 * accepted, kept in a mmap'd state file that is stored right after each ring write (kill -9
 * loses no store: the page cache keeps it). What the server may redeliver at or below the
 * cursor is skipped and counted. The cursor lives on the receiving host rather than in the
 * server's acks because an ack cannot be made atomic with the ring write; a local store can
 * come right after it. The one window left: a kill -9 between the ring's commit and the next
 * store (two instructions) would deliver that message again. A message the exporter had read
 * from its ring but not yet got acked when it was killed is lost: a ring has no cursor to
 * resume from (its node is reclaimed by the ring and counted in nodes_reclaimed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bridge_internal.h"

#define WAIT_MS 100
#define SENDERS 16
#define STATE_MAGIC 0x524f535255434d53ull	/* "SMCURSOR" */

struct sender_seq {
	uint64_t sender, next;		/* next expected seq from this sender */
	uint64_t used;			/* LRU stamp */
};

struct ring_priv {
	struct smem_ring *ring;
	natsSubscription *sub;
	uint8_t *buf;
	size_t cap;
	_Atomic uint64_t *cursor;	/* mmap'd state file: [0] magic, [1] cursor */
	uint64_t seq;			/* exporter: last sequence sent */
	struct sender_seq senders[SENDERS];
	uint64_t stamp;
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool stopping(const struct smem_bridge_route *rt)
{
	return atomic_load_explicit(&rt->bridge->stop, memory_order_relaxed);
}

/*
 * The stream behind a JetStream route: created on first use (file storage, the subject only,
 * the route's replicas). A cluster that is still electing its JetStream leader answers with
 * errors for a few seconds: keep asking for up to 30 s.
 */
static int ensure_stream(struct smem_bridge_route *rt)
{
	const char *subjects[1] = { rt->cfg.subject };
	natsStatus s = NATS_OK;
	jsErrCode jerr = 0;

	for (int attempt = 0; attempt < 300 && !stopping(rt); attempt++) {
		jsStreamInfo *si = NULL;
		jsStreamConfig sc;

		jerr = 0;
		s = js_GetStreamInfo(&si, rt->bridge->js, rt->cfg.stream, NULL, &jerr);
		if (s == NATS_OK) {
			jsStreamInfo_Destroy(si);
			return 0;
		}
		jsStreamConfig_Init(&sc);
		sc.Name = rt->cfg.stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Replicas = rt->cfg.replicas ? (int64_t)rt->cfg.replicas : 1;
		jerr = 0;
		s = js_AddStream(&si, rt->bridge->js, &sc, NULL, &jerr);
		if (s == NATS_OK) {
			jsStreamInfo_Destroy(si);
			return 0;
		}
		/* Another bridge created it meanwhile. */
		if (jerr == JSStreamNameExistErr)
			return 0;
		sleep_ms(WAIT_MS);
	}
	fprintf(stderr, "smem-bridge: stream %s: %s (%d)\n", rt->cfg.stream,
		natsStatus_GetText(s), (int)jerr);
	return smem__bridge_errno(s);
}

static int open_ring(struct smem_bridge_route *rt, struct ring_priv *p)
{
	int rc;

	rc = smem_ring_open(rt->cfg.local, &rt->bridge->sopts, &p->ring);
	if (rc == -ENOENT && rt->cfg.create_nodes)
		rc = smem_ring_create(rt->cfg.local, rt->cfg.create_nodes, rt->cfg.create_size,
				      &rt->bridge->sopts, &p->ring);
	if (rc)
		return rc;
	if (!p->buf) {
		p->cap = sizeof(struct smem_bridge_wire) + smem_ring_node_size(p->ring);
		p->buf = malloc(p->cap);
		if (!p->buf) {
			smem_ring_close(p->ring);
			p->ring = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

/* The ring went away (its owner closed it): wait for it to come back. */
static void reopen_ring(struct smem_bridge_route *rt, struct ring_priv *p)
{
	smem_ring_close(p->ring);
	p->ring = NULL;
	while (!stopping(rt) && open_ring(rt, p))
		sleep_ms(WAIT_MS);
}

static void export_one(struct smem_bridge_route *rt, struct ring_priv *p, size_t n)
{
	struct smem_bridge_wire *w = (struct smem_bridge_wire *)p->buf;
	struct smem_bridge *b = rt->bridge;
	natsStatus s;

	w->magic = SMEM_BRIDGE_MAGIC;
	w->version = 1;
	w->hdr_len = sizeof(*w);
	w->sender = b->sender;
	w->seq = ++p->seq;
	w->msg_id = w->seq;
	if (!rt->cfg.stream[0]) {
		s = natsConnection_Publish(b->nc, rt->cfg.subject, p->buf, (int)(sizeof(*w) + n));
		if (s != NATS_OK) {
			atomic_fetch_add(&rt->c.lost, 1);
			return;
		}
	} else {
		char id[48];
		jsPubOptions po;

		snprintf(id, sizeof(id), "%016" PRIx64 "-%" PRIu64, w->sender, w->msg_id);
		jsPubOptions_Init(&po);
		po.MsgId = id;
		po.MaxWait = 2000;
		for (;;) {
			s = js_Publish(NULL, b->js, rt->cfg.subject, p->buf, (int)(sizeof(*w) + n),
				       &po, NULL);
			if (s == NATS_OK)
				break;
			if (stopping(rt)) {
				atomic_fetch_add(&rt->c.lost, 1);
				return;
			}
			/* No ack (server down, failover, stream leader election): the same id
			 * again; the stream keeps one copy. */
			atomic_fetch_add(&rt->c.retries, 1);
			sleep_ms(50);
		}
	}
	atomic_fetch_add(&rt->c.messages, 1);
	atomic_fetch_add(&rt->c.bytes, n);
}

static void *export_thread(void *arg)
{
	struct smem_bridge_route *rt = arg;
	struct ring_priv *p = rt->priv;

	while (!stopping(rt)) {
		ssize_t n = smem_ring_read(p->ring, p->buf + sizeof(struct smem_bridge_wire),
					   p->cap - sizeof(struct smem_bridge_wire), WAIT_MS);

		if (n >= 0) {
			export_one(rt, p, (size_t)n);
			/* The ring is empty: send what libnats buffered now rather than when its
			 * flusher wakes (about 1 ms for a lone message). A burst still goes out in
			 * batches; the flush's PING costs one round trip per idle moment. Not while
			 * disconnected: publishes then wait in libnats's reconnect buffer. */
			if (!rt->cfg.stream[0] && !rt->bridge->send_asap &&
			    smem_ring_next_len(p->ring) == -EAGAIN &&
			    natsConnection_Status(rt->bridge->nc) == NATS_CONN_STATUS_CONNECTED)
				natsConnection_FlushTimeout(rt->bridge->nc, 1000);
		}
		else if (n == -ESHUTDOWN)
			reopen_ring(rt, p);
		else if (n != -ETIMEDOUT)
			atomic_fetch_add(&rt->c.errors, 1);
	}
	return NULL;
}

/* Count gaps in a sender's sequence: losses on the way (plain NATS). */
static void track_sender(struct smem_bridge_route *rt, struct ring_priv *p,
			 const struct smem_bridge_wire *w)
{
	struct sender_seq *s = NULL, *oldest = &p->senders[0];

	for (int i = 0; i < SENDERS; i++) {
		if (p->senders[i].sender == w->sender) {
			s = &p->senders[i];
			break;
		}
		if (p->senders[i].used < oldest->used)
			oldest = &p->senders[i];
	}
	if (!s) {
		/* A new sender (or a restarted one): its first message starts the count. */
		s = oldest;
		s->sender = w->sender;
		s->next = w->seq;
	}
	if (w->seq > s->next)
		atomic_fetch_add(&rt->c.lost, w->seq - s->next);
	if (w->seq >= s->next)
		s->next = w->seq + 1;
	s->used = ++p->stamp;
}

/* Write into the ring, waiting as long as it pushes back. 0, or a negative errno. */
static int import_write(struct smem_bridge_route *rt, struct ring_priv *p, const void *data,
			size_t len)
{
	int rc;

	for (;;) {
		if (!p->ring) {
			reopen_ring(rt, p);
			if (!p->ring)
				return -ECANCELED;
		}
		rc = smem_ring_write(p->ring, data, len, WAIT_MS);
		if (rc == 0 || rc == -EMSGSIZE || rc == -EPROTO)
			return rc;
		if (rc == -ESHUTDOWN) {
			smem_ring_close(p->ring);
			p->ring = NULL;
		}
		if (stopping(rt))
			return -ECANCELED;
	}
}

static void import_one(struct smem_bridge_route *rt, struct ring_priv *p, natsMsg *m)
{
	const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
	int len = natsMsg_GetDataLength(m);
	struct smem_bridge_wire w;
	uint64_t stream_seq = 0;
	int rc;

	if (len < (int)sizeof(w)) {
		atomic_fetch_add(&rt->c.errors, 1);
		return;
	}
	memcpy(&w, data, sizeof(w));
	if (w.magic != SMEM_BRIDGE_MAGIC || w.version != 1 || w.hdr_len < sizeof(w) ||
	    w.hdr_len > len) {
		atomic_fetch_add(&rt->c.errors, 1);
		return;
	}
	if (p->cursor) {
		jsMsgMetaData *meta = NULL;

		if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
			atomic_fetch_add(&rt->c.errors, 1);
			return;
		}
		stream_seq = meta->Sequence.Stream;
		jsMsgMetaData_Destroy(meta);
		if (stream_seq <= atomic_load_explicit(&p->cursor[1], memory_order_relaxed)) {
			atomic_fetch_add(&rt->c.duplicates, 1);
			return;
		}
	}
	track_sender(rt, p, &w);
	rc = import_write(rt, p, data + w.hdr_len, (size_t)(len - w.hdr_len));
	if (rc == -ECANCELED)
		return;		/* stopping: JetStream sends it again after the cursor */
	if (rc) {
		atomic_fetch_add(&rt->c.errors, 1);
	} else {
		atomic_fetch_add(&rt->c.messages, 1);
		atomic_fetch_add(&rt->c.bytes, (uint64_t)(len - w.hdr_len));
	}
	if (p->cursor) {
		/* Right after the ring's commit: the page cache keeps it through kill -9. A
		 * message the ring refused (too large) is passed over too, or it would block the
		 * route for ever. */
		atomic_store_explicit(&p->cursor[1], stream_seq, memory_order_release);
		atomic_store(&rt->c.cursor, stream_seq);
	}
}

static void *import_thread(void *arg)
{
	struct smem_bridge_route *rt = arg;
	struct ring_priv *p = rt->priv;

	while (!stopping(rt)) {
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, p->sub, WAIT_MS);

		if (s == NATS_OK) {
			import_one(rt, p, m);
			natsMsg_Destroy(m);
			continue;
		}
		/* NATS_SLOW_CONSUMER: NATS dropped messages while the ring pushed back; the
		 * sequence gap at the next message counts them. */
		if (s != NATS_TIMEOUT && s != NATS_SLOW_CONSUMER)
			sleep_ms(10);	/* disconnected: NATS reconnects on its own */
	}
	return NULL;
}

static uint64_t fnv1a(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ull;

	for (const char *s = a; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *s = b; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* The importer's cursor: STATE_DIR/import-STREAM-HASH.cursor, 16 bytes, mode 0600. */
static int map_cursor(struct smem_bridge_route *rt, struct ring_priv *p)
{
	char path[4400];
	struct stat st;
	void *map;
	int fd;

	snprintf(path, sizeof(path), "%s/import-%s-%016" PRIx64 ".cursor", rt->bridge->state_dir,
		 rt->cfg.stream, fnv1a(rt->cfg.stream, rt->cfg.local));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || (st.st_size != 0 && st.st_size != 16) ||
	    (st.st_size == 0 && ftruncate(fd, 16))) {
		close(fd);
		return -EPROTO;
	}
	map = mmap(NULL, 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	p->cursor = map;
	if (st.st_size == 0)
		atomic_store(&p->cursor[0], STATE_MAGIC);
	else if (atomic_load(&p->cursor[0]) != STATE_MAGIC) {
		munmap(map, 16);
		p->cursor = NULL;
		return -EPROTO;
	}
	atomic_store(&rt->c.cursor, atomic_load(&p->cursor[1]));
	return 0;
}

static int subscribe(struct smem_bridge_route *rt, struct ring_priv *p)
{
	struct smem_bridge *b = rt->bridge;
	natsStatus s;

	if (!rt->cfg.stream[0]) {
		s = natsConnection_SubscribeSync(&p->sub, b->nc_in, rt->cfg.subject);
		/* Bounded: while the ring pushes back, NATS holds at most this much. */
		if (s == NATS_OK)
			s = natsSubscription_SetPendingLimits(p->sub, b->max_pending_msgs,
							      64 << 20);
	} else {
		jsSubOptions so;
		jsErrCode jerr = 0;
		uint64_t cursor = atomic_load(&p->cursor[1]);

		jsSubOptions_Init(&so);
		so.Stream = rt->cfg.stream;
		so.Ordered = true;
		/* An ordered consumer notices a lost server by missing heartbeats, then recreates
		 * itself after the last sequence it saw: 1 s instead of the default 5 s bounds
		 * the pause of a failover. */
		so.Config.Heartbeat = 1000000000LL;
		if (cursor) {
			so.Config.DeliverPolicy = js_DeliverByStartSequence;
			so.Config.OptStartSeq = cursor + 1;
		} else {
			so.Config.DeliverPolicy = js_DeliverAll;
		}
		s = js_SubscribeSync(&p->sub, b->js_in, rt->cfg.subject, NULL, &so, &jerr);
		if (s != NATS_OK)
			fprintf(stderr, "smem-bridge: subscribe %s: %s (%d)\n", rt->cfg.subject,
				natsStatus_GetText(s), (int)jerr);
	}
	/* The interest exists at the server before start returns: an exporter started next
	 * loses nothing to a subscription still in flight. */
	if (s == NATS_OK)
		s = natsConnection_Flush(b->nc_in);
	return smem__bridge_errno(s);
}

static void free_priv(struct ring_priv *p)
{
	if (!p)
		return;
	if (p->sub) {
		natsSubscription_Unsubscribe(p->sub);
		natsSubscription_Destroy(p->sub);
	}
	smem_ring_close(p->ring);
	if (p->cursor)
		munmap((void *)p->cursor, 16);
	free(p->buf);
	free(p);
}

int smem__bridge_ring_start(struct smem_bridge_route *rt)
{
	bool export = rt->cfg.kind == SMEM_BRIDGE_EXPORT_RING;
	struct ring_priv *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	rt->priv = p;
	rc = rt->cfg.stream[0] ? ensure_stream(rt) : 0;
	/* An exporter needs its ring now (a typo should not wait silently); an importer may
	 * start before the ring's owner. */
	if (rc == 0) {
		rc = open_ring(rt, p);
		if (rc == -ENOENT && !export)
			rc = 0;
	}
	if (rc == 0 && !export && rt->cfg.stream[0])
		rc = map_cursor(rt, p);
	if (rc == 0 && !export)
		rc = subscribe(rt, p);
	if (rc == 0)
		rc = -pthread_create(&rt->thread, NULL, export ? export_thread : import_thread, rt);
	if (rc) {
		free_priv(p);
		rt->priv = NULL;
		return rc;
	}
	rt->thread_started = true;
	return 0;
}

void smem__bridge_ring_stop(struct smem_bridge_route *rt)
{
	if (rt->thread_started)
		pthread_join(rt->thread, NULL);
	rt->thread_started = false;
	free_priv(rt->priv);
	rt->priv = NULL;
}
