"""Subtree subscriptions: routing cost per delivery against plain listeners.

The router runs in process with sessions whose output is drained after every emit, so the
figures are the router's own work (lookup, frame encoding, queueing), without sockets. The
question is whether routing through subtree subscriptions costs per matching subscriber
rather than per subscription: 1,000 subtree listens of which 10 match the emitted path,
against 10 plain listeners of that path.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.common import Table, format_rate, rate
from roost.broker.router import Router
from roost.broker.session import Session
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = ("run",)

PATH = "/house/kitchen/oven/done"
RAW = Value.of({"temp": 180, "ok": True}).raw


class _Hooks:
    def wake(self) -> None:
        pass

    def close_io(self, session: Session, reason: str) -> None:
        pass

    def timeout_changed(self, session: Session) -> None:
        pass

    def call_later(self, delay: float, callback: Callable[[float], None]) -> None:
        pass

    def peer_gone(self, session: Session) -> bool:
        return False


def _session(router: Router) -> Session:
    session = router.open_session("127.0.0.1:1", 0.0, 0.0)
    session.conn.receive_data(codec.encode(m.Hello(1, 0)))
    router.handle(session, m.Hello(1, 0), 0.0)
    session.take_output()
    return session


def _setup(plain: int, matching: int, other: int) -> tuple[Callable[[], None], int]:
    """A router with an event at :data:`PATH`, ``plain`` listeners, ``matching`` subtree
    listens that match it and ``other`` that do not; return one emit (with the drain of every
    receiver) and the deliveries it makes."""
    router = Router(_Hooks(), 0.0, max_outbound=1 << 30)
    owner = _session(router)
    router.handle(owner, m.EventRegister(1, PATH), 0.0)
    receivers: list[Session] = []
    for _ in range(plain):
        session = _session(router)
        router.handle(session, m.EventListen(1, PATH), 0.0)
        receivers.append(session)
    patterns = ["/house/**", "/house/+/oven/done", "/house/kitchen/**", "/+/kitchen/+/done"]
    for index in range(matching):
        session = _session(router)
        body = Value.of({"sub": 1, "pattern": patterns[index % len(patterns)]})
        router.handle(session, m.SubtreeListen(1, body), 0.0)
        receivers.append(session)
    # The others spread over many prefixes, some sharing the emitted path's first segments.
    for index in range(other):
        session = _session(router)
        pattern = f"/house/room{index}/**" if index % 2 else f"/garden{index}/+/done"
        router.handle(session, m.SubtreeListen(1, Value.of({"sub": 1, "pattern": pattern})), 0.0)
    for session in router.sessions:
        session.take_output()
    router.dirty.clear()
    emit = router.event_emit_raw
    dirty = router.dirty

    def once() -> None:
        emit(owner, 2, PATH, RAW, 0.0)
        for session in dirty:
            session.outbox.clear()
            session.out_size = 0
        dirty.clear()

    once()
    assert all(len(s.outbox) == 0 for s in receivers)
    return once, len(receivers)


def run(quick: bool = False) -> None:
    """Print emits/s and nanoseconds per delivery for plain and subtree fan-out."""
    min_time = 0.05 if quick else 0.3
    table = Table(
        "event fan-out in the router (1 emit, N deliveries; no sockets)",
        ["receivers", "subscriptions", "emits/s", "ns/delivery", "vs plain"],
    )
    cases = [
        ("10 plain listeners", 10, 0, 0),
        ("10 subtree (of 1,000)", 0, 10, 990),
        ("10 subtree (of 10)", 0, 10, 0),
        ("100 plain listeners", 100, 0, 0),
        ("100 subtree (of 10,000)", 0, 100, 9_900),
    ]
    base: dict[int, float] = {}
    for name, plain, matching, other in cases:
        once, deliveries = _setup(plain, matching, other)
        emits = rate(once, min_time=min_time)
        per = 1e9 / (emits * deliveries)
        if plain:
            base[deliveries] = per
        ratio = per / base[deliveries] if deliveries in base else float("nan")
        table.add(name, plain + matching + other, format_rate(emits), f"{per:.0f}", f"{ratio:.2f}x")
    table.print()
