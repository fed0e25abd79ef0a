"""Rpc: a bidirectional request/response channel between two processes over two rings
(smem_rpc, the seed's RpcBuffer), with a Python callable as the handler."""
from __future__ import annotations

import ctypes
import errno
import math
import os
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence

from . import _lib
from ._handle import Handle
from ._lib import RPC_HANDLER, RpcOpts, RpcStats, lib
from .errors import SmemError, TimeoutExpired, error_from
from .poll import Poller, until

_fast_call_async = _lib.fast_rpc_call_async  # no argtypes: exactly typed arguments
_fast_wait = _lib.fast_rpc_wait
_fast_call_result = _lib.fast_rpc_call_result
_fast_call_free = _lib.fast_rpc_call_free
_fast_free_response = _lib.fast_rpc_free_response
_fast_reply_set = _lib.fast_rpc_reply_set

Handler = Callable[[bytes], Any]
"""A handler takes the request's bytes and returns the response: bytes or any contiguous
buffer, or None for an empty response. Raising OSError with an errno sends that errno (and
the exception's message) as an error reply; any other exception sends EREMOTEIO with
"ExceptionType: message"."""

_WAIT_SLICE_MS = 100  # how often a thread waiting for a PendingCall looks for its freeing


def _error(rc: int, name: str) -> SmemError:
    """The exception for a failed call: a remote error carries the handler's message."""
    raw = lib.smem_rpc_last_error_message()
    msg = raw.decode("utf-8", "replace") if raw else ""
    err = error_from(rc, msg or None, filename=name)
    err.remote_message = msg or None  # type: ignore[attr-defined]
    return err


def _trampoline(handler: Any, with_client: bool = False) -> Any:
    """The C handler that runs @handler (ctypes takes the GIL for it): handler(request), or
    with @with_client handler(client, request), client being smem_service_request_client()."""

    def run(_arg: Any, req_p: Any, reply: int) -> int:
        try:
            req = req_p[0]
            n = req.len
            data = ctypes.string_at(req.data, n) if n else b""
            if with_client:
                out = handler(lib.smem_service_request_client(req_p), data)
            else:
                out = handler(data)
            if out is None:
                return 0
            if type(out) is bytes:  # the hot path, exactly typed (no argtypes)
                return _fast_reply_set(ctypes.c_void_p(reply), out, ctypes.c_size_t(len(out)))
            ptr, n, ref = _lib.readable_buffer(out)
            try:
                return lib.smem_rpc_reply_set(reply, ptr, n)
            finally:
                if ref is not None:
                    ref.release()
        except BaseException as e:  # never let an exception unwind into C
            if isinstance(e, OSError) and e.errno:
                code, text = e.errno, str(e.strerror or e)
            else:
                code, text = errno.EREMOTEIO, f"{type(e).__name__}: {e}"
            lib.smem_rpc_reply_error(reply, text.encode("utf-8", "replace")[:255])
            return -abs(code)

    return RPC_HANDLER(run)


_SERVICE_SLICE_MS = 50  # how often the service thread looks whether its channel is closing


class _ServiceThread(threading.Thread):
    """Runs a channel's handler: smem_rpc_dispatch() in a loop (a Service's:
    smem_service_serve()), in a Python thread (whose thread state lives as long as it does).
    Holds the C pointer, not the Python object, so that can still be garbage-collected."""

    def __init__(self, ptr: int, name: str, serve: Any = None, close: Any = None) -> None:
        # Daemon: the interpreter's exit must not wait for it; the owner's finalizer (atexit
        # included) stops it before closing the channel.
        super().__init__(name=f"smem-rpc {name}"[:60], daemon=True)
        self._ptr = ptr
        self._serve = serve or lib.smem_rpc_dispatch
        self._close = close or lib.smem_rpc_close
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            # Returns at once after handling, or after a slice with no request. A negative
            # result means no request can ever come (a slave whose master left).
            if self._serve(self._ptr, _SERVICE_SLICE_MS) < 0:
                break

    def close_channel(self, ptr: int) -> None:
        """The owner's close: stop the loop (within a slice), then close the C object."""
        self._stopping.set()
        if threading.current_thread() is not self:
            self.join()
            _wait_gone(self.native_id)
        self._close(ptr)


def _wait_gone(tid: Optional[int], limit: float = 1.0) -> None:
    """Wait (up to @limit s) until the OS thread @tid has exited. join() returns when the
    Python side of a thread is done, before the C library's per-thread destructors close
    that thread's wait state (an io_uring, a /proc file): waiting here makes a close()
    return with every fd of it closed."""
    if tid is None:
        return
    path = f"/proc/self/task/{tid}"
    deadline = time.monotonic() + limit
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.001)


def _wait_calls(calls: Sequence["PendingCall"], all: bool, timeout: Optional[float],
                name: str) -> int:
    """smem_rpc_wait() for PendingCalls, marked busy meanwhile so that free() waits."""
    ms = _lib.timeout_ms(timeout)
    entered: list = []
    try:
        for c in calls:
            c._enter()
            entered.append(c)
        return _wait_loop(calls, all, ms, name)
    finally:
        for c in entered:
            c._leave()


def _wait_loop(calls: Sequence["PendingCall"], all: bool, ms: int, name: str) -> int:
    """Wait in slices, so that a free() from another thread (Rpc.close()) is seen within one:
    it raises ShutdownError. The calls are entered (busy)."""
    deadline = None if ms < 0 else time.monotonic() + ms / 1000.0
    arr = (ctypes.c_void_p * len(calls))(*[c._ptr for c in calls])
    while True:
        if any(c._cancelled for c in calls):
            raise error_from(-errno.ESHUTDOWN, "the call was abandoned (freed or closed)",
                             filename=name)
        left = _WAIT_SLICE_MS if deadline is None else \
            min(_WAIT_SLICE_MS, max(0, math.ceil((deadline - time.monotonic()) * 1000)))
        rc = lib.smem_rpc_wait(arr, len(calls), 1 if all else 0, left)
        if rc >= 0:
            return rc
        if rc != -errno.ETIMEDOUT or left < _WAIT_SLICE_MS:
            raise error_from(rc, filename=name)


class PendingCall:
    """An asynchronous call (:meth:`Rpc.call_async`): poll :meth:`done`, or :meth:`result`
    to wait. Free it (with block, or :meth:`free`) before closing its channel; Rpc.close()
    frees the ones left."""

    def __init__(self, rpc: "Rpc", ptr: int) -> None:
        self._rpc = rpc
        self._ptr: Optional[int] = ptr
        self._busy = False  # a thread is waiting on it
        self._cancelled = False

    def done(self) -> bool:
        """Has the call completed (successfully or not)? Never blocks."""
        with self._rpc._cond:
            return self._ptr is not None and bool(lib.smem_rpc_call_done(self._ptr))

    def _take(self) -> bytes:
        resp, n = ctypes.c_void_p(), ctypes.c_size_t()
        rc = lib.smem_rpc_call_result(self._ptr, ctypes.byref(resp), ctypes.byref(n))
        if rc:
            raise _error(self._rpc._reason(rc), self._rpc._name)
        try:
            return ctypes.string_at(resp.value, n.value) if resp.value else b""
        finally:
            lib.smem_rpc_free_response(resp)

    def _enter(self) -> None:
        with self._rpc._cond:
            if self._ptr is None:
                raise ValueError("call handle freed")
            if self._busy:
                raise RuntimeError("another thread waits for this call")
            self._busy = True

    def _leave(self) -> None:
        with self._rpc._cond:
            self._busy = False
            self._rpc._cond.notify_all()

    def result(self, timeout: Optional[float] = None) -> bytes:
        """Wait up to @timeout seconds for the response and return it; raises the call's error
        (as Rpc.call), TimeoutExpired if it has not completed within @timeout (the call stays
        pending), or ShutdownError if the handle is freed meanwhile (by Rpc.close())."""
        _wait_calls([self], True, timeout, self._rpc._name)
        self._enter()
        try:
            return self._take()
        finally:
            self._leave()

    def free(self) -> None:
        """Free the handle; a call still pending is abandoned (its response is discarded).
        Waits for a thread that is waiting on it."""
        rpc = self._rpc
        with rpc._cond:
            self._cancelled = True
            while self._busy:
                rpc._cond.wait()
            ptr, self._ptr = self._ptr, None
            rpc._calls.discard(self)
        if ptr is not None:
            lib.smem_rpc_call_free(ptr)

    def __enter__(self) -> "PendingCall":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.free()


class Rpc(Handle):
    """One endpoint of a named RPC channel.

    The first process to open a name becomes its master (it creates the rings), the second
    its slave; both may call and serve. @handler, if given, serves the peer's requests: by
    default in a Python thread the endpoint starts (``dispatch=False``), else in
    :meth:`dispatch`/:meth:`serve` or in any thread waiting in a call on the channel.
    Calls release the GIL while they wait. A peer that dies fails pending and new calls with
    PeerResetError (ECONNRESET); one that closes, with ShutdownError (ESHUTDOWN).
    """

    @classmethod
    def open(cls, name: str, handler: Optional[Handler] = None, *, dispatch: bool = False,
             node_count: int = 0, node_size: int = 0, reply_timeout: Optional[float] = None,
             max_message: int = 0, spin_ns: Optional[int] = None, mode: int = 0o600,
             broker: Optional[str] = None) -> "Rpc":
        """Open the channel @name (master if first, slave if second).

        @handler runs in a Python thread this endpoint starts ("smem-rpc NAME"), or with
        @dispatch=True only in :meth:`dispatch`/:meth:`serve` and in threads waiting in a call
        on the channel. @node_count/@node_size: the master's ring geometry (0: 16 nodes of
        64 KiB); @reply_timeout: how long a reply may wait for ring room (None: the library's
        30 s); @max_message: largest message (0: 64 MiB); @spin_ns: waiters poll this long
        before sleeping (None: 20 us; 0: sleep at once, for oversubscribed cores).
        Raises BusyError (a live master and slave already), InvalidArgumentError, and the
        errors of Region/Ring creation.
        """
        o = RpcOpts()
        o.base = _lib.make_opts(broker, mode, 0)
        o.node_count, o.node_size = node_count, node_size
        fn = _trampoline(handler) if handler is not None else None
        if fn is not None:
            o.handler = fn
        # A handler runs in dispatch mode even when the caller wants a service thread: the
        # thread is ours, a Python thread. Called from the library's own service thread
        # instead, each call would make and destroy a Python thread state (ctypes does so
        # for a thread Python does not know), which costs more than the whole call.
        own_thread = handler is not None and not dispatch
        o.service = 1 if (dispatch or own_thread) else 0
        if reply_timeout is not None:
            o.reply_timeout_ms = max(1, _lib.timeout_ms(reply_timeout))
        o.max_message = max_message
        if spin_ns is not None:
            o.spin_ns = 0xFFFFFFFF if spin_ns == 0 else spin_ns
        p = ctypes.c_void_p()
        _lib.check(lib.smem_rpc_open(_lib.encode_name(name), ctypes.byref(o), ctypes.byref(p)),
                   name)
        self = cls.__new__(cls)
        self._init_calls(p.value, lib.smem_rpc_call, p.value)
        self._service: Optional[_ServiceThread] = None
        if own_thread:
            self._service = _ServiceThread(p.value, name)
        # The trampoline must live until smem_rpc_close() has returned; the service thread
        # must stop before it (close is not concurrent with dispatch).
        closer = self._service.close_channel if self._service else lib.smem_rpc_close
        self._adopt(p.value, closer, name, keep=fn)
        if self._service:
            self._service.start()
        return self

    def _init_calls(self, channel: int, call_fn: Any, call_handle: int) -> None:
        """The calling side's state: @call_fn(@call_handle, ...) makes a synchronous call
        (smem_rpc_call on the channel, or smem_service_call on a service client)."""
        self._cp = ctypes.c_void_p(channel)  # the handle for the calls without argtypes
        self._call_fn = call_fn
        self._call_handle = call_handle
        self._cond = threading.Condition()
        self._calls: set = set()

    def _reason(self, rc: int) -> int:
        """The error to raise for a failed call (a service client's says why more exactly)."""
        return rc

    @property
    def is_master(self) -> bool:
        return bool(lib.smem_rpc_is_master(self._p()))

    @property
    def packet_payload(self) -> int:
        """Payload bytes per packet (node size minus the 64-byte header)."""
        return lib.smem_rpc_packet_payload(self._p())

    def call(self, data: Any = b"", timeout: Optional[float] = None) -> bytes:
        """Send @data (bytes or any contiguous buffer) and wait up to @timeout seconds (None:
        forever) for the response, returned as bytes.

        Raises the handler's error (its errno; ``remote_message`` and ``strerror`` carry its
        message), NoHandlerError (the peer has no handler), TimeoutExpired, PeerResetError
        (the peer died), ShutdownError (the peer or this endpoint closed), MessageSizeError.
        Thread-safe: many threads may call at once.
        """
        ms = _lib.timeout_ms(timeout)
        if self._ptr is None:
            self._p()
        resp, rlen = ctypes.c_void_p(), ctypes.c_size_t()
        if type(data) is bytes:  # the hot path: no Py_buffer, no argtypes conversions
            ref = None
            ptr, n = data, ctypes.c_size_t(len(data))
        else:
            ref = _lib.BufferRef(data)
            ptr, n = ctypes.c_void_p(ref.ptr), ctypes.c_size_t(ref.nbytes)
        try:
            if 0 <= ms <= _lib.SLICE_MS:
                rc = self._call_fn(self._call_handle, ptr, n.value, ctypes.byref(resp),
                                   ctypes.byref(rlen), ms)
            else:
                rc = self._call_sliced(ptr, n, ms, resp, rlen)
        finally:
            if ref is not None:
                ref.release()
        if rc:
            raise _error(self._reason(rc), self._name)
        try:
            return ctypes.string_at(resp.value, rlen.value) if resp.value else b""
        finally:
            _fast_free_response(resp)

    def _call_sliced(self, ptr: Any, n: Any, ms: int, resp: Any, rlen: Any) -> int:
        """A call that may wait long: sent asynchronously (its deadline @ms is the library's),
        then waited for in slices, so that signal handlers run meanwhile (Ctrl-C abandons
        the call: its response is discarded). Exactly typed calls without argtypes (@n is a
        c_size_t): four foreign calls per call, so their conversions would show."""
        call = ctypes.c_void_p()
        rc = _fast_call_async(self._cp, ptr, n, ms, ctypes.byref(call))
        if rc:
            return rc
        try:
            arr = (ctypes.c_void_p * 1)(call.value)
            while True:
                rc = _fast_wait(arr, 1, 1, _lib.SLICE_MS)
                if rc >= 0:
                    break
                if rc != -errno.ETIMEDOUT:
                    return rc
            return _fast_call_result(call, ctypes.byref(resp), ctypes.byref(rlen))
        finally:
            _fast_call_free(call)

    def call_async(self, data: Any = b"", timeout: Optional[float] = None) -> PendingCall:
        """Send @data now (waiting up to @timeout for ring room) and return a PendingCall; the
        response must arrive within @timeout of this call, else the call fails with
        TimeoutExpired. Sending errors are raised here."""
        ms = _lib.timeout_ms(timeout)
        ptr, n, ref = _lib.readable_buffer(data)
        out = ctypes.c_void_p()
        try:
            rc = lib.smem_rpc_call_async(self._p(), ptr, n, ms, ctypes.byref(out))
        finally:
            if ref is not None:
                ref.release()
        if rc:
            raise _error(rc, self._name)
        call = PendingCall(self, out.value)
        with self._cond:
            self._calls.add(call)
        return call

    async def acall(self, data: Any = b"", timeout: Optional[float] = None) -> bytes:
        """:meth:`call` as a coroutine: the request is sent at once, and the response awaited
        on the running asyncio loop through the channel's :meth:`poller` (loop.add_reader),
        with no thread blocked. Cancelling the task abandons the call (its response is
        discarded). Errors as :meth:`call`."""
        call = self.call_async(data, timeout)

        def attempt() -> bytes:
            # A timeout-0 wait makes the channel's progress (takes responses off the ring,
            # notices a dead peer); TimeoutExpired while the call is pending.
            _wait_calls([call], True, 0, self._name)
            call._enter()
            try:
                return call._take()
            finally:
                call._leave()

        try:
            return await until(self, attempt, timeout)
        finally:
            call.free()

    def dispatch(self, timeout: Optional[float] = None) -> int:
        """Dispatch mode: run the handler for requests that arrive within @timeout seconds;
        returns how many were handled (0 on timeout). Raises InvalidArgumentError (service
        thread mode), PeerResetError, ShutdownError."""
        if self._service is not None:
            raise error_from(-errno.EINVAL, "the channel has a service thread",
                             filename=self._name)
        return _lib.check(lib.smem_rpc_dispatch(self._p(), _lib.timeout_ms(timeout)),
                          self._name)

    def poller(self) -> Poller:
        """A :class:`smem.Poller` whose fd becomes readable when the channel may have work:
        a request to dispatch, a call of ours completed, the peer gone. The first arm says
        True (look first). No helper thread where io_uring allows."""
        return Poller._open(self, "rpc")

    def _open_poller(self) -> Poller:
        return self.poller()

    async def adispatch(self, timeout: Optional[float] = None) -> int:
        """Dispatch mode on an asyncio loop: await requests (a :meth:`poller` with
        loop.add_reader), run the handler for those there, return how many (0 after
        @timeout seconds with none). Errors as :meth:`dispatch`."""
        def attempt() -> int:
            n = self.dispatch(0)
            if n == 0:
                raise error_from(-errno.ETIMEDOUT, filename=self._name)
            return n

        try:
            return await until(self, attempt, timeout)
        except TimeoutExpired:
            return 0

    @staticmethod
    def serve(channels: Sequence["Rpc"], timeout: Optional[float] = None) -> int:
        """One server loop for up to 32 channels in dispatch mode (one sleep for all);
        returns how many requests were handled, 0 on timeout."""
        arr = (ctypes.c_void_p * len(channels))(*[c._p() for c in channels])
        return _lib.check(lib.smem_rpc_serve(arr, len(channels), _lib.timeout_ms(timeout)))

    @staticmethod
    def wait(calls: Sequence[PendingCall], timeout: Optional[float] = None,
             all: bool = False) -> int:
        """Wait for any (or @all) of @calls, possibly on different channels, up to @timeout
        seconds; returns how many have completed. Raises TimeoutExpired, or ShutdownError if
        one of the calls is freed meanwhile (by its Rpc's close())."""
        return _wait_calls(calls, all, timeout, "")

    def stats(self) -> Dict[str, int]:
        """Counters of the channel (struct smem_rpc_stats)."""
        s = RpcStats()
        _lib.check(lib.smem_rpc_stats(self._p(), ctypes.byref(s)), self._name)
        return {f: getattr(s, f) for f, _ in RpcStats._fields_ if f != "reserved"}

    def stats_reset(self) -> None:
        lib.smem_rpc_stats_reset(self._p())

    def _before_close(self) -> None:
        # Call handles must be freed before the channel: threads waiting in result() or
        # Rpc.wait() notice within one slice (ShutdownError); then free what is left.
        with self._cond:
            calls = list(self._calls)
        for c in calls:
            c.free()
