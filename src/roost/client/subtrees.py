"""The client's subtree subscriptions: what it asked for, and where each push goes.

Rules of this module:

- Pure bookkeeping: no I/O. Each subscription has a number, chosen here and unique within the
  client; the broker's snapshot pushes name it, and its other pushes carry only a path, which
  is matched here against the patterns of the subscriptions of that kind.
- Subscribers receive ``(path, value)`` pairs (``value`` is ``Unknown`` for a state that became
  unknown) and must not block.
- A subscription takes pushes by path only once the broker's reply to it has arrived; pushes
  before it belong to other subscriptions (the snapshot, by number, comes before the reply).
- An observe remembers which paths it has seen known, so that a lost connection can tell its
  subscriber each of them is ``Unknown``; the snapshot after the reconnect brings them back.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from roost.client.registrations import UNSENT, Subscriber
from roost.protocol import messages as m
from roost.protocol.messages import Unknown
from roost.protocol.values import Value

__all__ = ("SubtreeBook", "SubtreeEntry", "pattern_regex")

SubtreeKind = Literal["listen", "observe"]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of the paths a pattern matches (``+``: one segment, a final
    ``**``: one or more). Checking the pattern is the broker's job."""
    parts = []
    for segment in pattern[1:].split("/"):
        if segment == "+":
            parts.append("/[^/]+")
        elif segment == "**":
            parts.append("/.+")
        else:
            parts.append("/" + re.escape(segment))
    return re.compile("".join(parts))


class SubtreeEntry:
    """One subtree listen or observe of this client."""

    __slots__ = ("gen", "kind", "known", "live", "number", "pattern", "regex", "subscriber")

    def __init__(self, number: int, kind: SubtreeKind, pattern: str, subscriber: Subscriber):
        self.number = number
        self.kind: SubtreeKind = kind
        self.pattern = pattern
        self.regex = pattern_regex(pattern)
        self.subscriber = subscriber
        self.gen = UNSENT
        #: True once the broker's ok reply arrived on the current connection: pushes that came
        #: before it were caused by other subscriptions and are not this one's.
        self.live = False
        #: Paths whose last delivered value is known (observes only).
        self.known: set[str] = set()

    def request(self, rid: int) -> m.SubtreeListen | m.SubtreeObserve:
        """The request that starts this subscription on the broker, under id ``rid``."""
        body = Value.of({"sub": self.number, "pattern": self.pattern})
        if self.kind == "listen":
            return m.SubtreeListen(rid, body)
        return m.SubtreeObserve(rid, body)

    def started(self, reply: m.Message) -> None:
        """The reply to :meth:`request` arrived (called in the reader, before later pushes)."""
        if isinstance(reply, m.ReplyOk):
            self.live = True

    def deliver(self, path: str, value: Any) -> None:
        if self.kind == "observe":
            if value is Unknown:
                self.known.discard(path)
            else:
                self.known.add(path)
        self.subscriber.deliver((path, value))


class SubtreeBook:
    """Every subtree subscription of one client, by number."""

    def __init__(self) -> None:
        self.entries: dict[int, SubtreeEntry] = {}
        self._next = 0

    def add(self, kind: SubtreeKind, pattern: str, subscriber: Subscriber) -> SubtreeEntry:
        """Record a new subscription (not sent yet)."""
        number = self._next
        while number in self.entries:
            number = (number + 1) & 0xFFFF
        self._next = (number + 1) & 0xFFFF
        entry = self.entries[number] = SubtreeEntry(number, kind, pattern, subscriber)
        return entry

    def remove(self, entry: SubtreeEntry) -> bool:
        """Forget ``entry``; ``True`` if it was recorded."""
        if self.entries.get(entry.number) is entry:
            del self.entries[entry.number]
            return True
        return False

    def pending(self, gen: int) -> list[SubtreeEntry]:
        """The entries not yet sent on connection generation ``gen``."""
        return [entry for entry in self.entries.values() if entry.gen != gen]

    def on_push(
        self, msg: m.SubtreeEvent | m.SubtreeChanged | m.SubtreeUnknown | m.SubtreeSnapshot
    ) -> None:
        """Hand a push from the broker to the subscriptions it belongs to."""
        if isinstance(msg, m.SubtreeSnapshot):
            entry = self.entries.get(msg.sub)
            if entry is not None and entry.kind == "observe":
                entry.deliver(msg.path, msg.value.obj)
            return
        kind = "listen" if isinstance(msg, m.SubtreeEvent) else "observe"
        value = Unknown if isinstance(msg, m.SubtreeUnknown) else msg.value.obj
        path = msg.path
        for entry in list(self.entries.values()):
            if entry.live and entry.kind == kind and entry.regex.fullmatch(path) is not None:
                entry.deliver(path, value)

    def link_lost(self) -> None:
        """The connection is gone: every known path of every observe is ``Unknown`` now."""
        for entry in list(self.entries.values()):
            entry.live = False
            for path in sorted(entry.known):
                entry.deliver(path, Unknown)
