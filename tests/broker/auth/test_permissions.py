"""Every permission, allowed and denied, for every request type it governs (``forbidden``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from roost.broker.auth.acl import PERMISSIONS
from roost.protocol import messages as m
from tests.broker.auth.authkit import broker, settings, user_wire
from tests.wire import Wire, v

pytestmark = pytest.mark.anyio

# The owner registers these; each case's user then acts on them.
NODES = {"action": "/t/act", "prop": "/t/prop", "state": "/t/state", "event": "/t/ev"}

_RULES = "\n".join(
    f"""
[[acl]]
user = "only_{perm}"
paths = ["/t/**", "/u/**", "/meta/**"]
allow = ["{perm}"]

[[acl]]
user = "all_but_{perm}"
paths = ["/t/**", "/u/**", "/meta/**"]
allow = {[p for p in PERMISSIONS if p != perm]!r}
"""
    for perm in PERMISSIONS
).replace("'", '"')
_USERS = "\n".join(f'only_{p} = "{{hash}}"\nall_but_{p} = "{{hash}}"' for p in PERMISSIONS)
CONFIG = f"""
[users]
owner = "{{hash}}"
{_USERS}

[[acl]]
user = "owner"
paths = ["/t/**"]
allow = ["register"]
{_RULES}
"""

Request = Callable[[Wire], Awaitable[Any]]


def _req(make: Callable[[int], m.Message]) -> Request:
    async def run(wire: Wire) -> Any:
        return await wire.request(make(wire.next_id()))

    return run


def _body(obj: Any) -> Any:
    return v(obj)


# permission -> the requests it governs (each on a node the owner provides, or a fresh path).
CASES: dict[str, list[tuple[str, Request]]] = {
    "register": [
        ("action_register", _req(lambda i: m.ActionRegister(i, "/u/a"))),
        ("prop_register", _req(lambda i: m.PropRegister(i, "/u/p"))),
        ("event_register", _req(lambda i: m.EventRegister(i, "/u/e"))),
        ("state_register", _req(lambda i: m.StateRegister(i, "/u/s"))),
    ],
    "call": [("action_call", _req(lambda i: m.ActionCall(i, "/t/act", v([]))))],
    "get": [
        ("get_state", _req(lambda i: m.Get(i, "/t/state"))),
        ("get_prop", _req(lambda i: m.Get(i, "/t/prop"))),
    ],
    "set": [
        ("set_prop", _req(lambda i: m.Set(i, "/t/prop", v(1)))),
        ("set_state", _req(lambda i: m.Set(i, "/t/state", v(1)))),
    ],
    "observe": [
        ("state_observe", _req(lambda i: m.StateObserve(i, "/t/state"))),
        ("state_observe_t", _req(lambda i: m.StateObserveT(i, "/t/state"))),
    ],
    "listen": [("event_listen", _req(lambda i: m.EventListen(i, "/t/ev")))],
    "emit": [("event_emit", _req(lambda i: m.EventEmit(i, "/t/ev", v(1))))],
    "lease": [
        ("lease_acquire", _req(lambda i: m.LeaseAcquire(i, _body({"resource": "t/r"})))),
        ("lease_info", _req(lambda i: m.LeaseInfo(i, _body({"resource": "t/r"})))),
        ("lock_set", _req(lambda i: m.LockSet(i, _body({"resource": "t/k", "key": "secret"})))),
    ],
    "take": [
        ("lease_take", _req(lambda i: m.LeaseTake(i, _body({"resource": "t/r", "reason": "x"}))))
    ],
    "admin": [
        ("get_meta_clients", _req(lambda i: m.Get(i, "/meta/clients"))),
        ("auth_reload", _req(lambda i: m.AuthReload(i, _body({})))),
        ("pool_reload", _req(lambda i: m.PoolReload(i, _body({})))),
    ],
}
PARAMS = [(perm, name, req) for perm, reqs in CASES.items() for name, req in reqs]


def _forbidden(reply: Any) -> bool:
    if not isinstance(reply, m.ReplyError):
        return False
    obj = reply.value.obj
    return obj == "forbidden" or (isinstance(obj, dict) and obj.get("status") == "forbidden")


def test_every_permission_has_cases() -> None:
    assert set(CASES) == set(PERMISSIONS)


async def _answer_owner(owner: Wire) -> None:
    """Answer forwarded calls, gets and sets on the owner's connection."""
    while True:
        msg = await owner.recv(timeout=30)
        if isinstance(msg, (m.ActionCall, m.PropGet, m.PropSet, m.StateSet)):
            await owner.send(m.ReplyOk(msg.id, v("done")))


@pytest.mark.parametrize(("perm", "name", "request_"), PARAMS, ids=[p[1] for p in PARAMS])
async def test_allowed_and_denied(perm: str, name: str, request_: Request) -> None:
    import anyio

    with broker(settings(CONFIG)) as b:
        owner = await user_wire(b.port, "owner")
        for kind, path in NODES.items():
            await owner.register(kind, path)
        await owner.call_ok(m.StateChanged(owner.next_id(), "/t/state", v(0)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(_answer_owner, owner)
            allowed = await user_wire(b.port, f"only_{perm}")
            reply = await request_(allowed)
            assert not _forbidden(reply), f"{perm} granted, {name} refused: {reply!r}"
            assert isinstance(reply, (m.ReplyOk, m.ReplyStateKnown, m.ReplyStateTKnown)) or (
                isinstance(reply, m.ReplyError) and isinstance(reply.value.obj, dict)
            ), reply
            denied = await user_wire(b.port, f"all_but_{perm}")
            reply = await request_(denied)
            assert _forbidden(reply), f"{perm} not granted, {name} answered {reply!r}"
            await denied.assert_open()
            tg.cancel_scope.cancel()
        for wire in (owner, allowed, denied):
            await wire.aclose()
