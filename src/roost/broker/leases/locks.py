"""Durable keyed locks: a resource and its scopes held by a secret key, not by a connection.

A scientist locks an instrument before walking into the hutch; the lock outlives her client and,
with a state directory, the broker. Rules of this module:

- A lock is held in the lease table by a pseudo-connection that never goes idle (a
  :class:`LockHolder`), one exclusive lease per locked name: the resource itself, or each of its
  scopes (``re/queue``, ``re/environment``). So a lock and the session leases exclude each other
  exactly as the hierarchy says, a lock shows in holder states and ``ALREADY_CLAIMED`` replies
  like any holder, waiters queue behind it, and guarded nodes see its token.
- The key is a secret: only its scrypt hash is kept (in memory and in ``locks.json``), it is never
  published or logged; a key that opened the lock once is remembered as a keyed digest so that
  guarded calls that prove it cost no scrypt.
- With a state directory every change is written (temp file, fsync, rename, fsync of the
  directory) before the reply; a failed write undoes the change and says so. Without one, locks
  last until the broker stops.
- Synchronous like the router; no clock reads (wall time is passed in).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from roost.broker.leases.core import Effects, Reply, status
from roost.broker.leases.table import LeaseTable
from roost.broker.leases.types import EXCLUSIVE, ConnState, Identity, Lease
from roost.broker.leases.views import holder_entry
from roost.errors import RoostError
from roost.protocol.tokens import covers, meta_name, valid_resource

__all__ = (
    "KEY_MAX",
    "LOCKS_FILE",
    "KeyWork",
    "Lock",
    "LockBook",
    "LockHolder",
    "LockSettings",
    "clear_offline",
    "do_key_work",
    "hash_key",
    "key_matches",
    "lock_path",
)

#: The file in the state directory that keeps the locks.
LOCKS_FILE: Final = "locks.json"
#: scrypt cost: 16 MiB of memory and a few tens of milliseconds per hash.
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1}
#: Longest key accepted, in bytes.
KEY_MAX: Final = 1024
_NO_IDENTITY: Final = Identity()


def hash_key(key: str) -> str:
    """The stored form of ``key``: ``scrypt$n$r$p$<salt hex>$<hash hex>`` with a fresh salt."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, dklen=32, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def key_matches(stored: str, key: str) -> bool:
    """True if ``key`` hashes to ``stored`` (a :func:`hash_key` value); False for garbage."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        mine = hashlib.scrypt(
            key.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(mine.hex(), digest)


def lock_path(resource: str) -> str:
    """The broker-owned state showing the lock info of ``resource``: ``/meta/locks/<name>``
    with ``/`` written ``_2F`` (so a lock on ``re`` and one on ``re/queue`` are siblings)."""
    return "/meta/locks/" + meta_name(resource).replace("/", "_2F")


@dataclass(slots=True)
class KeyWork:
    """The scrypt work one request needs, done off the event loop by :func:`do_key_work`:
    which stored hashes the key matches, and a new hash of it when a lock is to be created."""

    key: str
    check: tuple[str, ...] = ()
    new_hash: bool = False
    matches: dict[str, bool] = field(default_factory=dict)
    hashed: str | None = None

    @property
    def needed(self) -> bool:
        """True if there is anything to compute."""
        return bool(self.check) or self.new_hash


def do_key_work(work: KeyWork) -> KeyWork:
    """Compute what ``work`` asks for (slow: run it in a worker thread); returns ``work``."""
    for stored in work.check:
        work.matches[stored] = key_matches(stored, work.key)
    if work.new_hash:
        work.hashed = hash_key(work.key)
    return work


@dataclass(frozen=True, slots=True)
class LockSettings:
    """The ``[locks]`` section: the emergency key's hash (from ``emergency_key_file``)."""

    emergency_key_hash: str | None = None


class LockHolder:
    """The pseudo-connection a durable lock holds its leases with (never idle, never pushed to;
    it answers the attributes the lease layer reads of a session)."""

    __slots__ = ("resource",)
    opted_in = False
    closed = True
    last_received = 0.0
    peer = None

    def __init__(self, resource: str) -> None:
        self.resource = resource

    def __repr__(self) -> str:
        return f"LockHolder({self.resource!r})"


@dataclass(slots=True, eq=False)
class Lock:
    """One durable lock (what ``locks.json`` keeps of it, plus its live leases)."""

    resource: str
    scopes: tuple[str, ...]
    key_hash: str
    user: str
    name: str
    host: str
    note: str
    time: float
    uid: str
    holder: LockHolder
    leases: list[Lease] = field(default_factory=list)
    #: Keyed digest of the key that last opened this lock (never stored, never shown).
    known: bytes | None = None

    def targets(self) -> list[str]:
        """The names this lock holds: each scope under the resource, or the resource itself."""
        return [f"{self.resource}/{s}" for s in self.scopes] or [self.resource]

    def stored(self) -> dict[str, Any]:
        """What ``locks.json`` keeps."""
        return {
            "resource": self.resource,
            "scopes": list(self.scopes),
            "key": self.key_hash,
            "user": self.user,
            "name": self.name,
            "host": self.host,
            "note": self.note,
            "time": self.time,
            "uid": self.uid,
        }


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_locks(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RoostError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(raw)
        locks = data["locks"]
        if not isinstance(locks, list) or not all(isinstance(x, dict) for x in locks):
            raise TypeError("locks is not a list of objects")
    except (ValueError, KeyError, TypeError) as exc:
        raise RoostError(f"corrupt lock file {path}: {exc}") from exc
    return locks


def clear_offline(state_dir: str | os.PathLike[str], resource: str) -> bool:
    """Remove the lock on ``resource`` from a stopped broker's state directory (the last resort
    when both keys are lost). Returns False if there was none.

    Raises:
        RoostError: the lock file cannot be read or written.
    """
    path = Path(state_dir) / LOCKS_FILE
    locks = _read_locks(path)
    kept = [x for x in locks if x.get("resource") != resource]
    if len(kept) == len(locks):
        return False
    try:
        _write_atomic(path, json.dumps({"locks": kept}, sort_keys=True).encode())
    except OSError as exc:
        raise RoostError(f"cannot write {path}: {exc}") from exc
    return True


def _new_hash(key: str, work: KeyWork | None) -> str:
    if work is not None and work.key == key and work.hashed is not None:
        return work.hashed
    return hash_key(key)


def _new_uid() -> str:
    return os.urandom(8).hex()


def _human(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


class LockBook:
    """Every durable lock of one broker run, over its lease table.

    Args:
        table: the lease table the locks hold their leases in.
        state_dir: where ``locks.json`` lives; ``None``: locks last until the broker stops.
        settings: the ``[locks]`` section.
        publish: called with ``(resource, info, now)`` after every change, to show the info.
    """

    def __init__(
        self,
        table: LeaseTable,
        state_dir: str | os.PathLike[str] | None,
        settings: LockSettings,
        publish: Callable[[str, dict[str, Any], float], None],
    ) -> None:
        self.table = table
        self.path = None if state_dir is None else Path(state_dir) / LOCKS_FILE
        self.settings = settings
        self.publish = publish
        self.locks: dict[str, Lock] = {}
        self._pepper = os.urandom(32)  # keys the in-memory digests of keys that opened a lock

    # -- start-up --------------------------------------------------------------------------------

    def restore(self, now: float) -> Effects:
        """Re-install the locks kept in the state directory (before anyone connects).

        Raises:
            RoostError: the lock file is unreadable or corrupt (start-up stops: guessing could
                drop a lock somebody relies on).
        """
        if self.path is None:
            return []
        effects: Effects = []
        for item in _read_locks(self.path):
            try:
                lock = Lock(
                    resource=str(item["resource"]),
                    scopes=tuple(str(s) for s in item.get("scopes") or ()),
                    key_hash=str(item["key"]),
                    user=str(item.get("user") or ""),
                    name=str(item.get("name") or ""),
                    host=str(item.get("host") or ""),
                    note=str(item.get("note") or ""),
                    time=float(item["time"]),
                    uid=str(item.get("uid") or _new_uid()),
                    holder=LockHolder(str(item["resource"])),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise RoostError(f"corrupt lock in {self.path}: {exc}") from exc
            reply, fx = self._hold(lock, lock.targets(), now)
            effects += fx
            if reply is not None:
                raise RoostError(f"cannot restore the lock on {lock.resource}: {reply}")
            self.locks[lock.resource] = lock
            self.publish(lock.resource, self.info_of(lock.resource), now)
        return effects

    # -- the table side --------------------------------------------------------------------------

    def _hold(self, lock: Lock, names: Iterable[str], now: float) -> tuple[Reply | None, Effects]:
        """Grant ``lock`` an exclusive lease on each of ``names``, all or none."""
        t = self.table
        now = t._begin(now)
        wanted = list(names)
        for name in wanted:
            problem = t.resource_problem(name)
            if problem is not None:
                return status("INVALID_RESOURCE", reason=problem), t._finish()
            blocking = [x for x in t._conflicts(name, EXCLUSIVE) if x.conn is not lock.holder]
            if blocking or t._held_back(name, EXCLUSIVE, None):
                holders = [holder_entry(x) for x in blocking]
                return status("ALREADY_CLAIMED", holders=holders), t._finish()
        new = [n for n in wanted if n not in t._records]
        if len(t._records) + len(new) > t.max_resources:
            return status("RESOURCE_LIMIT"), t._finish()
        c = t._conns.get(lock.holder)
        if c is None:
            c = t._conns[lock.holder] = ConnState(lock.holder, "durable lock", math.inf, now)
        identity = Identity(
            name=lock.name or "durable lock", user=lock.user, host=lock.host, note=lock.note
        )
        for name in wanted:
            rec = t._records.get(name) or t._new_record(name)
            lease = t._make_lease(
                c, rec, EXCLUSIVE, ttl=None, identity=identity, now=now, request=None
            )
            lease.since = lock.time
            t._install(c, rec, lease, now, audit=True)
            lock.leases.append(lease)
        return None, t._finish()

    def _release(self, lock: Lock, leases: Iterable[Lease], reason: str, now: float) -> Effects:
        t = self.table
        now = t._begin(now)
        for lease in leases:
            if lease.active:
                t._end(lease, reason, now, push=False)
            if lease in lock.leases:
                lock.leases.remove(lease)
        c = t._conns.get(lock.holder)
        if c is not None and not c.leases:
            del t._conns[lock.holder]
        t._serve(now)
        return t._finish()

    # -- verbs -----------------------------------------------------------------------------------

    def info_of(self, resource: str) -> dict[str, Any]:
        """The lock info of ``resource``: ``{resource, locked, scopes, user, name, host, note,
        time, time_str, emergency_key_set, uid, durable}`` (``locked`` false and empty fields if
        none; ``durable`` false when locks last only until the broker stops)."""
        lock = self.locks.get(resource)
        emergency = self.settings.emergency_key_hash is not None
        if lock is None:
            return {
                "resource": resource,
                "locked": False,
                "scopes": [],
                "user": None,
                "name": None,
                "host": None,
                "note": None,
                "time": None,
                "time_str": "",
                "emergency_key_set": emergency,
                "uid": None,
                "durable": self.path is not None,
            }
        return {
            "resource": resource,
            "locked": True,
            "scopes": list(lock.scopes),
            "user": lock.user,
            "name": lock.name,
            "host": lock.host,
            "note": lock.note,
            "time": lock.time,
            "time_str": _human(lock.time),
            "emergency_key_set": emergency,
            "uid": lock.uid,
            "durable": self.path is not None,
        }

    def _refusal(self, lock: Lock) -> Reply:
        who = lock.user or lock.name or "someone"
        note = f": {lock.note}" if lock.note else ""
        return status(
            "INVALID_KEY",
            reason=f"{lock.resource} is locked by {who}{note}",
            lock=self.info_of(lock.resource),
        )

    def opens(self, lock: Lock, key: str, work: KeyWork | None = None) -> bool:
        """True if ``key`` is the lock's key: a keyed digest of a key that opened it before,
        else the scrypt result in ``work`` (computed off the loop), else scrypt here."""
        mine = hmac.new(self._pepper, key.encode(), hashlib.sha256).digest()
        if lock.known is not None and hmac.compare_digest(lock.known, mine):
            return True
        if work is not None and work.key == key and lock.key_hash in work.matches:
            ok = work.matches[lock.key_hash]
        else:
            ok = key_matches(lock.key_hash, key)
        if ok:
            lock.known = mine
        return ok

    def _known(self, lock: Lock, key: str) -> bool:
        mine = hmac.new(self._pepper, key.encode(), hashlib.sha256).digest()
        return lock.known is not None and hmac.compare_digest(lock.known, mine)

    def key_work(
        self,
        key: str,
        *,
        resource: str | None = None,
        guard: str | None = None,
        emergency: bool = False,
    ) -> KeyWork:
        """The scrypt work a request with ``key`` needs: for ``lock_set``/``lock_clear`` on
        ``resource``, a keyed call on ``guard``, or an emergency clear. Nothing when the key
        already opened the lock(s) concerned."""
        check: list[str] = []
        new_hash = False
        if emergency:
            if self.settings.emergency_key_hash is not None:
                check.append(self.settings.emergency_key_hash)
        elif resource is not None:
            lock = self.locks.get(resource)
            if lock is None:
                new_hash = True
            elif not self._known(lock, key):
                check.append(lock.key_hash)
        elif guard is not None:
            for lease in self.table.covering_leases(guard):
                holder = lease.conn
                if isinstance(holder, LockHolder) and holder.resource in self.locks:
                    lock = self.locks[holder.resource]
                    if self._known(lock, key):
                        return KeyWork(key)
                    check.append(lock.key_hash)
        return KeyWork(key, tuple(dict.fromkeys(check)), new_hash)

    def set(
        self,
        resource: str,
        key: str,
        now: float,
        wall: float,
        *,
        scopes: Iterable[str] = (),
        identity: Identity = _NO_IDENTITY,
        work: KeyWork | None = None,
    ) -> tuple[Reply, Effects]:
        """Lock ``resource`` (or only its ``scopes``) with ``key``, or update the lock the key
        opens (scopes, note, user). ``OK`` + ``lock`` (the info), or ``INVALID_KEY`` (naming
        who locked it and the note), ``ALREADY_CLAIMED`` (+ ``holders``), ``INVALID_RESOURCE``,
        ``RESOURCE_LIMIT``, ``bad_args``, ``NOT_SAVED`` (the state directory refused the write;
        nothing changed)."""
        if not key or len(key.encode()) > KEY_MAX:
            return status("bad_args", reason=f"the key must be 1 to {KEY_MAX} bytes"), []
        if not valid_resource(resource):
            return status("INVALID_RESOURCE", reason=self.table.resource_problem(resource)), []
        wanted = tuple(sorted(set(scopes)))
        for scope in wanted:
            if not valid_resource(f"{resource}/{scope}"):
                reason = self.table.resource_problem(f"{resource}/{scope}")
                return status("INVALID_RESOURCE", reason=f"scope {scope!r}: {reason}"), []
        old = self.locks.get(resource)
        if old is not None and not self.opens(old, key, work):
            return self._refusal(old), []
        lock = Lock(
            resource=resource,
            scopes=wanted,
            key_hash=old.key_hash if old is not None else _new_hash(key, work),
            user=identity.user,
            name=identity.name,
            host=identity.host,
            note=identity.note,
            time=wall if old is None else old.time,
            uid=_new_uid(),
            holder=old.holder if old is not None else LockHolder(resource),
            known=old.known if old is not None else None,
        )
        # Take the new names first (all or none), then let go of the old leases.
        reply, effects = self._hold(lock, lock.targets(), now)
        if reply is not None:
            return reply, effects
        if old is not None:
            effects += self._release(old, list(old.leases), "unlocked", now)
        self.locks[resource] = lock
        problem = self._save()
        if problem is not None:
            effects += self._release(lock, list(lock.leases), "unlocked", now)
            if old is not None:
                self.locks[resource] = old
                old.leases.clear()
                _, fx = self._hold(old, old.targets(), now)
                effects += fx
            else:
                del self.locks[resource]
            return status("NOT_SAVED", reason=problem), effects
        self.publish(resource, self.info_of(resource), now)
        return status("OK", lock=self.info_of(resource)), effects

    def clear(
        self,
        resource: str,
        now: float,
        *,
        key: str | None = None,
        emergency_key: str | None = None,
        work: KeyWork | None = None,
    ) -> tuple[Reply, Effects]:
        """Unlock ``resource`` with its key or the emergency key. ``OK`` + ``lock`` (now
        unlocked), ``NOT_LOCKED``, ``INVALID_KEY`` or ``NOT_SAVED``."""
        lock = self.locks.get(resource)
        if lock is None:
            return status("NOT_LOCKED", reason=f"{resource} is not locked"), []
        if emergency_key is not None:
            stored = self.settings.emergency_key_hash
            if stored is None:
                return status("INVALID_KEY", reason="no emergency key is configured"), []
            if work is not None and work.key == emergency_key and stored in work.matches:
                ok = work.matches[stored]
            else:
                ok = key_matches(stored, emergency_key)
            if not ok:
                return status("INVALID_KEY", reason="that is not the emergency key"), []
        elif key is None or not self.opens(lock, key, work):
            return self._refusal(lock), []
        del self.locks[resource]
        problem = self._save()
        if problem is not None:
            self.locks[resource] = lock
            return status("NOT_SAVED", reason=problem), []
        effects = self._release(lock, list(lock.leases), "unlocked", now)
        self.publish(resource, self.info_of(resource), now)
        return status("OK", lock=self.info_of(resource)), effects

    def token_for(self, guard: str, key: str, work: KeyWork | None = None) -> tuple[Reply, Any]:
        """The token to forward a call on a node guarded by ``guard`` with, when ``key`` opens
        a lock whose lease covers ``guard``: ``({"status": "OK"}, token)``, else a refusal."""
        mine: list[tuple[Lock, Lease]] = []
        for lease in self.table.covering_leases(guard):
            holder = lease.conn
            if isinstance(holder, LockHolder) and holder.resource in self.locks:
                mine.append((self.locks[holder.resource], lease))
        for lock, lease in mine:
            if self.opens(lock, key, work):
                return status("OK"), lease.token
        if mine:
            return self._refusal(mine[-1][0]), None
        holders = [holder_entry(x) for x in self.table.covering_leases(guard)]
        return status("NO_LEASE", reason=f"no durable lock covers {guard}", holders=holders), None

    def covering(self, resource: str) -> list[str]:
        """The locked resources whose lock holds ``resource`` or a name under or above it."""
        return [r for r in self.locks if covers(r, resource) or covers(resource, r)]

    def _save(self) -> str | None:
        """Write every lock to the state directory; the problem in words if that failed."""
        if self.path is None:
            return None
        data = {"locks": [lock.stored() for lock in self.locks.values()]}
        try:
            _write_atomic(self.path, json.dumps(data, sort_keys=True).encode())
        except OSError as exc:
            return f"cannot write {self.path}: {exc.strerror or exc}"
        return None
