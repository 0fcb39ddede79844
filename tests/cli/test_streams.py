"""Streaming commands as subprocesses: values arrive live, and Ctrl-C (SIGINT) exits 0 cleanly."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import pytest

from roost.protocol.messages import Unknown
from tests.cli.conftest import WAIT, Peer, SpawnRoost


def test_observe_streams_changes_until_sigint(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """observe prints the current value, then each change; SIGINT exits 0 without a traceback."""
    handle = peer(peer.client.state_register, "/s/level")
    peer(handle.changed, 1)
    proc = spawn("observe", "/s/level", "-s", server)
    assert proc.line() == "1"
    peer(handle.changed, {"x": 2})
    assert proc.line() == '{"x": 2}'
    peer(handle.unknown)
    assert proc.line() == "unknown"
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait() == 0
    assert not any("Traceback" in line for line in proc.stderr_so_far())


def test_listen_count_json(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """listen --count 2 --json prints two {"path", "value"} lines and exits 0 by itself."""
    emitter = peer(peer.client.event_register, "/s/ev")
    proc = spawn("listen", "/s/ev", "-n", "2", "--json", "-v", "-s", server)
    proc.wait_stderr("listening to /s/ev")
    peer(emitter.emit, "a")
    peer(emitter.emit, [1, 2])
    assert json.loads(proc.line()) == {"path": "/s/ev", "value": "a"}
    assert json.loads(proc.line()) == {"path": "/s/ev", "value": [1, 2]}
    assert proc.wait() == 0


def test_listen_sigterm_exits_0(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """SIGTERM ends a listen as cleanly as SIGINT (exit 0)."""
    peer(peer.client.event_register, "/s/quiet")
    proc = spawn("listen", "/s/quiet", "-v", "-s", server)
    proc.wait_stderr("listening to /s/quiet")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_publish_until_sigint(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """publish sets values as lines arrive; SIGINT ends it with 0 and the state goes away."""
    seen: list[Any] = []
    changed = threading.Condition()

    def on_change(value: Any) -> None:
        with changed:
            seen.append(value)
            changed.notify_all()

    peer(peer.client.state_observe, "/s/pub", on_change)
    proc = spawn("publish", "/s/pub", "-v", "-s", server, stdin=True)
    proc.wait_stderr("publishing /s/pub")
    assert proc.proc.stdin is not None
    proc.proc.stdin.write("42\n")
    proc.proc.stdin.flush()
    with changed:
        assert changed.wait_for(lambda: 42 in seen, WAIT)
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait() == 0
    with changed:
        # The owner's connection closed, so the known state becomes unknown for observers.
        assert changed.wait_for(lambda: seen[-1] is Unknown, WAIT)
    assert seen == [42, Unknown]


def test_stream_unreachable_exits_3(spawn: SpawnRoost) -> None:
    """A stream that cannot connect exits 3, like any other command."""
    proc = spawn("observe", "/x", "-s", "127.0.0.1:1", "--timeout", "0.3")
    assert proc.wait() == 3
    assert any("cannot connect" in line for line in proc.stderr_so_far())


def test_streams_leave_nothing_unclosed(
    server: str, peer: Peer, spawn: SpawnRoost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ResourceWarning shown, publish (to EOF) and listen (to SIGINT) warn about nothing."""
    monkeypatch.setenv("PYTHONWARNINGS", "always::ResourceWarning")
    emitter = peer(peer.client.event_register, "/s/rw")
    listener = spawn("listen", "/s/rw", "-v", "-s", server)
    listener.wait_stderr("listening to /s/rw")
    peer(emitter.emit, 1)
    assert listener.line() == "1"
    publisher = spawn("publish", "/s/rwstate", "-s", server, stdin=True)
    assert publisher.proc.stdin is not None
    publisher.proc.stdin.write("1\n2\n")
    publisher.proc.stdin.close()
    assert publisher.wait() == 0
    listener.proc.send_signal(signal.SIGINT)
    assert listener.wait() == 0
    for proc in (listener, publisher):
        proc.close()  # joins the stderr reader, so every line is in
        assert [line for line in proc.stderr_so_far() if "Warning" in line] == []
