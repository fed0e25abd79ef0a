"""Service: a named RPC service that many clients call at once, each over a channel of its
own, served from one loop (smem_service, include/smem/service.h).

The server creates the :class:`Service` with a Python handler; each :class:`ServiceClient`
connects and calls. A client killed with kill -9 frees its slot and nothing else fails; a
server that dies or closes fails every client's pending and later calls (PeerResetError,
ShutdownError) instead of leaving them waiting. Clients and servers may be C or Python
programs alike.
"""
from __future__ import annotations

import ctypes
import errno
import math
import time
from typing import Any, Callable, Optional

from . import _lib
from ._handle import Handle
from ._lib import ServiceOpts, lib
from .errors import error_from
from .poll import Poller, until
from .rpc import Rpc, _ServiceThread, _trampoline

ServiceHandler = Callable[..., Any]
"""handler(request: bytes) -> response, or with ``with_client=True``
handler(client: int, request: bytes) -> response (client: the slot of the caller, unique
among the clients connected at a time). Responses and errors as for :data:`smem.rpc.Handler`."""


def _opts(broker: Optional[str], mode: int, spin_ns: Optional[int], max_message: int) -> Any:
    o = ServiceOpts()
    o.base = _lib.make_opts(broker, mode, 0)
    if spin_ns is not None:
        o.spin_ns = 0xFFFFFFFF if spin_ns == 0 else spin_ns  # SMEM_RPC_NO_SPIN
    o.max_message = max_message
    return o


class Service(Handle):
    """The server of a named service. Requests of all clients are handled one at a time,
    round-robin over the clients (at most 8 requests of one client per round), by the
    handler: in a Python thread the service starts (``dispatch=False``), or with
    ``dispatch=True`` only in :meth:`serve` / :meth:`aserve`, which then must be called (from
    one thread at a time)."""

    @classmethod
    def create(cls, name: str, handler: Optional[ServiceHandler], *, dispatch: bool = False,
               with_client: bool = False, max_clients: int = 0,
               reply_timeout: Optional[float] = None, max_message: int = 0,
               spin_ns: Optional[int] = None, mode: int = 0o600,
               broker: Optional[str] = None) -> "Service":
        """Create the service @name (at most 231 bytes). @handler: see
        :data:`ServiceHandler` (None: calls get NoHandlerError); @max_clients: clients at a
        time, 1..255 (0: 64); @reply_timeout: how long a reply may wait for room in a
        client's ring (None: 30 s); @max_message: largest request (0: 64 MiB); @spin_ns: as
        for :meth:`Rpc.open`. Raises ExistsError (the name is taken: by a live service, or by
        clients still holding a dead one's), InvalidArgumentError, and the errors of Region
        creation."""
        o = _opts(broker, mode, spin_ns, max_message)
        o.max_clients = max_clients
        if reply_timeout is not None:
            o.reply_timeout_ms = max(1, _lib.timeout_ms(reply_timeout))
        fn = _trampoline(handler, with_client) if handler is not None else None
        if fn is not None:
            o.handler = fn
        p = ctypes.c_void_p()
        _lib.check(lib.smem_service_create(_lib.encode_name(name), ctypes.byref(o),
                                           ctypes.byref(p)), name)
        self = cls.__new__(cls)
        # A server with nothing to run still serves: connections, departures and the -ENOSYS
        # answers happen in serve().
        self._thread = None if dispatch else _ServiceThread(
            p.value, name, lib.smem_service_serve, lib.smem_service_close)
        closer = self._thread.close_channel if self._thread else lib.smem_service_close
        # The trampoline lives until smem_service_close() has returned (the serving thread
        # stops before it).
        self._adopt(p.value, closer, name, keep=fn)
        if self._thread:
            self._thread.start()
        return self

    @property
    def clients(self) -> int:
        """Clients attached to the server now (as of its last serve)."""
        return _lib.check(lib.smem_service_clients(self._p()), self._name)

    def serve(self, timeout: Optional[float] = None) -> int:
        """Dispatch mode: attach clients that connected, run the handler for requests that
        arrive within @timeout seconds (None: until one does; 0: what is there now), free
        the channels of clients that left or died; returns how many requests were handled
        (0 on timeout). Raises InvalidArgumentError when a thread of the service serves."""
        if self._thread is not None:
            raise error_from(-errno.EINVAL, "the service has a serving thread",
                             filename=self._name)
        ms = _lib.timeout_ms(timeout)
        p = self._p()
        if 0 <= ms <= _lib.SLICE_MS:
            return _lib.check(lib.smem_service_serve(p, ms), self._name)
        # In slices, so that signal handlers (Ctrl-C) run while nothing comes. (A timeout
        # gives 0, not -ETIMEDOUT: _lib.sliced() does not fit.)
        deadline = None if ms < 0 else time.monotonic() + ms / 1000.0
        while True:
            step = _lib.SLICE_MS
            if deadline is not None:
                step = min(step, max(0, math.ceil((deadline - time.monotonic()) * 1000.0)))
            n = _lib.check(lib.smem_service_serve(p, step), self._name)
            if n or step < _lib.SLICE_MS:
                return n

    def poller(self) -> Poller:
        """A :class:`smem.Poller` whose fd becomes readable when the service may have work
        (a request, a client connecting, leaving or dying); then :meth:`serve` with timeout
        0. Dispatch mode only, as :meth:`serve` (InvalidArgumentError otherwise)."""
        if self._thread is not None:
            raise error_from(-errno.EINVAL, "the service has a serving thread",
                             filename=self._name)
        return Poller._open(self, "service")

    def _open_poller(self) -> Poller:
        return self.poller()

    async def aserve(self, timeout: Optional[float] = None) -> int:
        """:meth:`serve` on an asyncio loop: await work (a :meth:`poller` with
        loop.add_reader), serve what is there, return how many requests were handled (0 after
        @timeout seconds with none)."""
        from .errors import TimeoutExpired

        def attempt() -> int:
            n = self.serve(0)
            if n == 0:
                raise error_from(-errno.ETIMEDOUT, filename=self._name)
            return n

        try:
            return await until(self, attempt, timeout)
        except TimeoutExpired:
            return 0


def _disconnect(client: int) -> Callable[[int], None]:
    return lambda _channel: lib.smem_service_disconnect(client)


class ServiceClient(Rpc):
    """A client of a service: its end of an RPC channel whose other end is the server, so
    :meth:`call`, :meth:`call_async`, :meth:`acall`, :meth:`poller`, :meth:`stats` and
    :meth:`Rpc.wait` work as for :class:`Rpc` (a client serves nothing: :meth:`dispatch`
    raises InvalidArgumentError). Thread-safe: many threads may call at once."""

    @classmethod
    def connect(cls, name: str, *, node_count: int = 0, node_size: int = 0,
                max_message: int = 0, spin_ns: Optional[int] = None,
                broker: Optional[str] = None) -> "ServiceClient":
        """Connect to the service @name. @node_count/@node_size: the rings of this client's
        channel (0: 16 nodes of 64 KiB; messages longer than a node are split); the rest as
        :meth:`Service.create`. Calls made before the server attaches the client wait in
        its ring. Raises NotFoundError (no such service), WrongKindError (not a service),
        BrokerUnavailableError (ECONNREFUSED: no broker, or the service's server died or
        closed), SmemError EUSERS (max_clients connected), ProtocolError (a corrupt
        service)."""
        o = _opts(broker, 0, spin_ns, max_message)
        o.node_count, o.node_size = node_count, node_size
        p = ctypes.c_void_p()
        _lib.check(lib.smem_service_connect(_lib.encode_name(name), ctypes.byref(o),
                                            ctypes.byref(p)), name)
        channel = lib.smem_service_channel(p.value)
        self = cls.__new__(cls)
        self._init_calls(channel, lib.smem_service_call, p.value)
        self._service = None
        self._adopt(channel, _disconnect(p.value), name)
        return self

    def _reason(self, rc: int) -> int:
        # A server that refused our slot (it failed validation) closed its end of the
        # channel: smem_service_call() says why instead of ESHUTDOWN/ECONNRESET. The
        # channel's failure is sticky, so this call fails at once without sending anything.
        if rc not in (-errno.ESHUTDOWN, -errno.ECONNRESET) or self._ptr is None:
            return rc
        resp, n = ctypes.c_void_p(), ctypes.c_size_t()
        why = lib.smem_service_call(self._call_handle, None, 0, ctypes.byref(resp),
                                    ctypes.byref(n), 0)
        if why == 0:  # cannot happen on a failed channel; keep the call's own error
            lib.smem_rpc_free_response(resp)
            return rc
        return why if why not in (-errno.ESHUTDOWN, -errno.ECONNRESET) else rc

    def dispatch(self, timeout: Optional[float] = None) -> int:
        """Not for clients: raises InvalidArgumentError (the server runs the handler)."""
        raise error_from(-errno.EINVAL, "a service client serves no requests",
                         filename=self._name)
