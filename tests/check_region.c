/* SPDX-License-Identifier: MIT */
/* Regions: create/open by name across processes, names, read-only maps, hostile headers. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "util/testutil.h"

static const char *self_exe;
static char self_path[4096];	/* resolved once: under valgrind /proc/self/exe is valgrind */

/* exec'd child: open @name, check the pattern, write its answer at offset 4096. */
static int child_open_main(const char *name)
{
	struct smem_region *r;
	unsigned char *p;
	size_t i;

	if (smem_region_open(name, NULL, &r) != 0)
		return 10;
	p = smem_region_data(r);
	if (smem_region_size(r) != 8192 || smem_region_is_owner(r))
		return 11;
	for (i = 0; i < 4096; i++)
		if (p[i] != (unsigned char)(i * 7))
			return 12;
	memcpy(p + 4096, "pong", 4);
	smem_region_close(r);
	return 0;
}

START_TEST(region_created_here_is_seen_by_an_exec_child)
{
	struct smem_region *r;
	unsigned char *p;
	pid_t pid;
	size_t i;
	T_NAME(name, "region");

	ck_assert_int_eq(smem_region_create(name, 8192, NULL, &r), 0);
	ck_assert(smem_region_is_owner(r));
	ck_assert_uint_eq(smem_region_size(r), 8192);
	ck_assert_str_eq(smem_region_name(r), name);
	p = smem_region_data(r);
	for (i = 0; i < 8192; i++)
		ck_assert_uint_eq(p[i], 0);	/* a new region is zeroed */
	for (i = 0; i < 4096; i++)
		p[i] = (unsigned char)(i * 7);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl(self_path, self_exe, "child-open", name, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(t_wait(pid), 0);
	ck_assert_int_eq(memcmp(p + 4096, "pong", 4), 0);
	smem_region_close(r);
}
END_TEST

START_TEST(region_open_of_missing_name_is_enoent)
{
	struct smem_region *r = (struct smem_region *)0x1;
	T_NAME(name, "missing");

	ck_assert_int_eq(smem_region_open(name, NULL, &r), -ENOENT);
	ck_assert_ptr_eq(r, (struct smem_region *)0x1);	/* untouched on failure */
}
END_TEST

START_TEST(region_create_of_taken_name_is_eexist)
{
	struct smem_region *a, *b = NULL;
	T_NAME(name, "taken");

	ck_assert_int_eq(smem_region_create(name, 100, NULL, &a), 0);
	ck_assert_int_eq(smem_region_create(name, 100, NULL, &b), -EEXIST);
	ck_assert_ptr_null(b);
	smem_region_close(a);
}
END_TEST

START_TEST(region_rejects_bad_names_and_sizes)
{
	struct smem_region *r = NULL;
	char longname[SMEM_NAME_MAX + 2];
	T_NAME(name, "bad");

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ck_assert_int_eq(smem_region_create("", 10, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create(NULL, 10, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create(longname, 10, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_open(longname, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create(name, 0, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create(name, SIZE_MAX, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create(name, 10, NULL, NULL), -EINVAL);
	ck_assert_ptr_null(r);
	/* The longest legal name works. */
	longname[SMEM_NAME_MAX - 40] = 0;
	memcpy(longname, name, strlen(name));
	ck_assert_int_eq(smem_region_create(longname, 10, NULL, &r), 0);
	smem_region_close(r);
}
END_TEST

static int count_dev_shm(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

START_TEST(region_leaves_nothing_in_dev_shm)
{
	struct smem_region *a, *b;
	int before = count_dev_shm();
	T_NAME(name, "noshm");

	ck_assert_int_eq(smem_region_create(name, 1 << 20, NULL, &a), 0);
	ck_assert_int_eq(smem_region_open(name, NULL, &b), 0);
	ck_assert_int_eq(count_dev_shm(), before);
	smem_region_close(b);
	smem_region_close(a);
}
END_TEST

/*
 * A write through a read-only mapping must fault. The kernel reports it without a signal when
 * it is the one writing: read(2) into the mapping fails with EFAULT (a plain store would take
 * SIGSEGV, which sanitizers intercept).
 */
START_TEST(region_rdonly_open_maps_without_write_access)
{
	struct smem_region *r, *ro;
	int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	T_NAME(name, "rdonly");

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(smem_region_create(name, 4096, NULL, &r), 0);
	((char *)smem_region_data(r))[0] = 42;
	ck_assert_int_eq(smem_region_open(name, &(struct smem_opts){ .flags = SMEM_RDONLY }, &ro), 0);
	ck_assert_int_eq(((char *)smem_region_data(ro))[0], 42);
	ck_assert_int_eq(read(fd, smem_region_data(ro), 1), -1);
	ck_assert_int_eq(errno, EFAULT);
	ck_assert_int_eq(read(fd, smem_region_data(r), 1), 1);	/* the writable map takes it */
	ck_assert_int_eq(((char *)smem_region_data(ro))[0], 0);
	smem_region_close(ro);
	smem_region_close(r);
	close(fd);
}
END_TEST

START_TEST(region_owner_close_sets_shutting_down)
{
	struct smem_region *a, *b;
	T_NAME(name, "shutdown");

	ck_assert_int_eq(smem_region_create(name, 64, NULL, &a), 0);
	ck_assert_int_eq(smem_region_open(name, NULL, &b), 0);
	ck_assert(!smem_region_shutting_down(b));
	smem_region_close(a);
	ck_assert(smem_region_shutting_down(b));
	smem_region_close(b);
}
END_TEST

/* Each corruption of a published header makes a later open fail with -EPROTO. */
enum { C_MAGIC, C_MAJOR, C_KIND, C_TOTAL, C_OFF, C_SIZE_ZERO, C_SIZE_BIG, C_COUNT };

START_TEST(region_with_corrupted_header_opens_with_eproto)
{
	struct smem_region *a, *b = NULL;
	struct smem_region_hdr *h;
	T_NAME(name, "corrupt");

	ck_assert_int_eq(smem_region_create(name, 5000, NULL, &a), 0);
	h = a->hdr;
	switch (_i) {
	case C_MAGIC:	h->magic ^= 1; break;
	case C_MAJOR:	h->layout_major = SMEM_LAYOUT_MAJOR + 1; break;
	case C_KIND:	h->kind = SMEM_KIND_RING; break;
	case C_TOTAL:	h->total_size = 1ull << 40; break;
	case C_OFF:	h->data_off = 8; break;
	case C_SIZE_ZERO: h->data_size = 0; break;
	case C_SIZE_BIG: h->data_size = h->total_size; break;
	}
	/* A header that says another kind is read as another kind of object, not corruption. */
	ck_assert_int_eq(smem_region_open(name, NULL, &b), _i == C_KIND ? -EMEDIUMTYPE : -EPROTO);
	ck_assert_ptr_null(b);
	smem_region_close(a);
}
END_TEST

/*
 * A participant that forked a long-lived child and then died must look dead: the child's
 * inherited copy of the liveness description would otherwise keep the slot locked.
 */
static int join_fork_and_die(void *arg)
{
	struct smem_region *r;
	uint32_t *shared;
	pid_t grandchild;

	if (smem_region_open(arg, NULL, &r) != 0 || smem__live_join(r) != 0)
		return 1;
	shared = smem_region_data(r);
	grandchild = fork();
	if (grandchild < 0)
		return 2;
	if (grandchild == 0) {
		/* Lives on after its parent, holding whatever it inherited. */
		if (r->live_fd != -1 || r->live_id != 0)
			_exit(3);
		/* Past the atfork handlers: from here on only the parent's own copy counts. */
		__atomic_store_n(&shared[2], 1, __ATOMIC_RELEASE);
		for (;;)
			pause();
	}
	shared[1] = (uint32_t)grandchild;
	while (!__atomic_load_n(&shared[2], __ATOMIC_ACQUIRE))
		usleep(100);
	/* Release: the parent reads the id only after seeing it published. */
	__atomic_store_n(&shared[0], r->live_id, __ATOMIC_RELEASE);
	for (;;)
		pause();	/* killed by the test */
}

START_TEST(region_participant_killed_after_fork_looks_dead)
{
	struct smem_region *r;
	uint32_t *shared, id;
	long long t0;
	pid_t child;
	T_NAME(name, "forklive");

	ck_assert_int_eq(smem_region_create(name, 64, NULL, &r), 0);
	ck_assert_int_eq(smem__live_join(r), 0);
	shared = smem_region_data(r);
	child = t_fork(join_fork_and_die, name);
	t0 = t_now_ms();
	while (!(id = __atomic_load_n(&shared[0], __ATOMIC_ACQUIRE)))
		ck_assert_msg(t_now_ms() - t0 < 5000, "child never joined");
	ck_assert(smem__live_alive(r, id));
	t_kill9(child);
	ck_assert_msg(!smem__live_alive(r, id), "dead participant kept alive by its child");
	kill((pid_t)shared[1], SIGKILL);
	smem_region_close(r);
}
END_TEST

START_TEST(region_strerror_names_smem_errors)
{
	ck_assert_str_eq(smem_strerror(-EPROTO), "shared memory or message failed validation");
	ck_assert_str_eq(smem_strerror(EOWNERDEAD), "lock acquired; its previous holder died");
	ck_assert_str_eq(smem_strerror(0), "success");
	ck_assert_str_eq(smem_strerror(-EMEDIUMTYPE), "the name holds another kind of object");
}
END_TEST

/*
 * Open a name as kind @k: 0 region, 1 buffer, 2 array, 3 ring, 4 rpc (a second rpc open is
 * the slave). Closes what it opened.
 */
static int open_as(const char *name, int k)
{
	struct smem_region *r = NULL;
	struct smem_buffer *b = NULL;
	struct smem_array *a = NULL;
	struct smem_ring *g = NULL;
	struct smem_rpc *c = NULL;
	int err;

	switch (k) {
	case 0: err = smem_region_open(name, NULL, &r); smem_region_close(r); break;
	case 1: err = smem_buffer_open(name, NULL, &b); smem_buffer_close(b); break;
	case 2: err = smem_array_open(name, 0, NULL, &a); smem_array_close(a); break;
	case 3: err = smem_ring_open(name, NULL, &g); smem_ring_close(g); break;
	default: err = smem_rpc_open(name, NULL, &c); smem_rpc_close(c); break;
	}
	return err;
}

/*
 * Opening a name as the wrong kind (a ring as a buffer, ...) is its own error, -EMEDIUMTYPE,
 * not -EPROTO: nothing is corrupt, the caller asked for the wrong thing. Every pair is tried.
 */
START_TEST(region_open_as_another_kind_is_emediumtype)
{
	struct smem_region *r = NULL;
	struct smem_buffer *b = NULL;
	struct smem_array *a = NULL;
	struct smem_ring *g = NULL;
	struct smem_rpc *c = NULL;
	int k = _i, other;
	T_NAME(name, "kind");

	switch (k) {
	case 0: ck_assert_int_eq(smem_region_create(name, 64, NULL, &r), 0); break;
	case 1: ck_assert_int_eq(smem_buffer_create(name, 64, NULL, &b), 0); break;
	case 2: ck_assert_int_eq(smem_array_create(name, 4, 16, NULL, &a), 0); break;
	case 3: ck_assert_int_eq(smem_ring_create(name, 4, 64, NULL, &g), 0); break;
	default: ck_assert_int_eq(smem_rpc_open(name, NULL, &c), 0); break;
	}
	for (other = 0; other < 5; other++)
		ck_assert_int_eq(open_as(name, other), other == k ? 0 : -EMEDIUMTYPE);
	smem_region_close(r);
	smem_buffer_close(b);
	smem_array_close(a);
	smem_ring_close(g);
	smem_rpc_close(c);
}
END_TEST

START_TEST(region_every_call_refuses_bad_arguments_without_crashing)
{
	struct smem_region *r = NULL, *keep = (struct smem_region *)&r;

	ck_assert_int_eq(smem_region_create(NULL, 64, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create("r-bad", 0, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create("r-bad", SIZE_MAX, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_create("r-bad", 64, NULL, NULL), -EINVAL);
	ck_assert_int_eq(smem_region_open(NULL, NULL, &r), -EINVAL);
	ck_assert_int_eq(smem_region_open("r-bad", NULL, NULL), -EINVAL);
	ck_assert_ptr_null(r);	/* out-parameter untouched */
	r = keep;
	ck_assert_int_eq(smem_region_open("", NULL, &r), -EINVAL);
	ck_assert_ptr_eq(r, keep);
	smem_region_close(NULL);
	ck_assert_ptr_null(smem_region_data(NULL));
	ck_assert_uint_eq(smem_region_size(NULL), 0);
	ck_assert_ptr_null(smem_region_name(NULL));
	ck_assert(!smem_region_is_owner(NULL));
	ck_assert(!smem_region_shutting_down(NULL));
	ck_assert_int_eq(smem_unlink(NULL, NULL), -EINVAL);
	ck_assert_int_eq(smem_unlink("", NULL), -EINVAL);
}
END_TEST

static Suite *region_suite(void)
{
	Suite *s = suite_create("region");
	TCase *tc = tcase_create("region");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, region_created_here_is_seen_by_an_exec_child);
	tcase_add_test(tc, region_open_of_missing_name_is_enoent);
	tcase_add_test(tc, region_create_of_taken_name_is_eexist);
	tcase_add_test(tc, region_rejects_bad_names_and_sizes);
	tcase_add_test(tc, region_every_call_refuses_bad_arguments_without_crashing);
	tcase_add_test(tc, region_leaves_nothing_in_dev_shm);
	tcase_add_test(tc, region_rdonly_open_maps_without_write_access);
	tcase_add_test(tc, region_owner_close_sets_shutting_down);
	tcase_add_loop_test(tc, region_with_corrupted_header_opens_with_eproto, 0, C_COUNT);
	tcase_add_test(tc, region_participant_killed_after_fork_looks_dead);
	tcase_add_test(tc, region_strerror_names_smem_errors);
	tcase_add_loop_test(tc, region_open_as_another_kind_is_emediumtype, 0, 5);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	self_exe = argv[0];
	if (readlink("/proc/self/exe", self_path, sizeof(self_path) - 1) < 0)
		snprintf(self_path, sizeof(self_path), "%s", argv[0]);
	if (argc == 3 && strcmp(argv[1], "child-open") == 0)
		return child_open_main(argv[2]);
	return t_run_suite(region_suite());
}
