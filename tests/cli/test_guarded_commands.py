"""``roost call`` and ``roost set`` on guarded nodes: the token ``lease hold`` exports, and
``--lease RES``; all through the real command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.cli.conftest import Peer, RunRoost, SpawnRoost

#: The installed ``roost`` script, as a user's shell would find it.
ROOST = str(Path(sys.executable).parent / "roost")


def _lamp(peer: Peer) -> list[Any]:
    """A lamp whose action and prop are guarded by the resource ``lamp``; returns what it saw."""
    seen: list[Any] = []

    def on(token: Any = None) -> str:
        seen.append(token)
        return "on"

    peer(peer.client.action_register, "/lamp/on", on, lease="lamp")
    peer(peer.client.prop_register, "/lamp/level", lambda: 0, seen.append, lease="lamp")
    return seen


def test_hold_then_call_uses_the_exported_token(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """`roost lease hold lamp -- roost call /lamp/on` works on a guarded action: the child's
    call carries the holder's token."""
    seen = _lamp(peer)
    proc = spawn(
        "lease", "hold", "lamp", "-s", server, "--", ROOST, "call", "/lamp/on", "-s", server
    )
    assert proc.line() == '"on"'
    assert proc.wait() == 0
    (token,) = seen
    assert token["resource"] == "lamp"
    setter = spawn(
        "lease", "hold", "lamp", "-s", server, "--", ROOST, "set", "/lamp/level", "7", "-s", server
    )
    assert setter.wait() == 0
    assert seen[-1] == 7


def test_call_without_lease_names_the_holder(roost: RunRoost, server: str, peer: Peer) -> None:
    """Without a lease the call is refused; --lease holds it for the one call; while someone
    else holds it, --lease is refused naming them."""
    _lamp(peer)
    refused = roost("call", "/lamp/on", "-s", server)
    assert refused.code == 1 and refused.err.strip() == "roost: NO_LEASE"
    held = roost("call", "--lease", "lamp", "/lamp/on", "-s", server)
    assert (held.code, held.lines) == (0, ['"on"'])
    assert roost("set", "--lease", "lamp", "/lamp/level", "3", "-s", server).code == 0
    other = peer(peer.client.lease_acquire, "lamp", note="repainting", name="painter")
    busy = roost("call", "--lease", "lamp", "/lamp/on", "-s", server)
    assert busy.code == 1 and "painter" in busy.err and 'note "repainting"' in busy.err
    plain = roost("call", "/lamp/on", "-s", server)
    assert "NO_LEASE (lamp is held by painter" in plain.err
    peer(other.return_lease)


def test_bad_exported_token_is_a_usage_error(
    roost: RunRoost, server: str, monkeypatch: Any
) -> None:
    """A ROOST_LEASE_TOKEN that is not a JSON object is exit 2, said in words."""
    monkeypatch.setenv("ROOST_LEASE_TOKEN", "not json")
    result = roost("call", "/lamp/on", "-s", server)
    assert result.code == 2 and "ROOST_LEASE_TOKEN" in result.err
