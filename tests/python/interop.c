/* SPDX-License-Identifier: MIT */
/*
 * The C side of the Python interoperation tests (tests/python/test_interop.py): small
 * commands that create, open, write and read smem objects through the public API only, so
 * the tests can check that what C writes Python reads, and the other way round.
 *
 *   interop ring-write NAME COUNT       open ring NAME, write "c2py-<i>" for i < COUNT
 *   interop ring-read NAME COUNT        open ring NAME, read COUNT messages, print each as hex
 *   interop array-create NAME LEN       create a plain int32 array, a[i] = i * i - 7, print
 *                                       "ready", hold it until stdin closes
 *   interop array-print NAME ELEM       open an array of ELEM-byte elements written by
 *                                       Python with a dtype header; print data_offset, then
 *                                       each element after the header (ELEM 8: float64, 4: int32)
 *   interop rpc-serve NAME              open channel NAME with a handler answering "c:" +
 *                                       the request reversed ("fail" gets -EPERM and a
 *                                       message); print "ready", serve until stdin closes
 *   interop rpc-call NAME TEXT TIMEOUT  call channel NAME with TEXT (opening it as slave),
 *                                       print the response, or "error <errno name> <message>"
 *   interop rpc-call-pending NAME       as slave, print "ready", call with no timeout and
 *                                       print the outcome (for a peer killed meanwhile)
 *   interop service-serve NAME          create service NAME whose handler answers as
 *                                       rpc-serve's, except "stall": it prints "in handler"
 *                                       and never answers; print "ready", serve until stdin
 *                                       closes, then print "served N" (requests handled)
 *   interop service-call NAME TEXT TIMEOUT  connect to service NAME, call it with TEXT,
 *                                       print the response or "error <errno name> <message>"
 *   interop service-call-pending NAME   connect, print "ready", call with no timeout and
 *                                       print the outcome (for a server killed meanwhile)
 *   interop topic-publish NAME COUNT SIZE  create topic NAME (block policy, depth 4) of
 *                                       SIZE-byte samples, print "ready", wait for a line
 *                                       on stdin, publish COUNT samples (sample i: u32 i,
 *                                       then bytes i & 0xff), hold it until stdin closes
 *   interop topic-receive NAME COUNT    subscribe to NAME, print "ready", receive COUNT
 *                                       samples; print "SEQ LEN HEX" per sample (HEX: its
 *                                       first 8 bytes at most)
 *
 * Exit status 0 on success, 1 on an error (printed on stderr), 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <smem.h>

SMEM_ARRAY_DECLARE(i32_array, int32_t)

static int fail(const char *what, int err)
{
	fprintf(stderr, "interop: %s: %s\n", what, smem_strerror(err));
	return 1;
}

static void wait_stdin_eof(void)
{
	char line[64];

	while (fgets(line, sizeof(line), stdin))
		;
}

static const char *errno_name(int err)
{
	switch (-err) {
	case ECONNRESET: return "ECONNRESET";
	case ESHUTDOWN: return "ESHUTDOWN";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case EREMOTEIO: return "EREMOTEIO";
	default: return "other";
	}
}

static int ring_write(const char *name, long count)
{
	struct smem_ring *r;
	char msg[64];
	int err, n;

	err = smem_ring_open(name, NULL, &r);
	if (err)
		return fail("ring open", err);
	for (long i = 0; i < count && !err; i++) {
		n = snprintf(msg, sizeof(msg), "c2py-%ld", i);
		err = smem_ring_write(r, msg, (size_t)n, 5000);
	}
	smem_ring_close(r);
	return err ? fail("ring write", err) : 0;
}

static int ring_read(const char *name, long count)
{
	struct smem_ring *r;
	unsigned char *buf;
	ssize_t n = 0;
	int err;

	err = smem_ring_open(name, NULL, &r);
	if (err)
		return fail("ring open", err);
	buf = malloc(smem_ring_node_size(r));
	for (long i = 0; buf && i < count; i++) {
		n = smem_ring_read(r, buf, smem_ring_node_size(r), 5000);
		if (n < 0)
			break;
		for (ssize_t j = 0; j < n; j++)
			printf("%02x", buf[j]);
		printf("\n");
	}
	free(buf);
	smem_ring_close(r);
	return n < 0 ? fail("ring read", (int)n) : 0;
}

static int array_create(const char *name, long len)
{
	struct smem_array *a;
	int err;

	err = i32_array_create(name, (size_t)len, NULL, &a);
	if (err)
		return fail("array create", err);
	for (long i = 0; i < len && !err; i++)
		err = i32_array_set(a, (size_t)i, (int32_t)(i * i - 7));
	if (!err) {
		printf("ready\n");
		fflush(stdout);
		wait_stdin_eof();
	}
	smem_array_close(a);
	return err ? fail("array set", err) : 0;
}

/* The Python header (python/smem/array.py): magic, u32 version, u32 data_offset, ... */
static int array_print(const char *name, size_t elem)
{
	struct smem_array *a;
	uint32_t off;
	const unsigned char *d;
	size_t n;
	int err;

	err = smem_array_open(name, elem, NULL, &a);
	if (err)
		return fail("array open", err);
	err = smem_array_lock_read(a, 1000);
	if (err) {
		smem_array_close(a);
		return fail("array lock", err);
	}
	d = smem_array_data(a);
	memcpy(&off, d + 12, sizeof(off));
	n = smem_array_length(a) * elem;
	if (memcmp(d, "\x93SMEMNPY", 8) != 0 || off > n || off % elem) {
		smem_array_unlock(a);
		smem_array_close(a);
		return fail("array header", -EPROTO);
	}
	printf("%" PRIu32 "\n", off);
	for (size_t i = off; i + elem <= n; i += elem) {
		if (elem == sizeof(double)) {
			double v;

			memcpy(&v, d + i, sizeof(v));
			printf("%g\n", v);
		} else {
			int32_t v;

			memcpy(&v, d + i, sizeof(v));
			printf("%" PRId32 "\n", v);
		}
	}
	smem_array_unlock(a);
	smem_array_close(a);
	return 0;
}

static int reverse_handler(void *arg, const struct smem_rpc_request *req,
			   struct smem_rpc_reply *reply)
{
	const char *in = req->data;
	char *out;

	(void)arg;
	if (req->len == 4 && memcmp(in, "fail", 4) == 0) {
		smem_rpc_reply_error(reply, "C handler refused");
		return -EPERM;
	}
	out = smem_rpc_reply_alloc(reply, req->len + 2);
	if (!out)
		return -ENOMEM;
	out[0] = 'c';
	out[1] = ':';
	for (size_t i = 0; i < req->len; i++)
		out[2 + i] = in[req->len - 1 - i];
	return 0;
}

static int rpc_serve(const char *name)
{
	struct smem_rpc_opts o = { .handler = reverse_handler };
	struct smem_rpc *ch;
	int err;

	err = smem_rpc_open(name, &o, &ch);
	if (err)
		return fail("rpc open", err);
	printf("ready\n");
	fflush(stdout);
	wait_stdin_eof();
	smem_rpc_close(ch);
	return 0;
}

static int rpc_call(const char *name, const char *text, int timeout_ms, bool announce)
{
	struct smem_rpc *ch;
	void *resp = NULL;
	size_t len = 0;
	int err;

	err = smem_rpc_open(name, NULL, &ch);
	if (err)
		return fail("rpc open", err);
	if (announce) {
		printf("ready\n");
		fflush(stdout);
	}
	err = smem_rpc_call(ch, text, strlen(text), &resp, &len, timeout_ms);
	if (err)
		printf("error %s %s\n", errno_name(err), smem_rpc_last_error_message());
	else
		printf("%.*s\n", (int)len, resp ? (const char *)resp : "");
	smem_rpc_free_response(resp);
	smem_rpc_close(ch);
	return 0;
}

static int stalling_handler(void *arg, const struct smem_rpc_request *req,
			    struct smem_rpc_reply *reply)
{
	if (req->len == 5 && memcmp(req->data, "stall", 5) == 0) {
		printf("in handler\n");
		fflush(stdout);
		for (;;)
			pause();	/* the test kills us here */
	}
	return reverse_handler(arg, req, reply);
}

/* Serve until stdin reaches its end: serve() in slices, looking at stdin between them. */
static int service_serve(const char *name)
{
	struct smem_service_opts o = { .handler = stalling_handler };
	struct smem_service *svc;
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	char line[64];
	long served = 0;
	int err, n;

	err = smem_service_create(name, &o, &svc);
	if (err)
		return fail("service create", err);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		n = smem_service_serve(svc, 20);
		if (n < 0) {
			smem_service_close(svc);
			return fail("service serve", n);
		}
		served += n;
		if (poll(&pfd, 1, 0) > 0 && !fgets(line, sizeof(line), stdin))
			break;
	}
	smem_service_close(svc);
	printf("served %ld\n", served);
	return 0;
}

static int service_call(const char *name, const char *text, int timeout_ms, bool announce)
{
	struct smem_service_client *c;
	void *resp = NULL;
	size_t len = 0;
	int err;

	err = smem_service_connect(name, NULL, &c);
	if (err)
		return fail("service connect", err);
	if (announce) {
		printf("ready\n");
		fflush(stdout);
	}
	err = smem_service_call(c, text, strlen(text), &resp, &len, timeout_ms);
	if (err)
		printf("error %s %s\n", errno_name(err), smem_rpc_last_error_message());
	else
		printf("%.*s\n", (int)len, resp ? (const char *)resp : "");
	smem_rpc_free_response(resp);
	smem_service_disconnect(c);
	return 0;
}

static int topic_publish(const char *name, long count, size_t size)
{
	struct smem_topic_config cfg = { .sample_size = size, .depth = 4 };
	struct smem_topic_pub *p;
	struct smem_topic_sample s;
	char line[64];
	int err;

	err = smem_topic_create(name, &cfg, NULL, &p);
	if (err)
		return fail("topic create", err);
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		smem_topic_pub_close(p);
		return fail("topic go", -EINVAL);
	}
	for (long i = 0; i < count && !err; i++) {
		uint32_t v = (uint32_t)i;

		err = smem_topic_loan(p, &s, 5000);
		if (err)
			break;
		memset(s.data, (int)(i & 0xff), size);
		memcpy(s.data, &v, sizeof(v) < size ? sizeof(v) : size);
		err = smem_topic_publish(p, &s, size, 5000);
	}
	if (!err)
		wait_stdin_eof();
	smem_topic_pub_close(p);
	return err ? fail("topic publish", err) : 0;
}

static int topic_receive(const char *name, long count)
{
	struct smem_topic_sub *sub;
	struct smem_topic_sample s;
	int err;

	err = smem_topic_subscribe(name, 0, NULL, &sub);
	if (err)
		return fail("topic subscribe", err);
	printf("ready\n");
	fflush(stdout);
	for (long i = 0; i < count && !err; i++) {
		err = smem_topic_receive(sub, &s, 5000);
		if (err)
			break;
		printf("%" PRIu64 " %zu ", s.seq, s.len);
		for (size_t j = 0; j < s.len && j < 8; j++)
			printf("%02x", ((const unsigned char *)s.view)[j]);
		printf("\n");
		err = smem_topic_release(sub, &s);
	}
	smem_topic_sub_close(sub);
	return err ? fail("topic receive", err) : 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (argc == 4 && strcmp(cmd, "ring-write") == 0)
		return ring_write(argv[2], atol(argv[3]));
	if (argc == 4 && strcmp(cmd, "ring-read") == 0)
		return ring_read(argv[2], atol(argv[3]));
	if (argc == 4 && strcmp(cmd, "array-create") == 0)
		return array_create(argv[2], atol(argv[3]));
	if (argc == 4 && strcmp(cmd, "array-print") == 0)
		return array_print(argv[2], (size_t)atol(argv[3]));
	if (argc == 3 && strcmp(cmd, "rpc-serve") == 0)
		return rpc_serve(argv[2]);
	if (argc == 5 && strcmp(cmd, "rpc-call") == 0)
		return rpc_call(argv[2], argv[3], atoi(argv[4]), false);
	if (argc == 3 && strcmp(cmd, "rpc-call-pending") == 0)
		return rpc_call(argv[2], "pending", -1, true);
	if (argc == 3 && strcmp(cmd, "service-serve") == 0)
		return service_serve(argv[2]);
	if (argc == 5 && strcmp(cmd, "service-call") == 0)
		return service_call(argv[2], argv[3], atoi(argv[4]), false);
	if (argc == 3 && strcmp(cmd, "service-call-pending") == 0)
		return service_call(argv[2], "pending", -1, true);
	if (argc == 5 && strcmp(cmd, "topic-publish") == 0)
		return topic_publish(argv[2], atol(argv[3]), (size_t)atol(argv[4]));
	if (argc == 4 && strcmp(cmd, "topic-receive") == 0)
		return topic_receive(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: see the comment at the top of tests/python/interop.c\n");
	return 2;
}
