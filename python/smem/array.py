"""Array: a numpy view of a named shared array (smem_array, the seed's SharedArray<T>), with
the dtype and shape recorded in shared memory and checked on open.

The C array records only its element size (checked by the library on open). A Python-created
array (``header=True``, the default) also records the numpy dtype and shape in a small header
at the start of the C array's data, in the .npy format's spirit:

    offset  size  field
    0       8     magic b"\\x93SMEMNPY"
    8       4     version, little-endian u32: 1
    12      4     data_offset, u32: bytes from the start of the C data to element 0; a multiple
                  of 64 and of the itemsize, >= 256
    16      4     desc_len, u32: length of the descriptor
    20      ...   descriptor: ASCII, a Python literal dict as in .npy files:
                  {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4)}
                  (descr is numpy.lib.format.dtype_to_descr(dtype)), then zero bytes

The C array's element size is the dtype's itemsize and its length counts the header's
elements too (data_offset / itemsize of them), so C's own element-size check still applies and a
C peer finds element i at byte data_offset + i * itemsize. What open() checks, on top of the
library's checks (kind, header, element size): the magic and version; data_offset (aligned, in
bounds); the descriptor parses as literals only (ast.literal_eval) into a dtype without Python
objects and a shape of non-negative ints; the dtype's itemsize equals the C element size; the
header plus prod(shape) elements fill the C array exactly; and, when given, the caller's dtype
and shape equal the recorded ones. Any failure raises ProtocolError (EPROTO), as the C
library's element-size check does; a header still all zero (the creator has not written it
yet) raises SmemError with errno EAGAIN. The values are read once, under the lock, into private
copies: a peer that rewrites the header later changes nothing for this handle.

``header=False`` makes or opens a plain C array (as SMEM_ARRAY_DECLARE's), which records no
dtype: open() then needs the dtype, checks its itemsize against the C element size, and takes
the shape from the caller (its product must be the C length) or (length,).
"""
from __future__ import annotations

import ast
import ctypes
import errno
import math
import struct
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._lib import lib
from ._locked import LockedHandle, open_flags
from .errors import error_from

MAGIC = b"\x93SMEMNPY"
VERSION = 1
_FIXED = struct.Struct("<8sIII")  # magic, version, data_offset, desc_len
_MIN_HEADER = 256
_MAX_HEADER = 1 << 20
_MAX_NDIM = 32

ShapeLike = Union[int, Sequence[int]]


def _norm_shape(shape: ShapeLike) -> Tuple[int, ...]:
    t = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if len(t) > _MAX_NDIM or any(not isinstance(d, (int, np.integer)) or d < 0 for d in t):
        raise ValueError(f"bad shape {shape!r}")
    return tuple(int(d) for d in t)


def _norm_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise TypeError(f"dtype {dt} holds Python objects: it cannot live in shared memory")
    if dt.itemsize == 0:
        raise TypeError(f"dtype {dt} has no size")
    return dt


def _header_bytes(itemsize: int, desc_len: int) -> int:
    unit = 64 * itemsize // math.gcd(64, itemsize)  # lcm: aligned, and whole elements
    need = max(_MIN_HEADER, _FIXED.size + desc_len)
    return -(-need // unit) * unit


def _descriptor(dt: np.dtype, shape: Tuple[int, ...]) -> bytes:
    d = {"descr": np.lib.format.dtype_to_descr(dt), "fortran_order": False, "shape": shape}
    return repr(d).encode("ascii")


def _proto_error(name: str, why: str) -> Exception:
    return error_from(-errno.EPROTO, f"array {name!r}: {why}", filename=name)


class Array(LockedHandle):
    """A named shared array seen as a numpy ndarray, zero-copy.

    :attr:`array` is an ndarray over the shared memory itself: writes through it are seen by
    every process at once, with no lock; take :meth:`lock_write`/:meth:`lock_read` around
    them where peers need consistency, or use :meth:`read`/:meth:`write`, which copy under the
    lock. Delete the ndarrays taken from :attr:`array` before :meth:`close` (BufferError
    otherwise): an ndarray must not outlive the mapping.
    """

    _kind = "array"

    @classmethod
    def create(cls, name: str, shape: ShapeLike, dtype: Any = np.float64, *,
               header: bool = True, mode: int = 0o600, persist: bool = False, raw: bool = False,
               lock_timeout: Optional[float] = None, broker: Optional[str] = None) -> "Array":
        """Create a zeroed array of @shape and @dtype under @name.

        @header: record dtype and shape (see the module's documentation); False makes a plain
        C array of prod(@shape) elements of dtype.itemsize bytes. Other options as
        Buffer.create. Raises ExistsError, InvalidArgumentError, AccessError, TypeError (an
        object dtype).
        """
        dt = _norm_dtype(dtype)
        shp = _norm_shape(shape)
        n = math.prod(shp)
        desc = _descriptor(dt, shp) if header else b""
        hdr = _header_bytes(dt.itemsize, len(desc)) if header else 0
        opts = _lib.make_opts(broker, mode, open_flags(raw=raw, persist=persist))
        p = ctypes.c_void_p()
        _lib.check(lib.smem_array_create(_lib.encode_name(name), dt.itemsize,
                                         hdr // dt.itemsize + n, ctypes.byref(opts),
                                         ctypes.byref(p)), name)
        self = cls.__new__(cls)
        self._finish_open(p.value, name, False, lock_timeout)
        self._dtype, self._shape, self._offset = dt, shp, hdr
        if header:
            try:
                image = bytearray(hdr)
                _FIXED.pack_into(image, 0, MAGIC, VERSION, hdr, len(desc))
                image[_FIXED.size:_FIXED.size + len(desc)] = desc
                # One locked copy: an opener that reads the header under the read lock sees
                # all of it or (if it comes first) zeros, never a part.
                buf = (ctypes.c_char * hdr).from_buffer(image)
                _lib.check(lib.smem_array_write_range(self._p(), 0, buf,
                                                      hdr // dt.itemsize), name)
            except BaseException:
                self.close()
                raise
        return self

    @classmethod
    def open(cls, name: str, dtype: Any = None, shape: Optional[ShapeLike] = None, *,
             header: bool = True, readonly: bool = False, raw: bool = False,
             lock_timeout: Optional[float] = None, broker: Optional[str] = None) -> "Array":
        """Open the array @name, checking @dtype and @shape (None: accept what is recorded).

        With ``header=False`` (a plain C array) @dtype is required. Raises NotFoundError,
        AccessError, WrongKindError (another kind of object), ProtocolError (a header that
        fails validation,
        or a dtype/shape other than the ones given), SmemError EAGAIN (header not written
        yet: retry).
        """
        want_dt = _norm_dtype(dtype) if dtype is not None else None
        want_shape = _norm_shape(shape) if shape is not None else None
        if not header and want_dt is None:
            raise TypeError("a plain C array (header=False) records no dtype: pass dtype")
        opts = _lib.make_opts(broker, 0, open_flags(readonly=readonly, raw=raw))
        p = ctypes.c_void_p()
        # The library checks the element size it recorded against the one we expect.
        _lib.check(lib.smem_array_open(_lib.encode_name(name),
                                       want_dt.itemsize if want_dt is not None else 0,
                                       ctypes.byref(opts), ctypes.byref(p)), name)
        self = cls.__new__(cls)
        self._finish_open(p.value, name, readonly, lock_timeout)
        try:
            if header:
                self._dtype, self._shape, self._offset = self._read_header(want_dt, want_shape)
            else:
                self._dtype, self._offset = want_dt, 0
                length = lib.smem_array_length(self._p())
                self._shape = want_shape if want_shape is not None else (length,)
                if math.prod(self._shape) != length:
                    raise _proto_error(name, f"shape {self._shape} does not hold its {length} "
                                             "elements")
        except BaseException:
            self.close()
            raise
        return self

    def _read_range(self, start: int, count: int) -> bytes:
        elem = lib.smem_array_elem_size(self._p())
        tmp = ctypes.create_string_buffer(count * elem)
        _lib.check(lib.smem_array_read_range(self._p(), start, tmp, count), self._name)
        return tmp.raw

    def _read_header(self, want_dt: Optional[np.dtype],
                     want_shape: Optional[Tuple[int, ...]]) -> Tuple[np.dtype, Tuple[int, ...], int]:
        name = self._name
        elem = lib.smem_array_elem_size(self._p())
        total = elem * lib.smem_array_length(self._p())
        if total < _MIN_HEADER:
            raise _proto_error(name, "too small to hold a dtype header (open with header=False)")
        raw = self._read_range(0, -(-_MIN_HEADER // elem))
        magic, version, offset, desc_len = _FIXED.unpack_from(raw)
        if magic != MAGIC:
            if raw[:_FIXED.size] == bytes(_FIXED.size):
                raise error_from(-errno.EAGAIN, f"array {name!r}: dtype header not written yet",
                                 filename=name)
            raise _proto_error(name, "no dtype header (a plain C array? open with header=False)")
        if version != VERSION:
            raise _proto_error(name, f"dtype header version {version}, expected {VERSION}")
        if (offset < _MIN_HEADER or offset > min(total, _MAX_HEADER) or offset % elem or
                offset % 64 or _FIXED.size + desc_len > offset):
            raise _proto_error(name, f"bad data offset {offset} or descriptor length {desc_len}")
        if len(raw) < offset:
            raw = self._read_range(0, offset // elem)
        try:
            desc = ast.literal_eval(raw[_FIXED.size:_FIXED.size + desc_len].decode("ascii"))
            dt = _norm_dtype(np.lib.format.descr_to_dtype(desc["descr"]))
            shape = _norm_shape(desc["shape"])
            if desc.get("fortran_order", False) is not False:
                raise ValueError("fortran order")
        except Exception as e:  # anything a hostile descriptor can raise
            raise _proto_error(name, f"bad descriptor ({type(e).__name__}: {e})") from None
        if dt.itemsize != elem:
            raise _proto_error(name, f"dtype {dt} is not {elem} bytes, the element size")
        if offset + math.prod(shape) * elem != total:
            raise _proto_error(name, f"shape {shape} of {dt} does not fill the array")
        if want_dt is not None and want_dt != dt:
            raise _proto_error(name, f"dtype {dt} recorded, {want_dt} expected")
        if want_shape is not None and want_shape != shape:
            raise _proto_error(name, f"shape {shape} recorded, {want_shape} expected")
        return dt, shape, offset

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    @property
    def size(self) -> int:
        """Number of elements (prod(shape))."""
        return math.prod(self._shape)

    @property
    def nbytes(self) -> int:
        return self.size * self._dtype.itemsize

    def __len__(self) -> int:
        return self._shape[0] if self._shape else 1

    @property
    def array(self) -> np.ndarray:
        """An ndarray over the shared memory (zero-copy; read-only for a read-only handle)."""
        p = self._p()
        mv = self._view(lib.smem_array_data(p) + self._offset, self.nbytes, self._readonly)
        return np.frombuffer(mv, dtype=self._dtype).reshape(self._shape)

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        """numpy.asarray(arr): the zero-copy view (a copy if @dtype differs or @copy)."""
        a = self.array
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def read(self) -> np.ndarray:
        """A copy of the whole array, taken under the read lock (as one locked C copy)."""
        out = np.empty(self._shape, self._dtype)
        start = self._offset // self._dtype.itemsize
        rc = lib.smem_array_read_range(self._p(), start, out.ctypes.data, self.size)
        if rc < 0:
            err = error_from(rc, filename=self._name)
            err.value = out  # type: ignore[attr-defined]  # EOWNERDEAD: copied
            raise err
        return out

    def write(self, values: Any) -> None:
        """Copy @values (broadcast to the array's shape and dtype) in, under the write lock."""
        src = np.ascontiguousarray(np.broadcast_to(np.asarray(values, self._dtype), self._shape))
        start = self._offset // self._dtype.itemsize
        _lib.check(lib.smem_array_write_range(self._p(), start, src.ctypes.data, self.size),
                   self._name)
