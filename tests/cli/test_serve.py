"""``roost serve``: it serves, stops cleanly on signals, passes its lease options on, and fails
with one line (exit 2 for a bad lease configuration, 1 for any other start-up failure)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import anyio
import pytest

from roost.protocol import messages as m
from tests.broker.leasekit import lease
from tests.brokerproc import BrokerProcess, free_port
from tests.cli.conftest import WAIT, RunRoost
from tests.wire import connect


def test_serve_answers_and_stops_on_sigterm(roost: RunRoost) -> None:
    """serve --port 0 serves clients; SIGTERM stops it with exit 0."""
    with BrokerProcess() as broker:
        result = roost("-s", f"127.0.0.1:{broker.port}", "--json", "get", "/meta/broker")
        assert result.code == 0, result.err
        assert '"name": "roost"' in result.out
        assert broker.stop() == 0


def test_serve_stops_on_sigint() -> None:
    """SIGINT (Ctrl-C) stops serve with exit 0 and no traceback."""
    with BrokerProcess() as broker:
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGINT)
        assert broker.proc.wait(timeout=WAIT) == 0
        assert not any("Traceback" in line for line in broker.raw_lines)


def test_serve_port_in_use_exits_1() -> None:
    """A port that is taken: one clear line on stderr and exit 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "roost", "serve", "--port", str(port), "--http-port", "0"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith(f"roost: cannot serve on 127.0.0.1:{port}: ")
    assert "Traceback" not in proc.stderr


def test_client_commands_do_not_import_the_broker(server: str) -> None:
    """roost get loads neither the broker, nor rich, nor the lease commands, nor the blocking
    client."""
    code = (
        "import sys\n"
        "from roost.cli import main\n"
        f"rc = main(['-s', '{server}', 'get', '/meta/broker'])\n"
        "heavy = ('roost.broker', 'rich', 'roost.cli.lease', 'roost.cli.leases',\n"
        "         'roost.client.sync', 'anyio.from_thread', 'secrets', 'getpass')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(rc, loaded)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stderr


def serve_fails(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``roost serve --port 0 ARGS`` that is expected to fail at start-up."""
    return subprocess.run(
        [sys.executable, "-m", "roost", "serve", "--port", "0", "--http-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def test_serve_bad_lease_config_exits_2(roost: RunRoost, tmp_path: Path) -> None:
    """A wrong --lease-config file: one line naming file, key and problem; exit 2."""
    path = tmp_path / "leases.toml"
    path.write_text('[[resource]]\nname = "a"\n\n[[resource]]\nname = "b"\nmax_holders = -1\n')
    result = roost("serve", "--port", "0", "--lease-config", str(path))
    assert result.code == 2
    assert (
        result.err == f"roost: {path}: resource[1].max_holders: must be an integer >= 0, not -1\n"
    )
    missing = roost("serve", "--port", "0", "--lease-config", str(tmp_path / "nope.toml"))
    assert missing.code == 2
    assert missing.err.startswith(f"roost: {tmp_path / 'nope.toml'}: cannot read: ")
    assert len(missing.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("--ttl-max", "0"), ("--ttl-max", "inf"), ("--max-resources", "0"), ("--max-waits", "x")],
)
def test_serve_bad_lease_options_are_usage_errors(roost: RunRoost, option: str, value: str) -> None:
    """A lease option out of range is a usage error (exit 2) before anything starts."""
    result = roost("serve", "--port", "0", option, value)
    assert result.code == 2
    assert option in result.err and "Traceback" not in result.err


def test_serve_bad_state_dir_exits_1(tmp_path: Path) -> None:
    """A state dir that cannot be created: one line, exit 1; -v adds the traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    state = blocker / "state"
    plain = serve_fails("--state-dir", str(state))
    assert plain.returncode == 1
    assert plain.stderr.splitlines() == [
        f"roost: cannot serve on 127.0.0.1:0: cannot create state directory {state}: "
        f"[Errno 20] Not a directory: '{state}'"
    ]
    verbose = serve_fails("--state-dir", str(state), "-v")
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and "StateDirError" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == plain.stderr.splitlines()[0]


def test_serve_bad_audit_file_exits_1(tmp_path: Path) -> None:
    """An audit file that cannot be opened (a directory): one line with the path, exit 1."""
    result = serve_fails("--audit-file", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"roost: cannot serve on 127.0.0.1:0: {tmp_path}: Is a directory"
    ]


@pytest.mark.anyio
async def test_serve_lease_options_override_the_file(tmp_path: Path) -> None:
    """--ttl-max, --max-resources and --max-waits reach the broker and beat the file's."""
    path = tmp_path / "leases.toml"
    path.write_text("ttl_max = 60\nmax_resources = 50\nmax_waits = 10\n")
    extra = ["--lease-config", str(path), "--ttl-max", "5", "--max-resources", "2"]
    with BrokerProcess([*extra, "--max-waits", "1"]) as proc:
        async with (
            await connect(proc.port, timeout=5) as a,
            await connect(proc.port, timeout=5) as b,
        ):
            with anyio.fail_after(WAIT):
                long = await lease(a, m.LeaseAcquire, resource="r1", ttl=10)
                assert long.status == "bad_args" and "at most 5.0" in long["reason"]
                for name in ("r1", "r2"):
                    assert (await lease(a, m.LeaseAcquire, resource=name, ttl=5)).status == "OK"
                third = await lease(a, m.LeaseAcquire, resource="r3")
                assert third.status == "RESOURCE_LIMIT"
                assert (await lease(b, m.LeaseAcquire, resource="r1", wait=-1)).status == "QUEUED"
                second = await lease(b, m.LeaseAcquire, resource="r2", wait=-1)
                assert second.value == {"status": "WAIT_LIMIT", "max_waits": 1}
        assert proc.stop() == 0


def test_serve_bad_config_file_exits_2(roost: RunRoost, tmp_path: Path) -> None:
    """A wrong --config file: one line naming file, line, key and problem; exit 2."""
    path = tmp_path / "roost.toml"
    path.write_text("[leases]\nttl_max = 0\n")
    result = roost("serve", "--port", "0", "--config", str(path))
    assert result.code == 2
    assert result.err == (
        f"roost: {path}:2: leases.ttl_max: must be a finite number of seconds > 0, not 0\n"
    )


@pytest.mark.anyio
async def test_serve_config_file_leases_and_flag_override(tmp_path: Path) -> None:
    """[leases] of --config reaches the broker; a flag beats the file's value."""
    path = tmp_path / "roost.toml"
    path.write_text("[leases]\nttl_max = 60\nmax_resources = 1\n")
    with BrokerProcess(["--config", str(path), "--ttl-max", "5"]) as proc:
        async with await connect(proc.port, timeout=5) as a:
            with anyio.fail_after(WAIT):
                long = await lease(a, m.LeaseAcquire, resource="r1", ttl=10)
                assert long.status == "bad_args" and "at most 5.0" in long["reason"]
                assert (await lease(a, m.LeaseAcquire, resource="r1", ttl=5)).status == "OK"
                assert (await lease(a, m.LeaseAcquire, resource="r2")).status == "RESOURCE_LIMIT"
        assert proc.stop() == 0


def test_serve_http_port() -> None:
    """--http-port serves the gateway on that port beside the native one, and logs it."""
    port = free_port()
    with BrokerProcess(["--http-port", str(port)]) as broker:
        broker.wait_for_log(lambda r: r.get("http_port") == port)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/call/meta/ls", data=b'["/"]')
        with urllib.request.urlopen(request, timeout=WAIT) as reply:
            assert json.load(reply) == ["dir", [["meta", "dir"]]]
        assert broker.stop() == 0


def test_serve_http_port_in_use_exits_1() -> None:
    """An HTTP port that is taken: one line naming it, exit 1, and no broker left running."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "roost", "serve", "--port", "0", "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
    assert proc.returncode == 1
    assert f"HTTP port 127.0.0.1:{port}: " in proc.stderr.splitlines()[-1]
    assert "Traceback" not in proc.stderr


def test_serve_http_port_from_the_environment() -> None:
    """ROOST_HTTP_PORT sets the HTTP port when the flag is absent (tests set it to 0: off)."""
    port = free_port()
    env = dict(os.environ, ROOST_HTTP_PORT=str(port), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "serve", "--port", "0", "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if json.loads(line).get("http_port") == port:
                break
        request = urllib.request.Request(f"http://127.0.0.1:{port}/get/meta/broker")
        with urllib.request.urlopen(request, timeout=WAIT) as reply:
            assert json.load(reply)["name"] == "roost"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == 0
    assert os.environ["ROOST_HTTP_PORT"] == "0"  # what every other test's serve inherits


def test_serve_http_port_from_the_config_file(tmp_path: Path) -> None:
    """[http] port in the config file is used when neither the flag nor the environment says."""
    port = free_port()
    path = tmp_path / "roost.toml"
    path.write_text(f"[http]\nport = {port}\n")
    env = {k: v for k, v in os.environ.items() if k != "ROOST_HTTP_PORT"}
    args = ["serve", "--port", "0", "--config", str(path), "--log-format", "json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if json.loads(line).get("http_port") == port:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT) as reply:
            assert b"roost_connections" in reply.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == 0


def test_serve_bad_http_section_exits_2(roost: RunRoost, tmp_path: Path) -> None:
    """A port out of range in [http]: one line naming file, line and key; exit 2."""
    path = tmp_path / "roost.toml"
    path.write_text("[http]\nport = 70000\n")
    result = roost("serve", "--port", "0", "--config", str(path))
    assert result.code == 2
    assert result.err == (
        f"roost: {path}:2: http.port: must be a port number from 0 to 65535, not 70000\n"
    )
