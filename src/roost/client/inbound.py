"""Calling user callbacks: sync or async, and turning their outcome into a reply.

Rules of this module:

- A callback may be a plain function or a coroutine function (or return an awaitable).
- A plain function answering a forwarded request runs at once in the reader (it cannot await,
  so a task would only add a hop); a coroutine, or an awaitable it returns, runs in its own
  task, so a slow owner keeps serving other requests.
- Its return value becomes an ``ok`` reply; ``RemoteError`` raised in it becomes an error reply
  with its ``value``; any other exception becomes an error reply with ``str(exc)``, as eshet.py
  does. A result that cannot be packed or does not fit a frame becomes an error reply too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.abc

from roost.client.registrations import Registrations
from roost.errors import RemoteError
from roost.protocol import messages as m
from roost.protocol.values import Value

if TYPE_CHECKING:
    from roost.client.link import Link

__all__ = (
    "accepts_token",
    "call_user",
    "error_reply",
    "ok_reply",
    "resolve",
    "serve_request",
    "spread",
)

_Target = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


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


def resolve(regs: Registrations, msg: m.Message) -> _Target:
    """The callback answering a forwarded request, with its arguments.

    Raises:
        RemoteError: ``path_not_found`` (not ours, e.g. just unregistered), ``bad_args`` (a
            guarded forward without a map) or ``not_implemented`` (a set without a setter).
    """
    if isinstance(msg, m.ActionCall):
        action = regs.actions.get(msg.path)
        if action is None:
            raise RemoteError("path_not_found")
        return action.callback, spread(msg.args.obj), {}
    if isinstance(msg, m.PropGet):
        prop = regs.props.get(msg.path)
        if prop is None:
            raise RemoteError("path_not_found")
        return prop.get_callback, (), {}
    if isinstance(msg, (m.PropSet, m.StateSet)):
        return _setter(regs, msg.path, msg.value.obj, None)
    assert isinstance(msg, (m.GuardedCall, m.GuardedSet))
    body = msg.body.obj
    if not isinstance(body, dict):
        raise RemoteError("bad_args")
    path, token = body.get("path"), body.get("token")
    if isinstance(msg, m.GuardedSet):
        return _setter(regs, path, body.get("value"), token)
    entry = regs.actions.get(path) if isinstance(path, str) else None
    if entry is None:
        raise RemoteError("path_not_found")
    kwargs = {"token": token} if accepts_token(entry.callback) else {}
    return entry.callback, spread(body.get("args")), kwargs


def _setter(regs: Registrations, path: Any, value: Any, token: Any) -> _Target:
    setter: Callable[..., Any] | None
    prop = regs.props.get(path) if isinstance(path, str) else None
    state = regs.states.get(path) if isinstance(path, str) else None
    if prop is not None:
        setter = prop.set_callback
    elif state is not None:
        setter = state.set_callback
    else:
        raise RemoteError("path_not_found")
    if setter is None:
        raise RemoteError("not_implemented")
    kwargs = {"token": token} if token is not None and accepts_token(setter) else {}
    return setter, (value,), kwargs


#: Result types that are never awaitable: most callbacks return one, and
#: ``inspect.isawaitable`` asks an abstract base class.
PLAIN_RESULTS: frozenset[type] = frozenset(
    {type(None), bool, int, float, str, bytes, list, dict, tuple}
)

_remembered_coroutine_check = functools.lru_cache(maxsize=1024)(inspect.iscoroutinefunction)


def _is_coroutine_function(fn: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, remembered per callback (it is asked on every request)."""
    try:
        return _remembered_coroutine_check(fn)
    except TypeError:  # an unhashable callable
        return inspect.iscoroutinefunction(fn)


def serve_request(link: Link, tg: anyio.abc.TaskGroup, regs: Registrations, msg: m.Message) -> None:
    """Answer one request the broker forwarded to this owner (called in the reader)."""
    rid: int = msg.id  # type: ignore[union-attr]
    try:
        fn, args, kwargs = resolve(regs, msg)
        if _is_coroutine_function(fn):
            tg.start_soon(_finish, link, rid, fn(*args, **kwargs))
            return
        result = fn(*args, **kwargs)
        if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
            tg.start_soon(_finish, link, rid, result)
            return
        reply: m.ReplyOk | m.ReplyError = ok_reply(rid, result)
    except Exception as exc:
        reply = error_reply(rid, exc)
    _send(link, rid, reply)


async def _finish(link: Link, rid: int, pending: Awaitable[Any]) -> None:
    try:
        reply: m.ReplyOk | m.ReplyError = ok_reply(rid, await pending)
    except Exception as exc:
        reply = error_reply(rid, exc)
    _send(link, rid, reply)


def _send(link: Link, rid: int, reply: m.ReplyOk | m.ReplyError) -> None:
    try:
        link.send_nowait(reply)
    except Exception as exc:  # too large for a frame: say so rather than leave it unanswered
        link.send_nowait(error_reply(rid, exc))
