"""Lease records are reclaimed, limits are per connection, and acquire costs do not grow with
the leases a connection already holds."""

from __future__ import annotations

from typing import Any

import pytest

from roost.broker.config import parse_config
from roost.broker.leases import install_leases
from roost.broker.leases.config import LeaseConfigError, parse_lease_config
from roost.broker.leases.types import Forget
from roost.protocol.tokens import compare, overlaps
from tests.broker.leaseharness import Harness
from tests.broker.test_router import _router, _session


def _token(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["status"] == "OK", reply
    tok: dict[str, Any] = reply["lease"]["token"]
    return tok


def test_idle_records_are_forgotten_for_new_resources() -> None:
    """One lock per job id: records whose leases ended make room for new names (before, the
    table filled up and every client got RESOURCE_LIMIT until a restart)."""
    h = Harness(max_resources=3)
    h.connect("A", "B")
    for i in range(10):
        tok = _token(h.acquire("A", f"job/{i}"))
        assert h.ret("A", tok)["status"] == "OK"
    assert h.acquire("B", "job/new")["status"] == "OK"
    assert len(h.table._records) <= 3
    assert any(isinstance(fx, Forget) for fx in h.log)


def test_forgotten_records_keep_fencing_monotonic() -> None:
    """A name forgotten and granted again gets a token that compares newer; its old token is
    not valid; its floor never drops."""
    h = Harness(max_resources=2)
    h.connect("A", "B")
    old = _token(h.acquire("A", "r"))
    floor_before = h.info("r")["info"]["floor"]
    h.ret("A", old)
    for name in ("x", "y", "z"):
        h.ret("B", _token(h.acquire("B", name)))
    assert "r" not in h.table._records
    assert h.info("r")["info"]["floor"] >= floor_before
    assert h.validate(old)["status"] != "OK"
    new = _token(h.acquire("A", "r"))
    assert compare(new, old) == "NEWER"
    assert h.validate(old)["status"] == "OLDER"


def test_records_in_use_are_kept() -> None:
    """Held, awaited and declared records are never forgotten: then RESOURCE_LIMIT, naming it."""
    h = Harness(max_resources=2)
    h.connect("A", "B")
    _token(h.acquire("A", "r1"))
    _token(h.acquire("A", "r2"))
    reply = h.acquire("B", "r3")
    assert reply["status"] == "RESOURCE_LIMIT"
    assert reply["limit"] == "max_resources"
    assert set(h.table._records) == {"r1", "r2"}


def test_leases_per_connection() -> None:
    """One connection holds at most ``max_leases``; others are not limited by it."""
    h = Harness(max_leases=2)
    h.connect("A", "B")
    _token(h.acquire("A", "r1"))
    _token(h.acquire("A", "r2"))
    reply = h.acquire("A", "r3")
    assert reply == {"status": "RESOURCE_LIMIT", "limit": "max_leases", "max_leases": 2}
    assert h.take("A", "r3")["status"] == "RESOURCE_LIMIT"
    _token(h.acquire("B", "r3"))


def test_acquire_does_not_scan_held_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """An acquire compares the new name with the resource's own records, not with every lease
    the connection holds (before: 10k acquires by one client took 32 s)."""
    h = Harness()
    h.connect("A")
    for i in range(300):
        _token(h.acquire("A", f"held/{i}"))
    calls = 0

    def counting(a: str, b: str) -> bool:
        nonlocal calls
        calls += 1
        return overlaps(a, b)

    monkeypatch.setattr("roost.broker.leases.table.overlaps", counting)
    _token(h.acquire("A", "fresh"))
    assert h.acquire("A", "held/7")["status"] == "OK"
    assert calls < 10


def test_forgotten_resource_nodes_leave_the_tree() -> None:
    """A reclaimed record's /meta/leases nodes are removed (unless observed), so the tree does
    not grow with every name ever leased."""
    router, _ = _router()
    layer = install_leases(router, wall_offset=0.0, wall_ns=1, now=0.0, max_resources=2)
    session = _session(router)
    layer._join(session, 0.0)
    nodes = router.tree.nodes
    for i in range(6):
        reply, fx = layer.table.acquire(session, f"job{i}", 0.0)
        layer.apply(fx, 0.0)
        _, fx = layer.table.return_lease(session, reply["lease"]["token"], 0.0)
        layer.apply(fx, 0.0)
    leased = sorted(p for p in nodes if p.startswith("/meta/leases/"))
    assert leased == [
        f"/meta/leases/job{i}/{leaf}" for i in (4, 5) for leaf in ("events", "holder")
    ]


def test_max_leases_is_a_lease_setting() -> None:
    """``max_leases`` is read from the lease config (file or ``[leases]``) and checked."""
    assert parse_lease_config({"max_leases": 5}).max_leases == 5
    assert parse_config("[leases]\nmax_leases = 7\n").get("leases").max_leases == 7
    with pytest.raises(LeaseConfigError, match="max_leases"):
        parse_lease_config({"max_leases": 0})
