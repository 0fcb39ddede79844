"""The lease table, rule by rule (protocol.md E4-E9, cases L3-L28)."""

from __future__ import annotations

from typing import Any

from roost.broker.leases.types import Declared, Identity
from roost.protocol.tokens import sublease
from tests.broker.leaseharness import EPOCH, Harness, holders

R = "lab/arm"


def token_of(reply: dict[str, Any]) -> dict[str, Any]:
    """The token of an OK acquire/take reply."""
    tok: dict[str, Any] = reply["lease"]["token"]
    return tok


def test_grant_on_free_resource() -> None:
    """Case L3: OK with lease and token; one holder state; granted event; audit line."""
    h = Harness()
    h.connect("A")
    r = h.acquire("A", R, name="alice")
    assert r["status"] == "OK"
    lease = r["lease"]
    assert lease["resource"] == R and lease["mode"] == "exclusive" and lease["ttl"] is None
    assert lease["token"] == {"epoch": EPOCH, "seq": [1], "resource": R, "client_names": ["alice"]}
    state = h.states()[R]
    assert holders(state) == ["id-A"] and state["mode"] == "exclusive" and state["waiters"] == 0
    assert h.events() == [("granted", R, None)]
    assert [a["event"] for a in h.audits()] == ["granted"]
    assert not h.pushes()


def test_fail_fast_with_holder_info() -> None:
    """Case L4: ALREADY_CLAIMED names the holder; nothing changes or is published."""
    h = Harness()
    h.connect("A", "B")
    ident = Identity(name="alice", user="al", host="h1", pid=42, note="calibrating")
    h.acquire("A", R, identity=ident)
    r = h.acquire("B", R)
    assert r["status"] == "ALREADY_CLAIMED" and r["waiters"] == 0
    (entry,) = r["holders"]
    assert (entry["name"], entry["user"], entry["host"], entry["pid"], entry["note"]) == (
        "alice",
        "al",
        "h1",
        42,
        "calibrating",
    )
    assert h.fx == []
    assert h.info(R)["info"]["waiters"] == []


def test_reentrant_acquire() -> None:
    """Case L5: the same lease back, no publish; other mode refused at once; one return frees."""
    h = Harness()
    h.connect("A")
    first = h.acquire("A", R)
    again = h.acquire("A", R)
    assert again == first and h.fx == []
    shared = h.acquire("A", R, mode="shared", wait=5)
    assert shared["status"] == "ALREADY_CLAIMED"
    assert h.acquire("A", "lab", wait=5)["status"] == "ALREADY_CLAIMED"
    assert h.ret("A", token_of(first))["status"] == "OK"
    assert holders(h.states()[R]) == []


def test_fifo_wait() -> None:
    """Case L6: queue positions, revoke before grant, root increases, next in line later."""
    h = Harness()
    h.connect("A", "B", "C", "D")
    a = h.acquire("A", R)
    rb = h.acquire("B", R, wait=10)
    rc = h.acquire("C", R, wait=10)
    assert (rb["status"], rb["position"], rc["status"], rc["position"]) == (
        "QUEUED",
        1,
        "QUEUED",
        2,
    )
    rd = h.acquire("D", R)
    assert rd["status"] == "ALREADY_CLAIMED" and rd["waiters"] == 2
    assert h.ret("A", token_of(a))["status"] == "OK"
    kinds = [(p.conn, p.kind) for p in h.pushes()]
    assert kinds == [("A", "lease_revoked"), ("B", "lease_granted")]
    granted = h.pushes("B")[0].body
    assert granted["request"] == rb["request"]
    assert granted["lease"]["token"]["seq"][0] > token_of(a)["seq"][0]
    assert [e[0] for e in h.events()] == ["ended", "granted"]
    assert h.table.info(R, h.now)[0]["info"]["waiters"][0]["request"] == rc["request"]
    h.ret("B", granted["lease"]["token"])
    assert [p.kind for p in h.pushes("C")] == ["lease_granted"]


def test_wait_timeout_exact_deadline() -> None:
    """Case L7: the wait ends TIMEOUT exactly at its deadline; a later free grants nothing."""
    h = Harness()
    h.connect("A", "B")
    a = h.acquire("A", R)
    rb = h.acquire("B", R, wait=0.3)
    assert h.table.next_deadline() == 0.3
    h.advance(0.2999)
    assert h.pushes() == []
    h.advance(0.0001)
    (push,) = h.pushes("B")
    assert push.body == {"request": rb["request"], "status": "TIMEOUT"}
    assert h.states()[R]["waiters"] == 0
    h.advance(0.2)
    h.ret("A", token_of(a))
    assert h.pushes("B") == []


def test_late_tick_still_decides_in_time_order() -> None:
    """A late sweeper: a lease lapsing before a waiter's deadline still grants that waiter."""
    h = Harness()
    h.connect("A", "B")
    h.acquire("A", R, ttl=1.0)
    h.acquire("B", R, wait=2.0)
    h.touch("A")
    h.now += 3.0  # no tick in between: both the ttl (t=1) and the deadline (t=2) are past
    h.touch("B")
    assert [(p.conn, p.kind) for p in h.pushes()] == [
        ("A", "lease_revoked"),
        ("B", "lease_granted"),
    ]
    assert [e[0] for e in h.events()] == ["ended", "granted"]
    assert h.table.held_by("B") == 1


def test_cancel() -> None:
    """Case L8: CANCELLED push then OK; cancels of gone or foreign waits get NOT_WAITING."""
    h = Harness()
    h.connect("A", "B", "C", "D")
    a = h.acquire("A", R)
    rb = h.acquire("B", R, wait=10)
    rd = h.acquire("D", R, wait=10)
    assert h.cancel("B", rb["request"]) == {"status": "OK"}
    assert [p.body for p in h.pushes()] == [{"request": rb["request"], "status": "CANCELLED"}]
    assert h.cancel("B", rb["request"])["status"] == "NOT_WAITING"
    assert h.cancel("C", rd["request"])["status"] == "NOT_WAITING"
    assert h.cancel("C", "nonsense")["status"] == "NOT_WAITING"
    h.ret("A", token_of(a))
    assert [p.conn for p in h.pushes() if p.kind == "lease_granted"] == ["D"]


def test_disconnected_waiter_never_granted() -> None:
    """Case L9 / etcd #11456: a waiter whose connection died is skipped; with none left R frees."""
    h = Harness()
    h.connect("A", "B", "C")
    a = h.acquire("A", R)
    h.acquire("B", R, wait=10)
    h.acquire("C", R, wait=10)
    h.disconnect("B")
    assert h.pushes() == []
    h.ret("A", token_of(a))
    assert [p.conn for p in h.pushes() if p.kind == "lease_granted"] == ["C"]
    assert all(a["holder"]["client"] != "id-B" for a in h.audits(h.log) if "holder" in a)


def test_idempotency_key() -> None:
    """Case L10 / ZOOKEEPER-1262: same key, same request; one grant; then the same lease."""
    h = Harness()
    h.connect("A", "B")
    a = h.acquire("A", R)
    q1 = h.acquire("B", R, wait=10, key="k1")
    q2 = h.acquire("B", R, wait=10, key="k1")
    assert q1 == q2 and q1["status"] == "QUEUED"
    assert len(h.info(R)["info"]["waiters"]) == 1
    h.ret("A", token_of(a))
    (granted,) = [p for p in h.pushes() if p.kind == "lease_granted"]
    again = h.acquire("B", R, key="k1")
    assert again["status"] == "OK" and again["lease"] == granted.body["lease"]


def test_take() -> None:
    """Case L11: holder pushed taken with by and new_token; waiter stays; one audit line."""
    h = Harness()
    h.connect("A", "B", "C")
    a = h.acquire("A", R)
    h.acquire("C", R, wait=10)
    assert h.take("B", R, reason="")["status"] == "bad_args" and h.fx == []
    t = h.take("B", R, reason="stuck arm")
    assert t["status"] == "OK"
    m_root, n_root = token_of(t)["seq"][0], token_of(a)["seq"][0]
    assert m_root > n_root
    (push,) = h.pushes()
    assert push.conn == "A" and push.body["reason"] == "taken"
    assert push.body["by"]["client"] == "id-B" and push.body["new_token"] == token_of(t)
    assert holders(h.states()[R]) == ["id-B"] and h.states()[R]["waiters"] == 1
    assert [e[0] for e in h.events()] == ["ended", "granted"]
    (audit,) = h.audits()
    assert audit["reason"] == "stuck arm" and audit["displaced"][0]["token"] == token_of(a)


def test_displaced_holder_gets_older() -> None:
    """Case L12: after a take every use of the old token, sub-leases too, reads OLDER."""
    h = Harness()
    h.connect("A", "B")
    a = token_of(h.acquire("A", R))
    h.take("B", R)
    for reply in (h.retain("A", a), h.validate(a), h.ret("A", a), h.guard("D", R, a)):
        assert reply["status"] == "OLDER" and holders(reply) == ["id-B"]
    assert h.guard("D", R, sublease(a, "x") | {"seq": [a["seq"][0], 4]})["status"] == "OLDER"


def test_return_by_non_holder_and_late_returns() -> None:
    """Case L13 / etcd #22082: NOT_HOLDER changes nothing; repeat REVOKED; late OLDER."""
    h = Harness()
    h.connect("A", "B")
    n = token_of(h.acquire("A", R))
    assert h.ret("B", n)["status"] == "NOT_HOLDER" and h.fx == []
    assert h.ret("A", n)["status"] == "OK"
    again = h.ret("A", n)
    assert again["status"] == "REVOKED" and again["reason"] == "returned"
    m_tok = token_of(h.acquire("A", R))
    assert h.ret("A", n)["status"] == "OLDER"
    assert h.validate(m_tok)["status"] == "OK"


def test_disconnect_revokes_and_grants() -> None:
    """Case L14: close ends the lease (no push); validate REVOKED disconnected; waiter granted."""
    h = Harness()
    h.connect("A", "B", "C")
    n = token_of(h.acquire("A", R))
    h.disconnect("A")
    assert h.pushes() == [] and holders(h.states()[R]) == []
    assert h.events() == [("ended", R, "disconnected")]
    v = h.validate(n)
    assert (v["status"], v["reason"]) == ("REVOKED", "disconnected")
    n2 = token_of(h.acquire("A2" if False else "C", R))
    h.acquire("B", R, wait=5)
    h.disconnect("C")
    assert [p.conn for p in h.pushes()] == ["B"]
    assert h.validate(n2)["status"] == "OLDER"


def test_silence_ends_lease_at_idle_timeout() -> None:
    """Case L15 / bernstein #5908: no bytes for timeout_s ends it as timeout; late retain OLDER."""
    h = Harness()
    h.connect("A", timeout=1.0)
    h.connect("B")
    n = token_of(h.acquire("A", R))
    h.advance(0.5)
    h.touch("A")
    h.advance(0.9999)
    assert h.events() == []
    h.advance(0.0001)
    assert h.events() == [("ended", R, "timeout")] and h.closes() == ["A"]
    assert h.pushes() == []
    v = h.validate(n)
    assert (v["status"], v["reason"]) == ("REVOKED", "timeout")
    h.acquire("B", R)
    assert h.retain("A", n)["status"] in ("unregistered", "OLDER")
    assert h.validate(n)["status"] == "OLDER"


def test_ttl() -> None:
    """Case L16: retains restart the ttl; lapse pushes expired; validate REVOKED expired."""
    h = Harness()
    h.connect("A")
    n = token_of(h.acquire("A", R, ttl=0.5))
    for _ in range(10):
        h.advance(0.2)
        h.touch("A")
        r = h.retain("A", n)
        assert r == {"status": "OK", "ttl_left": 0.5}
    h.advance(0.4999)
    assert h.pushes() == []
    h.advance(0.0001)
    (push,) = h.pushes("A")
    assert push.body["reason"] == "expired"
    assert h.validate(n)["reason"] == "expired"
    assert h.acquire("A", R, ttl=0)["status"] == "bad_args"
    assert h.acquire("A", R, ttl=3601)["status"] == "bad_args"


def test_timeout_zero_refused_and_rehello_zero_ends_everything() -> None:
    """Case L17: timeout 0 cannot acquire or take; a later hello with 0 ends leases and waits."""
    h = Harness()
    h.connect("X", timeout=0)
    h.connect("A", "B")
    assert h.acquire("X", R)["status"] == "TIMEOUT_REQUIRED" and h.fx == []
    assert h.take("X", R)["status"] == "TIMEOUT_REQUIRED"
    assert "lab/arm" not in h.table._records
    h.rehello("X", 5)
    assert h.acquire("X", R)["status"] == "OK"
    h.acquire("A", "lab/cam")
    a = token_of(h.acquire("B", "lab/x"))
    h.acquire("B", "lab/cam", wait=5)
    h.rehello("B", 0)
    assert [(p.kind, p.body.get("reason", p.body.get("status"))) for p in h.pushes()] == [
        ("lease_revoked", "timeout_required"),
        ("lease_wait_ended", "TIMEOUT_REQUIRED"),
    ]
    assert h.validate(a)["reason"] == "timeout_required"


def test_tokens_strictly_increase_and_ids_unique() -> None:
    """Case L18 (one epoch): every grant's root exceeds every earlier one; ids never repeat."""
    h = Harness()
    h.connect("A", "B", "C")
    seen: list[tuple[int, int]] = []
    for i in range(30):
        conn = "ABC"[i % 3]
        res = ["lab/arm", "lab/cam", "x"][i % 3]
        r = h.take(conn, res) if i % 4 == 0 else h.acquire(conn, res, mode="shared")
        if r["status"] == "OK" and (r["lease"]["lease_id"], token_of(r)["seq"][0]) not in seen:
            seen.append((r["lease"]["lease_id"], token_of(r)["seq"][0]))
    roots = [s[1] for s in seen]
    assert roots == sorted(set(roots)) and len({s[0] for s in seen}) == len(seen)


def test_use_status_decision() -> None:
    """Case L19: each rule of E6 in order."""
    h = Harness()
    h.connect("A", "B")
    k = token_of(h.acquire("A", R))
    h.ret("A", k)
    n = token_of(h.acquire("A", R, name="alice"))
    for res in ("o1", "o2", "o3"):
        h.acquire("B", res)
    assert h.validate({**n, "seq": []})["status"] == "INVALID_LEASE"
    assert h.validate({"seq": [1], "resource": "nowhere"})["status"] == "INVALID_LEASE"
    assert h.validate({**n, "resource": "nowhere"})["status"] == "UNMANAGED"
    assert h.validate({**n, "epoch": EPOCH - 1})["status"] == "WRONG_EPOCH"
    assert h.validate({**n, "seq": [n["seq"][0] + 100]})["status"] == "INVALID_LEASE"
    assert h.validate(n)["status"] == "OK"
    assert (
        h.validate({**n, "seq": [n["seq"][0], 0], "client_names": ["alice", "planner"]})["status"]
        == "OK"
    )
    assert h.validate(k)["status"] == "OLDER"
    assert h.validate(n, "lab/arm/x")["status"] == "OK"
    assert h.validate(n, "lab")["status"] == "UNMANAGED"
    h.ret("A", n)
    v = h.validate(n)
    assert (v["status"], v["reason"]) == ("REVOKED", "returned")


def test_shared_capacity_and_writer_preference() -> None:
    """Case L25: shared up to max_holders; an exclusive waiter holds back later sharers."""
    h = Harness(declared=[Declared("lab/scope", max_holders=3), Declared("lab/two", 2)])
    S = "lab/scope"
    h.connect("A", "B", "C", "X")
    a = token_of(h.acquire("A", S, mode="shared"))
    b = token_of(h.acquire("B", S, mode="shared"))
    assert a["seq"] != b["seq"]
    assert h.states()[S]["mode"] == "shared" and holders(h.states()[S]) == ["id-A", "id-B"]
    assert h.acquire("X", S)["status"] == "ALREADY_CLAIMED"
    assert h.acquire("X", S, wait=10)["status"] == "QUEUED"
    assert h.acquire("C", S, mode="shared", wait=10)["status"] == "QUEUED"
    h.ret("A", a)
    assert h.pushes("X") == [] and h.pushes("C") == []
    h.ret("B", b)
    (gx,) = h.pushes("X")
    assert gx.kind == "lease_granted" and h.pushes("C") == []
    h.ret("X", gx.body["lease"]["token"])
    assert [p.kind for p in h.pushes("C")] == ["lease_granted"]
    h.acquire("A", "lab/two", mode="shared")
    h.acquire("B", "lab/two", mode="shared")
    assert h.acquire("X", "lab/two", mode="shared")["status"] == "ALREADY_CLAIMED"


def test_shared_return_of_younger_keeps_older_ok() -> None:
    """Case L25: a returned younger sharer reads REVOKED; the older sharer stays OK."""
    h = Harness()
    h.connect("A", "B")
    a = token_of(h.acquire("A", R, mode="shared"))
    b = token_of(h.acquire("B", R, mode="shared"))
    h.ret("B", b)
    assert h.validate(b)["status"] == "REVOKED" and h.validate(a)["status"] == "OK"


def test_hierarchy_overlap() -> None:
    """Case L26: ancestors and descendants conflict; siblings and look-alike names do not."""
    h = Harness()
    h.connect("A", "B", "C")
    a = token_of(h.acquire("A", "lab/robot1"))
    claimed = h.acquire("B", "lab/robot1/arm")
    assert claimed["status"] == "ALREADY_CLAIMED" and claimed["holders"][0]["token"] == a
    assert h.acquire("B", "lab")["status"] == "ALREADY_CLAIMED"
    assert h.acquire("B", "lab/robot2")["status"] == "OK"
    assert h.acquire("B", "laboratory")["status"] == "OK"
    assert h.info("lab/robot1/arm")["info"]["holders"][0]["token"] == a
    assert h.acquire("B", "lab/robot1/arm", wait=10)["status"] == "QUEUED"
    h.ret("A", a)
    assert [p.kind for p in h.pushes("B")] == ["lease_granted"]
    h.take("C", "lab")
    ended = sorted(p.body["resource"] for p in h.pushes("B"))
    assert ended == ["lab/robot1/arm", "lab/robot2"]
    assert all(p.body["reason"] == "taken" for p in h.pushes("B"))
    assert h.table.held_by("B") == 1  # laboratory


def test_hierarchy_shared() -> None:
    """Case L26: shared lab and shared lab/x coexist; exclusive lab/x does not."""
    h = Harness()
    h.connect("A", "B", "C")
    assert h.acquire("A", "lab", mode="shared")["status"] == "OK"
    assert h.acquire("B", "lab/x", mode="shared")["status"] == "OK"
    assert h.acquire("C", "lab/x")["status"] == "ALREADY_CLAIMED"
    assert holders(h.info("lab/x")["info"]) == ["id-A", "id-B"]


def test_holder_state_and_events_per_step() -> None:
    """Case L27: one holder state per step, in order; events granted/queued/ended/granted/ended."""
    h = Harness()
    h.connect("A", "B")
    seen = []
    a = token_of(h.acquire("A", R))
    seen.append(h.states()[R])
    h.acquire("B", R, wait=10)
    seen.append(h.states()[R])
    h.ret("A", a)
    seen.append(h.states()[R])
    h.disconnect("B")
    seen.append(h.states()[R])
    assert [(holders(s), s["waiters"]) for s in seen] == [
        (["id-A"], 0),
        (["id-A"], 1),
        (["id-B"], 0),
        ([], 0),
    ]
    assert [e[:1] + e[2:] for e in h.events(h.log)] == [
        ("granted", None),
        ("queued", None),
        ("ended", "returned"),
        ("granted", None),
        ("ended", "disconnected"),
    ]


def test_descendant_holder_states_list_ancestor_lease() -> None:
    """Invariant 13: every managed descendant's holder state lists the ancestor's lease."""
    h = Harness()
    h.connect("A", "B")
    h.acquire("B", "a/b/c")
    token = token_of(h.acquire("B", "a/b/d", mode="shared"))
    h.ret("B", token)
    h.disconnect("B")
    h.acquire("A", "a")
    states = h.states()
    assert set(states) == {"a", "a/b/c", "a/b/d"}
    assert all(holders(s) == ["id-A"] for s in states.values())


def test_takeover_same_as_disconnect() -> None:
    """Case L28: the router's takeover is a disconnect; the new connection holds nothing."""
    h = Harness()
    h.connect("A")
    n = token_of(h.acquire("A", R))
    h.disconnect("A", "disconnected")
    h.connect("A2")
    assert h.table.held_by("A2") == 0
    assert token_of(h.acquire("A2", R))["seq"][0] > n["seq"][0]


def test_request_validation_statuses() -> None:
    """Case L29 (table part): unknown connection, bad names, bad mode."""
    h = Harness()
    assert h.acquire("nobody", R)["status"] == "unregistered"
    h.connect("A")
    for bad in ("lab//arm", "/lab", "lab/holder", "lab/events/x", ""):
        assert h.acquire("A", bad)["status"] == "INVALID_RESOURCE"
        assert h.take("A", bad)["status"] == "INVALID_RESOURCE"
        assert h.info(bad)["status"] == "INVALID_RESOURCE"
    assert h.acquire("A", R, mode="maybe")["status"] == "bad_args"
    assert h.validate({"epoch": 1, "seq": ["1"], "resource": R})["status"] == "INVALID_LEASE"
    assert h.listing("lab//")["status"] == "INVALID_RESOURCE"
    assert h.table._records == {}
