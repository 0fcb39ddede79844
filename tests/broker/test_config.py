"""The configuration file: sections, strict keys, errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.broker.config import SECTIONS, load_config, parse_config
from roost.broker.leases.config import LeaseConfig
from roost.broker.leases.types import Declared
from roost.errors import ConfigError


def test_leases_section_parses() -> None:
    """[leases] holds what --lease-config holds, with the same meaning."""
    config = parse_config(
        '[leases]\nttl_max = 60\nmax_waits = 3\n\n[[leases.resource]]\nname = "lab/scope"\n'
        "max_holders = 2\n",
        "roost.toml",
    )
    leases = config.get("leases")
    assert isinstance(leases, LeaseConfig)
    assert leases.ttl_max == 60.0 and leases.max_waits == 3
    assert leases.resources == (Declared("lab/scope", 2, True),)


def test_empty_file_has_no_sections() -> None:
    """An empty file is valid: every section keeps its defaults."""
    config = parse_config("", "roost.toml")
    assert config.get("leases") is None and dict(config.sections) == {}


def test_unknown_section_names_line_and_known_sections() -> None:
    """A misspelt section is refused with its line and the list of known sections."""
    with pytest.raises(ConfigError) as info:
        parse_config("# house broker\n\n[leeses]\nttl_max = 5\n", "house.toml")
    err = info.value
    assert (err.path, err.line, err.key) == ("house.toml", 3, "leeses")
    assert str(err).startswith("house.toml:3: leeses: unknown section (expected one of: ")
    assert "[leases]" in str(err)
    assert set(SECTIONS) >= {"leases"}


def test_bad_key_in_section_names_its_line() -> None:
    """A bad value deep in a section names the dotted key and its own line."""
    text = (
        "[leases]\nttl_max = 60\n\n[[leases.resource]]\nname = 'a'\n\n"
        "[[leases.resource]]\nname = 'b'\nmax_holders = -1\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "roost.toml")
    assert str(info.value) == (
        "roost.toml:9: leases.resource[1].max_holders: must be an integer >= 0, not -1"
    )


def test_unknown_key_in_section() -> None:
    """An unknown key inside a known section is refused, not ignored."""
    with pytest.raises(ConfigError) as info:
        parse_config("[leases]\nttl_max = 60\nttl_mxa = 5\n", "roost.toml")
    assert info.value.line == 3 and info.value.key == "leases.ttl_mxa"
    assert "unknown key" in str(info.value)


def test_invalid_toml_names_line() -> None:
    """A syntax error gives the line it is on."""
    with pytest.raises(ConfigError) as info:
        parse_config("[leases]\nttl_max = = 5\n", "roost.toml")
    assert info.value.line == 2 and "not valid TOML" in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming it, not an OSError."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert str(info.value).startswith(f"{tmp_path / 'absent.toml'}: cannot read: ")
    assert isinstance(info.value, ValueError)
