"""Topic and Subscriber: zero-copy loans and read-only views, both slow-subscriber policies,
history, shutdown; C <-> Python interoperation; and kill -9 of the peer process."""
import errno
import time

import numpy as np
import pytest

import smem


def test_topic_loans_are_filled_in_place_and_received_in_order(name):
    with smem.Topic.create(name, 64, 8) as t, smem.Topic.subscribe(name) as s:
        for i in range(5):
            with t.loan(1) as loan:
                assert loan.cap == 64 and not loan.buf.readonly
                a = loan.array(np.uint32, (2, 2))
                a[:] = [[i, i + 1], [i + 2, i + 3]]
                del a
                loan.publish(16)
        for i in range(5):
            with s.receive(1) as mv:
                assert mv.readonly and len(mv) == 16
                assert list(np.frombuffer(mv, np.uint32)) == [i, i + 1, i + 2, i + 3]
        assert s.stats() == {"received": 5, "lost": 0, "lag": 0}


def test_topic_sample_views_are_read_only_and_must_not_outlive_the_release(name):
    with smem.Topic.create(name, 32, 4) as t, smem.Topic.subscribe(name) as s:
        t.publish(b"x" * 32)
        t.publish(b"y" * 32)
        smp = s.receive(1)
        assert smp.seq == 0
        with pytest.raises(TypeError):
            smp.view[0] = 1
        a = smp.array(np.uint8)
        assert not a.flags.writeable and bytes(a) == b"x" * 32
        with pytest.raises(BufferError):
            smp.release()  # released in C; the numpy array still references the memory
        del a
        seq, data = s.receive_bytes(1)
        assert (seq, data) == (1, b"y" * 32)


def test_topic_copy_publish_refuses_oversized_and_loans_check_their_views(name):
    with smem.Topic.create(name, 8, 4) as t, smem.Topic.subscribe(name) as s:
        with pytest.raises(smem.MessageSizeError):
            t.publish(b"123456789")
        t.publish(bytearray(b"abc"))
        t.publish(memoryview(b"defgh"))
        assert [s.receive_bytes(0)[1] for _ in range(2)] == [b"abc", b"defgh"]
        loan = t.loan(0)
        keep = loan.buf[:4]
        with pytest.raises(BufferError):
            loan.publish(4)
        keep.release()
        with pytest.raises(ValueError):
            loan.publish(4)
        with t.loan(0) as unused:  # a with block without publish discards
            unused.buf[:2] = b"zz"
        assert s.receive_bytes(0)[0] == 2
        with pytest.raises(smem.TimeoutExpired):
            s.receive(0)


def test_topic_history_overwrite_losses_and_block_timeouts(name):
    with smem.Topic.create(name, 8, 4, history=2, overwrite=True) as t:
        for i in range(3):
            t.publish(bytes([i]))
        with smem.Topic.subscribe(name, history=2) as late:
            assert [late.receive_bytes(0) for _ in range(2)] == [(1, b"\x01"), (2, b"\x02")]
            for i in range(3, 13):
                t.publish(bytes([i]))
            got = [late.receive_bytes(0)[0] for _ in range(4)]
            assert got == [9, 10, 11, 12]
            assert late.stats()["lost"] == 6  # 3..8 overwritten, counted exactly
    with smem.Topic.create(name + "-b", 8, 2) as t, smem.Topic.subscribe(name + "-b") as s:
        t.publish(b"1")
        t.publish(b"2")
        t0 = time.monotonic()
        with pytest.raises(smem.TimeoutExpired):
            t.publish(b"3", timeout=0.05)  # the block policy waits for the subscriber
        assert time.monotonic() - t0 >= 0.04
        assert s.receive_bytes(0) == (0, b"1")
        t.publish(b"3", timeout=1)


def test_topic_views_limit_and_shutdown_by_the_creator(name):
    t = smem.Topic.create(name, 8, 4, views=1)
    s = smem.Topic.subscribe(name)
    t.publish(b"a")
    t.publish(b"b")
    held = s.receive(0)
    with pytest.raises(smem.SmemError) as e:
        s.receive(0)
    assert e.value.errno == errno.ENOBUFS
    held.release()
    t.close()
    assert s.receive_bytes(0) == (1, b"b")  # what was published is still delivered
    with pytest.raises(smem.ShutdownError):
        s.receive(1)
    s.close()
    with pytest.raises(smem.NotFoundError):
        smem.Topic.subscribe(name + "-none")
    with pytest.raises(smem.InvalidArgumentError):
        smem.Topic.create(name + "-bad", 0, 4)


# ---- C <-> Python --------------------------------------------------------------------------

def test_topic_c_publishes_python_subscribes(name, c_peer):
    peer = c_peer("topic-publish", name, "20", "4096")
    peer.expect("ready")
    with smem.Topic.subscribe(name) as s:
        peer.proc.stdin.write("go\n")
        peer.proc.stdin.flush()
        for i in range(20):  # more than the depth: C waits for us (block policy)
            with s.receive(5) as mv:
                assert len(mv) == 4096
                assert int.from_bytes(mv[:4], "little") == i
                assert mv[4:] == bytes([i & 0xff]) * 4092
        peer.finish()
        with pytest.raises(smem.ShutdownError):
            s.receive(1)


def test_topic_python_publishes_c_subscribes(name, c_peer):
    with smem.Topic.create(name, 256, 4) as t:
        peer = c_peer("topic-receive", name, "10")
        peer.expect("ready")
        for i in range(10):
            with t.loan(5) as loan:
                loan.array("<u8")[:] = i
                loan.publish(8 + i, timeout=5)
        out = peer.finish().splitlines()
        assert out == [f"{i} {8 + i} {i:02x}00000000000000" for i in range(10)]


# ---- kill -9 of the peer -------------------------------------------------------------------

def test_topic_killed_subscriber_holding_a_view_stops_blocking_the_publisher(name, py_peer):
    with smem.Topic.create(name, 64, 2) as t:
        peer = py_peer(f"""
            s = smem.Topic.subscribe({name!r})
            print("subscribed", flush=True)
            held = s.receive(5)
            print("holding", held.seq, flush=True)
            sys.stdin.read()
        """)
        peer.expect("subscribed")
        t.publish(b"0")
        peer.expect("holding 0")
        t.publish(b"1")
        t.publish(b"2")
        with pytest.raises(smem.TimeoutExpired):
            t.publish(b"3", timeout=0.05)  # a live subscriber 2 behind: the block policy
        peer.kill9()
        t.publish(b"3", timeout=5)  # its slot is evicted once found dead
        for i in range(4, 12):
            t.publish(bytes([i]), timeout=5)


def test_topic_killed_c_publisher_leaves_its_samples_and_gives_timeouts(name, c_peer):
    """The creator killed -9 does not shut the topic down (nobody closed it): the survivor
    receives what was published, then times out, as a C subscriber does."""
    peer = c_peer("topic-publish", name, "3", "16")
    peer.expect("ready")
    with smem.Topic.subscribe(name) as s:
        peer.proc.stdin.write("go\n")
        peer.proc.stdin.flush()
        assert [s.receive_bytes(5)[0] for _ in range(3)] == [0, 1, 2]
        peer.kill9()
        with pytest.raises(smem.TimeoutExpired):
            s.receive(0.1)
