"""The lease epoch and the root high-water mark, kept in an optional state directory.

Rules of this module:

- The only lease module that touches the file system: once at start-up (``open_state``) and
  once per block of roots (``RootCounter`` calls ``reserve`` every ``BLOCK`` grants).
- One broker per directory: ``open_state`` takes an exclusive ``flock`` on ``lock`` (which holds
  the owner's pid) for the life of the run; a second broker is refused, naming that pid.
- Every write is atomic and durable: temp file, fsync, rename, fsync of the directory. A crash
  leaves either the old file or the new one, never a torn one.
- An unreadable or corrupt file, or a number out of range, stops start-up (``StateDirError``
  naming the file and the field): guessing could reuse an epoch or a root, which would let old
  tokens pass as new.
- The epoch is reserved ahead: it is durably written before the broker serves, so every later
  run starts from a larger one. A write failing after that (disk full, directory removed,
  read-only) never stops a grant: roots go on from memory (safe, since every token of this run
  carries this run's epoch), the state reports itself degraded (``on_degraded``, a log line at
  most once a minute) and the next block boundary writes again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Final

from roost.broker.leases.types import RootCounter
from roost.errors import RoostError

__all__ = (
    "BLOCK",
    "LOCK_FILE",
    "MAX_NUMBER",
    "STATE_FILE",
    "LeaseState",
    "StateDirError",
    "open_state",
)

#: Roots reserved per durable write.
BLOCK: Final = 1000
#: The file in the state directory.
STATE_FILE: Final = "leases.state.json"
#: The lock file: locked (``flock``) by the broker using the directory, holding its pid.
LOCK_FILE: Final = "lock"
#: The largest epoch or ceiling accepted (tokens carry them as 64-bit integers, with room left
#: for the epoch to grow).
MAX_NUMBER: Final = 2**63 - 1
#: Seconds between two log lines about the same failing write.
_LOG_EVERY: Final = 60.0

log = logging.getLogger("roost.broker.leases")


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

    def __init__(
        self, directory: Path, epoch: int, first_root: int, lock: int | None = None
    ) -> None:
        self.directory = directory
        self.epoch = epoch
        self.roots = RootCounter(
            first_root, ceiling=first_root + BLOCK, reserve=self._reserve, block=BLOCK
        )
        # The lock's descriptor: closed by close(), or when the state is collected.
        self._unlock = weakref.finalize(self, os.close, lock) if lock is not None else None
        #: Why the last write failed, or ``None`` while writes succeed.
        self.degraded: str | None = None
        #: Called with the problem when writes start failing, and with ``None`` once one works.
        self.on_degraded: Callable[[str | None], None] | None = None
        self._logged = float("-inf")

    def _reserve(self, ceiling: int) -> None:
        """Persist the next ceiling; a failure is reported, never raised (see the module)."""
        try:
            self._write(ceiling)
        except StateDirError as exc:
            now = time.monotonic()
            if now - self._logged >= _LOG_EVERY:
                self._logged = now
                log.error("lease state not saved, going on from memory (degraded): %s", exc)
            if self.degraded is None and self.on_degraded is not None:
                self.on_degraded(str(exc))
            self.degraded = str(exc)
            return
        if self.degraded is not None:
            self.degraded = None
            self._logged = float("-inf")
            log.warning("lease state saved again in %s", self.directory)
            if self.on_degraded is not None:
                self.on_degraded(None)

    def close(self) -> None:
        """Release the directory's lock (the end of the run); idempotent."""
        if self._unlock is not None:
            self._unlock()

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
    for field, value in (("epoch", epoch), ("ceiling", ceiling)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise StateDirError(f"corrupt lease state in {path}: {field} is not an integer")
        if not 0 <= value < MAX_NUMBER:
            raise StateDirError(
                f"corrupt lease state in {path}: {field} {value} is out of range "
                f"(0 to {MAX_NUMBER - 1})"
            )
    return epoch, ceiling


def _lock(directory: Path) -> int:
    """Lock the directory for this process (the descriptor holding the lock), or say who
    holds it."""
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StateDirError(f"cannot open lock file {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StateDirError(
            f"state directory {directory} is in use by another broker (pid {holder}; "
            f"lock file {path})"
        ) from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise StateDirError(f"cannot write lock file {path}: {exc}") from exc
    return fd


def open_state(directory: str | os.PathLike[str], wall_ns: int) -> LeaseState:
    """Start a run from ``directory`` (created if missing): epoch ``max(previous + 1,
    wall_ns)``, roots from the previous ceiling (so they keep rising across restarts); the new
    epoch and ceiling are durably written before this returns.

    Raises:
        StateDirError: the directory or its file cannot be read, parsed or written, a number
            in it is out of range, or another broker holds the directory's lock.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {path}: {exc}") from exc
    lock = _lock(path)
    state: LeaseState | None = None
    try:
        previous = _read(path / STATE_FILE)
        if previous is None:
            epoch, first_root = wall_ns, 1
        else:
            epoch, first_root = max(previous[0] + 1, wall_ns), max(previous[1], 1)
        if epoch >= MAX_NUMBER or first_root + BLOCK >= MAX_NUMBER:
            raise StateDirError(f"lease state in {path / STATE_FILE}: epoch or roots exhausted")
        state = LeaseState(path, epoch, first_root, lock)
        state._write(first_root + BLOCK)  # the epoch is reserved before anything is served
    except BaseException:
        if state is not None:
            state.close()  # closes the lock's descriptor, once
        else:
            os.close(lock)
        raise
    return state
