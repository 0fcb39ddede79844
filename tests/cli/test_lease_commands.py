"""The lease commands against a real broker: leases, lease acquire/hold/take/info.

``lease hold`` and ``lease acquire`` run as subprocesses (they run children and take signals);
the listing commands run in process.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time

import pytest

from roost.cli.lease import _terminal_sent_it, retain_interval
from roost.errors import AlreadyClaimed
from tests.cli.conftest import WAIT, Peer, RunRoost, SpawnRoost

# A child that reports its lease, says it is ready, and then waits; SIGTERM and SIGINT make it
# print which signal came and exit with a code the test recognises.
CHILD = """
import os, signal, sys, time
def on(signum, frame):
    print("got", signal.Signals(signum).name, flush=True)
    sys.exit(9 if signum == signal.SIGTERM else 5)
signal.signal(signal.SIGTERM, on)
signal.signal(signal.SIGINT, on)
print("ready", os.environ["ROOST_LEASE_RESOURCE"], flush=True)
time.sleep(60)
"""

# A child that ignores SIGTERM, so only SIGKILL ends it.
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_hold_passes_resource_and_token(server: str, spawn: SpawnRoost) -> None:
    """hold runs the command with ROOST_LEASE_RESOURCE and ROOST_LEASE_TOKEN (JSON) set."""
    show = (
        "import json, os; print(os.environ['ROOST_LEASE_RESOURCE']); "
        "t = json.loads(os.environ['ROOST_LEASE_TOKEN']); print(t['resource'], len(t['seq']))"
    )
    proc = spawn("lease", "hold", "lab/arm", "-s", server, "--", *_python(show))
    assert proc.line() == "lab/arm"
    assert proc.line() == "lab/arm 1"
    assert proc.wait() == 0


def test_hold_exits_with_child_code_and_returns(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """A child exiting non-zero gives that code; the lease is returned afterwards."""
    proc = spawn("lease", "hold", "lab/fail", "-s", server, "--", *_python("raise SystemExit(4)"))
    assert proc.wait() == 4
    lease = peer(peer.client.lease_acquire, "lab/fail")
    assert lease.resource == "lab/fail"


def test_hold_lost_lease_terminates_child(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """A take while the child runs: the child gets SIGTERM and its exit code is roost's."""
    proc = spawn("lease", "hold", "lab/take", "-s", server, "--", *_python(CHILD))
    assert proc.line() == "ready lab/take"
    peer(peer.client.lease_take, "lab/take", "maintenance")
    assert proc.line() == "got SIGTERM"
    assert proc.wait() == 9
    assert any("lost (taken by " in line for line in proc.stderr_so_far())


def test_hold_kills_stubborn_child(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """A child that ignores SIGTERM is killed after --kill-after; the exit code is then 75."""
    proc = spawn(
        "lease", "hold", "lab/stub", "--kill-after", "0.3", "-s", server, "--", *_python(STUBBORN)
    )
    assert proc.line() == "ready"
    peer(peer.client.lease_take, "lab/stub", "maintenance")
    assert proc.wait() == 75


def test_hold_forwards_sigint(server: str, spawn: SpawnRoost) -> None:
    """SIGINT sent to roost alone reaches the child, whose exit code roost returns."""
    proc = spawn("lease", "hold", "lab/int", "-s", server, "--", *_python(CHILD))
    assert proc.line() == "ready lab/int"
    proc.proc.send_signal(signal.SIGINT)
    assert proc.line() == "got SIGINT"
    assert proc.wait() == 5


@pytest.mark.parametrize("wait", ["0", "0.2"])
def test_hold_not_had_in_time(server: str, peer: Peer, spawn: SpawnRoost, wait: str) -> None:
    """A held resource: ALREADY_CLAIMED (no wait) or TIMEOUT (short wait) exit 75, no child."""
    peer(peer.client.lease_acquire, "lab/busy")
    proc = spawn(
        "lease", "hold", "lab/busy", "--wait", wait, "-s", server, "--", *_python("print('ran')")
    )
    assert proc.wait() == 75
    assert proc.out.empty()
    assert any("not had in time" in line for line in proc.stderr_so_far())


def test_hold_needs_reason_with_take(roost: RunRoost, server: str) -> None:
    """--take without --reason is a usage error (exit 2)."""
    result = roost("lease", "hold", "lab/x", "--take", "-s", server, "--", "true")
    assert result.code == 2
    assert "--reason" in result.err


def test_hold_missing_command(server: str, spawn: SpawnRoost) -> None:
    """A command that does not exist: 127, and the lease is returned."""
    proc = spawn("lease", "hold", "lab/none", "-s", server, "--", "/nonexistent/roost-test-cmd")
    assert proc.wait() == 127
    assert any("cannot run" in line for line in proc.stderr_so_far())


def test_hold_unreachable(spawn: SpawnRoost) -> None:
    """No broker: exit 3 and the command never runs."""
    proc = spawn(
        "lease", "hold", "lab/x", "-s", "127.0.0.1:1", "--timeout", "0.3", "--", "echo", "ran"
    )
    assert proc.wait() == 3
    assert proc.out.empty()


def test_acquire_holds_until_sigint(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """lease acquire holds until SIGINT, then returns the lease and exits 0."""
    proc = spawn("lease", "acquire", "lab/desk", "--note", "mine", "-s", server)
    assert proc.line().startswith("holding lab/desk (exclusive) token ")
    with pytest.raises(AlreadyClaimed):
        peer(peer.client.lease_acquire, "lab/desk")
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait() == 0
    assert peer(peer.client.lease_acquire, "lab/desk").resource == "lab/desk"


def test_acquire_lost_exits_1(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """lease acquire exits 1 with the reason, said once, when its lease is taken."""
    proc = spawn("lease", "acquire", "lab/chair", "--json", "-s", server)
    assert json.loads(proc.line())["resource"] == "lab/chair"
    peer(peer.client.lease_take, "lab/chair", "mine now")
    assert proc.wait() == 1
    proc.close()  # the process has exited: this only drains its pipes
    (line,) = proc.stderr_so_far()
    assert line.startswith("roost: lease on lab/chair lost (taken by ")
    assert line.endswith(': "mine now")')


def test_acquire_busy_exits_75(roost: RunRoost, server: str, peer: Peer) -> None:
    """lease acquire of a held resource fails fast with 75."""
    peer(peer.client.lease_acquire, "lab/busy")
    result = roost("lease", "acquire", "lab/busy", "-s", server)
    assert result.code == 75
    assert "ALREADY_CLAIMED" in result.err


def test_leases_table_and_json(roost: RunRoost, server: str, peer: Peer) -> None:
    """leases shows holder, note and token; --json gives one info object per resource."""
    held = peer(peer.client.lease_acquire, "lab/scope", note="calibration")
    plain = roost("leases", "-s", server)
    assert plain.code == 0, plain.err
    assert plain.lines[0].split("\t") == [
        "resource",
        "mode",
        "holder",
        "note",
        "age",
        "token",
        "ttl",
        "waiters",
    ]
    row = plain.lines[1].split("\t")
    assert row[:2] == ["lab/scope", "exclusive"]
    assert row[3] == "calibration"
    assert row[5] == f"{held.token['epoch']}:{held.token['seq'][0]}"
    records = [json.loads(line) for line in roost("leases", "--json", "-s", server).lines]
    assert [record["resource"] for record in records] == ["lab/scope"]
    assert records[0]["holders"][0]["note"] == "calibration"


def test_leases_prefix_filters(roost: RunRoost, server: str, peer: Peer) -> None:
    """leases PREFIX lists only resources at or below it."""
    peer(peer.client.lease_acquire, "lab/one")
    peer(peer.client.lease_acquire, "shop/two")
    records = [json.loads(line) for line in roost("leases", "shop", "--json", "-s", server).lines]
    assert [record["resource"] for record in records] == ["shop/two"]


def test_lease_info(roost: RunRoost, server: str, peer: Peer) -> None:
    """lease info --json gives the broker's info object for the resource."""
    peer(peer.client.lease_acquire, "lab/oven", shared=True)
    result = roost("lease", "info", "lab/oven", "--json", "-s", server)
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["resource"] == "lab/oven"
    assert info["mode"] == "shared"
    plain = roost("lease", "info", "lab/oven", "-s", server)
    assert "floor:" in plain.out


def test_lease_take(roost: RunRoost, server: str, peer: Peer) -> None:
    """lease take ends the holder's lease with reason taken and frees the resource."""
    held = peer(peer.client.lease_acquire, "lab/door")
    result = roost("lease", "take", "lab/door", "--reason", "stuck", "-s", server)
    assert result.code == 0, result.err
    assert result.out.startswith("took lab/door")
    assert peer(held.wait_lost) == "taken"


def test_watch_prints_events(server: str, peer: Peer, spawn: SpawnRoost) -> None:
    """leases --watch in a pipe prints the table, then one line per lease event; SIGINT ends it."""
    proc = spawn("leases", "--watch", "-s", server)
    # The header comes after the subscription is in place, so no later event can be missed.
    assert proc.line().startswith("resource\t")
    lease = peer(peer.client.lease_acquire, "lab/watch", note="w")
    assert proc.line().startswith("granted\tlab/watch\t")
    peer(lease.return_lease)
    ended = proc.line()
    assert ended.startswith("ended\tlab/watch\t")
    assert ended.endswith("reason=returned")
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait(WAIT) == 0


def test_hold_ttl_is_retained(server: str, spawn: SpawnRoost) -> None:
    """With --ttl the lease is retained while the command runs longer than the ttl."""
    # ttl 1.2 s: the client counts the lease lost 0.5 s early, so retains come every 0.35 s.
    proc = spawn(
        "lease",
        "hold",
        "lab/ttl",
        "--ttl",
        "1.2",
        "-s",
        server,
        "--",
        *_python("import time; time.sleep(2); print('done')"),
    )
    assert proc.line() == "done"
    assert proc.wait() == 0
    assert not any("lost" in line for line in proc.stderr_so_far())


def test_leases_on_terminal_is_a_table(
    roost: RunRoost, server: str, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal leases draws a table (no tab-separated text)."""
    peer(peer.client.lease_acquire, "lab/tty", note="on screen")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    result = roost("leases", "-s", server)
    assert result.code == 0, result.err
    assert "\t" not in result.out
    assert "lab/tty" in result.out
    assert "on screen" in result.out


@pytest.mark.parametrize(("ttl", "interval"), [(1.0, 0.25), (1.2, 0.35), (30.0, 10.0)])
def test_retain_interval(ttl: float, interval: float) -> None:
    """Retains leave two round trips before the client's early loss margin, at most ttl/3."""
    assert retain_interval(ttl) == pytest.approx(interval)


def test_ttl_below_one_second_is_usage_error(roost: RunRoost, server: str) -> None:
    """--ttl under 1 s would be lost at once by the client's safety margin: exit 2."""
    result = roost("lease", "acquire", "lab/x", "--ttl", "0.5", "-s", server)
    assert result.code == 2
    assert "--ttl" in result.err


# Counts SIGINTs: a Ctrl-C on the terminal must reach it once, not once more through roost.
COUNT_SIGINT = """
import signal, sys, time
count = 0
def on(signum, frame):
    global count
    count += 1
signal.signal(signal.SIGINT, on)
print("ready", flush=True)
while count == 0:
    time.sleep(0.01)
time.sleep(0.5)  # a duplicate forwarded by roost would land within this
print("count", count, flush=True)
"""


def _read_until(fd: int, pattern: bytes, timeout: float = WAIT) -> re.Match[bytes]:
    seen = b""
    deadline = time.monotonic() + timeout
    while (found := re.search(pattern, seen)) is None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            pytest.fail(f"no {pattern!r} on the terminal; got {seen!r}")
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the terminal closed
            chunk = b""
        if not chunk:
            pytest.fail(f"terminal closed before {pattern!r}; got {seen!r}")
        seen += chunk
    return found


def test_ctrl_c_on_terminal_reaches_child_once(server: str) -> None:
    """Ctrl-C on a terminal reaches the command once: roost does not forward it a second time."""
    master, slave = pty.openpty()

    def become_terminal_owner() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    cmd = [sys.executable, "-m", "roost", "lease", "hold", "lab/tty", "-s", server, "--"]
    proc = subprocess.Popen(
        [*cmd, *_python(COUNT_SIGINT)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=become_terminal_owner,  # noqa: PLW1509 (needed to own the terminal)
    )
    os.close(slave)
    try:
        _read_until(master, rb"ready")
        os.write(master, b"\x03")  # Ctrl-C: the terminal signals its foreground group
        found = _read_until(master, rb"count (\d+)\r?\n")
        assert found.group(1) == b"1"
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        os.close(master)


def test_terminal_sigint_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT counts as the terminal's own when our group owns the terminal; SIGTERM never."""
    master, slave = pty.openpty()

    def become_terminal_owner() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    code = (
        "import signal\n"
        "from roost.cli.lease import _terminal_sent_it\n"
        "print('verdict', _terminal_sent_it(signal.SIGINT), _terminal_sent_it(signal.SIGTERM))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=become_terminal_owner,  # noqa: PLW1509 (needed to own the terminal)
    )
    os.close(slave)
    try:
        found = _read_until(master, rb"verdict (\w+) (\w+)")
        assert found.groups() == (b"True", b"False")
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        os.close(master)
    # Without a terminal every signal is forwarded.
    for name in ("stdin", "stdout", "stderr"):
        monkeypatch.setattr(sys, name, io.StringIO())
    assert not _terminal_sent_it(signal.SIGINT)
