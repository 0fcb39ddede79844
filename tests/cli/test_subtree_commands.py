"""``roost observe`` and ``roost listen`` with a pattern: every matching path, one line each."""

from __future__ import annotations

import json

from tests.cli.conftest import Peer, RunRoost, SpawnRoost


def test_observe_pattern_snapshot_then_changes(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    kitchen = peer(peer.client.state_register, "/house/kitchen/temp")
    peer(kitchen.changed, 21.5)
    proc = spawn("observe", "/house/**", "-v", "-s", server)
    assert proc.line() == "/house/kitchen/temp 21.5"
    proc.wait_stderr("observing /house/**")
    hall = peer(peer.client.state_register, "/house/hall/temp")
    peer(hall.changed, "cold")
    assert proc.line() == '/house/hall/temp "cold"'
    peer(kitchen.unknown)
    assert proc.line() == "/house/kitchen/temp unknown"
    proc.proc.terminate()
    assert proc.wait() == 0


def test_listen_pattern_json_count(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    proc = spawn("listen", "/house/+/bell", "--json", "-n", "2", "-v", "-s", server)
    proc.wait_stderr("listening to /house/+/bell")
    front = peer(peer.client.event_register, "/house/front/bell")
    back = peer(peer.client.event_register, "/house/back/bell")
    peer(peer.client.event_register, "/house/front/door/bell")
    peer(front.emit, 1)
    peer(peer.client.event_emit, "/house/front/door/bell", "not matched")
    peer(back.emit, [2])
    assert json.loads(proc.line()) == {"path": "/house/front/bell", "value": 1}
    assert json.loads(proc.line()) == {"path": "/house/back/bell", "value": [2]}
    assert proc.wait() == 0


def test_observe_pattern_json(server: str, peer: Peer, roost: RunRoost) -> None:
    state = peer(peer.client.state_register, "/j/a")
    peer(state.changed, {"on": True})
    result = roost("observe", "/j/**", "--json", "-n", "1", "-s", server)
    assert result.code == 0
    assert json.loads(result.out) == {"path": "/j/a", "known": True, "value": {"on": True}}


def test_mqtt_hash_gets_a_hint(server: str, roost: RunRoost) -> None:
    for command in ("listen", "observe"):
        result = roost(command, "/house/#", "-s", server)
        assert result.code == 2
        assert "use /house/** (any depth)" in result.err
        assert result.out == ""


def test_bad_pattern_is_a_remote_error(server: str, roost: RunRoost) -> None:
    result = roost("listen", "/a/**/b", "-s", server)
    assert result.code == 1
    assert "invalid_pattern" in result.err
    assert "** may only be the last segment" in result.err
