"""Ring: copying, caller-buffer and zero-copy reads and writes, errors, timeouts with the GIL
released, asyncio through the eventfd, shutdown, and a killed Python peer."""
import asyncio
import errno
import struct
import threading
import time

import numpy as np
import pytest

import smem


def test_ring_moves_bytes_and_buffer_objects_in_order(name):
    with smem.Ring.create(name, 4, 16) as w, smem.Ring.open(name) as r:
        assert (r.node_count, r.node_size) == (4, 16)
        w.write(b"first")
        w.write(bytearray(b"second"))
        w.write(np.array([1, 2], dtype=np.int32))
        w.write(b"")
        assert r.read(0) == b"first"
        assert r.read(0) == b"second"
        assert np.frombuffer(r.read(0), np.int32).tolist() == [1, 2]
        assert r.read(0) == b""
        with pytest.raises(smem.TimeoutExpired) as e:
            r.read(0)
        assert e.value.errno == errno.ETIMEDOUT


def test_ring_buffer_writes_hold_no_reference_afterwards(name):
    import sys

    with smem.Ring.create(name, 4, 64) as w, smem.Ring.open(name) as r:
        arr = np.arange(8, dtype=np.int32)
        refs = sys.getrefcount(arr)
        for _ in range(100):
            w.write(arr)
            r.read(0)
        with pytest.raises(smem.MessageSizeError):
            w.write(np.zeros(100, np.int32))
        assert sys.getrefcount(arr) == refs
        arr.resize(4, refcheck=True)  # would raise if a buffer export were still held


def test_ring_refuses_oversized_and_full_writes(name):
    with smem.Ring.create(name, 2, 8) as w:
        with pytest.raises(smem.MessageSizeError) as e:
            w.write(b"123456789")
        assert e.value.errno == errno.EMSGSIZE
        w.write(b"a")
        w.write(b"b")
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            w.write(b"c", timeout=0.05)
        assert time.monotonic() - t0 >= 0.04


def test_ring_read_into_a_small_buffer_consumes_nothing(name):
    with smem.Ring.create(name, 4, 32) as w, smem.Ring.open(name) as r:
        w.write(b"twelve bytes")
        small = bytearray(4)
        with pytest.raises(smem.MessageSizeError):
            r.read_into(small, 0)
        assert r.next_len() == 12
        out = np.zeros(32, np.uint8)
        assert r.read_into(out, 0) == 12
        assert out[:12].tobytes() == b"twelve bytes"
        assert r.next_len() is None
        with pytest.raises(BufferError):
            r.read_into(b"immutable", 0)


def test_ring_zero_copy_read_and_write(name):
    with smem.Ring.create(name, 4, 64) as w, smem.Ring.open(name) as r:
        with w.reserve_write() as slot:
            assert len(slot.buf) == 64
            slot.buf[:5] = b"hello"
            slot.commit(5)
        with w.reserve_write() as slot:
            slot.buf[:3] = b"bad"  # no commit: aborted, no message
        with r.read_view() as mv:
            assert mv.readonly and bytes(mv) == b"hello"
            assert np.frombuffer(mv, np.uint8).sum() == sum(b"hello")
        with pytest.raises(smem.TimeoutExpired):
            r.read(0)
        # A view kept beyond the block is refused; the node goes back all the same.
        w.write(b"again")
        kept = None
        with pytest.raises(BufferError):
            with r.read_view(0) as mv:
                kept = np.frombuffer(mv, np.uint8)
        del kept, mv  # the view that could not be released, and what held it
        w.write(b"next")
        assert r.read(0) == b"next"


def test_ring_blocking_read_releases_the_gil(name):
    with smem.Ring.create(name, 4, 16) as w, smem.Ring.open(name) as r:
        got = []
        t = threading.Thread(target=lambda: got.append(r.read(5)))
        t.start()
        # This thread keeps running Python while the reader is blocked in C.
        spins = 0
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            spins += 1
        w.write(b"wake")
        t.join(5)
        assert got == [b"wake"] and spins > 1000


def test_ring_aread_awaits_a_poller(name):
    with smem.Ring.create(name, 4, 16) as w, smem.Ring.open(name) as r:
        async def main():
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, w.write, b"late")
            first = await r.aread(timeout=5)
            w.write(b"ready")
            second = await r.aread(timeout=5)
            with pytest.raises(smem.TimeoutExpired):
                await r.aread(timeout=0.05)
            return first, second

        assert asyncio.run(main()) == (b"late", b"ready")
        assert r.fileno() >= 0


def test_ring_shutdown_by_creator(name):
    w = smem.Ring.create(name, 4, 16)
    with smem.Ring.open(name) as r:
        w.write(b"left")
        w.close()
        assert r.read(0) == b"left"
        with pytest.raises(smem.ShutdownError) as e:
            r.read(1)
        assert e.value.errno == errno.ESHUTDOWN
        with pytest.raises(BrokenPipeError):
            r.write(b"x")


def test_ring_open_errors(name):
    with pytest.raises(smem.NotFoundError):
        smem.Ring.open(name)
    with smem.Region.create(name, 64):
        with pytest.raises(smem.WrongKindError) as e:
            smem.Ring.open(name)
        assert e.value.errno == errno.EMEDIUMTYPE
        with pytest.raises(smem.WrongKindError):
            smem.Array.open(name)
    with pytest.raises(smem.InvalidArgumentError):
        smem.Ring.create(name, 1, 16)
    with pytest.raises(ValueError):
        smem.Ring.create(name, 2, 16).read(-1)


def test_ring_between_python_processes_and_a_killed_writer(name, py_peer):
    with smem.Ring.create(name, 8, 64) as r:
        peer = py_peer(f"""
            r = smem.Ring.open({name!r})
            for i in range(5):
                r.write(struct.pack("<I", i))
            slot = r.reserve_write()   # killed holding a node mid-write
            slot.buf[:4] = b"torn"
            print("holding", flush=True)
            sys.stdin.read()
        """)
        peer.expect("holding")
        assert [struct.unpack("<I", r.read(5))[0] for _ in range(5)] == list(range(5))
        peer.kill9()
        # The dead writer's node is stepped over, as for C: the ring is not wedged.
        r.write(b"after")
        assert r.read(5) == b"after"
        assert r.stats()["drops_recovered"] == 1


def test_ring_large_nodes_and_concurrent_reader_threads(name):
    big = bytes(range(256)) * 1200  # 307200 bytes: read() takes the reserve/release path
    with smem.Ring.create(name, 2, len(big)) as w, smem.Ring.open(name) as r:
        w.write(big)
        assert r.read(0) == big
    with smem.Ring.create(name + "-t", 8, 16) as w, smem.Ring.open(name + "-t") as r:
        got = [[], []]

        def reader(out):
            while True:
                m = r.read(5)
                if m == b"end":
                    return
                out.append(int(m))

        threads = [threading.Thread(target=reader, args=(g,)) for g in got]
        for t in threads:
            t.start()
        for i in range(2000):
            w.write(b"%d" % i, 5)
        w.write(b"end", 5)
        w.write(b"end", 5)
        for t in threads:
            t.join(10)
        # Each message read exactly once, in order within each reader (one producer: FIFO).
        assert sorted(got[0] + got[1]) == list(range(2000))
        assert got[0] == sorted(got[0]) and got[1] == sorted(got[1])


def test_ctrl_c_interrupts_waits_without_timeout(name, py_peer):
    """A read, a lock or a call waiting forever in the main thread still raises
    KeyboardInterrupt on SIGINT (the waits are sliced), and the object stays usable."""
    peer = py_peer(f"""
        import signal, threading
        def interrupt_soon():
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        with smem.Ring.create({name!r}, 2, 8) as r, \\
                smem.Buffer.create({name!r} + "-b", 8) as b, \\
                smem.Buffer.open({name!r} + "-b") as b2, \\
                smem.Rpc.open({name!r} + "-c") as m, \\
                smem.Rpc.open({name!r} + "-c", lambda q: __import__("time").sleep(30)):
            for what, wait in (("read", lambda: r.read()),
                               ("lock", lambda: b2.lock_write()),
                               ("call", lambda: m.call(b"x"))):
                interrupt_soon()
                try:
                    with b.lock_write() if what == "lock" else open(os.devnull):
                        wait()
                except KeyboardInterrupt:
                    print(what, "interrupted", flush=True)
            r.write(b"still ok")
            print(r.read(1).decode(), flush=True)
            os._exit(0)  # the handler still sleeps: do not wait for it
    """)
    for line in ("read interrupted", "lock interrupted", "call interrupted", "still ok"):
        assert peer.line() == line


def test_ring_batches_write_many_and_read_many(name):
    with smem.Ring.create(name, 8, 16) as w, smem.Ring.open(name) as r:
        msgs = [b"m%d" % i for i in range(6)] + [bytearray(b"buf"), memoryview(b"view")]
        assert w.write_many(msgs, timeout=0) == 8
        assert r.read_many(5, timeout=0) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert r.read_many(10, timeout=1) == [b"m5", b"buf", b"view"]
        with pytest.raises(smem.TimeoutExpired):
            r.read_many(4, timeout=0)
        with pytest.raises(smem.TimeoutExpired) as e:
            w.write_many([b"x"] * 9, timeout=0)  # 8 nodes: the ninth finds no room
        assert e.value.written == 8
        with pytest.raises(smem.MessageSizeError) as e:
            w.write_many([b"y" * 17], timeout=0)
        assert e.value.written == 0
        assert len(r.read_many(100, timeout=0)) == 8
        # Sizes are nbytes (an int32 array of 3 is 12 bytes), empty messages are messages,
        # any iterable goes; an oversized message stops the batch after those before it.
        arr = np.arange(3, dtype=np.int32)
        assert w.write_many(iter([arr, b"", b"z"]), timeout=0) == 3
        assert r.read_many(3, timeout=0) == [arr.tobytes(), b"", b"z"]
        with pytest.raises(smem.MessageSizeError) as e:
            w.write_many([b"a", b"b", b"y" * 17, b"c"], timeout=0)
        assert e.value.written == 2
        assert r.read_many(8, timeout=0) == [b"a", b"b"]
        assert w.write_many([], timeout=0) == 0
        with pytest.raises(ValueError):
            r.read_many(0, timeout=0)
    with pytest.raises(ValueError):
        w.write_many([b"closed"])
    with pytest.raises(ValueError):
        r.read(0)
