"""The README tour and the tutorial's failure path run as printed, against a real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from roost.cli import main
from roost.client import SyncClient, Unknown
from tests.client.helpers import WAIT
from tests.conftest import BrokerThread

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(markdown: Path) -> list[str]:
    """The fenced ``python`` blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.DOTALL)


def test_readme_tour(
    broker_thread: BrokerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's owner and caller programs and its shell commands behave as described."""
    owner_code, caller_code = python_blocks(ROOT / "README.md")
    env = dict(os.environ, ROOST_SERVER=broker_thread.address, PYTHONUNBUFFERED="1")
    (tmp_path / "owner.py").write_text(owner_code)
    (tmp_path / "caller.py").write_text(caller_code)
    owner = subprocess.Popen(
        [sys.executable, str(tmp_path / "owner.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with (
            SyncClient(server=broker_thread.address) as client,
            client.state_observe_iter("/kitchen/light") as values,
        ):
            first = values.get(timeout=WAIT)
            if first is Unknown:  # observed before the owner published
                first = values.get(timeout=WAIT)
            assert first is False
        caller = subprocess.run(
            [sys.executable, str(tmp_path / "caller.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert caller.returncode == 0, caller.stderr
        # The notification and the reply race to the caller: compare without order.
        assert sorted(caller.stdout.splitlines()) == [
            "light: True",
            "now: False",
            "toggled to True",
        ]
        capsys.readouterr()
        assert main(["-s", broker_thread.address, "get", "/kitchen/light"]) == 0
        assert capsys.readouterr().out == "true\n"
        assert main(["-s", broker_thread.address, "ls", "/"]) == 0
        assert capsys.readouterr().out.splitlines() == ["/kitchen/\tdir", "/meta/\tdir"]
        assert main(["-s", broker_thread.address, "leases"]) == 0
    finally:
        owner.kill()
        owner.wait(timeout=WAIT)


def test_tutorial_remote_without_kitchen(broker_thread: BrokerThread) -> None:
    """Tutorial step 4: with the kitchen stopped, remote.py sees unknown and path_not_found."""
    env = dict(os.environ, ROOST_SERVER=broker_thread.address)
    remote = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "tutorial" / "remote.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout.splitlines() == ["light is unknown", "toggle failed: path_not_found"]
