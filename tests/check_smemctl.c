/* SPDX-License-Identifier: MIT */
/*
 * smemctl, as an operator runs it: options in any order, one JSON document per command (read
 * back with json-c), error documents, UTF-8 and non-UTF-8 names, what `stat` shows for each
 * kind (ring fill and counters, lock state and holder liveness, RPC ends), garbage in shared
 * memory shown as garbage, `top` with a refresh count, and --version of every tool.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blob.h"
#include "ring_int.h"
#include "rpc_int.h"
#include "topic_int.h"
#include "util/testutil.h"

/*
 * Run build/tools/@tool with the NULL-terminated arguments (no shell: names go through as
 * bytes). Its stdout goes to @out; returns its exit status.
 */
static int run(char *out, size_t cap, const char *tool, ...)
{
	char path[512];
	const char *argv[32];
	int p[2], n = 0, status;
	size_t len = 0;
	ssize_t got;
	va_list ap;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/tools/%s", t_build_dir(), tool);
	argv[n++] = path;
	va_start(ap, tool);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(p[1], 1);
		dup2(null, 2);	/* human messages; the documents are on stdout */
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len + 1 < cap && (got = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)got;
	out[len] = 0;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Exactly one JSON document (and a newline) in @s; asserts, and returns it. */
static struct json_object *one_doc(const char *s)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *doc;
	size_t len = strlen(s);

	doc = json_tokener_parse_ex(tok, s, (int)len);
	ck_assert_msg(doc != NULL, "not JSON: %s", s);
	/* Nothing after it but the closing newline. */
	ck_assert_msg(json_tokener_get_parse_end(tok) >= len - 1 && s[len - 1] == '\n' &&
		      strchr(s, '\n') == s + len - 1, "not one document on one line: %s", s);
	json_tokener_free(tok);
	return doc;
}

/* The value at a path of keys ("ring", "fill", NULL); asserts each step exists. */
static struct json_object *at(struct json_object *o, ...)
{
	const char *k;
	va_list ap;

	va_start(ap, o);
	while ((k = va_arg(ap, const char *))) {
		struct json_object *v;

		ck_assert_msg(json_object_object_get_ex(o, k, &v), "no key %s in %s", k,
			      json_object_to_json_string(o));
		o = v;
	}
	va_end(ap);
	return o;
}

static int64_t at_int(struct json_object *o, const char *k1, const char *k2, const char *k3)
{
	return json_object_get_int64(at(o, k1, k2, k3, NULL));
}

static const char *at_str(struct json_object *o, const char *k1, const char *k2)
{
	return json_object_get_string(at(o, k1, k2, NULL));
}

/* The entry for @name in a `list` document, or NULL. */
static struct json_object *listed(struct json_object *doc, const char *name)
{
	struct json_object *names = at(doc, "names", NULL);
	size_t i;

	for (i = 0; i < json_object_array_length(names); i++) {
		struct json_object *e = json_object_array_get_idx(names, i);

		if (!strcmp(json_object_get_string(at(e, "name", NULL)), name))
			return e;
	}
	return NULL;
}

static char out[1 << 18];

START_TEST(smemctl_options_go_before_or_after_the_command)
{
	struct smem_region *r;
	struct json_object *a, *b, *c;
	T_NAME(name, "order");

	ck_assert_int_eq(smem_region_create(name, 100, NULL, &r), 0);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "list", "--json", NULL), 0);
	a = one_doc(out);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "list", NULL), 0);
	b = one_doc(out);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "-j", "--broker",
			     getenv("SMEM_BROKER"), NULL), 0);
	c = one_doc(out);
	ck_assert_ptr_nonnull(listed(a, name));
	ck_assert_ptr_nonnull(listed(b, name));
	ck_assert_int_eq(json_object_get_int64(at(listed(a, name), "size", NULL)),
			 json_object_get_int64(at(listed(b, name), "size", NULL)));
	ck_assert_str_eq(at_str(c, "broker", "name"), name);
	ck_assert_int_eq(at_int(c, "header", "data_size", NULL), 100);
	/* "--" ends the options: a name may start with '-'. */
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "stat", "--", "-nobody-",
			     NULL), 1);
	json_object_put(c);
	c = one_doc(out);
	ck_assert_str_eq(at_str(c, "error", "code"), "ENOENT");
	json_object_put(a);
	json_object_put(b);
	json_object_put(c);
	smem_region_close(r);
}
END_TEST

START_TEST(smemctl_errors_are_one_json_document_naming_the_broker)
{
	struct json_object *d;
	char dead[256], want[700];

	/* No such name: exit 1, the errno, its name, the command and the broker's address. */
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", "no-such-name-here", "--json",
			     NULL), 1);
	d = one_doc(out);
	ck_assert_int_eq(at_int(d, "error", "errno", NULL), ENOENT);
	ck_assert_str_eq(at_str(d, "error", "code"), "ENOENT");
	ck_assert_str_eq(at_str(d, "error", "message"), "no such name");
	ck_assert_str_eq(at_str(d, "error", "command"), "stat");
	ck_assert_str_eq(at_str(d, "error", "broker"), getenv("SMEM_BROKER"));
	ck_assert_str_eq(at_str(d, "error", "detail"), "no-such-name-here");
	/* The library's sentence (smem_last_error), naming the name and the address. */
	snprintf(want, sizeof(want), "no name 'no-such-name-here' at broker %s (stat)",
		 getenv("SMEM_BROKER"));
	ck_assert_str_eq(at_str(d, "error", "explanation"), want);
	json_object_put(d);
	/* No broker there: ECONNREFUSED with that address, and nothing started. */
	snprintf(dead, sizeof(dead), "%s.nobody", getenv("SMEM_BROKER"));
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "--broker", dead, "list",
			     NULL), 1);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "error", "code"), "ECONNREFUSED");
	ck_assert_str_eq(at_str(d, "error", "broker"), dead);
	snprintf(want, sizeof(want), "no broker answers at %s", dead);
	ck_assert_str_eq(at_str(d, "error", "explanation"), want);
	ck_assert_int_eq(access(dead, F_OK), -1);
	json_object_put(d);
	/* Usage errors: exit 2, and still one document. */
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "frobnicate", "--json", NULL), 2);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "error", "code"), "EINVAL");
	json_object_put(d);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "--bogus", "list", NULL), 2);
	json_object_put(one_doc(out));
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "list", "--iterations", "3", "-j",
			     NULL), 2);
	json_object_put(one_doc(out));
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", "--json", NULL), 2);
	json_object_put(one_doc(out));
}
END_TEST

START_TEST(smemctl_utf8_names_round_trip_and_other_bytes_are_kept_in_hex)
{
	struct smem_region *a, *b;
	struct json_object *d, *e;
	char uname[192], bname[160], hex[400];
	size_t i;
	T_NAME(base, "n");

	snprintf(uname, sizeof(uname), "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x9a\x80-%s",
		 base);
	snprintf(bname, sizeof(bname), "bad\xff\xc3-%s", base);
	ck_assert_int_eq(smem_region_create(uname, 10, NULL, &a), 0);
	ck_assert_int_eq(smem_region_create(bname, 10, NULL, &b), 0);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "list", "--json", NULL), 0);
	d = one_doc(out);
	e = listed(d, uname);
	ck_assert_ptr_nonnull(e);	/* the very bytes, through a JSON parser */
	ck_assert(!json_object_object_get_ex(e, "name_hex", NULL));
	/* Not UTF-8: U+FFFD in "name", and the exact bytes in "name_hex". */
	snprintf(hex, sizeof(hex), "bad\xef\xbf\xbd\xef\xbf\xbd-%s", base);
	e = listed(d, hex);
	ck_assert_ptr_nonnull(e);
	for (i = 0; bname[i]; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)bname[i]);
	ck_assert_str_eq(json_object_get_string(at(e, "name_hex", NULL)), hex);
	json_object_put(d);
	/* stat and rm take such names as they are. */
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "stat", uname, NULL), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "broker", "name"), uname);
	json_object_put(d);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "rm", uname, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert(json_object_get_boolean(at(d, "removed", NULL)));
	ck_assert_str_eq(at_str(d, "name", NULL), uname);
	json_object_put(d);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", uname, "--json", NULL), 1);
	json_object_put(one_doc(out));
	/* The human view prints UTF-8 as is and other bytes as \xNN. */
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "list", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "bad\\xff\\xc3-"));
	smem_region_close(a);
	smem_region_close(b);
}
END_TEST

START_TEST(smemctl_stat_shows_ring_geometry_fill_and_counters)
{
	struct smem_ring *w, *rd;
	struct smem_ring_shm *shm;
	struct json_object *d;
	char buf[64] = "x";
	uint64_t head;
	T_NAME(name, "ring");

	ck_assert_int_eq(smem_ring_create(name, 8, 64, NULL, &w), 0);
	ck_assert_int_eq(smem_ring_open(name, NULL, &rd), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(smem_ring_write(w, buf, 10, 0), 0);
	ck_assert_int_eq(smem_ring_read(rd, buf, sizeof(buf), 0), 10);
	ck_assert_int_eq(smem_ring_read(rd, buf, sizeof(buf), 0), 10);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "broker", "kind"), "ring");
	ck_assert(json_object_get_boolean(at(d, "ring", "valid", NULL)));
	ck_assert_int_eq(at_int(d, "ring", "node_count", NULL), 8);
	ck_assert_int_eq(at_int(d, "ring", "node_size", NULL), 64);
	ck_assert_int_eq(at_int(d, "ring", "fill", NULL), 3);
	ck_assert_int_eq(at_int(d, "ring", "written", NULL), 5);
	ck_assert_int_eq(at_int(d, "ring", "read", NULL), 2);
	ck_assert_int_eq(at_int(d, "ring", "waiters", "readers"), 0);
	ck_assert_int_eq(at_int(d, "ring", "dropped", NULL), 0);
	ck_assert_int_eq(at_int(d, "ring", "claims", "held"), 0);
	ck_assert_int_eq(at_int(d, "participants", "alive", NULL), 2);
	json_object_put(d);
	/* A head past the tail cannot be: shown as such, never used as a fill. */
	shm = smem__ring_shm(w);
	head = atomic_load(&shm->head);
	atomic_store(&shm->head, 1000);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	atomic_store(&shm->head, head);
	d = one_doc(out);
	ck_assert(json_object_is_type(at(d, "ring", "fill", NULL), json_type_null));
	ck_assert(!json_object_get_boolean(at(d, "ring", "positions_consistent", NULL)));
	json_object_put(d);
	/* A broken geometry line fails the library's own check. */
	shm->node_stride = 7;
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	shm->node_stride = 64;
	d = one_doc(out);
	ck_assert(!json_object_get_boolean(at(d, "ring", "valid", NULL)));
	ck_assert_str_eq(json_object_get_string(at(d, "ring", "error", "code", NULL)), "EPROTO");
	json_object_put(d);
	smem_ring_close(rd);
	smem_ring_close(w);
}
END_TEST

static struct smem_blob_hdr *hdr_of(struct smem_buffer *b)
{
	return (struct smem_blob_hdr *)(void *)((char *)smem_buffer_data(b) - SMEM_BLOB_DATA_OFF);
}

/*
 * A child that runs @setup(@name), tells us it is done, and waits to be killed (holding
 * whatever @setup took). Returns its pid once @setup succeeded.
 */
struct holder {
	int (*setup)(const char *name);
	const char *name;
	int fd;
};

static int holder_main(void *arg)
{
	struct holder *h = arg;

	if (h->setup(h->name))
		return 1;
	if (write(h->fd, "x", 1) != 1)
		return 2;
	for (;;)
		pause();
}

static pid_t fork_holder(int (*setup)(const char *name), const char *name)
{
	struct holder h = { .setup = setup, .name = name };
	int p[2];
	pid_t pid;
	char c;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	h.fd = p[1];
	pid = t_fork(holder_main, &h);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	close(p[1]);
	return pid;
}

/* Take the buffer's write lock (and keep it: the handle is never closed). */
static int hold_write_lock(const char *name)
{
	struct smem_buffer *b;

	return smem_buffer_open(name, NULL, &b) || smem_buffer_lock_write(b, 1000);
}

START_TEST(smemctl_stat_shows_lock_state_and_holder_liveness)
{
	struct smem_buffer *b;
	struct json_object *d, *rh;
	pid_t pid;
	T_NAME(name, "lock");

	ck_assert_int_eq(smem_buffer_create(name, 4096, NULL, &b), 0);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert_int_eq(at_int(d, "buffer", "data_size", NULL), 4096);
	ck_assert_str_eq(at_str(d, "lock", "state"), "free");
	ck_assert(json_object_is_type(at(d, "lock", "writer", NULL), json_type_null));
	json_object_put(d);
	/* Our read lock: one reader, alive, in its own slot. */
	ck_assert_int_eq(smem_buffer_lock_read(b, 0), 0);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	ck_assert_int_eq(smem_buffer_unlock(b), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "lock", "state"), "read");
	ck_assert_int_eq(at_int(d, "lock", "readers", NULL), 1);
	rh = json_object_array_get_idx(at(d, "lock", "read_holders", NULL), 0);
	ck_assert_ptr_nonnull(rh);
	ck_assert(json_object_get_boolean(at(rh, "alive", NULL)));
	ck_assert(json_object_get_boolean(at(rh, "in_own_slot", NULL)));
	ck_assert_int_eq(json_object_get_int64(at(rh, "holds", NULL)), 1);
	ck_assert_int_eq(json_object_get_int64(at(rh, "pid_hint", NULL)), getpid());
	json_object_put(d);
	/* A writer killed with the lock held: still "write", its holder dead. */
	pid = fork_holder(hold_write_lock, name);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "lock", "state"), "write");
	ck_assert(json_object_get_boolean(at(d, "lock", "writer", "alive", NULL)));
	ck_assert_int_eq(at_int(d, "lock", "writer", "pid_hint"), pid);
	json_object_put(d);
	t_kill9(pid);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "lock", "state"), "write");
	ck_assert(!json_object_get_boolean(at(d, "lock", "writer", "alive", NULL)));
	json_object_put(d);
	/* The next acquirer recovers it (and smemctl counts that). */
	ck_assert_int_eq(smem_buffer_lock_write(b, 1000), -EOWNERDEAD);
	ck_assert_int_eq(smem_buffer_unlock(b), 0);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "lock", "state"), "free");
	ck_assert_int_eq(at_int(d, "lock", "recoveries", NULL), 1);
	json_object_put(d);
	/* Reserved bits in the lock word: garbage, not a state. */
	atomic_fetch_or(&hdr_of(b)->lock.state, 1ull << 24);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	atomic_fetch_and(&hdr_of(b)->lock.state, ~(1ull << 24));
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "lock", "state"), "garbage");
	json_object_put(d);
	smem_buffer_close(b);
}
END_TEST

/* Open the channel as its slave (and stay). */
static int be_slave(const char *name)
{
	struct smem_rpc *ch;

	return smem_rpc_open(name, NULL, &ch) || smem_rpc_is_master(ch);
}

START_TEST(smemctl_stat_shows_rpc_ends_and_their_liveness)
{
	struct smem_rpc *m;
	struct json_object *d, *s;
	pid_t pid;
	T_NAME(name, "rpc");

	ck_assert_int_eq(smem_rpc_open(name, NULL, &m), 0);
	ck_assert(smem_rpc_is_master(m));
	pid = fork_holder(be_slave, name);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "stat", name, NULL), 0);
	d = one_doc(out);
	ck_assert(json_object_get_boolean(at(d, "rpc", "valid", NULL)));
	ck_assert(json_object_get_boolean(at(d, "rpc", "connected", NULL)));
	ck_assert(json_object_get_boolean(at(d, "rpc", "master", "alive", NULL)));
	ck_assert_int_eq(at_int(d, "rpc", "master", "pid_hint"), getpid());
	ck_assert(json_object_get_boolean(at(d, "rpc", "slave", "alive", NULL)));
	ck_assert_int_eq(at_int(d, "rpc", "slave", "pid"), pid);
	ck_assert(json_object_get_boolean(at(d, "rpc", "m2s", "valid", NULL)));
	ck_assert_int_eq(at_int(d, "rpc", "m2s", "node_count"), 16);
	ck_assert_int_eq(at_int(d, "rpc", "s2m", "fill"), 0);
	json_object_put(d);
	/* A control block of another version is not read further. */
	m->ctl->version = SMEM_RPC_CTL_VERSION + 1;
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "stat", name, NULL), 0);
	m->ctl->version = SMEM_RPC_CTL_VERSION;
	d = one_doc(out);
	ck_assert(!json_object_get_boolean(at(d, "rpc", "valid", NULL)));
	ck_assert(!json_object_object_get_ex(at(d, "rpc", NULL), "master", NULL));
	json_object_put(d);
	t_kill9(pid);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "--json", "stat", name, NULL), 0);
	d = one_doc(out);
	ck_assert(!json_object_get_boolean(at(d, "rpc", "connected", NULL)));
	s = at(d, "rpc", "slave", NULL);
	/* Dead, or its record already given back by the master. */
	ck_assert(json_object_is_type(s, json_type_null) ||
		  !json_object_get_boolean(at(s, "alive", NULL)));
	json_object_put(d);
	smem_rpc_close(m);
}
END_TEST

static int h_ok(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	(void)arg;
	(void)req;
	(void)rep;
	return 0;
}

START_TEST(smemctl_stat_shows_service_clients_their_liveness_and_calls)
{
	struct smem_service_opts o = { .max_clients = 4, .handler = h_ok };
	struct smem_service_client *a, *b;
	struct smem_service *svc;
	struct json_object *d, *cl;
	int64_t calls[2];
	int i;
	T_NAME(name, "svc");

	ck_assert_int_eq(smem_service_create(name, &o, &svc), 0);
	ck_assert_int_eq(smem_service_connect(name, NULL, &a), 0);
	ck_assert_int_eq(smem_service_connect(name, NULL, &b), 0);
	for (i = 0; i < 3; i++) {
		struct smem_rpc_call *c;

		ck_assert_int_eq(smem_rpc_call_async(smem_service_channel(a), "x", 1, 5000, &c), 0);
		ck_assert_int_ge(smem_service_serve(svc, 5000), 1);
		ck_assert_int_eq(smem_rpc_wait(&c, 1, SMEM_RPC_WAIT_ALL, 5000), 1);
		ck_assert_int_eq(smem_rpc_call_result(c, NULL, NULL), 0);
		smem_rpc_call_free(c);
	}
	ck_assert_int_eq(smem_service_clients(svc), 2);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "broker", "kind"), "service");
	ck_assert(json_object_get_boolean(at(d, "service", "valid", NULL)));
	ck_assert_int_eq(at_int(d, "service", "max_clients", NULL), 4);
	ck_assert_int_eq(at_int(d, "service", "connected", NULL), 2);
	ck_assert(json_object_get_boolean(at(d, "service", "server", "alive", NULL)));
	ck_assert(!json_object_get_boolean(at(d, "service", "server", "closed", NULL)));
	cl = at(d, "service", "clients", NULL);
	ck_assert_uint_eq(json_object_array_length(cl), 2);
	for (i = 0; i < 2; i++) {
		struct json_object *e = json_object_array_get_idx(cl, (size_t)i);

		ck_assert(json_object_get_boolean(at(e, "alive", NULL)));
		ck_assert_str_eq(json_object_get_string(at(e, "state", NULL)), "attached");
		ck_assert_int_eq(at_int(e, "pid", NULL, NULL), getpid());
		calls[i] = at_int(e, "calls", NULL, NULL);
	}
	ck_assert_int_eq(calls[0] + calls[1], 3);
	ck_assert(calls[0] == 0 || calls[1] == 0);
	json_object_put(d);
	smem_service_disconnect(b);
	smem_service_disconnect(a);
	smem_service_close(svc);
}
END_TEST

START_TEST(smemctl_stat_shows_topic_subscribers_lag_and_losses)
{
	struct smem_topic_config cfg = { .sample_size = 128, .depth = 4,
					 .policy = SMEM_TOPIC_OVERWRITE, .max_subscribers = 3 };
	struct smem_topic_pub *p;
	struct smem_topic_sub *a, *b;
	struct smem_topic_sample v;
	struct json_object *d, *subs;
	int64_t lost[2], lag[2];
	T_NAME(name, "topic");

	ck_assert_int_eq(smem_topic_create(name, &cfg, NULL, &p), 0);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &a), 0);
	ck_assert_int_eq(smem_topic_subscribe(name, 0, NULL, &b), 0);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(smem_topic_loan(p, &v, 0), 0);
		ck_assert_int_eq(smem_topic_publish(p, &v, 8, 0), 0);
		if (i < 2) {	/* a keeps up for two samples, then stops */
			ck_assert_int_eq(smem_topic_receive(a, &v, 0), 0);
			ck_assert_int_eq(smem_topic_release(a, &v), 0);
		}
	}
	ck_assert_int_eq(smem_topic_receive(b, &v, 0), 0);	/* skips 2, holds sample 2 */
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "broker", "kind"), "topic");
	ck_assert(json_object_get_boolean(at(d, "topic", "valid", NULL)));
	ck_assert_int_eq(at_int(d, "topic", "sample_size", NULL), 128);
	ck_assert_int_eq(at_int(d, "topic", "depth", NULL), 4);
	ck_assert_str_eq(at_str(d, "topic", "policy"), "overwrite");
	ck_assert_int_eq(at_int(d, "topic", "published", NULL), 6);
	subs = at(d, "topic", "subscribers", NULL);
	ck_assert_uint_eq(json_object_array_length(subs), 2);
	for (int i = 0; i < 2; i++) {
		struct json_object *e = json_object_array_get_idx(subs, (size_t)i);

		ck_assert(json_object_get_boolean(at(e, "alive", NULL)));
		lost[i] = at_int(e, "lost", NULL, NULL);
		lag[i] = at_int(e, "lag", NULL, NULL);
	}
	ck_assert_int_eq(lag[0], 4);	/* a: at 2 of 6 */
	ck_assert_int_eq(lost[0], 0);
	ck_assert_int_eq(lag[1], 3);	/* b: lost 0 and 1, got 2 */
	ck_assert_int_eq(lost[1], 2);
	ck_assert_int_eq(at_int(json_object_array_get_idx(subs, 1), "views", NULL, NULL), 1);
	json_object_put(d);
	/* Broken geometry: reported, not read. */
	p->t.shm->depth = 3;
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	p->t.shm->depth = 4;
	d = one_doc(out);
	ck_assert(!json_object_get_boolean(at(d, "topic", "valid", NULL)));
	json_object_put(d);
	ck_assert_int_eq(smem_topic_release(b, &v), 0);
	smem_topic_sub_close(a);
	smem_topic_sub_close(b);
	smem_topic_pub_close(p);
}
END_TEST

START_TEST(smemctl_top_refreshes_the_given_number_of_times)
{
	struct smem_ring *w;
	struct json_object *d;
	char *line, *nl;
	int n = 0;
	T_NAME(name, "top");

	ck_assert_int_eq(smem_ring_create(name, 4, 64, NULL, &w), 0);
	ck_assert_int_eq(smem_ring_write(w, "abc", 3, 0), 0);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "top", "--json", "--iterations", "3",
			     "--interval", "0.05", NULL), 0);
	for (line = out; (nl = strchr(line, '\n')); line = nl + 1, n++) {
		struct json_object *e = NULL;
		size_t i;

		*nl = 0;
		d = json_tokener_parse(line);
		ck_assert_ptr_nonnull(d);
		ck_assert_int_eq(json_object_get_int64(at(d, "iteration", NULL)), n);
		for (i = 0; i < json_object_array_length(at(d, "names", NULL)); i++) {
			struct json_object *x = json_object_array_get_idx(at(d, "names", NULL), i);

			if (!strcmp(at_str(x, "broker", "name"), name))
				e = x;
		}
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(at_int(e, "ring", "fill", NULL), 1);
		json_object_put(d);
	}
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "top", "-i", "1", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "smemctl top: broker "));
	ck_assert_ptr_nonnull(strstr(out, name));
	ck_assert_ptr_nonnull(strstr(out, "fill 1/4"));
	smem_ring_close(w);
}
END_TEST

/* A header that fails the opener's checks is reported with the opener's error, and no more. */
START_TEST(smemctl_stat_reports_a_header_it_cannot_trust)
{
	struct smem_region *r;
	struct json_object *d;
	uint32_t kind;
	T_NAME(name, "hdr");

	ck_assert_int_eq(smem_region_create(name, 64, NULL, &r), 0);
	kind = r->hdr->kind;
	r->hdr->kind = SMEM_KIND_RING;	/* the broker says region, the header says ring */
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	r->hdr->kind = kind;
	d = one_doc(out);
	ck_assert(json_object_is_type(at(d, "header", NULL), json_type_null));
	ck_assert_str_eq(at_str(d, "header_error", "code"), "EMEDIUMTYPE");
	ck_assert(!json_object_object_get_ex(d, "participants", NULL));
	json_object_put(d);
	r->hdr->total_size++;
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, "--json", NULL), 0);
	r->hdr->total_size--;
	d = one_doc(out);
	ck_assert_str_eq(at_str(d, "header_error", "code"), "EPROTO");
	json_object_put(d);
	/* The human view says so too. */
	r->hdr->total_size++;
	ck_assert_int_eq(run(out, sizeof(out), "smemctl", "stat", name, NULL), 0);
	r->hdr->total_size--;
	ck_assert_ptr_nonnull(strstr(out, "header_error:"));
	ck_assert_ptr_nonnull(strstr(out, "message: shared memory or message failed validation"));
	smem_region_close(r);
}
END_TEST

START_TEST(every_tool_prints_its_version)
{
	static const char *const tools[] = { "smemd", "smemctl", "ringbench" };
	char want[64];

	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(run(out, sizeof(out), tools[i], "--version", NULL), 0);
		snprintf(want, sizeof(want), "%s (smem) %d.%d.", tools[i], SMEM_VERSION_MAJOR,
			 SMEM_VERSION_MINOR);
		ck_assert_msg(!strncmp(out, want, strlen(want)), "%s", out);
		ck_assert_ptr_nonnull(strchr(out, '\n'));
	}
}
END_TEST

static Suite *smemctl_suite(void)
{
	Suite *s = suite_create("smemctl");
	TCase *tc = tcase_create("operators");

	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, smemctl_options_go_before_or_after_the_command);
	tcase_add_test(tc, smemctl_errors_are_one_json_document_naming_the_broker);
	tcase_add_test(tc, smemctl_utf8_names_round_trip_and_other_bytes_are_kept_in_hex);
	tcase_add_test(tc, smemctl_stat_shows_ring_geometry_fill_and_counters);
	tcase_add_test(tc, smemctl_stat_shows_lock_state_and_holder_liveness);
	tcase_add_test(tc, smemctl_stat_shows_rpc_ends_and_their_liveness);
	tcase_add_test(tc, smemctl_stat_shows_topic_subscribers_lag_and_losses);
	tcase_add_test(tc, smemctl_stat_shows_service_clients_their_liveness_and_calls);
	tcase_add_test(tc, smemctl_top_refreshes_the_given_number_of_times);
	tcase_add_test(tc, smemctl_stat_reports_a_header_it_cannot_trust);
	tcase_add_test(tc, every_tool_prints_its_version);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(smemctl_suite)
