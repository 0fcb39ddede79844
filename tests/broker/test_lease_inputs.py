"""Bad input to the lease layer: every body gets a status, nothing raises, nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.broker.leases.wire import BadArgs, parse
from tests.broker.leaseharness import Harness

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=4),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_fields = st.sampled_from(
    [
        "resource",
        "mode",
        "wait",
        "ttl",
        "note",
        "name",
        "user",
        "host",
        "pid",
        "key",
        "reason",
        "token",
        "request",
        "prefix",
        "after",
        "path",
        "args",
        "value",
    ]
)
_bodies = st.one_of(
    _values,
    st.dictionaries(
        _fields,
        st.one_of(_values, st.sampled_from(["lab/arm", "shared", "exclusive", "lab//x", ""])),
        max_size=6,
    ),
)


def _call(h: Harness, code: int, a: dict[str, Any]) -> Any:
    if code == 0x50:
        resource = a.pop("resource")
        return h.table.acquire("A", resource, h.now, **a)[0]
    if code == 0x51:
        return h.table.take(
            "A", a["resource"], a["reason"], h.now, ttl=a["ttl"], identity=a["identity"]
        )[0]
    if code == 0x52:
        return h.table.return_lease("A", a["token"], h.now)[0]
    if code == 0x53:
        return h.table.retain("A", a["token"], h.now)[0]
    if code == 0x54:
        return h.table.validate(a["token"], h.now, a["resource"])[0]
    if code == 0x55:
        return h.table.cancel("A", a["request"], h.now)[0]
    if code == 0x56:
        return h.table.info(a["resource"], h.now)[0]
    if code == 0x57:
        return h.table.list(h.now, a["prefix"], a["after"])[0]
    return {"status": "OK"}  # guard, call, set: router-level, covered by the wire tests


@settings(max_examples=300, deadline=None)
@given(code=st.integers(min_value=0x50, max_value=0x5A), body=_bodies)
def test_any_body_gets_a_status(code: int, body: Any) -> None:
    """Any decoded body: bad_args from the parser, or a status from the table; never a crash."""
    h = Harness()
    h.connect("A")
    try:
        args = parse(code, body)
    except BadArgs as exc:
        assert str(exc)
        return
    reply = _call(h, code, args)
    assert isinstance(reply, dict) and isinstance(reply.get("status"), str)
    h.table.check_invariants()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resource": "r", "wait": float("nan")}, "wait"),
        ({"resource": "r", "ttl": float("inf")}, "ttl"),
        ({"resource": "r", "ttl": 0}, "ttl"),
        ({"resource": "r", "pid": True}, "pid"),
        ({"resource": "r", "note": "x" * 1025}, "note"),
        ({"resource": 5}, "resource"),
        ({"resource": "r", "key": 1}, "key"),
    ],
)
def test_acquire_field_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    """bad_args reasons say which field is wrong."""
    with pytest.raises(BadArgs, match=field):
        parse(0x50, body)


def test_acquire_defaults() -> None:
    """Missing optional fields take the documented defaults; +inf wait waits forever."""
    args = parse(0x50, {"resource": "r", "wait": float("inf"), "mode": None})
    assert (args["mode"], args["wait"], args["ttl"], args["key"]) == ("exclusive", -1, None, None)
    assert args["identity"].name == "" and args["identity"].pid is None
    assert parse(0x57, {}) == {"prefix": "", "after": None}
    with pytest.raises(BadArgs, match="reason"):
        parse(0x51, {"resource": "r", "reason": ""})
    with pytest.raises(BadArgs, match="map"):
        parse(0x52, ["token"])


@settings(max_examples=200, deadline=None)
@given(a=_values, b=_values, c=_values, d=_values)
def test_table_never_raises_on_raw_arguments(a: Any, b: Any, c: Any, d: Any) -> None:
    """Called directly with arbitrary values, every table verb answers with a status."""
    h = Harness()
    h.connect("A")
    t, now = h.table, h.now
    replies = [
        t.acquire("A", a, now, mode=b, wait=c, ttl=d, key=a)[0],
        t.acquire("A", a, now, mode="shared", wait=c, ttl=None, key=b)[0],
        t.take("A", a, b, now, ttl=c)[0],
        t.return_lease("A", a, now)[0],
        t.retain("A", b, now)[0],
        t.validate(a, now, b)[0],
        t.cancel("A", a, now)[0],
        t.info(a, now)[0],
        t.list(now, a, b)[0],
        t.check_guard("A", "lab", a, now)[0],
    ]
    assert all(isinstance(r.get("status"), str) for r in replies)
    t.check_invariants()
