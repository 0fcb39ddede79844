"""The fenced owner of docs/howto/protect-a-device.md on hand-picked late deliveries."""

from __future__ import annotations

from typing import Any

from roost.client import LeaseValidator
from roost.protocol.tokens import sublease
from tests.broker.leaseharness import EPOCH, Harness
from tests.broker.leaseowner import Command, FencedOwner, order

GUARD = "lab/arm"


def forward(h: Harness, conn: str, token: Any = None) -> Command:
    """The broker's decision on a call to the node guarded by GUARD, asserted forwarded."""
    reply = h.guard(conn, GUARD, token)
    assert reply["status"] == "OK", reply
    return Command(conn, GUARD, reply["token"], None)


def floor(h: Harness) -> Any:
    """The published floor of GUARD."""
    return h.info(GUARD)["info"]["floor"]


def test_late_call_of_an_ancestor_lease_after_a_take() -> None:
    """A's call under its lease on lab arrives after B's call under a take of lab/arm: both
    owners refuse it (one by token order across levels, one by the floor), and so does a
    bare validator fed the tokens as they came."""
    h = Harness()
    h.connect("A", "B")
    h.acquire("A", "lab")
    late = forward(h, "A")
    assert late.token["resource"] == "lab"
    assert h.take("B", GUARD)["status"] == "OK"
    fresh = forward(h, "B")
    assert h.guard("A", GUARD, late.token)["status"] == "OLDER"  # the broker refuses it now
    floored, bare = FencedOwner(EPOCH), FencedOwner(EPOCH, use_floor=False)
    for owner in (floored, bare):
        assert owner.deliver(fresh, floor(h)) == "applied"
    assert floored.deliver(late, floor(h)) == "FLOOR"
    assert bare.deliver(late, floor(h)) == "OLDER"
    for owner in (floored, bare):
        owner.check()
        assert owner.applied[GUARD] == [fresh.token]
    validator = LeaseValidator()
    assert validator.accepts(fresh.token) and not validator.accepts(late.token)
    assert validator.newest(GUARD) == fresh.token


def test_sub_leases_in_any_order() -> None:
    """A holder's delegates' calls [r, 0] and then [r] arrive swapped: the first applied wins,
    the super-lease after its sub-lease is refused, and what was applied never goes back."""
    h = Harness()
    h.connect("A", "D")
    lease = h.acquire("A", GUARD)["lease"]
    own = forward(h, "A")
    delegate = forward(h, "D", sublease(lease["token"], "planner"))
    owner = FencedOwner(EPOCH)
    assert owner.deliver(delegate, floor(h)) == "applied"
    assert owner.deliver(own, floor(h)) == "OLDER"  # SUPER_LEASE of the applied [r, 0]
    owner.check()
    assert order(delegate.token, own.token) == "SUB_LEASE"


def test_valid_shared_holder_is_not_refused_by_the_floor() -> None:
    """Two shared holders: the older sharer's call arriving after the newer one's is refused
    by token order, but never by the floor while its lease is active (the floor is the oldest
    active root)."""
    h = Harness()
    h.connect("A", "B")
    h.acquire("A", GUARD, mode="shared")
    h.acquire("B", GUARD, mode="shared")
    old, new = forward(h, "A"), forward(h, "B")
    assert floor(h) == old.token["seq"][0]
    floored = FencedOwner(EPOCH)
    assert floored.deliver(old, floor(h)) == "applied"
    assert floored.deliver(new, floor(h)) == "applied"
    again = FencedOwner(EPOCH)
    assert again.deliver(new, floor(h)) == "applied"
    assert again.deliver(old, floor(h)) == "OLDER"


def test_other_epoch_refused() -> None:
    """A call forwarded before a broker restart is refused by an owner that knows the new run."""
    h = Harness()
    h.connect("A")
    h.acquire("A", GUARD)
    late = forward(h, "A")
    owner = FencedOwner(EPOCH + 1)
    assert owner.deliver(late, None) == "WRONG_EPOCH"
    assert owner.applied == {}
