"""``BrokerProcess``: a real ``roost serve`` in a subprocess, for fault and memory tests.

It runs ``python -m roost serve --port 0 --log-format json`` (plus any extra arguments), learns
the port from the ``listening on`` log line, and keeps reading the JSON log lines in a thread
(so the broker never blocks on a full pipe) for tests to inspect::

    with BrokerProcess() as proc:
        ...connect to proc.port...
        proc.wait_for_log(lambda r: r.get("reason") == "slow_consumer")
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

__all__ = ("BrokerProcess", "free_port")


def free_port() -> int:
    """A loopback TCP port that is free now and below the kernel's ephemeral range, so that a
    broker binding port 0 for its native listener can never be handed the same one (a port
    probed with port 0 would be free again at once, and the next bind to 0 may get it)."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for port in random.sample(range(max(1024, low - 12000), low), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


Record = dict[str, Any]


class BrokerProcess:
    """A broker subprocess on 127.0.0.1.

    Args:
        extra: more command-line arguments for ``roost serve``.
        start_timeout: seconds to wait for the ``listening`` line.
        nofile: the broker's open file limit (``RLIMIT_NOFILE`` soft limit), to reach it soon.
    """

    def __init__(
        self, extra: Sequence[str] = (), start_timeout: float = 20.0, nofile: int | None = None
    ) -> None:
        self.extra = list(extra)
        #: The broker's open file limit (``RLIMIT_NOFILE``), when given.
        self.nofile = nofile
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.records: list[Record] = []
        self.raw_lines: list[str] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, port: int = 0) -> None:
        """Start the subprocess and wait until it listens.

        Raises:
            RuntimeError: it exited or did not log ``listening`` in time.
        """
        cmd = [sys.executable, "-m", "roost", "serve", "--port", str(port)]
        if self.nofile is not None:
            # Lowered in the child itself, before the broker starts.
            lower = (
                "import resource, runpy, sys; "
                f"resource.setrlimit(resource.RLIMIT_NOFILE, ({self.nofile}, "
                "resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
                "sys.argv = ['roost', *sys.argv[1:]]; "
                "runpy.run_module('roost', run_name='__main__')"
            )
            cmd[1:3] = ["-c", lower]
        cmd += ["--log-format", "json", *self.extra]
        if "--http-port" not in self.extra:
            cmd += ["--http-port", "0"]  # no gateway unless asked for: never 11237 in tests
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        record = self.wait_for_log(
            lambda r: str(r.get("msg", "")).startswith("listening on"), self.start_timeout
        )
        self.port = int(record["port"])

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            text = line.decode("utf-8", "replace").rstrip("\n")
            try:
                record = json.loads(text)
            except ValueError:
                record = {"msg": text, "raw": True}
            if not isinstance(record, dict):
                record = {"msg": text, "raw": True}
            with self._cond:
                self.raw_lines.append(text)
                self.records.append(record)
                self._cond.notify_all()
        proc.stderr.close()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        """The subprocess id."""
        assert self.proc is not None
        return self.proc.pid

    def wait_for_log(self, predicate: Callable[[Record], bool], timeout: float = 10.0) -> Record:
        """Wait for a log record matching ``predicate`` (already logged ones count).

        Raises:
            RuntimeError: the process exited or nothing matched in ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for record in self.records[seen:]:
                    if predicate(record):
                        return record
                seen = len(self.records)
                left = deadline - time.monotonic()
                exited = self.proc is None or self.proc.poll() is not None
                if left <= 0 or (exited and not (self._reader and self._reader.is_alive())):
                    tail = "\n".join(self.raw_lines[-20:])
                    raise RuntimeError(f"no matching broker log line; last lines:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def kill(self) -> None:
        """SIGKILL the broker and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the broker and wait for it; return its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=timeout)
        return code

    def pause(self) -> None:
        """SIGSTOP the broker (its sockets stay open, nothing is answered)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused broker."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop (SIGTERM) and start again on the same port."""
        port = self.port
        self.stop()
        self.records.clear()
        self.raw_lines.clear()
        deadline = time.monotonic() + self.start_timeout
        while True:  # the old socket may linger for a moment after exit
            try:
                self.start(port)
                return
            except RuntimeError:
                self.kill()
                if time.monotonic() > deadline:
                    raise

    def peak_rss_kib(self) -> int:
        """The broker's peak resident set size so far (``VmHWM``, what its ``getrusage``
        reports as ``ru_maxrss``), in KiB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("VmHWM not found")

    def rss_kib(self) -> int:
        """The broker's current resident set size (``VmRSS``), in KiB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("VmRSS not found")

    # -- context manager -----------------------------------------------------------------------

    def __enter__(self) -> BrokerProcess:
        try:
            self.start()
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
        finally:
            self.kill()
