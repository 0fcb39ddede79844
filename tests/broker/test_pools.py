"""Resource pools over a lease table: requirements and each documented operator, lockable's
defaults, NO_MATCH / NONE_FREE / INVALID_REQUIREMENTS at once, fairness, the FIFO queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roost.broker.leases.pools import (
    OPERATORS,
    PoolBook,
    PoolSettings,
    check_inventory,
    load_inventory,
)
from roost.broker.leases.types import Identity, Push
from tests.broker.leaseharness import Harness

HOST = "rig1"
INVENTORY = [
    {"id": "dev-1", "hostname": HOST, "online": True, "os": "linux", "ram": 8,
     "tags": ["usb", "gpu"]},
    {"id": "dev-2", "hostname": HOST, "online": True, "os": "windows", "ram": 16, "tags": ["usb"]},
    {"id": "dev-3", "hostname": HOST, "online": True, "os": "linux", "ram": 32, "serial": "A7",
     "board": {"rev": 2}},
    {"id": "dev-4", "hostname": HOST, "online": False, "os": "linux", "ram": 64},
    {"id": "dev-5", "hostname": "rig2", "online": True, "os": "linux", "ram": 8},
]  # fmt: skip
#: lockable's own example inventory (its repository's resources.json), as it is.
LOCKABLE_EXAMPLE = """[
  {"id": "2", "online": false, "hostname": "localhost", "test": true},
  {"id": "1", "online": true, "hostname": "localhost", "test": false},
  {"id": "3", "online": true, "hostname": "localhost2", "test": true}
]"""


class Pool:
    """A PoolBook over a harness table; connections A..Z on host rig1."""

    def __init__(self, items: list[dict[str, Any]] = INVENTORY) -> None:
        self.h = Harness()
        self.book = PoolBook(self.h.table)
        self.book.load(check_inventory(items, "test"))
        self.pushes: list[Push] = []

    def _take(self, result: tuple[Any, list[Any]]) -> Any:
        reply, fx = result
        self.h.log.extend(fx)
        self.book.observe(fx)
        self.pushes += [p for p in fx if isinstance(p, Push)]
        self.h.table.check_invariants()
        return reply

    def acquire(self, conn: str, query: Any, wait: float = 0, host: str = HOST) -> Any:
        if conn not in self.h.table._conns:
            self.h.connect(conn)
        ident = Identity(name=conn, host=host)
        return self._take(
            self.book.acquire(
                conn, query, self.h.now, wait=wait, ttl=None, identity=ident, key=None
            )
        )

    def ids(self, query: dict[str, Any], host: str = HOST) -> set[str]:
        """Every id the query can have: acquire until NONE_FREE on fresh connections."""
        got: set[str] = set()
        for n in range(10):
            reply = self.acquire(f"probe{n}", query, host=host)
            if reply["status"] != "OK":
                break
            got.add(reply["lease"]["resource"])
        return got

    def release(self, reply: dict[str, Any], conn: str) -> None:
        token = reply["lease"]["token"]
        _, fx = self.h.table.return_lease(conn, token, self.h.now)
        self.h.log.extend(fx)
        released = self.book.observe(fx)
        if released:
            self._take((None, self.book.serve(self.h.now, released)))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"dev-1", "dev-2", "dev-3"}),
        ({"os": "linux"}, {"dev-1", "dev-3"}),
        ({"os": {"$eq": "windows"}}, {"dev-2"}),
        ({"os": {"$ne": "linux"}}, {"dev-2"}),
        ({"ram": {"$gt": 8}}, {"dev-2", "dev-3"}),
        ({"ram": {"$gte": 16}}, {"dev-2", "dev-3"}),
        ({"ram": {"$lt": 16}}, {"dev-1"}),
        ({"ram": {"$lte": 16}}, {"dev-1", "dev-2"}),
        ({"os": {"$in": ["windows", "mac"]}}, {"dev-2"}),
        ({"os": {"$nin": ["linux"]}}, {"dev-2"}),
        ({"serial": {"$exists": True}}, {"dev-3"}),
        ({"serial": {"$exists": False}}, {"dev-1", "dev-2"}),
        ({"id": {"$regex": "^dev-[12]$"}}, {"dev-1", "dev-2"}),
        ({"os": {"$regex": "/^LIN/i"}}, {"dev-1", "dev-3"}),
        ({"ram": {"$not": {"$gt": 8}}}, {"dev-1"}),
        ({"$and": [{"os": "linux"}, {"ram": {"$gt": 8}}]}, {"dev-3"}),
        ({"$or": [{"os": "windows"}, {"ram": 32}]}, {"dev-2", "dev-3"}),
        ({"$nor": [{"os": "windows"}, {"ram": 32}]}, {"dev-1"}),
        ({"tags": "usb"}, {"dev-1", "dev-2"}),
        ({"tags": {"$all": ["usb", "gpu"]}}, {"dev-1"}),
        ({"tags": {"$size": 1}}, {"dev-2"}),
        ({"tags": {"$elemMatch": {"$eq": "gpu"}}}, {"dev-1"}),
        ({"ram": {"$mod": [16, 0]}}, {"dev-2", "dev-3"}),
        ({"serial": {"$type": "string"}}, {"dev-3"}),
        ({"board.rev": 2}, {"dev-3"}),
    ],
)
def test_each_operator(query: dict[str, Any], expected: set[str]) -> None:
    """Each documented operator selects what MongoDB would (online, this host by default)."""
    assert Pool().ids(query) == expected


def test_operator_list_is_the_documented_one() -> None:
    """The accepted operators are exactly those tested above plus none else."""
    assert len(OPERATORS) == 19


def test_lockable_defaults_and_lifting_them() -> None:
    """Only online resources of the requester's host by default; None lifts either."""
    p = Pool()
    assert p.ids({"os": "linux"}) == {"dev-1", "dev-3"}
    assert Pool().ids({"os": "linux", "online": None}) == {"dev-1", "dev-3", "dev-4"}
    assert Pool().ids({"os": "linux", "hostname": None}) == {"dev-1", "dev-3", "dev-5"}
    assert Pool().ids({}, host="rig2") == {"dev-5"}


def test_impossible_requirement_fails_at_once() -> None:
    """NO_MATCH even with a wait; nothing is queued."""
    p = Pool()
    reply = p.acquire("A", {"os": "plan9"}, wait=60)
    assert reply["status"] == "NO_MATCH"
    assert '"os": "plan9"' in reply["reason"] and "among the 5" in reply["reason"]
    assert p.book.waiters == {}


@pytest.mark.parametrize(
    "query",
    [
        {"ram": {"$bogus": 1}},
        {"$where": "1"},
        ["os"],
        {"os": {"$regex": 5}},
        {"os": {"$options": "i"}},
        {"ram": {"$mod": [0, 0]}},
        {"id": {"$regex": "^(a+)+$"}},
        {"id": {"$regex": "(x*y)*z"}},
        {"id": {"$regex": "x" * 300}},
    ],
)
def test_invalid_requirements(query: Any) -> None:
    """An unsupported operator or shape is INVALID_REQUIREMENTS with a reason, at once."""
    reply = Pool().acquire("A", query, wait=60)
    assert reply["status"] == "INVALID_REQUIREMENTS" and reply["reason"]


def test_grant_carries_id_and_attributes_and_none_free() -> None:
    """The grant is an ordinary lease on the id with the attributes; when all matches are
    held, wait 0 is NONE_FREE naming the holders."""
    p = Pool()
    reply = p.acquire("A", {"os": "windows"})
    lease = reply["lease"]
    assert lease["resource"] == "dev-2" and lease["attributes"]["ram"] == 16
    assert lease["token"]["resource"] == "dev-2" and lease["queued"] == 0.0
    busy = p.acquire("B", {"os": "windows"})
    assert busy["status"] == "NONE_FREE"
    assert [h["name"] for h in busy["holders"]] == ["A"]
    listing = {r["id"]: r["status"] for r in p.book.listing()}
    assert listing == {
        "dev-1": "free",
        "dev-2": "held",
        "dev-3": "free",
        "dev-4": "offline",
        "dev-5": "free",
    }


def test_least_recently_released_first() -> None:
    """Never-used resources first, in inventory order; then the one released longest ago."""
    p = Pool()
    a = p.acquire("A", {"os": "linux"})
    b = p.acquire("B", {"os": "linux"})
    assert [a["lease"]["resource"], b["lease"]["resource"]] == ["dev-1", "dev-3"]
    p.release(b, "B")
    p.release(a, "A")
    c = p.acquire("C", {"os": "linux"})
    assert c["lease"]["resource"] == "dev-3"


def test_fifo_queue_served_on_release() -> None:
    """Waiters are granted in arrival order as resources come back; a waiter whose match is
    not the released one does not block the others."""
    p = Pool()
    first = p.acquire("A", {"os": "linux"})
    second = p.acquire("B", {"os": "linux"})
    windows = p.acquire("W", {"os": "windows"})
    waits = [p.acquire(c, {"os": "linux"}, wait=60) for c in ("C", "D")]
    win_wait = p.acquire("V", {"os": "windows"}, wait=60)
    assert [w["status"] for w in [*waits, win_wait]] == ["QUEUED"] * 3
    assert [w["position"] for w in waits] == [1, 2]
    p.release(windows, "W")
    assert [(x.conn, x.body["lease"]["resource"]) for x in p.pushes] == [("V", "dev-2")]
    p.release(second, "B")
    p.release(first, "A")
    grants = [(x.conn, x.body["lease"]["resource"]) for x in p.pushes[1:]]
    assert grants == [("C", "dev-3"), ("D", "dev-1")]
    assert p.book.waiters == {}


def test_cancel_disconnect_and_deadline() -> None:
    """Cancel ends a wait with CANCELLED; a closed connection's wait vanishes; a deadline ends
    one with TIMEOUT; lease ids of the table are not pool requests."""
    p = Pool()
    p.acquire("A", {"os": "windows"})
    w1 = p.acquire("B", {"os": "windows"}, wait=60)
    w2 = p.acquire("C", {"os": "windows"}, wait=60)
    w3 = p.acquire("D", {"os": "windows"}, wait=5)
    cancelled = p.book.cancel("B", w1["request"])
    assert cancelled is not None
    reply, fx = cancelled
    assert reply == {"status": "OK"}
    assert [x.body for x in fx if isinstance(x, Push)] == [
        {"request": w1["request"], "status": "CANCELLED"}
    ]
    assert p.book.cancel("B", w1["request"]) == ({"status": "NOT_WAITING"}, [])
    assert p.book.cancel("B", 7) is None
    p.book.disconnect("C")
    assert set(p.book.waiters) == {w3["request"]}
    assert w2["request"] not in p.book.waiters
    assert p.book.next_deadline() == p.h.now + 5
    ended = p.book.serve(p.h.now + 5)
    assert [x.body for x in ended if isinstance(x, Push)] == [
        {"request": w3["request"], "status": "TIMEOUT"}
    ]


def test_lockable_example_inventory_loads(tmp_path: Any) -> None:
    """lockable's resources.json loads as it is and its defaults apply."""
    path = tmp_path / "resources.json"
    path.write_text(LOCKABLE_EXAMPLE)
    items = load_inventory(PoolSettings(str(path)))
    assert [x["id"] for x in items] == ["2", "1", "3"]
    p = Pool(items)
    assert p.ids({}, host="localhost") == {"1"}
    assert Pool(items).ids({"online": None, "test": True}, host="localhost") == {"2"}


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ({"id": "x"}, "a list"),
        ([{"name": "x"}], "no 'id'"),
        ([{"id": "a b"}], "no resource name"),
        ([{"id": "a"}, {"id": "a"}], "twice"),
        ([{"id": 7}, {"id": "7"}], "twice"),
        ([{"id": True}], "no 'id'"),
    ],
)
def test_bad_inventories(items: Any, words: str) -> None:
    """A bad inventory is refused naming the source and the item."""
    with pytest.raises(ValueError, match=words):
        check_inventory(json.loads(json.dumps(items)), "inv.json")


def test_liveness_wait_cap_and_retries() -> None:
    """A connection without idle timeout is refused; queued requests per connection are capped
    (WAIT_LIMIT); a retried acquire with the same key gets the same wait or the same lease."""
    p = Pool()
    p.h.connect("Z", timeout=0)
    assert p.acquire("Z", {"os": "windows"})["status"] == "TIMEOUT_REQUIRED"
    p.h.table.max_waits = 2
    p.acquire("A", {"os": "windows"})
    ident = Identity(name="B", host=HOST)
    p.h.connect("B")

    def again(key: str) -> Any:
        return p._take(
            p.book.acquire(
                "B", {"os": "windows"}, p.h.now, wait=60, ttl=None, identity=ident, key=key
            )
        )

    first = again("k1")
    assert again("k1")["request"] == first["request"]
    again("k2")
    assert again("k3")["status"] == "WAIT_LIMIT"
    granted = p.acquire("C", {"os": "linux"})
    ident_c = Identity(name="C", host=HOST)
    retry = p._take(
        p.book.acquire("C", {"os": "linux"}, p.h.now, wait=0, ttl=None, identity=ident_c, key="kc")
    )
    other = p._take(
        p.book.acquire("C", {"os": "linux"}, p.h.now, wait=0, ttl=None, identity=ident_c, key="kc")
    )
    assert retry["lease"]["resource"] == other["lease"]["resource"] != granted["lease"]["resource"]
    assert other["lease"]["lease_id"] == retry["lease"]["lease_id"]
    assert other["lease"]["attributes"]["os"] == "linux"


@pytest.mark.parametrize(
    "query",
    [
        {"os": "linux"},
        {"tags": "usb"},
        {"tags": "gpu", "os": "linux"},
        {"ram": 8, "online": True},
        {"ram": 8.0},
        {"online": 1},
        {"os": "linux", "ram": {"$gt": 8}},
        {"serial": "A7", "hostname": "rig1"},
        {"os": "nothing"},
        {"os": {"$in": ["linux"]}, "hostname": "rig2"},
        {"tags": ["usb"]},
    ],
)
def test_index_agrees_with_mongoquery(query: dict[str, Any]) -> None:
    """The inventory index finds exactly what mongoquery finds on every entry."""
    from mongoquery import Query

    book = PoolBook(Harness().table)
    book.load(INVENTORY)
    brute = [x["id"] for x in INVENTORY if Query(query).match(x)]
    assert book.matches(query) == brute


def test_a_durable_lock_takes_a_device_out_of_the_pool() -> None:
    """Locking a device's id (say, for maintenance) keeps pool requests off it until cleared."""
    from roost.broker.leases.locks import LockBook, LockSettings

    p = Pool()
    locks = LockBook(p.h.table, None, LockSettings(), lambda *_: None)
    locks.set("dev-2", "k", p.h.now, 0.0, identity=Identity(user="tech", note="repair"))
    busy = p.acquire("A", {"os": "windows"})
    assert busy["status"] == "NONE_FREE" and busy["holders"][0]["note"] == "repair"
    _, fx = locks.clear("dev-2", p.h.now, key="k")
    assert p.book.observe(fx) == ["dev-2"]
    assert p.acquire("A", {"os": "windows"})["lease"]["resource"] == "dev-2"
