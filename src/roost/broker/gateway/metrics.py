"""The broker's figures: Prometheus ``/metrics`` and the JSON snapshot ``/api/stats``.

Rules of this module:

- Nothing here runs per message. Scrapes read the counters the broker keeps anyway
  (:class:`~roost.broker.stats.Stats`), walk the sessions once, and add what this module
  counts itself: lease activity (from ``/meta/lease_events``, which the gateway's own session
  listens to) and the event loop's lag (one timer, :class:`LoopLag`).
- Exposition is prometheus_client's text format from a custom collector, built at scrape time.
"""

from __future__ import annotations

import asyncio
import heapq
import re
import time
from collections.abc import Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from roost.broker.router import Router
from roost.protocol import messages as m
from roost.protocol.values import unpack

__all__ = ("LAG_BUCKETS", "LeaseCounts", "LoopLag", "Metrics", "type_names")

#: Upper bounds (seconds) of the event-loop lag histogram.
LAG_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: Seconds between two lag samples.
LAG_INTERVAL: Final = 0.25
#: Clients listed in the snapshot's ``top_clients``.
TOP_CLIENTS: Final = 10


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def type_names() -> dict[int, str]:
    """Message type byte -> name (``0x11`` -> ``action_call``)."""
    return {code: _snake(cls.__name__) for code, cls in m.BY_CODE.items()}


class LoopLag:
    """How late the event loop runs a timer: one sample every :data:`LAG_INTERVAL` seconds."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LAG_BUCKETS) + 1)
        self.total = 0.0
        self.last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Start sampling on the running loop."""
        loop = asyncio.get_running_loop()
        self._due = loop.time() + LAG_INTERVAL
        self._handle = loop.call_at(self._due, self._sample)

    def stop(self) -> None:
        """Stop sampling."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.observe(max(0.0, now - self._due))
        self._due = now + LAG_INTERVAL
        self._handle = loop.call_at(self._due, self._sample)

    def observe(self, lag: float) -> None:
        """Record one lag sample, in seconds."""
        self.last = lag
        self.total += lag
        for i, bound in enumerate(LAG_BUCKETS):
            if lag <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1


class LeaseCounts:
    """Lease activity counted from the values of ``/meta/lease_events`` (protocol.md E10)."""

    def __init__(self) -> None:
        self.grants = 0
        self.ends: dict[str, int] = {}
        self.queued = 0
        self.dequeued: dict[str, int] = {}
        self.waiting = 0

    def seen(self, value: Any) -> None:
        """Count one lease event."""
        if not isinstance(value, dict):
            return
        event = value.get("event")
        if event == "granted":
            self.grants += 1
            if value.get("request") is not None:
                self.waiting = max(0, self.waiting - 1)
        elif event == "ended":
            reason = str(value.get("reason"))
            self.ends[reason] = self.ends.get(reason, 0) + 1
        elif event == "queued":
            self.queued += 1
            self.waiting += 1
        elif event == "dequeued":
            status = str(value.get("status"))
            self.dequeued[status] = self.dequeued.get(status, 0) + 1
            self.waiting = max(0, self.waiting - 1)


def _client_name(raw: bytes | None) -> str:
    if raw is None:
        return "-"
    try:
        return str(unpack(raw))
    except Exception:
        return raw.hex()


class Metrics:
    """Every figure of one broker, as Prometheus metrics or a JSON snapshot.

    Args:
        router: the broker's router.
        leases: lease activity counts.
        lag: the event-loop lag sampler.
        started: wall-clock start time (for uptime).
    """

    def __init__(self, router: Router, leases: LeaseCounts, lag: LoopLag, started: float) -> None:
        self.router = router
        self.leases = leases
        self.lag = lag
        self.started = started
        self._names = type_names()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self) -> bytes:
        """The Prometheus text exposition of every figure."""
        return generate_latest(self.registry)

    def _sessions(self) -> tuple[int, int, int]:
        """(connections with a hello, pending forwarded requests, leases held)."""
        router = self.router
        connections = pending = held = 0
        leases_held = router.leases_held
        for session in router.sessions:
            if session.client_id is not None:
                connections += 1
            pending += len(session.pending)
            held += leases_held(session)
        return connections, pending, held

    def collect(self) -> Iterator[Metric]:
        """Build every metric family (called by prometheus_client at each scrape)."""
        stats = self.router.stats
        connections, pending, held = self._sessions()
        yield GaugeMetricFamily(
            "roost_connections", "Open connections that have said hello.", value=connections
        )
        yield CounterMetricFamily(
            "roost_connections_opened", "Connections accepted.", value=stats.opened
        )
        closed = CounterMetricFamily(
            "roost_connections_closed", "Connections closed, by reason.", labels=["reason"]
        )
        for reason, count in sorted(stats.closed.items()):
            closed.add_metric([reason], count)
        yield closed
        received = CounterMetricFamily(
            "roost_messages_received", "Messages received, by type.", labels=["type"]
        )
        for code, count in enumerate(stats.received):
            if count:
                received.add_metric([self._names.get(code, f"0x{code:02x}")], count)
        yield received
        sent = CounterMetricFamily(
            "roost_messages_sent", "Messages sent to connections, by type.", labels=["type"]
        )
        for code, count in enumerate(stats.sent):
            if count:
                sent.add_metric([self._names.get(code, f"0x{code:02x}")], count)
        yield sent
        yield CounterMetricFamily(
            "roost_frames_sent", "Frames written to connections.", value=stats.frames_out
        )
        yield CounterMetricFamily(
            "roost_received_bytes", "Bytes received from connections.", value=stats.bytes_in
        )
        yield CounterMetricFamily(
            "roost_sent_bytes", "Bytes written to connections.", value=stats.bytes_out
        )
        deliveries = CounterMetricFamily(
            "roost_fanout_deliveries",
            "Notifications queued to listeners and observers, by kind.",
            labels=["kind"],
        )
        deliveries.add_metric(["event"], stats.event_deliveries)
        deliveries.add_metric(["state"], stats.state_deliveries)
        yield deliveries
        yield GaugeMetricFamily(
            "roost_pending_calls", "Requests forwarded to owners and not answered.", value=pending
        )
        yield GaugeMetricFamily("roost_leases_held", "Active leases.", value=held)
        yield GaugeMetricFamily(
            "roost_lease_waiters", "Lease requests waiting.", value=self.leases.waiting
        )
        yield CounterMetricFamily("roost_lease_grants", "Leases granted.", value=self.leases.grants)
        ends = CounterMetricFamily(
            "roost_lease_ends", "Leases ended, by reason (taken: by a take).", labels=["reason"]
        )
        for reason, count in sorted(self.leases.ends.items()):
            ends.add_metric([reason], count)
        yield ends
        yield CounterMetricFamily(
            "roost_lease_queued", "Lease requests queued.", value=self.leases.queued
        )
        dequeued = CounterMetricFamily(
            "roost_lease_waits_ended",
            "Lease waits that ended without a grant, by status.",
            labels=["status"],
        )
        for status, count in sorted(self.leases.dequeued.items()):
            dequeued.add_metric([status], count)
        yield dequeued
        cumulative = []
        running = 0
        for bound, count in zip((*LAG_BUCKETS, float("inf")), self.lag.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else str(bound), running))
        yield HistogramMetricFamily(
            "roost_event_loop_lag_seconds",
            "How late the event loop ran a timer.",
            buckets=cumulative,
            sum_value=self.lag.total,
        )
        yield GaugeMetricFamily(
            "roost_uptime_seconds", "Seconds since the broker started.", value=self.uptime()
        )

    def uptime(self) -> float:
        """Seconds since the broker started."""
        return max(0.0, time.time() - self.started)

    def snapshot(self) -> dict[str, Any]:
        """Every figure as one JSON-ready map (for the dashboard and ``roost top``)."""
        router = self.router
        stats = router.stats
        connections, pending, held = self._sessions()
        busiest = heapq.nlargest(TOP_CLIENTS, router.sessions, key=lambda s: s.received)
        return {
            "time": time.time(),
            "uptime": self.uptime(),
            "connections": connections,
            "messages_in": stats.messages_in,
            "frames_out": stats.frames_out,
            "bytes_in": stats.bytes_in,
            "bytes_out": stats.bytes_out,
            "deliveries": stats.event_deliveries + stats.state_deliveries,
            "received": {
                self._names.get(code, f"0x{code:02x}"): count
                for code, count in enumerate(stats.received)
                if count
            },
            "sent": {
                self._names.get(code, f"0x{code:02x}"): count
                for code, count in enumerate(stats.sent)
                if count
            },
            "closed": dict(stats.closed),
            "pending_calls": pending,
            "leases": {
                "held": held,
                "waiting": self.leases.waiting,
                "grants": self.leases.grants,
                "ends": dict(self.leases.ends),
            },
            "loop_lag": self.lag.last,
            "top_clients": [
                {"client": _client_name(s.client_id), "peer": s.peer, "received": s.received}
                for s in busiest
            ],
        }
