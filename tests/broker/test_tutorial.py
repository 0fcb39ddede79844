"""The first tutorial's example programs run as written against a real broker."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import BrokerThread

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial"


def test_tutorial_programs(broker_thread: BrokerThread) -> None:
    """kitchen.py serves toggle and light; remote.py sees False, True, False."""
    env = dict(os.environ, ROOST_SERVER=broker_thread.address, PYTHONUNBUFFERED="1")
    kitchen = subprocess.Popen(
        [sys.executable, str(TUTORIAL / "kitchen.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert kitchen.stdout is not None
        ready, _, _ = select.select([kitchen.stdout], [], [], 20)
        assert ready, "kitchen.py did not start"
        assert kitchen.stdout.readline() == b"kitchen ready\n"
        remote = subprocess.run(
            [sys.executable, str(TUTORIAL / "remote.py")],
            capture_output=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert remote.returncode == 0, remote.stderr.decode()
        assert remote.stdout.decode().splitlines() == [
            "light is False",
            "toggle returned True",
            "light is True",
            "toggle returned False",
            "light is False",
        ]
        # SIGTERM, which a program always gets (a background job ignores SIGINT).
        kitchen.send_signal(signal.SIGTERM)
        assert kitchen.wait(timeout=10) == 0
    finally:
        kitchen.kill()
        kitchen.wait()
        for pipe in (kitchen.stdout, kitchen.stderr):
            if pipe is not None:
                pipe.close()
