"""Lease request bodies in, typed arguments out: the field checks of protocol.md E3 and E7.

Rules of this module:

- Pure: a decoded body map in, a dict of checked arguments (or a ``bad_args`` reason) out.
- Unknown keys are ignored; a missing required field or a wrong type is ``bad_args``. A present
  but malformed ``token`` is not checked here: the use status says ``INVALID_LEASE``.
- Resource names are only type-checked (``str``); their shape is the table's ``INVALID_RESOURCE``.
"""

from __future__ import annotations

import math
from typing import Any, Final

from roost.broker.leases.types import IDENTITY_MAX, MODES, Identity

__all__ = ("BadArgs", "identity_of", "parse")

_MISSING: Final = object()


class BadArgs(Exception):
    """A request body field is missing or has the wrong type; ``str(exc)`` says which."""


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _get(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    value = body.get(key, default)
    if value is _MISSING:
        raise BadArgs(f"missing field {key!r}")
    return value


def _str(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    value = _get(body, key, default)
    if value is not default and not isinstance(value, str):
        raise BadArgs(f"{key!r} must be a str")
    return value


def identity_of(body: dict[str, Any]) -> Identity:
    """The declared identity (``name``, ``user``, ``host``, ``pid``, ``note``) of a request.

    Raises:
        BadArgs: a field of the wrong type or too long.
    """
    fields: dict[str, str] = {}
    for k in ("name", "user", "host", "note"):
        v = body.get(k)
        if v is None:
            v = ""
        elif not isinstance(v, str):
            raise BadArgs(f"{k!r} must be a str")
        elif len(v) > IDENTITY_MAX:
            raise BadArgs(f"{k!r} is longer than {IDENTITY_MAX} characters")
        fields[k] = v
    pid = body.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
        raise BadArgs("'pid' must be an int or nil")
    return Identity(pid=pid, **fields)


def _ttl(body: dict[str, Any]) -> float | None:
    ttl = body.get("ttl")
    if ttl is None:
        return None
    if not _number(ttl) or not math.isfinite(ttl) or ttl <= 0:
        raise BadArgs("'ttl' must be a number > 0 or nil")
    return float(ttl)


def _acquire(body: dict[str, Any]) -> dict[str, Any]:
    mode = body.get("mode", "exclusive")
    if mode is None:
        mode = "exclusive"
    if not isinstance(mode, str) or mode not in MODES:
        raise BadArgs("'mode' must be 'exclusive' or 'shared'")
    wait = body.get("wait", 0)
    if wait is None:
        wait = 0
    if not _number(wait) or math.isnan(wait):
        raise BadArgs("'wait' must be a number of seconds")
    if math.isinf(wait):
        wait = -1 if wait > 0 else 0
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise BadArgs("'key' must be a str or nil")
    return {
        "resource": _str(body, "resource"),
        "mode": mode,
        "wait": float(wait),
        "ttl": _ttl(body),
        "identity": identity_of(body),
        "key": key,
    }


def _take(body: dict[str, Any]) -> dict[str, Any]:
    reason = _str(body, "reason")
    if not reason:
        raise BadArgs("'reason' must not be empty")
    return {
        "resource": _str(body, "resource"),
        "reason": reason,
        "ttl": _ttl(body),
        "identity": identity_of(body),
    }


def _token(body: dict[str, Any]) -> dict[str, Any]:
    return {"token": _get(body, "token")}


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    return {"token": _get(body, "token"), "resource": _str(body, "resource", None)}


def _cancel(body: dict[str, Any]) -> dict[str, Any]:
    request = _get(body, "request")
    if not isinstance(request, int) or isinstance(request, bool):
        raise BadArgs("'request' must be an int")
    return {"request": request}


def _info(body: dict[str, Any]) -> dict[str, Any]:
    return {"resource": _str(body, "resource")}


def _list(body: dict[str, Any]) -> dict[str, Any]:
    prefix = _str(body, "prefix", None)
    return {"prefix": prefix or "", "after": _str(body, "after", None)}


def _guard(body: dict[str, Any]) -> dict[str, Any]:
    resource = _get(body, "resource")
    if resource is not None and not isinstance(resource, str):
        raise BadArgs("'resource' must be a str or nil")
    return {"path": _str(body, "path"), "resource": resource}


def _proof(body: dict[str, Any]) -> dict[str, Any]:
    """A ``token``, or a durable lock's ``key`` (a str) in its place."""
    key = body.get("key")
    if key is not None:
        if not isinstance(key, str):
            raise BadArgs("'key' must be a str")
        return {"token": body.get("token"), "key": key}
    return {"token": _get(body, "token"), "key": None}


def _call(body: dict[str, Any]) -> dict[str, Any]:
    return {"path": _str(body, "path"), "args": _get(body, "args"), **_proof(body)}


def _set(body: dict[str, Any]) -> dict[str, Any]:
    return {"path": _str(body, "path"), "value": _get(body, "value"), **_proof(body)}


_PARSERS: Final = {
    0x50: _acquire,
    0x51: _take,
    0x52: _token,
    0x53: _token,
    0x54: _validate,
    0x55: _cancel,
    0x56: _info,
    0x57: _list,
    0x58: _guard,
    0x59: _call,
    0x5A: _set,
}


def parse(code: int, body: object) -> dict[str, Any]:
    """Check the body of extension request ``code`` and return its arguments.

    Raises:
        BadArgs: the body is not a map, or a field is missing or of the wrong type.
    """
    if not isinstance(body, dict):
        raise BadArgs("the body must be a map")
    return _PARSERS[code](body)
