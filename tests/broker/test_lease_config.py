"""The lease config file: loading, precise errors, and a broker started with one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from roost.broker import Broker
from roost.broker.leases.config import (
    LeaseConfig,
    LeaseConfigError,
    load_lease_config,
    parse_lease_config,
)
from roost.broker.leases.core import DEFAULT_MAX_RESOURCES, DEFAULT_MAX_WAITS, DEFAULT_TTL_MAX
from roost.broker.leases.routes import LeaseLayer
from roost.broker.leases.types import Declared
from roost.errors import RoostError, WaitLimit, lease_error_for
from roost.protocol import messages as m
from tests.broker.leasekit import lease
from tests.wire import connect

GOOD = """\
ttl_max = 60.5
max_resources = 50
max_waits = 7

[[resource]]
name = "lab/scope"
max_holders = 3
takeable = true

[[resource]]
name = "lab/arm"
takeable = false

[[resource]]
name = "bench"
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write ``text`` as ``leases.toml`` in ``tmp_path``; return its path."""
    path = tmp_path / "leases.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file(tmp_path: Path) -> None:
    """Every setting is read; omitted resource keys take their defaults."""
    config = load_lease_config(write(tmp_path, GOOD))
    assert config.ttl_max == 60.5
    assert config.max_resources == 50
    assert config.max_waits == 7
    assert config.resources == (
        Declared("lab/scope", 3, True),
        Declared("lab/arm", 0, False),
        Declared("bench", 0, True),
    )
    assert config.source == str(tmp_path / "leases.toml")


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    """An empty file means: no declared list and the default limits."""
    config = load_lease_config(write(tmp_path, ""))
    assert config == LeaseConfig()
    assert (config.ttl_max, config.max_resources, config.max_waits) == (
        DEFAULT_TTL_MAX,
        DEFAULT_MAX_RESOURCES,
        DEFAULT_MAX_WAITS,
    )
    assert config.resources == ()


BAD = [
    ("ttl_max = 0", "ttl_max", "finite number of seconds > 0"),
    ("ttl_max = -5", "ttl_max", "finite number of seconds > 0"),
    ("ttl_max = inf", "ttl_max", "finite number of seconds > 0"),
    ("ttl_max = nan", "ttl_max", "finite number of seconds > 0"),
    ('ttl_max = "1h"', "ttl_max", "finite number of seconds > 0"),
    ("ttl_max = true", "ttl_max", "finite number of seconds > 0"),
    ("max_resources = 0", "max_resources", "integer >= 1"),
    ("max_resources = 2.5", "max_resources", "integer >= 1"),
    ("max_resources = false", "max_resources", "integer >= 1"),
    ("max_waits = 0", "max_waits", "integer >= 1"),
    ("max_wait = 5", "max_wait", "unknown key"),
    ('[resource]\nname = "a"', "resource", "array of tables"),
    ("resource = [1]", "resource[0]", "must be a table"),
    ("[[resource]]\nmax_holders = 2", "resource[0].name", "is required"),
    ("[[resource]]\nname = 5", "resource[0].name", "must be a string"),
    ('[[resource]]\nname = "lab//arm"', "resource[0].name", "is not a resource name"),
    ('[[resource]]\nname = "lab/holder"', "resource[0].name", "is not a resource name"),
    ('[[resource]]\nname = "a"\nmax_holders = -1', "resource[0].max_holders", "integer >= 0"),
    ('[[resource]]\nname = "a"\nmax_holders = "3"', "resource[0].max_holders", "integer >= 0"),
    ('[[resource]]\nname = "a"\ntakeable = "no"', "resource[0].takeable", "true or false"),
    ('[[resource]]\nname = "a"\nmax_holder = 2', "resource[0].max_holder", "unknown key"),
    (
        '[[resource]]\nname = "a"\n[[resource]]\nname = "b"\n[[resource]]\nname = "a"',
        "resource[2].name",
        "declared twice",
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), BAD)
def test_bad_file_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    """Each wrong setting is a one-line LeaseConfigError: file, key, what is wrong."""
    path = write(tmp_path, text)
    with pytest.raises(LeaseConfigError) as info:
        load_lease_config(path)
    err = info.value
    assert isinstance(err, RoostError) and isinstance(err, ValueError)
    assert err.path == str(path) and err.key == key
    assert problem in err.problem
    assert str(err) == f"{path}: {key}: {err.problem}"
    assert "\n" not in str(err)


def test_missing_file(tmp_path: Path) -> None:
    """A file that cannot be read names the file and the OS reason."""
    path = tmp_path / "nope.toml"
    with pytest.raises(LeaseConfigError, match=r"nope\.toml: cannot read: No such file"):
        load_lease_config(path)


def test_not_toml(tmp_path: Path) -> None:
    """A TOML syntax error names the file and where the parser stopped."""
    path = write(tmp_path, "ttl_max = 60\nmax_waits = = 3\n")
    with pytest.raises(LeaseConfigError, match=r"leases\.toml: not valid TOML: .*line 2"):
        load_lease_config(path)


def test_parse_names_its_source() -> None:
    """parse_lease_config checks a decoded table and uses ``source`` in its errors."""
    assert parse_lease_config({"max_waits": 2}).max_waits == 2
    with pytest.raises(LeaseConfigError, match=r"^cfg: ttl_max: "):
        parse_lease_config({"ttl_max": 0}, "cfg")


def _layer(broker: Broker) -> LeaseLayer:
    for hook in broker.router.stop_hooks:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, LeaseLayer):
            return owner
    raise AssertionError("no lease layer installed")


@pytest.mark.anyio
async def test_keywords_override_the_file(tmp_path: Path) -> None:
    """Broker keywords win over the file; the rest comes from the file."""
    path = write(tmp_path, GOOD)
    async with Broker(port=0, lease_config=path, max_waits=3, ttl_max=9) as broker:
        table = _layer(broker).table
        assert (table.max_waits, table.ttl_max, table.max_resources) == (3, 9.0, 50)
        assert table.resource_ok("lab/scope") and not table.resource_ok("lab/other")
    config = LeaseConfig(resources=(Declared("x"),), max_resources=4)
    async with Broker(port=0, lease_config=config, resources=["y"]) as broker:
        table = _layer(broker).table
        assert table.max_resources == 4
        assert table.resource_ok("y") and not table.resource_ok("x")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("option", "value"),
    [("max_waits", 0), ("max_resources", True), ("ttl_max", float("nan")), ("ttl_max", -1)],
)
async def test_bad_keyword_limits(option: str, value: object) -> None:
    """A limit given as a keyword is checked as strictly as in the file."""
    options: dict[str, Any] = {option: value}
    broker = Broker(port=0, **options)
    with pytest.raises(ValueError, match=option):
        await broker.start()


@pytest.mark.anyio
async def test_broker_with_a_bad_file_does_not_start(tmp_path: Path) -> None:
    """A broker given a wrong file fails at start with the file's error and listens nowhere."""
    broker = Broker(port=0, lease_config=write(tmp_path, "max_waits = -1"))
    with pytest.raises(LeaseConfigError, match="max_waits"):
        await broker.start()
    assert broker.port == 0  # the requested port: nothing was bound
    await broker.close()  # and closing it is harmless


@pytest.mark.anyio
async def test_declared_max_holders_enforced_end_to_end(tmp_path: Path) -> None:
    """A broker started with the file grants lab/scope to 3 shared holders, not a 4th, and
    knows no undeclared resource."""
    path = write(tmp_path, GOOD)
    async with Broker(port=0, lease_config=str(path)) as broker:
        port = broker.port
        wires = [await connect(port, timeout=5) for _ in range(4)]
        try:
            with anyio.fail_after(10):
                for w in wires[:3]:
                    r = await lease(w, m.LeaseAcquire, resource="lab/scope", mode="shared")
                    assert r.status == "OK", r
                fourth = await lease(wires[3], m.LeaseAcquire, resource="lab/scope", mode="shared")
                assert fourth.status == "ALREADY_CLAIMED"
                assert len(fourth["holders"]) == 3
                info = await lease(wires[3], m.LeaseInfo, resource="lab/scope")
                assert info["info"]["max_holders"] == 3
                other = await lease(wires[3], m.LeaseAcquire, resource="lab/other")
                assert other.status == "INVALID_RESOURCE"
                take = await lease(wires[3], m.LeaseTake, resource="lab/arm", reason="r")
                assert take.status == "NOT_PERMITTED"
                long = await lease(wires[3], m.LeaseAcquire, resource="bench", ttl=61)
                assert long.status == "bad_args" and "60.5" in long["reason"]
        finally:
            for w in wires:
                await w.aclose()


@pytest.mark.anyio
async def test_wait_limit_on_the_wire(tmp_path: Path) -> None:
    """With max_waits = 1 from the file, a second waiting acquire of one connection gets an
    error reply {status: WAIT_LIMIT, max_waits: 1}; the first wait stays queued."""
    async with (
        Broker(port=0, lease_config=write(tmp_path, "max_waits = 1")) as broker,
        await connect(broker.port, timeout=5) as a,
        await connect(broker.port, timeout=5) as b,
    ):
        with anyio.fail_after(10):
            for name in ("r1", "r2"):
                assert (await lease(a, m.LeaseAcquire, resource=name)).status == "OK"
            first = await lease(b, m.LeaseAcquire, resource="r1", wait=-1)
            assert first.status == "QUEUED"
            second = await lease(b, m.LeaseAcquire, resource="r2", wait=-1)
            assert not second.ok
            assert second.value == {"status": "WAIT_LIMIT", "max_waits": 1}
            assert isinstance(lease_error_for(second.value), WaitLimit)
            info = await lease(b, m.LeaseInfo, resource="r1")
            assert [w["request"] for w in info["info"]["waiters"]] == [first["request"]]
