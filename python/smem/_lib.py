"""The C library through ctypes: where libsmem.so is found, the prototypes, and the helpers
every class shares (options, timeouts, buffer pointers, error checks).

ctypes releases the GIL around every foreign call made through a CDLL, so a thread blocked in
smem (a ring read, a lock, an RPC call) never stops the other Python threads; callbacks from C
(RPC handlers) take the GIL back for themselves.
"""
from __future__ import annotations

import ctypes
import math
import os
import time
from ctypes import (POINTER, Structure, c_bool, c_char_p, c_int, c_int32, c_int64, c_size_t,
                    c_ssize_t, c_uint, c_uint32, c_uint64, c_void_p)
from typing import Any, Optional, Tuple

from .errors import error_from

# ---------------------------------------------------------------------------------------------
# Finding the library: $SMEM_LIBRARY, then the build tree this package sits in
# (python/smem -> ../../build/default), then the path `make install` recorded, then the
# dynamic linker's search for the soname.

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates() -> list:
    env = os.environ.get("SMEM_LIBRARY")
    if env:
        return [env]  # explicit: no silent fallback to another copy
    out = [os.path.join(_HERE, "..", "..", "build", "default", "libsmem.so")]
    try:
        from ._paths import LIBRARY  # written by `make install`

        out.append(LIBRARY)
    except ImportError:
        pass
    out.append("libsmem.so.0")
    return out


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append(f"{path}: not found")
            continue
        try:
            return ctypes.CDLL(path, use_errno=False)
        except OSError as e:
            errors.append(str(e))
    raise ImportError("smem: cannot load libsmem (set SMEM_LIBRARY to its path, or build it "
                      "with `make lib`): " + "; ".join(errors))


lib = _load()
LIBRARY_PATH: str = lib._name


# ---------------------------------------------------------------------------------------------
# Structures shared with C (include/smem/*.h).

class Opts(Structure):
    """struct smem_opts"""
    _fields_ = [("broker", c_char_p), ("mode", c_uint32), ("flags", c_uint32),
                ("timeout_ms", c_int32), ("reserved", c_uint32 * 7)]


SMEM_RDONLY = 1 << 0
SMEM_PERSIST = 1 << 1
SMEM_RAW = 1 << 2


class RingSlot(Structure):
    """struct smem_ring_slot"""
    _fields_ = [("data", c_void_p), ("len", c_size_t), ("cap", c_size_t), ("_pos", c_uint64),
                ("_node", c_uint32), ("_reserved", c_uint32)]


class RingStats(Structure):
    """struct smem_ring_stats"""
    _fields_ = [(n, c_uint64) for n in ("written", "read", "full_waits", "empty_waits", "sleeps",
                                        "wakes", "drops_recovered", "nodes_reclaimed",
                                        "corruptions")] + [("reserved", c_uint64 * 7)]


class RpcRequest(Structure):
    """struct smem_rpc_request"""
    _fields_ = [("channel", c_void_p), ("id", c_uint64), ("data", c_void_p), ("len", c_size_t)]


RPC_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(RpcRequest), c_void_p)


class RpcOpts(Structure):
    """struct smem_rpc_opts"""
    _fields_ = [("base", Opts), ("node_count", c_uint32), ("node_size", c_uint32),
                ("handler", RPC_HANDLER), ("handler_arg", c_void_p), ("service", c_uint32),
                ("reply_timeout_ms", c_int32), ("max_message", c_uint64), ("spin_ns", c_uint32),
                ("reserved32", c_uint32), ("reserved", c_uint64 * 5)]


class RpcStats(Structure):
    """struct smem_rpc_stats"""
    _fields_ = ([("overhead_per_packet", c_uint32), ("wait_backend", c_uint32)]
                + [(n, c_uint64) for n in (
                    "requests_sent", "responses_sent", "errors_sent", "requests_received",
                    "responses_received", "errors_received", "packets_sent", "packets_received",
                    "bytes_sent", "bytes_received", "max_packet_sent", "max_packet_received")]
                + [(n, c_int64) for n in ("last_packet_sent", "last_packet_received",
                                          "last_message_sent", "last_message_received")]
                + [(n, c_uint64) for n in (
                    "timeouts", "discarded_responses", "last_discarded_id", "protocol_errors",
                    "stale_packets", "peer_resets", "max_wait_write_ns", "max_wait_read_ns",
                    "sleeps", "partials_cancelled", "partials_expired", "missed_wakeups")]
                + [("reserved", c_uint64 * 5)])


class ServiceOpts(Structure):
    """struct smem_service_opts"""
    _fields_ = [("base", Opts), ("max_clients", c_uint32), ("node_count", c_uint32),
                ("node_size", c_uint32), ("spin_ns", c_uint32), ("handler", RPC_HANDLER),
                ("handler_arg", c_void_p), ("max_message", c_uint64),
                ("reply_timeout_ms", c_int32), ("reserved32", c_uint32),
                ("reserved", c_uint64 * 4)]


class TopicConfig(Structure):
    """struct smem_topic_config"""
    _fields_ = [("sample_size", c_uint64), ("depth", c_uint32), ("history", c_uint32),
                ("max_subscribers", c_uint32), ("views", c_uint32), ("loans", c_uint32),
                ("policy", c_uint32), ("flags", c_uint32), ("reserved", c_uint32 * 7)]


TOPIC_BLOCK = 0
TOPIC_OVERWRITE = 1
TOPIC_MULTI_PUBLISHER = 1 << 0


class TopicSample(Structure):
    """struct smem_topic_sample"""
    _fields_ = [("data", c_void_p), ("view", c_void_p), ("len", c_size_t), ("cap", c_size_t),
                ("seq", c_uint64), ("_buf", c_uint32), ("_reserved", c_uint32)]


class TopicSubStats(Structure):
    """struct smem_topic_sub_stats"""
    _fields_ = [("received", c_uint64), ("lost", c_uint64), ("lag", c_uint64),
                ("reserved", c_uint64 * 5)]


# ---------------------------------------------------------------------------------------------
# Prototypes. Handles are opaque: c_void_p.

def _proto(name: str, restype: Any, *argtypes: Any) -> None:
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_P = c_void_p
_PP = POINTER(c_void_p)
_OPTS = POINTER(Opts)

_proto("smem_strerror", c_char_p, c_int)
_proto("smem_last_error", c_char_p)
_proto("smem_unlink", c_int, c_char_p, _OPTS)

_proto("smem_region_create", c_int, c_char_p, c_size_t, _OPTS, _PP)
_proto("smem_region_open", c_int, c_char_p, _OPTS, _PP)
_proto("smem_region_close", None, _P)
_proto("smem_region_data", c_void_p, _P)
_proto("smem_region_size", c_size_t, _P)
_proto("smem_region_name", c_char_p, _P)
_proto("smem_region_is_owner", c_bool, _P)
_proto("smem_region_shutting_down", c_bool, _P)

for _kind in ("buffer", "array"):
    _proto(f"smem_{_kind}_close", None, _P)
    _proto(f"smem_{_kind}_data", c_void_p, _P)
    _proto(f"smem_{_kind}_name", c_char_p, _P)
    _proto(f"smem_{_kind}_is_owner", c_bool, _P)
    _proto(f"smem_{_kind}_shutting_down", c_bool, _P)
    _proto(f"smem_{_kind}_lock_read", c_int, _P, c_int)
    _proto(f"smem_{_kind}_lock_write", c_int, _P, c_int)
    _proto(f"smem_{_kind}_unlock", c_int, _P)
    _proto(f"smem_{_kind}_set_timeout", c_int, _P, c_int)
    _proto(f"smem_{_kind}_timeout", c_int, _P)

_proto("smem_buffer_create", c_int, c_char_p, c_size_t, _OPTS, _PP)
_proto("smem_buffer_open", c_int, c_char_p, _OPTS, _PP)
_proto("smem_buffer_write", c_int, _P, c_size_t, c_void_p, c_size_t)
_proto("smem_buffer_read", c_int, _P, c_size_t, c_void_p, c_size_t)
_proto("smem_buffer_size", c_size_t, _P)

_proto("smem_array_create", c_int, c_char_p, c_size_t, c_size_t, _OPTS, _PP)
_proto("smem_array_open", c_int, c_char_p, c_size_t, _OPTS, _PP)
_proto("smem_array_read_range", c_int, _P, c_size_t, c_void_p, c_size_t)
_proto("smem_array_write_range", c_int, _P, c_size_t, c_void_p, c_size_t)
_proto("smem_array_length", c_size_t, _P)
_proto("smem_array_elem_size", c_size_t, _P)

_proto("smem_ring_create", c_int, c_char_p, c_uint32, c_uint32, _OPTS, _PP)
_proto("smem_ring_open", c_int, c_char_p, _OPTS, _PP)
_proto("smem_ring_close", None, _P)
_proto("smem_ring_node_count", c_uint32, _P)
_proto("smem_ring_node_size", c_uint32, _P)
_proto("smem_ring_write", c_int, _P, c_void_p, c_size_t, c_int)
_proto("smem_ring_read", c_ssize_t, _P, c_void_p, c_size_t, c_int)
_proto("smem_ring_next_len", c_ssize_t, _P)
_proto("smem_ring_reserve_write", c_int, _P, POINTER(RingSlot), c_int)
_proto("smem_ring_commit", c_int, _P, POINTER(RingSlot), c_size_t)
_proto("smem_ring_abort", c_int, _P, POINTER(RingSlot))
_proto("smem_ring_reserve_read", c_int, _P, POINTER(RingSlot), c_int)
_proto("smem_ring_release", c_int, _P, POINTER(RingSlot))
_proto("smem_ring_fd", c_int, _P)
_proto("smem_ring_set_spin", None, _P, c_uint32)
_proto("smem_ring_stats", c_int, _P, POINTER(RingStats))
_proto("smem_ring_read_many", c_ssize_t, _P, c_void_p, c_size_t, POINTER(c_size_t), c_size_t,
       c_int)
_proto("smem_ring_write_many", c_ssize_t, _P, c_void_p, POINTER(c_size_t), c_size_t, c_int)

_proto("smem_rpc_open", c_int, c_char_p, POINTER(RpcOpts), _PP)
_proto("smem_rpc_close", None, _P)
_proto("smem_rpc_is_master", c_bool, _P)
_proto("smem_rpc_packet_payload", c_size_t, _P)
_proto("smem_rpc_call", c_int, _P, c_void_p, c_size_t, _PP, POINTER(c_size_t), c_int)
_proto("smem_rpc_free_response", None, c_void_p)
_proto("smem_rpc_last_error_message", c_char_p)
_proto("smem_rpc_call_async", c_int, _P, c_void_p, c_size_t, c_int, _PP)
_proto("smem_rpc_wait", c_int, _PP, c_uint, c_uint, c_int)
_proto("smem_rpc_call_done", c_bool, _P)
_proto("smem_rpc_call_result", c_int, _P, _PP, POINTER(c_size_t))
_proto("smem_rpc_call_free", None, _P)
_proto("smem_rpc_dispatch", c_int, _P, c_int)
_proto("smem_rpc_serve", c_int, _PP, c_uint, c_int)
_proto("smem_rpc_stats", c_int, _P, POINTER(RpcStats))
_proto("smem_rpc_stats_reset", None, _P)
_proto("smem_rpc_reply_set", c_int, c_void_p, c_void_p, c_size_t)
_proto("smem_rpc_reply_error", None, c_void_p, c_char_p)

_proto("smem_service_create", c_int, c_char_p, POINTER(ServiceOpts), _PP)
_proto("smem_service_serve", c_int, _P, c_int)
_proto("smem_service_clients", c_int, _P)
_proto("smem_service_request_client", c_int, POINTER(RpcRequest))
_proto("smem_service_close", None, _P)
_proto("smem_service_connect", c_int, c_char_p, POINTER(ServiceOpts), _PP)
_proto("smem_service_call", c_int, _P, c_void_p, c_size_t, _PP, POINTER(c_size_t), c_int)
_proto("smem_service_channel", c_void_p, _P)
_proto("smem_service_disconnect", None, _P)

_proto("smem_topic_create", c_int, c_char_p, POINTER(TopicConfig), _OPTS, _PP)
_proto("smem_topic_open_publisher", c_int, c_char_p, _OPTS, _PP)
_proto("smem_topic_subscribe", c_int, c_char_p, c_uint32, _OPTS, _PP)
_proto("smem_topic_loan", c_int, _P, POINTER(TopicSample), c_int)
_proto("smem_topic_publish", c_int, _P, POINTER(TopicSample), c_size_t, c_int)
_proto("smem_topic_discard", c_int, _P, POINTER(TopicSample))
_proto("smem_topic_pub_close", None, _P)
_proto("smem_topic_receive", c_int, _P, POINTER(TopicSample), c_int)
_proto("smem_topic_release", c_int, _P, POINTER(TopicSample))
_proto("smem_topic_sub_stats", c_int, _P, POINTER(TopicSubStats))
_proto("smem_topic_sub_close", None, _P)

# Pollers (smem_ring_poll_*, smem_rpc_poll_*, smem_topic_poll_*): the same five calls each.
_proto("smem_ring_poll_open", c_int, _P, c_uint, _PP)
_proto("smem_rpc_poll_open", c_int, _P, _PP)
_proto("smem_topic_poll_open", c_int, _P, _PP)
_proto("smem_service_poll_open", c_int, _P, _PP)
for _kind in ("ring", "rpc", "topic", "service"):
    _proto(f"smem_{_kind}_poll_fd", c_int, _P)
    _proto(f"smem_{_kind}_poll_arm", c_int, _P)
    _proto(f"smem_{_kind}_poll_disarm", None, _P)
    _proto(f"smem_{_kind}_poll_close", None, _P)
    if _kind != "service":  # the service's poller does not report it
        _proto(f"smem_{_kind}_poll_threaded", c_bool, _P)


# The hot calls again, without argtypes: ctypes then converts nothing (argtypes conversion
# costs about as much as the call itself), so callers pass exactly typed arguments:
# handles as c_void_p objects, sizes as c_size_t, timeouts as Python ints (C int).
_fast_lib = ctypes.CDLL(lib._name, use_errno=False)


def _fast(name: str, restype: Any) -> Any:
    f = getattr(_fast_lib, name)
    f.restype = restype
    return f


# And through a PyDLL: these keep the GIL during the call. Only for calls that cannot wait
# (timeout 0): releasing and retaking the GIL costs about a third of such a call.
_nowait_lib = ctypes.PyDLL(lib._name)


def _nowait(name: str, restype: Any) -> Any:
    f = getattr(_nowait_lib, name)
    f.restype = restype
    return f


nowait_ring_write = _nowait("smem_ring_write", c_int)
nowait_ring_read = _nowait("smem_ring_read", c_ssize_t)
nowait_ring_read_many = _nowait("smem_ring_read_many", c_ssize_t)
nowait_ring_write_many = _nowait("smem_ring_write_many", c_ssize_t)

fast_ring_write = _fast("smem_ring_write", c_int)
fast_ring_read = _fast("smem_ring_read", c_ssize_t)
fast_ring_read_many = _fast("smem_ring_read_many", c_ssize_t)
fast_ring_write_many = _fast("smem_ring_write_many", c_ssize_t)
fast_rpc_call_async = _fast("smem_rpc_call_async", c_int)
fast_rpc_wait = _fast("smem_rpc_wait", c_int)
fast_rpc_call_result = _fast("smem_rpc_call_result", c_int)
fast_rpc_call_free = _fast("smem_rpc_call_free", None)
fast_rpc_free_response = _fast("smem_rpc_free_response", None)
fast_rpc_reply_set = _fast("smem_rpc_reply_set", c_int)


# ---------------------------------------------------------------------------------------------
# Helpers.

def strerror(err: int) -> str:
    """smem_strerror(): the library's name for an errno value (either sign)."""
    s = lib.smem_strerror(-abs(err))
    return s.decode("utf-8", "replace") if s else os.strerror(abs(err))


def last_error() -> str:
    """smem_last_error(): this thread's last broker failure in words, naming the address."""
    s = lib.smem_last_error()
    return s.decode("utf-8", "replace") if s else ""


def check(rc: int, name: Optional[str] = None) -> int:
    """Return @rc if it is >= 0, else raise the matching SmemError, with the library's detail
    (smem_last_error(), read in this same thread right after the call) as ``detail``."""
    if rc < 0:
        e = error_from(rc, filename=name)
        e.detail = last_error()
        raise e
    return rc


def encode_name(name: str) -> bytes:
    """A name as the C library takes it: UTF-8 bytes without NUL (the library checks the rest)."""
    b = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    if b"\0" in b:
        raise error_from(-22, "name contains a NUL byte", filename=repr(name))
    return b


_INT_MAX = 2**31 - 1


def timeout_ms(timeout: Optional[float]) -> int:
    """Seconds (None: forever, 0: try once) to the C library's poll(2)-style milliseconds.

    A positive timeout below one millisecond rounds up to 1 ms, so it still waits.
    """
    if timeout is None:
        return -1
    if timeout < 0 or math.isnan(timeout):
        raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}")
    ms = math.ceil(timeout * 1000.0)
    if ms > _INT_MAX:
        raise ValueError(f"timeout {timeout!r} s is longer than {_INT_MAX} ms")
    return ms


# Blocking C calls wait in slices of this many ms: between two, the main thread returns to
# the interpreter, which runs signal handlers, so Ctrl-C (KeyboardInterrupt) interrupts a
# read or a lock that waits forever. The C library retries its waits on EINTR by itself.
SLICE_MS = 200
_ETIMEDOUT = 110


def sliced(fn: Any, ms: int, *args: Any) -> int:
    """fn(*args, timeout_ms) waiting up to @ms (-1: forever) in slices of SLICE_MS; returns
    fn's result (-ETIMEDOUT once @ms has passed)."""
    if 0 <= ms <= SLICE_MS:
        return fn(*args, ms)
    rc = fn(*args, SLICE_MS)  # the usual case ends here
    if rc != -_ETIMEDOUT:
        return rc
    deadline = None if ms < 0 else time.monotonic() + (ms - SLICE_MS) / 1000.0
    while True:
        step = SLICE_MS
        if deadline is not None:
            step = min(SLICE_MS, max(0, math.ceil((deadline - time.monotonic()) * 1000.0)))
        rc = fn(*args, step)
        if rc != -_ETIMEDOUT or step < SLICE_MS:
            return rc


def make_opts(broker: Optional[str] = None, mode: int = 0, flags: int = 0) -> Opts:
    """A struct smem_opts (broker address, permission bits, SMEM_* flags)."""
    o = Opts()
    if broker is not None:
        o.broker = broker.encode() if isinstance(broker, str) else bytes(broker)
    o.mode = mode
    o.flags = flags
    return o


# The CPython buffer protocol through its C API, so that any buffer-protocol object (bytes,
# bytearray, memoryview, numpy arrays, ctypes objects, mmap) can be passed to C without a copy.

class _PyBuffer(Structure):
    # Py_buffer (CPython's layout). obj is a raw pointer: the reference in it belongs to
    # CPython and is dropped by PyBuffer_Release; ctypes must not manage it.
    _fields_ = [("buf", c_void_p), ("obj", c_void_p), ("len", c_ssize_t),
                ("itemsize", c_ssize_t), ("readonly", c_int), ("ndim", c_int),
                ("format", c_char_p), ("shape", c_void_p), ("strides", c_void_p),
                ("suboffsets", c_void_p), ("internal", c_void_p)]


_PyBUF_SIMPLE = 0
_PyBUF_WRITABLE = 1
_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, POINTER(_PyBuffer), c_int]
_get_buffer.restype = c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [POINTER(_PyBuffer)]
_release_buffer.restype = None


class BufferRef:
    """A contiguous view of a buffer-protocol object, held until released (a context manager).

    ``ptr`` is its address and ``nbytes`` its size. Non-contiguous buffers raise BufferError,
    as PyObject_GetBuffer does; @writable asks for a writable one (BufferError if the object is
    read-only; TypeError if it has no buffer at all).
    """

    __slots__ = ("_view", "ptr", "nbytes")

    def __init__(self, obj: Any, writable: bool = False) -> None:
        self._view = _PyBuffer()
        _get_buffer(obj, ctypes.byref(self._view), _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE)
        self.ptr = self._view.buf
        self.nbytes = self._view.len

    def release(self) -> None:
        if self._view is not None:
            _release_buffer(ctypes.byref(self._view))
            self._view = None

    def __enter__(self) -> "BufferRef":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def readable_buffer(obj: Any) -> Tuple[Any, int, Optional[BufferRef]]:
    """(pointer argument, size, a ref to release or None) for data to be copied into smem.

    bytes go straight through (ctypes passes their storage); anything else through the
    buffer protocol.
    """
    if type(obj) is bytes:
        return obj, len(obj), None
    ref = BufferRef(obj)
    return ref.ptr, ref.nbytes, ref
