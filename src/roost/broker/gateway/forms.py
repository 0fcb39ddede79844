"""The JSON forms of the websocket protocol: native messages <-> JSON arrays, sans-IO.

Rules of this module:

- One websocket text message is one JSON array: ``[verb, fields...]`` with eshetsrv's verbs and
  field order (protocol.md, "HTTP and WebSocket gateway"): ``["action_call", id, path, args]``,
  ``["reply", id, ["ok", value]]``, ``["state_changed", path, ["known", value]]``, ...
- :func:`to_message` turns a client's form into the native message the router would have
  received over TCP; a form that is not one of the listed shapes raises :class:`FormError` (the
  gateway closes that websocket with code 4000 and the error text).
- :func:`to_form` turns a native message the router queued for the client into its form.
- roost's extensions keep their native fields: requests are ``[verb, id, {map}]`` (leases E7,
  subtree subscriptions E12), pushes carry what the native push carries
  (``["subtree_changed", path, value]``, ``["subtree_snapshot", sub, path, value]``).
- Values: JSON in, msgpack for the router; msgpack back to JSON by :func:`json_value`, which
  states how the values JSON has no word for are written (bin, non-str keys, non-finite floats,
  integers a JavaScript number cannot hold).
- No sockets, no event loop, no clock.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Final

from roost.protocol import messages as m
from roost.protocol.values import MapPairs, Value, pack

__all__ = (
    "AUTH_FORMS",
    "LEASE_FORMS",
    "SAFE_INT",
    "SUBTREE_FORMS",
    "FormError",
    "json_value",
    "to_form",
    "to_message",
    "wire_value",
)

#: Integers beyond this magnitude are sent as decimal strings (JavaScript's exact range).
SAFE_INT: Final = 2**53 - 1

#: msgpack's one never-used byte: a value that cannot be packed travels as this, and the
#: broker answers ``invalid_value`` in the order of the client's requests.
_INVALID: Final = Value(b"\xc1")


class FormError(ValueError):
    """A websocket message that is not one of the JSON forms; the text says what is wrong."""


# -- values --------------------------------------------------------------------------------------


def json_value(obj: Any) -> Any:
    """A decoded msgpack value as something :func:`json.dumps` writes, and JavaScript reads,
    without loss where JSON has the type.

    - bin: ``{"$bin": "<base64>"}``;
    - a map key that is not a str: the JSON text of the key (``1`` -> ``"1"``, ``[1,2]`` ->
      ``"[1, 2]"``); a map whose keys are arrays (``MapPairs``) the same way;
    - NaN and the infinities: the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
    - an integer beyond +-(2**53 - 1): its decimal string.
    """
    kind = type(obj)
    if kind is str or obj is None or kind is bool:
        return obj
    if kind is int:
        return obj if -SAFE_INT <= obj <= SAFE_INT else str(obj)
    if kind is float:
        if math.isfinite(obj):
            return obj
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if kind is list or kind is tuple:
        return [json_value(item) for item in obj]
    if kind is dict:
        return {_json_key(key): json_value(item) for key, item in obj.items()}
    if isinstance(obj, MapPairs):
        return {_json_key(key): json_value(item) for key, item in obj}
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"$bin": base64.b64encode(bytes(obj)).decode("ascii")}
    return str(obj)


def _json_key(key: Any) -> str:
    if type(key) is str:
        return key
    return json.dumps(json_value(key), sort_keys=True)


def wire_value(obj: Any) -> Value:
    """A JSON value as the msgpack value the router receives. A value msgpack cannot hold (an
    integer beyond 64 bits) becomes an invalid value, which the broker refuses with
    ``invalid_value`` like any other."""
    try:
        return Value(pack(obj), obj)
    except (OverflowError, TypeError, ValueError):
        return _INVALID


# -- client forms --------------------------------------------------------------------------------

_PATH_FORMS: Final[dict[str, Any]] = {
    "action_register": m.ActionRegister,
    "prop_register": m.PropRegister,
    "get": m.Get,
    "event_register": m.EventRegister,
    "event_listen": m.EventListen,
    "state_register": m.StateRegister,
    "state_unknown": m.StateUnknown,
    "state_observe": m.StateObserve,
    "state_observe_t": m.StateObserveT,
}
_VALUE_FORMS: Final[dict[str, Any]] = {
    "action_call": m.ActionCall,
    "set": m.Set,
    "event_emit": m.EventEmit,
    "state_changed": m.StateChanged,
}
#: roost's lease extension: ``[verb, id, {fields}]`` (protocol.md E7; durable locks E14 and
#: pools E15 included).
LEASE_FORMS: Final[dict[str, Any]] = {
    "lease_acquire": m.LeaseAcquire,
    "lease_take": m.LeaseTake,
    "lease_return": m.LeaseReturn,
    "lease_retain": m.LeaseRetain,
    "lease_validate": m.LeaseValidate,
    "lease_cancel": m.LeaseCancel,
    "lease_info": m.LeaseInfo,
    "lease_list": m.LeaseList,
    "lease_guard": m.LeaseGuard,
    "lease_call": m.LeaseCall,
    "lease_set": m.LeaseSet,
    "lock_set": m.LockSet,
    "lock_clear": m.LockClear,
    "lock_info": m.LockInfo,
    "pool_list": m.PoolList,
    "pool_reload": m.PoolReload,
}

#: roost's identity extension (protocol.md E16): ``["auth_login", id, {"user": U, "password":
#: P}]`` before the hello, so a websocket acts as its user.
AUTH_FORMS: Final[dict[str, Any]] = {"auth_login": m.AuthLogin}

#: roost's subtree subscriptions: ``[verb, id, {"sub": S, "pattern": P}]`` (protocol.md E12).
SUBTREE_FORMS: Final[dict[str, Any]] = {
    "subtree_listen": m.SubtreeListen,
    "subtree_observe": m.SubtreeObserve,
    "subtree_cancel": m.SubtreeCancel,
}


def _int(form: list[Any], index: int, what: str, top: int) -> int:
    value = form[index]
    if type(value) is not int or not 0 <= value <= top:
        raise FormError(f"{form[0]}: {what} must be an integer from 0 to {top}")
    return value


def _path(form: list[Any]) -> str:
    path = form[2]
    if type(path) is not str:
        raise FormError(f"{form[0]}: the path must be a string")
    return path


def _arity(form: list[Any], count: int) -> None:
    if len(form) != count:
        raise FormError(f"{form[0]}: expected {count - 1} fields, got {len(form) - 1}")


def to_message(form: Any) -> m.Message:
    """The native message a client's JSON form stands for.

    Raises:
        FormError: ``form`` is not an array starting with a known verb, or has the wrong number
            or kinds of fields (ids are integers 0-65535, paths strings).
    """
    if not isinstance(form, list) or not form or type(form[0]) is not str:
        raise FormError("a message must be a JSON array starting with a verb")
    verb = form[0]
    cls = _PATH_FORMS.get(verb)
    if cls is not None:
        _arity(form, 3)
        return cls(_int(form, 1, "the id", 0xFFFF), _path(form))  # type: ignore[no-any-return]
    cls = _VALUE_FORMS.get(verb)
    if cls is not None:
        _arity(form, 4)
        rid = _int(form, 1, "the id", 0xFFFF)
        return cls(rid, _path(form), wire_value(form[3]))  # type: ignore[no-any-return]
    cls = LEASE_FORMS.get(verb) or SUBTREE_FORMS.get(verb) or AUTH_FORMS.get(verb)
    if cls is not None:
        _arity(form, 3)
        rid = _int(form, 1, "the id", 0xFFFF)
        return cls(rid, wire_value(_lease_fields(form[2])))  # type: ignore[no-any-return]
    if verb == "ping":
        _arity(form, 2)
        return m.Ping(_int(form, 1, "the id", 0xFFFF))
    if verb == "hello":
        _arity(form, 3)
        return m.Hello(_int(form, 1, "the version", 0xFF), _int(form, 2, "the timeout", 0xFFFF))
    if verb == "hello_id":
        _arity(form, 4)
        version = _int(form, 1, "the version", 0xFF)
        return m.HelloId(version, _int(form, 2, "the timeout", 0xFFFF), wire_value(form[3]))
    if verb == "reply":
        _arity(form, 3)
        rid = _int(form, 1, "the id", 0xFFFF)
        result = form[2]
        if not (isinstance(result, list) and len(result) == 2 and result[0] in ("ok", "error")):
            raise FormError('reply: the result must be ["ok", value] or ["error", value]')
        cls = m.ReplyOk if result[0] == "ok" else m.ReplyError
        return cls(rid, wire_value(result[1]))
    raise FormError(f"unknown verb {verb!r}")


def _lease_fields(fields: Any) -> Any:
    """A lease request's fields, with a token's ``epoch`` given as a decimal string (as
    :func:`json_value` writes large integers) turned back into its integer."""
    if not isinstance(fields, dict):
        return fields
    token = fields.get("token")
    if isinstance(token, dict) and isinstance(token.get("epoch"), str):
        epoch = token["epoch"]
        if epoch.lstrip("-").isdigit():
            fields = {**fields, "token": {**token, "epoch": int(epoch)}}
    return fields


# -- server forms --------------------------------------------------------------------------------

_NOTIFY_VERBS: Final[dict[type, str]] = {
    m.LeaseGranted: "lease_granted",
    m.LeaseRevoked: "lease_revoked",
    m.LeaseWaitEnded: "lease_wait_ended",
    m.AccessChanged: "access_changed",
}


def to_form(msg: m.Message) -> list[Any] | None:
    """The JSON form of a message the broker sends to a client (``None`` for a message a
    client never receives)."""
    kind = type(msg)
    if kind is m.ReplyOk or kind is m.ReplyError:
        result = "ok" if kind is m.ReplyOk else "error"
        return ["reply", msg.id, [result, json_value(msg.value.obj)]]  # type: ignore[union-attr]
    if kind is m.StateNotify:
        return ["state_changed", msg.path, ["known", json_value(msg.value.obj)]]  # type: ignore[union-attr]
    if kind is m.EventNotify:
        return ["event_notify", msg.path, json_value(msg.value.obj)]  # type: ignore[union-attr]
    if kind is m.StateNotifyUnknown:
        return ["state_changed", msg.path, "unknown"]  # type: ignore[union-attr]
    if kind is m.ReplyStateKnown:
        return ["reply_state", msg.id, ["ok", ["known", json_value(msg.value.obj)]]]  # type: ignore[union-attr]
    if kind is m.ReplyStateUnknown:
        return ["reply_state", msg.id, ["ok", "unknown"]]  # type: ignore[union-attr]
    if kind is m.ReplyStateTKnown:
        assert isinstance(msg, m.ReplyStateTKnown)
        known = ["known", json_value(msg.value.obj)]
        return ["reply_state", msg.id, ["ok", known, msg.ms / 1000]]
    if kind is m.ReplyStateTUnknown:
        assert isinstance(msg, m.ReplyStateTUnknown)
        return ["reply_state", msg.id, ["ok", "unknown", msg.ms / 1000]]
    if kind is m.ActionCall:
        assert isinstance(msg, m.ActionCall)
        return ["action_call", msg.id, msg.path, json_value(msg.args.obj)]
    if kind is m.PropGet:
        assert isinstance(msg, m.PropGet)
        return ["prop_get", msg.id, msg.path]
    if kind is m.PropSet or kind is m.StateSet:
        assert isinstance(msg, m.PropSet | m.StateSet)
        verb = "prop_set" if kind is m.PropSet else "state_set"
        return [verb, msg.id, msg.path, json_value(msg.value.obj)]
    if kind is m.ServerHelloId:
        assert isinstance(msg, m.ServerHelloId)
        return ["hello_id", json_value(msg.client_id.obj)]
    if kind is m.ServerHello:
        return ["hello"]
    if kind is m.SubtreeEvent or kind is m.SubtreeChanged:
        assert isinstance(msg, m.SubtreeEvent | m.SubtreeChanged)
        verb = "subtree_event" if kind is m.SubtreeEvent else "subtree_changed"
        return [verb, msg.path, json_value(msg.value.obj)]
    if kind is m.SubtreeUnknown:
        assert isinstance(msg, m.SubtreeUnknown)
        return ["subtree_unknown", msg.path]
    if kind is m.SubtreeSnapshot:
        assert isinstance(msg, m.SubtreeSnapshot)
        return ["subtree_snapshot", msg.sub, msg.path, json_value(msg.value.obj)]
    push = _NOTIFY_VERBS.get(kind)
    if push is not None:
        return [push, json_value(msg.body.obj)]  # type: ignore[union-attr]
    if isinstance(msg, m.GuardedCall | m.GuardedSet):
        guarded = "guarded_call" if kind is m.GuardedCall else "guarded_set"
        return [guarded, msg.id, json_value(msg.body.obj)]
    return None
