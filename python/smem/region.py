"""Region: a named, sealed, mapped block of shared memory (smem_region, the seed's
SharedBuffer), with no lock: the bytes are a memoryview."""
from __future__ import annotations

import ctypes
from typing import Optional

from . import _lib
from ._handle import Handle
from ._lib import lib


class Region(Handle):
    """A named region of shared memory.

    Create one with :meth:`create` or open an existing one with :meth:`open`; use it as a
    context manager (or call :meth:`close`). :attr:`buf` is a zero-copy memoryview of the
    bytes (read-only when opened with ``readonly=True``).
    """

    @classmethod
    def create(cls, name: str, size: int, *, mode: int = 0o600, persist: bool = False,
               broker: Optional[str] = None) -> "Region":
        """Create a zeroed region of @size bytes under @name.

        @mode: permission bits of the name; @persist: the name outlives its holders until
        :func:`smem.unlink`; @broker: broker address (None: $SMEM_BROKER or the default).
        Raises ExistsError, InvalidArgumentError, AccessError, BrokerUnavailableError.
        """
        flags = _lib.SMEM_PERSIST if persist else 0
        opts = _lib.make_opts(broker, mode, flags)
        p = ctypes.c_void_p()
        _lib.check(lib.smem_region_create(_lib.encode_name(name), size, ctypes.byref(opts),
                                          ctypes.byref(p)), name)
        return cls._wrap(p.value, name, False)

    @classmethod
    def open(cls, name: str, *, readonly: bool = False, broker: Optional[str] = None) -> "Region":
        """Open the region @name (mapped read-only with @readonly).

        Raises NotFoundError, AccessError, WrongKindError (another kind of object),
        ProtocolError (corrupt).
        """
        opts = _lib.make_opts(broker, 0, _lib.SMEM_RDONLY if readonly else 0)
        p = ctypes.c_void_p()
        _lib.check(lib.smem_region_open(_lib.encode_name(name), ctypes.byref(opts),
                                        ctypes.byref(p)), name)
        return cls._wrap(p.value, name, readonly)

    @classmethod
    def _wrap(cls, ptr: int, name: str, readonly: bool) -> "Region":
        self = cls.__new__(cls)
        self._adopt(ptr, lib.smem_region_close, name)
        self._readonly = readonly
        return self

    @property
    def size(self) -> int:
        """Size in bytes."""
        return lib.smem_region_size(self._p())

    @property
    def is_owner(self) -> bool:
        """True for the handle that created the region."""
        return bool(lib.smem_region_is_owner(self._p()))

    @property
    def shutting_down(self) -> bool:
        """True once the creator has closed its handle."""
        return bool(lib.smem_region_shutting_down(self._p()))

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def buf(self) -> memoryview:
        """The bytes, zero-copy (format 'B'). Release it (or drop it) before close()."""
        p = self._p()
        return self._view(lib.smem_region_data(p), lib.smem_region_size(p), self._readonly)
