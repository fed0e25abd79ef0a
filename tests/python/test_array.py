"""Array: numpy views of shared memory, dtype and shape recorded and checked on open, hostile
headers, plain C arrays, and locked copies."""
import errno
import struct

import numpy as np
import pytest

import smem
from smem.array import MAGIC


def test_array_view_is_shared_and_dtype_shape_come_from_the_region(name):
    with smem.Array.create(name, (3, 4), np.float32) as a, smem.Array.open(name) as b:
        assert (b.dtype, b.shape, b.size, b.nbytes, len(b)) == (np.float32, (3, 4), 12, 48, 3)
        x = a.array
        x[1, 2] = 7.5
        y = b.array
        assert y[1, 2] == 7.5 and y.flags.c_contiguous and y.ctypes.data % 64 == 0
        y[...] = np.arange(12).reshape(3, 4)
        assert x.sum() == 66
        z = np.asarray(b)  # __array__: the same shared memory, no copy
        assert np.shares_memory(z, y) and np.asarray(b, np.float64).dtype == np.float64
        del x, y, z
        assert np.array_equal(b.read(), np.arange(12, dtype=np.float32).reshape(3, 4))


def test_array_open_checks_dtype_and_shape(name):
    with smem.Array.create(name, (2, 5), "<i4"):
        with smem.Array.open(name, np.int32, (2, 5)) as ok:
            assert ok.shape == (2, 5)
        for kw, why in ((dict(dtype=np.uint32), "dtype"), (dict(shape=(5, 2)), "shape"),
                        (dict(shape=10), "shape")):
            with pytest.raises(smem.ProtocolError) as e:
                smem.Array.open(name, **kw)
            assert e.value.errno == errno.EPROTO and why in e.value.strerror
        # Another element size is refused by the C library itself.
        with pytest.raises(smem.ProtocolError):
            smem.Array.open(name, np.float64)


def test_array_structured_dtype_round_trips(name):
    dt = np.dtype([("id", "<u4"), ("pos", "<f8", (3,)), ("tag", "S5")])
    with smem.Array.create(name, 6, dt) as a, smem.Array.open(name, dt) as b:
        x = a.array
        x[2] = (7, (1.0, 2.0, 3.0), b"hello")
        del x
        got = b.read()[2]
        assert got["id"] == 7 and got["pos"].tolist() == [1.0, 2.0, 3.0] and got["tag"] == b"hello"


def test_array_refuses_object_dtypes():
    with pytest.raises(TypeError):
        smem.Array.create("never-created", 3, object)


def _corrupt(name, offset, data):
    """Overwrite bytes of the array's header through a plain (header=False) byte view."""
    with smem.Array.open(name, np.uint8, header=False) as raw:
        v = raw.array
        v[offset:offset + len(data)] = np.frombuffer(data, np.uint8)
        del v


@pytest.mark.parametrize("offset,data,text", [
    (0, b"\x93NOTNPY!", "no dtype header"),
    (8, struct.pack("<I", 2), "version"),
    (12, struct.pack("<I", 1 << 30), "data offset"),
    (12, struct.pack("<I", 257), "data offset"),
    (16, struct.pack("<I", 100000), "descriptor length"),
    (20, b"__import__('os')", "bad descriptor"),
    (20, b"{'descr': '<f8', 'fortran_order': False, 'shape': (99,), }      ", "does not fill"),
    (20, b"{'descr': 'O', 'fortran_order': False, 'shape': (4,), }         ", "bad descriptor"),
    (20, b"{'descr': '<i8', 'fortran_order': True, 'shape': (4,), }        ", "bad descriptor"),
])
def test_array_hostile_header_gives_eproto(name, offset, data, text):
    with smem.Array.create(name, 4, np.uint8) as a:
        _corrupt(name, offset, data)
        with pytest.raises(smem.ProtocolError) as e:
            smem.Array.open(name)
        assert text in e.value.strerror
        assert a.shape == (4,)  # the creator's private copy is untouched


def test_array_header_not_written_yet_is_eagain(name):
    with smem.Array.create(name, 512, np.uint8, header=False):
        with pytest.raises(smem.SmemError) as e:
            smem.Array.open(name)
        assert e.value.errno == errno.EAGAIN


def test_plain_c_array_needs_a_dtype_and_a_fitting_shape(name):
    with smem.Array.create(name, 12, np.int16, header=False) as a:
        with pytest.raises(TypeError):
            smem.Array.open(name, header=False)
        with smem.Array.open(name, np.int16, (3, 4), header=False) as b:
            assert b.shape == (3, 4)
        with pytest.raises(smem.ProtocolError):
            smem.Array.open(name, np.int16, (5,), header=False)
        with pytest.raises(smem.ProtocolError):
            smem.Array.open(name, np.int16)  # no header: too small to hold one
        with smem.Array.open(name, np.int16, header=False) as c:
            a.write(np.arange(12))
            assert c.read().tolist() == list(range(12))
        raw = bytes(a.array)  # a copy: the view it came from is gone
        assert not raw.startswith(MAGIC)


def test_array_write_broadcasts_and_readonly_view(name):
    with smem.Array.create(name, (2, 3), np.int64) as a, \
            smem.Array.open(name, readonly=True) as r:
        a.write(5)
        a.write([1, 2, 3])
        v = r.array
        assert v.tolist() == [[1, 2, 3], [1, 2, 3]]
        with pytest.raises(ValueError):
            v[0, 0] = 9
        del v
        with pytest.raises(smem.AccessError):
            r.write(0)


def test_array_close_waits_for_numpy_views(name):
    a = smem.Array.create(name, 8, np.float64)
    view = a.array[2:4]
    with pytest.raises(BufferError):
        a.close()
    del view
    a.close()


def test_array_lock_held_by_other_handle_blocks_locked_copies(name):
    with smem.Array.create(name, 4, np.int32) as a, smem.Array.open(name, lock_timeout=0) as b:
        with a.lock_write():
            with pytest.raises(smem.TimeoutExpired):
                b.read()
        assert b.read().tolist() == [0, 0, 0, 0]
