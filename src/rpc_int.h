/* SPDX-License-Identifier: MIT */
/*
 * RPC internals shared by rpc.c and the tests: the control region's layout (docs/PROTOCOL.md,
 * "RPC protocol") and accessors for tests that write hostile packets into a channel's rings.
 */
#ifndef SMEM_RPC_INT_H
#define SMEM_RPC_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <smem/rpc.h>
#include <smem/ring.h>

#define SMEM_RPC_CTL_MAGIC	0x314350524d454d53ull	/* "SMEMRPC1" little-endian */
#define SMEM_RPC_CTL_VERSION	1u
/* Byte of the control memfd whose OFD write lock serialises elections and departures. */
#define SMEM_RPC_ELECT_BYTE	4000u

enum { SMEM_RPC_MASTER = 0, SMEM_RPC_SLAVE = 1 };
#define SMEM_RPC_END_CLOSED	1u	/* the endpoint closed cleanly */

/* One endpoint's record. Written under the election lock; read by the peer without it. */
struct smem_rpc_ctl_end {
	_Atomic uint32_t live_id;	/*  0: liveness id in the control region (live.c); 0: free */
	_Atomic uint32_t session;	/*  4: the session it belongs to */
	_Atomic uint32_t flags;		/*  8: SMEM_RPC_END_* */
	uint32_t pid;			/* 12: in its own pid namespace */
	uint64_t pidns_dev;		/* 16: st_dev of its /proc/self/ns/pid */
	uint64_t pidns_ino;		/* 24: st_ino of the same */
	uint64_t max_message;		/* 32: the largest message it accepts */
	uint8_t reserved[24];		/* 40: zero */
};

struct smem_rpc_ctl {
	uint64_t magic;			/*   0: SMEM_RPC_CTL_MAGIC (written before the region is
					 *      published, so no ordering of its own) */
	uint32_t version;		/*   8: SMEM_RPC_CTL_VERSION */
	uint32_t reserved0;		/*  12 */
	_Atomic uint32_t session;	/*  16: current session (0: none yet), release-stored last */
	_Atomic uint32_t event;		/*  20: bumped (and woken) on every election or departure */
	_Atomic uint32_t ring_gen;	/*  24: the rings are "<name>.<ring_gen>.m2s" / ".s2m" */
	uint32_t reserved1;		/*  28 */
	uint8_t reserved2[32];		/*  32 */
	struct smem_rpc_ctl_end end[2];	/*  64: [SMEM_RPC_MASTER], [SMEM_RPC_SLAVE] */
};

_Static_assert(sizeof(struct smem_rpc_ctl_end) == 64, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, session) == 4, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, flags) == 8, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, pid) == 12, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, pidns_dev) == 16, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, pidns_ino) == 24, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl_end, max_message) == 32, "layout");
_Static_assert(sizeof(struct smem_rpc_ctl) == 192, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, session) == 16, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, event) == 20, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, ring_gen) == 24, "layout");
_Static_assert(offsetof(struct smem_rpc_ctl, end) == 64, "layout");

/* For tests: the ring this endpoint writes to / reads from, and its current session. */
struct smem_ring *smem__rpc_tx(const struct smem_rpc *ch);
struct smem_ring *smem__rpc_rx(const struct smem_rpc *ch);
uint32_t smem__rpc_session(const struct smem_rpc *ch);

#endif
