"""Names people write (``printer-1``, ``lab.arm``, ``job:42``) and refusals that say who blocks."""

from __future__ import annotations

from roost.broker.leases.routes import no_lease_text
from roost.broker.leases.types import Identity
from roost.errors import AlreadyClaimed, LeaseLost, lease_error_for, no_lease_reply
from tests.broker.leaseharness import Harness


def test_names_people_write_are_leasable_with_hierarchy() -> None:
    """Segments with '-', '.', ':' lease and nest like the others."""
    h = Harness()
    h.connect("A", "B")
    assert h.acquire("A", "lab.arm/printer-1")["status"] == "OK"
    assert h.acquire("B", "lab.arm")["status"] == "ALREADY_CLAIMED"
    assert h.acquire("B", "job:42")["status"] == "OK"
    assert set(h.states()) == {"job:42"}
    assert h.info("lab.arm/printer-1")["info"]["holders"][0]["resource"] == "lab.arm/printer-1"


def test_invalid_resource_says_why() -> None:
    """INVALID_RESOURCE carries the reason, for acquire, take and info alike."""
    h = Harness()
    h.connect("A")
    reply = h.acquire("A", "lab//arm")
    assert reply == {
        "status": "INVALID_RESOURCE",
        "reason": "'lab//arm' has an empty segment (a '/' at the start or end, or '//')",
    }
    assert "character ' '" in h.take("A", "lab arm")["reason"]
    assert "reserved" in h.info("lab/holder")["reason"]


def test_meta_path_clash_is_refused_with_both_names() -> None:
    """Two names that would share one /meta/leases path cannot both be managed."""
    h = Harness()
    h.connect("A")
    assert h.acquire("A", "printer-1")["status"] == "OK"
    reply = h.acquire("A", "printer_2D1")
    assert reply["status"] == "INVALID_RESOURCE"
    assert "'printer_2D1' and 'printer-1'" in reply["reason"]


def test_already_claimed_names_holder_user_note_since() -> None:
    """The refusal's text names the holder's name, user, host, note and since."""
    h = Harness()
    h.connect("A", "B")
    h.acquire("A", "lamp", identity=Identity(name="lamp-ui", note="calibrating"))
    reply = h.acquire("B", "lamp")
    exc = lease_error_for(reply)
    assert isinstance(exc, AlreadyClaimed)
    text = str(exc)
    assert text.startswith("ALREADY_CLAIMED: held by lamp-ui")
    assert 'note "calibrating"' in text and " on lamp since " in text


def test_take_push_names_taker_and_reason() -> None:
    """The displaced holder's lease_revoked carries the taker (by) and the reason it gave."""
    h = Harness()
    h.connect("A", "B")
    h.acquire("A", "lamp")
    h.take("B", "lamp", reason="the lamp is on fire", identity=Identity(name="firefighter"))
    (push,) = h.pushes("A")
    assert push.body["reason"] == "taken"
    assert push.body["why"] == "the lamp is on fire"
    assert push.body["by"]["name"] == "firefighter"
    lost = LeaseLost("taken", push.body["by"], push.body["why"])
    assert str(lost).startswith("taken by firefighter")
    assert str(lost).endswith(': "the lamp is on fire"')


def test_no_lease_text_names_the_holder() -> None:
    """A plain refused call says NO_LEASE and, when someone holds it, who."""
    assert no_lease_text("lamp", []) == "NO_LEASE"
    text = no_lease_text("lamp", [{"name": "ui", "user": "ann", "host": "pc", "note": "x"}])
    assert text == 'NO_LEASE: lamp is held by ui (ann@pc), note "x"'
    assert no_lease_reply(text) == {
        "status": "NO_LEASE",
        "reason": 'lamp is held by ui (ann@pc), note "x"',
    }
    assert no_lease_reply("NO_LEASE") == {"status": "NO_LEASE"}
