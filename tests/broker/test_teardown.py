"""A big connection's close is cleaned up in slices (roost.broker.teardown), yet every request
is answered as after a synchronous cleanup (protocol.md §10.6); the loop stays fair to others
while one connection pipelines expensive requests (roost.broker.server)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from roost.broker.leases.checks import check_invariants
from roost.broker.leases.routes import LEASE_WEIGHT, install_leases
from roost.broker.router import Router
from roost.broker.session import Session
from roost.broker.teardown import Teardowns
from roost.broker.tree import Node
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import NIL, pack
from tests.broker.test_router import FakeHooks, _drain, _session, v
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import connect, err, ok

pytestmark = pytest.mark.anyio

CHUNK = 50
NODES = 5000


def _router(chunk: int = CHUNK) -> tuple[Router, FakeHooks]:
    hooks = FakeHooks()
    return Router(hooks, 0.0, max_outbound=1 << 24, teardown_chunk=chunk), hooks


def _request(router: Router, session: Session, msg: m.Message) -> list[Any]:
    """Route ``msg`` as the server does (settle first while a close is being cleaned up) and
    return what ``session`` got."""
    if router.closing:
        router.settle_before(msg, 0.0)
    router.handle(session, msg, 0.0)
    return _drain(session)


def _run_slices(hooks: FakeHooks) -> int:
    """Fire the scheduled callbacks until none is left; return how many were teardown
    slices."""
    ran = 0
    while hooks.timers:
        _delay, callback = hooks.timers.pop(0)
        callback(0.0)
        ran += isinstance(getattr(callback, "__self__", None), Teardowns)
    return ran


def _big_owner(router: Router) -> Session:
    """A session owning NODES events under /many, an action, and states /s/k0-/s/k9 (known)
    and /s/u (unknown)."""
    owner = _session(router)
    for i in range(NODES):
        router.handle(owner, m.EventRegister(i & 0xFFFF, f"/many/n{i}"), 0.0)
    router.handle(owner, m.ActionRegister(1, "/acts/a"), 0.0)
    for i in range(10):
        router.handle(owner, m.StateRegister(2, f"/s/k{i}"), 0.0)
        router.handle(owner, m.StateChanged(3, f"/s/k{i}", v(i)), 0.0)
    router.handle(owner, m.StateRegister(4, "/s/u"), 0.0)
    _drain(owner)
    return owner


def test_requests_during_a_sliced_close_see_it_done() -> None:
    """While the slices are pending, each request first settles what it reads: the same path
    registers at once, calls find nothing, a known state is unknown (its observer told once),
    an event with listeners stays ownerless, and a listing shows what is left."""
    router, hooks = _router()
    baseline = router.tree.entries
    owner = _big_owner(router)
    observer, listener, newcomer = _session(router), _session(router), _session(router)
    assert _request(router, observer, m.StateObserve(1, "/s/k3")) == [m.ReplyStateKnown(1, v(3))]
    assert _request(router, listener, m.EventListen(2, "/many/n7")) == [m.ReplyOk(2, NIL)]

    router.disconnect(owner, "disconnected", 1.0)
    assert owner in router.closing  # sliced: nothing of it settled yet
    assert router.tree.nodes["/many/n1"].owner is owner
    assert _drain(observer) == []

    assert _request(router, newcomer, m.EventRegister(5, "/many/n1")) == [m.ReplyOk(5, NIL)]
    assert router.tree.nodes["/many/n1"].owner is newcomer
    assert _request(router, newcomer, m.ActionCall(6, "/acts/a", v(None))) == [
        m.ReplyError(6, v("path_not_found"))
    ]
    assert _request(router, newcomer, m.Get(7, "/s/k3")) == [m.ReplyError(7, v("state_unknown"))]
    assert _drain(observer) == [m.StateNotifyUnknown("/s/k3")]
    assert _request(router, newcomer, m.Get(8, "/s/k4")) == [m.ReplyError(8, v("path_not_found"))]
    # An event somebody listens to stays, ownerless: emits are ok, its listener hears them.
    assert _request(router, newcomer, m.EventEmit(9, "/many/n7", v("x"))) == [m.ReplyOk(9, NIL)]
    assert _drain(listener) == [m.EventNotify("/many/n7", v("x"))]
    assert router.tree.nodes["/many/n7"].owner is None
    # An event nobody listens to is gone, so another kind may take its path, or a path below.
    assert _request(router, newcomer, m.StateRegister(10, "/many/n2")) == [m.ReplyOk(10, NIL)]
    assert _request(router, newcomer, m.ActionRegister(11, "/many/n3/x")) == [m.ReplyOk(11, NIL)]
    assert _request(router, newcomer, m.ActionRegister(12, "/acts")) == [m.ReplyOk(12, NIL)]
    assert owner in router.closing

    # A listing walks the tree: everything is settled first.
    reply = _request(router, newcomer, m.ActionCall(13, "/meta/ls", v(["/many"])))
    assert not router.closing
    names = sorted(name for name, _kind in reply[0].value.obj[1])
    assert names == ["n1", "n2", "n3", "n7"]
    assert _drain(observer) == []  # told once only
    _run_slices(hooks)  # the slice scheduled before finds nothing left
    for session in (newcomer, listener, observer):
        router.disconnect(session, "disconnected", 2.0)
    assert not router.closing
    assert router.tree.entries == baseline


def test_slices_free_everything() -> None:
    """Without requests, the close settles CHUNK nodes per loop iteration until the tree is
    back where it was; observers of known states get one 0x45 each, listeners are dropped."""
    router, hooks = _router()
    baseline = router.tree.entries
    owner = _big_owner(router)
    observer = _session(router)
    for i in range(10):
        _request(router, observer, m.StateObserve(i, f"/s/k{i}"))
    # The owner also listens to 2,000 events another connection owns.
    other = _session(router)
    for i in range(2000):
        router.handle(other, m.EventRegister(i & 0xFFFF, f"/other/e{i}"), 0.0)
        router.handle(owner, m.EventListen(i & 0xFFFF, f"/other/e{i}"), 0.0)
    _drain(other)
    _drain(owner)
    entries = router.tree.entries
    router.disconnect(owner, "disconnected", 1.0)
    assert router.tree.entries == entries
    slices = _run_slices(hooks)
    total = NODES + 12 + 2000
    assert slices == -(-total // CHUNK)
    assert not router.closing
    unknowns = [msg for msg in _drain(observer) if isinstance(msg, m.StateNotifyUnknown)]
    assert sorted(msg.path for msg in unknowns) == [f"/s/k{i}" for i in range(10)]
    assert all(not node.listeners for node in router.tree.nodes.values() if node.owner is other)
    router.disconnect(other, "disconnected", 2.0)
    _run_slices(hooks)
    # The observer keeps the ten (ownerless, unknown) states alive; nothing else is left.
    assert sorted(p for p in router.tree.nodes if not p.startswith("/meta")) == [
        f"/s/k{i}" for i in range(10)
    ]
    router.disconnect(observer, "disconnected", 3.0)
    assert router.tree.entries == baseline


def test_settled_nodes_are_freed_without_the_collector() -> None:
    """The slices leave no reference cycle behind: with the cyclic collector off, every node
    of the closed connection is freed as its slice runs (reference counting alone)."""
    router, hooks = _router()
    owner = _big_owner(router)
    owner_nodes = len(router.tree.nodes)
    gc.collect()
    gc.disable()
    try:
        before = sum(isinstance(o, Node) for o in gc.get_objects())
        router.disconnect(owner, "disconnected", 1.0)
        _run_slices(hooks)
        after = sum(isinstance(o, Node) for o in gc.get_objects())
    finally:
        gc.enable()
    assert owner_nodes - len(router.tree.nodes) == NODES + 12
    assert before - after == NODES + 12


def test_small_close_is_synchronous() -> None:
    """A connection with at most ``chunk`` nodes is cleaned up on the spot."""
    router, hooks = _router()
    baseline = router.tree.entries
    owner = _session(router)
    for i in range(CHUNK):
        router.handle(owner, m.ActionRegister(i, f"/a/n{i}"), 0.0)
    router.disconnect(owner, "disconnected", 1.0)
    assert not router.closing
    assert _run_slices(hooks) == 0
    assert router.tree.entries == baseline


def test_closing_listeners_settle_on_emit() -> None:
    """An emit during the slices reaches only open listeners, and an ownerless event whose
    only listener closed is gone for it."""
    router, hooks = _router()
    owner, emitter = _session(router), _session(router)
    for i in range(NODES):
        router.handle(owner, m.EventListen(i & 0xFFFF, f"/l/e{i}"), 0.0)
    router.handle(emitter, m.EventRegister(1, "/l/mine"), 0.0)
    router.handle(owner, m.EventListen(2, "/l/mine"), 0.0)
    _drain(emitter)
    router.disconnect(owner, "disconnected", 1.0)
    deliveries = router.stats.event_deliveries
    assert _request(router, emitter, m.EventEmit(3, "/l/mine", v(1))) == [m.ReplyOk(3, NIL)]
    assert router.stats.event_deliveries == deliveries
    assert _request(router, emitter, m.EventEmit(4, "/l/e9", v(1))) == [
        m.ReplyError(4, v("path_not_found"))
    ]
    _run_slices(hooks)
    assert sorted(p for p in router.tree.nodes if p.startswith("/l")) == ["/l/mine"]


# -- over the wire --------------------------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    """A broker whose closes are cleaned up CHUNK nodes per loop iteration."""
    handle, stop, thread = start_broker_thread()
    handle.call(setattr, handle.broker.router.teardowns, "chunk", CHUNK)
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)


async def _pipeline(wire: Any, msgs: list[m.Message]) -> list[Any]:
    await wire.send(*msgs)
    return [await wire.recv() for _ in msgs]


async def test_paths_free_right_after_a_big_close(broker: BrokerThread) -> None:
    """A client with 5,000 registrations closes; another registers the same paths at once
    (all ``ok``), the observer of a known state hears it go unknown, and once the slices ran
    the tree and the connection tables are back where they were."""
    router = broker.broker.router
    baseline = broker.call(lambda: router.tree.entries)
    async with await connect(broker.port) as observer, await connect(broker.port) as newcomer:
        owner = await connect(broker.port)
        paths = [f"/big/n{i}" for i in range(NODES)]
        replies = await _pipeline(owner, [m.EventRegister(i, p) for i, p in enumerate(paths)])
        assert replies == [ok(i) for i in range(NODES)]
        await owner.register("state", "/big_state")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/big_state", v(1)))
        assert await observer.request(m.StateObserve(1, "/big_state")) == m.ReplyStateKnown(1, v(1))
        await owner.aclose()
        # Registered at once, whether the close was seen yet or not (protocol.md §10.6).
        replies = await _pipeline(newcomer, [m.EventRegister(i, p) for i, p in enumerate(paths)])
        assert replies == [ok(i) for i in range(NODES)]
        assert await observer.recv() == m.StateNotifyUnknown("/big_state")
        assert await newcomer.request(m.Get(1, "/big_state")) == err(1, "state_unknown")
        broker.wait_until(lambda: not router.closing)
        assert broker.call(lambda: len(router.sessions)) == 2
        assert await newcomer.request(m.StateRegister(2, "/big_state")) == ok(2)
    broker.wait_until(lambda: not router.sessions and not router.closing)
    assert broker.call(lambda: router.tree.entries) == baseline


def _read_frames(sock: Any, decoder: FrameDecoder, count: int) -> int:
    got = 0
    while got < count:
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("closed")
        got += len(decoder.feed(data))
    return got


async def test_a_witness_is_answered_between_pipelined_acquires(broker: BrokerThread) -> None:
    """One connection pipelines 5,000 lease acquires; a ping sent by another connection
    once the first acquire is answered comes back while most of them are still unanswered."""
    import socket

    count = NODES
    attacker = socket.create_connection(("127.0.0.1", broker.port))
    attacker.sendall(codec.encode(m.Hello(1, 30)))
    decoder = FrameDecoder()
    _read_frames(attacker, decoder, 1)
    frames = b"".join(
        b"G" + len(body).to_bytes(2, "big") + body
        for i in range(count)
        for body in [b"\x50" + (i & 0xFFFF).to_bytes(2, "big") + pack({"resource": f"j/{i}"})]
    )
    answered = [0]
    first = threading.Event()

    def attack() -> None:
        threading.Thread(target=attacker.sendall, args=(frames,), daemon=True).start()
        answered[0] = _read_frames(attacker, decoder, 1)
        first.set()
        while answered[0] < count:
            answered[0] += _read_frames(attacker, decoder, 1)

    reader = threading.Thread(target=attack, daemon=True)
    reader.start()
    try:
        async with await connect(broker.port) as witness:
            assert await asyncio.to_thread(first.wait, 30)
            assert await witness.request(m.Ping(5)) == ok(5)
            seen = answered[0]
        assert seen < count
        reader.join(60)
        assert answered[0] == count
    finally:
        attacker.close()


def test_many_leases_end_in_slices_yet_at_once_for_lease_requests() -> None:
    """A holder of 500 leases closes: they end a few per slice (1 + CHUNK // LEASE_WEIGHT),
    but the next lease request settles them all first, so another client acquires any of
    them at once; a waiter queued on one is granted; the table stays consistent."""
    router, hooks = _router()
    layer = install_leases(router, wall_offset=0.0, wall_ns=1, now=0.0)
    holder, waiter, other = _session(router), _session(router), _session(router)
    names = [f"many/r{i}" for i in range(500)]
    for i, name in enumerate(names):
        router.handle(holder, m.LeaseAcquire(i, v({"resource": name})), 0.0)
    assert layer.table.held_by(holder) == 500
    assert _request(router, waiter, m.LeaseAcquire(1, v({"resource": names[0], "wait": 10})))[
        0
    ].value.obj["status"] == ("QUEUED")
    router.disconnect(holder, "disconnected", 1.0)
    assert (holder, "leases") in router.closing
    assert layer.table.held_by(holder) == 500  # nothing ended yet
    _delay, callback = next(
        t for t in hooks.timers if isinstance(getattr(t[1], "__self__", None), Teardowns)
    )
    hooks.timers.clear()
    callback(1.0)  # one slice
    assert layer.table.held_by(holder) == 500 - (1 + CHUNK // LEASE_WEIGHT)
    reply = _request(router, other, m.LeaseAcquire(2, v({"resource": names[-1]})))
    assert reply[0].value.obj["status"] == "OK"
    assert not router.closing
    assert layer.table.held_by(holder) == 0
    granted = [msg for msg in _drain(waiter) if isinstance(msg, m.LeaseGranted)]
    assert [msg.body.obj["lease"]["resource"] for msg in granted] == [names[0]]
    check_invariants(layer.table)
