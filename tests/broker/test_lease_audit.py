"""Audit records: their JSON shape in the audit file and in the ``roost.broker.audit`` log."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute

from roost.broker import Broker
from roost.broker.leases.views import json_safe
from roost.protocol import messages as m
from roost.protocol.values import MapPairs
from tests.broker.leasekit import lease, next_push
from tests.wire import Wire, connect

R = "lab/arm"

#: Keys of a holder entry in an audit record: the published entry plus ``peer``.
HOLDER_KEYS = {
    "lease_id",
    "resource",
    "mode",
    "token",
    "client",
    "name",
    "user",
    "host",
    "pid",
    "note",
    "since",
    "ttl",
    "peer",
}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def audit_log() -> Iterator[list[logging.LogRecord]]:
    """The records logged on ``roost.broker.audit`` during the test."""
    logger = logging.getLogger("roost.broker.audit")
    handler = _Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def peer_of(wire: Wire) -> str:
    """``host:port`` of the wire's own end, as the broker sees it."""
    address: Any = wire.stream.extra(SocketAttribute.local_address)
    return f"{address[0]}:{address[1]}"


@pytest.mark.anyio
async def test_audit_records_carry_peer_and_json_client_ids(
    tmp_path: Path, audit_log: list[logging.LogRecord]
) -> None:
    """Grant, take and return write JSON lines whose holder entries name the peer address and
    the decoded client id (bin as hex); the log lines match and have no trailing space."""
    path = tmp_path / "audit.jsonl"
    async with (
        Broker(port=0, audit_file=str(path)) as broker,
        await connect(broker.port, timeout=5, client_id=b"\x01\xab") as a,
        await connect(broker.port, timeout=5, client_id="bee") as b,
    ):
        with anyio.fail_after(10):
            got = await lease(a, m.LeaseAcquire, resource=R, name="alice", note="calibration")
            assert got.status == "OK"
            taken = await lease(b, m.LeaseTake, resource=R, reason="arm stuck")
            assert taken.status == "OK"
            cls, body = await next_push(a)
            assert cls is m.LeaseRevoked and body["reason"] == "taken"
            done = await lease(b, m.LeaseReturn, token=taken["lease"]["token"])
            assert done.status == "OK"
            peers = {"a": peer_of(a), "b": peer_of(b)}
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["event"], r.get("reason")) for r in records] == [
        ("granted", None),
        ("taken", "arm stuck"),
        ("ended", "returned"),
    ]
    granted, take, ended = records
    assert set(granted) == {"event", "resource", "token", "holder", "mono", "wall"}
    assert set(granted["holder"]) == HOLDER_KEYS
    assert granted["holder"]["client"] == "01ab"
    assert granted["holder"]["peer"] == peers["a"]
    assert granted["holder"]["name"] == "alice" and granted["holder"]["note"] == "calibration"
    assert granted["token"] == got["lease"]["token"]
    assert set(take) == {"event", "resource", "reason", "by", "token", "displaced", "mono", "wall"}
    assert take["by"]["client"] == "bee" and take["by"]["peer"] == peers["b"]
    assert [(d["client"], d["peer"]) for d in take["displaced"]] == [("01ab", peers["a"])]
    assert ended["holder"]["client"] == "bee" and ended["holder"]["peer"] == peers["b"]
    assert all(
        r["wall"] - r["mono"] == pytest.approx(records[0]["wall"] - records[0]["mono"])
        for r in records
    )
    messages = [r.getMessage() for r in audit_log]
    assert messages == [
        "lease granted lab/arm",
        "lease taken lab/arm arm stuck",
        "lease ended lab/arm returned",
    ]
    assert [vars(r)["audit"] for r in audit_log] == records


def test_json_safe_writes_standard_json() -> None:
    """Bin as hex, non-finite floats as text, odd map keys as JSON text; the rest unchanged."""
    value: dict[str, Any] = {
        "bin": b"\x00\xff",
        "nums": (1, 2.5, math.inf, -math.inf, math.nan),
        "map": {1: "one", b"\x02": "two", None: "nil", "ok": [True, None]},
        "pairs": MapPairs([((1, 2), "array key")]),
    }
    safe = json_safe(value)
    assert safe == {
        "bin": "00ff",
        "nums": [1, 2.5, "inf", "-inf", "nan"],
        "map": {"1": "one", "02": "two", "null": "nil", "ok": [True, None]},
        "pairs": {"[1, 2]": "array key"},
    }
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe
