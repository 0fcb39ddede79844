"""Durable keyed locks over a lease table: conflicts per hierarchy, keys, emergency key, info,
persistence in a state directory, keys as proof at guarded nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roost.broker.leases.locks import (
    LOCKS_FILE,
    LockBook,
    LockSettings,
    clear_offline,
    hash_key,
    key_matches,
    lock_path,
)
from roost.broker.leases.types import Identity
from roost.errors import InvalidKey, lease_error_for
from tests.broker.leaseharness import Harness

ANN = Identity(name="roost lock", user="ann", host="hutch", note="changing samples")
WALL = 1_700_000_000.0


class Locks:
    """A LockBook over a harness table, recording what it publishes."""

    def __init__(self, state_dir: Path | None = None, emergency: str | None = None) -> None:
        self.h = Harness()
        self.published: list[tuple[str, dict[str, Any]]] = []
        settings = LockSettings(hash_key(emergency) if emergency else None)
        self.book = LockBook(
            self.h.table, state_dir, settings, lambda r, i, now: self.published.append((r, i))
        )

    def set(self, resource: str, key: str, *scopes: str, who: Identity = ANN) -> Any:
        reply, fx = self.book.set(resource, key, self.h.now, WALL, scopes=scopes, identity=who)
        self.h.log.extend(fx)
        self.h.table.check_invariants()
        return reply

    def clear(self, resource: str, **kw: Any) -> Any:
        reply, fx = self.book.clear(resource, self.h.now, **kw)
        self.h.fx = fx
        self.h.table.check_invariants()
        return reply


def test_keys_are_stored_hashed() -> None:
    """hash_key salts: two hashes of one key differ, both match it, neither contains it."""
    a, b = hash_key("s3cret-key"), hash_key("s3cret-key")
    assert a != b and "s3cret" not in a
    assert key_matches(a, "s3cret-key") and key_matches(b, "s3cret-key")
    assert not key_matches(a, "other") and not key_matches("garbage", "s3cret-key")


def test_lock_blocks_session_leases_and_names_user_and_note() -> None:
    """A lock on a resource refuses acquires on it, its ancestors and descendants, naming who
    locked it and why; unrelated names stay free."""
    lk = Locks()
    assert lk.set("re", "k1")["status"] == "OK"
    lk.h.connect("A")
    for name in ("re", "re/queue", "re"):
        reply = lk.h.acquire("A", name)
        assert reply["status"] == "ALREADY_CLAIMED"
        text = str(lease_error_for(reply))
        assert "roost lock (ann@hutch)" in text and 'note "changing samples"' in text
    assert lk.h.acquire("A", "other")["status"] == "OK"


def test_scopes_lock_only_sub_resources() -> None:
    """Scopes lock re/queue (and what is under it) while re/environment and reads stay free."""
    lk = Locks()
    assert lk.set("re", "k1", "queue")["status"] == "OK"
    lk.h.connect("A")
    assert lk.h.acquire("A", "re/environment")["status"] == "OK"
    assert lk.h.acquire("A", "re/queue/item")["status"] == "ALREADY_CLAIMED"
    info = lk.book.info_of("re")
    assert info["locked"] and info["scopes"] == ["queue"]


def test_session_lease_blocks_a_lock_on_an_overlapping_scope() -> None:
    """A session lease on re/queue refuses a lock of scope queue, and of re itself."""
    lk = Locks()
    lk.h.connect("A")
    lk.h.acquire("A", "re/queue", identity=Identity(name="agent"))
    reply = lk.set("re", "k1", "queue")
    assert reply["status"] == "ALREADY_CLAIMED"
    assert [h["name"] for h in reply["holders"]] == ["agent"]
    assert lk.set("re", "k1")["status"] == "ALREADY_CLAIMED"
    assert lk.set("re", "k1", "environment")["status"] == "OK"
    assert "re" in lk.book.locks


def test_wrong_key_is_refused_naming_user_and_note() -> None:
    """Updating or clearing with another key is INVALID_KEY naming the user and the note."""
    lk = Locks()
    lk.set("re", "k1")
    for reply in (lk.set("re", "wrong"), lk.clear("re", key="wrong")):
        exc = lease_error_for(reply)
        assert isinstance(exc, InvalidKey)
        assert "re is locked by ann: changing samples" in str(exc)
        assert reply["lock"]["user"] == "ann"
    assert lk.book.info_of("re")["locked"]


def test_update_changes_uid_and_keeps_time() -> None:
    """Each update gets a new uid; the lock time is the first lock's."""
    lk = Locks()
    first = lk.set("re", "k1", "queue")["lock"]
    later = Identity(user="ann", note="back in 5 minutes")
    second = lk.set("re", "k1", "queue", "environment", who=later)["lock"]
    assert first["uid"] != second["uid"]
    assert second["time"] == first["time"] == WALL
    assert second["note"] == "back in 5 minutes"
    assert second["scopes"] == ["environment", "queue"]
    assert [r for r, _ in lk.published] == ["re", "re"]
    assert lk.published[-1][1]["uid"] == second["uid"]
    assert "k1" not in repr(lk.published)


def test_clear_with_key_serves_waiters() -> None:
    """A waiter queued behind a lock is granted when the key clears it."""
    lk = Locks()
    lk.set("lamp", "k1")
    lk.h.connect("A")
    assert lk.h.acquire("A", "lamp", wait=30)["status"] == "QUEUED"
    reply = lk.clear("lamp", key="k1")
    assert reply["status"] == "OK" and not reply["lock"]["locked"]
    assert [p.kind for p in lk.h.pushes("A", lk.h.fx)] == ["lease_granted"]
    assert lk.clear("lamp", key="k1")["status"] == "NOT_LOCKED"


def test_emergency_key() -> None:
    """The configured emergency key unlocks; another key does not; without one configured
    every emergency clear is refused; info says whether one is set."""
    lk = Locks(emergency="break-glass")
    lk.set("re", "k1")
    assert lk.book.info_of("re")["emergency_key_set"]
    assert lk.clear("re", emergency_key="nope")["status"] == "INVALID_KEY"
    assert lk.clear("re", emergency_key="break-glass")["status"] == "OK"
    plain = Locks()
    plain.set("re", "k1")
    assert not plain.book.info_of("re")["emergency_key_set"]
    reply = plain.clear("re", emergency_key="break-glass")
    assert reply == {"status": "INVALID_KEY", "reason": "no emergency key is configured"}


def test_key_proves_the_lock_at_a_guard() -> None:
    """token_for gives the lock's token for a guard it covers, with the right key only."""
    lk = Locks()
    lk.set("re", "k1", "queue")
    status, token = lk.book.token_for("re/queue/start", "k1")
    assert status == {"status": "OK"} and token["resource"] == "re/queue"
    reply, none = lk.book.token_for("re/queue/start", "k2")
    assert reply["status"] == "INVALID_KEY" and none is None
    assert lk.book.token_for("re/environment", "k1")[0]["status"] == "NO_LEASE"
    assert lk.h.guard("X", "re/queue/start", token)["status"] == "OK"


def test_locks_survive_in_the_state_dir(tmp_path: Path) -> None:
    """A new book over a new table restores the locks of the state directory; the file keeps
    the key hashed; clear_offline removes one."""
    first = Locks(tmp_path)
    first.set("re", "k1", "queue")
    first.set("lamp", "k2")
    assert "k1" not in (tmp_path / LOCKS_FILE).read_text()
    second = Locks(tmp_path)
    second.h.table.check_invariants()
    assert second.book.restore(0.0) is not None
    assert set(second.book.locks) == {"re", "lamp"}
    second.h.connect("A")
    assert second.h.acquire("A", "re/queue")["status"] == "ALREADY_CLAIMED"
    assert second.book.info_of("re")["time"] == WALL
    assert second.clear("lamp", key="k2")["status"] == "OK"
    assert clear_offline(tmp_path, "re") is True
    assert clear_offline(tmp_path, "re") is False
    third = Locks(tmp_path)
    third.book.restore(0.0)
    assert third.book.locks == {}


def test_unwritable_state_dir_changes_nothing(tmp_path: Path) -> None:
    """A failed write answers NOT_SAVED and leaves no lock behind."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    lk = Locks(blocker)
    reply = lk.set("re", "k1")
    assert reply["status"] == "NOT_SAVED" and "cannot write" in reply["reason"]
    assert lk.book.locks == {}
    lk.h.connect("A")
    assert lk.h.acquire("A", "re")["status"] == "OK"


def test_bad_names_keys_and_paths() -> None:
    """Bad names and scopes say why; an empty key is bad_args; lock paths are flat."""
    lk = Locks()
    assert "empty segment" in lk.set("re//x", "k")["reason"]
    assert lk.set("re", "k", "bad scope")["reason"].startswith("scope 'bad scope'")
    assert lk.set("re", "")["status"] == "bad_args"
    assert lock_path("re/queue") == "/meta/locks/re_2Fqueue"
    assert lock_path("printer-1") == "/meta/locks/printer_2D1"


def test_key_work_is_only_what_is_unknown() -> None:
    """A new lock needs a hash; a key that opened the lock before needs no scrypt at all."""
    lk = Locks()
    assert lk.book.key_work("k1", resource="re").new_hash
    lk.set("re", "k1", "queue")
    work = lk.book.key_work("k1", resource="re")
    assert work.check == (lk.book.locks["re"].key_hash,) and not work.new_hash
    lk.book.token_for("re/queue", "k1")  # opens it once
    assert not lk.book.key_work("k1", resource="re").needed
    assert not lk.book.key_work("k1", guard="re/queue/x").needed
    assert lk.book.key_work("k2", guard="re/queue/x").needed
    assert not lk.book.key_work("e", emergency=True).needed  # no emergency key configured
