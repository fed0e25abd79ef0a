"""Pollers: the fds of rings, RPC channels and topic subscribers in asyncio's loop (add_reader),
with no helper thread where io_uring allows; closing a handle closes its pollers."""
import asyncio
import os
import select
import threading

import pytest

import smem


def _native_threads() -> int:
    """Threads that Python's threading module does not know (a library helper thread)."""
    return len(os.listdir("/proc/self/task")) - threading.active_count()


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_ring_poller_fd_is_readable_only_when_armed_and_a_message_came(name, py_peer):
    with smem.Ring.create(name, 4, 16) as r, r.poller() as p:
        assert p.arm() is False  # empty: armed
        assert not _readable(p.fileno(), 0.05)
        peer = py_peer(f"""
            with smem.Ring.open({name!r}) as w:
                w.write(b"from a peer", 5)
        """)
        assert _readable(p.fileno(), 5)
        peer.finish()
        p.disarm()
        assert not _readable(p.fileno(), 0)
        assert r.read(0) == b"from a peer"
        r.write(b"here")
        assert p.arm() is True  # something there: nothing armed
        assert r.read(0) == b"here"


def test_ring_writer_poller_fires_when_room_appears(name):
    with smem.Ring.create(name, 2, 8) as r, r.poller(write=True) as p:
        assert p.arm() is True
        r.write(b"a")
        r.write(b"b")
        assert p.arm() is False
        assert r.read(0) == b"a"
        assert _readable(p.fileno(), 5)


def test_one_asyncio_loop_serves_a_ring_an_rpc_channel_and_a_topic(name, py_peer):
    """A ring reader, a dispatch-mode RPC server and a topic subscriber as three tasks of one
    loop, fed by another Python process; where io_uring has futex waits, no thread is
    started for any of them."""
    with smem.Ring.create(name + "-r", 8, 32) as ring, \
            smem.Rpc.open(name + "-c", lambda req: req[::-1], dispatch=True) as ch, \
            smem.Topic.create(name + "-t", 32, 4, multi_publisher=True) as topic, \
            smem.Topic.subscribe(name + "-t") as sub:
        threaded = sub.poller()
        no_thread = not threaded.threaded
        threaded.close()
        before = _native_threads()
        peer = py_peer(f"""
            with smem.Ring.open({name + "-r"!r}) as w, smem.Rpc.open({name + "-c"!r}) as c, \\
                    smem.Topic.open({name + "-t"!r}) as t:
                for i in range(30):
                    w.write(b"m%d" % i, 5)
                    assert c.call(b"abc%d" % i, 5) == (b"abc%d" % i)[::-1]
                    t.publish(b"s%d" % i, 5)
            print("done", flush=True)
        """)

        async def read_ring():
            return [await ring.aread(10) for _ in range(30)]

        async def serve():
            n = 0
            while n < 30:
                n += await ch.adispatch(10)
            return n

        async def receive():
            out = []
            for _ in range(30):
                with await sub.areceive(10) as mv:
                    out.append(bytes(mv))
            out.append(_native_threads())  # every poller still open, some armed meanwhile
            return out

        async def main():
            return await asyncio.gather(read_ring(), serve(), receive())

        msgs, served, samples = asyncio.run(main())
        assert msgs == [b"m%d" % i for i in range(30)]
        assert served == 30
        assert samples[:30] == [b"s%d" % i for i in range(30)]
        if no_thread:
            assert samples[30] == before
        else:  # the fallback: a helper thread per poller, as documented
            assert samples[30] >= before + 3
        peer.expect("done")
        peer.finish()


def test_async_waits_time_out_and_concurrent_awaits_get_their_own_poller(name):
    with smem.Topic.create(name, 8, 4) as t, smem.Topic.subscribe(name) as s, \
            smem.Ring.create(name + "-r", 4, 8) as r:
        async def main():
            with pytest.raises(smem.TimeoutExpired):
                await s.areceive(0.05)
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, r.write, b"1")
            loop.call_later(0.1, r.write, b"2")
            both = await asyncio.gather(r.aread(5), r.aread(5))
            loop.call_later(0.05, t.publish, b"late")
            smp = await s.areceive(5)
            with smp as mv:
                return sorted(both), bytes(mv)

        assert asyncio.run(main()) == ([b"1", b"2"], b"late")


def test_closing_a_handle_closes_its_pollers(name):
    r = smem.Ring.create(name, 4, 8)
    p = r.poller()
    fd = p.fileno()
    assert p.arm() is False
    r.close()
    assert p.closed
    with pytest.raises(ValueError):
        p.arm()
    p.disarm()  # harmless
    p.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # the poller's fd went with it
    with smem.Rpc.open(name + "-c", dispatch=True) as ch, ch.poller() as q:
        assert q.arm() is True  # the first arm: look first
        assert ch.dispatch(0) == 0
        assert q.arm() is False
