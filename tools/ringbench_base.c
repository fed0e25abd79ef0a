/* SPDX-License-Identifier: MIT */
/*
 * ringbench: the baselines, measured in the same run as smem (--compare).
 *
 *   naive      a spinning single-producer single-consumer byte ring in a memfd, of the same
 *              capacity as the smem ring (nodes x size): the fastest a user could hand-roll,
 *              with no crash safety, no multi-writer support and no sleeping.
 *   pipe       a pipe (pingpong: two), buffer nodes x size (capped at pipe-max-size).
 *   unix       a UNIX stream socketpair, send buffer nodes x size.
 *   seqpacket  a UNIX seqpacket socketpair: one message per send, like a ring node.
 *   eventfd    pingpong: a shared buffer and one eventfd per direction (read blocks).
 *   futex      pingpong: a shared buffer and a raw futex turn word, sleeping every time: the
 *              floor for a sleeping round trip between two processes.
 * All copy each message in full and sum every byte received, as smem's runs do. Counted
 * system calls are the read/write/send/recv/futex calls made here.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringbench.h"

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		rb_die("malloc", -ENOMEM);
	memset(p, 0x33, n);
	return p;
}

static size_t max_sz(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* ---- naive: a spinning SPSC byte ring in a memfd ------------------------------------------- */

struct naive {
	_Atomic uint64_t head;		/* consumer position */
	char pad0[56];
	_Atomic uint64_t tail;		/* producer position */
	char pad1[56];
	uint64_t cap;
	char pad2[56];
	unsigned char data[];
};

static struct naive *naive_new(size_t cap)
{
	size_t size = sizeof(struct naive) + cap;
	int fd = memfd_create("ringbench-naive", MFD_CLOEXEC);
	struct naive *q;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		rb_die("memfd", -errno);
	q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (q == MAP_FAILED)
		rb_die("mmap", -errno);
	close(fd);
	q->cap = cap;
	return q;
}

static void naive_free(struct naive *q)
{
	munmap(q, sizeof(struct naive) + q->cap);
}

/* Copy in @len bytes; false when asked to stop while waiting for room. */
static bool naive_put(struct naive *q, const unsigned char *src, size_t len, uint64_t *head_cache)
{
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed), off;

	while (tail + len - *head_cache > q->cap) {
		/* Acquire: pairs with the consumer's release of head (its copy-out is done). */
		*head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
		if (tail + len - *head_cache <= q->cap)
			break;
		if (rb_stopping())
			return false;
		rb_relax();
	}
	off = tail % q->cap;
	if (off + len <= q->cap) {
		memcpy(q->data + off, src, len);
	} else {
		memcpy(q->data + off, src, q->cap - off);
		memcpy(q->data, src + (q->cap - off), len - (q->cap - off));
	}
	/* Release: pairs with the consumer's acquire of tail (the bytes are in). */
	atomic_store_explicit(&q->tail, tail + len, memory_order_release);
	return true;
}

static bool naive_get(struct naive *q, unsigned char *dst, size_t len, uint64_t *tail_cache)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed), off;

	while (*tail_cache - head < len) {
		/* Acquire: pairs with the producer's release of tail. */
		*tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
		if (*tail_cache - head >= len)
			break;
		if (rb_stopping())
			return false;
		rb_relax();
	}
	off = head % q->cap;
	if (off + len <= q->cap) {
		memcpy(dst, q->data + off, len);
	} else {
		memcpy(dst, q->data + off, q->cap - off);
		memcpy(dst + (q->cap - off), q->data, len - (q->cap - off));
	}
	/* Release: pairs with the producer's acquire of head (we are done with the bytes). */
	atomic_store_explicit(&q->head, head + len, memory_order_release);
	return true;
}

static void naive_stream_worker(struct rb_worker *w)
{
	struct naive *q = w->tp;
	size_t size = w->c->size;
	unsigned char *buf = xmalloc(size + 8);
	uint64_t seq = 0, cache = 0, sum = 0, n = 0;

	rb_ready(w);
	if (w->role == 0) {
		do
			if (!w->c->no_work)
				rb_stamp(buf, size, seq++);
		while (naive_put(q, buf, size, &cache) && !rb_stopping());
	} else {
		while (naive_get(q, buf, size, &cache)) {
			if (!w->c->no_work)
				sum += rb_touch(buf, size);
			n++;
			rb_count(w);
			if (rb_stopping())
				break;
		}
	}
	rb_account(w, n, 0);
	atomic_fetch_add(&rb_ctl->sink, sum);
	free(buf);
}

int rb_naive_stream(const struct rb_cfg *c, struct rb_result *res)
{
	struct naive *q = naive_new(c->naive_cap ? c->naive_cap : (size_t)c->nodes * c->size);

	rb_run_roles(c, 2, naive_stream_worker, q, "spin", res, NULL);
	naive_free(q);
	return 0;
}

struct naive_pp {
	struct naive *out, *in;
	uint64_t out_cache, in_cache;
};

static bool naive_rt(struct rb_worker *w, void *buf)
{
	struct naive_pp *pp = w->tp;

	return naive_put(pp->out, buf, w->c->size, &pp->out_cache) &&
	       naive_get(pp->in, buf, w->c->reply, &pp->in_cache);
}

static void naive_pp_worker(struct rb_worker *w)
{
	struct naive **qs = w->tp;
	struct naive_pp pp = { qs[w->role], qs[1 - w->role], 0, 0 };
	struct rb_worker me = *w;
	unsigned char *buf = xmalloc(max_sz(w->c->size, w->c->reply) + 8);
	uint64_t sum = 0, seq = 0;

	me.tp = &pp;
	rb_ready(&me);
	if (w->role == 0) {
		rb_pinger(&me, naive_rt, buf);
	} else {
		while (naive_get(pp.in, buf, w->c->size, &pp.in_cache)) {
			sum += rb_touch(buf, w->c->size);
			rb_stamp(buf, w->c->reply, seq++);
			if (!naive_put(pp.out, buf, w->c->reply, &pp.out_cache))
				break;
		}
	}
	rb_account(&me, w->role == 0 ? atomic_load(&rb_ctl->count[w->index].n) : 0, 0);
	atomic_fetch_add(&rb_ctl->sink, sum);
	free(buf);
}

int rb_naive_pingpong(const struct rb_cfg *c, struct rb_result *res)
{
	/* [0]: pinger -> ponger, [1]: ponger -> pinger */
	struct naive *qs[2] = { naive_new((size_t)c->nodes * c->size),
				naive_new((size_t)c->nodes * max_sz(c->reply, 1)) };

	rb_run_roles(c, 2, naive_pp_worker, qs, "spin", res, NULL);
	naive_free(qs[0]);
	naive_free(qs[1]);
	return 0;
}

/* ---- pipe, unix, seqpacket: through the kernel ---------------------------------------------- */

enum fd_kind { FD_PIPE, FD_UNIX, FD_SEQPACKET };

/*
 * fd[0]: the writer's (pinger's) sending end, fd[1]: the reader's (ponger's) receiving end,
 * fd[2]: the ponger's sending end, fd[3]: the pinger's receiving end. A socketpair uses one
 * socket per side for both directions. The sender ends the run by shutting down (sockets) or
 * closing (pipes) its sending end, so that the receiver sees end-of-file: worker processes
 * close the inherited ends they do not use, the parent closes its copies once they run.
 */
struct fdt {
	enum fd_kind kind;
	int fd[4];
	_Atomic int closed[4];	/* threads: closed by a worker, the parent must not close it */
};

static const int owned[2][2][2] = {
	/* stream */   { { 0, 0 }, { 1, 1 } },
	/* pingpong */ { { 0, 3 }, { 1, 2 } },
};

static bool fd_owned(const struct fdt *t, bool pp, int role, int i)
{
	return t->fd[i] == t->fd[owned[pp][role][0]] || t->fd[i] == t->fd[owned[pp][role][1]];
}

static void fd_close_unused(struct rb_worker *w, struct fdt *t, bool pp)
{
	int i;

	if (w->c->threads)
		return;
	for (i = 0; i < 4; i++)
		if (t->fd[i] >= 0 && !fd_owned(t, pp, w->role, i))
			close(t->fd[i]);
}

static bool fd_send(const struct fdt *t, int fd, const unsigned char *p, size_t len,
		    uint64_t *calls)
{
	while (len) {
		ssize_t n = t->kind == FD_PIPE ? write(fd, p, len) : send(fd, p, len, 0);

		++*calls;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (t->kind == FD_SEQPACKET)
			return (size_t)n == len;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Receive exactly @len bytes (seqpacket: one message of exactly @len); false on EOF/error. */
static bool fd_recv(const struct fdt *t, int fd, unsigned char *p, size_t len, uint64_t *calls)
{
	if (t->kind == FD_SEQPACKET) {
		ssize_t n;

		do {
			n = recv(fd, p, len + 1, 0);
			++*calls;
		} while (n < 0 && errno == EINTR);
		return n == (ssize_t)len;
	}
	while (len) {
		ssize_t n = read(fd, p, len);

		++*calls;
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* End the sender's direction (fd[i]) so that the receiver's next read sees end-of-file. */
static void fd_finish(struct rb_worker *w, struct fdt *t, int i)
{
	if (t->kind != FD_PIPE) {
		shutdown(t->fd[i], SHUT_WR);
		return;
	}
	close(t->fd[i]);
	if (w->c->threads)	/* the one copy is gone: the parent must not close it again */
		atomic_store(&t->closed[i], 1);
}

/* Worker processes: close the ends they own (a pipe end already closed by fd_finish aside). */
static void fd_close_own(struct rb_worker *w, struct fdt *t, bool pp, int finished)
{
	int a = t->fd[owned[pp][w->role][0]], b = t->fd[owned[pp][w->role][1]];

	if (w->c->threads)
		return;
	if (t->kind == FD_PIPE && finished >= 0) {
		if (a == t->fd[finished])
			a = -1;
		if (b == t->fd[finished])
			b = -1;
	}
	if (a >= 0)
		close(a);
	if (b >= 0 && b != a)
		close(b);
}

static void fd_stream_worker(struct rb_worker *w)
{
	struct fdt *t = w->tp;
	size_t size = w->c->size;
	unsigned char *buf = xmalloc(size + 8);
	uint64_t seq = 0, calls = 0, sum = 0, n = 0;

	fd_close_unused(w, t, false);
	rb_ready(w);
	if (w->role == 0) {
		while (!rb_stopping()) {
			rb_stamp(buf, size, seq++);
			if (!fd_send(t, t->fd[0], buf, size, &calls)) {
				atomic_fetch_add(&rb_ctl->errors, 1);
				break;
			}
		}
		rb_account(w, 0, calls);
		fd_finish(w, t, 0);
	} else {
		while (fd_recv(t, t->fd[1], buf, size, &calls)) {
			sum += rb_touch(buf, size);
			n++;
			rb_count(w);
		}
		/* the reader drains until the writer's EOF: that is after stop */
		rb_account(w, n, calls);
	}
	fd_close_own(w, t, false, w->role == 0 ? 0 : -1);
	atomic_fetch_add(&rb_ctl->sink, sum);
	free(buf);
}

/* The parent's copies: after stop (worker processes have theirs), or after the threads. */
static void fd_close_all(struct fdt *t)
{
	int i, j;

	for (i = 0; i < 4; i++) {
		bool dup = false;

		for (j = 0; j < i; j++)
			dup |= t->fd[j] == t->fd[i];
		if (t->fd[i] >= 0 && !dup && !atomic_load(&t->closed[i]))
			close(t->fd[i]);
	}
}

static void fd_parent_close(struct rb_worker *ws, int n)
{
	(void)n;
	fd_close_all(ws[0].tp);
}

static int fd_setup(const struct rb_cfg *c, struct fdt *t, enum fd_kind kind, bool pp,
		    struct rb_result *res)
{
	int a[2], b[2], sz = (int)((size_t)c->nodes * max_sz(c->size, 1));
	int i;

	memset(t, 0, sizeof(*t));
	t->kind = kind;
	if (kind == FD_PIPE) {
		if (pipe2(a, O_CLOEXEC) < 0 || (pp && pipe2(b, O_CLOEXEC) < 0))
			rb_die("pipe", -errno);
		t->fd[0] = a[1];
		t->fd[1] = a[0];
		t->fd[2] = pp ? b[1] : -1;
		t->fd[3] = pp ? b[0] : -1;
		for (i = 0; i < 4; i += 2)	/* best effort: capped at pipe-max-size */
			if (t->fd[i] >= 0 && fcntl(t->fd[i], F_SETPIPE_SZ, sz) < 0)
				fcntl(t->fd[i], F_SETPIPE_SZ, 1 << 20);
		return 0;
	}
	if (socketpair(AF_UNIX, (kind == FD_UNIX ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0,
		       a) < 0)
		rb_die("socketpair", -errno);
	for (i = 0; i < 2; i++) {
		/* root may exceed wmem_max/rmem_max (a seqpacket message must fit the buffer) */
		if (setsockopt(a[i], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)))
			setsockopt(a[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		if (setsockopt(a[i], SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)))
			setsockopt(a[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	t->fd[0] = t->fd[3] = a[0];
	t->fd[1] = t->fd[2] = a[1];
	if (!pp)
		t->fd[2] = t->fd[3] = -1;
	if (kind == FD_SEQPACKET) {
		int snd = 0;
		socklen_t l = sizeof(snd);

		getsockopt(a[0], SOL_SOCKET, SO_SNDBUF, &snd, &l);
		if ((size_t)snd < c->size + 64) {
			res->skip = "message larger than the socket buffer allows (not root?)";
			close(a[0]);
			close(a[1]);
			return -1;
		}
	}
	return 0;
}

struct fd_pp {
	struct fdt *t;
	int out, in;
	uint64_t calls;
};

static bool fd_rt(struct rb_worker *w, void *buf)
{
	struct fd_pp *pp = w->tp;

	return fd_send(pp->t, pp->out, buf, w->c->size, &pp->calls) &&
	       fd_recv(pp->t, pp->in, buf, w->c->reply, &pp->calls);
}

static void fd_pp_worker(struct rb_worker *w)
{
	struct fdt *t = w->tp;
	struct fd_pp pp = { t, t->fd[w->role == 0 ? 0 : 2], t->fd[w->role == 0 ? 3 : 1], 0 };
	struct rb_worker me = *w;
	unsigned char *buf = xmalloc(max_sz(w->c->size, w->c->reply) + 8);
	uint64_t sum = 0, seq = 0;

	fd_close_unused(w, t, true);
	me.tp = &pp;
	rb_ready(&me);
	if (w->role == 0) {
		rb_pinger(&me, fd_rt, buf);
		rb_account(&me, atomic_load(&rb_ctl->count[w->index].n), pp.calls);
		fd_finish(w, t, 0);
	} else {
		while (fd_recv(t, pp.in, buf, w->c->size, &pp.calls)) {
			sum += rb_touch(buf, w->c->size);
			rb_stamp(buf, w->c->reply, seq++);
			if (!fd_send(t, pp.out, buf, w->c->reply, &pp.calls))
				break;
		}
		rb_account(&me, 0, pp.calls);
	}
	fd_close_own(w, t, true, w->role == 0 ? 0 : -1);
	atomic_fetch_add(&rb_ctl->sink, sum);
	free(buf);
}

static int fd_run(const struct rb_cfg *c, struct rb_result *res, enum fd_kind kind, bool pp)
{
	struct fdt *t = rb_shared_map(sizeof(*t));

	if (fd_setup(c, t, kind, pp, res) == 0) {
		rb_run_roles(c, 2, pp ? fd_pp_worker : fd_stream_worker, t, "block", res,
			     c->threads ? NULL : fd_parent_close);
		if (c->threads)
			fd_close_all(t);
	}
	munmap(t, sizeof(*t));
	return 0;
}

int rb_pipe_stream(const struct rb_cfg *c, struct rb_result *res)
{
	return fd_run(c, res, FD_PIPE, false);
}

int rb_unix_stream(const struct rb_cfg *c, struct rb_result *res)
{
	return fd_run(c, res, FD_UNIX, false);
}

int rb_seqpacket_stream(const struct rb_cfg *c, struct rb_result *res)
{
	return fd_run(c, res, FD_SEQPACKET, false);
}

int rb_pipe_pingpong(const struct rb_cfg *c, struct rb_result *res)
{
	return fd_run(c, res, FD_PIPE, true);
}

int rb_unix_pingpong(const struct rb_cfg *c, struct rb_result *res)
{
	return fd_run(c, res, FD_UNIX, true);
}

int rb_seqpacket_pingpong(const struct rb_cfg *c, struct rb_result *res)
{
	return fd_run(c, res, FD_SEQPACKET, true);
}

/* ---- eventfd and futex: a shared buffer and a sleeping hand-over ------------------------- */

struct shared_pp {
	_Atomic uint32_t turn;		/* futex: 0 pinger's turn, 1 ponger's, 2 stop */
	char pad[60];
	int efd[2];			/* eventfd: [0] to the ponger, [1] to the pinger */
	_Atomic uint32_t done;
	uint64_t pinger_calls;		/* written by the pinger only */
	unsigned char buf[];
};

static bool futex_rt(struct rb_worker *w, void *buf)
{
	struct shared_pp *s = w->tp;
	uint64_t *calls = &s->pinger_calls;

	memcpy(s->buf, buf, w->c->size);
	/* Release: pairs with the ponger's acquire of turn (the request is in the buffer). */
	atomic_store_explicit(&s->turn, 1, memory_order_release);
	rb_futex(&s->turn, FUTEX_WAKE, 1);
	++*calls;
	/* Acquire: pairs with the ponger's release of turn 0 (the reply is in the buffer). */
	while (atomic_load_explicit(&s->turn, memory_order_acquire) == 1) {
		rb_futex(&s->turn, FUTEX_WAIT, 1);
		++*calls;
	}
	memcpy(buf, s->buf, w->c->reply);
	return true;
}

static void futex_pp_worker(struct rb_worker *w)
{
	struct shared_pp *s = w->tp;
	size_t cap = max_sz(w->c->size, w->c->reply);
	unsigned char *buf = xmalloc(cap + 8);
	uint64_t calls = 0, sum = 0, seq = 0;
	uint32_t t;

	rb_ready(w);
	if (w->role == 0) {
		s->pinger_calls = 0;
		rb_pinger(w, futex_rt, buf);
		calls = s->pinger_calls;
		rb_account(w, atomic_load(&rb_ctl->count[w->index].n), calls);
		atomic_store(&s->turn, 2);
		rb_futex(&s->turn, FUTEX_WAKE, 1);
	} else {
		for (;;) {
			/* Acquire: pairs with the pinger's release of turn 1. */
			while ((t = atomic_load_explicit(&s->turn, memory_order_acquire)) == 0) {
				rb_futex(&s->turn, FUTEX_WAIT, 0);
				calls++;
			}
			if (t == 2)
				break;
			memcpy(buf, s->buf, w->c->size);
			sum += rb_touch(buf, w->c->size);
			rb_stamp(buf, w->c->reply, seq++);
			memcpy(s->buf, buf, w->c->reply);
			/* Release: pairs with the pinger's acquire (the reply is written). */
			atomic_store_explicit(&s->turn, 0, memory_order_release);
			rb_futex(&s->turn, FUTEX_WAKE, 1);
			calls++;
		}
		rb_account(w, 0, calls);
	}
	atomic_fetch_add(&rb_ctl->sink, sum);
	free(buf);
}

int rb_futex_pingpong(const struct rb_cfg *c, struct rb_result *res)
{
	size_t len = sizeof(struct shared_pp) + max_sz(c->size, c->reply);
	struct shared_pp *s = rb_shared_map(len);

	rb_run_roles(c, 2, futex_pp_worker, s, "block", res, NULL);
	munmap(s, len);
	return 0;
}

static bool efd_rt(struct rb_worker *w, void *buf)
{
	struct shared_pp *s = w->tp;
	uint64_t *calls = &s->pinger_calls, one = 1, v;

	memcpy(s->buf, buf, w->c->size);
	/* The eventfd write and read order the buffer accesses (the kernel's lock). */
	if (write(s->efd[0], &one, 8) != 8)
		return false;
	++*calls;
	if (read(s->efd[1], &v, 8) != 8)
		return false;
	++*calls;
	memcpy(buf, s->buf, w->c->reply);
	return true;
}

static void efd_pp_worker(struct rb_worker *w)
{
	struct shared_pp *s = w->tp;
	unsigned char *buf = xmalloc(max_sz(w->c->size, w->c->reply) + 8);
	uint64_t calls = 0, sum = 0, seq = 0, one = 1, v;

	rb_ready(w);
	if (w->role == 0) {
		s->pinger_calls = 0;
		rb_pinger(w, efd_rt, buf);
		calls = s->pinger_calls;
		rb_account(w, atomic_load(&rb_ctl->count[w->index].n), calls);
		atomic_store(&s->done, 1);
		if (write(s->efd[0], &one, 8) != 8)
			atomic_fetch_add(&rb_ctl->errors, 1);
	} else {
		for (;;) {
			if (read(s->efd[0], &v, 8) != 8)
				break;
			calls++;
			if (atomic_load(&s->done))
				break;
			memcpy(buf, s->buf, w->c->size);
			sum += rb_touch(buf, w->c->size);
			rb_stamp(buf, w->c->reply, seq++);
			memcpy(s->buf, buf, w->c->reply);
			if (write(s->efd[1], &one, 8) != 8)
				break;
			calls++;
		}
		rb_account(w, 0, calls);
	}
	atomic_fetch_add(&rb_ctl->sink, sum);
	free(buf);
}

int rb_eventfd_pingpong(const struct rb_cfg *c, struct rb_result *res)
{
	size_t len = sizeof(struct shared_pp) + max_sz(c->size, c->reply);
	struct shared_pp *s = rb_shared_map(len);

	s->efd[0] = eventfd(0, EFD_CLOEXEC);
	s->efd[1] = eventfd(0, EFD_CLOEXEC);
	if (s->efd[0] < 0 || s->efd[1] < 0)
		rb_die("eventfd", -errno);
	rb_run_roles(c, 2, efd_pp_worker, s, "block", res, NULL);
	close(s->efd[0]);
	close(s->efd[1]);
	munmap(s, len);
	return 0;
}
