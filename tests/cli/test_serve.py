"""``roost serve`` as a subprocess: it serves, stops cleanly on signals, and fails clearly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

from tests.brokerproc import BrokerProcess
from tests.cli.conftest import WAIT, RunRoost


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
            [sys.executable, "-m", "roost", "serve", "--port", str(port)],
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
        "heavy = ('roost.broker', 'rich', 'roost.cli_lease', 'roost.cli_leases',\n"
        "         'roost.client.sync', 'anyio.from_thread', 'secrets', 'getpass')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(rc, loaded)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stderr
