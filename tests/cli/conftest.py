"""Fixtures for the command line tests: a broker, a peer client, and ways to run ``roost``.

- ``server``: the address of a fresh broker (``broker_thread`` from tests/conftest.py).
- ``peer``: a real client on its own event loop thread (an anyio blocking portal), so a test
  can own actions and states while ``roost`` runs in the test's own thread.
- ``roost``: runs ``main([...])`` in process and returns the exit code and captured output.
- ``spawn``: runs ``python -m roost ...`` as a subprocess, for signals and stdin.
"""

from __future__ import annotations

import functools
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from roost.cli import main
from roost.client import Client
from tests.conftest import BrokerThread

#: Generous bound for anything a test waits on; a healthy run takes milliseconds.
WAIT = 10.0


@pytest.fixture
def server(broker_thread: BrokerThread) -> str:
    """``127.0.0.1:PORT`` of a fresh broker."""
    return broker_thread.address


@dataclass
class Peer:
    """A connected client driven from synchronous test code through a blocking portal."""

    portal: BlockingPortal
    client: Client

    def __call__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``await func(*args, **kwargs)`` on the peer's loop and return the result."""
        return self.portal.call(functools.partial(func, *args, **kwargs))


@pytest.fixture
def peer(server: str) -> Iterator[Peer]:
    """A client connected to ``server``, owning whatever the test registers."""
    with start_blocking_portal("asyncio") as portal:
        cm = portal.wrap_async_context_manager(Client(server=server))
        with cm as client:
            yield Peer(portal, client)


@dataclass
class Result:
    """What one in-process ``roost`` run printed and returned."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """stdout split into lines."""
        return self.out.splitlines()


RunRoost = Callable[..., Result]


@pytest.fixture
def roost(capsys: pytest.CaptureFixture[str]) -> RunRoost:
    """Run ``roost ARGS`` in process: ``roost("get", "/x")`` returns a :class:`Result`."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


class Spawned:
    """A ``python -m roost`` subprocess whose stdout and stderr lines are read in threads."""

    def __init__(self, args: Sequence[str], stdin: bool = False) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roost", *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_lines: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Any, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    def line(self, timeout: float = WAIT) -> str:
        """The next stdout line; fails the test if none comes in time."""
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output within {timeout} s; stderr: {self.stderr_so_far()}")

    def wait_stderr(self, needle: str, timeout: float = WAIT) -> str:
        """Wait for a stderr line containing ``needle`` (``-v`` readiness notes)."""
        while True:
            try:
                text = self.err.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no stderr line with {needle!r}; stderr: {self.err_lines}")
            self.err_lines.append(text)
            if needle in text:
                return text

    def stderr_so_far(self) -> list[str]:
        """Every stderr line read so far."""
        while not self.err.empty():
            self.err_lines.append(self.err.get_nowait())
        return self.err_lines

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the exit code."""
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """SIGKILL it if it still runs, then close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        for pump in self._pumps:
            pump.join(timeout=WAIT)  # the pipes reach EOF once the process is gone
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


SpawnRoost = Callable[..., Spawned]


@pytest.fixture
def spawn() -> Iterator[SpawnRoost]:
    """Start ``python -m roost ARGS`` subprocesses; every one is killed at teardown."""
    started: list[Spawned] = []

    def start(*args: str, stdin: bool = False) -> Spawned:
        proc = Spawned(args, stdin=stdin)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()
