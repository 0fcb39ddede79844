"""Client settings: server addresses, environment defaults, base paths, timeout validation."""

from __future__ import annotations

import pytest

from roost.client.config import (
    TimeoutConfig,
    default_server,
    normalise_base,
    parse_server,
    resolve_path,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", ("localhost", 11236)),
        ("127.0.0.1:4000", ("127.0.0.1", 4000)),
        ("[::1]:5000", ("::1", 5000)),
        ("[::1]", ("::1", 11236)),
        ("::1", ("::1", 11236)),
        (" broker.lan:1 ", ("broker.lan", 1)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    """host[:port] splits into host and port, 11236 by default, IPv6 in brackets."""
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "host:0", "host:70000", "host:x", "[::1", "[::1]x"])
def test_parse_server_rejects_garbage(text: str) -> None:
    """Empty hosts, bad ports and broken brackets raise ValueError."""
    with pytest.raises(ValueError):
        parse_server(text)


def test_default_server_prefers_roost_then_eshet(monkeypatch: pytest.MonkeyPatch) -> None:
    """ROOST_SERVER wins over ESHET_SERVER, which wins over localhost."""
    monkeypatch.delenv("ROOST_SERVER", raising=False)
    monkeypatch.delenv("ESHET_SERVER", raising=False)
    assert default_server() == "localhost"
    monkeypatch.setenv("ESHET_SERVER", "eshet:1")
    assert default_server() == "eshet:1"
    monkeypatch.setenv("ROOST_SERVER", "roost:2")
    assert default_server() == "roost:2"


def test_relative_paths_resolve_against_base() -> None:
    """Relative paths are appended to the base; absolute ones are kept."""
    base = normalise_base("home/lab")
    assert base == "/home/lab/"
    assert resolve_path(base, "lamp") == "/home/lab/lamp"
    assert resolve_path(base, "/other/x") == "/other/x"
    assert normalise_base("/") == "/"
    assert resolve_path("/", "a/b") == "/a/b"


@pytest.mark.parametrize(
    "kwargs",
    [{"idle_ping": 0}, {"ping_timeout": -1}, {"server_timeout": -1}, {"server_timeout": 70000}],
)
def test_timeout_config_validates(kwargs: dict[str, float]) -> None:
    """Non-positive ping settings and server timeouts outside u16 raise ValueError."""
    with pytest.raises(ValueError):
        TimeoutConfig(**kwargs)  # type: ignore[arg-type]


def test_timeout_config_defaults_match_eshet() -> None:
    """Defaults: ping after 15 s idle, 30 s server timeout, 5 s for a ping answer."""
    config = TimeoutConfig()
    assert (config.idle_ping, config.server_timeout, config.ping_timeout) == (15.0, 30, 5.0)
