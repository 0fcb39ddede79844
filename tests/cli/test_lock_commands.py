"""Durable locks through the real command line and a real broker subprocess with a state dir:
the lock survives a restart, keys prove it at guarded nodes, the emergency key and the offline
admin clear unlock it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.client import SyncClient
from tests.brokerproc import BrokerProcess
from tests.cli.conftest import RunRoost


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    """Key files: the lock key, a wrong key, the emergency key."""
    out = {}
    for name, key in (("key", "hutch-key-7f3a"), ("wrong", "not-the-key"), ("emergency", "glass")):
        path = tmp_path / f"{name}.key"
        path.write_text(key + "\n")
        out[name] = str(path)
    return out


@pytest.fixture
def broker(tmp_path: Path, keys: dict[str, str]) -> Iterator[BrokerProcess]:
    """A broker subprocess with a state directory and an emergency key."""
    extra = ["--state-dir", str(tmp_path / "state"), "--emergency-key-file", keys["emergency"]]
    with BrokerProcess(extra) as proc:
        yield proc


def _owner(port: int) -> SyncClient:
    owner = SyncClient(server=f"127.0.0.1:{port}")
    owner.__enter__()
    owner.action_register("/re/queue/start", lambda: "started", lease="re/queue")
    return owner


def test_durable_lock_lifecycle(
    roost: RunRoost, broker: BrokerProcess, keys: dict[str, str], tmp_path: Path
) -> None:
    """Set, restart, still locked; guarded call with the key accepted, without refused; wrong
    key names user and note; session lease refused; emergency key unlocks; admin clear."""
    s = f"127.0.0.1:{broker.port}"
    first = roost(
        "lock", "set", "re", "--scope", "queue", "--key-file", keys["key"],
        "--note", "in the hutch", "-s", s, "--json",
    )  # fmt: skip
    assert first.code == 0, first.err
    uid = json.loads(first.out)["uid"]
    broker.restart()
    s = f"127.0.0.1:{broker.port}"
    info = roost("lock", "info", "re", "-s", s, "--json")
    assert info.code == 0, info.err
    got = json.loads(info.out)
    assert got["locked"] and got["scopes"] == ["queue"] and got["note"] == "in the hutch"
    assert got["uid"] == uid and got["emergency_key_set"] and got["durable"]
    owner = _owner(broker.port)
    try:
        plain = roost("call", "/re/queue/start", "-s", s)
        assert plain.code == 1 and "NO_LEASE (re/queue is held by roost lock" in plain.err
        keyed = roost("call", "--key-file", keys["key"], "/re/queue/start", "-s", s)
        assert (keyed.code, keyed.lines) == (0, ['"started"'])
        wrong = roost("call", "--key-file", keys["wrong"], "/re/queue/start", "-s", s)
        assert wrong.code == 1
        assert "INVALID_KEY" in wrong.err and "in the hutch" in wrong.err
        busy = roost("lease", "acquire", "re/queue", "-s", s)
        assert busy.code == 75 and "roost lock" in busy.err
        update = roost(
            "lock", "set", "re", "--scope", "queue", "--key-file", keys["key"],
            "--note", "back soon", "-s", s, "--json",
        )  # fmt: skip
        assert json.loads(update.out)["uid"] != uid
        refused = roost("lock", "clear", "re", "--key-file", keys["wrong"], "-s", s)
        assert refused.code == 1 and "back soon" in refused.err
        cleared = roost(
            "lock", "clear", "re", "--emergency", "--key-file", keys["emergency"], "-s", s
        )
        assert cleared.code == 0, cleared.err
        free = roost("call", "--lease", "re/queue", "/re/queue/start", "-s", s)
        assert (free.code, free.lines) == (0, ['"started"'])
        again = roost("lock", "set", "lamp", "--key-file", keys["key"], "-s", s)
        assert again.code == 0, again.err
    finally:
        owner.close()
    broker.stop()
    admin = roost("lock", "clear", "lamp", "--admin", "--state-dir", str(tmp_path / "state"))
    assert admin.code == 0, admin.err
    broker.records.clear()  # so that start() reads the new "listening on" line
    broker.start()
    s = f"127.0.0.1:{broker.port}"
    after = roost("lock", "info", "-s", s, "--json")
    assert (after.code, after.out, after.err) == (0, "", "")


def test_lock_without_state_dir_says_so(roost: RunRoost, server: str, tmp_path: Path) -> None:
    """Without a state directory the lock holds until the broker stops, and the CLI says so."""
    key = tmp_path / "k"
    key.write_text("k")
    result = roost("lock", "set", "lamp", "--key-file", str(key), "-s", server)
    assert result.code == 0
    assert "until the broker stops" in result.out
    assert roost("lock", "set", "lamp", "-s", server).code == 2
