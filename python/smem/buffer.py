"""Buffer: bytes shared by name with a robust reader-writer lock (smem_buffer, the seed's
BufferReadWrite and BufferWithLocks)."""
from __future__ import annotations

import ctypes
import struct
from typing import Any, Optional, Tuple, Type, TypeVar

from . import _lib
from ._handle import owner_dead_value
from ._lib import lib
from ._locked import LockedHandle, open_flags
from .errors import error_from

_CT = TypeVar("_CT")


class Buffer(LockedHandle):
    """A named block of bytes with bounds-checked, locked reads and writes.

    Each plain :meth:`read`/:meth:`write` takes the lock for its duration (read lock to read,
    write lock to write) with the handle's :attr:`lock_timeout` (0.1 s unless set), unless the
    calling thread already holds it through this handle (``with buf.lock_write(): ...`` then
    many writes). With ``raw=True`` plain calls take no lock. :attr:`buf` gives the bytes
    zero-copy, for use under the lock.

    A write or read whose lock had to be recovered from a dead holder raises OwnerDeadError
    AFTER copying (a read's bytes are in its ``value``), as the C call returns -EOWNERDEAD.
    """

    _kind = "buffer"

    @classmethod
    def create(cls, name: str, size: int, *, mode: int = 0o600, persist: bool = False,
               raw: bool = False, lock_timeout: Optional[float] = None,
               broker: Optional[str] = None) -> "Buffer":
        """Create a zeroed buffer of @size bytes under @name.

        @lock_timeout: seconds that plain calls wait for the lock (None: the library's
        100 ms). Raises ExistsError, InvalidArgumentError, AccessError, BrokerUnavailableError.
        """
        opts = _lib.make_opts(broker, mode, open_flags(raw=raw, persist=persist))
        p = ctypes.c_void_p()
        _lib.check(lib.smem_buffer_create(_lib.encode_name(name), size, ctypes.byref(opts),
                                          ctypes.byref(p)), name)
        self = cls.__new__(cls)
        self._finish_open(p.value, name, False, lock_timeout)
        return self

    @classmethod
    def open(cls, name: str, *, readonly: bool = False, raw: bool = False,
             lock_timeout: Optional[float] = None, broker: Optional[str] = None) -> "Buffer":
        """Open the buffer @name; its size comes from shared memory.

        A @readonly handle maps the bytes read-only: its reads take no lock, its writes and
        lock calls raise AccessError. Raises NotFoundError, AccessError, WrongKindError
        (another kind of object), ProtocolError (corrupt).
        """
        opts = _lib.make_opts(broker, 0, open_flags(readonly=readonly, raw=raw))
        p = ctypes.c_void_p()
        _lib.check(lib.smem_buffer_open(_lib.encode_name(name), ctypes.byref(opts),
                                        ctypes.byref(p)), name)
        self = cls.__new__(cls)
        self._finish_open(p.value, name, readonly, lock_timeout)
        return self

    @property
    def size(self) -> int:
        """Size in bytes (a private copy: a peer cannot change it)."""
        return lib.smem_buffer_size(self._p())

    def __len__(self) -> int:
        return self.size

    @property
    def buf(self) -> memoryview:
        """The bytes, zero-copy (format 'B'), for use under the lock. Release before close()."""
        p = self._p()
        return self._view(lib.smem_buffer_data(p), lib.smem_buffer_size(p), self._readonly)

    def write(self, offset: int, data: Any) -> None:
        """Copy @data (bytes, or any contiguous buffer: bytearray, memoryview, numpy array,
        ctypes structure) to @offset. Raises RangeError (nothing copied), TimeoutExpired,
        AccessError (read-only handle), OwnerDeadError (copied)."""
        ptr, n, ref = _lib.readable_buffer(data)
        try:
            rc = lib.smem_buffer_write(self._p(), offset, ptr, n)
        finally:
            if ref is not None:
                ref.release()
        _lib.check(rc, self._name)

    def read_into(self, offset: int, out: Any) -> None:
        """Fill the writable buffer @out (bytearray, memoryview, numpy array, ctypes object)
        with the bytes at @offset; errors as :meth:`write`."""
        with _lib.BufferRef(out, writable=True) as ref:
            rc = lib.smem_buffer_read(self._p(), offset, ref.ptr, ref.nbytes)
        if rc < 0:
            raise owner_dead_value(error_from(rc, filename=self._name), out)

    def read(self, offset: int, size: int) -> bytes:
        """@size bytes from @offset, as bytes; errors as :meth:`write`."""
        tmp = ctypes.create_string_buffer(size) if size else None
        rc = lib.smem_buffer_read(self._p(), offset, tmp, size)
        value = tmp.raw if tmp is not None else b""
        if rc < 0:
            raise owner_dead_value(error_from(rc, filename=self._name), value)
        return value

    def read_struct(self, offset: int, ctype: Type[_CT]) -> _CT:
        """A ctypes value or structure of type @ctype read from @offset (a copy)."""
        out = ctype()
        self.read_into(offset, out)
        return out

    def pack(self, offset: int, fmt: str, *values: Any) -> None:
        """Write @values packed with struct format @fmt at @offset (one locked copy)."""
        self.write(offset, struct.pack(fmt, *values))

    def unpack(self, offset: int, fmt: str) -> Tuple[Any, ...]:
        """Read and unpack struct format @fmt at @offset (one locked copy)."""
        return struct.unpack(fmt, self.read(offset, struct.calcsize(fmt)))
