"""The client commands run in process against a real broker: output, --json, exit codes."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

from roost.cli.main import ByteSize
from roost.protocol.messages import Unknown
from tests.cli.conftest import WAIT, Peer, RunRoost


def _closed_port() -> int:
    # A port nobody listens on: bind, learn the number, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _echo(*args: Any) -> list[Any]:
    return list(args)


# -- global behaviour ----------------------------------------------------------------------------


def test_version(roost: RunRoost) -> None:
    """--version prints the program name and version and exits 0."""
    result = roost("--version")
    assert result.code == 0
    assert result.out.startswith("roost ")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["call"],
        ["get"],
        ["set"],
        ["emit"],
        ["observe"],
        ["listen"],
        ["publish"],
        ["ls"],
        ["clients"],
        ["ping"],
        ["leases"],
        ["lease"],
        ["lease", "acquire"],
        ["lease", "hold"],
        ["lease", "take"],
        ["lease", "info"],
    ],
)
def test_help(roost: RunRoost, command: list[str]) -> None:
    """Every command's --help exits 0 and shows its usage line."""
    result = roost(*command, "--help")
    assert result.code == 0
    assert result.out.startswith("Usage: roost")


def test_usage_error_exits_2(roost: RunRoost) -> None:
    """A missing argument is a usage error: exit 2, message on stderr, nothing on stdout."""
    result = roost("get")
    assert result.code == 2
    assert "Missing argument 'PATH'" in result.err
    assert result.out == ""


def test_bad_server_is_usage_error(roost: RunRoost) -> None:
    """-s with a port that is not a number is a usage error (exit 2)."""
    result = roost("-s", "localhost:http", "get", "/x")
    assert result.code == 2
    assert "HOST[:PORT]" in result.err


@pytest.mark.parametrize("size", ["lots", "8x", "0", "inf", "nan", "-1k"])
def test_bad_byte_size_is_usage_error(roost: RunRoost, size: str) -> None:
    """serve --max-outbound rejects anything but a positive byte count (exit 2)."""
    result = roost("serve", "--max-outbound", size)
    assert result.code == 2
    assert "not a byte count" in result.err


@pytest.mark.parametrize(
    ("size", "count"),
    [("8388608", 8388608), ("8MiB", 8388608), ("512k", 512000), ("1.5 KiB", 1536)],
)
def test_byte_sizes(size: str, count: int) -> None:
    """Byte counts accept plain numbers and k/M/G (decimal) or KiB/MiB/GiB (binary) units."""
    assert ByteSize().convert(size, None, None) == count


def test_unreachable_server_exits_3(roost: RunRoost) -> None:
    """No broker at the address: exit 3 and one line on stderr, no traceback."""
    port = _closed_port()
    result = roost("-s", f"127.0.0.1:{port}", "--timeout", "0.3", "get", "/x")
    assert result.code == 3
    assert result.err == f"roost: cannot connect to 127.0.0.1:{port}: connection refused\n"
    assert result.out == ""


def test_refused_connection_fails_without_waiting_for_the_timeout() -> None:
    """A refused connection exits 3 at once, not after --timeout (here 60 s)."""
    port = _closed_port()
    proc = subprocess.run(
        [sys.executable, "-m", "roost", "get", "/x", "-s", f"127.0.0.1:{port}", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stderr == f"roost: cannot connect to 127.0.0.1:{port}: connection refused\n"
    assert proc.stdout == ""


def test_unknown_path_exits_1(roost: RunRoost, server: str) -> None:
    """get of a missing path: exit 1 with path_not_found on stderr."""
    result = roost("-s", server, "get", "/no/such")
    assert result.code == 1
    assert result.err.strip() == "roost: path_not_found"
    assert result.out == ""


def test_verbose_error_shows_traceback(roost: RunRoost, server: str) -> None:
    """-v adds the traceback before the one-line error."""
    result = roost("-v", "-s", server, "get", "/no/such")
    assert result.code == 1
    assert "Traceback" in result.err
    assert result.err.rstrip().endswith("roost: path_not_found")


def test_options_after_command(roost: RunRoost, server: str) -> None:
    """Connection options work after the sub-command and override the ones before it."""
    dead = f"127.0.0.1:{_closed_port()}"
    before = roost("-s", server, "--json", "get", "/meta/broker")
    after = roost("get", "/meta/broker", "-s", server, "--json")
    override = roost("-s", dead, "get", "/meta/broker", "-s", server, "--json")
    for result in (before, after, override):
        assert result.code == 0, result.err
        assert json.loads(result.out)["value"]["name"] == "roost"


def test_server_from_environment(
    roost: RunRoost, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without -s the address comes from ROOST_SERVER, then ESHET_SERVER."""
    monkeypatch.delenv("ROOST_SERVER", raising=False)
    monkeypatch.setenv("ESHET_SERVER", server)
    assert roost("get", "/meta/broker").code == 0
    monkeypatch.setenv("ROOST_SERVER", f"127.0.0.1:{_closed_port()}")
    assert roost("--timeout", "0.3", "get", "/meta/broker").code == 3


# -- call, get, set, emit ---------------------------------------------------------------------


def test_call_parses_json_and_falls_back_to_strings(
    roost: RunRoost, server: str, peer: Peer
) -> None:
    """call: JSON arguments are decoded, bad JSON is passed as a string."""
    peer(peer.client.action_register, "/t/echo", _echo)
    result = roost("-s", server, "call", "/t/echo", "1", '"a"', "foo", '{"k": [1]}', "{bad", "-2")
    assert result.code == 0, result.err
    assert json.loads(result.out) == [1, "a", "foo", {"k": [1]}, "{bad", -2]


def test_call_json_shape(roost: RunRoost, server: str, peer: Peer) -> None:
    """call --json prints {"path", "result"} on one line."""
    peer(peer.client.action_register, "/t/echo", _echo)
    result = roost("-s", server, "--json", "call", "/t/echo", "x")
    assert result.code == 0, result.err
    assert result.lines == [json.dumps({"path": "/t/echo", "result": ["x"]})]


def test_call_remote_exception(roost: RunRoost, server: str, peer: Peer) -> None:
    """An action that fails makes call exit 1 with the error value on stderr."""

    def broken() -> None:
        raise ValueError("nope")

    peer(peer.client.action_register, "/t/broken", broken)
    result = roost("-s", server, "call", "/t/broken")
    assert result.code == 1
    assert result.err.startswith("roost: ")
    assert result.out == ""


def test_get_state_plain_and_json(roost: RunRoost, server: str, peer: Peer) -> None:
    """get prints a state's value; --json wraps it as {"path", "value"}."""
    handle = peer(peer.client.state_register, "/t/temp")
    peer(handle.changed, {"c": 21.5})
    plain = roost("-s", server, "get", "/t/temp")
    assert (plain.code, plain.out) == (0, '{"c": 21.5}\n')
    as_json = roost("-s", server, "--json", "get", "/t/temp")
    assert json.loads(as_json.out) == {"path": "/t/temp", "value": {"c": 21.5}}


def test_get_unknown_state(roost: RunRoost, server: str, peer: Peer) -> None:
    """get of an unknown state is the remote error state_unknown (exit 1)."""
    peer(peer.client.state_register, "/t/unset")
    result = roost("-s", server, "get", "/t/unset")
    assert result.code == 1
    assert result.err.strip() == "roost: state_unknown"


def test_get_binary_value(roost: RunRoost, server: str, peer: Peer) -> None:
    """Binary values print as {"$base64": ...}."""
    handle = peer(peer.client.state_register, "/t/blob")
    peer(handle.changed, b"\x00\xff")
    result = roost("-s", server, "get", "/t/blob")
    assert json.loads(result.out) == {"$base64": "AP8="}


def test_set_reaches_prop_owner(roost: RunRoost, server: str, peer: Peer) -> None:
    """set passes the parsed value (a negative number here) to the prop's owner."""
    received: list[Any] = []
    peer(peer.client.prop_register, "/t/level", lambda: 0, received.append)
    result = roost("-s", server, "set", "/t/level", "-5")
    assert (result.code, result.out) == (0, "")
    assert received == [-5]
    as_json = roost("-s", server, "--json", "set", "/t/level", "high")
    assert json.loads(as_json.out) == {"path": "/t/level", "ok": True}
    assert received == [-5, "high"]


def test_set_without_owner(roost: RunRoost, server: str) -> None:
    """set of a missing path exits 1 with path_not_found."""
    result = roost("-s", server, "set", "/t/none", "1")
    assert result.code == 1
    assert "path_not_found" in result.err


def test_emit_reaches_listener(roost: RunRoost, server: str, peer: Peer) -> None:
    """emit delivers the parsed value to a listener."""
    got = threading.Event()
    values: list[Any] = []

    def on_event(value: Any) -> None:
        values.append(value)
        got.set()

    peer(peer.client.event_register, "/t/bell")
    peer(peer.client.event_listen_cb, "/t/bell", on_event)
    result = roost("-s", server, "emit", "/t/bell", '{"ring": 2}')
    assert (result.code, result.out) == (0, "")
    assert got.wait(WAIT)
    assert values == [{"ring": 2}]


def test_unsendable_value_is_usage_error(roost: RunRoost, server: str) -> None:
    """An integer beyond 64 bits cannot be sent: exit 2 before connecting."""
    result = roost("-s", server, "set", "/t/x", str(2**64))
    assert result.code == 2
    assert "cannot be sent" in result.err


def test_emit_unknown_event(roost: RunRoost, server: str) -> None:
    """emit on a missing event exits 1 with path_not_found."""
    result = roost("-s", server, "--json", "emit", "/t/none", "1")
    assert result.code == 1
    assert "path_not_found" in result.err
    assert result.out == ""


# -- observe, listen, publish (bounded by --count or stdin) ------------------------------------


def test_observe_count_prints_current_value(roost: RunRoost, server: str, peer: Peer) -> None:
    """observe --count 1 prints the current value and exits 0."""
    handle = peer(peer.client.state_register, "/t/mode")
    peer(handle.changed, "auto")
    assert roost("-s", server, "observe", "/t/mode", "-n", "1").out == '"auto"\n'
    as_json = roost("-s", server, "--json", "observe", "/t/mode", "--count", "1")
    assert json.loads(as_json.out) == {"path": "/t/mode", "known": True, "value": "auto"}


def test_observe_unknown(roost: RunRoost, server: str, peer: Peer) -> None:
    """observe prints the bare word unknown for an unknown state ({"known": false} in JSON)."""
    peer(peer.client.state_register, "/t/idle")
    assert roost("-s", server, "observe", "/t/idle", "-n", "1").out == "unknown\n"
    as_json = roost("-s", server, "--json", "observe", "/t/idle", "-n", "1")
    assert json.loads(as_json.out) == {"path": "/t/idle", "known": False}


def test_observe_wrong_kind(roost: RunRoost, server: str, peer: Peer) -> None:
    """observe of an action is refused by the broker: exit 1, path_already_exists."""
    peer(peer.client.action_register, "/t/act", _echo)
    result = roost("-s", server, "observe", "/t/act")
    assert result.code == 1
    assert "path_already_exists" in result.err


def test_publish_from_stdin(
    roost: RunRoost, server: str, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """publish sets the state from each stdin line (JSON or string) and makes it unknown at EOF."""
    seen: list[Any] = []
    done = threading.Event()

    def on_change(value: Any) -> None:
        seen.append(value)
        if value is Unknown and len(seen) > 1:
            done.set()

    peer(peer.client.state_observe, "/t/pub", on_change)
    lines = '1\n\n{"a": true}\n1e999999\n99999999999999999999999\nplain text\n'
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    result = roost("-s", server, "publish", "/t/pub")
    assert result.code == 0, result.err
    assert "skipped: '99999999999999999999999' cannot be sent" in result.err
    assert done.wait(WAIT)
    assert seen == [1, {"a": True}, float("inf"), "plain text", Unknown]


# -- ls, clients, ping -------------------------------------------------------------------------


def test_ls_directory_and_node(roost: RunRoost, server: str, peer: Peer) -> None:
    """ls lists a directory's entries with kinds, and a node by itself."""
    peer(peer.client.action_register, "/t/dev/act", _echo)
    peer(peer.client.state_register, "/t/dev/st")
    peer(peer.client.event_register, "/t/ev")
    listing = roost("-s", server, "ls", "/t")
    assert listing.code == 0, listing.err
    assert listing.lines == ["/t/dev/\tdir", "/t/ev\tevent"]
    node = roost("-s", server, "ls", "/t/dev/st")
    assert node.lines == ["/t/dev/st\tstate"]


def test_ls_recursive_json(roost: RunRoost, server: str, peer: Peer) -> None:
    """ls -R --json prints one {"path", "kind"} per entry, descending into directories."""
    peer(peer.client.action_register, "/t/dev/act", _echo)
    result = roost("-s", server, "--json", "ls", "-R", "/t")
    records = [json.loads(line) for line in result.lines]
    assert records == [
        {"path": "/t/dev/", "kind": "dir"},
        {"path": "/t/dev/act", "kind": "action"},
    ]


def test_ls_root_default(roost: RunRoost, server: str) -> None:
    """ls with no PATH lists / (which always has the meta directory)."""
    result = roost("-s", server, "ls")
    assert "/meta/\tdir" in result.lines


def test_ls_missing(roost: RunRoost, server: str) -> None:
    """ls of a missing path exits 1 with path_not_found."""
    result = roost("-s", server, "ls", "/nothing/here")
    assert result.code == 1
    assert "path_not_found" in result.err


def test_clients_json(roost: RunRoost, server: str, peer: Peer) -> None:
    """clients --json prints one object per connected client (the peer and roost itself)."""
    result = roost("-s", server, "--json", "clients")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.lines]
    assert len(records) == 2
    assert all({"client", "peer", "since"} <= record.keys() for record in records)
    assert peer.client.client_id in [record["client"] for record in records]


def test_clients_plain(roost: RunRoost, server: str, peer: Peer) -> None:
    """clients prints a header and one tab-separated row per client."""
    result = roost("-s", server, "clients")
    assert result.lines[0].split("\t") == ["client", "peer", "connected", "registrations", "leases"]
    assert len(result.lines) == 3
    assert all(line.split("\t")[1].startswith("127.0.0.1:") for line in result.lines[1:])


def test_ping_uses_the_client_ping(
    roost: RunRoost, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ping sends one Client.ping per --count and prints the round trip it returns."""
    from roost.client import Client

    calls: list[float | None] = []
    real = Client.ping

    async def counted(self: Client, *, timeout: float | None = None) -> float:
        calls.append(timeout)
        await real(self, timeout=timeout)
        return 0.0125

    monkeypatch.setattr(Client, "ping", counted)
    result = roost("-s", server, "--json", "ping", "-n", "3", "-i", "0")
    assert result.code == 0, result.err
    assert len(calls) == 3
    assert [json.loads(line)["rtt_ms"] for line in result.lines] == [12.5, 12.5, 12.5]


def test_ping(roost: RunRoost, server: str) -> None:
    """ping prints one round trip per ping; --json gives rtt_ms as a number."""
    plain = roost("-s", server, "ping")
    assert plain.code == 0, plain.err
    assert plain.out.startswith(f"pong from {server}: seq=1 time=")
    as_json = roost("-s", server, "--json", "ping", "-n", "2", "-i", "0")
    records = [json.loads(line) for line in as_json.lines]
    assert [record["seq"] for record in records] == [1, 2]
    assert all(record["rtt_ms"] >= 0 for record in records)


def test_ls_on_terminal_is_a_table(
    roost: RunRoost, server: str, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal ls draws a table with a header instead of tab-separated lines."""
    peer(peer.client.action_register, "/t/act", _echo)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    result = roost("-s", server, "ls", "/t")
    assert result.code == 0, result.err
    assert "\t" not in result.out
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.out).splitlines()
    assert lines[0].split() == ["path", "kind"]
    assert lines[1].split() == ["/t/act", "action"]
