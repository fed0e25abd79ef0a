/* SPDX-License-Identifier: MIT */
/*
 * The ring scenario: 2 writers and 2 readers over a small ring, killed and replaced at random;
 * checked: nothing read twice, corrupted, out of order or never written, and every loss covered
 * by the ring's nodes_reclaimed counter (see crash.c).
 */
#include "crash.h"

#define R_WRITERS	2
#define R_READERS	2
#define R_IDS		16		/* writer ids, replacements included */
#define R_MAXSEQ	4096		/* messages per writer id per trial at most */
#define R_NODE		64

enum { ROLE_WRITER, ROLE_READER };

struct ring_msg {
	uint32_t writer, seq, len, sum;
	unsigned char pad[R_NODE - 16];
};

struct ring_shared {
	_Atomic int stop;			/* 1: writers stop; 2: readers drain and stop */
	_Atomic uint32_t committed[R_IDS];	/* messages the writer saw committed */
	_Atomic uint8_t seen[R_IDS][R_MAXSEQ];	/* reads of each message */
	_Atomic uint32_t corrupt, disorder, beyond, errors;
	_Atomic uint64_t reads;
	/* Reader rid is inside smem_ring_read() or has its copy unaccounted: a kill then loses
	 * that message in the reader's hands, with no node of the ring left to reclaim. */
	_Atomic uint8_t copying[R_IDS];
	char name[128];
};

static uint32_t msg_sum(const struct ring_msg *m)
{
	uint32_t s = m->writer * 2654435761u ^ m->seq * 40503u ^ m->len, i;

	for (i = 0; i + 16 < m->len; i++)
		s = s * 31 + m->pad[i];
	return s;
}

static void msg_make(struct ring_msg *m, uint32_t w, uint32_t seq)
{
	uint32_t i;

	m->writer = w;
	m->seq = seq;
	m->len = 16 + (seq * 7 + w) % (R_NODE - 16 + 1);
	for (i = 0; i + 16 < m->len; i++)
		m->pad[i] = (unsigned char)(seq + i * 3 + w);
	m->sum = msg_sum(m);
}

static int ring_writer(int role, int id, void *arg)
{
	struct ring_shared *sh = arg;
	struct smem_ring *r;
	struct ring_msg m;
	uint32_t seq = 0;
	int err;

	(void)role;
	err = smem_ring_open(sh->name, NULL, &r);
	if (err) {
		fprintf(stderr, "crash: writer open: %s\n", smem_strerror(err));
		return 1;
	}
	smem_ring_set_spin(r, 2000);
	while (!atomic_load(&sh->stop) && seq < R_MAXSEQ) {
		msg_make(&m, (uint32_t)id, seq);
		if (rnd_below(4) == 0) {
			struct smem_ring_slot slot;

			err = smem_ring_reserve_write(r, &slot, 100);
			if (err == 0 && rnd_below(8) == 0) {
				/* An aborted write: nothing is sent, the same seq goes next. */
				memcpy(slot.data, &m, 8);
				err = smem_ring_abort(r, &slot);
				if (err)
					break;
				continue;
			}
			if (err == 0) {
				memcpy(slot.data, &m, m.len);
				/* a window for the kill to land while we hold the node */
				for (volatile unsigned spin = rnd_below(20000); spin > 0; spin--)
					;
				err = smem_ring_commit(r, &slot, m.len);
			}
		} else {
			err = smem_ring_write(r, &m, m.len, 100);
		}
		if (err == -ETIMEDOUT)
			continue;	/* full: readers may be dead for a moment */
		if (err)
			break;
		/* Committed: only now may the campaign hold us to it. */
		atomic_store(&sh->committed[id], ++seq);
	}
	smem_ring_close(r);
	if (err && err != -ETIMEDOUT) {
		fprintf(stderr, "crash: writer %d: %s\n", id, smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	return 0;
}

/* Check and record one message; @last is the reader's per-writer order state. */
static void ring_account(struct ring_shared *sh, const void *data, size_t len, int64_t *last)
{
	struct ring_msg m;

	memset(&m, 0, sizeof(m));
	if (len < 16 || len > sizeof(m)) {
		atomic_fetch_add(&sh->corrupt, 1);
		return;
	}
	memcpy(&m, data, len);
	if (m.len != len || m.writer >= R_IDS || m.seq >= R_MAXSEQ || msg_sum(&m) != m.sum) {
		atomic_fetch_add(&sh->corrupt, 1);
		return;
	}
	if ((int64_t)m.seq <= last[m.writer])
		atomic_fetch_add(&sh->disorder, 1);
	last[m.writer] = m.seq;
	atomic_fetch_add(&sh->seen[m.writer][m.seq], 1);
	atomic_fetch_add(&sh->reads, 1);
}

static int ring_reader(int role, int rid, void *arg)
{
	struct ring_shared *sh = arg;
	int64_t last[R_IDS];
	struct smem_ring *r;
	unsigned char buf[R_NODE];
	int err = 0, i;

	(void)role;
	for (i = 0; i < R_IDS; i++)
		last[i] = -1;
	err = smem_ring_open(sh->name, NULL, &r);
	if (err) {
		fprintf(stderr, "crash: reader open: %s\n", smem_strerror(err));
		return 1;
	}
	smem_ring_set_spin(r, 2000);
	for (;;) {
		ssize_t n;

		if (rnd_below(3) == 0) {
			struct smem_ring_slot slot;

			err = smem_ring_reserve_read(r, &slot, 20);
			if (err == 0) {
				for (volatile unsigned spin = rnd_below(20000); spin > 0; spin--)
					;
				ring_account(sh, slot.data, slot.len, last);
				err = smem_ring_release(r, &slot);
			}
		} else {
			atomic_store(&sh->copying[rid], 1);
			n = smem_ring_read(r, buf, sizeof(buf), 20);
			err = n < 0 ? (int)n : 0;
			if (n >= 0)
				ring_account(sh, buf, (size_t)n, last);
			atomic_store(&sh->copying[rid], 0);
		}
		if (err == -ETIMEDOUT) {
			if (atomic_load(&sh->stop) == 2)
				break;		/* drained: nothing for 20 ms after the writers ended */
			continue;
		}
		if (err)
			break;
	}
	smem_ring_close(r);
	if (err != -ETIMEDOUT) {
		fprintf(stderr, "crash: reader: %s\n", smem_strerror(err));
		atomic_fetch_add(&sh->errors, 1);
		return 1;
	}
	return 0;
}

void trial_ring(void)
{
	struct ring_shared *sh = shared_alloc(sizeof(*sh));
	struct smem_ring_stats st;
	struct smem_ring *r;
	unsigned kills = 1 + rnd_below(3), k, w, next_id = 0, next_rid = 0, in_hands = 0;
	uint32_t nodes = 2 + rnd_below(7);
	unsigned long long missing = 0, reads;
	int err, i;

	snprintf(sh->name, sizeof(sh->name), "%sring", g_prefix);
	err = smem_ring_create(sh->name, nodes, R_NODE, NULL, &r);
	if (err) {
		fail("ring create: %s", smem_strerror(err));
		munmap(sh, sizeof(*sh));
		return;
	}
	for (w = 0; w < R_WRITERS; w++)
		spawn(ROLE_WRITER, (int)next_id++, ring_writer, sh);
	for (i = 0; i < R_READERS; i++)
		spawn(ROLE_READER, (int)next_rid++, ring_reader, sh);

	for (k = 0; k < kills && !g_fail[0]; k++) {
		int v;

		sleep_us(500 + rnd_below(15000));
		v = pick_victim(-1);
		if (v < 0)
			break;
		kill9(v, S_RING);
		/* A replacement keeps the traffic going (a new writer id: the old one's last
		 * message may or may not have been committed). */
		if (procs[v].role == ROLE_WRITER && next_id < R_IDS - 1)
			spawn(ROLE_WRITER, (int)next_id++, ring_writer, sh);
		else if (procs[v].role == ROLE_READER && next_rid < R_IDS)
			spawn(ROLE_READER, (int)next_rid++, ring_reader, sh);
	}
	sleep_us(2000 + rnd_below(10000));
	atomic_store(&sh->stop, 1);
	reap(ROLE_WRITER, now_ms() + g_timeout_s * 1000);
	atomic_store(&sh->stop, 2);
	reap(ROLE_READER, now_ms() + g_timeout_s * 1000);
	/*
	 * Nothing may be left once the readers drained it (a reader killed early is replaced,
	 * so there is always one). Then the ring must be whole again: a full lap of messages
	 * goes through it, which also makes us recover any node a killed reader still held
	 * (nobody may have come round to it yet).
	 */
	{
		struct ring_msg m, got;
		ssize_t n = smem_ring_read(r, &got, sizeof(got), 50);

		if (n != -ETIMEDOUT)
			fail("ring not drained: read gave %zd", n);
		for (k = 0; k < nodes && !g_fail[0]; k++) {
			msg_make(&m, R_IDS - 1, R_MAXSEQ - 1 - k);
			err = smem_ring_write(r, &m, m.len, 3000);
			if (err)
				fail("ring unusable after the crashes: write: %s", smem_strerror(err));
		}
		for (k = 0; k < nodes && !g_fail[0]; k++) {
			msg_make(&m, R_IDS - 1, R_MAXSEQ - 1 - k);
			n = smem_ring_read(r, &got, sizeof(got), 3000);
			if (n != (ssize_t)m.len || memcmp(&got, &m, m.len) != 0)
				fail("ring unusable after the crashes: read gave %zd", n);
		}
	}
	smem_ring_stats(r, &st);
	smem_ring_close(r);

	if (atomic_load(&sh->errors))
		fail("ring: %u participants failed", atomic_load(&sh->errors));
	if (atomic_load(&sh->corrupt))
		fail("ring: %u corrupted messages", atomic_load(&sh->corrupt));
	if (atomic_load(&sh->disorder))
		fail("ring: %u messages out of order", atomic_load(&sh->disorder));
	for (w = 0; w < R_IDS; w++) {
		uint32_t c = atomic_load(&sh->committed[w]), s;

		for (s = 0; s < R_MAXSEQ; s++) {
			uint8_t n = atomic_load(&sh->seen[w][s]);

			if (n > 1)
				fail("ring: writer %u message %u read %u times", w, s, n);
			if (s < c && n == 0)
				missing++;
			/* c itself may have been committed by a writer killed before it counted */
			if (s > c && n)
				fail("ring: writer %u message %u read but never written", w, s);
		}
	}
	/*
	 * A lost message is one a killed reader held: in a node it had claimed (the ring
	 * reclaimed and counted that node) or in its own buffer after a copying read.
	 */
	for (i = 0; i < nprocs; i++)
		if (procs[i].role == ROLE_READER && procs[i].killed &&
		    atomic_load(&sh->copying[procs[i].id]))
			in_hands++;
	if (missing > st.nodes_reclaimed + in_hands)
		fail("ring: %llu messages lost, only %llu reader nodes reclaimed and %u copies "
		     "in killed readers' hands", missing, (unsigned long long)st.nodes_reclaimed,
		     in_hands);
	reads = atomic_load(&sh->reads);
	g_stats.work[S_RING] += reads;
	g_stats.lost[S_RING] += missing;
	g_stats.recovered[S_RING] += st.drops_recovered + st.nodes_reclaimed;
	if (st.corruptions)
		fail("ring: %llu corruptions counted in an honest run",
		     (unsigned long long)st.corruptions);
	munmap(sh, sizeof(*sh));
}
