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

    s = Script()
    for c in range(4):
        s.hello(c)
    # Forged owners (uid 0 and 1001 claimed by conn 0, whose memfd is uid 1000's), a memfd
    # of another uid (kind 6, sel & 4) and a wide inode (kind 6 gives 0666) on a plain create.
    s.create(0, b"forged", size=4096, flags=2, uid=0, gid=0, mode=0o666)
    s.create(0, b"forged2", size=4096, flags=2, uid=1001, gid=1000, mode=0o666)
    s.create(0, b"honest", size=4096, flags=2, uid=1000, gid=1000, mode=0o600)
    s.create(2, b"theirs", size=4096, fdkind=6, sel=4 | 2).create(2, b"wide", fdkind=6, sel=2)
    s.create(3, b"root-wide", fdkind=6, sel=2, mode=0o644)
    s.create(0, b"held", size=4096).named(0, OP_UNLINK, b"held").lst(0)
    write("broker", "owners", s.out)

    s = Script(config=0x40 | 2)		# max_holds 4, max_names 2
    for c in range(4):
        s.hello(c)
    s.create(0, b"h", mode=0o666)
    for _ in range(5):
        s.named(1, OP_OPEN, b"h")
    s.named(0, OP_UNLINK, b"h").create(0, b"h2").create(0, b"h3").hangup(1).create(0, b"h3")
    write("broker", "caps", s.out)

    s = Script(config=0x80)		# max_conns 1: conn 1 (uid 1000 again) is refused
    for c in range(4):
        s.hello(c)
    s.hello(1).create(0, b"c")
    write("broker", "conn_cap", s.out)

    s = Script(config=0xc0)		# in the grace period
    for c in range(4):
        s.hello(c)
    s.create(0, b"g").create(0, b"g", flags=2, uid=1000, gid=1000, mode=0o600, sel=7)
    s.create(1, b"g", flags=2, uid=1000, gid=1000, mode=0o600, sel=7).named(2, OP_OPEN, b"g")
    write("broker", "grace", s.out)


# ---- region (open of a hostile copy) ------------------------------------------------------
def region_input(kind, a, b, delta=0, flags=0, patches=()):
    out = bytearray([kind, a, b]) + struct.pack("<hB", delta, flags)
    for off, data in patches:
        out += struct.pack("<HB", off, len(data)) + data
    return bytes(out)


def region_seeds():
    q = lambda v: struct.pack("<Q", v)
    i = lambda v: struct.pack("<I", v)
    O = 4096	# the object area
    for kind, name in ((0, "region"), (1, "buffer"), (2, "array"), (3, "ring")):
        write("region", name + "_intact", region_input(kind, 3, 5))
        write("region", name + "_rdonly", region_input(kind, 3, 5, flags=1))
        write("region", name + "_bad_magic", region_input(kind, 3, 5, patches=[(0, b"X")]))
        write("region", name + "_total_size", region_input(kind, 3, 5, patches=[(16, q(1 << 40))]))
        write("region", name + "_data_size", region_input(kind, 3, 5, patches=[(32, q(1 << 20))]))
        write("region", name + "_data_off", region_input(kind, 3, 5, patches=[(24, q(64))]))
        write("region", name + "_shrunk", region_input(kind, 3, 5, delta=-1))
        write("region", name + "_grown", region_input(kind, 3, 5, delta=16))
        write("region", name + "_unsealed", region_input(kind, 3, 5, flags=2))
        write("region", name + "_kind", region_input(kind, 3, 5, patches=[(12, i(9))]))
    for name, patches in (("elem_size", [(O + 24, q(7))]), ("length", [(O + 32, q(1 << 62))]),
                          ("data_size", [(O + 16, q(1 << 30))]),
                          ("lock_writer_dead", [(O + 64, q(0x0000070180000000))]),
                          ("lock_readers", [(O + 64, q(0xffffff))])):
        write("region", "array_" + name, region_input(2, 7, 9, patches=patches))
        write("region", "buffer_" + name, region_input(1, 7, 9, flags=4, patches=patches))
    for name, patches in (("node_count", [(O + 12, i(1 << 20))]),
                          ("node_size", [(O + 16, i(4096))]),
                          ("stride", [(O + 20, i(8))]),
                          ("tail_head", [(O + 64, q(1 << 40)), (O + 128, q(3))]),
                          ("node_committed_len", [(O + 512, q(1 << 32)), (O + 520, i(1 << 20))]),
                          ("node_claimed", [(O + 512, q(1 << 32 | 0x107))])):
        write("region", "ring_" + name, region_input(3, 6, 2, patches=patches))


# ---- ring (read path over a corrupted ring) --------------------------------------------------
def ring_seeds():
    W = lambda n: bytes([1, n])
    R = lambda cap: bytes([2, cap])
    NL, RR, RW = bytes([3]), bytes([4]), bytes([5])
    fin = lambda arg: bytes([6 | arg << 3])
    poke = lambda off, data: bytes([0]) + struct.pack("<HB", off, len(data)) + data
    claim = lambda node, which: bytes([7, node, which])
    q = lambda v: struct.pack("<Q", v)
    ops = W(5) + W(0) + NL + R(2) + R(10) + R(10) + R(10)
    write("ring", "fifo", bytes([2, 1, 0]) + ops)
    full = b"".join(W(i) for i in range(6)) + NL + b"".join(R(127) for i in range(6))
    write("ring", "fill_and_drain", bytes([2, 0, 0]) + full)
    zc = RW + W(3) + NL + fin(8) + R(127) + R(127) + RW + fin(1) + W(2) + RR + W(1) + R(127) + fin(0)
    write("ring", "zero_copy", bytes([1, 3, 0]) + zc)
    write("ring", "geometry_poke", bytes([2, 1, 1, 12, 4]) + struct.pack("<I", 1 << 20) + ops)
    write("ring", "cursor_poke", bytes([2, 1, 0]) + W(4) + poke(128, q(1 << 40)) + R(127) + NL +
          poke(64, q(7)) + W(3) + R(127))
    write("ring", "node_len_poke", bytes([2, 1, 0]) + W(4) + poke(512 + 8, struct.pack("<I", 1 << 30)) +
          NL + R(127) + W(2) + RR + fin(0))
    write("ring", "node_state_poke", bytes([3, 1, 0]) + W(4) + W(4) +
          poke(512 + 64, q(9 << 32)) + R(127) + R(127) + W(1) + R(127))
    write("ring", "dead_claims", bytes([2, 1, 0]) + W(4) + claim(0, 0) + claim(1, 1) + R(127) +
          claim(0, 3) + R(127) + W(1) + W(1) + R(127) + NL)
    write("ring", "own_claim", bytes([2, 1, 0]) + W(4) + claim(0, 2) + R(127) + W(1) + NL)


# ---- rpc (packet parsing and reassembly) ----------------------------------------------------
def rpc_pkt(type_, msg_id, resp, total, index, count, chunk, error=0, session=7, payload=None):
    h = struct.pack("<BBHIQQQIIIi16x", 1, type_, 0, session, msg_id, resp, total, index, count,
                    chunk, error)
    return h + (payload if payload is not None else bytes(range(chunk)))


def rpc_seeds():
    per = 16	# byte 0 = 15
    raw = lambda pkts: bytes([15, 3, 0]) + b"".join(bytes([len(p)]) + p for p in pkts)
    # a 40-byte request in 3 packets, a response, an error, interleaved
    req = [rpc_pkt(1, 5, 0, 40, i, 3, min(per, 40 - i * per)) for i in range(3)]
    rsp = [rpc_pkt(2, 9, 5, 20, i, 2, min(per, 20 - i * per)) for i in range(2)]
    err = [rpc_pkt(3, 10, 6, 3, 0, 1, 3, error=-22)]
    write("rpc", "interleaved", raw([req[0], rsp[0], req[1], err[0], rsp[1], req[2]]))
    write("rpc", "empty_message", raw([rpc_pkt(1, 1, 0, 0, 0, 1, 0)]))
    write("rpc", "out_of_order", raw([req[0], req[2], req[1]]))
    write("rpc", "restart", raw([req[0], req[1], req[0], req[1], req[2]]))
    write("rpc", "orphan", raw([req[1], req[2]]))
    write("rpc", "bad_chunk", raw([rpc_pkt(1, 5, 0, 40, 0, 3, 15)]))
    write("rpc", "changed_total", raw([req[0], rpc_pkt(1, 5, 0, 41, 1, 3, 16), req[2]]))
    write("rpc", "exact_multiple", raw([rpc_pkt(1, 8, 0, 32, i, 2, 16) for i in range(2)]))
    write("rpc", "too_big", raw([rpc_pkt(1, 8, 0, 1 << 40, 0, 0xffffffff, 16)]))
    # round trips: (type, len16, seed) messages
    msgs = lambda *m: b"".join(bytes([t]) + struct.pack("<H", l) + bytes([sd]) for t, l, sd in m)
    write("rpc", "roundtrip", bytes([15, 5, 1]) + msgs((0, 40, 1), (1, 16, 2), (2, 0, 3), (128, 95, 4)))
    write("rpc", "roundtrip_small_packets", bytes([0, 15, 1]) + msgs((0, 16, 1), (129, 7, 2)))


# ---- topic --------------------------------------------------------------------------------
def topic_seeds():
    LOAN, PUB, DISCARD, RA, RB, XA, XB = 1, 2, 3, 4, 5, 6, 7
    cycle = lambda n: bytes([LOAN, PUB, n, RA, XA, RB, XB])
    # BLOCK, depth 4: fill until a loan fails, then let both subscribers catch up
    write("topic", "block_fill", bytes([2, 0]) + bytes([LOAN, PUB, 17] * 6) +
          bytes([RA, XA] * 5 + [RB, XB] * 5) + cycle(64) * 3)
    # OVERWRITE, depth 2, two views: B lags and loses, A holds two views while it laps
    write("topic", "overwrite_lag", bytes([0, 3]) + bytes([LOAN, PUB, 8, RA, RA]) +
          bytes([LOAN, PUB, 9] * 9) + bytes([XA, XA, RA, RB, XB, RB, XB]))
    write("topic", "loans_discards", bytes([5, 1]) + bytes([LOAN, LOAN, LOAN, DISCARD, PUB, 0,
          DISCARD, RA, XA, RB, XB]))
    # hostile: poke the tail and an entry between cycles
    write("topic", "poke_tail", bytes([2, 1]) + cycle(5) + bytes([0, 64, 0, 8]) +
          bytes([255] * 8) + cycle(5))
    write("topic", "geometry_poke", bytes([2, 4, 16, 4, 0, 0, 0, 64]) + cycle(3))


# ---- service ------------------------------------------------------------------------------
def service_seeds():
    POKE, CLAIM, RELEASE, LOOK, PUBLISH, REMAP = 0, 1, 2, 3, 4, 5
    # 4 slots: claim, publish, the server's look; release; claim all four, then remap
    write("service", "claim_publish_look", bytes([3, CLAIM, PUBLISH, LOOK, 0, RELEASE, 0,
          CLAIM, CLAIM, CLAIM, CLAIM, REMAP]))
    # 2 slots: both ours, a third claim gets -EUSERS
    write("service", "fill_all", bytes([1, CLAIM, CLAIM, CLAIM, LOOK, 0, LOOK, 1, REMAP]))
    # hostile: nslots beyond the region, then a client's remap and the server's looks
    write("service", "poke_nslots", bytes([2, CLAIM, PUBLISH, POKE, 12, 0, 4, 0xff, 0xff, 0, 0,
          REMAP, LOOK, 0, LOOK, 1]))
    # hostile: a foreign owner word in slot 0 (offset 128), looked at and freed
    write("service", "poke_owner", bytes([3, POKE, 128, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, LOOK, 0,
          CLAIM, LOOK, 0]))
    # hostile: a published slot's control block scribbled before the server's check
    write("service", "poke_ctl", bytes([0, CLAIM, PUBLISH, POKE, 200, 0, 4, 9, 9, 9, 9,
          LOOK, 0]))


if __name__ == "__main__":
    broker_seeds()
    region_seeds()
    ring_seeds()
    rpc_seeds()
    topic_seeds()
    service_seeds()
