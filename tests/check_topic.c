/* SPDX-License-Identifier: MIT */
/*
 * smem_topic: ordering, fan-out to every subscriber, history for late joiners, both
 * slow-subscriber policies with exact loss counts, kernel-enforced read-only samples,
 * shutdown and hostile control memory. Crash matrices are in check_topic_stress.c.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "topic_int.h"
#include "util/ringutil.h"
#include "util/testutil.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static struct smem_topic_pub *new_topic(char *name, size_t len, uint64_t size, uint32_t depth,
					uint32_t history, uint32_t policy, uint32_t flags)
{
	struct smem_topic_config cfg = {
		.sample_size = size, .depth = depth, .history = history, .policy = policy,
		.flags = flags, .max_subscribers = 4, .views = 2,
	};
	struct smem_topic_pub *p = NULL;

	t_name(name, len, "topic");
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), 0);
	return p;
}

static struct smem_topic_sub *sub(const char *name, uint32_t history)
{
	struct smem_topic_sub *s = NULL;

	ck_assert_int_eq(smem_topic_subscribe(name, history, NULL, &s), 0);
	return s;
}

/* Publish one sample whose bytes all say @v (a 64-bit counter at the start). */
static void pub_value(struct smem_topic_pub *p, uint64_t v, size_t len)
{
	struct smem_topic_sample s;

	ck_assert_int_eq(smem_topic_loan(p, &s, 1000), 0);
	ck_assert_uint_ge(s.cap, len);
	memset(s.data, (int)(v & 0xff), len);
	if (len >= 8)
		memcpy(s.data, &v, 8);
	ck_assert_int_eq(smem_topic_publish(p, &s, len, 1000), 0);
}

/* Receive one sample and return its counter, checking length and fill. */
static uint64_t recv_value(struct smem_topic_sub *s, size_t len)
{
	struct smem_topic_sample v;
	uint64_t got;
	size_t i;

	ck_assert_int_eq(smem_topic_receive(s, &v, 1000), 0);
	ck_assert_uint_eq(v.len, len);
	memcpy(&got, v.view, 8);
	for (i = 8; i < len; i++)
		ck_assert_uint_eq(((const unsigned char *)v.view)[i], got & 0xff);
	ck_assert_uint_eq(v.seq, got);
	ck_assert_int_eq(smem_topic_release(s, &v), 0);
	return got;
}

static struct smem_topic_sub_stats stats(struct smem_topic_sub *s)
{
	struct smem_topic_sub_stats st;

	ck_assert_int_eq(smem_topic_sub_stats(s, &st), 0);
	return st;
}

/* ---- construction ------------------------------------------------------------------------ */

START_TEST(topic_create_rejects_bad_config)
{
	struct smem_topic_config cfg = { .sample_size = 64, .depth = 4 };
	struct smem_topic_pub *p = (struct smem_topic_pub *)0x1;
	struct smem_topic_sub *s = (struct smem_topic_sub *)0x1;
	struct smem_opts ro = { .flags = SMEM_RDONLY };
	char longname[SMEM_NAME_MAX];
	T_NAME(name, "topic");

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';	/* fits a name, not name + ".samples" */
	ck_assert_int_eq(smem_topic_create(longname, &cfg, NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_topic_create(name, NULL, NULL, &p), -EINVAL);
	ck_assert_int_eq(smem_topic_create(name, &cfg, &ro, &p), -EINVAL);
	cfg.depth = 1;
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), -EINVAL);
	cfg.depth = 4;
	cfg.history = 4;
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), -EINVAL);
	cfg.history = 0;
	cfg.sample_size = 0;
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), -EINVAL);
	cfg.sample_size = 64;
	cfg.views = SMEM_TOPIC_MAX_VIEWS + 1;
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), -EINVAL);
	cfg.views = 0;
	cfg.policy = 7;
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), -EINVAL);
	cfg.policy = 0;
	cfg.reserved[0] = 1;
	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), -EINVAL);
	ck_assert_ptr_eq(p, (struct smem_topic_pub *)0x1);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), -ENOENT);
	ck_assert_ptr_eq(s, (struct smem_topic_sub *)0x1);
}
END_TEST

START_TEST(topic_open_of_a_ring_is_emediumtype_and_of_a_sealed_topic_as_publisher_eacces)
{
	struct smem_topic_pub *p, *q = NULL;
	struct smem_topic_sub *s = NULL;
	struct smem_ring *r;
	char name[128];
	T_NAME(rname, "ring");

	ck_assert_int_eq(smem_ring_create(rname, 4, 8, NULL, &r), 0);
	ck_assert_int_eq(smem_topic_subscribe(rname, 0, NULL, &s), -EMEDIUMTYPE);
	smem_ring_close(r);
	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_BLOCK, 0);
	ck_assert_int_eq(smem_topic_open_publisher(name, NULL, &q), -EACCES);
	ck_assert_ptr_null(q);
	smem_topic_pub_close(p);
	smem_topic_pub_close(NULL);
	smem_topic_sub_close(NULL);
}
END_TEST

/* ---- delivery ------------------------------------------------------------------------------ */

START_TEST(topic_two_subscribers_each_see_every_sample_in_order)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *a, *b;
	char name[128];
	uint64_t i;

	p = new_topic(name, sizeof(name), 200, 8, 0, SMEM_TOPIC_BLOCK, 0);
	a = sub(name, 0);
	b = sub(name, 0);
	for (i = 0; i < 100; i++) {
		pub_value(p, i, 8 + i % 150);
		if (i % 3 == 2) {	/* a keeps up in bursts, b lags more */
			ck_assert_uint_eq(recv_value(a, 8 + (i - 2) % 150), i - 2);
			ck_assert_uint_eq(recv_value(a, 8 + (i - 1) % 150), i - 1);
			ck_assert_uint_eq(recv_value(a, 8 + i % 150), i);
		}
		if (i % 6 == 5)
			for (uint64_t j = i - 5; j <= i; j++)
				ck_assert_uint_eq(recv_value(b, 8 + j % 150), j);
	}
	ck_assert_uint_eq(recv_value(a, 8 + 99 % 150), 99);
	for (i = 96; i < 100; i++)
		ck_assert_uint_eq(recv_value(b, 8 + i % 150), i);
	ck_assert_uint_eq(stats(a).received, 100);
	ck_assert_uint_eq(stats(b).lost, 0);
	ck_assert_uint_eq(stats(b).lag, 0);
	smem_topic_sub_close(a);
	smem_topic_sub_close(b);
	smem_topic_pub_close(p);
}
END_TEST

struct fan {
	const char *name;
	uint64_t n;
};

static int fan_child(void *arg)
{
	struct fan *f = arg;
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	uint64_t i, got;

	if (smem_topic_subscribe(f->name, 0, NULL, &s))
		return 10;
	if (write(STDOUT_FILENO, "", 0) < 0)	/* keeps stdout untouched; joined */
		return 11;
	for (i = 0; i < f->n; i++) {
		if (smem_topic_receive(s, &v, 5000))
			return 12;
		memcpy(&got, v.view, 8);
		if (got != i || v.seq != i || v.len != 4096)
			return 13;
		if (((const unsigned char *)v.view)[4095] != (i & 0xff))
			return 14;
		smem_topic_release(s, &v);
	}
	smem_topic_sub_close(s);
	return 0;
}

START_TEST(topic_subscriber_processes_see_every_sample_under_backpressure)
{
	struct smem_topic_pub *p;
	struct smem_topic_sample s;
	struct fan f;
	pid_t kids[3];
	char name[128];
	uint64_t i;
	int k;

	p = new_topic(name, sizeof(name), 4096, 8, 0, SMEM_TOPIC_BLOCK, 0);
	f.name = name;
	f.n = 3000;
	for (k = 0; k < 3; k++)
		kids[k] = t_fork(fan_child, &f);
	/* Wait until all three joined, so that none misses the first sample. */
	for (k = 0; k < 500; k++) {
		uint32_t j, n = 0;

		for (j = 0; j < p->t.g.max_subs; j++)
			n += atomic_load(&p->t.slot[j].owner) != 0;
		if (n == 3)
			break;
		usleep(2000);
	}
	for (i = 0; i < f.n; i++) {
		ck_assert_int_eq(smem_topic_loan(p, &s, 5000), 0);
		memcpy(s.data, &i, 8);
		memset((char *)s.data + 8, (int)(i & 0xff), 4088);
		ck_assert_int_eq(smem_topic_publish(p, &s, 4096, 5000), 0);
	}
	for (k = 0; k < 3; k++)
		ck_assert_int_eq(t_wait(kids[k]), 0);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_late_joiner_gets_the_history_it_asks_for)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *h3, *h0, *big;
	char name[128];
	uint64_t i;

	p = new_topic(name, sizeof(name), 64, 8, 5, SMEM_TOPIC_OVERWRITE, 0);
	for (i = 0; i < 10; i++)
		pub_value(p, i, 16);
	h3 = sub(name, 3);
	h0 = sub(name, 0);
	big = sub(name, 100);	/* capped by the topic's history: 5 */
	for (i = 7; i < 10; i++)
		ck_assert_uint_eq(recv_value(h3, 16), i);
	for (i = 5; i < 10; i++)
		ck_assert_uint_eq(recv_value(big, 16), i);
	pub_value(p, 10, 16);
	ck_assert_uint_eq(recv_value(h0, 16), 10);
	ck_assert_uint_eq(recv_value(h3, 16), 10);
	ck_assert_uint_eq(stats(h3).lost, 0);
	ck_assert_uint_eq(stats(big).lag, 1);
	smem_topic_sub_close(h3);
	smem_topic_sub_close(h0);
	smem_topic_sub_close(big);
	smem_topic_pub_close(p);
}
END_TEST

/* ---- slow subscribers ----------------------------------------------------------------------- */

START_TEST(topic_overwrite_counts_each_subscribers_losses_exactly)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *slow, *fast;
	char name[128];
	uint64_t i;

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_OVERWRITE, 0);
	slow = sub(name, 0);
	fast = sub(name, 0);
	for (i = 0; i < 10; i++) {
		pub_value(p, i, 32);
		ck_assert_uint_eq(recv_value(fast, 32), i);
	}
	/* 10 published, depth 4: the slow one gets 6..9 and lost exactly 0..5. */
	for (i = 6; i < 10; i++)
		ck_assert_uint_eq(recv_value(slow, 32), i);
	ck_assert_uint_eq(stats(slow).lost, 6);
	ck_assert_uint_eq(stats(slow).received, 4);
	ck_assert_uint_eq(stats(fast).lost, 0);
	ck_assert_uint_eq(stats(fast).received, 10);
	/* Once more: 23 more, slow reads none; then it gets the last 4 and lost 19 more. */
	for (i = 10; i < 33; i++)
		pub_value(p, i, 32);
	ck_assert_uint_eq(stats(slow).lag, 23);
	for (i = 29; i < 33; i++)
		ck_assert_uint_eq(recv_value(slow, 32), i);
	ck_assert_uint_eq(stats(slow).lost, 25);
	ck_assert_uint_eq(stats(slow).received + stats(slow).lost, 33);
	smem_topic_sub_close(slow);
	smem_topic_sub_close(fast);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_a_held_view_survives_the_publisher_lapping_it)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	char name[128];
	uint64_t i, got;

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_OVERWRITE, 0);
	s = sub(name, 0);
	pub_value(p, 0, 64);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), 0);
	/* Many laps: the pool never hands out the buffer under our view. */
	for (i = 1; i < 200; i++)
		pub_value(p, i, 64);
	memcpy(&got, v.view, 8);
	ck_assert_uint_eq(got, 0);
	ck_assert_uint_eq(((const unsigned char *)v.view)[63], 0);
	ck_assert_int_eq(smem_topic_release(s, &v), 0);
	ck_assert_int_eq(smem_topic_release(s, &v), -EINVAL);
	ck_assert_uint_eq(recv_value(s, 64), 196);
	ck_assert_uint_eq(stats(s).lost, 195);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_views_are_limited_per_subscriber)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct smem_topic_sample v[3];
	char name[128];

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_OVERWRITE, 0);
	s = sub(name, 0);
	pub_value(p, 0, 8);
	pub_value(p, 1, 8);
	pub_value(p, 2, 8);
	ck_assert_int_eq(smem_topic_receive(s, &v[0], 0), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v[1], 0), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v[2], 0), -ENOBUFS);	/* views = 2 */
	ck_assert_uint_eq(v[0].seq, 0);
	ck_assert_uint_eq(v[1].seq, 1);
	ck_assert_int_eq(smem_topic_release(s, &v[0]), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v[2], 0), 0);
	ck_assert_uint_eq(v[2].seq, 2);
	ck_assert_int_eq(smem_topic_release(s, &v[1]), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v[0], 0), -ETIMEDOUT);
	smem_topic_sub_close(s);	/* releases what it holds */
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_block_policy_holds_the_publisher_until_the_slowest_reads)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *slow, *fast;
	struct smem_topic_sample s;
	char name[128];
	long long t0;
	uint64_t i;

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_BLOCK, 0);
	slow = sub(name, 0);
	fast = sub(name, 0);
	for (i = 0; i < 4; i++) {
		pub_value(p, i, 8);
		ck_assert_uint_eq(recv_value(fast, 8), i);
	}
	/* Four unread by slow: no room for a fifth. */
	ck_assert_int_eq(smem_topic_loan(p, &s, 0), -ETIMEDOUT);
	t0 = t_now_ms();
	ck_assert_int_eq(smem_topic_loan(p, &s, 60), -ETIMEDOUT);
	ck_assert_int_ge(t_now_ms() - t0, 50);
	ck_assert_uint_eq(recv_value(slow, 8), 0);
	pub_value(p, 4, 8);
	ck_assert_int_eq(smem_topic_loan(p, &s, 0), -ETIMEDOUT);
	for (i = 1; i < 5; i++)
		ck_assert_uint_eq(recv_value(slow, 8), i);
	ck_assert_uint_eq(recv_value(fast, 8), 4);
	ck_assert_uint_eq(stats(slow).lost, 0);
	/* A loan and a discard give the buffer back. */
	ck_assert_int_eq(smem_topic_loan(p, &s, 0), 0);
	ck_assert_int_eq(smem_topic_discard(p, &s), 0);
	ck_assert_int_eq(smem_topic_discard(p, &s), -EINVAL);
	smem_topic_sub_close(slow);
	/* Only fast is left, and it is up to date. */
	for (i = 5; i < 9; i++)
		pub_value(p, i, 8);
	smem_topic_sub_close(fast);
	smem_topic_pub_close(p);
}
END_TEST

static int block_reader(void *arg)
{
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	uint64_t i;

	if (smem_topic_subscribe(arg, 0, NULL, &s))
		return 10;
	usleep(100 * 1000);	/* the publisher fills the topic and blocks */
	for (i = 0; i < 50; i++) {
		if (smem_topic_receive(s, &v, 5000) || v.seq != i)
			return 11;
		smem_topic_release(s, &v);
	}
	smem_topic_sub_close(s);
	return 0;
}

START_TEST(topic_blocked_publisher_wakes_when_a_subscriber_process_reads)
{
	struct smem_topic_pub *p;
	char name[128];
	pid_t kid;
	uint64_t i;
	int k;

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_BLOCK, 0);
	kid = t_fork(block_reader, name);
	for (k = 0; k < 500 && atomic_load(&p->t.slot[0].owner) == 0; k++)
		usleep(2000);
	for (i = 0; i < 50; i++)
		pub_value(p, i, 8);
	ck_assert_int_eq(t_wait(kid), 0);
	smem_topic_pub_close(p);
}
END_TEST

/* ---- shutdown -------------------------------------------------------------------------------- */

static int shutdown_reader(void *arg)
{
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	int r;

	if (smem_topic_subscribe(arg, 0, NULL, &s))
		return 10;
	r = smem_topic_receive(s, &v, 10000);
	smem_topic_sub_close(s);
	return r == -ESHUTDOWN ? 0 : 11;
}

START_TEST(topic_creator_close_wakes_subscribers_with_eshutdown_after_what_is_left)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	char name[128];
	pid_t kid;
	int k;

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_BLOCK, 0);
	s = sub(name, 0);
	kid = t_fork(shutdown_reader, name);
	for (k = 0; k < 500 && atomic_load(&p->t.slot[1].owner) == 0; k++)
		usleep(2000);
	usleep(20000);	/* the child sleeps in receive */
	pub_value(p, 0, 8);
	smem_topic_pub_close(p);
	ck_assert_int_eq(t_wait(kid), 11);	/* it got sample 0, not a shutdown */
	ck_assert_uint_eq(recv_value(s, 8), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v, 1000), -ESHUTDOWN);
	smem_topic_sub_close(s);
}
END_TEST

START_TEST(topic_blocked_receive_sees_shutdown)
{
	struct smem_topic_pub *p;
	char name[128];
	long long t0;
	pid_t kid;
	int k;

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_BLOCK, 0);
	kid = t_fork(shutdown_reader, name);
	for (k = 0; k < 500 && atomic_load(&p->t.slot[0].owner) == 0; k++)
		usleep(2000);
	usleep(20000);
	t0 = t_now_ms();
	smem_topic_pub_close(p);
	ck_assert_int_eq(t_wait(kid), 0);
	ck_assert_int_lt(t_now_ms() - t0, 2000);
}
END_TEST

/* ---- read-only samples, enforced by the kernel ---------------------------------------------- */

static int write_view(void *arg)
{
	struct smem_topic_sub *s;
	struct smem_topic_sample v;

	/*
	 * The kernel's default action, not a sanitizer's SIGSEGV handler (which would exit 1):
	 * set through the system call itself, which the sanitizers' interceptors do not see.
	 */
	struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = { 0 };

	if (smem_topic_subscribe(arg, 1, NULL, &s) || smem_topic_receive(s, &v, 1000))
		return 10;
	if (syscall(SYS_rt_sigaction, SIGSEGV, &dfl, NULL, sizeof(dfl.mask)))
		return 11;
	((volatile char *)v.view)[0] = 'X';	/* must fault */
	return 0;
}

START_TEST(topic_write_through_a_view_faults)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	char name[128];
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);

	p = new_topic(name, sizeof(name), 64, 4, 1, SMEM_TOPIC_BLOCK, 0);
	pub_value(p, 0, 8);
	ck_assert_int_eq(t_wait(t_fork(write_view, name)), 128 + SIGSEGV);
	s = sub(name, 1);
	/* And here, without a signal: the kernel refuses to write into the view (EFAULT). */
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), 0);
	ck_assert_int_eq(read(zero, (void *)v.view, 1), -1);
	ck_assert_int_eq(errno, EFAULT);
	close(zero);
	ck_assert_int_eq(smem_topic_release(s, &v), 0);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), -ETIMEDOUT);
	smem_topic_sub_close(s);
	s = sub(name, 1);
	ck_assert_uint_eq(recv_value(s, 8), 0);	/* unchanged */
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_sealed_pool_refuses_writable_mappings_even_reopened)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	char name[128], path[64];
	void *m;
	int fd;

	p = new_topic(name, sizeof(name), 4096, 4, 0, SMEM_TOPIC_BLOCK, 0);
	s = sub(name, 0);
	ck_assert_int_ne(fcntl(s->t.samples->fd, F_GET_SEALS) & F_SEAL_FUTURE_WRITE, 0);
	/* Same uid as the creator: the reopen itself works, writing through it does not. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->t.samples->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_eq(m, MAP_FAILED);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(pwrite(fd, "X", 1, 4096), -1);
	ck_assert_int_eq(errno, EPERM);
	/* Nor can the read-only mapping be made writable. */
	ck_assert_int_ne(mprotect((void *)s->t.base, 4096, PROT_READ | PROT_WRITE), 0);
	close(fd);
	pub_value(p, 0, 8);	/* the creator's own mapping still writes */
	ck_assert_uint_eq(recv_value(s, 8), 0);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

/* As uid nobody, reopen an inherited read-only descriptor for writing through /proc. */
static int reopen_as_nobody(void *arg)
{
	int fd = *(int *)arg, rfd;
	char path[64];

	if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		return 10;
	/* Stay dumpable so that /proc/self/fd is ours: the inode's mode is what is tested. */
	prctl(PR_SET_DUMPABLE, 1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		return 11;	/* the proc link itself must be usable */
	close(rfd);
	rfd = open(path, O_RDWR | O_CLOEXEC);
	if (rfd >= 0)
		return 12;
	return errno == EACCES ? 0 : 13;
}

START_TEST(topic_multi_publisher_pool_cannot_be_reopened_for_writing_by_another_uid)
{
	struct smem_topic_config cfg = { .sample_size = 64, .depth = 4,
					 .flags = SMEM_TOPIC_MULTI_PUBLISHER };
	struct smem_opts o = { .mode = 0644 };
	struct smem_topic_pub *p, *q;
	struct smem_topic_sub *s;
	char name[128];
	int fd;

	if (geteuid() != 0) {
		fprintf(stderr, "topic: uid test skipped: not root\n");
		return;
	}
	/* Readable by all (0644): the read-only reopen works, the writable one must not. */
	t_name(name, sizeof(name), "topic");
	ck_assert_int_eq(smem_topic_create(name, &cfg, &o, &p), 0);
	ck_assert_int_eq(smem_topic_open_publisher(name, NULL, &q), 0);
	s = sub(name, 0);
	ck_assert_int_eq(fcntl(s->t.samples->fd, F_GET_SEALS) & F_SEAL_FUTURE_WRITE, 0);
	fd = s->t.samples->fd;
	ck_assert_int_eq(t_wait(t_fork(reopen_as_nobody, &fd)), 0);
	pub_value(q, 0, 8);	/* the second publisher writes */
	ck_assert_uint_eq(recv_value(s, 8), 0);
	smem_topic_sub_close(s);
	smem_topic_pub_close(q);
	smem_topic_pub_close(p);
}
END_TEST

/* ---- hostile control memory ----------------------------------------------------------------- */

START_TEST(topic_hostile_entries_lengths_and_tail_give_eproto)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s;
	struct smem_topic_sample v;
	char name[128];

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_OVERWRITE, 0);
	s = sub(name, 0);
	pub_value(p, 0, 8);
	atomic_store(&p->t.entry[0], 0xffffffffu);	/* a buffer index out of the pool */
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), -EPROTO);
	pub_value(p, 1, 8);
	atomic_store(&p->t.buf[atomic_load(&p->t.entry[1])].len, 1ull << 50);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), -EPROTO);
	pub_value(p, 2, 8);
	ck_assert_uint_eq(recv_value(s, 8), 2);	/* flows again */
	atomic_store(&p->t.shm->tail, 1);	/* backwards */
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), -EPROTO);
	/* A waiting receive's spin does not read tail; its armed look before sleeping does. */
	ck_assert_int_eq(smem_topic_receive(s, &v, 1000), -EPROTO);
	atomic_store(&p->t.shm->tail, 1ull << 63);
	ck_assert_int_eq(smem_topic_receive(s, &v, 0), -EPROTO);
	ck_assert_int_eq(smem_topic_loan(p, &v, 0), -EPROTO);
	ck_assert_uint_ge(atomic_load(&p->t.shm->corruptions), 4);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_hostile_geometry_refuses_to_open)
{
	struct smem_topic_pub *p;
	struct smem_topic_sub *s = NULL;
	char name[128];
	uint32_t depth, pool;
	uint64_t stride;

	p = new_topic(name, sizeof(name), 64, 4, 0, SMEM_TOPIC_BLOCK, 0);
	depth = p->t.shm->depth;
	p->t.shm->depth = 1u << 30;
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), -EPROTO);
	p->t.shm->depth = depth + 1;	/* valid alone, disagrees with the size */
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), -EPROTO);
	p->t.shm->depth = depth;
	pool = p->t.shm->pool;
	p->t.shm->pool = pool + 1;
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), -EPROTO);
	p->t.shm->pool = pool;
	stride = p->t.shm->stride;
	p->t.shm->stride = 1ull << 40;
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), -EPROTO);
	p->t.shm->stride = stride;
	p->t.shm->sample_size = 1ull << 20;	/* the pool memfd is too small for it */
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &s), -EPROTO);
	p->t.shm->sample_size = 64;
	ck_assert_ptr_null(s);
	s = sub(name, 0);
	smem_topic_sub_close(s);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(topic_layout_sizes_are_fixed)
{
	struct smem__topic_geo g = { .sample_size = 100, .depth = 8, .max_subs = 2, .views = 1,
				     .loans = 4 };

	ck_assert_int_eq(smem__topic_geometry(&g), 0);
	ck_assert_uint_eq(g.stride, 128);
	ck_assert_uint_eq(g.pool, 8 + 2 + 4 + 1);
	ck_assert_uint_eq(g.lock_off, 256);
	ck_assert_uint_eq(g.entry_off, 256 + sizeof(struct smem_lock_shm));
	ck_assert_uint_eq(g.buf_off, g.entry_off + 64);
	ck_assert_uint_eq(g.slot_off, g.buf_off + 64 * 15);
	ck_assert_uint_eq(g.ctl_size, g.slot_off + 64 * 2);
}
END_TEST

static Suite *topic_suite(void)
{
	Suite *s = suite_create("topic");
	TCase *tc = t_ring_tcase(s, "api", 30);

	tcase_add_test(tc, topic_layout_sizes_are_fixed);
	tcase_add_test(tc, topic_create_rejects_bad_config);
	tcase_add_test(tc, topic_open_of_a_ring_is_emediumtype_and_of_a_sealed_topic_as_publisher_eacces);
	tcase_add_test(tc, topic_two_subscribers_each_see_every_sample_in_order);
	tcase_add_test(tc, topic_late_joiner_gets_the_history_it_asks_for);
	tcase_add_test(tc, topic_overwrite_counts_each_subscribers_losses_exactly);
	tcase_add_test(tc, topic_a_held_view_survives_the_publisher_lapping_it);
	tcase_add_test(tc, topic_views_are_limited_per_subscriber);
	tcase_add_test(tc, topic_block_policy_holds_the_publisher_until_the_slowest_reads);
	tcase_add_test(tc, topic_hostile_entries_lengths_and_tail_give_eproto);
	tcase_add_test(tc, topic_hostile_geometry_refuses_to_open);
	tcase_add_test(tc, topic_sealed_pool_refuses_writable_mappings_even_reopened);
	tc = t_ring_tcase(s, "processes", 60);
	add_fork_test(tc, topic_subscriber_processes_see_every_sample_under_backpressure);
	add_fork_test(tc, topic_blocked_publisher_wakes_when_a_subscriber_process_reads);
	add_fork_test(tc, topic_creator_close_wakes_subscribers_with_eshutdown_after_what_is_left);
	add_fork_test(tc, topic_blocked_receive_sees_shutdown);
	add_fork_test(tc, topic_write_through_a_view_faults);
	add_fork_test(tc, topic_multi_publisher_pool_cannot_be_reopened_for_writing_by_another_uid);
	return s;
}

T_MAIN(topic_suite)
