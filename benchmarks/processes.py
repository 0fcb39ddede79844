"""The benchmark's server processes: start, measure and stop a broker or relay subprocess.

Rules of this module:

- A server process prints its port as its first stdout line and serves until stdin closes; a
  broker then prints a :class:`GcWatch` report.
- Measurements of a server process read ``/proc`` (Linux), never the server's own code paths.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ("ROOT", "GcWatch", "OtherLoad", "Server", "gc_report")

ROOT = Path(__file__).resolve().parent.parent


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- server processes ---------------------------------------------------------------------------


class Server:
    """A broker or relay subprocess on loopback; ``port`` is read from its first stdout line."""

    def __init__(self, module: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def rss_kib(self) -> int:
        """Current resident set size of the server process, in KiB."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> str:
        """Stop the process (stdin EOF, then a kill if it lingers); return what it printed
        after its port line."""
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode("ascii", "replace")


class GcWatch:
    """Counts the broker process's cyclic collections and their pauses, from ``start`` on."""

    def __init__(self) -> None:
        self.count = 0
        self.longest = 0.0
        self.total = 0.0
        self._began = 0.0

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        """Forget what was counted so far."""
        self.count = 0
        self.longest = self.total = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = time.perf_counter() - self._began
        self.count += 1
        self.total += pause
        self.longest = max(self.longest, pause)

    def report(self) -> str:
        """``gc COUNT LONGEST_MS TOTAL_MS``."""
        return f"gc {self.count} {self.longest * 1000:.3f} {self.total * 1000:.3f}"


def gc_report(text: str) -> tuple[int, float]:
    """Collections and longest pause (ms) from a broker process's closing output."""
    for line in text.splitlines():
        if line.startswith("gc "):
            _, count, longest, _total = line.split()
            return int(count), float(longest)
    return 0, float("nan")


def _serve(loop: str, tune_gc: bool = True) -> None:
    """Entry point of the broker process: serve on port 0 on the ``loop`` kind of event loop,
    print the port, stop at stdin EOF and print a :class:`GcWatch` report. ``tune_gc`` False
    leaves the garbage collector at CPython's defaults (the "before" row of the latency
    comparison)."""
    from roost.broker import Broker
    from roost.broker.run import loop_factory, settle_gc

    _raise_nofile()
    logging.disable(logging.CRITICAL)

    watch = GcWatch()

    async def main() -> None:
        async with Broker(port=0) as broker:
            if tune_gc:
                settle_gc()  # as ``roost serve`` does
            watch.start()
            print(broker.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            print(watch.report(), flush=True)

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main())


def _loops() -> list[str]:
    """The event loops to measure: asyncio's own, and uvloop when installed."""
    return ["asyncio"] if importlib.util.find_spec("uvloop") is None else ["asyncio", "uvloop"]


def _machine_busy() -> float:
    """CPU seconds all processes on the machine have used so far (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Cores that processes other than the server and this one kept busy over an interval.

    A latency figure means little when other work competes for the cores: a woken server then
    waits for a scheduler tick (4 ms at the common 250 Hz) before it runs again.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        own = os.times()
        return time.perf_counter(), _machine_busy(), self.server.cpu_seconds(), own[0] + own[1]

    def cores(self) -> float:
        """The average number of cores others used since construction."""
        end = self._sample()
        wall, busy, server, own = (b - a for a, b in zip(self.start, end, strict=True))
        return max(0.0, busy - server - own) / max(wall, 1e-3)
