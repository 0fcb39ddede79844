"""/metrics in Prometheus text format (parsed by prometheus_client) and /api/stats."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from roost.broker.gateway.metrics import LAG_BUCKETS, LoopLag
from roost.protocol import messages as m
from tests.broker.gateway.conftest import WebBroker
from tests.wire import connect, v

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(http: aiohttp.ClientSession, broker: WebBroker) -> Samples:
    async with http.get(broker.url("/metrics")) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_traffic(
    web_broker: WebBroker, http: aiohttp.ClientSession
) -> None:
    """Messages in and out by type, bytes, fan-out deliveries and connections count the
    traffic that flowed."""
    before = await _scrape(http, web_broker)
    async with await connect(web_broker.port) as a, await connect(web_broker.port) as b:
        await a.register("event", "/m/ev")
        await b.call_ok(m.EventListen(1, "/m/ev"))
        for i in range(10):
            await a.call_ok(m.EventEmit(a.next_id(), "/m/ev", v(i)))
        for _ in range(10):
            await b.recv_as(m.EventNotify)
        during = await _scrape(http, web_broker)
    assert (
        _get(during, "roost_messages_received_total", type="event_emit")
        - _get(before, "roost_messages_received_total", type="event_emit")
        == 10
    )
    assert (
        _get(during, "roost_fanout_deliveries_total", kind="event")
        - _get(before, "roost_fanout_deliveries_total", kind="event")
        == 10
    )
    assert _get(during, "roost_connections") == _get(before, "roost_connections") + 2
    assert _get(during, "roost_received_bytes_total") > _get(before, "roost_received_bytes_total")
    assert _get(during, "roost_sent_bytes_total") > _get(before, "roost_sent_bytes_total")
    assert _get(during, "roost_frames_sent_total") >= _get(before, "roost_frames_sent_total") + 20
    sent = {
        kind: _get(during, "roost_messages_sent_total", type=kind)
        - _get(before, "roost_messages_sent_total", type=kind)
        for kind in ("event_notify", "reply_ok", "server_hello_id")
    }
    assert sent == {"event_notify": 10, "reply_ok": 12, "server_hello_id": 2}
    # Every frame sent is counted under its type.
    by_type = sum(
        value for (name, _), value in during.items() if name == "roost_messages_sent_total"
    )
    assert by_type == _get(during, "roost_frames_sent_total")
    assert _get(during, "roost_event_loop_lag_seconds_bucket", le="+Inf") == _get(
        during, "roost_event_loop_lag_seconds_count"
    )


async def test_closes_and_pending_calls(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """A protocol error counts as a close by reason; a forwarded call counts as pending."""
    async with await connect(web_broker.port) as bad:
        await bad.send_raw(b"\x00")
        await bad.expect_closed()
    async with await connect(web_broker.port) as owner, await connect(web_broker.port) as caller:
        await owner.register("action", "/m/act")
        await caller.send(m.ActionCall(1, "/m/act", v([])))
        call = await owner.recv_as(m.ActionCall)
        samples = await _scrape(http, web_broker)
        assert _get(samples, "roost_pending_calls") == 1
        await owner.send(m.ReplyOk(call.id, v(None)))
        await caller.recv()
    assert _get(samples, "roost_connections_closed_total", reason="protocol_error") == 1


async def test_lease_figures(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """Grants, waiters, ends by reason and leases held follow lease activity."""
    async with (
        await connect(web_broker.port, timeout=5) as a,
        await connect(web_broker.port, timeout=5) as b,
    ):
        grant = await a.request(m.LeaseAcquire(1, v({"resource": "r"})))
        queued = await b.request(m.LeaseAcquire(1, v({"resource": "r", "wait": 5})))
        assert queued.value.obj["status"] == "QUEUED"
        taken = await b.request(m.LeaseTake(2, v({"resource": "r/x", "reason": "test"})))
        assert taken.value.obj["status"] == "OK"
        assert (await a.recv()).body.obj["reason"] == "taken"  # type: ignore[union-attr]
        # The holder state follows the same transitions: once it shows b's take, the events
        # (published in the same step) have reached the gateway's own session too.
        async with http.get(web_broker.url("/get/meta/leases/r/x/holder")) as r:
            holder = await r.json()
        assert [h["resource"] for h in holder["holders"]] == ["r/x"]
        samples = await _scrape(http, web_broker)
    assert grant.value.obj["status"] == "OK"
    assert _get(samples, "roost_lease_grants_total") == 2
    assert _get(samples, "roost_lease_ends_total", reason="taken") == 1
    assert _get(samples, "roost_lease_queued_total") == 1
    assert _get(samples, "roost_lease_waiters") == 1
    assert _get(samples, "roost_leases_held") == 1


async def test_stats_snapshot(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """/api/stats: the same figures as JSON, with the busiest clients first."""
    async with await connect(web_broker.port) as busy:
        for i in range(20):
            await busy.call_ok(m.Ping(i))
        async with http.get(web_broker.url("/api/stats")) as r:
            stats = await r.json()
        top = stats["top_clients"][0]
        assert busy.client_id is not None
        assert top["client"] == busy.client_id.obj and top["received"] >= 21
    assert stats["received"]["ping"] >= 20
    assert stats["sent"]["reply_ok"] >= 20
    assert stats["connections"] >= 1 and stats["uptime"] >= 0


def test_loop_lag_buckets() -> None:
    """A lag sample lands in the first bucket whose bound it does not exceed."""
    lag = LoopLag()
    lag.observe(0.0001)
    lag.observe(0.003)
    lag.observe(5.0)
    assert lag.counts[0] == 1
    assert lag.counts[LAG_BUCKETS.index(0.005)] == 1
    assert lag.counts[-1] == 1
    assert lag.total == pytest.approx(5.0031)
