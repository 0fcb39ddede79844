"""Epoch and root persistence in the state directory (protocol.md E4, case L18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roost.broker.leases.store import BLOCK, STATE_FILE, StateDirError, open_state
from roost.broker.leases.types import RootCounter


def test_first_start_uses_wall_time_and_writes_file(tmp_path: Path) -> None:
    """A fresh directory: epoch = wall time, roots from 1, ceiling written before use."""
    state = open_state(tmp_path / "s", wall_ns=5_000)
    assert state.epoch == 5_000 and state.roots.peek == 1
    data = json.loads((tmp_path / "s" / STATE_FILE).read_text())
    assert data == {"epoch": 5_000, "ceiling": 1 + BLOCK}


def test_restart_increases_epoch_and_roots(tmp_path: Path) -> None:
    """Case L18: each start has a larger epoch (even if the clock went back); roots keep rising."""
    first = open_state(tmp_path, wall_ns=10_000)
    used = [first.roots.take() for _ in range(BLOCK + 5)]
    second = open_state(tmp_path, wall_ns=1)  # the wall clock stepped back
    assert second.epoch == 10_001
    assert second.roots.take() > max(used)
    third = open_state(tmp_path, wall_ns=99_999)
    assert third.epoch == 99_999


def test_ceiling_is_persisted_before_roots_above_it(tmp_path: Path) -> None:
    """Crossing a block reserves the next one durably first."""
    state = open_state(tmp_path, wall_ns=1)
    for _ in range(BLOCK):
        state.roots.take()
    assert json.loads((tmp_path / STATE_FILE).read_text())["ceiling"] == 1 + BLOCK
    root = state.roots.take()
    assert root == 1 + BLOCK
    assert json.loads((tmp_path / STATE_FILE).read_text())["ceiling"] == root + BLOCK
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"epoch": 1}',
        b'{"epoch": -1, "ceiling": 5}',
        b'{"epoch": "1", "ceiling": 5}',
    ],
)
def test_corrupt_file_stops_start(tmp_path: Path, content: bytes) -> None:
    """An unreadable or corrupt state file raises StateDirError instead of guessing."""
    (tmp_path / STATE_FILE).write_bytes(content)
    with pytest.raises(StateDirError, match="corrupt"):
        open_state(tmp_path, wall_ns=1)


def test_unusable_directory(tmp_path: Path) -> None:
    """A state dir that is a file cannot be used."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateDirError):
        open_state(blocker, wall_ns=1)


def test_root_counter_without_store() -> None:
    """The default counter counts from its first value and never asks to reserve."""
    calls: list[int] = []
    plain = RootCounter(7)
    assert [plain.take() for _ in range(3)] == [7, 8, 9]
    bounded = RootCounter(1, ceiling=3, reserve=calls.append, block=10)
    assert [bounded.take() for _ in range(4)] == [1, 2, 3, 4]
    assert calls == [13]
