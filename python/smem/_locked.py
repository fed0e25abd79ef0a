"""The robust reader-writer lock that Buffer and Array share (see smem/buffer.h): lock
context managers, the plain calls' timeout, and the accessors both kinds have."""
from __future__ import annotations

import errno
from typing import Any, Optional

from . import _lib
from ._handle import Handle
from ._lib import lib


class LockHold:
    """A lock held through a handle: a context manager that unlocks on exit.

    Entering gives ``owner_died``: True when the lock was recovered from a holder that died
    (EOWNERDEAD: the lock IS held, but the data may be inconsistent), False otherwise.
    """

    __slots__ = ("_obj", "owner_died", "_held")

    def __init__(self, obj: "LockedHandle", owner_died: bool) -> None:
        self._obj = obj
        self.owner_died = owner_died
        self._held = True

    def release(self) -> None:
        """Unlock (idempotent)."""
        if self._held:
            self._held = False
            self._obj.unlock()

    def __enter__(self) -> bool:
        return self.owner_died

    def __exit__(self, *exc: Any) -> None:
        self.release()


class LockedHandle(Handle):
    """Buffer and Array: a handle with a robust reader-writer lock."""

    _kind = ""  # "buffer" or "array": the C function prefix

    def _fn(self, op: str) -> Any:
        return getattr(lib, f"smem_{self._kind}_{op}")

    def _finish_open(self, ptr: int, name: str, readonly: bool,
                     lock_timeout: Optional[float]) -> None:
        self._adopt(ptr, self._fn("close"), name)
        self._readonly = readonly
        if lock_timeout is not None:
            self.lock_timeout = lock_timeout

    def _acquire(self, op: str, timeout: Optional[float]) -> LockHold:
        rc = _lib.sliced(self._fn(op), _lib.timeout_ms(timeout), self._p())
        if rc == -errno.EOWNERDEAD:
            return LockHold(self, True)
        _lib.check(rc, self._name)
        return LockHold(self, False)

    def lock_read(self, timeout: Optional[float] = None) -> LockHold:
        """Take the lock for reading within @timeout seconds (None: forever, 0: try once).

        Use as ``with buf.lock_read() as owner_died: ...``. While the calling thread holds the
        lock through this handle, plain reads take no lock again. Raises TimeoutExpired,
        AccessError (read-only handle), SmemError (EDEADLK: this thread holds it already).
        The GIL is released while waiting.
        """
        return self._acquire("lock_read", timeout)

    def lock_write(self, timeout: Optional[float] = None) -> LockHold:
        """Take the lock for writing (one writer, no readers); as :meth:`lock_read`."""
        return self._acquire("lock_write", timeout)

    def unlock(self) -> None:
        """Release what the calling thread holds (AccessError if it holds nothing)."""
        _lib.check(self._fn("unlock")(self._p()), self._name)

    @property
    def lock_timeout(self) -> Optional[float]:
        """Timeout of plain read/write calls, in seconds (None: forever)."""
        ms = _lib.check(self._fn("timeout")(self._p()), self._name)
        return None if ms < 0 else ms / 1000.0

    @lock_timeout.setter
    def lock_timeout(self, timeout: Optional[float]) -> None:
        _lib.check(self._fn("set_timeout")(self._p(), _lib.timeout_ms(timeout)), self._name)

    @property
    def is_owner(self) -> bool:
        """True for the handle that created the object."""
        return bool(self._fn("is_owner")(self._p()))

    @property
    def shutting_down(self) -> bool:
        """True once the creator has closed its handle."""
        return bool(self._fn("shutting_down")(self._p()))

    @property
    def readonly(self) -> bool:
        return self._readonly


def open_flags(readonly: bool = False, raw: bool = False, persist: bool = False) -> int:
    """SMEM_* flags for the keyword arguments of create/open."""
    return ((_lib.SMEM_RDONLY if readonly else 0) | (_lib.SMEM_RAW if raw else 0)
            | (_lib.SMEM_PERSIST if persist else 0))
