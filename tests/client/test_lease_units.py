"""Pure client-side lease pieces: the owner's validator, the wallet, the book of leases."""

from __future__ import annotations

from typing import Any

import pytest

from roost.client import LeaseValidator, LeaseWallet
from roost.client.keepalive import keepalive_interval, local_deadline, margin
from roost.errors import InvalidLease, Older, WrongEpoch
from roost.protocol.tokens import newer, sublease


def token(*seq: int, epoch: int = 7, resource: str = "lab/arm") -> dict[str, Any]:
    return {"epoch": epoch, "seq": list(seq), "resource": resource, "client_names": []}


def test_validator_orders_grants_and_subleases() -> None:
    """A later grant beats every earlier token; a holder's own sequence is ordered too."""
    validator = LeaseValidator()
    first = token(5)
    validator.check(first)
    validator.check(first)  # the same token again is fine
    helper = sublease(first, "helper")
    validator.check(helper)
    validator.check(newer(helper))
    with pytest.raises(Older):
        validator.check(helper)  # older than [5, 1]
    with pytest.raises(Older):
        validator.check(first)  # a super-lease of the newest
    validator.check(token(6))
    assert validator.newest("lab/arm") == token(6)
    assert not validator.accepts(newer(helper))
    assert validator.accepts(token(1, resource="lab/other"))


def test_validator_epochs_and_garbage() -> None:
    """A newer epoch wins whatever its seq; an older one is refused; malformed tokens too."""
    validator = LeaseValidator()
    validator.check(token(50, epoch=1))
    validator.check(token(1, epoch=2))
    with pytest.raises(WrongEpoch):
        validator.check(token(99, epoch=1))
    with pytest.raises(InvalidLease):
        validator.check({"epoch": 1, "seq": [], "resource": "lab/arm"})
    with pytest.raises(InvalidLease):
        validator.check("not a token")


def test_validator_orders_tokens_across_resource_levels() -> None:
    """A stale sub-lease of a lease on lab, arriving after a take of lab/arm, is refused."""
    validator = LeaseValidator()
    stale = sublease(token(5, resource="lab"), "helper")
    validator.check(token(7, resource="lab/arm"))
    with pytest.raises(Older):
        validator.check(stale)
    with pytest.raises(Older):
        validator.check(token(6, resource="lab/arm/gripper"))  # below the take, older root
    validator.check(token(8, resource="lab"))  # a later grant on the ancestor wins
    assert validator.newest("lab/arm") == token(8, resource="lab")
    with pytest.raises(Older):
        validator.check(token(7, resource="lab/arm"))  # superseded by [8] on lab
    validator.check(token(2, resource="lab2"))  # no overlap: never compared
    validator.check(token(3, resource="bench/arm"))
    assert validator.newest("lab2") == token(2, resource="lab2")


def test_validator_compares_the_ancestor_after_the_descendant() -> None:
    """Tokens on a descendant accepted first still fence a later token on the ancestor."""
    validator = LeaseValidator()
    validator.check(token(4, resource="lab"))
    validator.check(token(9, resource="lab/arm"))
    validator.check(token(6, resource="lab/scope"))  # a sibling of lab/arm: only lab counts
    with pytest.raises(Older):
        validator.check(token(4, resource="lab"))  # SAME as the lab entry, older than [9]
    with pytest.raises(Older):
        validator.check(token(8, resource="lab"))
    validator.check(token(10, resource="lab"))
    assert validator.newest("lab/scope") == token(10, resource="lab")


def test_validator_same_root_keeps_the_holders_own_order() -> None:
    """A delegate's sub-leases of a lease on lab are ordered against each other and the
    holder's own token, whatever levels other tokens were on."""
    validator = LeaseValidator()
    lab = token(5, resource="lab")
    validator.check(token(3, resource="lab/arm"))
    validator.check(sublease(lab, "a"))
    validator.check(newer(sublease(lab, "a")))
    with pytest.raises(Older):
        validator.check(lab)  # a super-lease of the [5, 1] accepted
    with pytest.raises(Older):
        validator.check(sublease(lab, "a"))  # [5, 0] after [5, 1]


def test_validator_epochs_across_levels() -> None:
    """An older epoch on an overlapping resource is WRONG_EPOCH; a newer one wins everywhere
    it overlaps; a non-overlapping one is not compared."""
    validator = LeaseValidator()
    validator.check(token(50, epoch=2, resource="lab/arm"))
    with pytest.raises(WrongEpoch):
        validator.check(token(99, epoch=1, resource="lab"))
    validator.check(token(1, epoch=1, resource="bench"))
    validator.check(token(1, epoch=3, resource="lab"))
    with pytest.raises(WrongEpoch):
        validator.check(token(51, epoch=2, resource="lab/arm"))


def test_wallet_never_downgrades_on_older_news() -> None:
    """News about an older token is ignored; newer news replaces the entry."""
    wallet = LeaseWallet()
    assert wallet.status("lab/arm") == "not_managed"
    wallet.record("lab/arm", "self_owner", token(5))
    wallet.record("lab/arm", "revoked", token(4))
    assert wallet.status("lab/arm") == "self_owner"
    wallet.record("lab/arm", "other_owner", token(6))
    entry = wallet.get("lab/arm")
    assert entry is not None and entry.status == "other_owner" and entry.token == token(6)
    assert len(wallet) == 1
    assert wallet.snapshot()["lab/arm"] == entry


@pytest.mark.parametrize("limit", [0.2, 0.5, 1, 2, 3, 10, 30, 3600])
def test_keepalive_lands_before_the_local_deadline(limit: float) -> None:
    """Keep-alives come at most every third of the limit, and two of them fit before the
    local deadline (limit minus the margin of max(0.5 s, 10 %))."""
    every = keepalive_interval(limit)
    assert 0 < every <= limit / 3
    if limit > margin(limit):
        assert 2 * every <= limit - margin(limit)
    assert margin(limit) == max(0.5, 0.1 * limit)


def test_local_deadline_takes_the_sooner_limit() -> None:
    """The silence limit and the ttl each end a lease a margin early; the sooner one wins."""
    silent = local_deadline(server_timeout=30, last_answered_send=100.0, ttl=None, retained_at=0)
    assert silent == (100.0 + 30 - 3, "timeout")
    both = local_deadline(server_timeout=30, last_answered_send=100.0, ttl=5, retained_at=110.0)
    assert both == (110.0 + 5 - 0.5, "expired")
    late_ttl = local_deadline(server_timeout=30, last_answered_send=100.0, ttl=60, retained_at=100)
    assert late_ttl == (127.0, "timeout")


def test_local_deadline_without_limits_is_never() -> None:
    """No server timeout (or no connection) and no ttl: nothing ends the lease locally."""
    assert local_deadline(server_timeout=0, last_answered_send=5.0, ttl=None, retained_at=0) == (
        float("inf"),
        "",
    )
    offline = local_deadline(server_timeout=30, last_answered_send=None, ttl=2, retained_at=10.0)
    assert offline == (11.5, "expired")
