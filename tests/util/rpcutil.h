/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the RPC suites (check_rpc.c: the seed's tests, calls, payloads, errors,
 * statistics; check_rpc_faults.c: election races, kill -9, hostile packets, cancel/expiry,
 * batched waits).
 */
#ifndef SMEM_RPCUTIL_H
#define SMEM_RPCUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include <smem.h>

/* What the TCase's fixture asked for (SMEM__WAIT_URING or SMEM__WAIT_FUTEX_WAITV). */
extern int t_rpc_want_backend;

/* Fixtures: the io_uring wait path, or the fallback (SMEM_NO_URING=1); both run t_fds_setup. */
void t_rpc_uring_setup(void);
void t_rpc_fallback_setup(void);
/* The test fails unless the fixture's backend is in use (io_uring missing only notes it). */
void t_rpc_check_backend(void);

/* Open channel @name with handler @h(@arg) / with @o; the test fails if that does not work. */
struct smem_rpc *t_rpc_open(const char *name, smem_rpc_handler_fn h, void *arg);
struct smem_rpc *t_rpc_open_opts(const char *name, const struct smem_rpc_opts *o);

/* Handlers: the product of the first two bytes (one byte), nothing at all, the request echoed. */
int t_rpc_h_mul(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep);
int t_rpc_h_noop(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep);
int t_rpc_h_echo(void *arg, const struct smem_rpc_request *req, struct smem_rpc_reply *rep);

/* Deterministic bytes for @seed. */
void t_rpc_fill(uint8_t *p, size_t n, uint32_t seed);

#endif
