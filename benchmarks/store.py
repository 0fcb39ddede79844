"""Stored values: acknowledged sets per second, with fsync on and off.

A ``roost serve --store`` subprocess keeps its store in a temporary directory under the
repository (on its disk, which is what the figures describe; the table names the filesystem).
One client sets values and waits for each acknowledgement (one set in flight), then keeps 64
sets in flight, so that the broker can gather them into batches: one file write (and fsync) per
batch.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Table, format_rate
from benchmarks.processes import ROOT
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value

__all__ = ("run",)


def _filesystem(path: Path) -> str:
    """The filesystem type holding ``path`` (from /proc/mounts; ``?`` if unknown)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="ascii") as mounts:
            for line in mounts:
                fields = line.split()
                mount = fields[1]
                if str(path).startswith(mount) and len(mount) > len(best):
                    best, kind = mount, fields[2]
    except OSError:
        pass
    return kind


def _start(state_dir: str, fsync: bool) -> tuple[subprocess.Popen[bytes], int]:
    flag = "--store-fsync" if fsync else "--no-store-fsync"
    args = ["serve", "--port", "0", "--log-format", "json"]
    args += ["--state-dir", state_dir, "--store", "/bench/**", flag]
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        record = json.loads(line)
        if str(record.get("msg", "")).startswith("listening on"):
            return proc, int(record["port"])
    raise RuntimeError("the broker did not start")


def _sets(port: int, window: int, duration: float) -> float:
    """Acknowledged sets per second with ``window`` sets in flight."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    decoder = FrameDecoder()
    sock.sendall(codec.encode(m.Hello(1, 30)))

    def read(count: int) -> None:
        got = 0
        while got < count:
            got += len(decoder.feed(sock.recv(65536)))

    read(1)
    value = Value.of({"setpoint": 21.5, "mode": "auto"})
    frames = [codec.encode(m.Set(i, f"/bench/k{i % 16}", value)) for i in range(window)]
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < duration:
        sock.sendall(b"".join(frames))
        read(window)
        done += window
    sock.close()
    return done / elapsed


def run(quick: bool = False) -> None:
    """Print acknowledged stored sets per second, fsync on and off."""
    duration = 0.5 if quick else 2.0
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-store-") as state_dir:
        kind = _filesystem(Path(state_dir).resolve())
        table = Table(
            f"stored sets (acknowledged after the write; state dir on {kind})",
            ["fsync", "in flight", "sets/s", "per set ms"],
        )
        for fsync in (True, False):
            proc, port = _start(state_dir, fsync)
            try:
                for window in (1, 64):
                    rate = _sets(port, window, duration)
                    table.add(
                        "on" if fsync else "off", window, format_rate(rate), f"{1e3 / rate:.3f}"
                    )
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        table.print()
