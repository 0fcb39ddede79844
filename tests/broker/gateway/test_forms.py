"""JSON forms <-> native messages, without a broker."""

from __future__ import annotations

import math
from typing import Any

import pytest

from roost.broker.gateway.forms import FormError, json_value, to_form, to_message, wire_value
from roost.protocol import messages as m
from roost.protocol.values import MapPairs, Value


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (["hello", 1, 30], m.Hello(1, 30)),
        (["hello_id", 1, 0, "me"], m.HelloId(1, 0, Value.of("me"))),
        (["ping", 3], m.Ping(3)),
        (["action_register", 1, "/a"], m.ActionRegister(1, "/a")),
        (["action_call", 2, "/a", [1]], m.ActionCall(2, "/a", Value.of([1]))),
        (["prop_register", 1, "/p"], m.PropRegister(1, "/p")),
        (["get", 1, "/p"], m.Get(1, "/p")),
        (["set", 1, "/p", {"k": None}], m.Set(1, "/p", Value.of({"k": None}))),
        (["event_register", 1, "/e"], m.EventRegister(1, "/e")),
        (["event_emit", 1, "/e", True], m.EventEmit(1, "/e", Value.of(True))),
        (["event_listen", 1, "/e"], m.EventListen(1, "/e")),
        (["state_register", 1, "/s"], m.StateRegister(1, "/s")),
        (["state_changed", 1, "/s", 2.5], m.StateChanged(1, "/s", Value.of(2.5))),
        (["state_unknown", 1, "/s"], m.StateUnknown(1, "/s")),
        (["state_observe", 1, "/s"], m.StateObserve(1, "/s")),
        (["state_observe_t", 1, "/s"], m.StateObserveT(1, "/s")),
        (["reply", 9, ["ok", 1]], m.ReplyOk(9, Value.of(1))),
        (["reply", 9, ["error", "no"]], m.ReplyError(9, Value.of("no"))),
        (["lease_info", 4, {"resource": "r"}], m.LeaseInfo(4, Value.of({"resource": "r"}))),
    ],
)
def test_client_forms(form: list[Any], message: m.Message) -> None:
    """Each client form becomes the native message with the same fields."""
    assert to_message(form) == message


def test_token_epoch_string_becomes_int() -> None:
    """A token's epoch sent back as a decimal string (as it was received) is an int again."""
    msg = to_message(["lease_return", 1, {"token": {"epoch": "9007199254740993", "seq": [1]}}])
    assert isinstance(msg, m.LeaseReturn)
    assert msg.body.obj == {"token": {"epoch": 9007199254740993, "seq": [1]}}


@pytest.mark.parametrize(
    "form",
    [
        "hello",
        [],
        [1, 2],
        ["nope", 1],
        ["get", 1, "/a", 4],
        ["get", 65536, "/a"],
        ["get", True, "/a"],
        ["get", 1, None],
        ["reply", 1, "ok"],
        ["hello", 1, -1],
    ],
)
def test_bad_forms(form: Any) -> None:
    """Anything else raises FormError."""
    with pytest.raises(FormError):
        to_message(form)


@pytest.mark.parametrize(
    ("message", "form"),
    [
        (m.ServerHelloId(Value.of("c1")), ["hello_id", "c1"]),
        (m.ServerHello(), ["hello"]),
        (m.ReplyOk(1, Value.of(None)), ["reply", 1, ["ok", None]]),
        (m.ReplyError(1, Value.of("x")), ["reply", 1, ["error", "x"]]),
        (m.ReplyStateKnown(2, Value.of(3)), ["reply_state", 2, ["ok", ["known", 3]]]),
        (m.ReplyStateUnknown(2), ["reply_state", 2, ["ok", "unknown"]]),
        (m.ReplyStateTKnown(2, 1500, Value.of(3)), ["reply_state", 2, ["ok", ["known", 3], 1.5]]),
        (m.ReplyStateTUnknown(2, 250), ["reply_state", 2, ["ok", "unknown", 0.25]]),
        (m.ActionCall(0, "/a", Value.of([])), ["action_call", 0, "/a", []]),
        (m.PropGet(1, "/p"), ["prop_get", 1, "/p"]),
        (m.PropSet(1, "/p", Value.of(1)), ["prop_set", 1, "/p", 1]),
        (m.StateSet(1, "/s", Value.of(1)), ["state_set", 1, "/s", 1]),
        (m.EventNotify("/e", Value.of("v")), ["event_notify", "/e", "v"]),
        (m.StateNotify("/s", Value.of("v")), ["state_changed", "/s", ["known", "v"]]),
        (m.StateNotifyUnknown("/s"), ["state_changed", "/s", "unknown"]),
        (m.LeaseGranted(Value.of({"request": 1})), ["lease_granted", {"request": 1}]),
        (m.GuardedCall(5, Value.of({"path": "/a"})), ["guarded_call", 5, {"path": "/a"}]),
        (m.Ping(1), None),
    ],
)
def test_server_forms(message: m.Message, form: list[Any] | None) -> None:
    """Each message the broker sends has its form (a client-only one has none)."""
    assert to_form(message) == form


def test_json_value_edges() -> None:
    """bin, non-str keys, non-finite floats and unsafe integers get their written forms."""
    value = {
        "bin": b"\x01\x02",
        1: [math.inf, -math.inf, math.nan],
        "big": -(2**60),
        "safe": 2**53 - 1,
    }
    assert json_value(value) == {
        "bin": {"$bin": "AQI="},
        "1": ["Infinity", "-Infinity", "NaN"],
        "big": str(-(2**60)),
        "safe": 2**53 - 1,
    }
    assert json_value(MapPairs([((1, 2), "x")])) == {"[1, 2]": "x"}


def test_wire_value_refuses_what_msgpack_cannot_hold() -> None:
    """An integer beyond 64 bits becomes a value the broker refuses as invalid."""
    assert wire_value(2**64).raw == b"\xc1"
    assert wire_value([1, "a"]).obj == [1, "a"]
