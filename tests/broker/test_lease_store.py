"""Epoch and root persistence in the state directory (protocol.md E4, case L18)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from roost.broker.leases import store
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
    first.close()
    second = open_state(tmp_path, wall_ns=1)  # the wall clock stepped back
    assert second.epoch == 10_001
    assert second.roots.take() > max(used)
    second.close()
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


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"epoch": 18446744073709551616, "ceiling": 5}', "epoch"),
        (b'{"epoch": 1, "ceiling": 9223372036854775807}', "ceiling"),
        (b'{"epoch": 1, "ceiling": 1.5}', "ceiling"),
    ],
)
def test_numbers_out_of_range_stop_start(tmp_path: Path, content: bytes, field: str) -> None:
    """Numbers too large for a token stop start-up, naming the file and the field (before,
    2**64 passed the check and every grant then failed with OverflowError)."""
    (tmp_path / STATE_FILE).write_bytes(content)
    with pytest.raises(StateDirError) as caught:
        open_state(tmp_path, wall_ns=1)
    assert str(tmp_path / STATE_FILE) in str(caught.value)
    assert field in str(caught.value)


def test_second_broker_on_a_directory_is_refused(tmp_path: Path) -> None:
    """The directory is locked for the run: a second opener is refused with the holder's pid;
    after the first closes, it opens."""
    first = open_state(tmp_path, wall_ns=1)
    with pytest.raises(StateDirError, match=rf"in use by another broker \(pid {os.getpid()};"):
        open_state(tmp_path, wall_ns=1)
    first.close()
    second = open_state(tmp_path, wall_ns=1)
    assert second.epoch == 2
    second.close()


def _degraded(state: store.LeaseState) -> str | None:
    return state.degraded


def test_write_failures_degrade_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing write never stops a grant: roots go on rising from memory, the state says
    why it is degraded (once), and the next block that writes again clears it."""
    state = open_state(tmp_path, wall_ns=1)
    reports: list[str | None] = []
    state.on_degraded = reports.append

    def full(directory: Path, name: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_atomic", full)
    roots = [state.roots.take() for _ in range(3 * BLOCK)]
    assert roots == sorted(set(roots))
    assert state.degraded is not None and "No space left" in state.degraded
    assert len(reports) == 1
    monkeypatch.undo()
    roots += [state.roots.take() for _ in range(BLOCK)]  # crosses one block boundary
    assert roots == sorted(set(roots))
    assert reports[-1] is None
    assert _degraded(state) is None
    assert json.loads((tmp_path / STATE_FILE).read_text())["ceiling"] > max(roots)
    state.close()
