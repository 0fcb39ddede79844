"""The lease table at its edges: limits, declared resources, frames, queries, shutdown."""

from __future__ import annotations

from typing import Any

from roost.broker.leases.types import Declared, Identity, Push
from roost.protocol.tokens import make_token, sublease
from tests.broker.leaseharness import Harness, holders

R = "lab/arm"


def token_of(reply: dict[str, Any]) -> dict[str, Any]:
    """The token of an OK acquire/take reply."""
    tok: dict[str, Any] = reply["lease"]["token"]
    return tok


def test_declared_resources_and_limits() -> None:
    """Declared lists reject other names; takeable false gives NOT_PERMITTED; RESOURCE_LIMIT."""
    h = Harness(declared=[Declared("dev", takeable=False), Declared("dev2")])
    h.connect("A", "B")
    assert h.acquire("A", "other")["status"] == "INVALID_RESOURCE"
    assert h.info("other")["status"] == "INVALID_RESOURCE"
    h.acquire("A", "dev")
    assert h.take("B", "dev")["status"] == "NOT_PERMITTED"
    assert len(h.table.holder_states()) == 2
    small = Harness(max_resources=2)
    small.connect("A")
    small.acquire("A", "r1")
    small.acquire("A", "r2")
    assert small.acquire("A", "r3")["status"] == "RESOURCE_LIMIT"
    assert small.take("A", "r3")["status"] == "RESOURCE_LIMIT"
    assert small.acquire("A", "r1")["status"] == "OK"


def test_wait_limit_per_connection() -> None:
    """A connection with max_waits queued acquires gets WAIT_LIMIT for one more and nothing is
    queued; fail-fast, grants, keyed repeats and other connections are unaffected; a wait that
    ends frees a place."""
    h = Harness(max_waits=3)
    h.connect("A", "B", "C")
    h.acquire("A", "r0")
    h.acquire("A", "r1")
    h.acquire("A", "r2")
    h.acquire("A", "r3")
    requests = [h.acquire("B", f"r{i}", wait=-1, key=f"k{i}")["request"] for i in range(3)]
    before = len(h.table._queue)
    refused = h.acquire("B", "r3", wait=10)
    assert refused == {"status": "WAIT_LIMIT", "max_waits": 3}
    assert not h.pushes() and ("queued", "r3", None) not in h.events()
    assert len(h.table._queue) == before
    assert h.info("r3")["info"]["waiters"] == []
    assert h.acquire("B", "r3")["status"] == "ALREADY_CLAIMED"  # fail fast is not a wait
    assert h.acquire("B", "free")["status"] == "OK"  # grants are not waits
    again = h.acquire("B", "r0", wait=-1, key="k0")  # the same wait again, not a new one
    assert again["status"] == "QUEUED" and again["request"] == requests[0]
    assert h.acquire("C", "r3", wait=10)["status"] == "QUEUED"  # the limit is per connection
    assert h.cancel("B", requests[1])["status"] == "OK"
    assert h.acquire("B", "r3", wait=10)["status"] == "QUEUED"
    assert h.acquire("B", "r1", wait=10)["status"] == "WAIT_LIMIT"
    h.ret("A", token_of(h.acquire("A", "r0")))  # B's wait on r0 is granted: a place frees
    assert [p.kind for p in h.pushes("B")] == ["lease_granted"]
    assert h.acquire("B", "r1", wait=10)["status"] == "QUEUED"


def test_guard_decisions() -> None:
    """Plain calls use the caller's newest covering lease; token calls use the use status."""
    h = Harness()
    h.connect("A", "B", "D")
    assert h.guard("A", R) == {"status": "NO_LEASE", "holders": []}
    lab = token_of(h.acquire("A", "lab"))
    assert h.guard("A", R) == {"status": "OK", "token": lab}
    refused = h.guard("B", R)
    assert refused["status"] == "NO_LEASE"
    assert [x["token"] for x in refused["holders"]] == [lab]
    sub = sublease(lab, "planner")
    assert h.guard("D", R, sub) == {"status": "OK", "token": sub}
    assert h.guard("D", "elsewhere", sub)["status"] == "UNMANAGED"


def test_info_and_list() -> None:
    """info of a free valid name; list in name order with holders or waiters, paged by after."""
    h = Harness()
    h.connect("A", "B")
    free = h.info("never/used")["info"]
    assert free["mode"] is None and free["holders"] == [] and free["floor"] is None
    h.acquire("A", "b")
    h.acquire("A", "a/x")
    h.acquire("B", "a/x", wait=5)
    t = token_of(h.acquire("A", "c"))
    h.ret("A", t)
    names = [i["resource"] for i in h.listing()["resources"]]
    assert names == ["a/x", "b"]
    assert [i["resource"] for i in h.listing(after="a/x")["resources"]] == ["b"]
    assert [i["resource"] for i in h.listing(prefix="a")["resources"]] == ["a/x"]
    assert h.info("c")["info"]["floor"] == t["seq"][0]


def test_list_and_holder_state_fit_a_frame() -> None:
    """E10: many big holders are cut with totals; list pages with more."""
    h = Harness()
    conns = [f"c{i}" for i in range(300)]
    h.connect(*conns)
    note = "n" * 1000
    for c in conns:
        h.acquire(c, R, mode="shared", identity=Identity(note=note))
    state = h.states()[R]
    assert state["holders_total"] == 300 and 0 < len(state["holders"]) < 300
    info = h.info(R)["info"]
    assert info["holders_total"] == 300 and len(info["holders"]) < 300
    for i in range(60):
        h.acquire(conns[i], f"z/{i:03}", identity=Identity(note=note))
    page = h.listing(prefix="z")
    assert page["more"] is True and 0 < len(page["resources"]) < 60


def test_shutdown_pushes_restart() -> None:
    """E8: a graceful stop pushes restart to each open holder; waits vanish silently."""
    h = Harness()
    h.connect("A", "B")
    h.acquire("A", R)
    h.acquire("B", R, wait=5)
    h.shutdown()
    assert [(p.conn, p.body["reason"]) for p in h.pushes()] == [("A", "restart")]
    assert all(isinstance(p, Push) for p in h.pushes())
    assert holders(h.states()[R]) == [] and h.states()[R]["waiters"] == 0


def test_wall_clock_is_display_only() -> None:
    """Invariant 5: nothing ends before its monotonic deadline, whatever since says."""
    h = Harness()
    h.table.wall_offset = -1e9
    h.connect("A")
    h.acquire("A", R, ttl=1.0)
    h.advance(0.9)
    assert h.events() == []
    assert make_token(1, 1, R, None)["seq"] == [1]


def test_exclusive_waiter_timeout_wakes_shared_waiters() -> None:
    """Lost wake-up: when an exclusive waiter times out, the sharers behind it are granted."""
    h = Harness()
    h.connect("A", "X", "B", "C")
    h.acquire("A", R, mode="shared")
    h.acquire("X", R, wait=0.5)
    h.acquire("B", R, mode="shared", wait=5)
    h.acquire("C", R, mode="shared", wait=5)
    assert h.pushes() == []
    h.advance(0.5)
    assert [(p.conn, p.kind) for p in h.pushes()] == [
        ("X", "lease_wait_ended"),
        ("B", "lease_granted"),
        ("C", "lease_granted"),
    ]
    assert holders(h.states()[R]) == ["id-A", "id-B", "id-C"]


def test_key_of_an_ended_outcome_starts_afresh() -> None:
    """A key names its outcome only while it is current; afterwards it is a new acquire."""
    h = Harness()
    h.connect("A")
    first = h.acquire("A", R, key="k")
    h.ret("A", token_of(first))
    second = h.acquire("A", R, key="k")
    assert second["status"] == "OK" and second["lease"]["lease_id"] != first["lease"]["lease_id"]
    assert list(h.table._conns["A"].keys) == ["k"]


def test_two_grants_differ() -> None:
    """Two grants in one process have different lease ids, tokens and start times."""
    h = Harness()
    h.connect("A", "B")
    a = h.acquire("A", "r1")["lease"]
    h.now += 0.001
    b = h.acquire("B", "r2")["lease"]
    assert a["lease_id"] != b["lease_id"] and a["token"] != b["token"]
    assert a["since"] != b["since"]


def test_huge_client_id_still_fits_frames() -> None:
    """E10: a client id of 40 kB keeps events and pushes within a frame (holder/by left out)."""
    from roost.broker.leases.types import Event
    from roost.protocol.values import pack

    h = Harness()
    h.table.connect("A", "a" * 40_000, 5.0, h.now)
    h.connect("B")
    a = token_of(h.acquire("A", R))
    (granted,) = [e for e in h.fx if isinstance(e, Event)]
    assert "holder" not in granted.value and granted.value["token"] == a
    assert len(pack(h.states()[R])) < 65_000
    h.table.connect("C", "c" * 40_000, 5.0, h.now)
    h.take("C", "lab")
    (push,) = h.pushes("A")
    assert "by" not in push.body and push.body["new_token"]["resource"] == "lab"
    assert all(len(pack(e.value)) < 65_000 for e in h.fx if isinstance(e, Event))


def test_long_resource_names_are_invalid() -> None:
    """Names longer than 1024 characters are INVALID_RESOURCE (every lease node fits a frame)."""
    h = Harness()
    h.connect("A")
    assert h.acquire("A", "a" * 1024)["status"] == "OK"
    assert h.acquire("A", "a" * 1025)["status"] == "INVALID_RESOURCE"
