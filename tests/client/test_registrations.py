"""Replay bookkeeping: what is pending after a reconnect, and in which order."""

from __future__ import annotations

from typing import Any

from roost.client.registrations import (
    ActionEntry,
    EventEntry,
    GuardEntry,
    ListenEntry,
    ObserveEntry,
    Registrations,
    StateEntry,
)
from roost.protocol.values import Value


class _Sink:
    def deliver(self, value: Any) -> None:
        pass


def _filled() -> Registrations:
    regs = Registrations()
    regs.guards["/a"] = GuardEntry("lab")
    regs.observes["/o"] = ObserveEntry([_Sink()])
    regs.listens["/l"] = ListenEntry([_Sink()])
    regs.states["/s"] = StateEntry(None, Value.of(5))
    regs.events["/e"] = EventEntry()
    regs.actions["/a"] = ActionEntry(print)
    return regs


def test_pending_lists_everything_in_replay_order() -> None:
    """Registrations first, then state values, listens, observes and guards."""
    assert _filled().pending(1) == [
        ("action", "/a"),
        ("event", "/e"),
        ("state", "/s"),
        ("state_value", "/s"),
        ("listen", "/l"),
        ("observe", "/o"),
        ("guard", "/a"),
    ]


def test_entries_sent_on_this_generation_are_not_pending() -> None:
    """Marking each entry with the generation empties the list; a new generation refills it."""
    regs = _filled()
    entries: list[Any] = [*regs.actions.values(), *regs.events.values(), *regs.listens.values()]
    entries += [*regs.observes.values(), *regs.guards.values()]
    for entry in entries:
        entry.gen = 3
    regs.states["/s"].gen = regs.states["/s"].value_gen = 3
    assert regs.pending(3) == []
    assert len(regs.pending(4)) == 7


def test_unknown_states_and_unsubscribed_paths_replay_nothing_extra() -> None:
    """No value is replayed for an unknown state; listens and observes without subscribers
    are not replayed."""
    regs = Registrations()
    regs.states["/s"] = StateEntry(None)
    regs.listens["/l"] = ListenEntry()
    regs.observes["/o"] = ObserveEntry()
    assert regs.pending(1) == [("state", "/s")]


def test_forget_drops_refused_entries() -> None:
    """A refused replay is forgotten; a refused state value leaves the state unknown."""
    regs = _filled()
    regs.forget("action", "/a")
    regs.forget("state_value", "/s")
    regs.forget("guard", "/a")
    assert "/a" not in regs.actions
    assert "/a" not in regs.guards
    assert regs.states["/s"].value is None
    assert regs.owned("/s")
    assert not regs.owned("/a")
