"""The glue between the router and the lease table: requests in, replies and effects out.

Rules of this module:

- Synchronous like the router: each extension request is one table call, then its effects are
  applied in order (pushes queued, holder states and events published, audit lines written,
  connections closed), then the reply is queued. Nothing awaits between check and change.
- Extension frames go only to sessions that opted in (protocol.md E1); plain ESHET clients see
  leases through the broker-owned nodes under ``/meta/leases`` and ``/meta/lease_events``.
- One sweeper timer, armed for the table's next deadline, ends idle holders, lapsed ttls and
  expired waits even when no request arrives.
- Guarded forwards splice the caller's args or value bytes unchanged into the forwarded map.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import IO, Any, Final, TypeAlias

from roost.broker import frames
from roost.broker.guard import LogEvery
from roost.broker.leases.config import LeaseConfig, load_lease_config
from roost.broker.leases.store import LeaseState, open_state
from roost.broker.leases.table import LeaseTable
from roost.broker.leases.types import (
    Audit,
    Close,
    Declared,
    Effect,
    Event,
    Forget,
    HolderState,
    Push,
)
from roost.broker.leases.views import json_safe
from roost.broker.leases.wire import BadArgs, parse
from roost.broker.router import Router
from roost.broker.session import Session
from roost.broker.tree import ACTION, EVENT, PROP, STATE, Node
from roost.errors import describe_holder
from roost.protocol import messages as m
from roost.protocol.tokens import meta_name
from roost.protocol.values import Value, pack, unpack

__all__ = (
    "AUDIT_FILE",
    "KeyProof",
    "LeaseLayer",
    "declared_resources",
    "install_leases",
    "no_lease_text",
)

#: The audit log kept in a state directory.
AUDIT_FILE: Final = "leases.jsonl"
#: A lease ended at a close costs about as much as this many nodes settled: a holder of more
#: than ``chunk / LEASE_WEIGHT`` leases loses them in slices (roost.broker.teardown).
LEASE_WEIGHT: Final = 32

_PUSH_CODES: Final = {"lease_granted": 0x60, "lease_revoked": 0x61, "lease_wait_ended": 0x62}
_OK: Final = frozenset({"OK", "QUEUED"})

audit_log = logging.getLogger("roost.broker.audit")
log = logging.getLogger("roost.broker.leases")


#: ``key_proof(session, rid, guard, key, done, now)``: find the token a durable lock's key proves
#: for ``guard`` and call ``done(reply, token, now)``, maybe later (the key's scrypt runs off the
#: loop).
KeyProof: TypeAlias = Callable[
    [Session, int, str, str, Callable[[dict[str, Any], Any, float], None], float], None
]


def no_lease_text(resource: str, holders: Any) -> str:
    """The plain error of a refused plain call or set: ``NO_LEASE``, then who holds the
    guard's resource (``NO_LEASE: lamp is held by ...``) when someone does."""
    shown = [describe_holder(h) for h in holders or () if isinstance(h, dict)][:3]
    if not shown:
        return "NO_LEASE"
    return f"NO_LEASE: {resource} is held by " + "; ".join(shown)


def declared_resources(resources: Iterable[Any] | None) -> list[Declared]:
    """Turn the ``resources`` option into declarations: each item a name, a :class:`Declared`
    or a map ``{name, max_holders, takeable}``.

    Raises:
        ValueError: an item of another shape.
    """
    out: list[Declared] = []
    for item in resources or ():
        if isinstance(item, Declared):
            out.append(item)
        elif isinstance(item, str):
            out.append(Declared(item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append(
                Declared(
                    item["name"],
                    int(item.get("max_holders") or 0),
                    bool(item.get("takeable", True)),
                )
            )
        else:
            raise ValueError(f"bad declared resource {item!r}")
    return out


class LeaseLayer:
    """Lease requests, guards and the lease nodes of one broker, over one :class:`LeaseTable`.

    Args:
        router: the router to hook into (its extension, hello, disconnect, guard and stop hooks).
        table: the lease table (its ``last_seen`` should read ``Session.last_received``).
        audit_files: paths to append one JSON line per audit record to.
    """

    def __init__(
        self,
        router: Router,
        table: LeaseTable,
        audit_files: Iterable[Path] = (),
        state: LeaseState | None = None,
    ) -> None:
        self.router = router
        self.table = table
        #: The state directory's epoch and roots (``None`` without one).
        self.state = state
        self._degraded: str | None = None
        self._armed: float | None = None
        # Sessions the table knows. A plain ESHET connection never gets lease state: it joins
        # the table at its first extension request (or at a hello after one), which keeps an
        # idle connection cheap.
        self._joined: set[Session] = set()
        self._files: list[IO[str]] = [p.open("a", encoding="utf-8") for p in audit_files]
        # A full disk fails every line: say so once a minute, not once per grant.
        self._audit_failed = LogEvery(60.0, log, logging.ERROR)
        self._handlers: dict[int, Callable[[Session, int, dict[str, Any], float], None]] = {
            0x50: self._acquire,
            0x51: self._take,
            0x52: self._return,
            0x53: self._retain,
            0x54: self._validate,
            0x55: self._cancel,
            0x56: self._info,
            0x57: self._list,
            0x58: self._guard,
            0x59: self._lease_call,
            0x5A: self._lease_set,
        }
        #: Handlers of further extension requests (code -> handler of the raw body, True if it
        #: answered it), and what turns a durable lock's key into the token a guarded node sees.
        self.extra: dict[int, Callable[[Session, int, Any, float], bool]] = {}
        self.key_proof: KeyProof | None = None
        #: Called with each batch of effects after they are applied (pools watch releases).
        self.observers: list[Callable[[list[Effect], float], None]] = []
        router.handle_extension = self.handle  # type: ignore[method-assign]
        router.guarded = self.guarded  # type: ignore[method-assign]
        router.hello_hooks.append(self._hello)
        router.disconnect_hooks.append(self._disconnect)
        router.stop_hooks.append(self.stop)
        router.leases_held = table.held_by

    # -- plumbing --------------------------------------------------------------------------------

    def apply(self, effects: list[Effect], now: float) -> None:
        """Carry out the table's effects in order, then re-arm the sweeper."""
        router = self.router
        changed = False
        for effect in effects:
            kind = type(effect)
            if kind is Push:
                assert isinstance(effect, Push)
                session: Session = effect.conn  # type: ignore[assignment]
                if session.opted_in and not session.closed:
                    payload = bytes((_PUSH_CODES[effect.kind],)) + pack(effect.body)
                    session.push(frames.frame(payload))
            elif kind is HolderState:
                assert isinstance(effect, HolderState)
                self._publish(router.publish_state, "holder", effect.resource, effect.value, now)
            elif kind is Event:
                assert isinstance(effect, Event)
                changed = True
                self._publish(router.publish_event, "events", effect.resource, effect.value, now)
            elif kind is Audit:
                assert isinstance(effect, Audit)
                self._audit(effect.record)
            elif kind is Close:
                assert isinstance(effect, Close)
                router.disconnect(effect.conn, effect.reason, now)  # type: ignore[arg-type]
            elif kind is Forget:
                assert isinstance(effect, Forget)
                self._forget(effect.resource)
        if changed:
            router.meta.clients_changed(now)
        for observe in self.observers:
            observe(effects, now)
        state = self.state
        if state is not None and state.degraded != self._degraded:
            self._degraded = state.degraded
            router.meta.set_degraded("lease_state", state.degraded, now)
        self._arm(now)

    def _publish(
        self,
        publish: Callable[[str, Value, float], None],
        leaf: str,
        resource: str,
        value: dict[str, Any],
        now: float,
    ) -> None:
        data = Value.of(value)
        paths = [f"/meta/leases/{meta_name(resource)}/{leaf}"]
        if leaf == "events":
            paths.append("/meta/lease_events")
        for path in paths:
            try:
                publish(path, data, now)
            except ValueError as exc:  # a path the broker cannot own; nothing else is lost
                log.warning("cannot publish %s: %s", path, exc)

    def _forget(self, resource: str) -> None:
        """A reclaimed record's nodes leave the tree, unless somebody still observes them."""
        tree = self.router.tree
        for leaf in ("holder", "events"):
            node = tree.nodes.get(f"/meta/leases/{meta_name(resource)}/{leaf}")
            if node is not None and node.internal and not node.listeners:
                tree.remove(node)

    def _audit(self, record: dict[str, Any]) -> None:
        if not self._files and not audit_log.isEnabledFor(logging.INFO):
            return  # nobody reads it: no copy made
        safe = json_safe(record)
        reason = safe.get("reason")
        audit_log.info(
            "lease %s %s%s",
            safe.get("event"),
            safe.get("resource"),
            f" {reason}" if reason else "",
            extra={"audit": safe},
        )
        if not self._files:
            return
        line = json.dumps(safe, sort_keys=True)
        for f in self._files:
            try:
                f.write(line + "\n")
                f.flush()
            except (OSError, ValueError) as exc:
                self._audit_failed("cannot write audit line: %s", exc)

    def _arm(self, now: float) -> None:
        due = self.table.next_deadline()
        if due is not None and (self._armed is None or due < self._armed):
            self._armed = due
            self.router.hooks.call_later(max(0.0, due - now), self._fire)

    def _fire(self, now: float) -> None:
        self._armed = None
        _, effects = self.table.tick(now)
        self.apply(effects, now)

    def _reply(self, session: Session, rid: int, reply: dict[str, Any]) -> None:
        code = 0x05 if reply.get("status") in _OK else 0x06
        session.push(frames.reply(code, rid, pack(reply)))

    # -- lifecycle -------------------------------------------------------------------------------

    def _hello(self, session: Session, now: float) -> None:
        if session.opted_in:
            self._join(session, now)

    def _join(self, session: Session, now: float) -> None:
        """Tell the table about a session's hello (a re-hello if it knows the session)."""
        raw = session.client_id
        try:
            client = unpack(raw) if raw is not None else None
        except Exception:
            client = raw
        self._joined.add(session)
        _, effects = self.table.connect(session, client, float(session.conn.timeout), now)
        self.apply(effects, now)

    def _disconnect(self, session: Session, reason: str, now: float) -> None:
        if session not in self._joined:
            return
        self._joined.discard(session)
        why = "timeout" if reason == "timeout" else "disconnected"
        teardowns = self.router.teardowns
        if self.table.held_by(session) * LEASE_WEIGHT > teardowns.chunk:  # in slices
            teardowns.add((session, "leases"), partial(self._revoke_part, session, why))
            return
        _, effects = self.table.disconnect(session, why, now)
        self.apply(effects, now)

    def _revoke_part(self, session: Session, why: str, count: int, now: float) -> bool:
        done, effects = self.table.disconnect_part(session, why, now, 1 + count // LEASE_WEIGHT)
        self.apply(effects, now)
        return done

    def stop(self, now: float) -> None:
        """Graceful stop: every holder is pushed ``restart``; audit files are closed."""
        _, effects = self.table.shutdown(now)
        self.apply(effects, now)
        for f in self._files:
            f.close()
        self._files.clear()
        if self.state is not None:
            self.state.close()

    def publish_all(self, now: float) -> None:
        """Publish the holder state of every managed (declared) resource."""
        self.apply(list(self.table.holder_states()), now)

    # -- requests --------------------------------------------------------------------------------

    def handle(self, session: Session, msg: Any, now: float) -> None:
        """Handle one extension request (0x50-0x5a) of a session after its hello."""
        if session not in self._joined:
            self._join(session, now)
        extra = self.extra.get(msg.code)
        if extra is not None and extra(session, msg.id, msg.body.obj, now):
            return
        try:
            args = parse(msg.code, msg.body.obj)
        except BadArgs as exc:
            self._reply(session, msg.id, {"status": "bad_args", "reason": str(exc)})
            return
        self._handlers[msg.code](session, msg.id, args, now)

    def _answer(
        self, session: Session, rid: int, result: tuple[dict[str, Any], list[Effect]], now: float
    ) -> None:
        reply, effects = result
        self.apply(effects, now)
        self._reply(session, rid, reply)

    def _acquire(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        resource = a.pop("resource")
        self._answer(session, rid, self.table.acquire(session, resource, now, **a), now)

    def _take(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        result = self.table.take(
            session, a["resource"], a["reason"], now, ttl=a["ttl"], identity=a["identity"]
        )
        self._answer(session, rid, result, now)

    def _return(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        self._answer(session, rid, self.table.return_lease(session, a["token"], now), now)

    def _retain(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        self._answer(session, rid, self.table.retain(session, a["token"], now), now)

    def _validate(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        self._answer(session, rid, self.table.validate(a["token"], now, a["resource"]), now)

    def _cancel(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        self._answer(session, rid, self.table.cancel(session, a["request"], now), now)

    def _info(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        self._answer(session, rid, self.table.info(a["resource"], now), now)

    def _list(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        self._answer(session, rid, self.table.list(now, a["prefix"], a["after"]), now)

    # -- guards ----------------------------------------------------------------------------------

    def _guard(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        tree = self.router.tree
        path, resource = a["path"], a["resource"]
        node = tree.nodes.get(path)
        if node is None:
            found = tree.find(path)
            error = found if isinstance(found, str) else "path_not_found"
            self._reply(session, rid, {"status": error})
        elif node.owner is not session:
            self._reply(session, rid, {"status": "not_owner"})
        elif node.kind is EVENT:
            self._reply(session, rid, {"status": "path_is_wrong_type"})
        elif resource is not None and not self.table.resource_ok(resource):
            problem = self.table.resource_problem(resource)
            self._reply(session, rid, {"status": "INVALID_RESOURCE", "reason": problem})
        else:
            node.guard = resource
            self._reply(session, rid, {"status": "OK"})

    def guarded(
        self, session: Session, msg: m.ActionCall | m.Set, node: Node[Session], now: float
    ) -> None:
        """A plain call or set reached a guarded node: forward it with the caller's newest
        covering token, or answer ``err "NO_LEASE"`` (a plain str, for plain ESHET callers)."""
        reply, effects = self.table.check_guard(session, node.guard, None, now)
        self.apply(effects, now)
        if reply["status"] != "OK":
            session.push(frames.err(msg.id, no_lease_text(node.guard, reply.get("holders"))))
            return
        raw = msg.args.raw if isinstance(msg, m.ActionCall) else msg.value.raw
        self._forward(session, msg.id, node, msg.path, raw=raw, token=reply["token"], plain=True)

    def _forward(
        self,
        session: Session,
        rid: int,
        node: Node[Session],
        path: str,
        *,
        raw: bytes,
        token: Any,
        plain: bool,
    ) -> None:
        owner = node.owner
        assert owner is not None
        call = node.kind is ACTION
        field = b"\xa4args" if call else b"\xa5value"
        body = b"\x83\xa4path" + pack(path) + field + raw + b"\xa5token" + pack(token)
        if len(body) + 3 > frames.MAX_PAYLOAD:
            if plain:
                session.push(frames.err(rid, "value_too_large"))
            else:
                self._reply(session, rid, {"status": "value_too_large"})
            return
        value = Value(body)
        make: Callable[[int], m.Message]
        if call:
            make = lambda oid: m.GuardedCall(oid, value)  # noqa: E731 (one-line factory)
        else:
            make = lambda oid: m.GuardedSet(oid, value)  # noqa: E731
        self.router.forward(session, rid, owner, make)

    def _token_checked(
        self,
        session: Session,
        rid: int,
        node: Node[Session],
        now: float,
        *,
        token: Any,
        raw: bytes,
        key: str | None = None,
    ) -> None:
        assert node.guard is not None
        if key is not None:
            if self.key_proof is None:
                self._reply(session, rid, {"status": "NO_LEASE", "reason": "no durable locks"})
                return
            path, call = node.path, node.kind is ACTION

            def proven(proof: dict[str, Any], lock_token: Any, when: float) -> None:
                if proof["status"] != "OK":
                    self._reply(session, rid, proof)
                    return
                # The proof may have taken a while: decide on the node as it is now.
                body = {"path": path, "token": lock_token}
                if call:
                    self._lease_call(session, rid, {**body, "args": unpack(raw), "key": None}, when)
                else:
                    self._lease_set(session, rid, {**body, "value": unpack(raw), "key": None}, when)

            self.key_proof(session, rid, node.guard, key, proven, now)
            return
        reply, effects = self.table.check_guard(session, node.guard, token, now)
        self.apply(effects, now)
        if reply["status"] != "OK":
            self._reply(session, rid, reply)
            return
        self._forward(session, rid, node, node.path, raw=raw, token=token, plain=False)

    def _lease_call(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        node = self.router.tree.nodes.get(a["path"])
        raw = pack(a["args"])
        if node is not None and node.kind is ACTION and node.guard is not None:
            self._token_checked(session, rid, node, now, token=a["token"], raw=raw, key=a["key"])
            return
        self.router.handle(session, m.ActionCall(rid, a["path"], Value(raw, a["args"])), now)

    def _lease_set(self, session: Session, rid: int, a: dict[str, Any], now: float) -> None:
        node = self.router.tree.nodes.get(a["path"])
        raw = pack(a["value"])
        if node is not None and node.kind in (STATE, PROP) and node.guard is not None:
            self._token_checked(session, rid, node, now, token=a["token"], raw=raw, key=a["key"])
            return
        self.router.handle(session, m.Set(rid, a["path"], Value(raw, a["value"])), now)


def install_leases(
    router: Router,
    *,
    wall_offset: float,
    wall_ns: int,
    now: float,
    state_dir: str | None = None,
    audit_file: str | None = None,
    resources: Iterable[Any] | None = None,
    lease_config: str | os.PathLike[str] | LeaseConfig | None = None,
    ttl_max: float | None = None,
    max_resources: int | None = None,
    max_waits: int | None = None,
) -> LeaseLayer:
    """Create the lease layer of a broker about to listen.

    With ``state_dir`` the epoch and roots continue from it (written before this returns) and
    audit lines go to ``leases.jsonl`` there too; without, the epoch is ``wall_ns``.
    ``lease_config`` (a TOML file's path, or a :class:`LeaseConfig`) gives the declared
    resources, ``ttl_max``, ``max_resources`` and ``max_waits``; each keyword that is not
    ``None`` overrides it (``resources`` replaces the whole declared list).

    Raises:
        LeaseConfigError: the lease config file cannot be read or is wrong (also a ValueError).
        StateDirError: the state directory cannot be used.
        ValueError: a bad declared resource or limit.
        OSError: the audit file cannot be opened.
    """
    config = _settings(lease_config, resources, ttl_max, max_resources, max_waits)
    files: list[Path] = []
    state: LeaseState | None = None
    if state_dir is not None:
        state = open_state(state_dir, wall_ns)
        epoch, roots = state.epoch, state.roots
        files.append(Path(state_dir) / AUDIT_FILE)
    else:
        epoch, roots = wall_ns, None
    if audit_file is not None:
        files.append(Path(audit_file))

    def last_seen(session: Any) -> float:
        seen: float = session.last_received
        return seen

    def peer_of(session: Any) -> Any:
        return session.peer

    table = LeaseTable(
        epoch,
        roots=roots,
        declared=config.resources,
        ttl_max=config.ttl_max,
        max_resources=config.max_resources,
        max_waits=config.max_waits,
        max_leases=config.max_leases,
        wall_offset=wall_offset,
        last_seen=last_seen,
        peer_of=peer_of,
    )
    try:
        layer = LeaseLayer(router, table, files, state)
    except BaseException:
        if state is not None:
            state.close()
        raise
    layer.publish_all(now)
    return layer


def _settings(
    lease_config: str | os.PathLike[str] | LeaseConfig | None,
    resources: Iterable[Any] | None,
    ttl_max: float | None,
    max_resources: int | None,
    max_waits: int | None,
) -> LeaseConfig:
    """The file's settings (or the defaults) with the explicit keywords laid over them."""
    if lease_config is None:
        config = LeaseConfig()
    elif isinstance(lease_config, LeaseConfig):
        config = lease_config
    else:
        config = load_lease_config(lease_config)
    declared = config.resources if resources is None else tuple(declared_resources(resources))
    ttl = config.ttl_max if ttl_max is None else ttl_max
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise ValueError(f"ttl_max must be a finite number > 0, not {ttl!r}")
    limits = {
        "max_resources": config.max_resources if max_resources is None else max_resources,
        "max_waits": config.max_waits if max_waits is None else max_waits,
    }
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, not {value!r}")
    return LeaseConfig(
        declared,
        float(ttl),
        limits["max_resources"],
        limits["max_waits"],
        config.max_leases,
        source=config.source,
    )
