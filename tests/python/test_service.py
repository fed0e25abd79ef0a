"""Service / ServiceClient: one server, many clients (Python and C on either side), a client
killed with kill -9, a server that dies or closes (an error, not a hang), dispatch mode and
asyncio."""
import asyncio
import errno
import time

import pytest

import smem


def tagged(client: int, req: bytes) -> bytes:
    return b"%d:" % client + req[::-1]


def wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_service_serves_several_python_clients_each_over_its_own_slot(name):
    with smem.Service.create(name, tagged, with_client=True, max_clients=4) as svc:
        clients = [smem.ServiceClient.connect(name) for _ in range(3)]
        try:
            slots = set()
            for i, c in enumerate(clients):
                for j in range(20):
                    out = c.call(b"abc%d-%d" % (i, j), 5)
                    slot, _, body = out.partition(b":")
                    assert body == (b"abc%d-%d" % (i, j))[::-1]
                    slots.add((i, int(slot)))
            # Each client has one slot of its own, unique among those connected.
            assert len({s for _, s in slots}) == 3 and len(slots) == 3
            assert svc.clients == 3
            # A fourth fits (max 4), a fifth is refused.
            with smem.ServiceClient.connect(name) as fourth:
                assert fourth.call(b"x", 5).endswith(b":x")
                with pytest.raises(smem.SmemError) as e:
                    smem.ServiceClient.connect(name)
                assert e.value.errno == errno.EUSERS
            assert clients[0].stats()["responses_received"] == 20
        finally:
            for c in clients:
                c.close()
        assert wait_for(lambda: svc.clients == 0)


def test_service_handler_errors_and_no_handler(name):
    def handler(req: bytes) -> bytes:
        if req == b"deny":
            raise PermissionError(errno.EACCES, "not for you")
        return req.upper()

    with smem.Service.create(name, handler) as svc, smem.ServiceClient.connect(name) as c:
        with pytest.raises(smem.AccessError) as e:
            c.call(b"deny", 5)
        assert e.value.errno == errno.EACCES and e.value.remote_message == "not for you"
        assert c.call(b"ok", 5) == b"OK"
        assert c.call(memoryview(b"buffer"), None) == b"BUFFER"  # the sliced path
        with pytest.raises(smem.InvalidArgumentError):
            c.dispatch(0)
        with pytest.raises(smem.InvalidArgumentError):
            svc.serve(0)  # a thread of the service serves
    with smem.Service.create(name + "-none", None, dispatch=True) as svc, \
            smem.ServiceClient.connect(name + "-none") as c:
        pending = c.call_async(b"x", 5)
        assert wait_for(lambda: svc.serve(0.05) == 1 or pending.done())
        with pytest.raises(smem.NoHandlerError):
            pending.result(5)
        pending.free()


def test_service_name_errors(name):
    with pytest.raises(smem.NotFoundError):
        smem.ServiceClient.connect(name)
    with smem.Ring.create(name, 2, 8):
        with pytest.raises(smem.WrongKindError):
            smem.ServiceClient.connect(name)
    with smem.Service.create(name + "-s", None):
        with pytest.raises(smem.ExistsError):
            smem.Service.create(name + "-s", None)


def test_c_server_answers_python_clients(name, c_peer):
    server = c_peer("service-serve", name)
    server.expect("ready")
    with smem.ServiceClient.connect(name) as a, smem.ServiceClient.connect(name) as b:
        assert a.call(b"abc", 5) == b"c:cba"
        assert b.call(b"hello", 5) == b"c:olleh"
        with pytest.raises(smem.AccessError) as e:
            a.call(b"fail", 5)
        assert e.value.errno == errno.EPERM and e.value.remote_message == "C handler refused"
    assert server.finish() == "served 3\n"


def test_python_server_answers_c_clients(name, c_peer):
    with smem.Service.create(name, tagged, with_client=True) as svc:
        for text in ("one", "two"):
            p = c_peer("service-call", name, text, "5000")
            assert p.line().endswith(":" + text[::-1])
            assert p.finish() == ""
        assert wait_for(lambda: svc.clients == 0)


def test_killed_client_frees_its_slot_and_others_go_on(name, py_peer):
    with smem.Service.create(name, tagged, with_client=True, max_clients=2) as svc, \
            smem.ServiceClient.connect(name) as mine:
        assert mine.call(b"a", 5).endswith(b":a")
        peer = py_peer(f"""
            c = smem.ServiceClient.connect({name!r})
            print(c.call(b"hi", 5).decode(), flush=True)
            sys.stdin.read()
        """)
        assert peer.line().endswith(":ih")
        assert svc.clients == 2
        with pytest.raises(smem.SmemError) as e:  # both slots taken
            smem.ServiceClient.connect(name)
        assert e.value.errno == errno.EUSERS
        peer.kill9()
        assert wait_for(lambda: svc.clients == 1)
        assert mine.call(b"b", 5).endswith(b":b")
        with smem.ServiceClient.connect(name) as again:  # the dead client's slot is free
            assert again.call(b"c", 5).endswith(b":c")


def test_c_server_killed_fails_a_pending_python_call(name, c_peer):
    server = c_peer("service-serve", name)
    server.expect("ready")
    with smem.ServiceClient.connect(name) as c:
        pending = c.call_async(b"stall", None)
        server.expect("in handler")
        t0 = time.monotonic()
        server.kill9()
        with pytest.raises(smem.PeerResetError):
            pending.result(10)
        assert time.monotonic() - t0 < 5
        pending.free()
        with pytest.raises(smem.PeerResetError):
            c.call(b"later", 5)


def test_python_server_killed_fails_a_pending_c_call(name, c_peer, py_peer):
    server = py_peer(f"""
        import time
        def stall(req):
            print("in handler", flush=True)
            time.sleep(60)
        svc = smem.Service.create({name!r}, stall)
        print("ready", flush=True)
        sys.stdin.read()
    """)
    server.expect("ready")
    client = c_peer("service-call-pending", name)
    client.expect("ready")
    server.expect("in handler")
    server.kill9()
    assert client.line(10).startswith("error ECONNRESET")
    assert client.finish() == ""


def test_server_close_fails_clients_with_shutdown(name):
    svc = smem.Service.create(name, lambda r: r)
    c = smem.ServiceClient.connect(name)
    try:
        assert c.call(b"x", 5) == b"x"
        svc.close()
        with pytest.raises(smem.ShutdownError):
            c.call(b"y", 5)
        with pytest.raises(smem.BrokerUnavailableError) as e:  # ECONNREFUSED
            smem.ServiceClient.connect(name).close()
        assert e.value.errno == errno.ECONNREFUSED
    finally:
        c.close()
        svc.close()


def test_service_dispatch_mode_on_asyncio(name):
    async def main(svc: smem.Service, c: smem.ServiceClient) -> int:
        served = 0
        call = asyncio.ensure_future(c.acall(b"async", 5))
        while not call.done():
            served += await svc.aserve(0.5)
        assert await call == b"ASYNC"
        assert await svc.aserve(0.05) == 0  # nothing more: times out with 0
        return served

    with smem.Service.create(name, bytes.upper, dispatch=True) as svc, \
            smem.ServiceClient.connect(name) as c:
        assert asyncio.run(main(svc, c)) == 1
        with svc.poller() as p:
            assert p.threaded is None and p.fileno() >= 0
