/* SPDX-License-Identifier: MIT */
/*
 * Errors for people: the names of smem's errno values (smem_strerror), the detail of a
 * thread's last failure that involved the broker (smem_last_error: what failed, at which
 * address, and why), and the names of object kinds those messages use.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/*
 * One per thread, so that concurrent failures do not overwrite each other's detail and no
 * lock is needed. Long enough for an address (108 bytes), a name (255) and a sentence.
 */
static __thread char t_last_error[640];

const char *smem_last_error(void)
{
	return t_last_error;
}

int smem__error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t_last_error, sizeof(t_last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *smem__kind_name(uint32_t kind)
{
	switch (kind) {
	case SMEM_KIND_REGION:		return "region";
	case SMEM_KIND_BUFFER:		return "buffer";
	case SMEM_KIND_ARRAY:		return "array";
	case SMEM_KIND_RING:		return "ring";
	case SMEM_KIND_RPC:		return "rpc";
	case SMEM_KIND_TOPIC:		return "topic";
	case SMEM_KIND_TOPIC_SAMPLES:	return "topic-samples";
	case SMEM_KIND_SERVICE:		return "service";
	default:			return "unknown";
	}
}

const char *smem_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:			return "success";
	case EINVAL:		return "invalid argument";
	case ERANGE:		return "offset or index outside the object";
	case ENOENT:		return "no such name";
	case EEXIST:		return "name already taken";
	case EACCES:		return "permission denied by the name's mode";
	case ETIMEDOUT:		return "timed out";
	case EMSGSIZE:		return "message larger than a node or the caller's buffer";
	case ESHUTDOWN:		return "the owner closed the object";
	case EPROTO:		return "shared memory or message failed validation";
	case EMEDIUMTYPE:	return "the name holds another kind of object";
	case EOWNERDEAD:	return "lock acquired; its previous holder died";
	case ECONNRESET:	return "the peer process died";
	case ENOSYS:		return "kernel feature missing";
	case ECONNREFUSED:	return "no broker answers";
	case EUSERS:		return "all participant slots are taken";
	case EBUSY:		return "busy";
	case EDQUOT:		return "per-user limit reached";
	case ENOMEM:		return "out of memory";
	case ENOTRECOVERABLE:	return "state not recoverable";
	case EDEADLK:		return "lock already held by this caller";
	case EPERM:		return "not permitted (the broker's socket, or an untrusted broker)";
	case EAGAIN:		return "try again";
	case EBADMSG:		return "malformed message";
	default:		return strerror(err);
	}
}
