"""Patterns, grants, the auth config sections and their errors, listener exposure rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.broker.auth.acl import Rule, compile_pattern, grants_for
from roost.broker.auth.settings import from_sections
from roost.broker.auth.users import Users, hash_password, set_password
from roost.broker.config import load_config, parse_config
from roost.broker.listeners import Listener, check_exposure, is_loopback
from roost.errors import ConfigError


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/kitchen/**", "/kitchen", True),
        ("/kitchen/**", "/kitchen/light/on", True),
        ("/kitchen/**", "/kitchenette", False),
        ("/lab/+/scope", "/lab/a/scope", True),
        ("/lab/+/scope", "/lab/scope", False),
        ("/lab/+/scope", "/lab/a/b/scope", False),
        ("/a", "/a", True),
        ("/a", "/a/b", False),
        ("/**", "/anything/at/all", True),
    ],
)
def test_pattern_matching(pattern: str, path: str, matches: bool) -> None:
    assert compile_pattern(pattern).matches(path) is matches


@pytest.mark.parametrize("bad", ["kitchen", "/a/", "/a/**/b", "/a b", "/a//b", "/ä"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        compile_pattern(bad)


def test_reaches_for_listings() -> None:
    p = compile_pattern("/lab/+/scope")
    assert p.reaches("/lab") and p.reaches("/lab/x") and p.reaches("/lab/x/scope")
    assert not p.reaches("/kitchen") and not p.reaches("/lab/x/other")


def test_grants_by_user_group_and_everybody() -> None:
    rules = [
        Rule("@phones", (compile_pattern("/kitchen/**"),), frozenset({"call", "observe"})),
        Rule("*", (compile_pattern("/public/**"),), frozenset({"get"})),
        Rule("dash", (compile_pattern("/**"),), frozenset({"get", "observe"})),
    ]
    groups = {"phones": frozenset({"pixel"})}
    pixel = grants_for("pixel", rules, groups)
    assert pixel.allows("call", "/kitchen/light")
    assert not pixel.allows("set", "/kitchen/light")
    assert pixel.allows("get", "/public/t")
    assert not pixel.allows("get", "/kitchen/light")
    anon = grants_for("anonymous", rules, groups)
    assert anon.permissions("/public/x") == ["get"]
    assert anon.permissions("/kitchen/x") == []
    # /meta: open nodes for all, clients and lease events for admins only.
    assert anon.allows("call", "/meta/ls") and anon.allows("get", "/meta/broker")
    assert not grants_for("dash", rules, groups).allows("get", "/meta/clients")
    admin = grants_for("root", [Rule("root", (compile_pattern("/**"),), frozenset({"admin"}))], {})
    assert admin.allows("observe", "/meta/clients")
    assert admin.allows("observe", "/meta/leases/lab/holder")
    lessee = grants_for("u", [Rule("u", (compile_pattern("/lab/**"),), frozenset({"lease"}))], {})
    assert lessee.allows("observe", "/meta/leases/lab/scope/holder")
    assert not lessee.allows("observe", "/meta/leases/kitchen/holder")
    assert not lessee.allows("set", "/meta/leases/lab/holder")


HASHED = hash_password("pw")


def test_config_sections_parse() -> None:
    config = parse_config(
        f"""
[[listener]]
host = "127.0.0.1"
port = 0

[users]
alice = "{HASHED}"

[groups]
kitchen = ["alice", "anonymous"]

[[acl]]
group = "kitchen"
paths = ["/kitchen/**"]
allow = ["all"]
"""
    )
    auth = from_sections(config.get)
    assert set(auth.users.hashes) == {"alice"}
    assert auth.users.verify("alice", "pw") and not auth.users.verify("alice", "no")
    assert not auth.users.verify("nobody", "pw")
    assert grants_for("anonymous", auth.rules, auth.users.groups).allows("set", "/kitchen/a")
    assert config.get("listener") == (Listener("127.0.0.1", 0),)


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ('[users]\nalice = "plain"\n', 2, "users.alice", "argon2id"),
        ('[users]\n"bad name" = "$argon2id$x"\n', 2, "users.bad name", "bad user name"),
        ("[groups]\ng = [1]\n", 2, "groups.g", "list of user names"),
        ('[[acl]]\nuser = "a"\npaths = ["/x"]\nallow = ["fly"]\n', 4, "acl[0].allow", "fly"),
        ('[[acl]]\nuser = "a"\npaths = ["x"]\nallow = ["get"]\n', 3, "acl[0].paths", "pattern"),
        ('[[acl]]\npaths = ["/x"]\nallow = ["get"]\n', 1, "acl[0]", "exactly one of"),
        ('[[acl]]\nuser = "a"\nallow = ["get"]\n', 1, "acl[0].paths", "non-empty"),
        ("[[listener]]\nport = 70000\n", 2, "listener[0].port", "0-65535"),
        ('[[listener]]\ntls_cert = "c.pem"\n', 1, "listener[0].tls_key", "go together"),
        ('[[listener]]\nclient_ca = "ca.pem"\n', 2, "listener[0].client_ca", "need TLS"),
        ('[[listener]]\nhots = "x"\n', 2, "listener[0].hots", "unknown key"),
    ],
)
def test_config_errors_name_line_and_key(text: str, line: int, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "roost.toml")
    assert info.value.key == key
    assert info.value.line == line
    assert problem in str(info.value)


def test_users_file_and_passwd(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    assert set_password(str(users), "alice", "one") is False
    assert set_password(str(users), "bob", "two") is False
    assert set_password(str(users), "alice", "three") is True
    assert (users.stat().st_mode & 0o777) == 0o600
    config = tmp_path / "roost.toml"
    config.write_text('users_file = "users.toml"\n\n[leases]\nttl_max = 5\n')
    auth = from_sections(load_config(config).get)
    assert set(auth.users.hashes) == {"alice", "bob"}
    assert auth.users.verify("alice", "three") and not auth.users.verify("alice", "one")
    # passwd into the config file itself keeps the other tables.
    set_password(str(config), "carol", "four")
    again = load_config(config)
    assert again.get("leases") is not None
    assert Users(again.get("users")).verify("carol", "four")


def test_exposure_rules() -> None:
    net = Listener("0.0.0.0", 1)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert check_exposure([Listener()], users=False, rules=False, allow_anonymous=False) == []
    with pytest.raises(ValueError, match="--allow-anonymous"):
        check_exposure([net], users=False, rules=False, allow_anonymous=False)
    warnings = check_exposure([net], users=False, rules=False, allow_anonymous=True)
    assert any("may do everything" in w for w in warnings)
    # Users and rules, anonymous off: starts, but warns that passwords would cross in clear.
    warnings = check_exposure([net], users=True, rules=True, allow_anonymous=False)
    assert warnings == []
    warnings = check_exposure([net], users=True, rules=False, allow_anonymous=False)
    assert any("every user may do everything" in w for w in warnings)
    with pytest.raises(ValueError, match="nobody could connect"):
        check_exposure([net], users=False, rules=True, allow_anonymous=False)
    plain_passwords = Listener("0.0.0.0", 1, password_login=True)
    warnings = check_exposure([plain_passwords], users=True, rules=True, allow_anonymous=False)
    assert any("in clear" in w for w in warnings)
