"""The base of every object: an opaque C handle closed exactly once (by close(), a with block,
garbage collection or interpreter exit), and memoryviews of shared memory that keep the
mapping alive.

A memoryview of shared memory must never outlive the mapping: touching unmapped memory kills
the process. So every view is made over a ctypes array that references its handle (garbage
collection cannot close a handle while a view exists), and an explicit close() while a view is
still referenced raises BufferError, as mmap.close() does for exported buffers.
"""
from __future__ import annotations

import ctypes
import gc
import sys
import weakref
from typing import Any, Callable, List, Optional

from .errors import SmemError


class _Closer:
    """Owns the C pointer; called once by the finalizer. Holds no reference to the Python
    object, so the object can be collected."""

    __slots__ = ("ptr", "fn", "keep", "first")

    def __init__(self, ptr: int, fn: Callable[[int], None], keep: Any = None) -> None:
        self.ptr = ptr
        self.fn = fn
        self.keep = keep  # what C may still call into until fn returns (RPC handlers)
        self.first: List[Callable[[], Any]] = []  # pollers' finalizers: closed before us

    def __call__(self) -> None:
        ptr, self.ptr = self.ptr, None
        # Pollers first, whatever order garbage collection finalizes a cycle in: a poller
        # disarms through its handle's C object.
        for f in self.first:
            f()
        self.first = []
        if ptr:
            self.fn(ptr)
        self.keep = None


class Handle:
    """An open smem object. Subclasses set ``_ptr`` through :meth:`_adopt`."""

    _ptr: Optional[int] = None
    _name: str = ""

    def _adopt(self, ptr: int, close_fn: Callable[[int], None], name: str,
               keep: Any = None) -> None:
        self._ptr = ptr
        self._name = name
        self._exports: List[Any] = []
        self._idle_poller: Any = None  # the async helpers' cached poller (_async_poller)
        self._closer = _Closer(ptr, close_fn, keep)
        self._finalizer = weakref.finalize(self, self._closer)

    @property
    def closed(self) -> bool:
        """True once close() has run."""
        return self._ptr is None

    @property
    def name(self) -> str:
        """The object's name at the broker."""
        return self._name

    def _p(self) -> int:
        """The C pointer, or ValueError if the handle is closed (as for closed files)."""
        p = self._ptr
        if p is None:
            raise ValueError(f"{type(self).__name__} {self._name!r} is closed")
        return p

    def _view(self, addr: int, nbytes: int, readonly: bool) -> memoryview:
        """A memoryview of @nbytes at @addr (format 'B') that keeps this handle alive."""
        self._prune_exports()
        carr = (ctypes.c_ubyte * nbytes).from_address(addr)
        carr._smem_owner = self  # the view keeps the handle (hence the mapping) alive
        self._exports.append(carr)
        mv = memoryview(carr).cast("B")
        return mv.toreadonly() if readonly else mv

    def _prune_exports(self) -> None:
        # An entry referenced only by this list (and getrefcount's argument) is unused. Indexing,
        # not a loop variable, so that no other reference is counted.
        ex = self._exports
        self._exports = [ex[i] for i in range(len(ex)) if sys.getrefcount(ex[i]) > 2]

    def _exports_in_use(self) -> int:
        self._prune_exports()
        return len(self._exports)

    def close(self) -> None:
        """Release the handle (idempotent). BufferError if views of its memory still exist:
        release them (memoryview.release(), del the numpy arrays) first."""
        if self._ptr is None:
            return
        if self._exports_in_use():
            # A view may be held only by a reference cycle (an exception's traceback, say):
            # collect before refusing.
            gc.collect()
        if self._exports_in_use():
            raise BufferError(f"cannot close {type(self).__name__} {self._name!r}: "
                              f"{len(self._exports)} view(s) of its memory still exist")
        self._idle_poller = None
        self._before_close()
        self._ptr = None
        self._exports = []
        self._finalizer()

    def _before_close(self) -> None:
        """Subclasses: release what must go before the C handle (RPC call handles)."""

    def _open_poller(self) -> Any:
        """Subclasses with pollers: a new Poller for the async helpers."""
        raise NotImplementedError

    def _async_poller(self) -> Any:
        """A poller for one await (smem.poll.until): the cached one, or a new one while
        another task awaits on it (a poller serves one waiter at a time)."""
        p = self._idle_poller
        if p is None or p.busy or p.closed:
            p = self._open_poller()
            if self._idle_poller is None or self._idle_poller.closed:
                self._idle_poller = p
        p.busy = True
        return p

    def _async_poller_done(self, p: Any) -> None:
        p.busy = False
        if p is not self._idle_poller:
            p.close()

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._p()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else "open"
        return f"<smem.{type(self).__name__} {self._name!r} {state}>"


def owner_dead_value(err: SmemError, value: Any) -> SmemError:
    """Attach the value a read returned to an OwnerDeadError (the copy was done)."""
    err.value = value  # type: ignore[attr-defined]
    return err


def retire_view(view: memoryview) -> bool:
    """Release a view of shared memory that goes back to its owner (a ring node, a topic
    sample); False if its memory is still in use. A numpy array (or a slice) made from the
    view holds a memoryview of its own on the same memory, which view.release() does not
    revoke: it keeps the ctypes array under the view referenced, which is what we count.
    Such a holder keeps the mapping alive (close() refuses while it lives), but the memory
    will carry later messages."""
    if not view:
        return True
    carr = view.obj
    view.release()
    return sys.getrefcount(carr) <= 3  # this name, the handle's export list, the argument


class Lease:
    """Shared memory lent until a with block ends (ReadView, WriteSlot, Loan, Sample): the
    exit gives it back through ``_end`` (release, abort, discard). A BufferError from a view
    that outlives the block is raised, unless the block already raises."""

    __slots__ = ()

    def _end(self) -> None:
        raise NotImplementedError

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            self._end()
        except BufferError:
            if exc_type is None:
                raise
