"""Ring: a lock-free multi-producer multi-consumer ring of fixed-size nodes between processes
(smem_ring, the seed's CircularBuffer). Each message is read exactly once, FIFO per producer."""
from __future__ import annotations

import array
import ctypes
import threading
from itertools import accumulate
from typing import Any, Dict, List, Optional

from . import _lib
from ._handle import Handle, Lease, retire_view as _retire_view
from ._lib import RingSlot, RingStats, lib
from .errors import error_from
from .poll import Poller, until

_sliced = _lib.sliced
_nowait_read = _lib.nowait_ring_read  # GIL held: timeout 0 only
_nowait_write = _lib.nowait_ring_write
_nowait_read_many = _lib.nowait_ring_read_many
_nowait_write_many = _lib.nowait_ring_write_many
_NOROOM = -110  # -ETIMEDOUT: what a timeout-0 call says of an empty (full) ring
_fast_read_many = _lib.fast_ring_read_many
_fast_write_many = _lib.fast_ring_write_many
_c_void_p = ctypes.c_void_p
_SIZE_T = "L" if ctypes.sizeof(ctypes.c_size_t) == array.array("L").itemsize else "Q"
_SIZE_T_BYTES = ctypes.sizeof(ctypes.c_size_t)
_ONLY_BYTES = {bytes}
_BATCH_BYTES = 1 << 20  # read_many()'s buffer holds at most this much (or one node)
_ring_write = lib.smem_ring_write
_ring_read = lib.smem_ring_read
_fast_write = _lib.fast_ring_write  # no argtypes: exact ctypes arguments (_lib._fast)
_fast_read = _lib.fast_ring_read
_c_size_t = ctypes.c_size_t
_SCRATCH_MAX = 256 * 1024  # read() copies through a per-thread node up to this size


def _ms(timeout: float) -> int:
    """_lib.timeout_ms() of a timeout that is not None, whole seconds inline (callers test
    None themselves: per message, a Python call costs as much as the foreign call)."""
    if type(timeout) is int and 0 <= timeout <= 2147483:
        return timeout * 1000
    return _lib.timeout_ms(timeout)


class ReadView(Lease):
    """A message read zero-copy (:meth:`Ring.read_view`): ``view`` is a read-only memoryview
    of the node in shared memory, valid until the with block ends, when the view is released
    and the node given back to the writers. Copy what must outlive the block (bytes(view),
    numpy.array(...)): if a numpy array or a slice of the view still exists then, the exit
    raises BufferError (that array stays valid memory, but sees later messages)."""

    __slots__ = ("_ring", "_slot", "view")

    def __init__(self, ring: "Ring", slot: RingSlot) -> None:
        self._ring = ring
        self._slot = slot
        self.view = ring._view(slot.data, slot.len, True) if slot.len else memoryview(b"")

    def __len__(self) -> int:
        return self._slot.len

    def release(self) -> None:
        """Give the node back to the writers and release the view (idempotent)."""
        if self._slot is None:
            return
        slot, self._slot = self._slot, None
        _lib.check(lib.smem_ring_release(self._ring._p(), ctypes.byref(slot)), self._ring._name)
        if not _retire_view(self.view):
            raise BufferError("a view of a ring message outlives its read_view() block")

    def __enter__(self) -> memoryview:
        return self.view

    _end = release


class WriteSlot(Lease):
    """A node reserved for a zero-copy write (:meth:`Ring.reserve_write`): fill ``buf`` (a
    writable memoryview of ``node_size`` bytes), then :meth:`commit` the length. A with block
    that ends without a commit (or with an exception) aborts: the node carries no message.
    Views of ``buf`` must not outlive the commit (a numpy array over it would write into a
    node that a reader now owns): one still referenced then makes commit raise BufferError
    after publishing (see ReadView)."""

    __slots__ = ("_ring", "_slot", "buf")

    def __init__(self, ring: "Ring", slot: RingSlot) -> None:
        self._ring = ring
        self._slot = slot
        self.buf = ring._view(slot.data, slot.cap, False)

    def commit(self, length: int) -> None:
        """Publish the first @length bytes of ``buf`` as one message."""
        self._finish(lambda p, s: lib.smem_ring_commit(p, s, length))

    def abort(self) -> None:
        """Give the node back without a message (idempotent)."""
        if self._slot is not None:
            self._finish(lib.smem_ring_abort)

    def _finish(self, fn: Any) -> None:
        if self._slot is None:
            raise ValueError("slot already committed or aborted")
        slot, self._slot = self._slot, None
        _lib.check(fn(self._ring._p(), ctypes.byref(slot)), self._ring._name)
        if not _retire_view(self.buf):
            raise BufferError("a view of a ring slot outlives its commit or abort")

    def __enter__(self) -> "WriteSlot":
        return self

    _end = abort


class Ring(Handle):
    """A named lock-free ring of ``node_count`` nodes of ``node_size`` bytes.

    Messages are up to ``node_size`` bytes. Blocking calls take a timeout in seconds (None:
    forever, 0: try once) and release the GIL while they wait. :meth:`fileno` gives an eventfd
    for event loops; :meth:`aread` uses it with asyncio.
    """

    @classmethod
    def create(cls, name: str, node_count: int, node_size: int, *, mode: int = 0o600,
               persist: bool = False, broker: Optional[str] = None) -> "Ring":
        """Create a ring of @node_count (>= 2) nodes of @node_size (> 0) bytes under @name.
        Raises ExistsError, InvalidArgumentError, AccessError, BrokerUnavailableError."""
        opts = _lib.make_opts(broker, mode, _lib.SMEM_PERSIST if persist else 0)
        p = ctypes.c_void_p()
        _lib.check(lib.smem_ring_create(_lib.encode_name(name), node_count, node_size,
                                        ctypes.byref(opts), ctypes.byref(p)), name)
        return cls._wrap(p.value, name)

    @classmethod
    def open(cls, name: str, *, broker: Optional[str] = None) -> "Ring":
        """Open the ring @name (its geometry comes from shared memory). Raises NotFoundError,
        WrongKindError (another kind of object), ProtocolError (corrupt), SmemError EUSERS
        (256 handles take part)."""
        opts = _lib.make_opts(broker)
        p = ctypes.c_void_p()
        _lib.check(lib.smem_ring_open(_lib.encode_name(name), ctypes.byref(opts),
                                      ctypes.byref(p)), name)
        return cls._wrap(p.value, name)

    @classmethod
    def _wrap(cls, ptr: int, name: str) -> "Ring":
        self = cls.__new__(cls)
        self._adopt(ptr, lib.smem_ring_close, name)
        self._node_size = lib.smem_ring_node_size(ptr)
        self._node_count = lib.smem_ring_node_count(ptr)
        self._tls = threading.local()  # read()'s scratch node, one per thread
        self._cp = ctypes.c_void_p(ptr)  # the handle for the fast calls
        self._cap = _c_size_t(self._node_size)
        return self

    @property
    def node_count(self) -> int:
        return self._node_count

    @property
    def node_size(self) -> int:
        """The largest message, in bytes."""
        return self._node_size

    def write(self, data: Any, timeout: Optional[float] = None) -> None:
        """Copy @data (bytes or any contiguous buffer) into the next node as one message,
        waiting up to @timeout seconds for room. Raises MessageSizeError (longer than a node:
        nothing written), TimeoutExpired, ShutdownError (the creator closed the ring),
        ProtocolError."""
        # The hot path: a few hundred nanoseconds of Python around the C call matter here,
        # hence the calls without argtypes, the cached handle (self._cp), and a first try
        # that cannot wait, made with the GIL held; only a full ring takes the waiting call.
        ms = -1 if timeout is None else _ms(timeout)
        if self._ptr is None:
            self._p()
        if type(data) is bytes:
            n = _c_size_t(len(data))
            rc = _nowait_write(self._cp, data, n, 0)
            if rc == _NOROOM and ms:
                rc = _sliced(_fast_write, ms, self._cp, data, n)
        else:
            with _lib.BufferRef(data) as ref:
                rc = _sliced(_fast_write, ms, self._cp, ctypes.c_void_p(ref.ptr),
                             _c_size_t(ref.nbytes))
        if rc:
            raise error_from(rc, filename=self._name)

    def write_many(self, messages: Any, timeout: Optional[float] = None) -> int:
        """Write each of @messages (a sequence of bytes or buffers) in order, each waiting up
        to @timeout seconds for room; returns how many were written. On an error the
        exception carries ``written``, the count written before it. One C call
        (smem_ring_write_many) moves as many as the ring has room for: far fewer Python
        steps per message than write() in a loop."""
        ms = -1 if timeout is None else _ms(timeout)
        if self._ptr is None:
            self._p()
        if type(messages) is not list and type(messages) is not tuple:
            messages = list(messages)
        count = len(messages)
        if not count:
            return 0
        blob = b"".join(messages)  # any buffer-protocol objects; one copy, in C
        if set(map(type, messages)) == _ONLY_BYTES:
            lens = array.array(_SIZE_T, map(len, messages))
        else:  # len() of a multi-byte or multi-dimensional buffer is not its size
            lens = array.array(_SIZE_T, [memoryview(m).nbytes for m in messages])
        cp, n, off = self._cp, 0, 0
        with _lib.BufferRef(blob) as ref:
            lens_p = lens.buffer_info()[0]
            while n < count:
                args = (cp, _c_void_p(ref.ptr + off), _c_void_p(lens_p + n * _SIZE_T_BYTES),
                        _c_size_t(count - n))
                rc = _nowait_write_many(*args, 0)  # as write()
                if rc == _NOROOM and ms:
                    rc = _sliced(_fast_write_many, ms, *args)
                if rc < 0:
                    err = error_from(rc, filename=self._name)
                    err.written = n  # type: ignore[attr-defined]
                    raise err
                off += sum(lens[n:n + rc]) if rc < count - n else 0
                n += rc
        return n

    def read(self, timeout: Optional[float] = None) -> bytes:
        """The next message as bytes, waiting up to @timeout seconds. Raises TimeoutExpired,
        ShutdownError (closed by its creator and drained), ProtocolError."""
        ms = -1 if timeout is None else _ms(timeout)
        if self._ptr is None:
            self._p()
        if self._node_size > _SCRATCH_MAX:
            return self._read_reserved(self._ptr, ms)
        # Small nodes: one C call into this thread's scratch node, then one copy into bytes
        # (the zero-copy reserve/release pair costs two more foreign calls). A first try
        # that cannot wait, with the GIL held; only an empty ring takes the waiting call.
        scratch = self._tls.__dict__.get("scratch") or self._scratch()
        n = _nowait_read(self._cp, scratch[0], self._cap, 0)
        if n == _NOROOM and ms:
            n = _sliced(_fast_read, ms, self._cp, scratch[0], self._cap)
        if n < 0:
            raise error_from(n, filename=self._name)
        return scratch[1][:n].tobytes()

    def read_many(self, max_messages: int, timeout: Optional[float] = None) -> List[bytes]:
        """Up to @max_messages messages as bytes: waits up to @timeout seconds for the first,
        then takes those already there without waiting, in one C call
        (smem_ring_read_many). Raises TimeoutExpired (none came) and the errors of
        :meth:`read` (only when nothing was read: an error after some messages ends the
        batch, and the next call raises it)."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages!r}")
        ms = -1 if timeout is None else _ms(timeout)
        if self._ptr is None:
            self._p()
        if self._node_size > _SCRATCH_MAX:  # no batch buffer of such nodes: one at a time
            return [self._read_reserved(self._ptr, ms)]
        batch = self._tls.__dict__.get("batch")
        if batch is None or batch[3] < max_messages:
            batch = self._batch_scratch(max_messages)
        buf, mv, lens, _, lens_p, cap = batch
        most = _c_size_t(max_messages)
        n = _nowait_read_many(self._cp, buf, cap, lens_p, most, 0)  # as read()
        if n == _NOROOM and ms:
            n = _sliced(_fast_read_many, ms, self._cp, buf, cap, lens_p, most)
        if n < 0:
            raise error_from(n, filename=self._name)
        if n == 1:
            return [mv[:lens[0]].tobytes()]
        # One copy of the batch into bytes, then a slice per message (a bytes slice is one
        # allocation and a memcpy, cheaper than a memoryview slice and its tobytes()).
        used = lens[:n]
        blob = mv[:sum(used)].tobytes()
        ends = list(accumulate(used))
        return [blob[a:b] for a, b in zip([0] + ends, ends)]

    def _batch_scratch(self, most: int) -> Any:
        """read_many()'s per-thread buffers: room for @most messages of a node each, at most
        _BATCH_BYTES (the C call stops before a message that does not fit), and the lengths."""
        cap = max(self._node_size, min(most * self._node_size, _BATCH_BYTES))
        buf = ctypes.create_string_buffer(cap)
        lens = array.array(_SIZE_T, bytes(_SIZE_T_BYTES * most))
        batch = (buf, memoryview(buf).cast("B"), lens, most,
                 _c_void_p(lens.buffer_info()[0]), _c_size_t(cap))
        self._tls.batch = batch
        return batch

    def _scratch(self) -> Any:
        scratch = getattr(self._tls, "scratch", None)
        if scratch is None:
            buf = ctypes.create_string_buffer(self._node_size)
            scratch = self._tls.scratch = (buf, memoryview(buf).cast("B"))
        return scratch

    def _read_reserved(self, p: int, ms: int) -> bytes:
        slot = RingSlot()
        rc = _sliced(lib.smem_ring_reserve_read, ms, p, ctypes.byref(slot))
        if rc:
            raise error_from(rc, filename=self._name)
        try:
            return ctypes.string_at(slot.data, slot.len) if slot.len else b""
        finally:
            _lib.check(lib.smem_ring_release(p, ctypes.byref(slot)), self._name)

    def read_into(self, buf: Any, timeout: Optional[float] = None) -> int:
        """Consume the next message into the writable buffer @buf; returns its length.
        Raises MessageSizeError if @buf is smaller than the message (nothing consumed: see
        :meth:`next_len`), and the errors of :meth:`read`."""
        ms = _lib.timeout_ms(timeout)
        with _lib.BufferRef(buf, writable=True) as ref:
            n = _sliced(_ring_read, ms, self._p(), ref.ptr, ref.nbytes)
        if n < 0:
            raise error_from(n, filename=self._name)
        return n

    def read_view(self, timeout: Optional[float] = None) -> ReadView:
        """The next message, zero-copy: ``with ring.read_view() as mv: ...`` (see ReadView).
        Errors as :meth:`read`."""
        return self._reserve(lib.smem_ring_reserve_read, lib.smem_ring_release, ReadView,
                             timeout)

    def reserve_write(self, timeout: Optional[float] = None) -> WriteSlot:
        """Reserve the next node for a zero-copy write (see WriteSlot); errors as
        :meth:`write`. Messages become visible in reservation order."""
        return self._reserve(lib.smem_ring_reserve_write, lib.smem_ring_abort, WriteSlot,
                             timeout)

    def _reserve(self, reserve: Any, undo: Any, wrap: Any, timeout: Optional[float]) -> Any:
        slot = RingSlot()
        rc = _sliced(reserve, _lib.timeout_ms(timeout), self._p(), ctypes.byref(slot))
        if rc:
            raise error_from(rc, filename=self._name)
        try:
            return wrap(self, slot)
        except BaseException:  # the node must not stay reserved by nobody
            undo(self._p(), ctypes.byref(slot))
            raise

    def next_len(self) -> Optional[int]:
        """Length of the next message without consuming it, or None if none is ready."""
        n = lib.smem_ring_next_len(self._p())
        if n == -11:  # EAGAIN
            return None
        return _lib.check(n, self._name)

    def fileno(self) -> int:
        """An eventfd (owned by the ring, closed with it) readable when messages are there to
        read: edge-triggered, so read the eventfd, then drain the ring with ``read(0)``. The
        first call starts the library's helper thread; :meth:`poller` needs no thread."""
        return _lib.check(lib.smem_ring_fd(self._p()), self._name)

    def poller(self, write: bool = False) -> Poller:
        """A :class:`smem.Poller` whose fd becomes readable when the ring has a message to
        read (or, with @write, room to write), with no helper thread where io_uring allows:
        ``loop.add_reader(p.fileno(), ...)`` after ``p.arm()`` returned False."""
        return Poller._open(self, "ring", 1 if write else 0)

    def _open_poller(self) -> Poller:
        return self.poller()

    async def aread(self, timeout: Optional[float] = None) -> bytes:
        """The next message, awaiting it on the running asyncio loop (a :meth:`poller` with
        loop.add_reader) instead of blocking a thread. Errors as :meth:`read`."""
        return await until(self, lambda: self.read(0), timeout)

    def set_spin(self, spin_ns: Optional[int]) -> None:
        """How long blocking calls spin before sleeping: None restores the adaptive default,
        0 sleeps at once (oversubscribed cores), else that many nanoseconds."""
        lib.smem_ring_set_spin(self._p(), 0xFFFFFFFF if spin_ns is None else spin_ns)

    def stats(self) -> Dict[str, int]:
        """Per-handle counters and ring-wide recovery counters (struct smem_ring_stats)."""
        s = RingStats()
        _lib.check(lib.smem_ring_stats(self._p(), ctypes.byref(s)), self._name)
        return {f: getattr(s, f) for f, _ in RingStats._fields_ if f != "reserved"}
