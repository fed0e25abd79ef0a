/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "internal.h"

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
	case EACCES:		return "permission denied";
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
	case EPERM:		return "operation not permitted";
	case EAGAIN:		return "try again";
	case EBADMSG:		return "malformed message";
	default:		return strerror(err);
	}
}
