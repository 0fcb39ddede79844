"""Conformance sections G and H: tree, paths, cleanup and /meta nodes (cases 93-103)."""

from __future__ import annotations

import anyio
import pytest

import roost
from roost.protocol import messages as m
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio

_REGISTER: dict[str, type[m.ActionRegister | m.EventRegister | m.StateRegister]] = {
    "action": m.ActionRegister,
    "event": m.EventRegister,
    "state": m.StateRegister,
}


@pytest.mark.parametrize("kind", ["action", "event", "state"])
async def test_paths_free_right_after_close(broker_thread: BrokerThread, kind: str) -> None:
    """Case 93: register, close, and at once register again on a new connection, 100 times."""
    for i in range(100):
        first = await connect(broker_thread.port)
        await first.register(kind, "/again")
        await first.aclose()
        async with await connect(broker_thread.port) as second:
            assert await second.request(_REGISTER[kind](i, "/again")) == ok(i)


async def test_directories_are_implicit(broker_thread: BrokerThread) -> None:
    """Case 94: /a/b/c makes /a list b as dir; after the owner leaves /a is gone."""
    async with await connect(broker_thread.port) as o:
        a = await connect(broker_thread.port)
        await a.register("action", "/a/b/c")
        assert await o.ls("/a") == ok(0, ["dir", [["b", "dir"]]])
        await _close_and_wait(broker_thread.port, a)
        await _assert_gone(o, "/a")


async def _close_and_wait(port: int, *clients: Wire) -> None:
    """Close ``clients`` and return once the broker has dealt with their closes: a watcher of
    /meta/clients sees the list shrink by as many (its cleanup happens in the same step)."""
    async with await connect(port) as watcher:
        reply = await watcher.request(m.StateObserve(watcher.next_id(), "/meta/clients"))
        assert isinstance(reply, m.ReplyStateKnown)
        left = len(reply.value.obj["clients"]) - len(clients)
        for client in clients:
            await client.aclose()
        while True:
            change = await watcher.recv_as(m.StateNotify)
            if len(change.value.obj["clients"]) == left:
                return


async def _assert_gone(o: Wire, path: str) -> None:
    reply = await o.ls(path)
    assert isinstance(reply, m.ReplyError)
    assert reply.value.obj == "path_not_found"


async def test_nodes_and_directories_conflict(broker_thread: BrokerThread) -> None:
    """Case 95: /b is a directory, /a a node, /a/e below a node; /b/e is fine."""
    async with await connect(broker_thread.port) as x:
        await x.register("action", "/b/c")
        await x.register("action", "/b/d")
        await x.register("action", "/a")
        assert await x.request(m.ActionRegister(1, "/b")) == err(1, "path_is_directory")
        assert await x.request(m.ActionRegister(2, "/a")) == err(2, "path_already_exists")
        assert await x.request(m.ActionRegister(3, "/a/e")) == err(3, "not_a_directory")
        await x.register("action", "/b/e")
        assert (await x.ls("/b")).value.obj == [
            "dir",
            [["c", "action"], ["d", "action"], ["e", "action"]],
        ]


async def test_partial_removal_keeps_siblings(broker_thread: BrokerThread) -> None:
    """Case 96: /b stays while /b/d exists and goes when both owners have left."""
    async with await connect(broker_thread.port) as o:
        c = await connect(broker_thread.port)
        d = await connect(broker_thread.port)
        await c.register("action", "/b/c")
        await d.register("action", "/b/d")
        await _close_and_wait(broker_thread.port, c)
        assert (await o.ls("/b")).value.obj == ["dir", [["d", "action"]]]
        await _close_and_wait(broker_thread.port, d)
        await _assert_gone(o, "/b")


@pytest.mark.parametrize(
    "path",
    ["p1", "/", "/p1/", "/a b", "//x", "/a-b", "", "/\xc3\xa9", "/\xe9", "/a\n"],
    ids=[
        "relative",
        "root",
        "trailing",
        "space",
        "empty-seg",
        "dash",
        "empty",
        "utf8",
        "latin1",
        "nl",
    ],
)
async def test_path_syntax(broker_thread: BrokerThread, path: str) -> None:
    """Case 97: invalid paths get invalid_path on register."""
    async with await connect(broker_thread.port) as a:
        assert await a.request(m.ActionRegister(1, path)) == err(1, "invalid_path")


async def test_valid_path(broker_thread: BrokerThread) -> None:
    """Case 97: /A_9/x is valid."""
    async with await connect(broker_thread.port) as a:
        await a.register("action", "/A_9/x")


async def test_cleanup_covers_every_kind(broker_thread: BrokerThread) -> None:
    """Case 98: an action, prop, event and state of one closed connection are all gone."""
    async with await connect(broker_thread.port) as o:
        a = await connect(broker_thread.port)
        for kind in ("action", "prop", "event", "state"):
            await a.register(kind, f"/all/{kind}")
        await _close_and_wait(broker_thread.port, a)
        await _assert_gone(o, "/all")


async def test_meta_clients_listed_once_read(broker_thread: BrokerThread) -> None:
    """/meta/clients joins the /meta listing once it has been read."""
    async with await connect(broker_thread.port) as a:
        assert ["clients", "state"] not in (await a.ls("/meta")).value.obj[1]
        await a.request(m.Get(1, "/meta/clients"))
        assert ["clients", "state"] in (await a.ls("/meta")).value.obj[1]


async def test_root_of_empty_broker(broker_thread: BrokerThread) -> None:
    """Case 99: /meta/ls ["/"] on an empty broker lists only meta."""
    async with await connect(broker_thread.port) as a:
        assert await a.ls("/") == ok(0, ["dir", [["meta", "dir"]]])


async def test_meta_node_and_directory(broker_thread: BrokerThread) -> None:
    """Case 100: a node lists as its kind; /meta/ and large directories in bytewise order."""
    async with await connect(broker_thread.port) as a:
        assert (await a.ls("/meta/ls")).value.obj == "action"
        assert (await a.ls("/meta/")).value.obj == ["dir", [["broker", "state"], ["ls", "action"]]]
        for name in ("b", "a", "C", "_z", "10", "9"):
            await a.register("action", f"/six/{name}")
        names = [entry[0] for entry in (await a.ls("/six")).value.obj[1]]
        assert names == ["10", "9", "C", "_z", "a", "b"]
        forty = [f"n{i}" for i in range(40)]
        for name in forty:
            await a.register("event", f"/forty/{name}")
        names = [entry[0] for entry in (await a.ls("/forty")).value.obj[1]]
        assert names == sorted(forty, key=lambda s: s.encode())


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["meta"], "invalid_path"),
        (["/meta/ls/x"], "not_a_directory"),
        (["/nothing"], "path_not_found"),
        (["/", 1], "bad_args"),
        ([1], "bad_args"),
        ("/", "bad_args"),
    ],
)
async def test_meta_errors(broker_thread: BrokerThread, args: object, error: str) -> None:
    """Case 101: /meta/ls argument and path errors."""
    async with await connect(broker_thread.port) as a:
        assert await a.request(m.ActionCall(1, "/meta/ls", v(args))) == err(1, error)


async def test_meta_reports_each_kind(broker_thread: BrokerThread) -> None:
    """Case 102: /meta/ls reports actions, props, events and states, ownerless ones too."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        for kind in ("action", "prop", "event", "state"):
            await a.register(kind, f"/k/{kind}")
        await b.call_ok(m.EventListen(1, "/k/lev"))
        assert await b.request(m.StateObserve(2, "/k/ost")) == m.ReplyStateUnknown(2)
        assert (await b.ls("/k")).value.obj == [
            "dir",
            [
                ["action", "action"],
                ["event", "event"],
                ["lev", "event"],
                ["ost", "state"],
                ["prop", "prop"],
                ["state", "state"],
            ],
        ]


async def test_meta_broker(broker_thread: BrokerThread) -> None:
    """Case 103: /meta/broker: get, observe without notifications, register/changed/set refused."""
    info = {
        "name": "roost",
        "version": roost.__version__,
        "extensions": {"lease": 1, "subtree": 1, "locks": 1, "pools": 1, "auth": 1},
    }
    async with await connect(broker_thread.port) as a:
        assert await a.request(m.Get(1, "/meta/broker")) == ok(1, info)
        assert await a.request(m.StateObserve(2, "/meta/broker")) == m.ReplyStateKnown(2, v(info))
        assert await a.request(m.StateRegister(3, "/meta/broker")) == err(3, "path_already_exists")
        assert await a.request(m.StateChanged(4, "/meta/broker", v(1))) == err(4, "not_owner")
        assert await a.request(m.StateUnknown(5, "/meta/broker")) == err(5, "not_owner")
        assert await a.request(m.Set(6, "/meta/broker", v(1))) == err(6, "not_implemented")
        await a.expect_silence(0.2)


async def test_meta_clients(broker_thread: BrokerThread) -> None:
    """/meta/clients lists each client with its registrations, updated within 100 ms."""
    async with await connect(broker_thread.port, client_id="watcher") as w:
        first = await w.request(m.StateObserve(1, "/meta/clients"))
        assert isinstance(first, m.ReplyStateKnown)
        assert [c["client"] for c in first.value.obj["clients"]] == ["watcher"]
        assert first.value.obj["clients_total"] == 1
        async with await connect(broker_thread.port, client_id="owner") as o:
            await o.register("action", "/x")
            with anyio.fail_after(2):
                while True:
                    note = await w.recv_as(m.StateNotify)
                    entries = {c["client"]: c for c in note.value.obj["clients"]}
                    if entries.get("owner", {}).get("registrations") == 1:
                        break
            assert entries["owner"]["leases"] == 0
            assert entries["owner"]["peer"].startswith("127.0.0.1:")
        with anyio.fail_after(2):
            while True:
                note = await w.recv_as(m.StateNotify)
                if note.value.obj["clients_total"] == 1:
                    break
        assert await w.request(m.Set(2, "/meta/clients", v(1))) == err(2, "not_owner")
        assert await w.request(m.StateRegister(3, "/meta/clients")) == err(3, "path_already_exists")


async def test_reserved_lease_paths(broker_thread: BrokerThread) -> None:
    """E10, §15: registrations under /meta/leases and of /meta/lease_events are refused; only
    holder states and events events may be observed or listened to there."""
    async with await connect(broker_thread.port) as a:
        assert await a.request(m.StateRegister(1, "/meta/leases/r/holder")) == err(
            1, "path_already_exists"
        )
        assert await a.request(m.EventRegister(2, "/meta/lease_events")) == err(
            2, "path_already_exists"
        )
        assert await a.request(m.StateObserve(3, "/meta/leases/r/x")) == err(
            3, "path_already_exists"
        )
        assert await a.request(m.StateObserve(4, "/meta/leases/r/holder")) == (
            m.ReplyStateUnknown(4)
        )
        await a.call_ok(m.EventListen(5, "/meta/leases/r/events"))
        await a.register("state", "/meta/mine")
