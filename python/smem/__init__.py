"""smem for Python: named shared memory between Linux processes over libsmem.

Region (raw bytes), Buffer (bytes with a robust reader-writer lock), Array (a numpy view with
dtype and shape checked on open), Ring (a lock-free MPMC message ring), Rpc (request and
response between two processes), Service/ServiceClient (one server, many clients) and
Topic/Subscriber (publish/subscribe with zero-copy loans), interoperating with C programs that use libsmem. Poller: their fds for event loops
(asyncio's loop.add_reader), with no helper thread.

Every object is a context manager; errors are OSError subclasses (smem.errors) carrying the
errno and smem's message; timeouts are in seconds (None: forever, 0: try once); waits release
the GIL. The library is loaded from $SMEM_LIBRARY, the build tree, the path `make install`
recorded, or the system's libsmem.so.0.
"""
from __future__ import annotations

from typing import Optional

from . import _lib
from ._lib import LIBRARY_PATH
from .array import Array
from .buffer import Buffer
from .errors import (AccessError, BrokerUnavailableError, BusyError, ExistsError,
                     InvalidArgumentError, MessageSizeError, NoHandlerError, NotFoundError,
                     OwnerDeadError, PeerResetError, ProtocolError, RangeError, ShutdownError,
                     SmemError, TimeoutExpired, WrongKindError)
from .region import Region
from .poll import Poller
from .ring import Ring
from .rpc import PendingCall, Rpc
from .service import Service, ServiceClient
from .topic import Loan, Sample, Subscriber, Topic

__version__ = "0.1.0"

__all__ = ["Region", "Buffer", "Array", "Ring", "Rpc", "PendingCall", "Service", "ServiceClient", "Topic", "Subscriber",
           "Loan", "Sample", "Poller", "unlink", "strerror", "last_error",
           "LIBRARY_PATH", "SmemError", "InvalidArgumentError", "RangeError", "NotFoundError",
           "ExistsError", "AccessError", "TimeoutExpired", "MessageSizeError", "ShutdownError",
           "ProtocolError", "WrongKindError", "OwnerDeadError", "PeerResetError", "BrokerUnavailableError",
           "BusyError", "NoHandlerError"]


def unlink(name: str, *, broker: Optional[str] = None) -> None:
    """Remove @name from the broker whatever its holders (mappings stay valid; later opens get
    NotFoundError). Raises NotFoundError, AccessError (not the owner)."""
    opts = _lib.make_opts(broker)
    _lib.check(_lib.lib.smem_unlink(_lib.encode_name(name), _lib.ctypes.byref(opts)), name)


def last_error() -> str:
    """smem_last_error(): the calling thread's last failure that involved the broker, as a
    sentence naming the broker's address, the name and why ("" if none). Every SmemError
    raised also carries it as ``detail``."""
    return _lib.last_error()


def strerror(err: int) -> str:
    """smem_strerror(): the library's message for an errno value (either sign)."""
    return _lib.strerror(err)
