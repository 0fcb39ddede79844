"""Running figures of one broker: messages and bytes in and out, fan-out, closes.

Rules of this module:

- Plain integers on one object, incremented where the broker already does the work (the
  server's read loop, its once-per-iteration flush, the router's fan-out and cleanup); no
  locks (everything runs on the broker's event loop) and no work per delivered frame.
- Reading is a snapshot: readers (the metrics endpoint, ``roost top``) turn totals into rates
  themselves.
"""

from __future__ import annotations

__all__ = ("CLOSE_KINDS", "Stats", "close_kind")

#: The close reasons counted apart (``protocol_error: <why>`` counts as ``protocol_error``).
CLOSE_KINDS = (
    "disconnected",
    "timeout",
    "hello_timeout",
    "idle_timeout",
    "frame_timeout",
    "takeover",
    "slow_consumer",
    "protocol_error",
    "internal_error",
    "shutdown",
)


def close_kind(reason: str) -> str:
    """The counted kind of a close ``reason`` (its part before ``:``; unknown ones: ``other``)."""
    kind = reason.split(":", 1)[0]
    return kind if kind in CLOSE_KINDS else "other"


class Stats:
    """Counters of one broker since it started.

    Attributes:
        received: messages received, indexed by type byte (256 entries).
        bytes_in: bytes received from clients.
        frames_out, bytes_out: frames and bytes handed to connections' transports.
        sent: frames queued to connections, indexed by type byte (256 entries; counted by
            ``Session.push``, and by ``fan_out`` once per notification for all its receivers).
        event_deliveries, state_deliveries: notifications queued by fan-out (one per listener
            or observer of each emit or state change).
        opened: connections accepted.
        closed: connections closed, by :func:`close_kind` of the reason.
    """

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "closed",
        "event_deliveries",
        "frames_out",
        "opened",
        "received",
        "sent",
        "state_deliveries",
    )

    def __init__(self) -> None:
        self.received = [0] * 256
        self.sent = [0] * 256
        self.bytes_in = 0
        self.frames_out = 0
        self.bytes_out = 0
        self.event_deliveries = 0
        self.state_deliveries = 0
        self.opened = 0
        self.closed: dict[str, int] = {}

    def count_close(self, reason: str) -> None:
        """Count one connection closed for ``reason``."""
        kind = close_kind(reason)
        self.closed[kind] = self.closed.get(kind, 0) + 1

    @property
    def messages_in(self) -> int:
        """All messages received."""
        return sum(self.received)
