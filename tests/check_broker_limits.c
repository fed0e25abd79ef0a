/* SPDX-License-Identifier: MIT */
/*
 * The broker as a trust boundary, server side (issue 11, docs/SECURITY.md "Owners, modes and
 * limits"): each test performs an attack for real, from a process that switched to another
 * uid (nobody, or made-up uids), against a real smemd or the broker's loop-less request path,
 * and asserts that it fails while the honest uid is still served.
 *
 *   forged owners    a re-register that claims root or another user as the owner
 *   grace            taking a name after a restart before its holders re-register it
 *   inode modes      a read-only opener re-opening /proc/self/fd/N writable
 *   quotas and caps  unlinked-but-held names, connection and hold floods, many uids,
 *                    running the broker out of fds
 */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "smemd.h"
#include "proto.h"
#include "util/brokerutil.h"
#include "util/msgutil.h"
#include "util/testutil.h"

#define NOBODY	65534

/* Drop to @uid (group @uid too, no supplementary groups). */
static bool become(uid_t uid)
{
	return setgroups(0, NULL) == 0 && setresgid(uid, uid, uid) == 0 &&
	       setresuid(uid, uid, uid) == 0;
}

/*
 * Start smemd at a fresh abstract address (reachable by every uid) with @args (NULL-ended),
 * the fd limit @nofile when not 0, and wait until it answers. Returns its pid.
 */
static pid_t start_smemd(const char *const *args, rlim_t nofile)
{
	const char *argv[24] = { "smemd", "--socket", NULL, "--foreground" };
	char smemd[512];
	int i, n = 4;
	pid_t d;

	tb_private_abstract_broker();
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	argv[2] = tb_sock;
	for (i = 0; args && args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(smemd, sizeof(smemd), "%s/tools/smemd", t_build_dir());
	d = fork();
	ck_assert_int_ge(d, 0);
	if (d == 0) {
		struct rlimit rl = { nofile, nofile };

		if (nofile && setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		execv(smemd, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 300 && smem__broker_hello(NULL, NULL); i++)
		usleep(10000);
	ck_assert_int_eq(smem__broker_hello(NULL, NULL), 0);
	return d;
}

static void stop_smemd(pid_t d)
{
	smem__broker_disconnect();
	ck_assert_int_eq(smem__broker_stop(NULL), 0);
	ck_assert_int_eq(t_wait(d), 0);
}

/* A raw connection that said HELLO, or a negative code. */
static int raw_session(void)
{
	int s = t_raw_connect(), st;

	if (s < 0)
		return s;
	st = t_raw_hello(s);
	if (st) {
		close(s);
		return st;
	}
	return s;
}

/* ---- forged owners ------------------------------------------------------------------- */

/*
 * As nobody: re-register memfds of our own (st_uid nobody) claiming root and uid 1234 as
 * their owner. Exit code: 0 if every forgery was refused with -EPERM and an honest
 * re-register of our own still works.
 */
static int forge_child(void *arg)
{
	const uint32_t rereg = SMEM_CREATE_REREGISTER;
	int s, fd, st;

	(void)arg;
	if (!become(NOBODY))
		return 100;
	s = raw_session();
	if (s < 0)
		return 101;
	fd = t_sealed_memfd(8192, 0600);
	if (fd < 0)
		return 102;
	/* Mode 0666 so that the old rule (the claimed mode admits us) would have let it in. */
	st = t_raw_create(s, "forged-root", fd, rereg, 0, 0, 0666);
	if (st != -EPERM)
		return 10 + (st == 0);
	for (int i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "forged-1234-%d", i);
		st = t_raw_create(s, name, fd, rereg, 1234, 1234, 0666);
		if (st != -EPERM)
			return 20 + (st == 0);
	}
	/* What the kernel recorded is believed: our own uid, a mode our inode fits in. */
	st = t_raw_create(s, "honest", fd, rereg, NOBODY, NOBODY, 0600);
	close(fd);
	close(s);
	return st == 0 ? 0 : 30;
}

/* As uid 1234: a plain create, which a forged quota charge would have made -EDQUOT. */
static int victim_create(void *arg)
{
	struct smem_region *r;
	int err;

	(void)arg;
	if (!become(1234))
		return 100;
	err = smem_region_create("victim-own", 4096, NULL, &r);
	if (err)
		return err == -EDQUOT ? 1 : 2;
	smem_region_close(r);
	return 0;
}

START_TEST(reregister_claiming_root_or_another_uid_as_owner_is_refused)
{
	const char *args[] = { "--max-names", "2", NULL };
	struct smem__entry_info e;
	pid_t d;

	if (!tb_need_root())
		return;
	d = start_smemd(args, 0);
	ck_assert_int_eq(t_wait(t_fork(forge_child, NULL)), 0);
	ck_assert_int_eq(smem__broker_stat(NULL, "forged-root", &e), -ENOENT);
	ck_assert_int_eq(smem__broker_stat(NULL, "forged-1234-0", &e), -ENOENT);
	/* uid 1234's quota (2 names) is untouched by the forgeries. */
	ck_assert_int_eq(t_wait(t_fork(victim_create, NULL)), 0);
	stop_smemd(d);
}
END_TEST

/* ---- grace after a restart ----------------------------------------------------------- */

/* As nobody: a plain CREATE of @arg's name, raw. Exit code: 1 -EAGAIN, 2 -EEXIST, 3 taken. */
static int squat_child(void *arg)
{
	int s, fd, st;

	if (!become(NOBODY))
		return 100;
	s = raw_session();
	fd = t_sealed_memfd(8192, 0600);
	if (s < 0 || fd < 0)
		return 101;
	st = t_raw_create(s, arg, fd, 0, 0, 0, 0644);
	close(fd);
	close(s);
	return st == -EAGAIN ? 1 : st == -EEXIST ? 2 : st == 0 ? 3 : 50;
}

START_TEST(name_cannot_be_taken_after_a_restart_before_its_holder_reregisters)
{
	const char *args[] = { "--grace", "30", NULL };
	struct smem__entry_info e;
	char buf[16] = { 0 };
	int s, fd, got;
	pid_t d;

	if (!tb_need_root())
		return;
	/*
	 * Our memfd was registered at a broker that just died; the new one starts. An attacker
	 * is faster than our re-register: it must be told to wait, and once we have re-registered
	 * the name is ours again.
	 */
	fd = t_sealed_memfd(8192, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "victim", 6, 100), 6);
	d = start_smemd(args, 0);
	ck_assert_int_eq(t_wait(t_fork(squat_child, "squatted")), 1);	/* -EAGAIN */
	ck_assert_int_eq(smem__broker_stat(NULL, "squatted", &e), -ENOENT);
	s = raw_session();
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(t_raw_create(s, "squatted", fd, SMEM_CREATE_REREGISTER, 0, 0, 0644), 0);
	ck_assert_int_eq(t_wait(t_fork(squat_child, "squatted")), 2);	/* -EEXIST */
	/* Whoever opens the name gets our bytes. */
	ck_assert_int_eq(t_raw_named(s, SMEM_OP_OPEN, "squatted", SMEM_OPEN_RDONLY, &got), 0);
	ck_assert_int_ge(got, 0);
	ck_assert_int_eq(pread(got, buf, 6, 100), 6);
	ck_assert_str_eq(buf, "victim");
	close(got);
	close(s);
	close(fd);
	stop_smemd(d);
}
END_TEST

START_TEST(library_create_waits_out_a_short_grace_period)
{
	const char *args[] = { "--grace", "2", NULL };
	struct smem_region *r;
	int s, fd;
	pid_t d;

	d = start_smemd(args, 0);
	/* The grace is on: a plain CREATE is told to wait ... */
	s = raw_session();
	ck_assert_int_ge(s, 0);
	fd = t_sealed_memfd(8192, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(t_raw_create(s, "raw", fd, 0, 0, 0, 0600), -EAGAIN);
	close(fd);
	close(s);
	/* ... which the library does, instead of failing. */
	ck_assert_int_eq(smem_region_create("after-grace", 4096, NULL, &r), 0);
	smem_region_close(r);
	stop_smemd(d);
}
END_TEST

/* ---- inode modes --------------------------------------------------------------------- */

/*
 * As nobody, open @arg read-only and try to re-open the fd through /proc writable. Exit
 * code: 0 refused with EACCES (and a read-only re-open works), 1 the write re-open worked.
 */
static int reopen_child(void *arg)
{
	struct smem_opts o = { .flags = SMEM_RDONLY };
	struct smem_region *r;
	char path[64];
	int fd, ret;

	if (!become(NOBODY))
		return 100;
	if (smem_region_open(arg, &o, &r))
		return 101;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		ret = 1;
		close(fd);
	} else {
		ret = errno == EACCES ? 0 : 2;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			ret = 3;
		else
			close(fd);
	}
	smem_region_close(r);
	return ret;
}

START_TEST(read_only_opener_cannot_reopen_the_memfd_writable_through_proc)
{
	struct smem_opts o644 = { .mode = 0644 }, o666 = { .mode = 0666 };
	struct smem_region *a, *b;
	struct stat st;

	if (!tb_need_root())
		return;
	tb_private_abstract_broker();
	tb_start_smemd(NULL);	/* nothing auto-starts at an abstract address */
	ck_assert_int_eq(smem_region_create("m644", 4096, &o644, &a), 0);
	ck_assert_int_eq(smem_region_create("m666", 4096, &o666, &b), 0);
	/* The inode carries the name's mode. */
	ck_assert_int_eq(fstat(a->fd, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(fstat(b->fd, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0666);
	ck_assert_int_eq(t_wait(t_fork(reopen_child, "m644")), 0);
	/* Where the name gives everybody write, the kernel does too. */
	ck_assert_int_eq(t_wait(t_fork(reopen_child, "m666")), 1);
	smem_region_close(a);
	smem_region_close(b);
	tb_private_broker_end();
}
END_TEST

/*
 * As uid 1234, at a broker running as nobody (which can neither chmod our memfd nor is its
 * owner): a CREATE whose inode grants more than the name is refused; a narrow one is not.
 */
static int wide_inode_child(void *arg)
{
	int s, wide, narrow, st1, st2;

	(void)arg;
	if (!become(1234))
		return 100;
	s = raw_session();
	wide = t_sealed_memfd(8192, 0666);
	narrow = t_sealed_memfd(8192, 0600);
	if (s < 0 || wide < 0 || narrow < 0)
		return 101;
	st1 = t_raw_create(s, "wide", wide, 0, 0, 0, 0600);
	st2 = t_raw_create(s, "narrow", narrow, 0, 0, 0, 0600);
	close(wide);
	close(narrow);
	close(s);
	return st1 == -EPERM && st2 == 0 ? 0 : 1;
}

static int smemd_as_nobody(void *arg)
{
	char smemd[512];

	snprintf(smemd, sizeof(smemd), "%s/tools/smemd", t_build_dir());
	if (!become(NOBODY))
		return 100;
	execl(smemd, "smemd", "--socket", (const char *)arg, "--foreground", (char *)NULL);
	return 127;
}

START_TEST(broker_refuses_a_memfd_whose_inode_grants_more_than_its_name)
{
	pid_t d;
	int i;

	if (!tb_need_root())
		return;
	tb_private_abstract_broker();
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	d = t_fork(smemd_as_nobody, tb_sock);
	for (i = 0; i < 300 && smem__broker_hello(NULL, NULL); i++)
		usleep(10000);
	ck_assert_int_eq(t_wait(t_fork(wide_inode_child, NULL)), 0);
	ck_assert_int_eq(kill(d, SIGTERM), 0);
	ck_assert_int_eq(t_wait(d), 0);
}
END_TEST

/* ---- quotas and caps ------------------------------------------------------------------- */

START_TEST(unlinked_names_still_held_count_against_their_owner)
{
	const char *args[] = { "--max-names", "4", "--max-bytes", "64K", NULL };
	struct smem_region *r[8];
	int i, n = 0, err = 0, base;
	pid_t d;

	d = start_smemd(args, 0);
	base = tb_broker_extra_fds(d);
	/* Create and unlink, keeping the memory: each still pins a memfd at the broker. */
	for (i = 0; i < 8; i++) {
		char name[32];

		snprintf(name, sizeof(name), "churn-%d", i);
		err = smem_region_create(name, 4096, NULL, &r[n]);
		if (err)
			break;
		n++;
		ck_assert_int_eq(smem_unlink(name, NULL), 0);
	}
	ck_assert_int_eq(err, -EDQUOT);
	ck_assert_int_eq(n, 4);
	/* The memfds and our connection, beyond what it had at start (smemd inherits ours). */
	ck_assert_int_le(tb_broker_extra_fds(d), base + 4 + 1);
	/* Bytes too: 64K is 16 pages, a region of 8 data pages needs 9. */
	smem_region_close(r[--n]);
	ck_assert_int_eq(smem_region_create("big", 60 << 10, NULL, &r[n]), -EDQUOT);
	/* The last hold going gives the name and its bytes back. */
	while (n > 0)
		smem_region_close(r[--n]);
	ck_assert_int_eq(smem_region_create("big", 40 << 10, NULL, &r[0]), 0);
	smem_region_close(r[0]);
	stop_smemd(d);
}
END_TEST

/*
 * As nobody: open @max connections (each says HELLO), then one more, then a library create.
 * Exit code 0 if the extra connection and the create were refused with -EDQUOT.
 */
static int conn_flood_child(void *arg)
{
	int max = *(int *)arg, s[64], i, st, err, extra;
	struct smem_region *r;

	if (!become(NOBODY))
		return 100;
	for (i = 0; i < max; i++) {
		s[i] = raw_session();
		if (s[i] < 0)
			return 10;
	}
	extra = t_raw_connect();
	if (extra < 0)
		return 11;
	st = t_raw_hello(extra);
	if (st != -EDQUOT)
		return st == 0 ? 12 : 13;
	/* ... and the broker closed it after saying why. */
	if (t_raw_hello(extra) != T_RAW_GONE)
		return 14;
	close(extra);
	err = smem_region_create("flooder", 4096, NULL, &r);
	if (err != -EDQUOT)
		return err == 0 ? 15 : 16;
	for (i = 0; i < max; i++)
		close(s[i]);
	return 0;
}

START_TEST(connections_over_the_uid_cap_get_edquot_and_other_uids_are_served)
{
	const char *args[] = { "--max-conns", "8", NULL };
	struct smem_region *r;
	int max = 8;
	pid_t d;

	if (!tb_need_root())
		return;
	d = start_smemd(args, 0);
	ck_assert_int_eq(t_wait(t_fork(conn_flood_child, &max)), 0);
	ck_assert_int_eq(smem_region_create("other-uid", 4096, NULL, &r), 0);
	smem_region_close(r);
	stop_smemd(d);
}
END_TEST

/* As nobody: open @arg until the broker says -EDQUOT. Exit code: how many opens worked. */
static int hold_flood_child(void *arg)
{
	struct smem_region *r[64];
	int n = 0, err = 0, i;

	if (!become(NOBODY))
		return 200;
	while (n < 64 && !(err = smem_region_open(arg, NULL, &r[n])))
		n++;
	if (err != -EDQUOT)
		return 201;
	for (i = 0; i < n; i++)
		smem_region_close(r[i]);
	return n;
}

START_TEST(holds_over_the_uid_cap_get_edquot)
{
	const char *args[] = { "--max-holds", "16", NULL };
	struct smem_opts o = { .mode = 0666 };
	struct smem_region *r, *again;
	pid_t d;

	if (!tb_need_root())
		return;
	d = start_smemd(args, 0);
	ck_assert_int_eq(smem_region_create("held-often", 4096, &o, &r), 0);
	ck_assert_int_eq(t_wait(t_fork(hold_flood_child, "held-often")), 16);
	/* Our own holds are ours: the creator's one, and another. */
	ck_assert_int_eq(smem_region_open("held-often", NULL, &again), 0);
	smem_region_close(again);
	smem_region_close(r);
	stop_smemd(d);
}
END_TEST

struct flood_arg {
	int nconns;		/* raw connections to open and keep */
	int min_hup;		/* wait until at least this many were hung up by the broker */
	bool churn;		/* first create+unlink and open names until -EDQUOT */
	int ready, done;	/* pipes: we write ready, then wait for done */
};

/*
 * As nobody: flood the broker. Exit code 0 if everything the flood asked for happened: the
 * churn ended in -EDQUOT (never another error), and at least min_hup connections were hung up.
 */
static int flood_child(void *arg)
{
	struct flood_arg *a = arg;
	struct smem_opts o666 = { .mode = 0666 };
	struct smem_region *r[256];
	struct pollfd *p;
	int n = 0, i, err = 0, hup = 0;
	long long end;

	if (!become(NOBODY))
		return 100;
	if (a->churn) {
		/* One name kept, then create, unlink, keep: until the names quota says no. */
		if (smem_region_create("flood-kept", 4096, &o666, &r[n++]))
			return 101;
		for (i = 0; n < 200; i++) {
			char name[32];

			snprintf(name, sizeof(name), "flood-%d", i);
			err = smem_region_create(name, 4096, &o666, &r[n]);
			if (err)
				break;
			if (smem_unlink(name, NULL))
				return 101;
			n++;
		}
		if (err != -EDQUOT)
			return 102;
		/* Hold what we have over and over: until the holds cap says no. */
		while (n < 256 && !(err = smem_region_open("flood-kept", NULL, &r[n])))
			n++;
		if (err != -EDQUOT)
			return 103;
	}
	p = calloc((size_t)a->nconns, sizeof(*p));
	if (!p)
		return 104;
	for (i = 0; i < a->nconns; i++) {
		p[i].fd = t_raw_connect();
		if (p[i].fd < 0)
			return 105;
		p[i].events = POLLIN;
	}
	/* Connections the broker cannot or will not keep are hung up, not left pending. */
	end = t_now_ms() + 5000;
	while (hup < a->min_hup && t_now_ms() < end) {
		usleep(20000);
		if (poll(p, (nfds_t)a->nconns, 0) < 0)
			return 106;
		for (hup = 0, i = 0; i < a->nconns; i++)
			hup += !!(p[i].revents & (POLLHUP | POLLIN));
	}
	if (hup < a->min_hup)
		return 107;
	tb_sig_send(a->ready);
	tb_sig_wait(a->done);
	for (i = 0; i < a->nconns; i++)
		close(p[i].fd);
	free(p);
	while (n > 0)
		smem_region_close(r[--n]);
	return 0;
}

/* Fork flood_child and wait until its flood is on; *ready_rd and *done_wr are ours to use. */
static pid_t flood_start(struct flood_arg *a, int *ready_rd, int *done_wr)
{
	int ready[2], done[2];
	pid_t f;

	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
	a->ready = ready[1];
	a->done = done[0];
	f = t_fork(flood_child, a);
	close(ready[1]);
	close(done[0]);
	ck_assert(tb_sig_wait(ready[0]));
	*ready_rd = ready[0];
	*done_wr = done[1];
	return f;
}

/* Let the flood go and check that it did all it wanted. */
static void flood_end(pid_t f, int ready_rd, int done_wr)
{
	tb_sig_send(done_wr);
	ck_assert_int_eq(t_wait(f), 0);
	close(ready_rd);
	close(done_wr);
}

START_TEST(another_uid_is_served_while_one_uid_floods_connections_holds_and_churn)
{
	const char *args[] = { "--max-conns", "16", "--max-holds", "64", "--max-names", "32",
			       NULL };
	struct flood_arg a = { .nconns = 100, .min_hup = 100 - 2 * 16, .churn = true };
	int ready, done, i, base;
	pid_t d, f;

	if (!tb_need_root())
		return;
	d = start_smemd(args, 0);
	base = tb_broker_extra_fds(d);
	f = flood_start(&a, &ready, &done);
	/* The flood is on: 32 names, 64 holds, 32 connections of nobody's. We are served. */
	for (i = 0; i < 50; i++) {
		struct smem_region *r, *o;
		char name[32];

		snprintf(name, sizeof(name), "served-%d", i);
		ck_assert_int_eq(smem_region_create(name, 4096, NULL, &r), 0);
		ck_assert_int_eq(smem_region_open(name, NULL, &o), 0);
		smem_region_close(o);
		smem_region_close(r);
	}
	/*
	 * Within the caps: nobody's connections (16 and 16 being refused) and memfds (32); our
	 * connection, and our last name, whose RELEASE (sent without a reply) may not be
	 * handled yet.
	 */
	ck_assert_int_le(tb_broker_extra_fds(d), base + 2 * 16 + 32 + 2);
	flood_end(f, ready, done);
	stop_smemd(d);
}
END_TEST

START_TEST(broker_out_of_fds_sheds_connections_and_answers_emfile)
{
	struct flood_arg a = { .nconns = 80, .min_hup = 30 };	/* under the 256 cap */
	struct smem_opts ro = { .flags = SMEM_RDONLY };
	struct smem_region *first, *r = NULL;
	int ready, done, err, i;
	pid_t d, f;

	if (!tb_need_root())
		return;
	/* About 30 fds to spare once the broker runs. */
	d = start_smemd(NULL, 40);
	ck_assert_int_eq(smem_region_create("first", 4096, NULL, &first), 0);
	f = flood_start(&a, &ready, &done);
	/*
	 * The broker is out of fds: the memfd of a CREATE cannot reach it, which the client
	 * hears as -EMFILE (not a protocol error); a read-only OPEN needs a new description,
	 * same answer; an OPEN of the existing writable one needs no new fd and works.
	 */
	ck_assert_int_eq(smem_region_create("second", 4096, NULL, &r), -EMFILE);
	ck_assert_int_eq(smem_region_open("first", &ro, &r), -EMFILE);
	ck_assert_int_eq(smem_region_open("first", NULL, &r), 0);
	smem_region_close(r);
	flood_end(f, ready, done);
	/* The flood gone, everything works again (once the broker has seen the hangups). */
	for (i = 0; i < 100; i++) {
		err = smem_region_create("second", 4096, NULL, &r);
		if (err != -EMFILE)
			break;
		usleep(20000);
	}
	ck_assert_int_eq(err, 0);
	smem_region_close(r);
	smem_region_close(first);
	stop_smemd(d);
}
END_TEST

/* Adopt a socketpair end as a client with @uid; returns our end, the broker's in *srv. */
static int adopt(struct smem__broker *b, uid_t uid, int *srv)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(smem__broker_adopt(b, sv[1], uid, uid), 0);
	*srv = sv[1];
	return sv[0];
}

/* Send a request on @cli, let the loop-less broker handle it, return the reply's status. */
static int step_xchg(struct smem__broker *b, int cli, int srv, uint16_t op, const void *p1,
		     size_t l1, const char *name, int fd)
{
	int got, st;

	ck_assert_int_eq(t_raw_send(cli, op, 1, p1, l1, name, name ? strlen(name) : 0, fd), 0);
	ck_assert_int_eq(smem__broker_step(b, srv), 1);
	st = t_raw_recv(cli, &got);
	if (got >= 0)
		close(got);
	return st;
}

START_TEST(records_of_uids_that_hold_nothing_are_freed)
{
	struct smem__broker_config cfg = { .listen_fd = -1, .group = -1 };
	struct smem__broker *b = smem__broker_new(&cfg);
	struct smem_msg_hello hello = { .version = SMEM_PROTO_VERSION };
	enum { BATCH = 500 };
	int cli[BATCH], srv[BATCH], i, round, before = t_count_fds();
	uid_t uid = 100000;

	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(smem__broker_uids(b), 0);
	/*
	 * 20,000 uids connect and go (in batches, to stay within our fd limit): each had a
	 * record while connected, none is left. (The figure is 100,000: the same in five
	 * times the rounds, which make check cannot afford on a busy machine.)
	 */
	for (round = 0; round < 40; round++) {
		for (i = 0; i < BATCH; i++)
			cli[i] = adopt(b, uid++, &srv[i]);
		ck_assert_uint_eq(smem__broker_uids(b), BATCH);
		for (i = 0; i < BATCH; i++) {
			close(cli[i]);
			ck_assert_int_eq(smem__broker_wait(b, srv[i], 5000), 1);
			ck_assert_int_eq(smem__broker_step(b, srv[i]), -ENOTCONN);
		}
		ck_assert_uint_eq(smem__broker_uids(b), 0);
	}
	/*
	 * 1,000 more create a name each (a memfd of their own, as st_uid shows), open it again
	 * and unlink it while holding it: the record lasts until the last hold goes.
	 */
	for (round = 0; round < 2 && geteuid() == 0; round++) {
		for (i = 0; i < BATCH; i++) {
			struct smem_msg_create m = { .kind = SMEM_KIND_REGION, .mode = 0644 };
			struct smem_msg_name nm = { 0 };
			char name[32];
			int fd = t_sealed_memfd(8192, 0600);

			ck_assert_int_ge(fd, 0);
			ck_assert_int_eq(fchown(fd, uid, uid), 0);
			cli[i] = adopt(b, uid, &srv[i]);
			snprintf(name, sizeof(name), "u%u", (unsigned)uid++);
			m.name_len = nm.name_len = (uint16_t)strlen(name);
			ck_assert_int_eq(step_xchg(b, cli[i], srv[i], SMEM_OP_HELLO, &hello,
						   sizeof(hello), NULL, -1), 0);
			ck_assert_int_eq(step_xchg(b, cli[i], srv[i], SMEM_OP_CREATE, &m, sizeof(m),
						   name, fd), 0);
			close(fd);
			ck_assert_int_eq(step_xchg(b, cli[i], srv[i], SMEM_OP_OPEN, &nm, sizeof(nm),
						   name, -1), 0);
			ck_assert_int_eq(step_xchg(b, cli[i], srv[i], SMEM_OP_UNLINK, &nm,
						   sizeof(nm), name, -1), 0);
		}
		ck_assert_uint_eq(smem__broker_names(b), 0);
		ck_assert_uint_eq(smem__broker_uids(b), BATCH);	/* unlinked, still held */
		for (i = 0; i < BATCH; i++) {
			close(cli[i]);
			ck_assert_int_eq(smem__broker_wait(b, srv[i], 5000), 1);
			ck_assert_int_eq(smem__broker_step(b, srv[i]), -ENOTCONN);
		}
		ck_assert_uint_eq(smem__broker_uids(b), 0);
	}
	smem__broker_free(b);
	ck_assert_int_eq(t_count_fds(), before);
}
END_TEST

static Suite *broker_limits_suite(void)
{
	Suite *s = suite_create("broker_limits");
	TCase *tc;

	tc = tcase_create("owners");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, reregister_claiming_root_or_another_uid_as_owner_is_refused);
	tcase_add_test(tc, name_cannot_be_taken_after_a_restart_before_its_holder_reregisters);
	tcase_add_test(tc, library_create_waits_out_a_short_grace_period);
	suite_add_tcase(s, tc);

	tc = tcase_create("modes");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, read_only_opener_cannot_reopen_the_memfd_writable_through_proc);
	tcase_add_test(tc, broker_refuses_a_memfd_whose_inode_grants_more_than_its_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, unlinked_names_still_held_count_against_their_owner);
	tcase_add_test(tc, connections_over_the_uid_cap_get_edquot_and_other_uids_are_served);
	tcase_add_test(tc, holds_over_the_uid_cap_get_edquot);
	tcase_add_test(tc, another_uid_is_served_while_one_uid_floods_connections_holds_and_churn);
	tcase_add_test(tc, broker_out_of_fds_sheds_connections_and_answers_emfile);
	tcase_add_test(tc, records_of_uids_that_hold_nothing_are_freed);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(broker_limits_suite)
