"""Region and Buffer: creation and opening by name, views, locked reads and writes, errors,
and the lock of a killed Python peer."""
import ctypes
import errno
import gc
import os

import numpy as np
import pytest

import smem


def test_region_views_share_bytes_and_readonly_view_refuses_writes(name):
    with smem.Region.create(name, 4096) as r, smem.Region.open(name, readonly=True) as o:
        assert (r.size, o.size, r.is_owner, o.is_owner) == (4096, 4096, True, False)
        w = r.buf
        w[100:103] = b"abc"
        v = o.buf
        assert bytes(v[100:103]) == b"abc"
        assert v.readonly
        with pytest.raises(TypeError):
            v[0] = 1
        v.release()
        w.release()


def test_region_close_with_a_live_view_is_refused_then_allowed(name):
    r = smem.Region.create(name, 64)
    arr = np.frombuffer(r.buf, np.uint8)[8:16]  # a numpy view of a view keeps it exported
    with pytest.raises(BufferError):
        r.close()
    assert not r.closed
    arr[0] = 9
    del arr
    r.close()
    assert r.closed
    r.close()  # idempotent
    with pytest.raises(ValueError):
        r.size


def test_region_names_errors_carry_errno_and_message(name):
    with pytest.raises(smem.NotFoundError) as e:
        smem.Region.open(name)
    assert e.value.errno == errno.ENOENT and e.value.filename == name
    assert e.value.strerror == smem.strerror(-errno.ENOENT)
    # The library's sentence names the name and the broker's address (smem_last_error).
    broker = os.environ["SMEM_BROKER"]
    assert e.value.detail == "no name '%s' at broker %s (open)" % (name, broker)
    with smem.Region.create(name, 8):
        with pytest.raises(FileExistsError) as e:
            smem.Region.create(name, 8)
        assert e.value.errno == errno.EEXIST
        assert e.value.detail == smem.last_error()
        assert e.value.detail == "name '%s' already exists at broker %s" % (name, broker)
    for bad in ("", "x" * 300):
        with pytest.raises(smem.InvalidArgumentError) as e:
            smem.Region.create(bad, 8)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        smem.Region.create("a\0b", 8)
    with pytest.raises(smem.InvalidArgumentError):
        smem.Region.create(name, 0)


def test_unlink_removes_the_name_but_keeps_the_mapping(name):
    with smem.Region.create(name, 16, persist=True) as r:
        smem.unlink(name)
        with pytest.raises(smem.NotFoundError):
            smem.Region.open(name)
        b = r.buf
        b[0] = 5
        assert b[0] == 5
        b.release()
    with pytest.raises(smem.NotFoundError):
        smem.unlink(name)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_double)]


def test_buffer_reads_and_writes_bytes_structs_and_buffers(name):
    with smem.Buffer.create(name, 1024) as b, smem.Buffer.open(name) as c:
        assert len(c) == 1024 and c.lock_timeout == 0.1
        b.pack(0, "<i", 123)
        b.pack(1000, "<i", 456)
        assert c.unpack(0, "<i") == (123,) and c.unpack(1000, "<i") == (456,)
        b.write(16, Point(3, 2.5))
        p = c.read_struct(16, Point)
        assert (p.x, p.y) == (3, 2.5)
        b.write(64, np.arange(4, dtype=np.uint16))
        out = np.zeros(4, np.uint16)
        c.read_into(64, out)
        assert out.tolist() == [0, 1, 2, 3]
        b.write(80, bytearray(b"xy"))
        b.write(82, memoryview(b"--z")[2:])
        assert c.read(80, 3) == b"xyz"
        assert c.read(0, 0) == b""


def test_buffer_out_of_range_copies_nothing(name):
    with smem.Buffer.create(name, 16) as b:
        b.write(12, b"keep")
        with pytest.raises(smem.RangeError) as e:
            b.write(14, b"abc")
        assert e.value.errno == errno.ERANGE and isinstance(e.value, IndexError)
        with pytest.raises(IndexError):
            b.read(10, 7)
        assert b.read(12, 4) == b"keep"
        with pytest.raises(BufferError):
            b.write(0, memoryview(bytes(8))[::2])  # not contiguous


def test_buffer_lock_excludes_and_times_out(name):
    with smem.Buffer.create(name, 64) as b, smem.Buffer.open(name, lock_timeout=0.02) as c:
        assert c.lock_timeout == 0.02
        with b.lock_write(timeout=1) as owner_died:
            assert owner_died is False
            b.write(0, b"under the lock")  # same thread: not locked again
            with pytest.raises(smem.TimeoutExpired) as e:
                c.read(0, 4)
            assert isinstance(e.value, TimeoutError) and e.value.errno == errno.ETIMEDOUT
            with pytest.raises(TimeoutError):
                c.lock_read(timeout=0)
        with c.lock_read(timeout=0):
            assert c.read(0, 5) == b"under"
        with pytest.raises(smem.AccessError):
            c.unlock()  # nothing held


def test_buffer_readonly_handle_cannot_write_or_lock(name):
    with smem.Buffer.create(name, 8) as b, smem.Buffer.open(name, readonly=True) as r:
        b.write(0, b"12345678")
        assert r.read(0, 8) == b"12345678"
        with pytest.raises(smem.AccessError) as e:
            r.write(0, b"x")
        assert e.value.errno == errno.EPERM
        with pytest.raises(PermissionError):
            r.lock_read()
        v = r.buf
        assert v.readonly
        v.release()


def test_buffer_lock_of_a_killed_python_peer_is_recovered(name, py_peer):
    with smem.Buffer.create(name, 32) as b:
        peer = py_peer(f"""
            b = smem.Buffer.open({name!r})
            b.lock_write()
            b.write(0, b"half-written")
            print("locked", flush=True)
            sys.stdin.read()
        """)
        peer.expect("locked")
        with pytest.raises(smem.TimeoutExpired):
            b.read(0, 4)
        peer.kill9()
        # As C gets -EOWNERDEAD once: the copy is done, the error says the data may be torn.
        with pytest.raises(smem.OwnerDeadError) as e:
            b.read(0, 12)
        assert e.value.errno == errno.EOWNERDEAD and e.value.value == b"half-written"
        assert b.read(0, 4) == b"half"  # later acquirers see a healthy lock
        with b.lock_write(timeout=1) as owner_died:
            assert owner_died is False


def test_handles_are_closed_by_garbage_collection(name):
    b = smem.Buffer.create(name, 8)
    del b
    gc.collect()
    with pytest.raises(smem.NotFoundError):
        smem.Buffer.open(name)
