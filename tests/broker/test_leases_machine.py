"""Stateful test: the lease table against a naive model, invariants after every step."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from roost.broker.leases.table import LeaseTable
from roost.broker.leases.types import (
    Declared,
    Effect,
    Event,
    HolderState,
    Identity,
    Push,
    RootCounter,
)
from roost.protocol.tokens import covers, newer, overlaps, sublease
from tests.broker.leasemodel import MConn, MLease, Model, MRecord, MWait
from tests.broker.leaseowner import Command, FencedOwner

CONNS = ("c0", "c1", "c2", "c3")
RESOURCES = ("a", "a/b", "a/b/c", "a/d", "e")
TIMEOUTS = (2.0, 1.0, 2.0, 0.0)

conns = st.sampled_from(CONNS)
resources = st.sampled_from(RESOURCES)
modes = st.sampled_from(("exclusive", "shared"))
waits = st.sampled_from((0.0, 0.5, 1.3, -1.0))
ttls = st.sampled_from((None, None, 0.7, 1.5))
keys = st.sampled_from((None, None, "k1", "k2"))
picks = st.integers(min_value=0, max_value=10_000)


class LeaseMachine(RuleBasedStateMachine):
    """Drives a LeaseTable and a Model with the same steps and compares them after each."""

    declared: ClassVar[dict[str, tuple[int, bool]]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 10
        self.roots = RootCounter(1)
        self.model = Model(self.epoch, 1, self.declared)
        self.table = self._new_table()
        self.silent: set[str] = set()
        self.tokens: list[dict[str, Any]] = []
        self.requests: list[tuple[str, int]] = []
        self.published: dict[str, dict[str, Any]] = {}
        self.replayed: set[tuple[str, int]] = set()
        self.max_root = 0
        self.restarts = 0
        self.ended_ids: set[int] = set()
        self.published = {s.resource: s.value for s in self.table.holder_states()}
        self.owner = FencedOwner(self.epoch)
        self.bare_owner = FencedOwner(self.epoch, use_floor=False)  # token order alone
        self.in_flight: list[Command] = []

    def _new_table(self) -> LeaseTable:
        decl = [Declared(n, k, t) for n, (k, t) in self.declared.items()]
        return LeaseTable(self.epoch, roots=self.roots, declared=decl)

    # -- the comparison of one step --------------------------------------------------------------

    def _step(self, result: tuple[Any, list[Effect]], expected_status: str | None = None) -> Any:
        reply, fx = result
        self._check_effects(fx)
        pushes = [(p.conn, p.kind, self._push_detail(p)) for p in fx if isinstance(p, Push)]
        assert Counter(pushes) == Counter(self.model.pushes), (pushes, self.model.pushes)
        self.model.pushes.clear()
        for p in fx:
            if isinstance(p, Push) and p.kind == "lease_granted":
                self.tokens.append(p.body["lease"]["token"])
        if expected_status is not None:
            assert reply["status"] == expected_status, (reply, expected_status)
        return reply

    @staticmethod
    def _push_detail(p: Push) -> Any:
        b = p.body
        if p.kind == "lease_revoked":
            return (b["token"]["seq"][0], b["reason"])
        if p.kind == "lease_granted":
            return (b["request"], b["lease"]["token"]["seq"][0])
        return (b["request"], b["status"])

    def _check_effects(self, fx: list[Effect]) -> None:
        """Order rules of E9 and the bookkeeping of published states and events."""
        seen_state = False
        revoked: list[tuple[Any, str]] = []
        states: set[str] = set()
        for e in fx:
            if isinstance(e, HolderState):
                seen_state = True
                assert e.resource not in states, "two holder states for one resource in a step"
                states.add(e.resource)
                self.published[e.resource] = e.value
                if e.value["mode"] == "exclusive":
                    assert len(e.value["holders"]) == 1, "published exclusive with others"
                continue
            assert not seen_state, f"holder states must come last, not before {e!r}"
            if isinstance(e, Push) and e.kind == "lease_revoked":
                revoked.append((e.conn, e.body["resource"]))
                self.ended_ids.add(e.body["lease_id"])
            if isinstance(e, Push) and e.kind == "lease_granted":
                lid = e.body["lease"]["lease_id"]
                assert lid not in self.ended_ids, "7: a revoked lease came back"
            if isinstance(e, Event):
                key = (e.value["resource"], e.value.get("token", {}).get("seq", [0])[0])
                if e.value["event"] == "granted":
                    assert key not in self.replayed
                    self.replayed.add(key)
                    root = key[1]
                    assert root > self.max_root, "3: roots must strictly increase"
                    self.max_root = root
                elif e.value["event"] == "ended":
                    self.replayed.remove(key)

    @invariant()
    def matches_model(self) -> None:
        """Leases, waits, published holder states and the event replay equal the model."""
        t, mdl = self.table, self.model
        t.check_invariants()
        got = sorted(
            (x.conn, x.resource, x.mode, x.root)
            for rec in t._records.values()
            for x in rec.active.values()
        )
        want = sorted((x.conn, x.resource, x.mode, x.root) for x in mdl.active())
        assert got == want, (got, want)
        got_w = [(w.conn, w.resource, w.mode) for w in t._queue.values()]
        want_w = [(w.conn, w.resource, w.mode) for w in mdl.waiting()]
        assert got_w == want_w
        assert sorted(t._records) == sorted(mdl.records)
        assert self.replayed == {(x.resource, x.root) for x in mdl.active()}
        for name in mdl.records:
            value = self.published.get(name)
            assert value is not None, f"no holder state for managed {name}"
            cov = mdl.covering(name)
            assert [(h["client"], h["token"]["seq"][0]) for h in value["holders"]] == [
                (f"id-{x.conn}", x.root) for x in cov
            ]
            assert value["waiters"] == sum(1 for w in mdl.waiting() if w.resource == name)
            assert value["floor"] == mdl.floor(name)
            mode = None if not cov else ("exclusive" if cov[0].mode == "exclusive" else "shared")
            assert value["mode"] == mode

    @invariant()
    def statuses_match(self) -> None:
        """6: every bundled token's use status is the model's."""
        for tok in self.tokens[-6:]:
            reply, fx = self.table.validate(tok, self.model.now)
            assert not fx
            status, reason = self.model.use_status(tok)
            assert reply["status"] == status, (tok, reply, status)
            if status == "REVOKED":
                assert reply["reason"] == reason

    # -- helpers ---------------------------------------------------------------------------------

    def _conn(self, name: str) -> MConn | None:
        c = self.model.conns.get(name)
        return c if c is not None and c.alive else None

    def _touch(self, name: str) -> None:
        self._step(self.table.touch(name, self.model.now))
        self.model.advance(self.model.now)
        c = self._conn(name)
        if c is not None:
            c.last_seen = self.model.now

    def _pick(self, items: list[Any], i: int) -> Any:
        return items[i % len(items)]

    # -- rules -----------------------------------------------------------------------------------

    @initialize(timeouts=st.lists(st.sampled_from(TIMEOUTS), min_size=4, max_size=4))
    def start(self, timeouts: list[float]) -> None:
        """Every connection says hello first (rules may close and reopen them)."""
        for name, timeout in zip(CONNS, timeouts, strict=True):
            self.connect(name, timeout)

    @rule()
    def ping_all(self) -> None:
        """Every connection that is not silent sends a ping (keeps its idle timer fresh)."""
        for name in CONNS:
            if name not in self.silent:
                self._touch(name)

    @rule(name=conns, timeout=st.sampled_from(TIMEOUTS))
    def connect(self, name: str, timeout: float) -> None:
        """A hello (a takeover by the same id is a disconnect then this)."""
        mdl = self.model
        if name in self.silent and self._conn(name) is not None:
            return
        result = self.table.connect(name, f"id-{name}", timeout, mdl.now)
        mdl.advance(mdl.now)
        c = self._conn(name)
        if c is not None:
            self._rehello_model(c, timeout)
        else:
            mdl.conns[name] = MConn(name, timeout, mdl.now)
            self.silent.discard(name)
        self._step(result)

    def _rehello_model(self, c: MConn, timeout: float) -> None:
        mdl = self.model
        c.last_seen = mdl.now
        c.timeout = timeout
        if timeout <= 0:
            for x in mdl.active():
                if x.conn == c.name:
                    mdl.end(x, "timeout_required", push=True)
            for w in mdl.waiting():
                if w.conn == c.name:
                    mdl.drop(w, "TIMEOUT_REQUIRED", push=True)
            mdl.serve(mdl.now)

    @rule(name=conns, timeout=st.sampled_from(TIMEOUTS))
    def rehello(self, name: str, timeout: float) -> None:
        """A later hello on a live connection."""
        if self._conn(name) is None or name in self.silent:
            return
        result = self.table.rehello(name, timeout, self.model.now)
        self.model.advance(self.model.now)
        c = self._conn(name)
        if c is not None:
            self._rehello_model(c, timeout)
        self._step(result)

    @rule(name=conns)
    def disconnect(self, name: str) -> None:
        """TCP close (or takeover)."""
        mdl = self.model
        result = self.table.disconnect(name, "disconnected", mdl.now)
        mdl.advance(mdl.now)
        c = self._conn(name)
        if c is not None:
            mdl.kill(c, "disconnected")
            mdl.serve(mdl.now)
        self._step(result)

    @rule(name=conns)
    def go_silent(self, name: str) -> None:
        """The connection sends nothing more (a paused or partitioned process)."""
        self.silent.add(name)

    @rule(dt=st.sampled_from((0.1, 0.1, 0.3, 0.6, 1.2)), where=st.sampled_from((-1, 0, 1, 2, 2)))
    def advance(self, dt: float, where: int) -> None:
        """Move the clock: by ``dt``, or exactly onto the next deadline, or a hair either side."""
        mdl = self.model
        target = mdl.now + dt
        nxt = self.table.next_deadline()
        if where != 2 and nxt is not None and nxt > mdl.now:
            target = nxt + where * 1e-6
        result = self.table.tick(target)
        mdl.advance(target)
        self._step(result)

    @rule(name=conns, r=resources, mode=modes, wait=waits, ttl=ttls, key=keys)
    def acquire(  # noqa: PLR0917 (hypothesis passes rule arguments by name)
        self, name: str, r: str, mode: str, wait: float, ttl: float | None, key: str | None
    ) -> None:
        """lease_acquire."""
        if name in self.silent:
            return
        self._touch(name)
        mdl = self.model
        result = self.table.acquire(
            name, r, mdl.now, mode=mode, wait=wait, ttl=ttl, identity=Identity(name=name), key=key
        )
        status = self._acquire_model(name, r, mode=mode, wait=wait, ttl=ttl, key=key)
        reply = self._step(result, status)
        if status == "OK":
            self.tokens.append(reply["lease"]["token"])
        elif status == "QUEUED":
            self.requests.append((name, reply["request"]))

    @rule(name=conns, r=resources, mode=modes, wait=st.sampled_from((0.5, 1.3, -1.0)), ttl=ttls)
    def acquire_waiting(self, name: str, r: str, mode: str, wait: float, ttl: float | None) -> None:
        """lease_acquire that queues when it cannot be granted."""
        self.acquire(name=name, r=r, mode=mode, wait=wait, ttl=ttl, key=None)

    def _acquire_model(
        self, name: str, r: str, *, mode: str, wait: float, ttl: float | None, key: str | None
    ) -> str:
        mdl = self.model
        c = self._conn(name)
        if c is None:
            return "unregistered"
        if mdl.declared_only and r not in mdl.records:
            return "INVALID_RESOURCE"
        if c.timeout <= 0:
            return "TIMEOUT_REQUIRED"
        mdl.records.setdefault(r, MRecord())
        if key is not None:
            prev = c.keys.get(key)
            if isinstance(prev, MLease) and prev.ended is None:
                return "OK"
            if isinstance(prev, MWait) and prev.done is None:
                return "QUEUED"
        for x in mdl.active():
            if x.conn == name and overlaps(x.resource, r):
                if x.resource == r and x.mode == mode:
                    if key is not None:
                        c.keys[key] = x
                    return "OK"
                return "ALREADY_CLAIMED"
        held_back = any(
            "exclusive" in (w.mode, mode) and overlaps(w.resource, r) for w in mdl.waiting()
        )
        if mdl.compatible(r, mode) and not held_back:
            lease = mdl.grant(name, r, mode, ttl, mdl.now)
            if key is not None:
                c.keys[key] = lease
            return "OK"
        if wait == 0:
            return "ALREADY_CLAIMED"
        w = MWait(mdl.next_req, name, r, mode, mdl.now + wait if wait > 0 else None, ttl, key)
        mdl.next_req += 1
        mdl.waits.append(w)
        if key is not None:
            c.keys[key] = w
        return "QUEUED"

    @rule(name=conns, r=resources)
    def take(self, name: str, r: str) -> None:
        """lease_take."""
        if name in self.silent:
            return
        self._touch(name)
        mdl = self.model
        result = self.table.take(name, r, "because", mdl.now, identity=Identity(name=name))
        c = self._conn(name)
        if c is None:
            status = "unregistered"
        elif mdl.declared_only and r not in mdl.records:
            status = "INVALID_RESOURCE"
        elif c.timeout <= 0:
            status = "TIMEOUT_REQUIRED"
        else:
            displaced = [x for x in mdl.active() if overlaps(x.resource, r)]
            rec = mdl.records.get(r)
            if (rec is not None and not rec.takeable) or any(
                not mdl.records[x.resource].takeable for x in displaced
            ):
                status = "NOT_PERMITTED"
            else:
                mdl.records.setdefault(r, MRecord())
                status = "OK"
                root = mdl.next_root
                for x in sorted(displaced, key=lambda x: x.root):
                    mdl.end(x, "taken", push=True)
                lease = mdl.grant(name, r, "exclusive", None, mdl.now)
                assert lease.root == root
                mdl.serve(mdl.now)
        reply = self._step(result, status)
        if status == "OK":
            self.tokens.append(reply["lease"]["token"])
            assert all(
                p.body.get("new_token") == reply["lease"]["token"]
                for p in result[1]
                if isinstance(p, Push) and p.body.get("reason") == "taken"
            )

    def _holder_use(self, name: str, tok: Any) -> tuple[str, MLease | None]:
        mdl = self.model
        status, _ = mdl.use_status(tok)
        if status != "OK":
            return status, None
        lease = next(
            x for x in mdl.active() if x.resource == tok["resource"] and x.root == tok["seq"][0]
        )
        if lease.conn != name or self._conn(name) is None:
            return "NOT_HOLDER", None
        return "OK", lease

    @precondition(lambda self: self.tokens)
    @rule(name=conns, i=picks)
    def return_lease(self, name: str, i: int) -> None:
        """lease_return with a bundled token (stale ones on purpose)."""
        if name in self.silent:
            return
        self._touch(name)
        tok = self._pick(self.tokens, i)
        result = self.table.return_lease(name, tok, self.model.now)
        status, lease = self._holder_use(name, tok)
        if lease is not None:
            self.model.end(lease, "returned", push=True)
            self.model.serve(self.model.now)
        self._step(result, status)

    @precondition(lambda self: self.tokens)
    @rule(name=conns, i=picks)
    def retain(self, name: str, i: int) -> None:
        """lease_retain with a bundled token."""
        if name in self.silent:
            return
        self._touch(name)
        tok = self._pick(self.tokens, i)
        result = self.table.retain(name, tok, self.model.now)
        status, lease = self._holder_use(name, tok)
        if lease is not None:
            lease.last_retain = self.model.now
        self._step(result, status)

    @precondition(lambda self: self.tokens)
    @rule(i=picks, r=st.sampled_from((None, *RESOURCES)), how=st.sampled_from(("sub", "newer")))
    def derive_and_check(self, i: int, r: str | None, how: str) -> None:
        """Sub-leases and newer tokens keep their root's status; guards check against r."""
        tok = self._pick(self.tokens, i)
        derived = sublease(tok, "d") if how == "sub" else newer(tok)
        self.tokens.append(derived)
        mdl = self.model
        reply = self._step(self.table.validate(derived, mdl.now, r))
        mdl.advance(mdl.now)
        assert reply["status"] == mdl.use_status(derived, r)[0]
        if r is not None:
            decision = self._step(self.table.check_guard("nobody", r, derived, mdl.now))
            assert decision["status"] == mdl.use_status(derived, r)[0]

    @precondition(lambda self: self.requests)
    @rule(name=conns, i=picks)
    def cancel(self, name: str, i: int) -> None:
        """lease_cancel of a known request, maybe another connection's."""
        if name in self.silent:
            return
        self._touch(name)
        _, req = self._pick(self.requests, i)
        mdl = self.model
        result = self.table.cancel(name, req, mdl.now)
        w = next((w for w in mdl.waiting() if w.req == req), None)
        if w is None or w.conn != name:
            status = "NOT_WAITING"
        else:
            status = "OK"
            mdl.drop(w, "CANCELLED", push=True)
            mdl.serve(mdl.now)
        self._step(result, status)

    @rule(name=conns, guard=resources, i=picks, plain=st.booleans())
    def guarded_command(self, name: str, guard: str, i: int, plain: bool) -> None:
        """Anyone calls the node guarded by ``guard``: plain (the broker picks the caller's
        newest covering lease, else NO_LEASE) or with a bundled token (its use status)."""
        tok = None if plain or not self.tokens else self._pick(self.tokens, i)
        self._command(name, guard, tok)

    @precondition(lambda self: self.model.active())
    @rule(i=picks, j=st.sampled_from((0, 0, 1, 2)), how=st.sampled_from(("plain", "own", "sub")))
    def holder_command(self, i: int, j: int, how: str) -> None:
        """A holder calls a node guarded by a resource its lease covers (the deepest more
        often, so that leases on several levels meet at one node): plain, with its own token,
        or with a sub-lease (as a delegate would)."""
        live = [x for x in self.model.active() if x.conn not in self.silent]
        if not live:
            return
        held = self._pick(live, i)
        below = sorted((r for r in RESOURCES if covers(held.resource, r)), key=len, reverse=True)
        guard = self._pick(below, j)
        tok = self.table._records[held.resource].active[held.root].token
        self._command(held.conn, guard, None if how == "plain" else tok)
        if how == "sub":
            self._command(held.conn, guard, sublease(tok, "delegate"))

    def _command(self, name: str, guard: str, tok: dict[str, Any] | None) -> None:
        """Send one call to the node guarded by ``guard``; a forwarded one waits in flight for
        the owner. 16: the broker forwards only what a valid lease backs at that moment."""
        if name in self.silent:
            return
        self._touch(name)
        mdl = self.model
        if tok is None:
            result = self.table.check_guard(name, guard, None, mdl.now)
            mine = [x for x in mdl.covering(guard) if x.conn == name]
            reply = self._step(result, "OK" if mine else "NO_LEASE")
            backing = mine[-1] if mine else None
            if backing is not None:
                assert reply["token"]["seq"] == [backing.root]
        else:
            result = self.table.check_guard(name, guard, tok, mdl.now)
            status = mdl.use_status(tok, guard)[0]
            reply = self._step(result, status)
            backing = None
            if status == "OK":
                backing = next(
                    x
                    for x in mdl.active()
                    if x.resource == tok["resource"] and x.root == tok["seq"][0]
                )
                assert reply["token"] == tok
        if backing is not None:
            assert backing.ended is None and covers(backing.resource, guard)
            self.in_flight.append(Command(name, guard, reply["token"], backing))

    @precondition(lambda self: self.in_flight)
    @rule(order=st.lists(picks, min_size=1, max_size=3))
    def deliver(self, order: list[int]) -> None:
        """The owners receive up to three forwarded calls, in an order hypothesis picks (a
        paused holder's call may arrive after newer ones, after its lease ended, after a
        restart)."""
        for i in order:
            if self.in_flight:
                self._deliver(self.in_flight.pop(i % len(self.in_flight)))

    def _deliver(self, cmd: Command) -> None:
        mdl = self.model
        state = self.published.get(cmd.guard)
        floor = state["floor"] if state is not None else None
        newest = self.owner.newest(cmd.guard)
        outcome = self.owner.deliver(cmd, floor)
        self.bare_owner.deliver(cmd, floor)
        lease: MLease = cmd.backing
        same_epoch = cmd.token["epoch"] == self.epoch
        event(f"delivered: {outcome}, lease {'active' if lease.ended is None else 'ended'}")
        if same_epoch and lease.ended is None:
            # A call still backed by an active lease is refused only by a newer call applied
            # before it: the published floor never exceeds an active covering lease's root.
            assert outcome in ("applied", "OLDER"), (outcome, floor, lease)
        if same_epoch and lease.ended is not None and state is not None:
            later = [x for x in mdl.leases if covers(x.resource, cmd.guard) and x.root > lease.root]
            holding = mdl.covering(cmd.guard)
            if later and all(x.root > lease.root for x in holding):
                # Superseded: a newer lease covering the guard was granted and no older one
                # still holds, so the floor alone refuses the late call.
                assert outcome != "applied", (cmd, floor, newest)
        self.owner.check()
        self.bare_owner.check()

    @invariant()
    def owner_never_goes_back(self) -> None:
        """16: whatever the delivery order, the owners' applied tokens never go backwards."""
        self.owner.check()
        self.bare_owner.check()

    @precondition(lambda self: self.restarts < 2)
    @rule()
    def restart(self) -> None:
        """Graceful stop, then a new run (next epoch, roots continuing as with a state dir)."""
        self.restarts += 1
        mdl = self.model
        result = self.table.shutdown(mdl.now)
        mdl.advance(mdl.now)
        for x in mdl.active():
            mdl.end(x, "restart", push=True)
        for w in mdl.waiting():
            mdl.drop(w, "restart", push=False)
        self._step(result)
        old = [t for t in self.tokens if t.get("epoch") == self.epoch][-3:]
        self.epoch += 1
        self.owner.epoch = self.epoch  # the owners learn the new run from the broker
        self.bare_owner.epoch = self.epoch
        now = mdl.now
        self.model = Model(self.epoch, self.roots.peek, self.declared)
        self.model.now = now
        self.table = self._new_table()
        self._step(self.table.tick(now))
        self.published = {s.resource: s.value for s in self.table.holder_states()}
        self.replayed = set()
        self.ended_ids = set()
        self.silent = set()
        self.requests = []
        for tok in old:
            assert self.table.validate(tok, now)[0]["status"] in ("UNMANAGED", "WRONG_EPOCH")
            if tok["resource"] in self.model.records:
                assert self.table.validate(tok, now)[0]["status"] == "WRONG_EPOCH"
        for name in CONNS:  # clients reconnect to the new run
            self.connect(name, 2.0)


class DeclaredLeaseMachine(LeaseMachine):
    """The same machine over declared resources: capacity limits and a non-takeable one."""

    declared: ClassVar[dict[str, tuple[int, bool]]] = {
        "a": (0, True),
        "a/b": (2, True),
        "a/b/c": (1, True),
        "a/d": (0, True),
        "e": (3, False),
    }


_SETTINGS = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestLeaseMachine = LeaseMachine.TestCase
TestLeaseMachine.settings = _SETTINGS
TestDeclaredLeaseMachine = DeclaredLeaseMachine.TestCase
TestDeclaredLeaseMachine.settings = _SETTINGS
