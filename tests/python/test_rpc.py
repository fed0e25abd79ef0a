"""Rpc: Python handlers, sync, async and asyncio calls, remote errors with their messages,
timeouts, dispatch mode, and a killed or closing Python peer."""
import asyncio
import errno
import struct
import threading
import time

import pytest

import smem
from conftest import stalling_server


def add_bytes(req: bytes) -> bytes:
    if len(req) != 2:
        raise OSError(errno.EINVAL, "expected two bytes")
    return struct.pack("<i", req[0] + req[1])


def test_rpc_call_runs_the_python_handler(name):
    with smem.Rpc.open(name) as master, smem.Rpc.open(name, add_bytes) as slave:
        assert master.is_master and not slave.is_master
        assert master.call(bytes([123, 10]), timeout=5) == struct.pack("<i", 133)
        assert master.call(bytearray([1, 2]), timeout=5) == struct.pack("<i", 3)
        st = master.stats()
        assert st["requests_sent"] == 2 and st["responses_received"] == 2
        assert st["missed_wakeups"] == 0
        with pytest.raises(smem.BusyError):
            smem.Rpc.open(name)


def test_rpc_handler_errors_reach_the_caller_with_their_message(name):
    def handler(req: bytes):
        if req == b"oserror":
            raise PermissionError(errno.EACCES, "not for you")
        if req == b"bug":
            raise KeyError("missing")
        if req == b"empty":
            return None
        return memoryview(req)[::-1].tobytes()

    with smem.Rpc.open(name) as m, smem.Rpc.open(name, handler) as s:
        with pytest.raises(smem.AccessError) as e:
            m.call(b"oserror", 5)
        assert e.value.errno == errno.EACCES and e.value.strerror == "not for you"
        assert e.value.remote_message == "not for you"
        with pytest.raises(smem.SmemError) as e:
            m.call(b"bug", 5)
        assert e.value.errno == errno.EREMOTEIO and e.value.strerror == "KeyError: 'missing'"
        assert m.call(b"empty", 5) == b""
        assert m.call(b"abc", 5) == b"cba"
        # The slave has a handler, the master none: the slave's calls get ENOSYS at once.
        with pytest.raises(smem.NoHandlerError) as e:
            s.call(b"x", 5)
        assert e.value.errno == errno.ENOSYS


def test_rpc_large_messages_are_split_and_reassembled(name):
    payload = bytes(range(256)) * 1000  # 256000 bytes over 4 KiB nodes
    with smem.Rpc.open(name, node_size=4096, node_count=8) as m, \
            smem.Rpc.open(name, lambda r: r[::-1]) as s:
        assert m.packet_payload == 4096 - 64
        assert m.call(payload, 10) == payload[::-1]
        assert m.stats()["packets_sent"] >= 63
        del s


def test_rpc_timeout_leaves_nothing_behind(name):
    gate = threading.Event()

    def slow(req: bytes) -> bytes:
        gate.wait(5)
        return req

    with smem.Rpc.open(name) as m, smem.Rpc.open(name, slow):
        t0 = time.monotonic()
        with pytest.raises(smem.TimeoutExpired):
            m.call(b"late", 0.05)
        assert time.monotonic() - t0 < 2
        gate.set()
        assert m.call(b"next", 5) == b"next"
        assert m.stats()["timeouts"] == 1


def test_rpc_async_calls_and_wait(name):
    with smem.Rpc.open(name) as m, smem.Rpc.open(name, add_bytes):
        calls = [m.call_async(bytes([i, 1]), 5) for i in range(5)]
        assert smem.Rpc.wait(calls, timeout=5, all=True) == 5
        assert all(c.done() for c in calls)
        assert [struct.unpack("<i", c.result(0))[0] for c in calls] == [1, 2, 3, 4, 5]
        for c in calls:
            c.free()
        with m.call_async(b"bad") as c:
            with pytest.raises(smem.InvalidArgumentError):
                c.result(5)
        left = m.call_async(bytes([1, 1]))  # freed by close()
        assert left is not None


def test_rpc_acall_awaits_without_blocking_the_loop(name):
    def handler(req: bytes) -> bytes:
        time.sleep(0.02)
        return add_bytes(req)

    with smem.Rpc.open(name) as m, smem.Rpc.open(name, handler):
        async def main():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.001)
                    ticks += 1

            t = asyncio.ensure_future(ticker())
            out = await asyncio.gather(*[m.acall(bytes([i, 2]), timeout=5) for i in range(8)])
            with pytest.raises(smem.InvalidArgumentError):
                await m.acall(b"bad", timeout=5)
            # A cancelled acall abandons its call; the channel stays usable.
            task = asyncio.ensure_future(m.acall(bytes([1, 1]), timeout=5))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            t.cancel()
            return [struct.unpack("<i", r)[0] for r in out], ticks

        values, ticks = asyncio.run(main())
        assert values == [i + 2 for i in range(8)]
        assert ticks > 5  # the loop kept running while calls were pending


def test_rpc_dispatch_mode_runs_handlers_in_the_callers_thread(name):
    seen = []

    def handler(req: bytes) -> bytes:
        seen.append(threading.get_ident())
        return req.upper()

    with smem.Rpc.open(name) as m, smem.Rpc.open(name, handler, dispatch=True) as s:
        result = []
        t = threading.Thread(target=lambda: result.append(m.call(b"hi", 5)))
        t.start()
        handled = 0
        deadline = time.monotonic() + 5
        while not handled and time.monotonic() < deadline:
            handled = s.dispatch(0.5)
        t.join(5)
        assert handled == 1 and result == [b"HI"] and seen == [threading.get_ident()]
        assert smem.Rpc.serve([s], timeout=0) == 0


def test_rpc_killed_python_peer_fails_calls_with_econnreset(name, py_peer):
    with smem.Rpc.open(name) as m:
        peer = py_peer(stalling_server(name))
        peer.expect("ready")
        pending = m.call_async(b"never answered", timeout=30)
        peer.expect("in handler")
        peer.kill9()
        with pytest.raises(smem.PeerResetError) as e:
            pending.result(10)
        assert e.value.errno == errno.ECONNRESET and isinstance(e.value, ConnectionResetError)
        pending.free()
        with pytest.raises(smem.PeerResetError):
            m.call(b"again", 5)


def test_rpc_acall_sees_a_killed_peer_and_its_deadline_without_threads(name, py_peer):
    """acall() awaits the channel's poller: a peer killed meanwhile fails it promptly, a
    deadline ends it, and no thread is started for either."""
    with smem.Rpc.open(name) as m:
        peer = py_peer(stalling_server(name))
        peer.expect("ready")

        async def main():
            threads = threading.active_count()
            late = asyncio.ensure_future(m.acall(b"late", timeout=0.2))
            t0 = time.monotonic()
            with pytest.raises(smem.TimeoutExpired):
                await late
            took = time.monotonic() - t0
            call = asyncio.ensure_future(m.acall(b"never answered", timeout=30))
            await asyncio.sleep(0)
            assert threading.active_count() == threads
            peer.kill9()
            t0 = time.monotonic()
            with pytest.raises(smem.PeerResetError):
                await call
            return took, time.monotonic() - t0

        took, reset_after = asyncio.run(main())
        assert 0.15 < took < 5 and reset_after < 5
        assert m.stats()["peer_resets"] >= 1


def test_rpc_closing_python_peer_fails_calls_with_eshutdown(name, py_peer):
    peer = py_peer(f"""
        ch = smem.Rpc.open({name!r})
        print("ready", flush=True)
        sys.stdin.read()
        ch.close()
    """)
    peer.expect("ready")
    with smem.Rpc.open(name, lambda r: r) as s:
        peer.finish()
        with pytest.raises(smem.ShutdownError) as e:
            s.call(b"x", 5)
        assert e.value.errno == errno.ESHUTDOWN


def test_rpc_handler_runs_in_a_python_service_thread_stopped_by_close(name):
    where = []

    def handler(req: bytes) -> bytes:
        where.append(threading.current_thread().name)
        return req

    m = smem.Rpc.open(name)
    s = smem.Rpc.open(name, handler)
    service = s._service
    assert service.is_alive() and service.daemon
    assert m.call(b"x", 5) == b"x" and where == [f"smem-rpc {name}"[:60]]
    with pytest.raises(smem.InvalidArgumentError):
        s.dispatch(0)  # the service thread dispatches; nobody else may
    s.close()
    assert not service.is_alive()
    with pytest.raises(smem.ShutdownError):
        m.call(b"y", 5)
    m.close()


def test_rpc_close_ends_a_wait_for_a_pending_call_with_eshutdown(name):
    gate = threading.Event()
    with smem.Rpc.open(name, lambda r: gate.wait(5) and r):
        m = smem.Rpc.open(name)
        call = m.call_async(b"slow")
        outcome = []

        def waiter():
            try:
                call.result(None)
            except smem.SmemError as e:
                outcome.append(e.errno)

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.05)
        m.close()  # frees the call: the waiter must not stay blocked on a freed handle
        t.join(5)
        gate.set()
        assert outcome == [errno.ESHUTDOWN] and not t.is_alive()
