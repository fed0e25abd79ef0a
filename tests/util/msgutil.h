/* SPDX-License-Identifier: MIT */
/* Raw socket helpers for tests and harnesses that speak the broker's wire by hand. */
#ifndef SMEM_MSGUTIL_H
#define SMEM_MSGUTIL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Send @len bytes of @buf as one message on @sock, with @fd attached (SCM_RIGHTS) unless it
 * is negative. MSG_NOSIGNAL. Returns what sendmsg(2) returns (errno set on -1).
 */
ssize_t t_send_fd(int sock, const void *buf, size_t len, int fd);

#endif
