"""The example programs the how-tos use, run as real processes against a real broker."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from roost.client import SyncClient
from roost.errors import RemoteError
from tests.client.helpers import WAIT
from tests.conftest import BrokerThread

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def read_line(proc: subprocess.Popen[str], timeout: float = WAIT) -> str:
    """The next stdout line of ``proc``, failing after ``timeout`` seconds instead of hanging."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the example printed nothing in time"
    return proc.stdout.readline().rstrip("\n")


@contextmanager
def example(name: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``examples/<name>`` with ``args``; kill it if the test fails midway."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT)
        assert proc.stdout is not None
        proc.stdout.close()


def test_expose_device_and_observe_state(broker_thread: BrokerThread) -> None:
    """The lamp device answers actions and sets; the observer prints every power change."""
    server = broker_thread.address
    with example("expose_device.py", "--server", server) as device:
        assert read_line(device) == "ready"
        with (
            example("observe_state.py", "/lamp/power", "--server", server, "--count", "3") as obs,
            SyncClient(server=server) as client,
        ):
            assert read_line(obs) == "value False"
            assert client.action_call("/lamp/on") is True
            assert read_line(obs) == "value True"
            assert client.action_call("/lamp/off") is False
            assert read_line(obs) == "value False"
            assert obs.wait(timeout=WAIT) == 0
            assert client.set("/lamp/brightness", 40) == 40
            assert client.get("/lamp/brightness") == 40
            try:
                client.set("/lamp/brightness", 400)
            except RemoteError as exc:
                assert "0 to 100" in str(exc.value)
            else:
                raise AssertionError("an out-of-range brightness was accepted")
        device.send_signal(signal.SIGTERM)
        assert read_line(device) == "stopped"
        assert device.wait(timeout=WAIT) == 0


def test_hold_device_with_a_lease(broker_thread: BrokerThread) -> None:
    """With a guarded device, the example is refused without the lease and works with it."""
    server = broker_thread.address
    with example("expose_device.py", "--server", server, "--guard", "lamp") as device:
        assert read_line(device) == "ready"
        with example("hold_device.py", "--server", server) as holder:
            lines = [read_line(holder) for _ in range(4)]
            assert holder.wait(timeout=WAIT) == 0
        assert lines[0] == "without the lease: NO_LEASE"
        assert lines[1].startswith("holding lamp with token seq [")
        assert lines[2:] == ["brightness 30", "returned"]
        device.send_signal(signal.SIGTERM)
        assert device.wait(timeout=WAIT) == 0
