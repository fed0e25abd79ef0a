/* SPDX-License-Identifier: MIT */
/*
 * smem_rpc: the seed's RpcBuffer tests ported (simple, async, no-response handler, handler
 * error, large payloads, nested and bidirectional calls, timeouts, statistics), and the packet
 * format and waiter on their own. Election races, kill -9, hostile packets, cancel/expiry and
 * batched waits are in check_rpc_faults.c. The channel tests run twice: once on io_uring and
 * once on the futex_waitv fallback (SMEM_NO_URING=1 set in each test's child by the fixture).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ring_int.h"
#include "rpc_int.h"
#include "rpc_proto_int.h"
#include "wait.h"
#include "util/rpcutil.h"
#include "util/testutil.h"

/* ---- handlers only these tests use ------------------------------------------------------- */

static int h_add(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	const uint8_t *b = req->data;
	int32_t sum;

	(void)arg;
	if (req->len != 2 || !b)
		return -EINVAL;
	sum = b[0] + b[1];
	return smem_rpc_reply_set(rep, &sum, sizeof(sum));
}

static int h_fail(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	(void)arg;
	(void)req;
	smem_rpc_reply_error(rep, "the handler threw");
	return -EIO;
}

static int h_sleep_ms(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	usleep((useconds_t)(intptr_t)arg * 1000);
	return t_rpc_h_mul(NULL, req, rep);
}


/* ---- the packet format -------------------------------------------------------------------- */

START_TEST(packet_header_is_64_bytes_and_splits_exact_multiples)
{
	ck_assert_uint_eq(sizeof(struct smem_rpc_pkt_hdr), 64);
	ck_assert_uint_eq(smem__rpc_packet_count(0, 100), 1);
	ck_assert_uint_eq(smem__rpc_packet_count(1, 100), 1);
	ck_assert_uint_eq(smem__rpc_packet_count(100, 100), 1);
	ck_assert_uint_eq(smem__rpc_packet_count(101, 100), 2);
	ck_assert_uint_eq(smem__rpc_packet_count(300, 100), 3);
	/* The seed's bug: the last chunk of an exact multiple is full, not 0. */
	ck_assert_uint_eq(smem__rpc_chunk_len(300, 100, 2), 100);
	ck_assert_uint_eq(smem__rpc_chunk_len(301, 100, 3), 1);
	ck_assert_uint_eq(smem__rpc_chunk_len(0, 100, 0), 0);
	ck_assert_uint_eq(smem__rpc_packet_count((uint64_t)UINT32_MAX * 100 + 1, 100), 0);
}
END_TEST

START_TEST(packet_parse_rejects_every_malformed_header)
{
	uint8_t pkt[64 + 100];
	struct smem_rpc_pkt_hdr h, out;
	const uint32_t per = 100;

	smem__rpc_pkt_fill(&h, SMEM_RPC_REQUEST, 1, 7, 0, 250, 2, 3, 50, 0);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64 + 50, per, 1000, &out), 0);
	ck_assert_uint_eq(out.msg_id, 7);
	/* wrong length for the chunk */
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64 + 49, per, 1000, &out), -EPROTO);
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 10, per, 1000, &out), -EPROTO);
	/* over max_message */
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64 + 50, per, 249, &out), -EPROTO);

#define BAD(field, value)                                                              \
	do {                                                                           \
		struct smem_rpc_pkt_hdr b = h;                                         \
		b.field = value;                                                       \
		memcpy(pkt, &b, sizeof(b));                                            \
		ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64 + 50, per, 1000, &out), -EPROTO); \
	} while (0)
	BAD(version, 2);
	BAD(type, 5);
	BAD(type, SMEM_RPC_CANCEL);	/* a cancel carries nothing */
	BAD(type, 0);
	BAD(flags, 1);
	BAD(msg_id, 0);
	BAD(response_to, 3);	/* a request answers nothing */
	BAD(index, 3);
	BAD(count, 2);
	BAD(chunk, 100);
	BAD(total_size, 251);
	BAD(error, -5);
	BAD(reserved[15], 1);
#undef BAD
	/* an error reply must carry a negative errno */
	smem__rpc_pkt_fill(&h, SMEM_RPC_ERROR, 1, 8, 7, 0, 0, 1, 0, 5);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64, per, 1000, &out), -EPROTO);
	smem__rpc_pkt_fill(&h, SMEM_RPC_ERROR, 1, 8, 7, 0, 0, 1, 0, -EIO);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64, per, 1000, &out), 0);
	/* a response must name its request */
	smem__rpc_pkt_fill(&h, SMEM_RPC_RESPONSE, 1, 8, 0, 0, 0, 1, 0, 0);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64, per, 1000, &out), -EPROTO);
	/* a cancel names a request (response_to 0) or a reply, and carries nothing */
	smem__rpc_pkt_fill(&h, SMEM_RPC_CANCEL, 1, 8, 0, 0, 0, 1, 0, 0);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64, per, 1000, &out), 0);
	smem__rpc_pkt_fill(&h, SMEM_RPC_CANCEL, 1, 8, 3, 0, 0, 1, 0, 0);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64, per, 1000, &out), 0);
	ck_assert_uint_eq(out.response_to, 3);
	smem__rpc_pkt_fill(&h, SMEM_RPC_CANCEL, 1, 8, 0, 0, 0, 1, 0, -ETIMEDOUT);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64, per, 1000, &out), -EPROTO);
	smem__rpc_pkt_fill(&h, SMEM_RPC_CANCEL, 1, 8, 0, 5, 0, 1, 5, 0);
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(smem__rpc_pkt_parse(pkt, 64 + 5, per, 1000, &out), -EPROTO);
}
END_TEST

START_TEST(reassembly_checks_order_and_completeness)
{
	struct smem_rpc_pkt_hdr h[3];
	struct smem__rpc_asm a;
	uint8_t src[250];
	unsigned i;

	t_rpc_fill(src, sizeof(src), 1);
	for (i = 0; i < 3; i++)
		smem__rpc_pkt_fill(&h[i], SMEM_RPC_REQUEST, 1, 9, 0, 250, i, 3,
				   smem__rpc_chunk_len(250, 100, i), 0);
	/* in order: complete, byte-exact */
	ck_assert_int_eq(smem__rpc_asm_start(&a, &h[0]), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[0], src, 100), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[1], src + 100, 100), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[2], src + 200, 100), 1);
	ck_assert_mem_eq(a.buf, src, 250);
	smem__rpc_asm_free(&a);
	/* a missing middle packet is an error, not a hole */
	ck_assert_int_eq(smem__rpc_asm_start(&a, &h[0]), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[0], src, 100), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[2], src + 200, 100), -EPROTO);
	smem__rpc_asm_free(&a);
	/* a duplicate is an error */
	ck_assert_int_eq(smem__rpc_asm_start(&a, &h[0]), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[0], src, 100), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[0], src, 100), -EPROTO);
	smem__rpc_asm_free(&a);
	/* a message cannot start in the middle */
	ck_assert_int_eq(smem__rpc_asm_start(&a, &h[1]), -EPROTO);
	/* another message's packet does not continue this one */
	ck_assert_int_eq(smem__rpc_asm_start(&a, &h[0]), 0);
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[0], src, 100), 0);
	h[1].msg_id = 10;
	ck_assert_int_eq(smem__rpc_asm_add(&a, &h[1], src + 100, 100), -EPROTO);
	smem__rpc_asm_free(&a);
}
END_TEST

/* ---- the waiter --------------------------------------------------------------------------- */

static _Atomic uint32_t wake_word;

static void *waker(void *arg)
{
	(void)arg;
	usleep(30000);
	atomic_store(&wake_word, 1);
	smem__futex_wake(&wake_word, 1);
	return NULL;
}

START_TEST(waiter_wakes_on_futex_on_pidfd_and_times_out)
{
	struct smem__wait_item it[2] = { { .word = &wake_word, .val = 0, .fd = -1 } };
	long long t0;
	pthread_t t;
	pid_t pid;
	int pfd, r;

	t_rpc_check_backend();
	atomic_store(&wake_word, 0);
	t0 = t_now_ms();
	ck_assert_int_eq(smem__wait_many(it, 1, 50ull * 1000000), 0);
	ck_assert_int_ge(t_now_ms() - t0, 45);

	pthread_create(&t, NULL, waker, NULL);
	do
		r = smem__wait_many(it, 1, 2000ull * 1000000);
	while (r == 0 && atomic_load(&wake_word) == 0);
	ck_assert_int_ge(r, 0);
	pthread_join(t, NULL);
	ck_assert_uint_eq(atomic_load(&wake_word), 1);
	/* a value that no longer matches fires at once */
	ck_assert_int_eq(smem__wait_many(it, 1, 2000ull * 1000000), 1);
	ck_assert(it[0].fired);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		usleep(30000);
		_exit(0);
	}
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	ck_assert_int_ge(pfd, 0);
	it[0].val = 1;
	it[1].word = NULL;
	it[1].fd = pfd;
	it[1].events = POLLIN;
	t0 = t_now_ms();
	do
		r = smem__wait_many(it, 2, 1000ull * 1000000);
	while (r == 0 && t_now_ms() - t0 < 1000);
	ck_assert(it[1].fired);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	close(pfd);
	t_wait(pid);
	smem__wait_thread_release();
}
END_TEST

/* ---- the seed's RpcBuffer tests ----------------------------------------------------------- */

START_TEST(rpc_master_and_slave_open_with_handlers)
{
	struct smem_rpc *m, *s;
	T_NAME(name, "rpc");

	m = t_rpc_open(name, t_rpc_h_noop, NULL);
	s = t_rpc_open(name, t_rpc_h_noop, NULL);
	ck_assert(smem_rpc_is_master(m));
	ck_assert(!smem_rpc_is_master(s));
	ck_assert_uint_eq(smem_rpc_packet_payload(m), 65536 - 64);
	ck_assert_uint_eq(smem_rpc_packet_payload(s), 65536 - 64);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

START_TEST(rpc_rejects_node_size_out_of_range)
{
	struct smem_rpc_opts o = { .node_size = 255 };
	struct smem_rpc *ch = (struct smem_rpc *)&o;
	T_NAME(name, "rpc");

	ck_assert_int_eq(smem_rpc_open(name, &o, &ch), -EINVAL);
	o.node_size = (64u << 20) + 1;
	ck_assert_int_eq(smem_rpc_open(name, &o, &ch), -EINVAL);
	o.node_size = 0;
	o.node_count = 1;
	ck_assert_int_eq(smem_rpc_open(name, &o, &ch), -EINVAL);
	ck_assert_ptr_eq(ch, (struct smem_rpc *)&o);	/* untouched on failure */
	ck_assert_int_eq(smem_rpc_open(NULL, NULL, &ch), -EINVAL);
}
END_TEST

START_TEST(rpc_master_calls_slave_which_adds_the_bytes)
{
	uint8_t args[2] = { 123, 10 };
	struct smem_rpc *m, *s;
	size_t len = 0;
	void *resp = NULL;
	int32_t v;
	T_NAME(name, "rpc");

	t_rpc_check_backend();
	m = t_rpc_open(name, NULL, NULL);
	s = t_rpc_open(name, h_add, NULL);
	ck_assert_int_eq(smem_rpc_call(m, args, 2, &resp, &len, 5000), 0);
	ck_assert_uint_eq(len, 4);
	memcpy(&v, resp, 4);
	ck_assert_int_eq(v, 133);
	smem_rpc_free_response(resp);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

START_TEST(rpc_statistics_count_calls_and_reset)
{
	uint8_t args[2] = { 123, 10 };
	struct smem_rpc_stats ms, ss;
	struct smem_rpc *m, *s;
	long long t0;
	T_NAME(name, "rpc");

	m = t_rpc_open(name, NULL, NULL);
	s = t_rpc_open(name, h_add, NULL);
	ck_assert_int_eq(smem_rpc_call(m, args, 2, NULL, NULL, 5000), 0);
	/* The slave counts its response right after writing it: give it a moment. */
	t0 = t_now_ms();
	do
		smem_rpc_stats(s, &ss);
	while (ss.responses_sent != 1 && t_now_ms() - t0 < 2000);
	smem_rpc_stats(m, &ms);
	ck_assert_uint_eq(ms.overhead_per_packet, 64);
	ck_assert_uint_eq(ms.wait_backend, (uint32_t)smem__wait_backend());
	ck_assert_uint_eq(ms.requests_sent, 1);
	ck_assert_uint_eq(ms.responses_received, 1);
	ck_assert_uint_eq(ms.packets_sent, 1);
	ck_assert_uint_eq(ms.packets_received, 1);
	ck_assert_uint_eq(ms.bytes_sent, 2);
	ck_assert_uint_eq(ms.bytes_received, 4);
	ck_assert_int_eq(ms.last_message_sent, 2);
	ck_assert_int_eq(ms.last_message_received, 4);
	ck_assert_uint_eq(ss.requests_received, 1);
	ck_assert_uint_eq(ss.responses_sent, 1);
	ck_assert_uint_eq(ss.max_packet_sent, 4);
	ck_assert_uint_eq(ss.max_packet_received, 2);
	ck_assert_uint_eq(ms.timeouts + ms.discarded_responses + ms.protocol_errors, 0);

	smem_rpc_stats_reset(m);
	smem_rpc_stats(m, &ms);
	ck_assert_uint_eq(ms.requests_sent, 0);
	ck_assert_uint_eq(ms.responses_received, 0);
	ck_assert_int_eq(ms.last_message_received, -1);
	ck_assert_int_eq(ms.last_message_sent, -1);
	ck_assert_int_eq(ms.last_packet_sent, -1);
	ck_assert_uint_eq(ms.overhead_per_packet, 64);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

START_TEST(rpc_handler_error_reaches_caller_with_its_message)
{
	struct smem_rpc_stats ms;
	struct smem_rpc *m, *s;
	void *resp = (void *)1;
	T_NAME(name, "rpc");

	t_rpc_check_backend();
	m = t_rpc_open(name, NULL, NULL);
	s = t_rpc_open(name, h_fail, NULL);
	ck_assert_int_eq(smem_rpc_call(m, NULL, 0, &resp, NULL, 5000), -EIO);
	ck_assert_ptr_eq(resp, (void *)1);	/* untouched on failure */
	ck_assert_str_eq(smem_rpc_last_error_message(), "the handler threw");
	smem_rpc_stats(m, &ms);
	ck_assert_uint_eq(ms.errors_received, 1);
	ck_assert_uint_eq(ms.responses_received, 0);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

START_TEST(rpc_handler_without_payload_answers_empty_success)
{
	struct smem_rpc *m, *s;
	void *resp = (void *)1;
	size_t len = 99;
	T_NAME(name, "rpc");

	m = t_rpc_open(name, NULL, NULL);
	s = t_rpc_open(name, t_rpc_h_noop, NULL);
	ck_assert_int_eq(smem_rpc_call(m, "x", 1, &resp, &len, 5000), 0);
	ck_assert_ptr_null(resp);
	ck_assert_uint_eq(len, 0);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

START_TEST(rpc_side_without_handler_answers_enosys_at_once)
{
	struct smem_rpc *m, *s;
	long long t0;
	T_NAME(name, "rpc");

	t_rpc_check_backend();
	m = t_rpc_open(name, t_rpc_h_noop, NULL);
	s = t_rpc_open(name, NULL, NULL);
	t0 = t_now_ms();
	ck_assert_int_eq(smem_rpc_call(m, "x", 1, NULL, NULL, 30000), -ENOSYS);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	/* and the other way round works */
	ck_assert_int_eq(smem_rpc_call(s, "x", 1, NULL, NULL, 5000), 0);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

START_TEST(rpc_async_call_completes_through_wait)
{
	struct smem_rpc_call *c[3];
	struct smem_rpc *m, *s;
	uint8_t args[2] = { 3, 4 };
	size_t len;
	void *resp;
	int i, rc;
	T_NAME(name, "rpc");

	t_rpc_check_backend();
	m = t_rpc_open(name, NULL, NULL);
	s = t_rpc_open(name, t_rpc_h_mul, NULL);
	for (i = 0; i < 3; i++) {
		args[0] = (uint8_t)(i + 2);
		ck_assert_int_eq(smem_rpc_call_async(m, args, 2, 5000, &c[i]), 0);
	}
	/* Not complete yet, or complete: never anything else (NULL out-params move nothing). */
	rc = smem_rpc_call_result(c[0], NULL, NULL);
	ck_assert(rc == -EINPROGRESS || (rc == 0 && smem_rpc_call_done(c[0])));
	ck_assert_int_eq(smem_rpc_wait(c, 3, SMEM_RPC_WAIT_ALL, 5000), 3);
	for (i = 0; i < 3; i++) {
		ck_assert(smem_rpc_call_done(c[i]));
		ck_assert_int_eq(smem_rpc_call_result(c[i], &resp, &len), 0);
		ck_assert_uint_eq(len, 1);
		ck_assert_uint_eq(((uint8_t *)resp)[0], (i + 2) * 4);
		smem_rpc_free_response(resp);
		smem_rpc_call_free(c[i]);
	}
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

static void roundtrip(struct smem_rpc *m, size_t n, uint32_t seed)
{
	uint8_t *src = malloc(n ? n : 1);
	void *resp = NULL;
	size_t len = 0;
	int rc;

	t_rpc_fill(src, n, seed);
	rc = smem_rpc_call(m, src, n, &resp, &len, 20000);
	ck_assert_msg(rc == 0, "%zu bytes: %s", n, smem_strerror(rc));
	ck_assert_uint_eq(len, n);
	if (n)
		ck_assert_msg(memcmp(resp, src, n) == 0, "%zu bytes differ", n);
	smem_rpc_free_response(resp);
	free(src);
}

START_TEST(rpc_large_payloads_cross_intact_including_exact_multiples)
{
	struct smem_rpc_opts om = { .node_size = 4096, .node_count = 4 };
	struct smem_rpc_opts os = { .handler = t_rpc_h_echo };
	struct smem_rpc_stats ms;
	struct smem_rpc *m, *s;
	size_t per, sizes[12];
	unsigned i;
	T_NAME(name, "rpc");

	t_rpc_check_backend();
	m = t_rpc_open_opts(name, &om);
	s = t_rpc_open_opts(name, &os);
	per = smem_rpc_packet_payload(m);
	ck_assert_uint_eq(per, 4096 - 64);
	sizes[0] = 0;
	sizes[1] = 1;
	sizes[2] = per - 1;
	sizes[3] = per;
	sizes[4] = per + 1;
	sizes[5] = 2 * per;
	sizes[6] = 3 * per;
	sizes[7] = 100 * per;
	sizes[8] = 1 << 20;
	sizes[9] = (1 << 20) + 17;
	sizes[10] = 3 << 20;
	sizes[11] = 1000 * per;
	for (i = 0; i < 12; i++)
		roundtrip(m, sizes[i], i);
	smem_rpc_stats(m, &ms);
	ck_assert_uint_eq(ms.protocol_errors, 0);
	/* an exact multiple goes in exactly that many packets */
	smem_rpc_stats_reset(m);
	roundtrip(m, 3 * per, 99);
	smem_rpc_stats(m, &ms);
	ck_assert_uint_eq(ms.packets_sent, 3);
	ck_assert_uint_eq(ms.packets_received, 3);
	ck_assert_uint_eq(ms.bytes_sent, 3 * per);
	ck_assert_uint_eq(ms.max_packet_sent, per);
	ck_assert_int_eq(ms.last_packet_received, (int64_t)per);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

/* The seed's nested test: the master's handler calls the slave back before answering. */
static struct smem_rpc *_Atomic nested_master;	/* set after open, read by handlers */

static int h_nested(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	uint8_t args[2] = { 3, 3 };
	size_t len = 0;
	void *resp = NULL;
	int rc;

	(void)arg;
	(void)req;
	rc = smem_rpc_call(nested_master, args, 2, &resp, &len, 5000);
	if (rc)
		return rc;
	rc = smem_rpc_reply_set(rep, resp, len);
	smem_rpc_free_response(resp);
	return rc;
}

START_TEST(rpc_nested_bidirectional_call_returns_product)
{
	struct smem_rpc *m, *s;
	void *resp = NULL;
	size_t len = 0;
	int i;
	T_NAME(name, "rpc");

	t_rpc_check_backend();
	m = t_rpc_open(name, h_nested, NULL);
	nested_master = m;
	s = t_rpc_open(name, t_rpc_h_mul, NULL);
	for (i = 0; i < 10; i++) {
		ck_assert_int_eq(smem_rpc_call(s, NULL, 0, &resp, &len, 5000), 0);
		ck_assert_uint_eq(len, 1);
		ck_assert_uint_eq(((uint8_t *)resp)[0], 9);
		smem_rpc_free_response(resp);
	}
	smem_rpc_close(s);
	smem_rpc_close(m);
}
END_TEST

/* Ping-pong recursion: each side's handler calls the other side until depth reaches 0. */
static struct smem_rpc *_Atomic pp_ch[2];

static int h_pingpong(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep)
{
	int side = (int)(intptr_t)arg;
	uint8_t depth = req->len ? ((const uint8_t *)req->data)[0] : 0;
	uint8_t next, got = 0;
	void *resp = NULL;
	size_t len = 0;
	int rc;

	if (depth == 0)
		return smem_rpc_reply_set(rep, &got, 1);
	next = (uint8_t)(depth - 1);
	rc = smem_rpc_call(pp_ch[side], &next, 1, &resp, &len, 5000);
	if (rc)
		return rc;
	got = (uint8_t)(((uint8_t *)resp)[0] + 1);
	smem_rpc_free_response(resp);
	return smem_rpc_reply_set(rep, &got, 1);
}

START_TEST(rpc_handlers_call_back_and_forth_six_deep)
{
	uint8_t depth = 6;
	void *resp = NULL;
	size_t len = 0;
	T_NAME(name, "rpc");

	pp_ch[0] = t_rpc_open(name, h_pingpong, (void *)0);
	pp_ch[1] = t_rpc_open(name, h_pingpong, (void *)1);
	ck_assert_int_eq(smem_rpc_call(pp_ch[0], &depth, 1, &resp, &len, 10000), 0);
	ck_assert_uint_eq(((uint8_t *)resp)[0], 6);
	smem_rpc_free_response(resp);
	smem_rpc_close(pp_ch[1]);
	smem_rpc_close(pp_ch[0]);
}
END_TEST

START_TEST(rpc_timeout_releases_the_call_and_late_response_is_discarded)
{
	struct smem_rpc_opts os = { .handler = h_sleep_ms, .handler_arg = (void *)300 };
	uint8_t args[2] = { 3, 3 };
	struct smem_rpc_stats ms;
	struct smem_rpc *m, *s;
	long long t0;
	T_NAME(name, "rpc");

	t_rpc_check_backend();
	m = t_rpc_open(name, NULL, NULL);
	s = t_rpc_open_opts(name, &os);
	t0 = t_now_ms();
	ck_assert_int_eq(smem_rpc_call(m, args, 2, NULL, NULL, 100), -ETIMEDOUT);
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	/* timeout 0 sends, then returns at once */
	ck_assert_int_eq(smem_rpc_call(m, args, 2, NULL, NULL, 0), -ETIMEDOUT);
	/* both answers arrive late (the handler runs them one after the other) */
	t0 = t_now_ms();
	do {
		ck_assert_int_eq(smem_rpc_dispatch(m, 50), -EINVAL);	/* service mode */
		usleep(20000);
		smem_rpc_stats(m, &ms);
	} while (ms.discarded_responses < 2 && t_now_ms() - t0 < 3000);
	ck_assert_uint_eq(ms.timeouts, 2);
	ck_assert_uint_eq(ms.discarded_responses, 2);
	ck_assert_uint_ne(ms.last_discarded_id, 0);
	/* the channel still works */
	ck_assert_int_eq(smem_rpc_call(m, args, 2, NULL, NULL, 5000), 0);
	smem_rpc_close(m);
	smem_rpc_close(s);
}
END_TEST

START_TEST(rpc_slave_call_after_master_closed_gets_eshutdown)
{
	struct smem_rpc *m, *s;
	T_NAME(name, "rpc");

	m = t_rpc_open(name, t_rpc_h_noop, NULL);
	s = t_rpc_open(name, NULL, NULL);
	ck_assert_int_eq(smem_rpc_call(s, NULL, 0, NULL, NULL, 5000), 0);
	smem_rpc_close(m);
	ck_assert_int_eq(smem_rpc_call(s, NULL, 0, NULL, NULL, 5000), -ESHUTDOWN);
	smem_rpc_close(s);
}
END_TEST

/* ---- the suite ----------------------------------------------------------------------------------- */

static void add_channel_tests(TCase *tc)
{
	tcase_add_test(tc, waiter_wakes_on_futex_on_pidfd_and_times_out);
	tcase_add_test(tc, rpc_master_calls_slave_which_adds_the_bytes);
	tcase_add_test(tc, rpc_handler_error_reaches_caller_with_its_message);
	tcase_add_test(tc, rpc_side_without_handler_answers_enosys_at_once);
	tcase_add_test(tc, rpc_async_call_completes_through_wait);
	tcase_add_test(tc, rpc_large_payloads_cross_intact_including_exact_multiples);
	tcase_add_test(tc, rpc_nested_bidirectional_call_returns_product);
	tcase_add_test(tc, rpc_timeout_releases_the_call_and_late_response_is_discarded);
}

static Suite *rpc_suite(void)
{
	Suite *s = suite_create("rpc");
	TCase *tc;

	tc = tcase_create("protocol");
	tcase_add_checked_fixture(tc, t_fds_setup, t_fds_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, packet_header_is_64_bytes_and_splits_exact_multiples);
	tcase_add_test(tc, packet_parse_rejects_every_malformed_header);
	tcase_add_test(tc, reassembly_checks_order_and_completeness);
	suite_add_tcase(s, tc);

	tc = tcase_create("channel");
	tcase_add_checked_fixture(tc, t_rpc_uring_setup, t_fds_teardown);
	tcase_set_timeout(tc, 30);
	add_channel_tests(tc);
	tcase_add_test(tc, rpc_master_and_slave_open_with_handlers);
	tcase_add_test(tc, rpc_rejects_node_size_out_of_range);
	tcase_add_test(tc, rpc_statistics_count_calls_and_reset);
	tcase_add_test(tc, rpc_handler_without_payload_answers_empty_success);
	tcase_add_test(tc, rpc_handlers_call_back_and_forth_six_deep);
	tcase_add_test(tc, rpc_slave_call_after_master_closed_gets_eshutdown);
	suite_add_tcase(s, tc);

	tc = tcase_create("fallback");
	tcase_add_checked_fixture(tc, t_rpc_fallback_setup, t_fds_teardown);
	tcase_set_timeout(tc, 30);
	add_channel_tests(tc);
	suite_add_tcase(s, tc);
	return s;
}

T_MAIN(rpc_suite)
