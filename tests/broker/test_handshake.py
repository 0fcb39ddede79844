"""Conformance section B: handshake, client ids, takeover, ping and idle timeouts (14-32)."""

from __future__ import annotations

import time

import anyio
import pytest

from roost.protocol import messages as m
from roost.protocol.values import Value
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio


async def test_hello_returns_allocated_id(broker_thread: BrokerThread) -> None:
    """Case 14: hello is answered by 0x04 with a msgpack id as the first and only frame."""
    async with await Wire.connect(broker_thread.port) as a:
        await a.send_raw(bytes.fromhex("4700040101001e"))
        reply = await a.recv_as(m.ServerHelloId)
        assert reply.client_id.obj is not None
        await a.expect_silence(0.2)


async def test_hello_id_returns_plain_hello(broker_thread: BrokerThread) -> None:
    """Case 15: hello_id "dev1" is answered exactly 47 00 01 03."""
    async with await Wire.connect(broker_thread.port) as a:
        await a.send(m.HelloId(1, 30, v("dev1")))
        assert await a.stream.receive(100) == b"G\x00\x01\x03"


@pytest.mark.parametrize("version", [0, 2])
async def test_only_version_1(broker_thread: BrokerThread, version: int) -> None:
    """Case 16: hello with version 0 or 2 closes the connection."""
    async with await Wire.connect(broker_thread.port) as a:
        await a.send(m.Hello(version, 30))
        await a.expect_closed()


async def test_nothing_before_hello_reply(broker_thread: BrokerThread) -> None:
    """Case 17: hello and an immediate observe: hello reply, observe reply, then notifications."""
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as c:
        await owner.register("state", "/s")
        await c.send(m.StateObserve(1, "/s"))
        assert await c.recv() == m.ReplyStateUnknown(1)
        async with await Wire.connect(broker_thread.port) as d:
            await owner.send(*(m.StateChanged(100 + i, "/s", v(i)) for i in range(20)))
            await d.send(m.Hello(1, 30), m.StateObserve(1, "/s"))
            await owner.send(*(m.StateChanged(200 + i, "/s", v(20 + i)) for i in range(20)))
            assert isinstance(await d.recv(), m.ServerHelloId)
            first = await d.recv()
            assert isinstance(first, (m.ReplyStateKnown, m.ReplyStateUnknown))
            last = first.value.obj if isinstance(first, m.ReplyStateKnown) else -1
            while last < 39:
                note = await d.recv_as(m.StateNotify)
                assert note.value.obj == last + 1
                last = note.value.obj


async def test_reconnect_with_allocated_id(broker_thread: BrokerThread) -> None:
    """Case 18: hello_id with the broker's own allocated id takes over the old connection."""
    async with await connect(broker_thread.port) as s:
        await s.register("action", "/sid")
        assert s.client_id is not None
        async with await Wire.connect(broker_thread.port) as s2:
            await s2.send(m.HelloId(1, 30, s.client_id))
            assert await s2.recv() == m.ServerHello()
            await s.expect_closed()
            await s2.call_ok(m.ActionRegister(2, "/sid"))


async def test_takeover_clears_before_reply(broker_thread: BrokerThread) -> None:
    """Cases 19, 20: takeover closes A, tells O and C, then replies; B inherits nothing."""
    port = broker_thread.port
    dev = ["dev", 1]
    async with (
        await connect(port, client_id=dev) as a,
        await connect(port) as o,
        await connect(port) as c,
    ):
        await a.register("action", "/take")
        await a.register("state", "/takest")
        await a.call_ok(m.StateChanged(a.next_id(), "/takest", v(1)))
        assert await o.request(m.StateObserve(1, "/takest")) == m.ReplyStateKnown(1, v(1))
        await c.send(m.ActionCall(5, "/take", v([])))
        await a.recv_as(m.ActionCall)
        async with await Wire.connect(port) as b:
            await b.send(m.HelloId(1, 30, v(dev)))
            await a.expect_closed()
            assert await o.recv() == m.StateNotifyUnknown("/takest")
            assert await c.recv() == err(5, "client_exited")
            assert await b.recv() == m.ServerHello()
            # Case 20: B owns nothing; O still observes the ownerless unknown state.
            assert await c.request(m.ActionCall(6, "/take", v([]))) == err(6, "path_not_found")
            assert await c.request(m.Set(7, "/takest", v(2))) == err(7, "no_owner")
            await b.call_ok(m.ActionRegister(2, "/take"))
            await b.call_ok(m.StateRegister(3, "/takest"))
            await b.call_ok(m.StateChanged(4, "/takest", v(9)))
            assert await o.recv() == m.StateNotify("/takest", v(9))


@pytest.mark.parametrize(
    ("first", "second"),
    [(Value(b"\x01"), Value(b"\xcb?\xf0\x00\x00\x00\x00\x00\x00")), (v("x"), v(b"x"))],
    ids=["int-vs-float", "str-vs-bin"],
)
async def test_ids_compare_exactly(
    broker_thread: BrokerThread, first: Value, second: Value
) -> None:
    """Case 21: hello_id 1 then 1.0 (and str "x" then bin "x") take nothing over."""
    async with (
        await connect(broker_thread.port, client_id=first) as x,
        await connect(broker_thread.port, client_id=second),
    ):
        await x.assert_open()


async def test_plain_hello_never_takes_over(broker_thread: BrokerThread) -> None:
    """Case 22: two plain hellos: both open, with different ids."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        assert a.client_id != b.client_id
        await a.assert_open()
        await b.assert_open()


async def test_allocated_ids_fresh_across_restarts() -> None:
    """Case 23: after a broker restart, new ids differ from every id allocated before."""
    seen: set[bytes] = set()
    for _ in range(2):
        handle, stop, thread = start_broker_thread()
        try:
            for _ in range(3):
                async with await connect(handle.port) as a:
                    assert a.client_id is not None
                    assert a.client_id.raw not in seen
                    seen.add(a.client_id.raw)
        finally:
            stop.set()
            thread.join(timeout=10)
    assert len(seen) == 6


async def test_ping_before_and_after_hello(broker_thread: BrokerThread) -> None:
    """Case 24: ping id 7 gets ok nil before and after hello."""
    async with await Wire.connect(broker_thread.port) as a:
        assert await a.request(m.Ping(7)) == ok(7)
        await a.hello()
        assert await a.request(m.Ping(7)) == ok(7)


async def test_idle_timeout(broker_thread: BrokerThread) -> None:
    """Case 25: timeout 1: the silent owner is closed about 1 s after its last byte; B gets 0x45."""
    async with await connect(broker_thread.port) as b, await connect(broker_thread.port) as a:
        await a.send(m.HelloId(1, 1, v("idle-a")))
        assert await a.recv() == m.ServerHello()
        await a.register("state", "/idle")
        await a.send(m.StateChanged(50, "/idle", v(1)))
        last_byte = time.monotonic()
        assert await a.recv() == ok(50)
        assert await b.request(m.StateObserve(1, "/idle")) == m.ReplyStateKnown(1, v(1))
        await a.expect_closed(timeout=3)
        elapsed = time.monotonic() - last_byte
        assert 0.9 <= elapsed <= 1.6, elapsed
        assert await b.recv() == m.StateNotifyUnknown("/idle")


async def test_traffic_keeps_alive(broker_thread: BrokerThread) -> None:
    """Case 26: timeout 2 with a ping every 1 s for 4 s stays open; closes ~2 s after the last."""
    async with await connect(broker_thread.port, timeout=2) as a:
        for _ in range(4):
            await anyio.sleep(1.0)
            await a.assert_open()
        last = time.monotonic()
        await a.expect_closed(timeout=4)
        assert 1.9 <= time.monotonic() - last <= 2.6


async def test_any_bytes_reset_timer(broker_thread: BrokerThread) -> None:
    """Case 27: timeout 2 and one byte 0x47 at 1.5 s: closed at about 3.5 s, not 2 s."""
    async with await Wire.connect(broker_thread.port) as a:
        await a.send(m.Hello(1, 2))
        start = time.monotonic()
        await a.recv_as(m.ServerHelloId)
        await anyio.sleep(1.5)
        await a.send_raw(b"G")
        await a.expect_closed(timeout=4)
        assert 3.4 <= time.monotonic() - start <= 4.1


async def test_timeout_zero_disables(broker_thread: BrokerThread) -> None:
    """Case 28: timeout 0, timeout 1 then 0, and no hello at all: no close in 3 s."""
    async with (
        await connect(broker_thread.port, timeout=0) as a,
        await connect(broker_thread.port, timeout=1) as b,
        await Wire.connect(broker_thread.port) as c,
    ):
        await b.send(m.Hello(1, 0))
        await b.recv_as(m.ServerHelloId)
        await a.expect_silence(3.0)
        await a.assert_open()
        await b.assert_open()
        await c.assert_open()


async def test_requests_before_hello(broker_thread: BrokerThread) -> None:
    """Case 29: every request before hello gets unregistered (a map for lease_acquire)."""
    requests: list[m.Message] = [
        m.ActionRegister(1, "/r/a"),
        m.PropRegister(2, "/r/p"),
        m.EventRegister(3, "/r/e"),
        m.EventListen(4, "/r/l"),
        m.StateRegister(5, "/r/s"),
        m.StateObserve(6, "/r/o"),
        m.Get(7, "/meta/broker"),
        m.Set(8, "/r/s", v(1)),
        m.ActionCall(9, "/meta/ls", v(["/"])),
        m.EventEmit(10, "/r/e", v(1)),
    ]
    async with await Wire.connect(broker_thread.port) as a:
        for request in requests:
            assert await a.request(request) == err(request.id, "unregistered")  # type: ignore[union-attr]
        await a.send(m.LeaseAcquire(11, v({"resource": "lab/arm"})))
        assert await a.recv() == err(11, {"status": "unregistered"})
        assert await a.request(m.Ping(12)) == ok(12)
        await a.hello()
        assert (await a.request(m.ActionCall(13, "/meta/ls", v(["/"])))) == ok(
            13, ["dir", [["meta", "dir"]]]
        )
        for request in requests[:6]:
            assert await a.request(request) in (ok(request.id), m.ReplyStateUnknown(6))  # type: ignore[union-attr]
        assert await a.request(m.EventEmit(14, "/r/e", v(1))) == ok(14)


async def test_second_hello(broker_thread: BrokerThread) -> None:
    """Case 30: a second hello: new id, /r kept, new timeout applied, old id free."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/r")
        old = a.client_id
        assert old is not None
        await a.send(m.Hello(1, 1))
        new = (await a.recv_as(m.ServerHelloId)).client_id
        assert new != old
        async with await Wire.connect(broker_thread.port) as c:
            await c.send(m.HelloId(1, 30, old))
            assert await c.recv() == m.ServerHello()
            await a.assert_open()
        await b.send(m.ActionCall(1, "/r", v([])))
        assert isinstance(await a.recv(), m.ActionCall)
        # The new timeout (1 s) applies: silence closes A; its owner reply never comes.
        await a.expect_closed(timeout=3)
        assert await b.recv() == err(1, "client_exited")


async def test_rehello_with_own_id(broker_thread: BrokerThread) -> None:
    """Case 31: hello_id X again on the same connection: 0x03, still open, still owns /x."""
    async with await connect(broker_thread.port, client_id="X") as a:
        await a.register("action", "/x")
        async with await connect(broker_thread.port) as b:
            assert await a.request(m.HelloId(1, 30, v("X"))) == m.ServerHello()
            await b.send(m.ActionCall(2, "/x", v([1])))
            call = await a.recv_as(m.ActionCall)
            await a.send(m.ReplyOk(call.id, v(2)))
            assert await b.recv() == ok(2, 2)
            await b.assert_open()


async def test_invalid_client_id_closes(broker_thread: BrokerThread) -> None:
    """Case 32: hello_id with an ext-type client id closes the connection without a reply."""
    async with await Wire.connect(broker_thread.port) as a:
        await a.send_payload(b"\x02\x01\x00\x1e\xd4\x05\x00")
        await a.expect_closed()
