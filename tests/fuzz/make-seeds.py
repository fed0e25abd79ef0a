#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the committed seed corpora (tests/fuzz/corpus/<target>/) for the fuzz targets.

Each seed is a valid (or deliberately hostile) input in the format the target's header comment
describes, so that the fuzzer starts from deep paths instead of guessing the wire format.
Run from the repository root: tests/fuzz/make-seeds.py (it rewrites the seed_* files only).
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


# ---- broker -------------------------------------------------------------------------------
OP_HELLO, OP_CREATE, OP_OPEN, OP_RELEASE, OP_UNLINK, OP_LIST, OP_STAT, OP_STOP = range(1, 9)


class Script:
    def __init__(self, config=0):
        self.out = bytearray([config])
        self.seq = 0

    def rec(self, conn, msg, kind=0, sel=0):
        self.out += bytes([conn | kind << 2 | sel << 5]) + struct.pack("<H", len(msg)) + msg
        return self

    def msg(self, op, payload=b"", version=1, length=None, status=0):
        self.seq += 1
        n = len(payload) if length is None else length
        return struct.pack("<HHIIi", version, op, n, self.seq, status) + payload

    def hello(self, conn):
        return self.rec(conn, self.msg(OP_HELLO, struct.pack("<I12x", 1)))

    def create(self, conn, name, size=4096, kind=1, mode=0, flags=0, uid=0, gid=0,
               fdkind=1, sel=0):
        p = struct.pack("<QIIIIIHH", size, kind, mode, flags, uid, gid, len(name), 0) + name
        return self.rec(conn, self.msg(OP_CREATE, p), fdkind, sel)

    def named(self, conn, op, name, flags=0):
        return self.rec(conn, self.msg(op, struct.pack("<IHH", flags, len(name), 0) + name))

    def release(self, conn, eid, flags=0):
        return self.rec(conn, self.msg(OP_RELEASE, struct.pack("<QII", eid, flags, 0)))

    def lst(self, conn, after=0):
        return self.rec(conn, self.msg(OP_LIST, struct.pack("<Q", after)))

    def hangup(self, conn):
        return self.rec(conn, b"", 7)


def broker_seeds():
    s = Script()
    for c in range(4):
        s.hello(c)
    s.create(0, b"alpha", mode=0o640).named(1, OP_OPEN, b"alpha")
    s.named(2, OP_OPEN, b"alpha", flags=1).named(2, OP_OPEN, b"alpha")
    s.named(3, OP_STAT, b"alpha").lst(3).release(1, 1).release(0, 1, flags=1)
    s.named(2, OP_UNLINK, b"alpha").named(0, OP_UNLINK, b"alpha").lst(0)
    s.rec(3, s.msg(OP_STOP))
    write("broker", "lifecycle", s.out)

    s = Script(config=8)		# --group 1000
    for c in range(4):
        s.hello(c)
    s.create(0, b"persist", flags=1, mode=0o660).hangup(0).lst(1)
    s.named(2, OP_OPEN, b"persist").named(1, OP_OPEN, b"persist", flags=1)
    s.hangup(1).named(3, OP_UNLINK, b"persist").named(2, OP_STAT, b"persist")
    write("broker", "persist_and_hangup", s.out)

    s = Script()
    for c in range(4):
        s.hello(c)
    s.create(0, b"rereg", size=8192, sel=1)
    s.create(1, b"rereg", size=8192, flags=2, uid=1000, gid=1000, mode=0o600, sel=7)
    s.hangup(0).named(1, OP_STAT, b"rereg")
    s.named(3, OP_OPEN, b"rereg", flags=1).hangup(1)
    s.create(2, b"rereg", size=4096, flags=2, uid=1000, gid=1000, mode=0o644, fdkind=5, sel=7)
    s.create(3, b"rereg", size=4096, flags=2, uid=1000, gid=1000, mode=0o644, fdkind=5, sel=7)
    s.hangup(3)		# nobody holds it now: a read-only holder re-creates the entry
    s.create(2, b"rereg", size=4096, flags=2, uid=1000, gid=1000, mode=0o644, fdkind=5, sel=7)
    s.hello(0).lst(0).named(0, OP_OPEN, b"rereg")
    write("broker", "reregister", s.out)

    s = Script(config=2 | 0x10)	# max_names 2, max_bytes 8 KiB
    for c in range(4):
        s.hello(c)
    s.create(0, b"q1").create(0, b"q2").create(0, b"q3").create(1, b"q4", size=8192, sel=1)
    s.create(2, b"q5", size=16384, sel=3).named(0, OP_UNLINK, b"q1").create(0, b"q3")
    write("broker", "quota", s.out)

    s = Script()
    s.named(0, OP_OPEN, b"before-hello")
    s.rec(0, s.msg(OP_HELLO, struct.pack("<I12x", 1), version=2))
    s.hello(0)
    s.rec(0, b"\x01\x00")
    s.rec(0, s.msg(99))
    s.rec(0, s.msg(OP_LIST, struct.pack("<Q", 0), length=4))
    s.rec(0, s.msg(OP_LIST, struct.pack("<Q", 0), status=-1))
    s.create(0, b"pipe", fdkind=3).create(0, b"unsealed", fdkind=2)
    s.create(0, b"nine", fdkind=4, sel=7).create(0, b"small", size=1024, fdkind=6, sel=1)
    s.create(0, b"big", size=1 << 40).create(0, b"nofd", fdkind=0)
    s.create(0, b"ro", fdkind=5).create(0, b"k", kind=77).create(0, b"m", mode=0o7777)
    s.named(0, OP_OPEN, b"a\x00b").named(0, OP_OPEN, b"").named(0, OP_OPEN, b"x" * 300)
    s.rec(0, s.msg(OP_LIST, b"\x00" * 1100))
    s.release(0, 12345)
    write("broker", "hostile", s.out)


if __name__ == "__main__":
    broker_seeds()
