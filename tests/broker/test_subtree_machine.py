"""Snapshot-then-stream of subtree observes, as a Hypothesis state machine over the router.

Owners register, change, forget and drop states while observers start subtree observes at any
point. Each observer must see, per subscription, a snapshot equal to the known states matching
its pattern at that moment, then exactly the later changes to matching states, in order: no gap
and no duplicate. A plain ESHET observer of every path alongside must see exactly the ESHET
notifications.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from roost.broker.router import Router
from roost.broker.session import Session
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value
from tests.broker.test_router import FakeHooks

PATHS = ("/h/a", "/h/b/c", "/h/b/d", "/h/e/c", "/x/b/c")
PATTERNS = ("/h/**", "/h/+/c", "/h/b/**", "/h/+", "/+/b/+", "/x/b/c")


def _matches(pattern: str, path: str) -> bool:
    regex = "".join(
        "/[^/]+" if seg == "+" else "/.+" if seg == "**" else "/" + re.escape(seg)
        for seg in pattern[1:].split("/")
    )
    return re.fullmatch(regex, path) is not None


def _drain(session: Session) -> list[Any]:
    if not session.outbox:
        return []
    return [codec.decode(p) for p in FrameDecoder().feed(session.take_output())]


class SubtreeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.router = Router(FakeHooks(), 0.0, max_outbound=1 << 24)
        self.now = 0.0
        self.rid = 0
        self.known: dict[str, Any] = {}  # path -> value, known states only
        self.owner_of: dict[str, int] = {}  # path -> owner slot
        self.owners: dict[int, Session] = {}
        self.observers: list[tuple[Session, dict[int, str]]] = []
        # Per observer: the pushes it must still receive, in order.
        self.expected: list[list[Any]] = []
        self.plain = self._session()
        for path in PATHS:
            self._handle(self.plain, m.StateObserve(self._id(), path))
        _drain(self.plain)
        self.plain_expected: list[Any] = []

    def _id(self) -> int:
        self.rid = (self.rid + 1) & 0xFFFF
        return self.rid

    def _session(self) -> Session:
        session = self.router.open_session("127.0.0.1:1", 0.0, self.now)
        session.conn.receive_data(codec.encode(m.Hello(1, 30)))
        self.router.handle(session, m.Hello(1, 30), self.now)
        _drain(session)
        return session

    def _handle(self, session: Session, msg: Any) -> None:
        self.now += 0.001
        self.router.handle(session, msg, self.now)

    def _owner(self, slot: int) -> Session:
        if slot not in self.owners:
            self.owners[slot] = self._session()
        return self.owners[slot]

    def _notified(self, path: str, value: Any, *, known: bool) -> None:
        for (_, subs), expected in zip(self.observers, self.expected, strict=True):
            if any(_matches(p, path) for p in subs.values()):
                expected.append(
                    m.SubtreeChanged(path, Value.of(value)) if known else m.SubtreeUnknown(path)
                )
        self.plain_expected.append(
            m.StateNotify(path, Value.of(value)) if known else m.StateNotifyUnknown(path)
        )

    @rule(path=st.sampled_from(PATHS), slot=st.integers(0, 1))
    def register(self, path: str, slot: int) -> None:
        if path in self.owner_of:
            return
        owner = self._owner(slot)
        self._handle(owner, m.StateRegister(self._id(), path))
        assert isinstance(_drain(owner)[0], m.ReplyOk)
        self.owner_of[path] = slot

    @rule(path=st.sampled_from(PATHS), value=st.integers(0, 5) | st.none())
    def change(self, path: str, value: int | None) -> None:
        slot = self.owner_of.get(path)
        if slot is None:
            return
        owner = self.owners[slot]
        if value is None:
            self._handle(owner, m.StateUnknown(self._id(), path))
            self.known.pop(path, None)
        else:
            self._handle(owner, m.StateChanged(self._id(), path, Value.of(value)))
            self.known[path] = value
        assert isinstance(_drain(owner)[0], m.ReplyOk)
        self._notified(path, value, known=value is not None)

    @rule(slot=st.integers(0, 1))
    def owner_leaves(self, slot: int) -> None:
        owner = self.owners.pop(slot, None)
        if owner is None:
            return
        self.router.disconnect(owner, "disconnected", self.now)
        for path in [p for p, s in self.owner_of.items() if s == slot]:
            del self.owner_of[path]
            if path in self.known:
                del self.known[path]
                self._notified(path, None, known=False)

    @rule(pattern=st.sampled_from(PATTERNS))
    def new_observer(self, pattern: str) -> None:
        self.observers.append((self._session(), {}))
        self.expected.append([])
        self.observe(len(self.observers) - 1, pattern)

    @precondition(lambda self: bool(self.observers))
    @rule(data=st.data(), pattern=st.sampled_from(PATTERNS))
    def another_pattern(self, data: st.DataObject, pattern: str) -> None:
        index = data.draw(st.integers(0, len(self.observers) - 1))
        self.observe(index, pattern)

    def observe(self, index: int, pattern: str) -> None:
        session, subs = self.observers[index]
        number = len(subs) + 1
        rid = self._id()
        self._handle(session, m.SubtreeObserve(rid, Value.of({"sub": number, "pattern": pattern})))
        out = _drain(session)
        snapshot = {p: v for p, v in self.known.items() if _matches(pattern, p)}
        assert all(isinstance(msg, m.SubtreeSnapshot) for msg in out[:-1])
        assert sorted((msg.path, msg.value.obj) for msg in out[:-1]) == sorted(snapshot.items())
        assert all(isinstance(msg, m.SubtreeSnapshot) and msg.sub == number for msg in out[:-1])
        assert out[-1] == m.ReplyOk(rid, Value.of({"status": "OK", "states": len(snapshot)}))
        subs[number] = pattern

    @invariant()
    def streams_match(self) -> None:
        for (session, _), expected in zip(self.observers, self.expected, strict=True):
            assert _drain(session) == expected
            expected.clear()
        assert _drain(self.plain) == self.plain_expected
        self.plain_expected.clear()


TestSubtreeMachine = SubtreeMachine.TestCase
TestSubtreeMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
