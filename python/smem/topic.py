"""Topic: publish/subscribe with zero-copy loans (smem_topic). A publisher loans a sample
buffer from the topic's pool, fills it in place (a writable memoryview, or a numpy view) and
publishes it; every subscriber sees every sample published after it joined, in order, as a
read-only view of the same memory (the kernel enforces read-only) that it releases when done.
"""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Optional, Tuple, Union

from . import _lib
from ._handle import Handle, Lease, retire_view as _retire_view
from ._lib import TopicConfig, TopicSample, TopicSubStats, lib
from .errors import error_from
from .poll import Poller, until

_sliced = _lib.sliced
_loan = lib.smem_topic_loan
_publish = lib.smem_topic_publish
_receive = lib.smem_topic_receive
_release = lib.smem_topic_release
_Shape = Union[int, Tuple[int, ...], None]


def _numpy_view(mv: memoryview, dtype: Any, shape: _Shape) -> Any:
    import numpy as np

    dt = np.dtype(dtype)
    count = -1 if shape is None else int(np.prod(shape))
    a = np.frombuffer(mv, dt, count)
    return a if shape is None else a.reshape(shape)


class Loan(Lease):
    """A sample loaned to fill (:meth:`Topic.loan`): write into ``buf`` (a writable memoryview
    of ``cap`` bytes) or :meth:`array`, then :meth:`publish`. A with block that ends without
    a publish (or with an exception) discards the loan. Views of ``buf`` (numpy arrays
    included) must be gone by the publish: subscribers then read the memory; one still
    referenced makes publish raise BufferError after publishing."""

    __slots__ = ("_topic", "_s", "buf")

    def __init__(self, topic: "Topic", s: TopicSample) -> None:
        self._topic = topic
        self._s = s
        self.buf = topic._view(s.data, s.cap, False)

    @property
    def cap(self) -> int:
        return self._s.cap

    def array(self, dtype: Any, shape: _Shape = None) -> Any:
        """A writable numpy view of the sample (del it before publishing)."""
        return _numpy_view(self.buf, dtype, shape)

    def publish(self, length: Optional[int] = None, timeout: Optional[float] = None) -> None:
        """Publish the first @length bytes (None: all of ``buf``), waiting up to @timeout
        seconds for room under the block policy (the loan stays ours on TimeoutExpired).
        Raises MessageSizeError, TimeoutExpired, ShutdownError, ProtocolError."""
        s = self._s
        if s is None:
            raise ValueError("sample already published or discarded")
        n = s.cap if length is None else length
        rc = _sliced(_publish, _lib.timeout_ms(timeout), self._topic._p(), ctypes.byref(s), n)
        if rc:
            raise error_from(rc, filename=self._topic._name)
        self._s = None
        if not _retire_view(self.buf):
            raise BufferError("a view of a loaned sample outlives its publish")

    def discard(self) -> None:
        """Give the sample back unpublished (idempotent)."""
        s, self._s = self._s, None
        if s is None:
            return
        _lib.check(lib.smem_topic_discard(self._topic._p(), ctypes.byref(s)), self._topic._name)
        if not _retire_view(self.buf):
            raise BufferError("a view of a loaned sample outlives its discard")

    def __enter__(self) -> "Loan":
        return self

    _end = discard


class Sample(Lease):
    """A received sample (:meth:`Subscriber.receive`): ``view`` is a read-only memoryview of
    the sample in shared memory, ``seq`` its position in the topic. Valid until released
    (the with block's end): copy what must outlive it (bytes(view), numpy.array(...)). If a
    numpy array or slice of the view still exists at release, release raises BufferError."""

    __slots__ = ("_sub", "_s", "view", "seq")

    def __init__(self, sub: "Subscriber", s: TopicSample) -> None:
        self._sub = sub
        self._s = s
        self.seq: int = s.seq
        self.view = sub._view(s.view, s.len, True) if s.len else memoryview(b"")

    def __len__(self) -> int:
        return len(self.view)

    def array(self, dtype: Any, shape: _Shape = None) -> Any:
        """A read-only numpy view of the sample (del it before the release)."""
        return _numpy_view(self.view, dtype, shape)

    def release(self) -> None:
        """Give the view back (idempotent)."""
        s, self._s = self._s, None
        if s is None:
            return
        _lib.check(_release(self._sub._p(), ctypes.byref(s)), self._sub._name)
        if not _retire_view(self.view):
            raise BufferError("a view of a topic sample outlives its release")

    def __enter__(self) -> memoryview:
        return self.view

    _end = release


class Topic(Handle):
    """A publisher of a named topic. :meth:`create` makes the topic (and its first
    publisher; its close shuts the topic down), :meth:`open` another publisher of a
    ``multi_publisher`` topic, :meth:`subscribe` a :class:`Subscriber`. Thread-safe: several
    threads may loan and publish at once."""

    @classmethod
    def create(cls, name: str, sample_size: int, depth: int = 16, *, history: int = 0,
               max_subscribers: int = 0, views: int = 0, loans: int = 0,
               overwrite: bool = False, multi_publisher: bool = False, mode: int = 0o600,
               broker: Optional[str] = None) -> "Topic":
        """Create topic @name of @sample_size-byte samples; @depth samples between publishers
        and the slowest subscriber (>= 2); @history samples a late joiner may get (< depth);
        @max_subscribers (0: 16), @views per subscriber (0: 1, at most 4), @loans at once
        (0: 4). @overwrite: the oldest unread samples are overwritten (counted as lost)
        instead of blocking publishers. @multi_publisher: other processes may
        :meth:`open` publishers (the samples memfd is then not sealed against writing)."""
        cfg = TopicConfig(sample_size=sample_size, depth=depth, history=history,
                          max_subscribers=max_subscribers, views=views, loans=loans,
                          policy=_lib.TOPIC_OVERWRITE if overwrite else _lib.TOPIC_BLOCK,
                          flags=_lib.TOPIC_MULTI_PUBLISHER if multi_publisher else 0)
        opts = _lib.make_opts(broker, mode, 0)
        p = ctypes.c_void_p()
        _lib.check(lib.smem_topic_create(_lib.encode_name(name), ctypes.byref(cfg),
                                         ctypes.byref(opts), ctypes.byref(p)), name)
        return cls._wrap(p.value, name, sample_size)

    @classmethod
    def open(cls, name: str, *, broker: Optional[str] = None) -> "Topic":
        """Another publisher of a multi-publisher topic. Raises NotFoundError, AccessError
        (a sealed topic: only its creator publishes), WrongKindError, ProtocolError."""
        opts = _lib.make_opts(broker)
        p = ctypes.c_void_p()
        _lib.check(lib.smem_topic_open_publisher(_lib.encode_name(name), ctypes.byref(opts),
                                                 ctypes.byref(p)), name)
        return cls._wrap(p.value, name, 0)

    @staticmethod
    def subscribe(name: str, history: int = 0, *,
                  broker: Optional[str] = None) -> "Subscriber":
        """Subscribe to @name (see :class:`Subscriber`)."""
        return Subscriber.subscribe(name, history, broker=broker)

    @classmethod
    def _wrap(cls, ptr: int, name: str, sample_size: int) -> "Topic":
        self = cls.__new__(cls)
        self._adopt(ptr, lib.smem_topic_pub_close, name)
        self._sample_size = sample_size
        return self

    def loan(self, timeout: Optional[float] = None) -> Loan:
        """Loan a sample to fill (see :class:`Loan`), waiting up to @timeout seconds for a
        buffer or, under the block policy, for the slowest subscriber. Raises
        TimeoutExpired, ShutdownError, ProtocolError."""
        s = TopicSample()
        rc = _sliced(_loan, _lib.timeout_ms(timeout), self._p(), ctypes.byref(s))
        if rc:
            raise error_from(rc, filename=self._name)
        self._sample_size = s.cap
        try:
            return Loan(self, s)
        except BaseException:
            lib.smem_topic_discard(self._p(), ctypes.byref(s))
            raise

    def publish(self, data: Any, timeout: Optional[float] = None) -> None:
        """Copy @data (bytes or any contiguous buffer) into a loaned sample and publish it:
        one copy, for data that exists already. Raises MessageSizeError (larger than a
        sample: nothing published) and the errors of :meth:`loan`."""
        ms = _lib.timeout_ms(timeout)
        p = self._p()
        s = TopicSample()
        ptr, n, ref = _lib.readable_buffer(data)
        try:
            if self._sample_size and n > self._sample_size:
                raise error_from(-90, filename=self._name)  # EMSGSIZE
            rc = _sliced(_loan, ms, p, ctypes.byref(s))
            if rc:
                raise error_from(rc, filename=self._name)
            if n > s.cap:
                lib.smem_topic_discard(p, ctypes.byref(s))
                raise error_from(-90, filename=self._name)
            ctypes.memmove(s.data, ptr, n)
        finally:
            if ref is not None:
                ref.release()
        rc = _sliced(_publish, ms, p, ctypes.byref(s), n)
        if rc:
            lib.smem_topic_discard(p, ctypes.byref(s))
            raise error_from(rc, filename=self._name)


class Subscriber(Handle):
    """A subscriber of a named topic: every sample published after it joined (plus up to
    @history earlier ones), in order. Used by one thread at a time."""

    @classmethod
    def subscribe(cls, name: str, history: int = 0, *,
                  broker: Optional[str] = None) -> "Subscriber":
        """Raises NotFoundError, WrongKindError, ProtocolError, AccessError, SmemError EUSERS
        (max_subscribers live subscribers)."""
        opts = _lib.make_opts(broker)
        p = ctypes.c_void_p()
        _lib.check(lib.smem_topic_subscribe(_lib.encode_name(name), history,
                                            ctypes.byref(opts), ctypes.byref(p)), name)
        self = cls.__new__(cls)
        self._adopt(p.value, lib.smem_topic_sub_close, name)
        return self

    def receive(self, timeout: Optional[float] = None) -> Sample:
        """The next sample as a read-only view (``with sub.receive() as mv: ...``, see
        :class:`Sample`), waiting up to @timeout seconds. Raises TimeoutExpired,
        ShutdownError (the creator closed and nothing is left), SmemError ENOBUFS (this
        subscriber holds its ``views`` views already), ProtocolError."""
        s = TopicSample()
        rc = _sliced(_receive, _lib.timeout_ms(timeout), self._p(), ctypes.byref(s))
        if rc:
            raise error_from(rc, filename=self._name)
        try:
            return Sample(self, s)
        except BaseException:
            _release(self._p(), ctypes.byref(s))
            raise

    def receive_bytes(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """The next sample copied out: (seq, bytes). Errors as :meth:`receive`."""
        s = TopicSample()
        p = self._p()
        rc = _sliced(_receive, _lib.timeout_ms(timeout), p, ctypes.byref(s))
        if rc:
            raise error_from(rc, filename=self._name)
        try:
            return s.seq, ctypes.string_at(s.view, s.len) if s.len else b""
        finally:
            _release(p, ctypes.byref(s))

    def poller(self) -> Poller:
        """A :class:`smem.Poller` whose fd becomes readable when a sample is there to
        receive (or the topic was shut down); no helper thread where io_uring allows."""
        return Poller._open(self, "topic")

    def _open_poller(self) -> Poller:
        return self.poller()

    async def areceive(self, timeout: Optional[float] = None) -> Sample:
        """The next sample, awaiting it on the running asyncio loop (a :meth:`poller` with
        loop.add_reader) instead of blocking a thread. Errors as :meth:`receive`."""
        return await until(self, lambda: self.receive(0), timeout)

    def stats(self) -> Dict[str, int]:
        """received, lost (overwritten before we got to them: exact) and lag."""
        st = TopicSubStats()
        _lib.check(lib.smem_topic_sub_stats(self._p(), ctypes.byref(st)), self._name)
        return {"received": st.received, "lost": st.lost, "lag": st.lag}
