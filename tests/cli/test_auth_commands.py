"""roost passwd, certgen, reload, the --user/--password-file/--tls-* options and serve's
secure default."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from roost.broker.auth.settings import from_sections
from roost.broker.config import load_config
from roost.broker.listeners import Listener
from roost.protocol import messages as m
from tests.broker.auth.authkit import PASSWORD, broker, settings
from tests.brokerproc import BrokerProcess
from tests.cli.conftest import WAIT, RunRoost
from tests.wire import Wire

CONFIG = """
[users]
alice = "{hash}"
root = "{hash}"

[[acl]]
user = "alice"
paths = ["/alice/**"]
allow = ["all"]

[[acl]]
user = "root"
paths = ["/**"]
allow = ["all"]
"""


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\n")
    return path


def test_passwd_writes_a_hash_never_the_password(roost: RunRoost, tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text("[leases]\nttl_max = 10\n")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    result = roost("passwd", "alice", "--file", str(config), "--password-file", str(pw))
    assert result.code == 0, result.err
    assert result.out == f"added user alice in {config}\n"
    text = config.read_text()
    assert "s3cret" not in text and "$argon2id$" in text
    auth = from_sections(load_config(config).get)
    assert auth.users.verify("alice", "s3cret")
    result = roost("passwd", "bad name", "--file", str(config), "--password-file", str(pw))
    assert result.code == 2 and "bad user name" in result.err


def test_passwd_from_stdin(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "roost", "passwd", "bob", "--file", str(users), "--stdin"],
        input="from-stdin\n",
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert from_sections(lambda name: None).users.hashes == {}
    config = tmp_path / "roost.toml"
    config.write_text('users_file = "users.toml"\n')
    assert from_sections(load_config(config).get).users.verify("bob", "from-stdin")


def test_certgen_makes_a_working_chain(roost: RunRoost, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert roost("certgen", "ca", "--dir", str(pki)).code == 0
    assert roost("certgen", "server", "127.0.0.1", "localhost", "--dir", str(pki)).code == 0
    assert roost("certgen", "client", "sensor1", "--dir", str(pki)).code == 0
    assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600
    again = roost("certgen", "ca", "--dir", str(pki))
    assert again.code == 2 and "exists" in again.err
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.load_cert_chain(pki / "sensor1.pem", pki / "sensor1.key")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki / "server.pem", pki / "server.key")


def test_client_commands_log_in(roost: RunRoost, password_file: Path) -> None:
    with broker(settings(CONFIG)) as b:
        server = b.address
        # Past the rules, the broker says there is no such event (nobody registered it).
        ok = roost(
            "-s",
            server,
            "--user",
            "alice",
            "--password-file",
            str(password_file),
            "emit",
            "/alice/ev",
            "1",
        )
        assert ok.err == "roost: path_not_found\n"
        refused = roost("-s", server, "emit", "/alice/ev", "1")
        assert refused.code == 1 and refused.err == "roost: forbidden\n"
        bad = tmp = password_file.parent / "bad"
        tmp.write_text("wrong\n")
        wrong = roost(
            "-s", server, "--user", "alice", "--password-file", str(bad), "get", "/alice/x"
        )
        assert wrong.code == 3, wrong
        assert wrong.err == (
            f"roost: {server}: login as 'alice' refused: wrong user name or password\n"
        )


def test_env_user_and_password_file(
    roost: RunRoost, password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROOST_USER", "alice")
    monkeypatch.setenv("ROOST_PASSWORD_FILE", str(password_file))
    with broker(settings(CONFIG)) as b:
        assert roost("-s", b.address, "emit", "/alice/ev", "1").err == "roost: path_not_found\n"


def test_reload_command_needs_admin(roost: RunRoost, password_file: Path) -> None:
    with broker(settings(CONFIG)) as b:
        denied = roost(
            "-s", b.address, "--user", "alice", "--password-file", str(password_file), "reload"
        )
        assert denied.code == 1 and denied.err == "roost: reload refused: forbidden\n"
        # root may, but this broker has no file to reload from.
        nofile = roost(
            "-s", b.address, "--user", "root", "--password-file", str(password_file), "reload"
        )
        assert nofile.err == "roost: reload refused: no configuration file to reload\n"


def test_tls_options(roost: RunRoost, tmp_path: Path, password_file: Path) -> None:
    pki = tmp_path / "pki"
    for args in (("ca",), ("server", "127.0.0.1")):
        assert roost("certgen", *args, "--dir", str(pki)).code == 0
    listener = Listener(
        "127.0.0.1", 0, tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key")
    )
    with broker(settings(CONFIG), listeners=[listener]) as b:
        ok = roost(
            "-s",
            b.address,
            "--tls-ca",
            str(pki / "ca.pem"),
            "--user",
            "alice",
            "--password-file",
            str(password_file),
            "emit",
            "/alice/ev",
            "2",
        )
        assert ok.err == "roost: path_not_found\n"
        plain = roost("-s", b.address, "--timeout", "2", "get", "/alice/x")
        assert plain.code == 3


def test_serve_refuses_an_open_network_address(roost: RunRoost) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the refusal must come before any bind.
    result = roost("serve", "--host", "192.0.2.1", "--port", "0")
    assert result.code == 1
    assert "no users or access rules are configured" in result.err
    assert "--allow-anonymous" in result.err


@pytest.mark.anyio
async def test_sighup_reloads_users(tmp_path: Path, password_file: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text('[[acl]]\nuser = "*"\npaths = ["/**"]\nallow = ["all"]\n')
    with BrokerProcess(["--config", str(config)]) as proc:
        async with await Wire.connect(proc.port) as wire:
            reply = await wire.login("dora", PASSWORD)
            assert isinstance(reply, m.ReplyError)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "roost",
                "passwd",
                "dora",
                "--file",
                str(config),
                "--password-file",
                str(password_file),
            ],
            check=True,
            capture_output=True,
            timeout=WAIT,
        )
        os.kill(proc.pid, signal.SIGHUP)
        proc.wait_for_log(lambda r: r.get("msg", "").startswith("reloaded"), timeout=WAIT)
        async with await Wire.connect(proc.port) as wire:
            with anyio.fail_after(WAIT):
                reply = await wire.login("dora", PASSWORD)
            assert isinstance(reply, m.ReplyOk)
        assert proc.stop() == 0
