"""The how-to pages for durable locks and pools run as written: their ``sh`` blocks, one after
the other, in bash, against the broker they start themselves (on a free port)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.brokerproc import free_port

ROOT = Path(__file__).resolve().parents[2]
HOWTO = ROOT / "docs" / "howto"


def sh_blocks(page: Path) -> list[str]:
    """The fenced ``sh`` blocks of a Markdown page, in order."""
    return re.findall(r"```sh\n(.*?)```", page.read_text(), flags=re.DOTALL)


def run_page(page: Path, tmp_path: Path) -> str:
    """Run the page's blocks with ``set -e`` in a copy of the examples; return stdout."""
    port = free_port()
    script = "set -e\n" + "\n".join(sh_blocks(page))
    script = script.replace("roost serve ", f"roost serve --port {port} --host 127.0.0.1 ")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bindir = str(Path(sys.executable).parent)
    env = dict(
        os.environ,
        PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        ROOST_SERVER=f"127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        # Whatever the page left running (a failed run leaves its broker): the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    return out


def test_lock_an_instrument(tmp_path: Path) -> None:
    """docs/howto/lock-an-instrument.md runs as written and shows what it says."""
    out = run_page(HOWTO / "lock-an-instrument.md", tmp_path)
    assert '"queue started"' in out
    assert "refused, as it should be" in out
    assert "refused, exit code 75" in out
    assert '"environment open"' in out
    assert "beamline/queue: locked by" in out and "changing samples, back at 3" in out
    assert out.splitlines()[-2:] == ["no durable locks", "stopped"]


def test_share_a_pool_of_test_devices(tmp_path: Path) -> None:
    """docs/howto/share-a-pool-of-test-devices.md runs as written and shows what it says."""
    out = run_page(HOWTO / "share-a-pool-of-test-devices.md", tmp_path)
    lines = out.splitlines()
    assert any(line.startswith("testing on rpi-") for line in lines)
    jobs = sorted(line for line in lines if line.startswith("job "))
    assert len(jobs) == 5 and all(line.split()[-1] in ("rpi-1", "rpi-2") for line in jobs)
    assert "no such device" in lines
    assert any(line.startswith("got rpi-") for line in lines)
    assert any("offline" in line and "rpi-3" in line for line in lines)
