"""Poller: an fd for event loops (asyncio's ``loop.add_reader``, selectors, epoll) that becomes
readable when a ring, an RPC channel or a topic subscriber has work, with no helper thread
where io_uring has futex waits (the smem_*_poll_* calls of the C library).

The protocol cannot lose a wakeup::

    while True:
        if not poller.arm():          # True: work is there already, nothing armed
            wait until poller.fileno() is readable
        poller.disarm()
        drain with timeout-0 calls (ring.read(0), rpc.dispatch(0), sub.receive(0))

:meth:`Poller.wait` does the arming and waiting on the running asyncio loop. A readable fd is a
hint: the timeout-0 calls decide. While armed, the other side pays one futex wake per message;
while not armed, nothing.
"""
from __future__ import annotations

import asyncio
import ctypes
import weakref
from typing import Any, Optional

from . import _lib
from ._lib import lib


class Poller:
    """A poller of one handle (:meth:`Ring.poller`, :meth:`Rpc.poller`,
    :meth:`Subscriber.poller`, :meth:`Service.poller`). Used by one thread at a time (an
    asyncio loop's); the thread that arms must outlive the arming. Closed by :meth:`close`, a
    with block, or the close of its handle (which closes its pollers first: the Poller object
    then says closed)."""

    def __init__(self, owner: Any, kind: str, ptr: int) -> None:
        self._owner = owner
        self._kind = kind
        self._ptr: Optional[int] = ptr
        self._fd = _lib.check(getattr(lib, f"smem_{kind}_poll_fd")(ptr), owner.name)
        self._arm = getattr(lib, f"smem_{kind}_poll_arm")
        self._disarm = getattr(lib, f"smem_{kind}_poll_disarm")
        self.busy = False  # smem.poll.until() awaits on it (others take another)
        self._finalizer = weakref.finalize(self, getattr(lib, f"smem_{kind}_poll_close"), ptr)
        owner._closer.first.append(self._finalizer)

    @classmethod
    def _open(cls, owner: Any, kind: str, *args: Any) -> "Poller":
        p = ctypes.c_void_p()
        _lib.check(getattr(lib, f"smem_{kind}_poll_open")(owner._p(), *args, ctypes.byref(p)),
                   owner.name)
        try:
            return cls(owner, kind, p.value)
        except BaseException:
            getattr(lib, f"smem_{kind}_poll_close")(p.value)
            raise

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def _p(self) -> int:
        if not self._finalizer.alive:
            raise ValueError("poller is closed")
        return self._ptr

    def fileno(self) -> int:
        """The fd to watch for reading (owned by the poller: do not close it)."""
        self._p()
        return self._fd

    @property
    def threaded(self) -> Optional[bool]:
        """True when a helper thread stands in for io_uring futex waits (older kernels); None
        for a Service's poller, for which the C library does not say."""
        fn = getattr(lib, f"smem_{self._kind}_poll_threaded", None) \
            if self._kind != "service" else None
        return None if fn is None else bool(fn(self._p()))

    def arm(self) -> bool:
        """Announce and look: True when there is work now (nothing armed: drain, then arm
        again), False when armed (the fd becomes readable when work arrives)."""
        return _lib.check(self._arm(self._p()), self._owner.name) == 1

    def disarm(self) -> None:
        """Withdraw the arming (harmless when not armed): the fd is not readable afterwards."""
        if self._finalizer.alive:
            self._disarm(self._ptr)

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Arm and wait on the running asyncio loop (``loop.add_reader``) until there may be
        work (True) or @timeout seconds pass (False); disarmed on return."""
        if self.arm():
            return True
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = self._fd
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
            self.disarm()

    def close(self) -> None:
        """Disarm and free (idempotent)."""
        if self._finalizer.alive:
            self._finalizer()
            fins = self._owner._closer.first
            if self._finalizer in fins:
                fins.remove(self._finalizer)

    def __enter__(self) -> "Poller":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd {self._fd}"
        return f"<smem.Poller {self._kind} {self._owner.name!r} {state}>"


async def until(owner: Any, attempt: Any, timeout: Optional[float]) -> Any:
    """Run @attempt() (a timeout-0 call returning a value or raising TimeoutExpired) until it
    succeeds, awaiting the owner's poller between tries; TimeoutExpired after @timeout s."""
    from .errors import TimeoutExpired, error_from

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    poller = owner._async_poller()
    try:
        while True:
            try:
                return attempt()
            except TimeoutExpired:
                pass
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise error_from(-110, filename=owner.name)
            await poller.wait(remaining)
    finally:
        owner._async_poller_done(poller)
