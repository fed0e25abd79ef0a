/* SPDX-License-Identifier: MIT */
/*
 * Errors a person can act on: smem_last_error() names the broker's address, the name and the
 * reason after every failure that involves the broker, and the two permission errors are told
 * apart by their errno: -EPERM when the kernel refuses the caller the broker's socket (nothing
 * is sent), -EACCES when the broker answers and refuses the name. The permission cases really
 * run as `nobody` (fork, setresuid) against a broker of root's.
 */
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"
#include "util/brokerutil.h"
#include "util/testutil.h"

#define NOBODY	65534

/* What a call made as nobody returned, and the thread's smem_last_error() after it. */
struct outcome {
	int err;
	char text[640];
};

/* Run @fn(@arg) in a child as nobody (uid and gid 65534, no groups); its outcome. */
static struct outcome as_nobody(int (*fn)(const void *arg), const void *arg)
{
	struct outcome o = { 0 }, got;
	int p[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			_exit(100);
		o.err = fn(arg);
		snprintf(o.text, sizeof(o.text), "%s", smem_last_error());
		_exit(write(p[1], &o, sizeof(o)) == (ssize_t)sizeof(o) ? 0 : 101);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &got, sizeof(got)), (ssize_t)sizeof(got));
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return got;
}

static int open_rw(const void *name)
{
	struct smem_region *r = NULL;
	int err = smem_region_open(name, NULL, &r);

	smem_region_close(r);
	return err;
}

static int open_ro(const void *name)
{
	struct smem_opts o = { .flags = SMEM_RDONLY };
	struct smem_region *r = NULL;
	int err = smem_region_open(name, &o, &r);

	smem_region_close(r);
	return err;
}

static int create_one(const void *name)
{
	struct smem_region *r = NULL;
	int err = smem_region_create(name, 4096, NULL, &r);

	smem_region_close(r);
	return err;
}

static int unlink_one(const void *name)
{
	return smem_unlink(name, NULL);
}

/* ---- the two permission errors ------------------------------------------------------- */

START_TEST(socket_permission_denied_is_eperm_and_says_socket)
{
	struct smem_region *r;
	struct outcome o;
	char want[640];

	if (!tb_need_root())
		return;
	/* Root's broker, its socket 0600 in a directory anybody may enter. */
	tb_shared_dir(0755);
	tb_start_smemd(NULL);
	ck_assert_int_eq(smem_region_create("open-to-all", 4096,
					    &(struct smem_opts){ .mode = 0666 }, &r), 0);
	snprintf(want, sizeof(want), "cannot connect to broker at %s: permission denied (socket: "
		 "the socket file or a directory above it does not let uid 65534 in)", tb_sock);

	/* The name would let nobody in; the socket does not: -EPERM, and the text says socket. */
	o = as_nobody(open_rw, "open-to-all");
	ck_assert_int_eq(o.err, -EPERM);
	ck_assert_str_eq(o.text, want);
	/* No auto-start either: a refused socket is not a missing broker. */
	o = as_nobody(create_one, "mine");
	ck_assert_int_eq(o.err, -EPERM);
	ck_assert_str_eq(o.text, want);

	/* The socket open to all, its directory 0700: the same, through the directory. */
	ck_assert_int_eq(chmod(tb_sock, 0666), 0);
	ck_assert_int_eq(chmod(tb_dir, 0700), 0);
	o = as_nobody(open_rw, "open-to-all");
	ck_assert_int_eq(o.err, -EPERM);
	ck_assert_str_eq(o.text, want);

	/* And once both let it in, the broker answers nobody (the name is 0666). */
	ck_assert_int_eq(chmod(tb_dir, 0755), 0);
	o = as_nobody(open_rw, "open-to-all");
	ck_assert_int_eq(o.err, 0);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

START_TEST(name_permission_denied_is_eacces_and_names_the_name)
{
	struct smem_opts o600 = { .mode = 0600 };
	struct smem_region *r;
	struct outcome o;
	char want[640];

	if (!tb_need_root())
		return;
	/* A broker nobody can reach (an abstract address), and a name only root may use. */
	tb_private_abstract_broker();
	tb_start_smemd(NULL);
	ck_assert_int_eq(smem_region_create("private", 4096, &o600, &r), 0);

	o = as_nobody(open_rw, "private");
	ck_assert_int_eq(o.err, -EACCES);
	snprintf(want, sizeof(want), "broker at %s refused name 'private': its mode does not let "
		 "uid 65534 open it read-write (-EACCES)", tb_sock);
	ck_assert_str_eq(o.text, want);

	o = as_nobody(open_ro, "private");
	ck_assert_int_eq(o.err, -EACCES);
	snprintf(want, sizeof(want), "broker at %s refused name 'private': its mode does not let "
		 "uid 65534 open it read-only (-EACCES)", tb_sock);
	ck_assert_str_eq(o.text, want);

	o = as_nobody(unlink_one, "private");
	ck_assert_int_eq(o.err, -EACCES);
	snprintf(want, sizeof(want), "broker at %s refused to unlink name 'private': only its owner "
		 "or root may (-EACCES)", tb_sock);
	ck_assert_str_eq(o.text, want);

	/* The same uid reached the broker: it can create names of its own there. */
	o = as_nobody(create_one, "nobodys");
	ck_assert_int_eq(o.err, 0);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

/* ---- every broker failure names its address ------------------------------------------ */

START_TEST(broker_failures_name_the_address_the_name_and_why)
{
	struct smem_ring *ring, *ring2;
	struct smem_buffer *buf;
	struct smem_region *r;
	char want[640], dead[300];

	tb_private_path_broker();
	ck_assert_int_eq(smem_ring_create("frames", 8, 64, NULL, &ring), 0);

	ck_assert_int_eq(smem_buffer_open("frames", NULL, &buf), -EMEDIUMTYPE);
	snprintf(want, sizeof(want), "name 'frames' at broker %s holds a ring, not a buffer "
		 "(-EMEDIUMTYPE)", tb_sock);
	ck_assert_str_eq(smem_last_error(), want);

	ck_assert_int_eq(smem_region_open("missing", NULL, &r), -ENOENT);
	snprintf(want, sizeof(want), "no name 'missing' at broker %s (open)", tb_sock);
	ck_assert_str_eq(smem_last_error(), want);

	ck_assert_int_eq(smem_ring_create("frames", 8, 64, NULL, &ring2), -EEXIST);
	snprintf(want, sizeof(want), "name 'frames' already exists at broker %s", tb_sock);
	ck_assert_str_eq(smem_last_error(), want);

	ck_assert_int_eq(smem_unlink("missing", NULL), -ENOENT);
	snprintf(want, sizeof(want), "no name 'missing' at broker %s (unlink)", tb_sock);
	ck_assert_str_eq(smem_last_error(), want);

	/* A success leaves the last failure's text alone: it is read after the failing call. */
	ck_assert_int_eq(smem_ring_open("frames", NULL, &ring2), 0);
	ck_assert_str_eq(smem_last_error(), want);
	smem_ring_close(ring2);
	smem_ring_close(ring);

	/* Nothing answers and auto-start is off. */
	snprintf(dead, sizeof(dead), "%s/nobody-here.sock", tb_dir);
	setenv("SMEM_NO_AUTOSTART", "yes", 1);
	ck_assert_int_eq(smem_region_open("x", &(struct smem_opts){ .broker = dead }, &r),
			 -ECONNREFUSED);
	snprintf(want, sizeof(want), "no broker answers at %s and auto-start is off "
		 "(SMEM_NO_AUTOSTART)", dead);
	ck_assert_str_eq(smem_last_error(), want);
	unsetenv("SMEM_NO_AUTOSTART");
	tb_private_broker_end();
}
END_TEST

static void *fail_elsewhere(void *arg)
{
	struct smem_region *r;

	(void)arg;
	if (smem_region_open("not-here-either", NULL, &r) != -ENOENT)
		return (void *)1;
	return strstr(smem_last_error(), "'not-here-either'") ? NULL : (void *)2;
}

START_TEST(last_error_is_per_thread)
{
	struct smem_region *r;
	pthread_t t;
	void *ret;
	char want[640];

	tb_private_path_broker();
	ck_assert_int_eq(smem_region_create("here", 4096, NULL, &r), 0);
	ck_assert_int_eq(smem_region_create("here", 4096, NULL, &r), -EEXIST);
	snprintf(want, sizeof(want), "name 'here' already exists at broker %s", tb_sock);
	ck_assert_str_eq(smem_last_error(), want);
	/* Another thread's failure is its own. */
	ck_assert_int_eq(pthread_create(&t, NULL, fail_elsewhere, NULL), 0);
	ck_assert_int_eq(pthread_join(t, &ret), 0);
	ck_assert_ptr_null(ret);
	ck_assert_str_eq(smem_last_error(), want);
	smem_region_close(r);
	tb_private_broker_end();
}
END_TEST

/*
 * A peer at the broker's address that is not a broker of our protocol: it answers HELLO with a
 * reply of another version. The client says it could not talk to whatever answers there.
 */
START_TEST(a_broker_speaking_another_protocol_gives_eproto_naming_it)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct smem_region *r;
	char want[640];
	int lfd, p[2];
	pid_t pid;

	tb_private_path_broker();
	ck_assert_uint_lt(strlen(tb_sock), sizeof(sun.sun_path));
	memcpy(sun.sun_path, tb_sock, strlen(tb_sock) + 1);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Our uid, so trusted: only its answer is wrong. */
		unsigned char buf[256];
		struct smem_msg_hdr h;
		int c;

		close(p[1]);
		c = accept(lfd, NULL, NULL);
		if (c < 0 || recv(c, buf, sizeof(buf), 0) < (ssize_t)sizeof(h))
			_exit(1);
		memcpy(&h, buf, sizeof(h));
		h.version = 77;
		h.status = -EPROTONOSUPPORT;
		h.length = 0;
		if (send(c, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
			_exit(2);
		/* Stay connected until the test is done (EOF on the pipe). */
		if (read(p[0], buf, 1) != 0)
			_exit(3);
		_exit(0);
	}
	close(p[0]);
	close(lfd);
	ck_assert_int_eq(smem_region_open("anything", NULL, &r), -EPROTO);
	snprintf(want, sizeof(want), "broker at %s: protocol error in handshake (a broker of "
		 "another version, or not a broker)", tb_sock);
	ck_assert_str_eq(smem_last_error(), want);
	close(p[1]);
	ck_assert_int_eq(t_wait(pid), 0);
	smem__broker_disconnect();
	ck_assert_int_eq(unlink(tb_sock), 0);
	ck_assert_int_eq(rmdir(tb_dir), 0);
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("errors");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, socket_permission_denied_is_eperm_and_says_socket);
	tcase_add_test(tc, name_permission_denied_is_eacces_and_names_the_name);
	tcase_add_test(tc, broker_failures_name_the_address_the_name_and_why);
	tcase_add_test(tc, last_error_is_per_thread);
	tcase_add_test(tc, a_broker_speaking_another_protocol_gives_eproto_naming_it);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(errors_suite());
}
