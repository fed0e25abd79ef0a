"""C and Python on the same objects: what C writes Python reads and the other way round, for
rings, arrays and RPC; a killed peer gives the survivor the same error on either side; and
the Python examples print what the C examples print."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import smem
from conftest import BUILD, ROOT, stalling_server


def test_ring_c_writes_python_reads(name, c_peer):
    with smem.Ring.create(name, 4, 32) as r:
        peer = c_peer("ring-write", name, "20")  # more than the ring holds: C waits for room
        got = [r.read(5) for _ in range(20)]
        peer.finish()
        assert got == [f"c2py-{i}".encode() for i in range(20)]


def test_ring_python_writes_c_reads(name, c_peer):
    msgs = [bytes([i]) * i for i in range(1, 9)] + [b"", np.arange(4, dtype="<u2").tobytes()]
    with smem.Ring.create(name, 4, 16) as w:
        peer = c_peer("ring-read", name, str(len(msgs)))
        for m in msgs:
            w.write(m, timeout=5)
        out = peer.finish().splitlines()
        assert out == [m.hex() for m in msgs]


def test_array_c_writes_python_reads(name, c_peer):
    peer = c_peer("array-create", name, "50")
    peer.expect("ready")
    with smem.Array.open(name, np.int32, (5, 10), header=False) as a:
        assert np.array_equal(a.read().ravel(), np.arange(50) ** 2 - 7)
        with pytest.raises(smem.ProtocolError):
            smem.Array.open(name, np.int64, header=False)  # C's element size check
    peer.finish()


@pytest.mark.parametrize("dtype,values", [
    (np.float64, [0.5, -2.0, 1e100, 3.25]),
    (np.int32, [1, -1, 2**31 - 1, -2**31]),
])
def test_array_python_writes_c_reads_past_the_dtype_header(name, c_peer, dtype, values):
    with smem.Array.create(name, (2, 2), dtype) as a:
        a.write(np.array(values, dtype).reshape(2, 2))
        peer = c_peer("array-print", name, str(np.dtype(dtype).itemsize))
        out = peer.finish().splitlines()
        assert int(out[0]) == a._offset == 256
        assert [float(v) for v in out[1:]] == [float(v) for v in values]


def test_rpc_python_calls_c_handler(name, c_peer):
    peer = c_peer("rpc-serve", name)
    peer.expect("ready")
    with smem.Rpc.open(name) as m:
        assert m.call(b"python", 5) == b"c:nohtyp"
        with pytest.raises(smem.AccessError) as e:
            m.call(b"fail", 5)
        assert e.value.remote_message == "C handler refused"
        peer.finish()
        with pytest.raises(smem.ShutdownError):
            m.call(b"after", 5)


def test_rpc_c_calls_python_handler(name, c_peer):
    def handler(req: bytes) -> bytes:
        if req == b"fail":
            raise PermissionError(1, "python handler refused")
        return b"py:" + req.upper()

    with smem.Rpc.open(name, handler):
        assert c_peer("rpc-call", name, "hello", "5000").finish() == "py:HELLO\n"
        assert c_peer("rpc-call", name, "fail", "5000").finish() == \
            "error EPERM python handler refused\n"


def test_rpc_killed_python_peer_gives_c_econnreset(name, c_peer, py_peer):
    server = py_peer(stalling_server(name))
    server.expect("ready")
    caller = c_peer("rpc-call-pending", name)
    caller.expect("ready")
    server.expect("in handler")
    server.kill9()
    assert caller.finish() == "error ECONNRESET \n"


def test_rpc_killed_c_peer_gives_python_econnreset(name, c_peer):
    # The handler holds the C peer's call until the peer is dead: answered, the peer would
    # print the reply and close cleanly before the kill, and the master then rightly gets
    # ESHUTDOWN (an orderly close), not ECONNRESET.
    arrived, gate = threading.Event(), threading.Event()

    def hold(req):
        arrived.set()
        gate.wait(10)
        return req

    with smem.Rpc.open(name, hold) as m:
        try:
            caller = c_peer("rpc-call-pending", name)
            caller.expect("ready")
            assert arrived.wait(10), "the C peer's call never reached the handler"
            caller.kill9()
            with pytest.raises(smem.PeerResetError) as e:
                m.call(b"anyone?", 5)
            assert e.value.errno == 104  # ECONNRESET, as C gets
        finally:
            gate.set()


def test_python_examples_print_what_the_c_examples_print():
    order = ["shared_array", "buffer_read_write", "circular_buffer", "rpc"]
    c_out = "".join(subprocess.run([os.path.join(BUILD, "examples", e)], check=True,
                                   capture_output=True, text=True).stdout for e in order)
    py = subprocess.run([sys.executable, "-m", "smem.examples"], check=True,
                        capture_output=True, text=True)
    assert py.stdout == c_out
    assert c_out.splitlines()[-2:] == ["SharedMemory.RpcBuffer:", "133"]


def test_install_python_puts_the_package_where_python3_finds_it(tmp_path):
    """make install-python (staged with DESTDIR) lands in a directory on the system
    python3's sys.path, with the installed library's path recorded beside it."""
    out = subprocess.run(["make", "-s", "-C", ROOT, "install-python", f"DESTDIR={tmp_path}", "PREFIX=/usr/local",
                          f"PYTHON={sys.executable}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    found = list(tmp_path.glob("usr/local/lib/python3*/*-packages/smem/__init__.py"))
    assert len(found) == 1
    site = "/" + str(found[0].parent.parent.relative_to(tmp_path))
    assert site in sys.path
    paths = (found[0].parent / "_paths.py").read_text()
    assert 'LIBRARY = "/usr/local/lib/libsmem.so.0"' in paths
    assert (found[0].parent / "examples" / "__main__.py").exists()
    assert (found[0].parent / "py.typed").exists()
