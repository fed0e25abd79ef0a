"""Fixtures of the Python tests: unique names, peer processes (Python or the C helper), and
fd-leak checks. run-pytest sets SMEM_BROKER (a private broker), SMEM_LIBRARY and
SMEM_TEST_BUILD; without them the tests use a broker of their own as well."""
import os
import queue
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Iterator, List

import pytest

if "SMEM_BROKER" not in os.environ:  # run directly with pytest: never touch a user's broker
    os.environ["SMEM_BROKER"] = os.path.join(tempfile.mkdtemp(prefix="smem-pytest."),
                                             "broker.sock")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SMEM_TEST_BUILD", os.path.join(ROOT, "build", "default"))
INTEROP = os.path.join(BUILD, "tests", "python", "interop")


@pytest.fixture
def name(request) -> str:
    """A name no other test (or earlier run) uses."""
    return f"py-{request.node.name}-{os.getpid()}"[:200]


def _fds() -> List[str]:
    return sorted(os.listdir("/proc/self/fd"))


_warm = False
_kept: list = []


def _warm_up(smem) -> None:
    """What the library keeps open for the life of the process or of a thread, made before
    the first test counts fds: the shared broker connection, and the main thread's wait state
    (an io_uring and a /proc file, made the first time one of its waits sleeps: here a call
    to a handler that takes 20 ms). The library frees a thread's wait state at its exit, and
    the calling thread's when the process's last RPC channel closes: one channel (in
    dispatch mode, so without a library thread of its own) stays open for the session, so
    that which test sleeps first, or closes the last channel, does not move fds around."""
    name = f"py-warmup-{os.getpid()}"
    with smem.Region.create(name, 1):
        pass
    _kept.append(smem.Rpc.open(name + "-kept", dispatch=True))

    def slow(req: bytes) -> bytes:
        time.sleep(0.02)
        return req

    with smem.Service.create(name + "-svc", slow) as svc, \
            smem.ServiceClient.connect(name + "-svc") as c:
        assert c.call(b"warm", 10) == b"warm" and svc.clients >= 0


@pytest.fixture(autouse=True)
def no_fd_leak() -> Iterator[None]:
    """Every test leaves the process's open fds as it found them (the broker connection is
    opened once and kept, so it is counted before)."""
    import smem

    global _warm
    if not _warm:
        _warm_up(smem)
        _warm = True
    before = _fds()
    yield
    import gc

    gc.collect()
    after = _fds()
    if after != before:
        changed = sorted(set(before) ^ set(after), key=int)
        what = {}
        for fd in changed:
            try:
                what[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                what[fd] = "(closed)"
        assert after == before, f"fds before {before}, after {after}: changed {what}"


class Peer:
    """Another process: its stdout lines are read with line() (which fails after a timeout
    instead of hanging the suite), stdin closed by finish()."""

    def __init__(self, argv: List[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._lines: "queue.Queue[str]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for out in self.proc.stdout:
            self._lines.put(out)
        self._lines.put("")  # EOF

    def line(self, timeout: float = 20) -> str:
        try:
            out = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"peer printed no line within {timeout} s") from None
        if not out:
            self.proc.wait(10)
            raise AssertionError(f"peer exited ({self.proc.returncode}): {self.proc.stderr.read()}")
        return out.rstrip("\n")

    def expect(self, text: str) -> None:
        assert self.line() == text

    def finish(self, timeout: float = 10) -> str:
        """Close its stdin, wait for it, return the rest of its stdout; asserts status 0."""
        self.proc.stdin.close()
        self.proc.wait(timeout)
        self._reader.join(timeout)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        assert self.proc.returncode == 0, f"peer failed ({self.proc.returncode}): {err}"
        rest = []
        while True:
            out = self._lines.get_nowait()
            if not out:
                return "".join(rest)
            rest.append(out)

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL (harmless if it has exited)
        self.close()

    def close(self) -> None:
        """Reap it and close our ends of its pipes (idempotent)."""
        self.proc.wait(10)
        self._reader.join(10)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def peers() -> Iterator[list]:
    started: List[Peer] = []
    yield started
    # A peer that exited by itself (os._exit) still has our pipe ends open: close them too,
    # or the fd check counts them as the test's leak, depending on whether it had exited.
    for p in started:
        if p.proc.poll() is None:
            p.kill9()
        else:
            p.close()


@pytest.fixture
def py_peer(peers):
    """Start a Python peer running @code (import smem done; it reads stdin to stay alive)."""

    def start(code: str) -> Peer:
        src = "import smem, sys, os, struct\n" + textwrap.dedent(code)
        p = Peer([sys.executable, "-c", src])
        peers.append(p)
        return p

    return start


def stalling_server(name: str) -> str:
    """Code for py_peer: an RPC endpoint on @name whose handler announces "in handler" and
    never answers (so that a call is pending when the test kills it)."""
    return f"""
        import time
        def stall(req):
            print("in handler", flush=True)
            time.sleep(60)
        ch = smem.Rpc.open({name!r}, stall)
        print("ready", flush=True)
        sys.stdin.read()
    """


@pytest.fixture
def c_peer(peers):
    """Start the C helper (tests/python/interop.c) with @args."""

    def start(*args: str) -> Peer:
        if not os.path.exists(INTEROP):
            pytest.fail(f"{INTEROP} is missing: build it with `make tests`")
        p = Peer([INTEROP, *args])
        peers.append(p)
        return p

    return start
