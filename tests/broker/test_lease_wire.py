"""Conformance section L at the wire level, against a real broker on loopback."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from roost.protocol import messages as m
from roost.protocol.values import Value
from tests.broker.leasekit import (
    lease,
    next_holder,
    next_push,
    observe_holder,
    reply_to,
    send_lease,
)
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio

R = "lab/arm"


async def acquire_ok(w: Wire, resource: str = R, **body: Any) -> dict[str, Any]:
    """Acquire and assert OK; return the lease object."""
    r = await lease(w, m.LeaseAcquire, resource=resource, **body)
    assert r.ok and r.status == "OK", r
    return dict(r["lease"])


async def test_acquire_wire_bytes(broker_thread: BrokerThread) -> None:
    """E3 example: the hand-written acquire frame gets an OK map reply with the same id."""
    async with await connect(broker_thread.port, timeout=5) as a:
        await a.send_raw(
            bytes.fromhex("47001b50000182a87265736f75726365a76c61622f61726da47761697400")
        )
        reply = await a.recv_as(m.ReplyOk)
        assert reply.id == 1 and reply.value.obj["status"] == "OK"
        assert reply.value.obj["lease"]["resource"] == R


async def test_grant_publishes_holder_state(broker_thread: BrokerThread) -> None:
    """Case L3: OK with token of the broker's epoch; W gets one 0x44 with A's entry."""
    async with (
        await connect(broker_thread.port, timeout=5) as a,
        await connect(broker_thread.port) as w,
    ):
        assert await observe_holder(w, R) == m.ReplyStateUnknown(0)
        got = await acquire_ok(a, name="alice")
        token = got["token"]
        assert token["seq"] == [1] and token["client_names"] == ["alice"]
        assert abs(token["epoch"] - time.time_ns()) < 600 * 10**9  # start-up wall time in ns
        state = await next_holder(w)
        assert state["mode"] == "exclusive" and state["waiters"] == 0
        assert [h["name"] for h in state["holders"]] == ["alice"]
        assert state["holders"][0]["client"] == a.client_id.obj  # type: ignore[union-attr]
        await w.expect_silence(0.2)


async def test_plain_observer_sees_only_eshet(broker_thread: BrokerThread) -> None:
    """Case L2: a plain client follows every transition through ESHET frames only."""
    port = broker_thread.port
    async with (
        await connect(port) as p,
        await connect(port, timeout=5) as a,
        await connect(port, timeout=5) as b,
        await connect(port, timeout=5) as c,
        await connect(port) as o,
        await connect(port) as o2,
    ):
        await o.register("action", "/dev/arm/move")
        assert (await lease(o, m.LeaseGuard, path="/dev/arm/move", resource=R)).status == "OK"
        await o2.register("action", "/dev/led")
        assert await observe_holder(p, R) == m.ReplyStateUnknown(0)
        await p.call_ok(m.EventListen(p.next_id(), f"/meta/leases/{R}/events"))
        await p.call_ok(m.EventListen(p.next_id(), "/meta/lease_events"))
        ta = (await acquire_ok(a))["token"]
        rb = await lease(b, m.LeaseAcquire, resource=R, wait=10)
        assert rb.status == "QUEUED"
        tc = (await lease(c, m.LeaseTake, resource=R, reason="stuck"))["lease"]["token"]
        assert (await next_push(a))[1]["reason"] == "taken"
        assert (await lease(c, m.LeaseReturn, token=tc)).status == "OK"
        cls, body = await next_push(b)
        assert cls is m.LeaseGranted
        assert (await lease(b, m.LeaseReturn, token=body["lease"]["token"])).status == "OK"
        rid = p.next_id()
        await p.send(m.ActionCall(rid, "/dev/arm/move", v([])))
        refused = await reply_to(p, rid)
        assert (refused.ok, refused.value) == (False, "NO_LEASE")
        seen: list[Any] = refused.before
        await send_lease(b, m.LeaseCall, {"path": "/dev/led", "args": [1], "token": ta})
        fwd = await o2.recv_as(m.ActionCall)
        assert fwd.args == v([1])
        with anyio.move_on_after(0.5):
            while True:
                seen.append(await p.recv(0.5))
        assert all(type(x).code < 0x50 for x in seen)
        holders = [
            [h["client"] for h in x.value.obj["holders"]]
            for x in seen
            if isinstance(x, m.StateNotify)
        ]
        ids = {w.client_id.obj: n for n, w in zip("abc", (a, b, c), strict=True)}  # type: ignore[union-attr]
        assert [[ids[h] for h in hs] for hs in holders] == [
            ["a"],
            ["a"],
            ["c"],
            ["b"],
            [],
        ]
        events = [
            x.value.obj["event"]
            for x in seen
            if isinstance(x, m.EventNotify) and x.path == "/meta/lease_events"
        ]
        assert events == ["granted", "queued", "ended", "granted", "ended", "granted", "ended"]


async def test_guards(broker_thread: BrokerThread) -> None:
    """Cases L21-L23: guard errors; holder calls pass with the token; others never reach O."""
    port = broker_thread.port
    async with (
        await connect(port) as o,
        await connect(port) as p,
        await connect(port, timeout=5) as a,
        await connect(port, timeout=5) as b,
        await connect(port, timeout=5) as d,
    ):
        for kind, path in [
            ("action", "/dev/arm/move"),
            ("state", "/dev/arm/pose"),
            ("prop", "/dev/arm/speed"),
            ("event", "/dev/arm/ev"),
        ]:
            await o.register(kind, path)
        for path in ("/dev/arm/move", "/dev/arm/pose", "/dev/arm/speed"):
            assert (await lease(o, m.LeaseGuard, path=path, resource=R)).value == {"status": "OK"}
        assert (await lease(o, m.LeaseGuard, path="/dev/arm/ev", resource=R)).status == (
            "path_is_wrong_type"
        )
        await b.register("action", "/b/x")
        assert (await lease(o, m.LeaseGuard, path="/b/x", resource=R)).status == "not_owner"
        assert (await lease(o, m.LeaseGuard, path="/no/such", resource=R)).status == (
            "path_not_found"
        )
        assert (await lease(o, m.LeaseGuard, path="/dev/arm/move", resource="lab//x")).status == (
            "INVALID_RESOURCE"
        )
        await o.call_ok(m.StateChanged(o.next_id(), "/dev/arm/pose", v(1)))
        rid = p.next_id()
        assert await p.request(m.Get(rid, "/dev/arm/pose")) == ok(rid, 1)
        rid = p.next_id()
        assert await p.request(m.ActionCall(rid, "/dev/arm/move", v([]))) == err(rid, "NO_LEASE")
        rid = p.next_id()
        assert await p.request(m.Set(rid, "/dev/arm/pose", v(2))) == err(rid, "NO_LEASE")
        token = (await acquire_ok(a))["token"]
        rid = a.next_id()
        await a.send(m.ActionCall(rid, "/dev/arm/move", v(["go"])))
        call = await o.recv_as(m.GuardedCall)
        assert call.body.obj == {"path": "/dev/arm/move", "args": ["go"], "token": token}
        await o.send(m.ReplyOk(call.id, v("done")))
        assert await a.recv() == ok(rid, "done")
        rid = a.next_id()
        await a.send(m.Set(rid, "/dev/arm/pose", v(3)))
        setm = await o.recv_as(m.GuardedSet)
        assert setm.body.obj == {"path": "/dev/arm/pose", "value": 3, "token": token}
        await o.send(m.ReplyOk(setm.id, Value.of(None)))
        assert await a.recv() == ok(rid)
        # L23: a delegate's sub-lease passes; after a take it reads OLDER and never reaches O.
        sub = {**token, "seq": [token["seq"][0], 0], "client_names": ["", "planner"]}
        rid = await send_lease(d, m.LeaseCall, {"path": "/dev/arm/move", "args": [1], "token": sub})
        call = await o.recv_as(m.GuardedCall)
        assert call.body.obj["token"] == sub
        await o.send(m.ReplyOk(call.id, v("ok")))
        assert (await reply_to(d, rid)).value == "ok"
        taken = (await lease(b, m.LeaseTake, resource=R, reason="mine"))["lease"]["token"]
        await next_push(a)
        r = await lease(d, m.LeaseCall, path="/dev/arm/move", args=[1], token=sub)
        assert not r.ok and r.status == "OLDER"
        assert [h["token"] for h in r["holders"]] == [taken]
        rid = a.next_id()
        refused = await a.request(m.ActionCall(rid, "/dev/arm/move", v([])))
        assert isinstance(refused, m.ReplyError)
        text = refused.value.obj
        assert isinstance(text, str) and text.startswith(f"NO_LEASE: {R} is held by ")
        assert "mine" not in text  # the take's reason is the taker's business, not the guard's
        assert (await lease(a, m.LeaseCall, path="/dev/arm/move", args=[], token=token)).status == (
            "OLDER"
        )
        newer = {**taken, "seq": [taken["seq"][0], 2]}
        rid = await send_lease(
            b, m.LeaseCall, {"path": "/dev/arm/move", "args": [], "token": newer}
        )
        call = await o.recv_as(m.GuardedCall)
        assert call.body.obj["token"] == newer
        await o.send(m.ReplyOk(call.id, v(None)))
        assert (await reply_to(b, rid)).ok
        # A revoked (returned) holder's token reads REVOKED.
        assert (await lease(b, m.LeaseReturn, token=taken)).status == "OK"
        r = await lease(b, m.LeaseCall, path="/dev/arm/move", args=[], token=taken)
        assert (r.status, r["reason"]) == ("REVOKED", "returned")
        await o.expect_silence(0.2)


async def test_guarded_forward_frame_limit(broker_thread: BrokerThread) -> None:
    """Case L24: a guarded forward that would exceed a frame is refused at the caller."""
    port = broker_thread.port
    async with (
        await connect(port) as o,
        await connect(port) as o2,
        await connect(port, timeout=5) as a,
    ):
        await o.register("action", "/dev/arm/move")
        await lease(o, m.LeaseGuard, path="/dev/arm/move", resource=R)
        await o2.register("action", "/dev/led")
        await acquire_ok(a)
        big = v("x" * 65470)
        rid = a.next_id()
        assert await a.request(m.ActionCall(rid, "/dev/arm/move", big)) == err(
            rid, "value_too_large"
        )
        rid = a.next_id()
        await a.send(m.ActionCall(rid, "/dev/led", big))
        assert (await o2.recv_as(m.ActionCall)).args == big
        await o.expect_silence(0.2)
        await a.assert_open()


async def test_holder_state_events_and_listing(broker_thread: BrokerThread) -> None:
    """Case L27: one 0x44 per step, events in order on both streams, /meta/ls listing."""
    port = broker_thread.port
    async with (
        await connect(port) as w,
        await connect(port) as lis,
        await connect(port, timeout=5) as a,
    ):
        b = await connect(port, timeout=5)
        assert await observe_holder(w, R) == m.ReplyStateUnknown(0)
        await lis.call_ok(m.EventListen(lis.next_id(), f"/meta/leases/{R}/events"))
        await lis.call_ok(m.EventListen(lis.next_id(), "/meta/lease_events"))
        tok = (await acquire_ok(a))["token"]
        assert (await lease(b, m.LeaseAcquire, resource=R, wait=10)).status == "QUEUED"
        assert (await lease(a, m.LeaseReturn, token=tok)).status == "OK"
        await next_push(b)
        await b.aclose()
        states = [await next_holder(w) for _ in range(4)]
        assert [(len(s["holders"]), s["waiters"]) for s in states] == [
            (1, 0),
            (1, 1),
            (1, 0),
            (0, 0),
        ]
        assert states[0]["holders"][0]["token"] == tok
        assert states[2]["holders"][0]["token"]["seq"][0] > tok["seq"][0]
        rid = w.next_id()
        assert await w.request(m.Get(rid, f"/meta/leases/{R}/holder")) == ok(rid, states[-1])
        got = [await lis.recv_as(m.EventNotify) for _ in range(10)]
        per = [x.value.obj for x in got if x.path.endswith("/events")]
        glob = [x.value.obj for x in got if x.path == "/meta/lease_events"]
        assert per == glob
        assert [(e["event"], e.get("reason")) for e in per] == [
            ("granted", None),
            ("queued", None),
            ("ended", "returned"),
            ("granted", None),
            ("ended", "disconnected"),
        ]
        listing = await w.ls("/meta/leases/lab/arm")
        assert listing.value.obj == ["dir", [["events", "event"], ["holder", "state"]]]


async def test_broker_owns_lease_nodes(broker_thread: BrokerThread) -> None:
    """E10: nobody else registers, emits or sets under the lease nodes."""
    async with await connect(broker_thread.port, timeout=5) as a:
        await acquire_ok(a)
        rid = a.next_id()
        assert await a.request(m.StateRegister(rid, f"/meta/leases/{R}/holder")) == err(
            rid, "path_already_exists"
        )
        rid = a.next_id()
        assert await a.request(m.EventRegister(rid, "/meta/leases/x/y")) == err(
            rid, "path_already_exists"
        )
        rid = a.next_id()
        assert await a.request(m.EventEmit(rid, "/meta/lease_events", v({}))) == err(
            rid, "not_owner"
        )
        rid = a.next_id()
        assert await a.request(m.Set(rid, f"/meta/leases/{R}/holder", v({}))) == err(
            rid, "not_owner"
        )


async def test_takeover_ends_leases(broker_thread: BrokerThread) -> None:
    """Case L28: a hello_id takeover closes A silently; W sees holders [] at once."""
    port = broker_thread.port
    async with await connect(port) as w:
        a = await connect(port, timeout=5, client_id="dev")
        tok = (await acquire_ok(a))["token"]
        await observe_holder(w, R)
        started = time.monotonic()
        async with await connect(port, timeout=5, client_id="dev") as a2:
            state = await next_holder(w)
            assert state["holders"] == [] and time.monotonic() - started < 0.1
            await a.expect_closed()
            await a.aclose()
            second = await acquire_ok(a2)
            assert second["token"]["seq"][0] > tok["seq"][0]


async def test_close_revokes_and_grants_within_100ms(broker_thread: BrokerThread) -> None:
    """Case L14: closing the holder's socket frees R and grants the waiter within 100 ms."""
    port = broker_thread.port
    async with await connect(port, timeout=5) as b, await connect(port, timeout=5) as c:
        a = await connect(port, timeout=5)
        tok = (await acquire_ok(a))["token"]
        assert (await lease(b, m.LeaseAcquire, resource=R, wait=10)).status == "QUEUED"
        started = time.monotonic()
        await a.aclose()
        cls, _ = await next_push(b, timeout=1.0)
        assert cls is m.LeaseGranted and time.monotonic() - started < 0.1
        assert (await lease(c, m.LeaseValidate, token=tok)).status == "OLDER"


async def test_silent_holder_times_out(broker_thread: BrokerThread) -> None:
    """Case L15: timeout 1, silence: closed about 1 s after the last byte; REVOKED timeout."""
    port = broker_thread.port
    async with await connect(port) as w, await connect(port, timeout=1) as a:
        tok = (await acquire_ok(a))["token"]
        last = time.monotonic()
        await observe_holder(w, R)
        state = await next_holder(w, timeout=3.0)
        elapsed = time.monotonic() - last
        assert state["holders"] == [] and 0.9 <= elapsed <= 2.0
        await a.expect_closed(timeout=1.0)
        r = await lease(w, m.LeaseValidate, token=tok)
        assert (r.status, r["reason"]) == ("REVOKED", "timeout")


async def test_ttl_expiry_pushes(broker_thread: BrokerThread) -> None:
    """Case L16 (short): retains keep it; 0.3 s without one pushes expired; still connected."""
    async with await connect(broker_thread.port, timeout=5) as a:
        tok = (await acquire_ok(a, ttl=0.3))["token"]
        for _ in range(3):
            await anyio.sleep(0.1)  # the pace of a retaining client, not synchronisation
            r = await lease(a, m.LeaseRetain, token=tok)
            assert r.value == {"status": "OK", "ttl_left": 0.3}
        started = time.monotonic()
        cls, body = await next_push(a, timeout=2.0)
        assert cls is m.LeaseRevoked and body["reason"] == "expired"
        assert 0.25 <= time.monotonic() - started <= 0.6
        await a.assert_open()


async def test_request_validation(broker_thread: BrokerThread) -> None:
    """Case L29: unregistered before hello; bad names, fields, msgpack; server-only codes close."""
    port = broker_thread.port
    async with await connect(port, hello=False) as x:
        r = await lease(x, m.LeaseAcquire, resource=R)
        assert (r.ok, r.value) == (False, {"status": "unregistered"})
        await x.assert_open()
    async with await connect(port, timeout=5) as a:
        for bad in ("lab//arm", "/lab", "lab/holder", "lab/events/x", ""):
            assert (await lease(a, m.LeaseAcquire, resource=bad)).status == "INVALID_RESOURCE"
        for body in ({"resource": R, "mode": "maybe"}, {"resource": R, "wait": "soon"}, {}):
            r = await lease(a, m.LeaseAcquire, **body)
            assert not r.ok and r.status == "bad_args"
        rid = await send_lease(a, m.LeaseAcquire, [R])
        assert (await reply_to(a, rid)).status == "bad_args"
        await a.send_payload(b"\x50\x00\x63\x81\xa1")
        assert await a.recv() == m.ReplyError(0x63, v({"status": "invalid_value"}))
        bad_tok = {"epoch": 1, "seq": ["1"], "resource": R}
        assert (await lease(a, m.LeaseValidate, token=bad_tok)).status == "INVALID_LEASE"
        await a.assert_open()
    for code in (0x61, 0x6E):
        async with await connect(port, timeout=5) as y:
            await y.send_payload(bytes((code,)) + b"\x80")
            await y.expect_closed()


async def test_info_list_cancel_over_wire(broker_thread: BrokerThread) -> None:
    """Cases L8 and E7 info/list: maps as documented."""
    port = broker_thread.port
    async with await connect(port, timeout=5) as a, await connect(port, timeout=5) as b:
        await acquire_ok(a, note="calibrating")
        q = await lease(b, m.LeaseAcquire, resource=R, wait=-1)
        info = (await lease(b, m.LeaseInfo, resource=R))["info"]
        assert info["mode"] == "exclusive" and info["holders"][0]["note"] == "calibrating"
        assert [w["request"] for w in info["waiters"]] == [q["request"]]
        listing = await lease(b, m.LeaseList, prefix="lab")
        assert [i["resource"] for i in listing["resources"]] == [R] and not listing["more"]
        r = await lease(b, m.LeaseCancel, request=q["request"])
        assert r.ok and r.before[0].body.obj == {"request": q["request"], "status": "CANCELLED"}
        assert (await lease(b, m.LeaseCancel, request=q["request"])).status == "NOT_WAITING"


async def test_graceful_stop_pushes_restart() -> None:
    """E8: a broker stop pushes lease_revoked restart to each holder before closing."""
    from tests.conftest import start_broker_thread

    handle, stop, thread = start_broker_thread()
    try:
        async with await connect(handle.port, timeout=5) as a:
            await acquire_ok(a)
            stop.set()
            cls, body = await next_push(a)
            assert cls is m.LeaseRevoked and body["reason"] == "restart"
            await a.expect_closed()
    finally:
        stop.set()
        thread.join(timeout=10)


async def test_declared_resources_and_nested_holder_states() -> None:
    """Declared resources are managed from start-up; a/b and a/b/c holder states coexist."""
    from tests.conftest import start_broker_thread

    declared = [{"name": "a/b", "max_holders": 2}, "a/b/c", {"name": "x", "takeable": False}]
    handle, stop, thread = start_broker_thread(resources=declared)
    try:
        async with (
            await connect(handle.port) as w,
            await connect(handle.port, timeout=5) as a,
            await connect(handle.port, timeout=5) as b,
        ):
            first = await observe_holder(w, "a/b")
            assert isinstance(first, m.ReplyStateKnown)
            assert first.value.obj["holders"] == [] and first.value.obj["waiters"] == 0
            assert (await lease(a, m.LeaseAcquire, resource="a/b/d")).status == "INVALID_RESOURCE"
            assert (await lease(a, m.LeaseAcquire, resource="a/b", mode="shared")).status == "OK"
            assert (await lease(b, m.LeaseAcquire, resource="a/b/c", mode="shared")).status == "OK"
            info = (await lease(b, m.LeaseInfo, resource="a/b"))["info"]
            assert info["max_holders"] == 2 and info["takeable"] is True
            assert (await lease(b, m.LeaseTake, resource="x", reason="r")).status == (
                "NOT_PERMITTED"
            )
            assert [len((await next_holder(w))["holders"]) for _ in range(1)] == [1]
            await w.expect_silence(0.2)  # b's lease on a/b/c does not cover a/b
            w2 = await connect(handle.port)
            rid = w2.next_id()
            child = await w2.request(m.StateObserve(rid, "/meta/leases/a/b/c/holder"))
            assert isinstance(child, m.ReplyStateKnown)
            assert len(child.value.obj["holders"]) == 2
            listing = await w2.ls("/meta/leases/a/b")
            assert listing.value.obj == [
                "dir",
                [["c", "dir"], ["events", "event"], ["holder", "state"]],
            ]
            rid = w2.next_id()
            clients = await w2.request(m.Get(rid, "/meta/clients"))
            await w2.aclose()
            counts = {c["client"]: c["leases"] for c in clients.value.obj["clients"]}
            assert counts[a.client_id.obj] == 1  # type: ignore[union-attr]
    finally:
        stop.set()
        thread.join(timeout=10)


async def test_lease_events_cannot_be_forged_before_first_use(broker_thread: BrokerThread) -> None:
    """E10: even before any lease request, a client's emit on the lease events is not_owner."""
    async with await connect(broker_thread.port) as p:
        for path in ("/meta/lease_events", f"/meta/leases/{R}/events"):
            await p.call_ok(m.EventListen(p.next_id(), path))
            rid = p.next_id()
            assert await p.request(m.EventEmit(rid, path, v({"event": "granted"}))) == err(
                rid, "not_owner"
            )
        await p.expect_silence(0.2)


async def test_only_resource_nodes_under_meta_leases(broker_thread: BrokerThread) -> None:
    """E10: observes under /meta/leases must name a resource's holder or events node."""
    async with await connect(broker_thread.port) as p:
        for path in ("/meta/leases/x/events/holder", "/meta/leases/x/holder/holder"):
            rid = p.next_id()
            assert await p.request(m.StateObserve(rid, path)) == err(rid, "path_already_exists")
        rid = p.next_id()
        assert await p.request(m.EventListen(rid, "/meta/leases/x/holder")) == err(
            rid, "path_already_exists"
        )
        rid = p.next_id()
        assert await p.request(m.StateObserve(rid, "/meta/leases/x/holder")) == (
            m.ReplyStateUnknown(rid)
        )


async def test_timeout_zero_over_the_wire(broker_thread: BrokerThread) -> None:
    """Case L17: timeout 0 is refused; a later hello with 0 ends leases and waits, pushed."""
    port = broker_thread.port
    async with await connect(port, timeout=0) as x, await connect(port, timeout=5) as b:
        assert (await lease(x, m.LeaseAcquire, resource=R)).status == "TIMEOUT_REQUIRED"
        assert (await lease(x, m.LeaseTake, resource=R, reason="r")).status == "TIMEOUT_REQUIRED"
        await x.hello(5)
        tok = (await acquire_ok(x))["token"]
        await acquire_ok(b, "lab/cam")
        assert (await lease(x, m.LeaseAcquire, resource="lab/cam", wait=5)).status == "QUEUED"
        await x.send(m.Hello(1, 0))
        await x.recv_as(m.ServerHelloId)
        first = await next_push(x)
        second = await next_push(x)
        assert (first[0], first[1]["reason"]) == (m.LeaseRevoked, "timeout_required")
        assert (second[0], second[1]["status"]) == (m.LeaseWaitEnded, "TIMEOUT_REQUIRED")
        r = await lease(b, m.LeaseValidate, token=tok)
        assert (r.status, r["reason"]) == ("REVOKED", "timeout_required")


async def test_shared_and_keys_over_the_wire(broker_thread: BrokerThread) -> None:
    """Cases L10 and L25 in short: a repeated key is one wait; sharers coexist."""
    port = broker_thread.port
    async with await connect(port, timeout=5) as a, await connect(port, timeout=5) as b:
        held = await acquire_ok(a)
        q1 = await lease(b, m.LeaseAcquire, resource=R, wait=10, key="k1")
        q2 = await lease(b, m.LeaseAcquire, resource=R, wait=10, key="k1")
        assert q1.value == q2.value and q1.status == "QUEUED"
        await lease(a, m.LeaseReturn, token=held["token"])
        cls, body = await next_push(b)
        assert cls is m.LeaseGranted
        again = await lease(b, m.LeaseAcquire, resource=R, key="k1")
        assert again["lease"] == body["lease"]
        await b.expect_silence(0.2)
        assert (await lease(a, m.LeaseAcquire, resource="lab/scope", mode="shared")).ok
        assert (await lease(b, m.LeaseAcquire, resource="lab/scope", mode="shared")).ok
        info = (await lease(a, m.LeaseInfo, resource="lab/scope"))["info"]
        assert info["mode"] == "shared" and len(info["holders"]) == 2
