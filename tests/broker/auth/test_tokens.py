"""Lease tokens are not credentials once the broker has users or rules: a token opens a
guarded node only on its holder's connection, and lease requests follow the lease ACL."""

from __future__ import annotations

import pytest

from roost.protocol import messages as m
from tests.broker.auth.authkit import broker, settings, user_wire
from tests.broker.leasekit import lease
from tests.conftest import start_broker_thread
from tests.wire import Wire, v

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
scope = "{hash}"
alice = "{hash}"
eve = "{hash}"
bob = "{hash}"

[[acl]]
user = "scope"
paths = ["/lab/**"]
allow = ["register"]

[[acl]]
user = "alice"
paths = ["/lab/**"]
allow = ["lease", "call", "observe"]

[[acl]]
user = "eve"
paths = ["/lab/**"]
allow = ["call", "observe"]

[[acl]]
user = "bob"
paths = ["/lab/**"]
allow = ["call"]
"""


async def _serve_calls(owner: Wire, count: int) -> None:
    for _ in range(count):
        msg = await owner.recv()
        assert isinstance(msg, (m.GuardedCall, m.ActionCall)), msg
        await owner.send(m.ReplyOk(msg.id, v("zap")))


async def _setup(port: int) -> tuple[Wire, Wire, Wire, dict[str, object]]:
    owner = await user_wire(port, "scope")
    await owner.register("action", "/lab/scope")
    guard = await lease(owner, m.LeaseGuard, path="/lab/scope", resource="lab/scope")
    assert guard.status == "OK", guard
    alice = await user_wire(port, "alice")
    grant = await lease(alice, m.LeaseAcquire, resource="lab/scope")
    assert grant.status == "OK", grant
    eve = await user_wire(port, "eve")
    return owner, alice, eve, grant["lease"]["token"]


async def test_token_reuse_by_a_non_holder_is_rejected() -> None:
    with broker(settings(CONFIG)) as b:
        owner, alice, eve, token = await _setup(b.port)
        # Eve reads the holder state (she may observe /lab) and finds the token there.
        reply = await eve.request(m.StateObserve(eve.next_id(), "/meta/leases/lab/scope/holder"))
        assert isinstance(reply, m.ReplyStateKnown), reply
        shown = reply.value.obj["holders"][0]["token"]
        assert shown["seq"] == token["seq"]
        stolen = await lease(eve, m.LeaseCall, path="/lab/scope", args=[], token=shown)
        assert stolen.status == "NOT_HOLDER"
        # Her own lease request is refused by the rules (no "lease" for eve).
        refused = await lease(eve, m.LeaseAcquire, resource="lab/scope")
        assert refused.status == "forbidden"
        # A plain call from eve: no lease of hers covers the node.
        rid = eve.next_id()
        reply = await eve.request(m.ActionCall(rid, "/lab/scope", v([])))
        assert isinstance(reply, m.ReplyError) and reply.id == rid
        assert reply.value.obj.startswith("NO_LEASE")
        # The holder's own connection still gets through with the token.
        rid = await _send_lease_call(alice, token)
        await _serve_calls(owner, 1)
        reply = await alice.recv()
        assert isinstance(reply, m.ReplyOk) and reply.id == rid
        for wire in (owner, alice, eve):
            await wire.aclose()


async def test_a_sub_lease_delegated_through_the_broker() -> None:
    with broker(settings(CONFIG)) as b:
        owner, alice, eve, token = await _setup(b.port)
        body = v({"token": token, "user": "eve"})
        reply = await alice.request(m.AuthDelegate(alice.next_id(), body))
        assert isinstance(reply, m.ReplyOk), reply
        sub = reply.value.obj["token"]
        assert sub["seq"] == [*token["seq"], 1]  # type: ignore[misc]
        assert sub["client_names"][-1] == "eve"
        # Eve gets through with the sub-lease; bob with the same one does not.
        rid = await _send_lease_call(eve, sub)
        await _serve_calls(owner, 1)
        reply = await eve.recv()
        assert isinstance(reply, m.ReplyOk) and reply.id == rid
        bob = await user_wire(b.port, "bob")
        assert (await lease(bob, m.LeaseCall, path="/lab/scope", args=[], token=sub)).status == (
            "NOT_HOLDER"
        )
        # Only the holder delegates.
        reply = await eve.request(m.AuthDelegate(eve.next_id(), v({"token": token, "user": "bob"})))
        assert isinstance(reply, m.ReplyError) and reply.value.obj["status"] == "NOT_HOLDER"
        # When alice's lease ends, so does the sub-lease.
        assert (await lease(alice, m.LeaseReturn, token=token)).status == "OK"
        assert (await lease(eve, m.LeaseCall, path="/lab/scope", args=[], token=sub)).status == (
            "REVOKED"
        )
        for wire in (owner, alice, eve, bob):
            await wire.aclose()


async def _send_lease_call(wire: Wire, token: object) -> int:
    rid = wire.next_id()
    await wire.send(m.LeaseCall(rid, v({"path": "/lab/scope", "args": [], "token": token})))
    return rid


async def test_without_access_control_tokens_still_delegate() -> None:
    """No users or rules: tokens keep their ESHET-era meaning (any connection may present
    one, as delegated sub-leases need)."""
    handle, stop, thread = start_broker_thread()
    try:
        owner = await user_wire(handle.port, None)
        await owner.register("action", "/lab/scope")
        assert (await lease(owner, m.LeaseGuard, path="/lab/scope", resource="lab/scope")).ok
        holder = await user_wire(handle.port, None)
        token = (await lease(holder, m.LeaseAcquire, resource="lab/scope"))["lease"]["token"]
        other = await user_wire(handle.port, None)
        rid = await _send_lease_call(other, token)
        await _serve_calls(owner, 1)
        reply = await other.recv()
        assert isinstance(reply, m.ReplyOk) and reply.id == rid
        for wire in (owner, holder, other):
            await wire.aclose()
    finally:
        stop.set()
        thread.join(timeout=10)
