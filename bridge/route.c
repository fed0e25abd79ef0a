/* SPDX-License-Identifier: MIT */
/*
 * Message routes: an exporter reads a local ring or topic (its "end", ring_end.c or
 * topic_end.c) like any other reader and publishes each message behind a 32-byte header; an
 * importer takes messages from a subject and writes their payloads into a local ring or topic
 * like any other writer. One thread per route; each wait is bounded (100 ms) so that
 * smem_bridge_stop() is prompt.
 *
 * Plain NATS (at most once): nothing is retried; the exporter counts publishes that failed and
 * what its topic overwrote before it read it, the importer counts sequence gaps per sender and
 * the messages NATS dropped because its bounded pending queue was full while the local end
 * pushed back.
 *
 * JetStream (exactly once into the importing end):
 *
 * The exporter takes each message through its journal: it holds the message in the local end
 * (a ring node reserved zero-copy, a topic view), copies header and payload into the journal
 * and marks it pending, and only then lets the local message go; it publishes from the journal
 * with Nats-Msg-Id "SENDER-SEQ" and waits for the stream's ack, repeating the same publish
 * until it gets one (the stream drops repeats by id within its duplicate window, 2 minutes by
 * default), then clears the mark. With a state directory the journal is a mmap'd file, and
 * SENDER is drawn once and kept in it, so a bridge killed at any instruction and restarted
 * publishes a pending message again under the same id: if the stream had it, the repeat is
 * dropped; if not, it is stored now. What remains: a kill -9 after the ring's reader claim and
 * before the pending mark (a copy of the payload) loses that one message, as the death of any
 * ring reader does; the ring reclaims its node and counts it in nodes_reclaimed. Without a
 * state directory the journal is in memory and SENDER is new per process.
 *
 * The importer reads the stream through an ordered consumer that starts after its cursor: the
 * stream sequence of the last message its end accepted, kept in a mmap'd state file that is
 * stored right after each write (kill -9 loses no store: the page cache keeps it). What the
 * server may redeliver at or below the cursor is skipped and counted. The cursor lives on the
 * receiving host rather than in the server's acks because an ack cannot be made atomic with
 * the local write; a local store can come right after it. The one window left: a kill -9
 * between the local commit and the cursor store would deliver that message again; the window
 * holds the rest of the write call, which wakes a sleeping reader (one futex system call), so
 * a kill that lands just as a reader is woken by the import is the likely case.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bridge_internal.h"

#define WAIT_MS 100
#define BURST 8		/* plain exporter: quick asap publishes in a row before buffering */
#define GAP_NS 50000ull		/* plain exporter: publishes closer than this are a stream */
#define SENDERS 16
#define STATE_MAGIC 0x524f535255434d53ull	/* "SMCURSOR" */
#define JOURNAL_MAGIC 0x4c4e524a4d454d53ull	/* "SMEMJRNL" */

struct sender_seq {
	uint64_t sender, next;		/* next expected seq from this sender */
	uint64_t used;			/* LRU stamp */
};

/* The exporter's journal: one message between the local end and the publish's ack. Written by
 * the route's thread only; in a file, what a kill -9 leaves is read by the next start. */
struct journal {
	uint64_t magic;			/* JOURNAL_MAGIC */
	uint64_t sender;		/* this route's sender id (for good, with a file) */
	uint64_t seq;			/* the last sequence given out */
	uint64_t len;			/* pending: msg[0..len) */
	_Atomic uint64_t pending;	/* 1: msg awaits its publish (JetStream: its ack) */
	uint64_t reserved[3];
	uint8_t msg[];			/* wire header + payload */
};
_Static_assert(sizeof(struct journal) == 64, "journal header is 64 bytes");

struct route_priv {
	const struct smem__bridge_end_ops *ops;
	void *end;			/* the local ring or topic, NULL while it is away */
	natsSubscription *sub;
	struct journal *j;		/* exporter */
	size_t jsize;			/* bytes mapped or allocated at j */
	int jfd;			/* the journal's file, -1 in memory */
	_Atomic uint64_t *cursor;	/* importer, jetstream: [0] magic, [1] cursor */
	struct sender_seq senders[SENDERS];
	uint64_t stamp;
	bool asap;			/* plain exporter: publishing on the send-asap connection */
	unsigned busy;			/* plain exporter: asap publishes in a row, each soon after
					 * the one before */
	uint64_t last_ns;		/* plain exporter: when the last publish was made */
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

static bool is_export(const struct smem_bridge_route *rt)
{
	return rt->cfg.kind == SMEM_BRIDGE_EXPORT_RING || rt->cfg.kind == SMEM_BRIDGE_EXPORT_TOPIC;
}

bool smem__bridge_is_message_route(enum smem_bridge_kind k)
{
	return k == SMEM_BRIDGE_EXPORT_RING || k == SMEM_BRIDGE_IMPORT_RING ||
	       k == SMEM_BRIDGE_EXPORT_TOPIC || k == SMEM_BRIDGE_IMPORT_TOPIC;
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

static int open_end(struct smem_bridge_route *rt, struct route_priv *p)
{
	return p->ops->open(rt, is_export(rt), &p->end);
}

static void close_end(struct route_priv *p)
{
	p->ops->close(p->end);
	p->end = NULL;
}

/* ---- exporter ------------------------------------------------------------------------- */

/* Make room in the journal for a message of @len payload bytes. 0, -ENOMEM, -errno. */
static int journal_fit(struct route_priv *p, size_t len)
{
	size_t need = sizeof(struct journal) + sizeof(struct smem_bridge_wire) + len;
	void *m;

	if (need <= p->jsize)
		return 0;
	if (p->jfd < 0) {
		m = realloc(p->j, need);
		if (!m)
			return -ENOMEM;
	} else {
		/* Nothing is pending while we grow (we only grow before taking a message). */
		if (ftruncate(p->jfd, (off_t)need))
			return -errno;
		m = mremap(p->j, p->jsize, need, MREMAP_MAYMOVE);
		if (m == MAP_FAILED)
			return -errno;
	}
	p->j = m;
	p->jsize = need;
	return 0;
}

/*
 * The exporter's journal: STATE_DIR/export-STREAM-HASH.journal (mode 0600) for a JetStream
 * route with a state directory, else memory. A file left by a previous run keeps its sender,
 * its sequence and any pending message.
 */
static int journal_open(struct smem_bridge_route *rt, struct route_priv *p)
{
	struct smem_bridge *b = rt->bridge;
	char path[4400];
	struct stat st;
	void *map;
	int fd;

	p->jfd = -1;
	if (!rt->cfg.stream[0] || !b->state_dir[0]) {
		p->j = calloc(1, sizeof(struct journal));
		if (!p->j)
			return -ENOMEM;
		p->jsize = sizeof(struct journal);
		p->j->magic = JOURNAL_MAGIC;
		p->j->sender = b->sender;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/export-%s-%016" PRIx64 ".journal", b->state_dir,
		 rt->cfg.stream, fnv1a(rt->cfg.stream, rt->cfg.local));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || (st.st_size != 0 && st.st_size < (off_t)sizeof(struct journal)) ||
	    (st.st_size == 0 && ftruncate(fd, sizeof(struct journal)))) {
		close(fd);
		return -EPROTO;
	}
	p->jsize = st.st_size ? (size_t)st.st_size : sizeof(struct journal);
	map = mmap(NULL, p->jsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		close(fd);
		return -errno;
	}
	p->j = map;
	p->jfd = fd;
	if (st.st_size == 0) {
		uint64_t sender;

		if (getrandom(&sender, sizeof(sender), 0) != sizeof(sender) || !sender)
			sender = b->sender;
		p->j->sender = sender;
		p->j->seq = 0;
		atomic_store_explicit(&p->j->pending, 0, memory_order_relaxed);
		/* Release: the fields above before the magic that makes them count. */
		atomic_store_explicit((_Atomic uint64_t *)&p->j->magic, JOURNAL_MAGIC,
				      memory_order_release);
	} else if (p->j->magic != JOURNAL_MAGIC || !p->j->sender) {
		return -EPROTO;		/* free_priv unmaps and closes */
	} else if (atomic_load(&p->j->pending) &&
		   p->j->len > p->jsize - sizeof(struct journal)) {
		/* A pending length the file cannot hold is no message of ours. */
		atomic_store(&p->j->pending, 0);
		atomic_fetch_add(&rt->c.errors, 1);
	}
	return 0;
}

/* Copy the held message into the journal, header first, and mark it pending. */
static void journal_take(struct route_priv *p, const void *data, size_t n)
{
	struct journal *j = p->j;
	struct smem_bridge_wire w = {
		.magic = SMEM_BRIDGE_MAGIC,
		.version = 1,
		.hdr_len = sizeof(w),
		.sender = j->sender,
		.seq = j->seq + 1,
		.msg_id = j->seq + 1,
	};

	memcpy(j->msg, &w, sizeof(w));
	memcpy(j->msg + sizeof(w), data, n);
	j->len = sizeof(w) + n;
	j->seq = w.seq;
	/* Release: header, payload and length are in the journal before it says "pending". */
	atomic_store_explicit(&j->pending, 1, memory_order_release);
}

/* Publish the journal's pending message, then clear the mark. */
static void journal_publish(struct smem_bridge_route *rt, struct route_priv *p)
{
	struct smem_bridge *b = rt->bridge;
	struct journal *j = p->j;
	struct smem_bridge_wire w;
	uint64_t payload = j->len - sizeof(w);
	natsStatus s;

	memcpy(&w, j->msg, sizeof(w));
	if (!rt->cfg.stream[0]) {
		s = natsConnection_Publish(p->asap ? b->nc_asap : b->nc, rt->cfg.subject, j->msg,
					   (int)j->len);
		if (s != NATS_OK) {
			atomic_fetch_add(&rt->c.lost, 1);
			atomic_store_explicit(&j->pending, 0, memory_order_release);
			return;
		}
	} else {
		char id[48];
		jsPubOptions po;

		snprintf(id, sizeof(id), "%016" PRIx64 "-%" PRIu64, w.sender, w.msg_id);
		jsPubOptions_Init(&po);
		po.MsgId = id;
		po.MaxWait = 2000;
		for (;;) {
			s = js_Publish(NULL, b->js, rt->cfg.subject, j->msg, (int)j->len, &po, NULL);
			if (s == NATS_OK)
				break;
			if (stopping(rt)) {
				/* A journal file keeps it for the next start; memory does not. */
				if (p->jfd < 0) {
					atomic_fetch_add(&rt->c.lost, 1);
					atomic_store(&j->pending, 0);
				}
				return;
			}
			/* No ack (server down, failover, stream leader election): the same id
			 * again; the stream keeps one copy. */
			atomic_fetch_add(&rt->c.retries, 1);
			sleep_ms(50);
		}
	}
	atomic_fetch_add(&rt->c.messages, 1);
	atomic_fetch_add(&rt->c.bytes, payload);
	/* Release: a later message's copy into the journal comes after this. */
	atomic_store_explicit(&j->pending, 0, memory_order_release);
}

static bool connected(natsConnection *nc)
{
	return nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
}

/*
 * After a plain publish: which connection the next one takes. A lone message goes out at once
 * on the send-asap connection: one write, no flusher thread, no flush round trip (measured
 * with bridgebench: about 2 fewer voluntary context switches per message than a buffered
 * publish and its flush). A stream (BURST publishes in a row, each less than GAP_NS after the
 * one before) goes through the buffered connection: one write per batch, the throughput.
 * While buffering, a local end that runs empty gets what libnats buffered flushed at once
 * rather than when its flusher wakes (about 1 ms later); a message that came after a pause
 * (GAP_NS) goes back to send-asap, as a lone one. The gaps make it hysteresis: a fast stream
 * that now and then finds the local end empty stays buffered.
 *
 * Order: the server handles each connection's messages in order, but not one connection's
 * against another's. So a route changes connection only once the server has handled all it
 * sent on the other: after a flush round trip on it (its PONG comes after the PUBs before it),
 * and only while both are connected (while disconnected, publishes wait in the reconnect
 * buffer of the connection they were made on, in order).
 */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void plain_settle(struct smem_bridge_route *rt, struct route_priv *p)
{
	struct smem_bridge *b = rt->bridge;
	uint64_t now = mono_ns();
	bool quick = now - p->last_ns < GAP_NS;

	p->last_ns = now;
	if (p->asap) {
		p->busy = quick ? p->busy + 1 : 0;
		if (p->busy >= BURST && connected(b->nc) && connected(b->nc_asap) &&
		    natsConnection_FlushTimeout(b->nc_asap, 1000) == NATS_OK) {
			p->asap = false;
			p->busy = 0;
		}
		return;
	}
	if (p->ops->idle(p->end) && connected(b->nc) &&
	    natsConnection_FlushTimeout(b->nc, 1000) == NATS_OK && !quick && connected(b->nc_asap))
		p->asap = true;
}

static void *export_thread(void *arg)
{
	struct smem_bridge_route *rt = arg;
	struct route_priv *p = rt->priv;

	/* What a kill -9 left pending: the same message under the same id. */
	if (atomic_load_explicit(&p->j->pending, memory_order_acquire))
		journal_publish(rt, p);
	while (!stopping(rt)) {
		const void *data = NULL;
		uint64_t lost = 0;
		ssize_t n;

		if (!p->end && open_end(rt, p)) {
			sleep_ms(WAIT_MS);	/* the ring or topic went away: wait for it */
			continue;
		}
		n = p->ops->peek(p->end, &data, &lost, WAIT_MS);
		if (lost)
			atomic_fetch_add(&rt->c.lost, lost);
		if (n == -ESHUTDOWN) {
			close_end(p);
			continue;
		}
		if (n < 0) {
			if (n != -ETIMEDOUT)
				atomic_fetch_add(&rt->c.errors, 1);
			continue;
		}
		if (journal_fit(p, (size_t)n)) {
			p->ops->done(p->end);
			atomic_fetch_add(&rt->c.errors, 1);
			continue;
		}
		journal_take(p, data, (size_t)n);
		p->ops->done(p->end);
		journal_publish(rt, p);
		if (!rt->cfg.stream[0] && !rt->bridge->send_asap)
			plain_settle(rt, p);
	}
	return NULL;
}

/* ---- importer ------------------------------------------------------------------------- */

/* Count gaps in a sender's sequence: losses on the way (plain NATS). */
static void track_sender(struct smem_bridge_route *rt, struct route_priv *p,
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

/* Write into the local end, waiting as long as it pushes back. 0, or a negative errno. */
static int import_write(struct smem_bridge_route *rt, struct route_priv *p, const void *data,
			size_t len)
{
	int rc;

	for (;;) {
		if (!p->end && open_end(rt, p)) {
			if (stopping(rt))
				return -ECANCELED;
			sleep_ms(WAIT_MS);
			continue;
		}
		rc = p->ops->write(p->end, data, len, WAIT_MS);
		if (rc != -ETIMEDOUT && rc != -ESHUTDOWN)
			return rc;
		if (rc == -ESHUTDOWN)
			close_end(p);
		if (stopping(rt))
			return -ECANCELED;
	}
}

static void import_one(struct smem_bridge_route *rt, struct route_priv *p, natsMsg *m)
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
		/* Right after the local commit: the page cache keeps it through kill -9. A
		 * message the local end refused (too large) is passed over too, or it would block the
		 * route for ever. */
		atomic_store_explicit(&p->cursor[1], stream_seq, memory_order_release);
		atomic_store(&rt->c.cursor, stream_seq);
	}
}

static void *import_thread(void *arg)
{
	struct smem_bridge_route *rt = arg;
	struct route_priv *p = rt->priv;

	while (!stopping(rt)) {
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, p->sub, WAIT_MS);

		if (s == NATS_OK) {
			import_one(rt, p, m);
			natsMsg_Destroy(m);
			continue;
		}
		/* NATS_SLOW_CONSUMER: NATS dropped messages while the local end pushed back; the
		 * sequence gap at the next message counts them. */
		if (s != NATS_TIMEOUT && s != NATS_SLOW_CONSUMER)
			sleep_ms(10);	/* disconnected: NATS reconnects on its own */
	}
	return NULL;
}

/* The importer's cursor: STATE_DIR/import-STREAM-HASH.cursor, 16 bytes, mode 0600. */
static int map_cursor(struct smem_bridge_route *rt, struct route_priv *p)
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

static int subscribe(struct smem_bridge_route *rt, struct route_priv *p)
{
	struct smem_bridge *b = rt->bridge;
	natsStatus s;

	if (!rt->cfg.stream[0]) {
		s = natsConnection_SubscribeSync(&p->sub, b->nc_in, rt->cfg.subject);
		/* Bounded: while the local end pushes back, NATS holds at most this much. */
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

static void free_priv(struct route_priv *p)
{
	if (!p)
		return;
	if (p->sub) {
		natsSubscription_Unsubscribe(p->sub);
		natsSubscription_Destroy(p->sub);
	}
	if (p->end)
		p->ops->close(p->end);
	if (p->cursor)
		munmap((void *)p->cursor, 16);
	if (p->jfd >= 0) {
		munmap(p->j, p->jsize);
		close(p->jfd);
	} else {
		free(p->j);
	}
	free(p);
}

int smem__bridge_route_start(struct smem_bridge_route *rt)
{
	bool export = is_export(rt);
	struct route_priv *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->jfd = -1;
	p->asap = rt->bridge->nc_asap != NULL;
	p->ops = rt->cfg.kind == SMEM_BRIDGE_EXPORT_TOPIC || rt->cfg.kind == SMEM_BRIDGE_IMPORT_TOPIC
		 ? &smem__bridge_topic_end : &smem__bridge_ring_end;
	rt->priv = p;
	rc = rt->cfg.stream[0] ? ensure_stream(rt) : 0;
	/* An exporter needs its ring or topic now (a typo should not wait silently); an
	 * importer may start before the local object's owner. */
	if (rc == 0) {
		rc = open_end(rt, p);
		if (rc == -ENOENT && !export)
			rc = 0;
	}
	if (rc == 0 && export) {
		rc = journal_open(rt, p);
		if (rc == 0 && p->ops->max_len(p->end))
			rc = journal_fit(p, p->ops->max_len(p->end));
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

void smem__bridge_route_stop(struct smem_bridge_route *rt)
{
	if (rt->thread_started)
		pthread_join(rt->thread, NULL);
	rt->thread_started = false;
	free_priv(rt->priv);
	rt->priv = NULL;
}
