"""State directory faults at runtime: a failing write never drops a client or loses a waiter;
the broker reports itself degraded in /meta/broker."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from roost.broker.leases import install_leases, store
from roost.broker.leases.store import BLOCK
from roost.broker.leases.types import Push
from roost.protocol.values import unpack
from tests.broker.test_router import _router, _session


def test_grant_to_a_waiter_survives_a_failing_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The return that makes a grant need a new block of roots while the disk is full: the
    returner gets OK, the waiter gets ``lease_granted``, nobody is disconnected, and
    /meta/broker says ``degraded`` (before, the grant raised StateDirError mid-way: the returner
    was dropped and the waiter never heard anything)."""
    router, hooks = _router()
    layer = install_leases(router, wall_offset=0.0, wall_ns=1, now=0.0, state_dir=str(tmp_path))
    assert layer.state is not None
    a, b = _session(router), _session(router)
    a.opted_in = b.opted_in = True
    for session in (a, b):
        layer._join(session, 0.0)
    held, fx = layer.table.acquire(a, "r", 0.0)
    layer.apply(fx, 0.0)
    queued, fx = layer.table.acquire(b, "r", 0.0, wait=30.0)
    layer.apply(fx, 0.0)
    assert queued["status"] == "QUEUED"
    for _ in range(BLOCK - 1):  # the next root needs a new block, hence a write
        layer.state.roots.take()

    def full(directory: Path, name: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_atomic", full)
    reply, fx = layer.table.return_lease(a, held["lease"]["token"], 0.0)
    layer.apply(fx, 0.0)
    assert reply == {"status": "OK"}
    granted = [e for e in fx if isinstance(e, Push) and e.kind == "lease_granted"]
    assert [g.conn for g in granted] == [b]
    assert hooks.closed == []
    info = unpack(router.meta.broker_node.value or b"")
    assert "No space left" in info["degraded"]["lease_state"]
    layer.stop(0.0)
