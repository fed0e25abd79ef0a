#!/usr/bin/env python3
"""Python benchmarks of smem against the standard library's multiprocessing (issue 16).

A benchmark, not a test: it measures and prints, it asserts nothing. Each comparison runs its
baseline in the same invocation, because the machines are shared and noisy; the ratios are
what to read. Peers are separate processes started with the "spawn" method (a fresh
interpreter, as a real deployment would have), and every scenario runs --reps times: the
median is reported.

  ring    1 KiB messages from one process to another: smem.Ring (write bytes / read bytes,
          and in batches: write_many / read_many of up to 64) vs multiprocessing.Queue
          (put/get) and multiprocessing.Pipe (send_bytes/recv_bytes); the CPU each costs
          per message, written and read back in one process; and each side's own loop
  attach  a 100 MB numpy array shared by name: time for another process to open it and get
          the ndarray (smem.Array.open(...).array), vs multiprocessing.shared_memory
  rpc     1 KiB request, 1 KiB response, Python -> Python: smem.Rpc.call vs a
          multiprocessing.connection Listener/Client round trip (send_bytes/recv_bytes)

Usage: PYTHONPATH=python SMEM_LIBRARY=build/default/libsmem.so \\
           /usr/bin/python3 bench/python_bench.py [--quick] [--json FILE]
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
from multiprocessing import connection, shared_memory

MSG = 1024
ARRAY_BYTES = 100 * 1000 * 1000


# ------------------------------------------------------------------ ring vs Queue vs Pipe

BATCH = 64  # ring_batch: messages per write_many / most per read_many


def _stream_reader(kind, src, n, barrier, out, spin=None):
    """The reading process: @src is a ring name, a Queue or a Pipe end."""
    if kind in ("ring", "ring_batch"):
        import smem
        ring = smem.Ring.open(src)
        ring.set_spin(spin)
        recv = ring.read  # as Queue.get and recv_bytes: a bound method, waiting forever
    elif kind == "queue":
        recv = src.get
    else:
        recv = src.recv_bytes
    barrier.wait()
    t0 = time.perf_counter()
    total = 0
    if kind == "ring_batch":
        got = 0
        while got < n:
            batch = ring.read_many(BATCH)
            got += len(batch)
            total += sum(map(len, batch))
    else:
        for _ in range(n):
            total += len(recv())
    out.put((time.perf_counter() - t0, total))
    if kind in ("ring", "ring_batch"):
        ring.close()


def stream(kind, n, spin=None):
    """Messages per second from this process to a reader process, timed by the reader from
    the moment both are ready to its last message. @spin: the ring's spin (None: adaptive
    default; 0: sleep at once, for oversubscribed cores)."""
    import smem
    ctx = mp.get_context("spawn")
    payload = os.urandom(MSG)
    barrier, out = ctx.Barrier(2), ctx.Queue()
    if kind in ("ring", "ring_batch"):
        ring = smem.Ring.create(f"pybench-ring-{os.getpid()}", 256, MSG)
        ring.set_spin(spin)
        src, send = ring.name, lambda: ring.write(payload)  # noqa: E731
    elif kind == "queue":
        src = ctx.Queue(maxsize=256)
        send = lambda: src.put(payload)  # noqa: E731
    else:
        src, wr = ctx.Pipe(duplex=False)
        send = lambda: wr.send_bytes(payload)  # noqa: E731
    p = ctx.Process(target=_stream_reader, args=(kind, src, n, barrier, out, spin))
    p.start()
    barrier.wait()
    if kind == "ring_batch":
        chunk = [payload] * BATCH
        for i in range(0, n, BATCH):
            ring.write_many(chunk[:min(BATCH, n - i)])
    else:
        for _ in range(n):
            send()
    secs, total = out.get()
    p.join()
    if kind in ("ring", "ring_batch"):
        ring.close()
    assert total == n * MSG
    return n / secs


def cpu_per_message(kind, batches=2000, batch=10):
    """Microseconds of CPU per 1 KiB message written and read back in ONE process, in
    batches of @batch (a pipe holds only a few dozen such messages): the cost of the layer
    itself, with nobody to wait for, which load on the machine does not distort as much."""
    import smem
    payload = os.urandom(MSG)
    if kind == "ring":
        ring = smem.Ring.create(f"pybench-cpu-{os.getpid()}", 256, MSG)
        send, recv = (lambda: ring.write(payload, 0)), (lambda: ring.read(0))
    else:
        rd, wr = mp.Pipe(duplex=False)
        send, recv = (lambda: wr.send_bytes(payload)), rd.recv_bytes
    t0 = time.perf_counter()
    for _ in range(batches):
        for _ in range(batch):
            send()
        for _ in range(batch):
            recv()
    us = (time.perf_counter() - t0) / (batches * batch) * 1e6
    if kind == "ring":
        ring.close()
    return us


def loop_costs(rounds=300):
    """Nanoseconds per 1 KiB message of each side's own loop, exactly as stream() runs them
    (the writer's send(), the reader's total += len(recv())), in ONE process on a 256-node
    ring: 256 writes, then 256 reads, @rounds times; min over rounds. What is left when
    nobody waits and the caches are hot: the floor of each side's per-message cost."""
    import smem
    payload = os.urandom(MSG)
    ring = smem.Ring.create(f"pybench-loop-{os.getpid()}", 256, MSG)
    recv, send = ring.read, (lambda: ring.write(payload))  # noqa: E731
    w, r = [], []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(256):
            send()
        t1 = time.perf_counter_ns()
        total = 0
        for _ in range(256):
            total += len(recv())
        t2 = time.perf_counter_ns()
        w.append((t1 - t0) / 256)
        r.append((t2 - t1) / 256)
    ring.close()
    return min(w), min(r)


# ------------------------------------------------------------------ 100 MB array attach

def _attach_smem(name, out, warm):
    import numpy as np  # noqa: F401  (imported before timing, as an application would)
    import smem
    if warm:  # a process that already talks to the broker (its connection is kept)
        try:
            smem.Region.open(name + "-none")
        except smem.NotFoundError:
            pass
    t0 = time.perf_counter()
    a = smem.Array.open(name)
    arr = a.array
    secs = time.perf_counter() - t0
    out.put((secs, int(arr[-1]), arr.nbytes))
    del arr
    a.close()


def _attach_shm(name, out, warm):
    import numpy as np
    t0 = time.perf_counter()
    shm = shared_memory.SharedMemory(name)
    arr = np.ndarray((ARRAY_BYTES,), np.uint8, buffer=shm.buf)
    secs = time.perf_counter() - t0
    out.put((secs, int(arr[-1]), arr.nbytes))
    del arr
    shm.close()


def attach(kind, warm=False):
    """Seconds for another process to attach a 100 MB array by name and get its ndarray.
    @warm: the process has talked to the broker before (smem only)."""
    import numpy as np
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    if kind == "smem":
        import smem
        h = smem.Array.create(f"pybench-array-{os.getpid()}", ARRAY_BYTES, np.uint8)
        v = h.array
        v[-1] = 42
        del v
        target, name = _attach_smem, h.name
    else:
        h = shared_memory.SharedMemory(create=True, size=ARRAY_BYTES)
        h.buf[ARRAY_BYTES - 1] = 42
        target, name = _attach_shm, h.name
    try:
        p = ctx.Process(target=target, args=(name, out, warm))
        p.start()
        secs, last, nbytes = out.get()
        p.join()
    finally:
        h.close()
        if kind != "smem":
            h.unlink()
    assert last == 42 and nbytes == ARRAY_BYTES  # the child sees the data: shared, not copied
    return secs


# ------------------------------------------------------------------ RPC vs connection

def _rpc_server(name, ready, stop, spin, dispatch):
    import smem
    with smem.Rpc.open(name, lambda req: req, spin_ns=spin, dispatch=dispatch) as ch:
        ready.set()  # the handler echoes: 1 KiB back
        if dispatch:
            while not stop.is_set():
                ch.dispatch(0.1)
        else:
            stop.wait()


def rpc_smem(n, spin=None, dispatch=False):
    """Calls per second. @spin: waiters' spin in ns (None: the library's 20 us; 0: sleep at
    once); @dispatch: the server runs handlers in its main thread (smem_rpc_dispatch) instead
    of the library's service thread."""
    import smem
    ctx = mp.get_context("spawn")
    name = f"pybench-rpc-{os.getpid()}"
    payload = os.urandom(MSG)
    with smem.Rpc.open(name, spin_ns=spin) as ch:
        ready, stop = ctx.Event(), ctx.Event()
        p = ctx.Process(target=_rpc_server, args=(name, ready, stop, spin, dispatch))
        p.start()
        ready.wait()
        for _ in range(100):  # warm-up
            ch.call(payload, 10)
        t0 = time.perf_counter()
        for _ in range(n):
            if len(ch.call(payload, 10)) != MSG:
                raise RuntimeError("short response")
        secs = time.perf_counter() - t0
        stop.set()
        p.join()
    return n / secs


def _conn_server(address, ready):
    with connection.Listener(address, family="AF_UNIX") as listener:
        ready.set()
        with listener.accept() as c:
            try:
                while True:
                    c.send_bytes(c.recv_bytes())
            except EOFError:
                pass


def rpc_connection(n):
    ctx = mp.get_context("spawn")
    address = f"/tmp/pybench-conn-{os.getpid()}.sock"
    payload = os.urandom(MSG)
    ready = ctx.Event()
    p = ctx.Process(target=_conn_server, args=(address, ready))
    p.start()
    ready.wait()
    with connection.Client(address, family="AF_UNIX") as c:
        for _ in range(100):
            c.send_bytes(payload)
            c.recv_bytes()
        t0 = time.perf_counter()
        for _ in range(n):
            c.send_bytes(payload)
            if len(c.recv_bytes()) != MSG:
                raise RuntimeError("short response")
        secs = time.perf_counter() - t0
    p.join()
    return n / secs


# ------------------------------------------------------------------ driver

def median_of(reps, fn, *args):
    vals = [fn(*args) for _ in range(reps)]
    return statistics.median(vals), vals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages and repetitions")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    n_ring = 20000 if args.quick else 100000
    n_queue = 5000 if args.quick else 30000
    n_rpc = 2000 if args.quick else 10000

    import smem
    start = time.time()
    load0 = os.getloadavg()
    res = {}
    res["ring_smem_msgs_per_s"], res["ring_smem_reps"] = median_of(reps, stream, "ring", n_ring)
    res["queue_msgs_per_s"], res["queue_reps"] = median_of(reps, stream, "queue", n_queue)
    res["pipe_msgs_per_s"], res["pipe_reps"] = median_of(reps, stream, "pipe", n_ring)
    res["ring_smem_nospin_msgs_per_s"], res["ring_smem_nospin_reps"] = \
        median_of(reps, stream, "ring", n_ring, 0)
    res["ring_batch_msgs_per_s"], res["ring_batch_reps"] = \
        median_of(reps, stream, "ring_batch", n_ring)
    res["cpu_ring_us"], res["cpu_ring_reps"] = median_of(reps, cpu_per_message, "ring")
    res["cpu_pipe_us"], res["cpu_pipe_reps"] = median_of(reps, cpu_per_message, "pipe")
    res["loop_writer_ns"], res["loop_reader_ns"] = loop_costs(100 if args.quick else 300)
    res["attach_smem_s"], res["attach_smem_reps"] = median_of(max(reps, 5), attach, "smem")
    res["attach_smem_warm_s"], res["attach_smem_warm_reps"] = \
        median_of(max(reps, 5), attach, "smem", True)
    res["attach_shm_s"], res["attach_shm_reps"] = median_of(max(reps, 5), attach, "shm")
    res["rpc_smem_calls_per_s"], res["rpc_smem_reps"] = median_of(reps, rpc_smem, n_rpc)
    res["rpc_smem_nospin_calls_per_s"], res["rpc_smem_nospin_reps"] = \
        median_of(reps, rpc_smem, n_rpc, 0)
    res["rpc_smem_dispatch_nospin_calls_per_s"], res["rpc_smem_dispatch_nospin_reps"] = \
        median_of(reps, rpc_smem, n_rpc, 0, True)
    res["rpc_connection_calls_per_s"], res["rpc_connection_reps"] = \
        median_of(reps, rpc_connection, n_rpc)
    ratios = {
        "ring_vs_queue": res["ring_smem_msgs_per_s"] / res["queue_msgs_per_s"],
        "ring_vs_pipe": res["ring_smem_msgs_per_s"] / res["pipe_msgs_per_s"],
        "ring_nospin_vs_queue": res["ring_smem_nospin_msgs_per_s"] / res["queue_msgs_per_s"],
        "ring_nospin_vs_pipe": res["ring_smem_nospin_msgs_per_s"] / res["pipe_msgs_per_s"],
        "ring_batch_vs_queue": res["ring_batch_msgs_per_s"] / res["queue_msgs_per_s"],
        "ring_batch_vs_pipe": res["ring_batch_msgs_per_s"] / res["pipe_msgs_per_s"],
        "rpc_vs_connection": res["rpc_smem_calls_per_s"] / res["rpc_connection_calls_per_s"],
        "rpc_nospin_vs_connection":
            res["rpc_smem_nospin_calls_per_s"] / res["rpc_connection_calls_per_s"],
        "rpc_dispatch_nospin_vs_connection":
            res["rpc_smem_dispatch_nospin_calls_per_s"] / res["rpc_connection_calls_per_s"],
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    meta = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "python": platform.python_version(), "numpy": __import__("numpy").__version__,
        "library": smem.LIBRARY_PATH, "commit": commit, "cpus": os.cpu_count(),
        "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "seconds": round(time.time() - start, 1), "reps": reps,
        "messages": {"ring": n_ring, "queue": n_queue, "pipe": n_ring, "rpc": n_rpc},
        "message_bytes": MSG, "array_bytes": ARRAY_BYTES,
    }
    print(f"ring 1 KiB, process to process: smem.Ring {res['ring_smem_msgs_per_s']:,.0f} msg/s, "
          f"multiprocessing.Queue {res['queue_msgs_per_s']:,.0f} msg/s, "
          f"multiprocessing.Pipe {res['pipe_msgs_per_s']:,.0f} msg/s")
    print(f"  ratio vs Queue {ratios['ring_vs_queue']:.1f}x (target >= 20x), "
          f"vs Pipe {ratios['ring_vs_pipe']:.2f}x (target >= 2x)")
    print(f"  ring with spin 0 (sleep at once): {res['ring_smem_nospin_msgs_per_s']:,.0f} msg/s, "
          f"{ratios['ring_nospin_vs_queue']:.1f}x Queue, {ratios['ring_nospin_vs_pipe']:.2f}x Pipe")
    print(f"  ring in batches of {BATCH} (write_many / read_many): "
          f"{res['ring_batch_msgs_per_s']:,.0f} msg/s, {ratios['ring_batch_vs_queue']:.1f}x Queue, "
          f"{ratios['ring_batch_vs_pipe']:.2f}x Pipe")
    print(f"  CPU per message written and read in one process: smem.Ring "
          f"{res['cpu_ring_us']:.2f} us, multiprocessing.Pipe {res['cpu_pipe_us']:.2f} us")
    print(f"  each side's own loop per message, one process, hot caches: writer "
          f"{res['loop_writer_ns']:.0f} ns, reader {res['loop_reader_ns']:.0f} ns (20x Queue "
          f"needs {1e9 / (20 * res['queue_msgs_per_s']):.0f} ns per message on each side)")
    print(f"attach 100 MB array in another process: smem.Array {res['attach_smem_s'] * 1e3:.3f} ms"
          f" as its first smem call, {res['attach_smem_warm_s'] * 1e3:.3f} ms with its broker "
          f"connection open (target < 1 ms); multiprocessing.shared_memory "
          f"{res['attach_shm_s'] * 1e3:.3f} ms")
    print(f"rpc 1 KiB call, Python -> Python: smem.Rpc {res['rpc_smem_calls_per_s']:,.0f} calls/s,"
          f" multiprocessing.connection {res['rpc_connection_calls_per_s']:,.0f} calls/s")
    print(f"  ratio {ratios['rpc_vs_connection']:.2f}x (target >= 5x)")
    print(f"  spin 0: {res['rpc_smem_nospin_calls_per_s']:,.0f} calls/s "
          f"({ratios['rpc_nospin_vs_connection']:.2f}x); spin 0 and the server dispatching "
          f"in its main thread: {res['rpc_smem_dispatch_nospin_calls_per_s']:,.0f} calls/s "
          f"({ratios['rpc_dispatch_nospin_vs_connection']:.2f}x)")
    print(f"load average {load0[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
          f"{meta['seconds']} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": res, "ratios": ratios}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
