"""Durable locks on the wire: ``lock_set``, ``lock_clear``, ``lock_info``, the ``[locks]`` section.

Rules of this module:

- Each request is one :class:`~roost.broker.leases.locks.LockBook` call, then its effects are
  applied by the lease layer, then the reply is queued (as for every lease request). The scrypt
  a key needs (a new lock's hash, a key not seen before) runs first in the server's key worker
  thread, never on the event loop; the request is decided when it is done (its reply may then
  follow replies to later requests of the same connection).
- The key travels only in requests; replies, states and logs never carry it.
- The lock info of a resource is the broker-owned state ``/meta/locks/<name>``
  (:func:`~roost.broker.leases.locks.lock_path`), updated on every change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from roost.broker.leases.locks import (
    KEY_MAX,
    KeyWork,
    LockBook,
    LockSettings,
    do_key_work,
    hash_key,
    lock_path,
)
from roost.broker.leases.routes import LeaseLayer
from roost.broker.leases.types import Identity
from roost.broker.leases.wire import BadArgs, identity_of
from roost.broker.session import Session
from roost.protocol.values import Value

__all__ = ("MAX_PENDING", "install_locks", "lock_settings", "parse_locks_section")

log = logging.getLogger("roost.broker.leases")


class _Where(Protocol):
    """What a config section parser gets (``roost.broker.config.Where``)."""

    def table(self, value: object, known: tuple[str, ...]) -> Mapping[str, Any]: ...

    def string(self, table: Mapping[str, Any], key: str, default: str | None = None) -> str: ...

    def error(self, problem: str, key: str | None = None) -> Exception: ...


def lock_settings(emergency_key_file: str | os.PathLike[str] | None) -> LockSettings:
    """Settings with the emergency key read from ``emergency_key_file`` (kept only hashed).

    Raises:
        ValueError: the file cannot be read, is empty or too long.
    """
    if emergency_key_file is None:
        return LockSettings()
    try:
        key = Path(emergency_key_file).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the emergency key file {emergency_key_file}: {exc}") from exc
    if not key or len(key.encode()) > KEY_MAX:
        raise ValueError(f"the emergency key in {emergency_key_file} must be 1 to {KEY_MAX} bytes")
    return LockSettings(emergency_key_hash=hash_key(key))


def parse_locks_section(value: object, where: _Where) -> LockSettings:
    """The ``[locks]`` table: ``emergency_key_file`` (optional; relative to the working
    directory)."""
    table = where.table(value, ("emergency_key_file",))
    path = table.get("emergency_key_file")
    if path is None:
        return LockSettings()
    path = where.string(table, "emergency_key_file")
    try:
        return lock_settings(path)
    except ValueError as exc:
        raise where.error(str(exc), "emergency_key_file") from exc


def _str(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadArgs(f"{key!r} must be a str")
    return value


def _scopes(body: dict[str, Any]) -> list[str]:
    scopes = body.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise BadArgs("'scopes' must be a list of str")
    return scopes


#: Key checks waiting for the worker thread at most; more are refused with ``BUSY`` (each
#: holds a request's key and arguments until its scrypt is done).
MAX_PENDING: Final = 256


class _LockRoutes:
    def __init__(self, layer: LeaseLayer, book: LockBook) -> None:
        self.layer = layer
        self.book = book
        self.pending = 0

    def offload(
        self,
        session: Session | None,
        rid: int,
        work: KeyWork,
        then: Callable[[KeyWork, float], None],
        now: float,
    ) -> None:
        """Run ``work``'s scrypt off the loop (the server's ``run_blocking`` hook), then
        ``then(work, now)`` on it; at once when there is nothing to compute or no hook."""
        run = getattr(self.layer.router.hooks, "run_blocking", None)
        if not work.needed or run is None:
            then(do_key_work(work), now)
            return
        if self.pending >= MAX_PENDING:
            if session is not None:
                reason = "too many key checks in progress; try again"
                self.layer._reply(session, rid, {"status": "BUSY", "reason": reason})
            return
        self.pending += 1

        def done(result: KeyWork, when: float) -> None:
            self.pending -= 1
            if session is None or not session.closed:
                then(result, when)

        run(lambda: do_key_work(work), done)

    def _answer(
        self, session: Session, rid: int, reply: dict[str, Any], fx: Any, now: float
    ) -> None:
        self.layer.apply(fx, now)
        self.layer._reply(session, rid, reply)

    def _parsed(self, session: Session, rid: int, body: object) -> dict[str, Any] | None:
        if isinstance(body, dict):
            return body
        self.layer._reply(session, rid, {"status": "bad_args", "reason": "the body must be a map"})
        return None

    def lock_set(self, session: Session, rid: int, body: object, now: float) -> bool:
        b = self._parsed(session, rid, body)
        if b is None:
            return True
        try:
            resource, key = _str(b, "resource"), _str(b, "key")
            scopes = _scopes(b)
            identity: Identity = identity_of(b)
        except BadArgs as exc:
            self.layer._reply(session, rid, {"status": "bad_args", "reason": str(exc)})
            return True
        assert resource is not None and key is not None

        def then(work: KeyWork, when: float) -> None:
            wall = when + self.layer.table.wall_offset
            reply, fx = self.book.set(
                resource, key, when, wall, scopes=scopes, identity=identity, work=work
            )
            self._answer(session, rid, reply, fx, when)

        self.offload(session, rid, self.book.key_work(key, resource=resource), then, now)
        return True

    def lock_clear(self, session: Session, rid: int, body: object, now: float) -> bool:
        b = self._parsed(session, rid, body)
        if b is None:
            return True
        try:
            resource = _str(b, "resource")
            key = _str(b, "key", required=False)
            emergency = _str(b, "emergency_key", required=False)
        except BadArgs as exc:
            self.layer._reply(session, rid, {"status": "bad_args", "reason": str(exc)})
            return True
        assert resource is not None
        if emergency is not None:
            work = self.book.key_work(emergency, emergency=True)
        elif key is not None and resource in self.book.locks:
            work = self.book.key_work(key, resource=resource)
        else:
            work = KeyWork("")

        def then(done: KeyWork, when: float) -> None:
            reply, fx = self.book.clear(resource, when, key=key, emergency_key=emergency, work=done)
            self._answer(session, rid, reply, fx, when)

        self.offload(session, rid, work, then, now)
        return True

    def key_proof(  # noqa: PLR0917 (the shape of the KeyProof hook)
        self,
        session: Session,
        rid: int,
        guard: str,
        key: str,
        done: Callable[[dict[str, Any], Any, float], None],
        now: float,
    ) -> None:
        """Find the token a keyed call on ``guard`` is forwarded with, then ``done(reply,
        token, now)`` (later, when the key needs scrypt)."""

        def then(work: KeyWork, when: float) -> None:
            reply, token = self.book.token_for(guard, key, work)
            done(reply, token, when)

        self.offload(session, rid, self.book.key_work(key, guard=guard), then, now)

    def lock_info(self, session: Session, rid: int, body: object, now: float) -> bool:
        b = self._parsed(session, rid, body)
        if b is None:
            return True
        resource = b.get("resource")
        if resource is None:
            infos = [self.book.info_of(r) for r in sorted(self.book.locks)]
            self.layer._reply(session, rid, {"status": "OK", "locks": infos})
        elif not isinstance(resource, str):
            self.layer._reply(
                session, rid, {"status": "bad_args", "reason": "'resource' must be a str"}
            )
        else:
            self.layer._reply(session, rid, {"status": "OK", "lock": self.book.info_of(resource)})
        return True


def install_locks(
    layer: LeaseLayer,
    *,
    state_dir: str | os.PathLike[str] | None,
    settings: LockSettings | None,
    now: float,
) -> LockBook:
    """Add durable locks to a lease layer: restore the kept ones, answer 0x5b-0x5d, accept keys
    at guarded nodes.

    Raises:
        RoostError: the kept locks cannot be read or restored.
    """
    router = layer.router

    def publish(resource: str, info: dict[str, Any], when: float) -> None:
        path = lock_path(resource)
        try:
            router.publish_state(path, Value.of(info), when)
        except ValueError as exc:  # a path the broker cannot own; the lock itself holds
            log.warning("cannot publish %s: %s", path, exc)

    book = LockBook(layer.table, state_dir, settings or LockSettings(), publish)
    routes = _LockRoutes(layer, book)
    layer.extra[0x5B] = routes.lock_set
    layer.extra[0x5C] = routes.lock_clear
    layer.extra[0x5D] = routes.lock_info
    layer.key_proof = routes.key_proof
    layer.apply(book.restore(now), now)
    return book
