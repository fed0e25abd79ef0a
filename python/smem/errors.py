"""Errors: every failure of the C library is raised as an OSError subclass.

The C library returns a negative errno; :func:`error_from` turns it into the most specific
class below, carrying ``errno`` and smem_strerror()'s message as ``strerror``. Each class also
derives from the matching built-in (``TimeoutError``, ``FileNotFoundError``, ...), so code that
already catches those keeps working.
"""
from __future__ import annotations

import errno as _errno
from typing import Dict, Optional, Type


class SmemError(OSError):
    """Base class of every smem error: ``errno`` and ``strerror`` as smem reports them, and
    ``detail``: smem_last_error() when the failure involved the broker (the address, the name
    and why), else whatever the thread's last such failure was, or ""."""

    detail: str = ""


class InvalidArgumentError(SmemError, ValueError):
    """EINVAL: a bad argument (name, size, geometry, timeout)."""


class RangeError(SmemError, IndexError):
    """ERANGE: an offset or index outside the object."""


class NotFoundError(SmemError, FileNotFoundError):
    """ENOENT: no object has this name."""


class ExistsError(SmemError, FileExistsError):
    """EEXIST: the name is taken."""


class AccessError(SmemError, PermissionError):
    """EACCES: the broker refused the name (its mode, or its owner for an unlink), or a write
    through a read-only handle; EPERM: the broker's socket is not the caller's to use, or the
    broker runs as an untrusted uid (``detail`` says which)."""


class TimeoutExpired(SmemError, TimeoutError):
    """ETIMEDOUT: the timeout expired before the operation could complete."""


class MessageSizeError(SmemError):
    """EMSGSIZE: a message larger than a ring node, or than the caller's buffer."""


class ShutdownError(SmemError, BrokenPipeError):
    """ESHUTDOWN: the owner (or the RPC peer) closed the object."""


class ProtocolError(SmemError):
    """EPROTO: shared memory that fails validation (corrupt), or an Array whose recorded
    dtype or shape is not the one expected."""


class WrongKindError(SmemError):
    """EMEDIUMTYPE: the name holds another kind of object (a ring opened as a buffer, ...)."""


class OwnerDeadError(SmemError):
    """EOWNERDEAD: a lock whose previous holder died was recovered; data may be inconsistent.

    For Buffer/Array reads and writes the copy WAS done: ``value`` holds what a read returned
    (None for a write).
    """

    value: object = None


class PeerResetError(SmemError, ConnectionResetError):
    """ECONNRESET: the peer process died."""


class BrokerUnavailableError(SmemError, ConnectionRefusedError):
    """ECONNREFUSED: no broker answers (and auto-start is off or failed); from
    ServiceClient.connect(), also: the service's server died or closed."""


class BusyError(SmemError):
    """EBUSY: an RPC channel that already has a master and a slave."""


class NoHandlerError(SmemError, NotImplementedError):
    """ENOSYS: the RPC peer has no handler (or a kernel feature is missing)."""


_BY_ERRNO: Dict[int, Type[SmemError]] = {
    _errno.EINVAL: InvalidArgumentError,
    _errno.ERANGE: RangeError,
    _errno.ENOENT: NotFoundError,
    _errno.EEXIST: ExistsError,
    _errno.EACCES: AccessError,
    _errno.EPERM: AccessError,
    _errno.ETIMEDOUT: TimeoutExpired,
    _errno.EMSGSIZE: MessageSizeError,
    _errno.ESHUTDOWN: ShutdownError,
    _errno.EPROTO: ProtocolError,
    _errno.EMEDIUMTYPE: WrongKindError,
    _errno.EOWNERDEAD: OwnerDeadError,
    _errno.ECONNRESET: PeerResetError,
    _errno.ECONNREFUSED: BrokerUnavailableError,
    _errno.EBUSY: BusyError,
    _errno.ENOSYS: NoHandlerError,
}


def error_class(err: int) -> Type[SmemError]:
    """The class raised for errno @err (positive or negative)."""
    return _BY_ERRNO.get(abs(err), SmemError)


def error_from(err: int, message: Optional[str] = None, filename: Optional[str] = None) -> SmemError:
    """An exception for the negative (or positive) errno @err.

    @message defaults to smem_strerror(err); @filename is the object's name, when there is one.
    """
    if message is None:
        from ._lib import strerror

        message = strerror(err)
    if filename is None:
        return error_class(err)(abs(err), message)
    return error_class(err)(abs(err), message, filename)
