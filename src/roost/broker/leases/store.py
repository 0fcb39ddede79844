"""The lease epoch and the root high-water mark, kept in an optional state directory.

Rules of this module:

- The only lease module that touches the file system: once at start-up (``open_state``) and
  once per block of roots (``RootCounter`` calls ``reserve`` every ``BLOCK`` grants).
- Every write is atomic and durable: temp file, fsync, rename, fsync of the directory. A crash
  leaves either the old file or the new one, never a torn one.
- An unreadable or corrupt file stops start-up (``StateDirError``): guessing could reuse an
  epoch or a root, which would let old tokens pass as new.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from roost.broker.leases.types import RootCounter
from roost.errors import RoostError

__all__ = ("BLOCK", "STATE_FILE", "LeaseState", "StateDirError", "open_state")

#: Roots reserved per durable write.
BLOCK: Final = 1000
#: The file in the state directory.
STATE_FILE: Final = "leases.state.json"


class StateDirError(RoostError):
    """The state directory cannot be used (unreadable, corrupt, or not writable)."""


def _write_atomic(directory: Path, name: str, data: bytes) -> None:
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / name)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class LeaseState:
    """The persisted ``{epoch, ceiling}`` of one state directory.

    Use :func:`open_state`; ``epoch`` is this run's epoch and ``roots`` the counter to give the
    lease table (it persists each new ceiling before using roots below it).
    """

    def __init__(self, directory: Path, epoch: int, first_root: int) -> None:
        self.directory = directory
        self.epoch = epoch
        self.roots = RootCounter(
            first_root, ceiling=first_root + BLOCK, reserve=self._reserve, block=BLOCK
        )

    def _reserve(self, ceiling: int) -> None:
        self._write(ceiling)

    def _write(self, ceiling: int) -> None:
        data = json.dumps({"epoch": self.epoch, "ceiling": ceiling}).encode()
        try:
            _write_atomic(self.directory, STATE_FILE, data)
        except OSError as exc:
            raise StateDirError(f"cannot write {self.directory / STATE_FILE}: {exc}") from exc


def _read(path: Path) -> tuple[int, int] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateDirError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(raw)
        epoch, ceiling = data["epoch"], data["ceiling"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StateDirError(f"corrupt lease state in {path}: {exc}") from exc
    for value in (epoch, ceiling):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StateDirError(f"corrupt lease state in {path}: bad numbers")
    return epoch, ceiling


def open_state(directory: str | os.PathLike[str], wall_ns: int) -> LeaseState:
    """Start a run from ``directory`` (created if missing): epoch ``max(previous + 1,
    wall_ns)``, roots from the previous ceiling (so they keep rising across restarts); the new
    epoch and ceiling are durably written before this returns.

    Raises:
        StateDirError: the directory or its file cannot be read, parsed or written.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {path}: {exc}") from exc
    previous = _read(path / STATE_FILE)
    if previous is None:
        epoch, first_root = wall_ns, 1
    else:
        epoch, first_root = max(previous[0] + 1, wall_ns), max(previous[1], 1)
    state = LeaseState(path, epoch, first_root)
    state._write(first_root + BLOCK)
    return state
