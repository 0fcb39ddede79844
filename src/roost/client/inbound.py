"""Calling user callbacks: sync or async, and turning their outcome into a reply.

Rules of this module:

- A callback may be a plain function or a coroutine function (or return an awaitable).
- Its return value becomes an ``ok`` reply; ``RemoteError`` raised in it becomes an error reply
  with its ``value``; any other exception becomes an error reply with ``str(exc)``, as eshet.py
  does. A result that cannot be packed or does not fit a frame becomes an error reply too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from roost.errors import RemoteError
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = ("accepts_token", "call_user", "error_reply", "ok_reply", "spread")


async def call_user(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` and await its result if it is awaitable."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def spread(args: Any) -> tuple[Any, ...]:
    """Positional arguments of an ``action_call``: an array is spread, anything else is one."""
    return tuple(args) if isinstance(args, list) else (args,)


def accepts_token(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes a ``token`` keyword (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "token" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    )


def ok_reply(rid: int, result: Any) -> m.ReplyOk | m.ReplyError:
    """An ``ok`` reply carrying ``result``, or an error reply if it has no msgpack form."""
    try:
        return m.ReplyOk(rid, Value.of(result))
    except (TypeError, ValueError, OverflowError) as exc:
        return m.ReplyError(rid, Value.of(f"result cannot be sent: {exc}"))


def error_reply(rid: int, exc: Exception) -> m.ReplyError:
    """The error reply for an exception raised by a callback."""
    value: Any = exc.value if isinstance(exc, RemoteError) else str(exc)
    try:
        return m.ReplyError(rid, Value.of(value))
    except (TypeError, ValueError, OverflowError):
        return m.ReplyError(rid, Value.of(str(exc)))
