/* SPDX-License-Identifier: MIT */
/*
 * The broker under faults: hostile input on its socket, restart after SIGKILL, and clients in
 * separate namespaces. Each test gives its broker a private address (a fresh directory) and
 * stops it with STOP at the end; SMEM_BROKER_IDLE_EXIT makes a broker left behind by a failed
 * test go away on its own a few seconds later.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"
#include "util/brokerutil.h"
#include "util/testutil.h"
/* ---- hostile input ------------------------------------------------------------------- */

/* Send a raw message (header fields as given) with @nfds fds; return the reply's status. */
static int raw_xchg(int s, uint16_t version, uint16_t op, uint32_t seq, const void *payload,
		    size_t len, const int *fds, int nfds, int32_t *length_override)
{
	unsigned char buf[4096];
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(32 * sizeof(int))];
	} cm;
	struct smem_msg_hdr h = { .version = version, .op = op, .seq = seq,
				  .length = length_override ? (uint32_t)*length_override :
							      (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	struct cmsghdr *cmsg;
	ssize_t n;

	if (nfds) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.b;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, (size_t)nfds * sizeof(int));
	}
	ck_assert_int_ge(sendmsg(s, &msg, MSG_NOSIGNAL), 0);
	n = recv(s, buf, sizeof(buf), 0);
	ck_assert_int_ge(n, (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	ck_assert_int_eq(h.version, SMEM_PROTO_VERSION);
	return h.status;
}

static int raw_send_bytes(int s, const void *p, size_t len)
{
	unsigned char buf[256];
	struct smem_msg_hdr h;
	ssize_t n;

	ck_assert_int_eq(send(s, p, len, MSG_NOSIGNAL), (ssize_t)len);
	n = recv(s, buf, sizeof(buf), 0);
	ck_assert_int_ge(n, (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	ck_assert_int_eq(h.op, 0);	/* unreadable: no op to echo */
	return h.status;
}

static int sealed_memfd(size_t size, unsigned seals)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static int create_raw(int s, uint32_t seq, const char *name, uint64_t declared, const int *fds,
		      int nfds)
{
	unsigned char p[sizeof(struct smem_msg_create) + SMEM_NAME_MAX];
	struct smem_msg_create m = { .size = declared, .kind = SMEM_KIND_REGION,
				     .name_len = (uint16_t)strlen(name) };

	memcpy(p, &m, sizeof(m));
	memcpy(p + sizeof(m), name, m.name_len);
	return raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_CREATE, seq, p, sizeof(m) + m.name_len,
			fds, nfds, NULL);
}

START_TEST(broker_answers_hostile_messages_with_errors_and_leaks_no_fd)
{
	const unsigned seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	struct smem_msg_hello hello = { .version = SMEM_PROTO_VERSION };
	struct smem_msg_name nm = { .name_len = 3 };
	struct smem_msg_release rel = { .id = 12345 };
	unsigned char big[2000], p[64];
	struct smem_region *r;
	int s, fds[16], i, len;
	pid_t bpid;

	tb_private_path_broker();
	ck_assert_int_eq(smem_region_create("hostile", 4096, NULL, &r), 0);	/* starts it */
	bpid = tb_broker_pid();
	ck_assert_int_ge(tb_broker_extra_fds(bpid), 1);	/* at least the memfd of "hostile" */

	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	{
		struct smem__addr a;

		ck_assert_int_eq(smem__addr_resolve(NULL, &a), 0);
		ck_assert_int_eq(connect(s, (struct sockaddr *)&a.sun, a.len), 0);
	}
	/* Unreadable: shorter than a header, or empty. */
	ck_assert_int_eq(raw_send_bytes(s, "abc", 3), -EBADMSG);
	ck_assert_int_eq(raw_send_bytes(s, "", 0), -EBADMSG);
	/* Wrong version, and anything before HELLO. */
	ck_assert_int_eq(raw_xchg(s, 99, SMEM_OP_HELLO, 1, &hello, sizeof(hello), NULL, 0, NULL),
			 -EPROTONOSUPPORT);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_LIST, 2, p, 8, NULL, 0, NULL),
			 -EPROTO);
	hello.version = 7;
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_HELLO, 3, &hello, sizeof(hello),
				  NULL, 0, NULL), -EPROTONOSUPPORT);
	hello.version = SMEM_PROTO_VERSION;
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_HELLO, 4, &hello, sizeof(hello),
				  NULL, 0, NULL), 0);
	/* Unknown ops, lying lengths, oversized, truncated payloads. */
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, 0, 5, NULL, 0, NULL, 0, NULL),
			 -EOPNOTSUPP);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, 999, 6, NULL, 0, NULL, 0, NULL),
			 -EOPNOTSUPP);
	len = 100;
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_LIST, 7, p, 8, NULL, 0, &len),
			 -EBADMSG);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_STAT, 8, big, sizeof(big), NULL,
				  0, NULL), -EMSGSIZE);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_CREATE, 9, p, 10, NULL, 0, NULL),
			 -EBADMSG);
	memcpy(p, &nm, sizeof(nm));
	memcpy(p + sizeof(nm), "ab", 2);	/* name_len says 3, 2 bytes follow */
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_OPEN, 10, p, sizeof(nm) + 2,
				  NULL, 0, NULL), -EBADMSG);
	memcpy(p + sizeof(nm), "a\0b", 3);	/* NUL inside a name */
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_OPEN, 11, p, sizeof(nm) + 3,
				  NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_RELEASE, 12, &rel, sizeof(rel),
				  NULL, 0, NULL), -ENOENT);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_STOP, 13, p, 1, NULL, 0, NULL),
			 -EBADMSG);

	/* fds where none are expected, too many fds, none where one is. */
	for (i = 0; i < 16; i++)
		fds[i] = sealed_memfd(8192, seals);
	memcpy(p + sizeof(nm), "abc", 3);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_OPEN, 20, p, sizeof(nm) + 3,
				  fds, 1, NULL), -EBADMSG);
	ck_assert_int_eq(raw_xchg(s, SMEM_PROTO_VERSION, SMEM_OP_HELLO, 21, &hello,
				  sizeof(hello), fds, 3, NULL), -EBADMSG);
	ck_assert_int_eq(create_raw(s, 22, "two", 8192, fds, 2), -EBADMSG);
	ck_assert_int_eq(create_raw(s, 23, "none", 8192, NULL, 0), -EBADMSG);
	/* More fds than the broker's control buffer: MSG_CTRUNC. */
	ck_assert_int_eq(create_raw(s, 24, "many", 8192, fds, 16), -EBADMSG);
	for (i = 1; i < 16; i++)
		close(fds[i]);

	/* Memfds a peer could truncate under the others, or that lie about their size. */
	fds[1] = sealed_memfd(8192, 0);
	ck_assert_int_eq(create_raw(s, 30, "unsealed", 8192, &fds[1], 1), -EPROTO);
	close(fds[1]);
	fds[1] = sealed_memfd(8192, F_SEAL_SHRINK | F_SEAL_SEAL);
	ck_assert_int_eq(create_raw(s, 31, "growable", 8192, &fds[1], 1), -EPROTO);
	close(fds[1]);
	ck_assert_int_eq(create_raw(s, 32, "short", 1 << 20, fds, 1), -EINVAL);
	fds[1] = sealed_memfd(100, seals);
	ck_assert_int_eq(create_raw(s, 33, "tiny", 100, &fds[1], 1), -EINVAL);
	close(fds[1]);
	ck_assert_int_ge(pipe2(&fds[1], O_CLOEXEC), 0);
	ck_assert_int_eq(create_raw(s, 34, "pipe", 8192, &fds[1], 1), -EPROTO);
	close(fds[1]);
	close(fds[2]);
	ck_assert_int_eq(create_raw(s, 35, "hostile", 8192, fds, 1), -EEXIST);
	/* And a good one still works on the same connection. */
	ck_assert_int_eq(create_raw(s, 36, "fine", 8192, fds, 1), 0);
	close(fds[0]);
	close(s);	/* releases "fine" */

	ck_assert_int_eq(tb_open_until("fine", -ENOENT, 1000), -ENOENT);
	ck_assert_int_eq(tb_broker_pid(), bpid);	/* survived */
	smem_region_close(r);
	smem__broker_disconnect();
	/* Every fd we sent it, and every connection, is gone once it has seen the hangups. */
	for (i = 0; i < 100 && tb_broker_extra_fds(bpid) != 0; i++)
		usleep(10000);
	ck_assert_int_eq(tb_broker_extra_fds(bpid), 0);
	tb_private_broker_end();
}
END_TEST

/* ---- restart ------------------------------------------------------------------------- */

static int restart_opener(void *arg)
{
	int *p = arg;	/* p[0]: ready (write), p[1]: done (read), p[2]: go (read) */
	struct smem_opts o = { .flags = SMEM_RDONLY };
	struct smem_region *r;

	if (!tb_sig_wait(p[2]))
		return 4;
	if (smem_region_open("held", &o, &r))
		return 1;
	if (write(p[0], "x", 1) != 1)
		return 2;
	if (!tb_sig_wait(p[1]))
		return 3;
	smem_region_close(r);
	return 0;
}

START_TEST(broker_killed_keeps_mappings_and_holders_reregister)
{
	struct smem_region *r, *h, *o;
	int ready[2], done[2], go[2], arg[3];
	pid_t b1, b2, opener;

	tb_private_path_broker();
	/*
	 * Another process will hold "held" read-only. It is forked before we hold anything,
	 * that is before our helper thread exists: ASan's runtime sometimes fails to start a
	 * thread in a child forked from a multithreaded process, and the opener needs its own.
	 */
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	arg[0] = ready[1];
	arg[1] = done[0];
	arg[2] = go[0];
	opener = t_fork(restart_opener, arg);
	ck_assert_int_eq(smem_region_create("restart", 8192, NULL, &r), 0);
	ck_assert_int_eq(smem_region_create("held", 4096, NULL, &h), 0);
	strcpy(smem_region_data(r), "before");
	tb_sig_send(go[1]);
	ck_assert(tb_sig_wait(ready[0]));

	b1 = tb_broker_pid();
	ck_assert_int_eq(kill(b1, SIGKILL), 0);
	ck_assert(tb_pid_gone(b1, 2000));
	/* Mappings are just mappings. */
	ck_assert_str_eq(smem_region_data(r), "before");
	strcpy(smem_region_data(r), "after");

	/* The holders' helper threads start a new broker and re-register. */
	ck_assert_int_eq(tb_open_until("restart", 0, 3000), 0);
	ck_assert_int_eq(smem_region_open("restart", NULL, &o), 0);
	ck_assert_str_eq(smem_region_data(o), "after");
	smem_region_close(o);
	b2 = tb_broker_pid();
	ck_assert_int_ne(b1, b2);
	/* "held" now lives on through the read-only opener alone. */
	smem_region_close(h);
	ck_assert_int_eq(tb_open_until("held", 0, 3000), 0);
	tb_sig_send(done[1]);
	ck_assert_int_eq(t_wait(opener), 0);
	ck_assert_int_eq(tb_open_until("held", -ENOENT, 1000), -ENOENT);
	/* The creator's hold is still counted: closing ends the name. */
	smem_region_close(r);
	ck_assert_int_eq(tb_open_until("restart", -ENOENT, 1000), -ENOENT);
	close(ready[0]);
	close(ready[1]);
	close(done[0]);
	close(done[1]);
	close(go[0]);
	close(go[1]);
	tb_private_broker_end();
}
END_TEST

/* ---- containers ---------------------------------------------------------------------- */

struct ns_arg {
	int pipe_fd;		/* creator: write when ready; opener: unused */
	int done_fd;		/* creator: read to finish */
	bool creator;
};

static int ns_inner(struct ns_arg *a)
{
	struct smem_region *r;
	int err;

	if (getpid() != 1)
		return 50;	/* not in a fresh pid namespace */
	if (a->creator) {
		err = smem_region_create("ns-shared", 4096, NULL, &r);
		if (err)
			return 51;
		strcpy(smem_region_data(r), "across namespaces");
		if (write(a->pipe_fd, "x", 1) != 1)
			return 52;
		if (!tb_sig_wait(a->done_fd))
			return 53;
		smem_region_close(r);
		return 0;
	}
	err = smem_region_open("ns-shared", NULL, &r);
	if (err)
		return 60;
	err = strcmp(smem_region_data(r), "across namespaces") ? 61 : 0;
	strcpy(smem_region_data(r), "seen");
	smem_region_close(r);
	return err;
}

/* unshare net+ipc+pid, then fork into the new pid namespace. 77: not permitted. */
static int ns_outer(void *arg)
{
	pid_t pid;

	if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID) < 0)
		return 77;
	pid = fork();
	if (pid < 0)
		return 78;
	if (pid == 0)
		_exit(ns_inner(arg));
	return t_wait(pid);
}

START_TEST(processes_in_separate_namespaces_share_a_region_through_a_path_socket)
{
	struct ns_arg c = { .creator = true }, o = { .creator = false };
	int ready[2], done[2], rc;
	pid_t pc, po;

	tb_private_path_broker();
	{
		struct smem_region *boot;

		/* Start the broker here, in our namespaces. */
		ck_assert_int_eq(smem_region_create("boot", 4096, NULL, &boot), 0);
		smem_region_close(boot);
	}
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
	c.pipe_fd = ready[1];
	c.done_fd = done[0];
	pc = t_fork(ns_outer, &c);
	close(ready[1]);	/* so that a creator that fails gives EOF */
	close(done[0]);
	if (!tb_sig_wait(ready[0])) {
		rc = t_wait(pc);
		close(ready[0]);
		close(done[1]);
		if (rc == 77) {
			printf("skip: unshare(CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWPID) not permitted\n");
			tb_private_broker_end();
			return;
		}
		ck_abort_msg("creator in new namespaces failed: %d", rc);
	}
	po = t_fork(ns_outer, &o);
	ck_assert_int_eq(t_wait(po), 0);
	tb_sig_send(done[1]);
	ck_assert_int_eq(t_wait(pc), 0);
	close(ready[0]);
	close(done[1]);
	tb_private_broker_end();
}
END_TEST

static Suite *broker_faults_suite(void)
{
	Suite *s = suite_create("broker_faults");
	TCase *tc;

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, broker_answers_hostile_messages_with_errors_and_leaks_no_fd);
	suite_add_tcase(s, tc);

	tc = tcase_create("restart");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, broker_killed_keeps_mappings_and_holders_reregister);
	suite_add_tcase(s, tc);

	tc = tcase_create("containers");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, processes_in_separate_namespaces_share_a_region_through_a_path_socket);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(broker_faults_suite)
