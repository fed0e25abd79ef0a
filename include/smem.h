/* SPDX-License-Identifier: MIT */
/*
 * smem: named shared memory between Linux processes: regions, locked buffers and arrays,
 * a lock-free ring and an RPC channel. The one public header; include only this.
 */
#ifndef SMEM_H
#define SMEM_H

#include <smem/common.h>
#include <smem/region.h>
#include <smem/buffer.h>
#include <smem/array.h>
#include <smem/ring.h>
#include <smem/rpc.h>
#include <smem/topic.h>
#include <smem/service.h>

#endif
