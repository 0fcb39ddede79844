"""Lease verbs of the client: acquire, take, return, retain, validate, info, list, guard, and the
``lease()`` context manager with its keep-alive.

Rules of this module:

- Nothing extension-specific is sent unless the probe of ``/meta/broker`` said the broker
  supports leases; otherwise every verb raises ``LeasesUnsupported`` before sending anything.
- Replies are maps with a ``status``; anything but ``OK``/``QUEUED`` raises the exception class
  of that status (``roost.errors.lease_error_for``).
- The keep-alive declares a lease lost a margin (max(0.5 s, 10 %)) before the broker could end
  it: for silence (the latest answered request's send time plus the server timeout) and for its
  ttl (the latest accepted retain's send time plus the ttl).
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from time import monotonic
from typing import Any, TypeAlias

import anyio

from roost.client.core import ClientCore
from roost.client.keepalive import keepalive_interval
from roost.client.leases import Lease, LeaseWallet
from roost.client.registrations import UNSENT, GuardEntry
from roost.errors import (
    Disconnected,
    LeaseError,
    LeaseLost,
    LeasesUnsupported,
    NoLease,
    NotWaiting,
    RemoteError,
    lease_error_for,
    no_lease_reply,
)
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = ("LeaseRef", "LeaseVerbs")

log = logging.getLogger("roost.client")

#: A lease, or a token map (for example a sub-lease token received from a holder).
LeaseRef: TypeAlias = Lease | Mapping[str, Any]


def _token_of(lease: LeaseRef) -> dict[str, Any]:
    return lease.token if isinstance(lease, Lease) else dict(lease)


class LeaseVerbs(ClientCore):
    """The lease half of :class:`roost.client.Client`."""

    @property
    def wallet(self) -> LeaseWallet:
        """What this client knows about each resource it met (read-only)."""
        return self._leases.wallet

    @property
    def leases(self) -> tuple[Lease, ...]:
        """The leases this client holds now."""
        return tuple(self._leases.leases.values())

    def _require_leases(self) -> None:
        if not self._lease_capable:
            raise LeasesUnsupported(
                f"the broker at {self.server} does not offer the lease extension"
                " (no extensions.lease in /meta/broker: a plain ESHET server?)"
            )

    async def _lease_request(
        self,
        cls: Callable[[int, Value], m.Message],
        body: dict[str, Any],
        timeout: float | None = None,
        on_reply: Callable[[m.Message], None] | None = None,
    ) -> dict[str, Any]:
        """Send one extension request; return the ``OK``/``QUEUED`` map or raise its status."""
        self._require_leases()
        packed = Value.of(body)
        reply = await self._request(lambda rid: cls(rid, packed), timeout, on_reply)
        value = getattr(reply, "value", None)
        obj = value.obj if isinstance(value, Value) else None
        if not isinstance(obj, dict):
            raise RemoteError(obj)
        if isinstance(reply, m.ReplyError):
            raise lease_error_for(obj)
        return obj

    def _identity(self, note: str, name: str | None) -> dict[str, Any]:
        import getpass  # noqa: PLC0415 (only lease verbs need it; keeps start-up short)

        try:
            user = getpass.getuser()
        except Exception:  # no user name in this environment
            user = ""
        return {
            "note": note,
            "name": name if name is not None else str(self.client_id or ""),
            "user": user,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    # -- acquire and take ----------------------------------------------------------------------

    async def lease_acquire(
        self,
        resource: str | None,
        *,
        requirements: Mapping[str, Any] | None = None,
        shared: bool = False,
        wait: float | None = 0,
        ttl: float | None = None,
        note: str = "",
        name: str | None = None,
        key: str | None = None,
        on_lost: Callable[[Lease], Any] | None = None,
    ) -> Lease:
        """Acquire ``resource`` and return the :class:`Lease` (for manual use; see
        :meth:`lease` for the context manager).

        Args:
            shared: shared instead of exclusive mode.
            wait: 0 fails fast; > 0 queues at most that many seconds; ``None`` or < 0 queues
                without deadline.
            ttl: if set, the lease must be retained at least every ``ttl`` seconds.
            note, name: shown to others (``name`` defaults to the client id).
            key: idempotency key (default: a fresh random one for this acquire).
            on_lost: called with the lease when it is lost.

        Raises:
            AlreadyClaimed: held incompatibly and ``wait`` is 0 (``.holders`` lists holders).
            LeaseWaitTimeout: still queued when ``wait`` ran out.
            TimeoutRequired: this client's ``server_timeout`` is 0.
            LeaseError: any other refusal; LeasesUnsupported: a plain ESHET broker.
            Disconnected: the connection was lost before the grant.

        Cancelling while queued cancels the wait on the broker; a grant that wins that race is
        returned at once.
        """
        body: dict[str, Any] = {
            # A pool acquire names requirements instead (see LockVerbs.pool_acquire).
            **({"resource": resource} if requirements is None else {"requirements": requirements}),
            "mode": "shared" if shared else "exclusive",
            "wait": -1 if wait is None else wait,
            "key": key if key is not None else os.urandom(16).hex(),
            **self._identity(note, name),
        }
        if ttl is not None:
            body["ttl"] = ttl
        book = self._leases
        queued: list[Any] = []

        def on_reply(reply: m.Message) -> None:  # in the reader, before any later push
            obj = reply.value.obj if isinstance(reply, m.ReplyOk) else None
            if isinstance(obj, dict) and obj.get("status") == "QUEUED":
                queued.append(book.expect(obj.get("request")))

        sent_at = monotonic()
        try:
            reply = await self._lease_request(m.LeaseAcquire, body, on_reply=on_reply)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled: the broker may have queued or granted
                with anyio.CancelScope(shield=True):
                    await self._undo_acquire(body)
            raise
        if reply.get("status") != "QUEUED":
            return self._granted(reply.get("lease"), sent_at, on_lost)
        wait_entry = queued[0]
        try:
            await wait_entry.event.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._abandon_wait(reply.get("request"), wait_entry)
            raise
        outcome = wait_entry.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return self._granted(outcome, monotonic(), on_lost)

    async def _undo_acquire(self, body: dict[str, Any]) -> None:
        """Undo an acquire whose reply we stopped waiting for: the same key brings back the
        same outcome (protocol.md E7), which is then returned or withdrawn."""
        book = self._leases
        queued: list[Any] = []

        def on_reply(reply: m.Message) -> None:
            obj = reply.value.obj if isinstance(reply, m.ReplyOk) else None
            if isinstance(obj, dict) and obj.get("status") == "QUEUED":
                queued.append(book.expect(obj.get("request")))

        try:
            with anyio.move_on_after(self.timeout.ping_timeout):
                reply = await self._lease_request(m.LeaseAcquire, body, on_reply=on_reply)
                if reply.get("status") == "QUEUED":
                    await self._abandon_wait(reply.get("request"), queued[0])
                else:
                    await self._granted(reply.get("lease"), monotonic(), None).return_lease()
        except Exception as exc:  # refused or disconnected: nothing is left to undo
            log.debug("undoing an abandoned acquire failed: %r", exc)

    async def _abandon_wait(self, request: Any, wait_entry: Any) -> None:
        """Cancel a queued acquire whose waiter went away; return a grant that won the race."""
        try:
            with anyio.move_on_after(self.timeout.ping_timeout):
                await self.lease_cancel(request)
        except NotWaiting:
            if isinstance(wait_entry.outcome, dict):
                lease = self._granted(wait_entry.outcome, monotonic(), None)
                with anyio.move_on_after(self.timeout.ping_timeout):
                    await lease.return_lease()
        except Exception as exc:  # the connection may be gone: the wait died with it
            log.debug("cancelling lease wait %r failed: %r", request, exc)

    def _granted(self, grant: Any, sent_at: float, on_lost: Callable[[Lease], Any] | None) -> Lease:
        if not isinstance(grant, dict):
            raise RemoteError({"status": "bad_reply", "lease": grant})
        lease = Lease(self, grant, on_lost)
        lease.retained_at = sent_at
        return self._leases.add(lease)

    async def lease_take(
        self,
        resource: str,
        reason: str,
        *,
        ttl: float | None = None,
        note: str = "",
        name: str | None = None,
        on_lost: Callable[[Lease], Any] | None = None,
    ) -> Lease:
        """Take ``resource`` by force: every overlapping lease ends (reason ``taken``) and this
        client gets a new exclusive lease. ``reason`` (non-empty) goes to the audit log.

        Raises:
            NotPermitted: the resource is not takeable; LeaseError: other refusals.
        """
        body: dict[str, Any] = {
            "resource": resource,
            "reason": reason,
            **self._identity(note, name),
        }
        if ttl is not None:
            body["ttl"] = ttl
        sent_at = monotonic()
        reply = await self._lease_request(m.LeaseTake, body)
        return self._granted(reply.get("lease"), sent_at, on_lost)

    # -- token verbs ---------------------------------------------------------------------------

    async def lease_return(self, lease: LeaseRef) -> None:
        """Return a lease (low level: refusals raise; :meth:`Lease.return_lease` is lenient).

        Raises:
            Revoked, Older, NotHolder...: the token is not an active lease of this client.
        """
        token = _token_of(lease)
        await self._lease_request(m.LeaseReturn, {"token": token})
        for held in list(self._leases.leases.values()):
            if held.token == token:
                self._leases.end(held, "returned")

    async def lease_retain(self, lease: LeaseRef) -> float | None:
        """Retain a lease (restart its ttl clock); return the ttl left, ``None`` without ttl.

        Raises:
            Revoked, Older, NotHolder...: as :meth:`lease_return`.
        """
        reply = await self._lease_request(m.LeaseRetain, {"token": _token_of(lease)})
        ttl_left = reply.get("ttl_left")
        return float(ttl_left) if isinstance(ttl_left, (int, float)) else None

    async def lease_validate(self, lease: LeaseRef, resource: str | None = None) -> dict[str, Any]:
        """The use status of a token (against ``resource``, default its own) with the current
        holders, e.g. ``{"status": "OLDER", "holders": [...]}``. Never raises for a status.
        """
        body: dict[str, Any] = {"token": _token_of(lease)}
        if resource is not None:
            body["resource"] = resource
        try:
            return await self._lease_request(m.LeaseValidate, body)
        except LeaseError as exc:
            return dict(exc.reply)

    async def lease_delegate(self, lease: LeaseRef, user: str) -> dict[str, Any]:
        """A sub-lease of a lease this connection holds, for ``user``, made by the broker
        (``auth_delegate``): under access control guarded nodes accept it from ``user``'s
        connections while the lease lasts. Returns the sub-lease token.

        Raises:
            NotHolder: this connection does not hold the lease; another ``LeaseError`` for
                a token that is no longer valid.
        """
        reply = await self._lease_request(m.AuthDelegate, {"token": _token_of(lease), "user": user})
        return dict(reply["token"])

    async def lease_cancel(self, request: Any) -> None:
        """Cancel a queued acquire by its ``request`` id.

        Raises:
            NotWaiting: no such wait (it was granted or ended first).
        """
        await self._lease_request(m.LeaseCancel, {"request": request})

    async def lease_info(self, resource: str) -> dict[str, Any]:
        """Holders, waiters, floor and policy of ``resource`` (a free one reads as free).

        Raises:
            InvalidResource: a bad resource name.
        """
        reply = await self._lease_request(m.LeaseInfo, {"resource": resource})
        info = reply.get("info", reply)
        return dict(info) if isinstance(info, dict) else {}

    async def lease_list(self, prefix: str = "") -> list[dict[str, Any]]:
        """The info of every resource at or below ``prefix`` that has holders or waiters, in
        name order (all pages)."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            body: dict[str, Any] = {"prefix": prefix}
            if after is not None:
                body["after"] = after
            reply = await self._lease_request(m.LeaseList, body)
            page = [r for r in reply.get("resources") or [] if isinstance(r, dict)]
            out += page
            if not reply.get("more") or not page:
                return out
            after = str(page[-1].get("resource"))

    async def guard(self, path: str, resource: str | None) -> None:
        """Require callers of a node this client owns to hold ``resource`` (``None`` removes
        the guard). Replayed after a reconnect like the registration it guards.

        Raises:
            LeasesUnsupported: a plain ESHET broker. LeaseError: refused (``not_owner``...).
        """
        path = self.resolve(path)
        self._require_leases()
        if resource is None:
            self._regs.guards.pop(path, None)
        else:
            self._regs.guards[path] = GuardEntry(resource)
        entry = self._regs.guards.get(path)
        if not self.connected:
            return
        if entry is not None:
            entry.gen = self._gen
        try:
            await self._lease_request(m.LeaseGuard, {"path": path, "resource": resource})
        except Disconnected:
            if entry is not None:
                entry.gen = UNSENT
        except LeaseError:
            if entry is not None and self._regs.guards.get(path) is entry:
                del self._regs.guards[path]
            raise

    async def _lease_forward(
        self, kind: str, path: str, payload: Any, lease: LeaseRef, timeout: float | None
    ) -> Any:
        """``lease_call`` / ``lease_set``: the owner's ok value, or its error as RemoteError."""
        self._require_leases()
        token = _token_of(lease)
        if kind == "call":
            body = Value.of({"path": path, "args": payload, "token": token})
            make: Callable[[int], m.Message] = lambda rid: m.LeaseCall(rid, body)  # noqa: E731
        else:
            body = Value.of({"path": path, "value": payload, "token": token})
            make = lambda rid: m.LeaseSet(rid, body)  # noqa: E731
        reply = await self._request(make, timeout)
        assert isinstance(reply, (m.ReplyOk, m.ReplyError))
        value = reply.value.obj
        if isinstance(reply, m.ReplyOk):
            return value
        if isinstance(value, dict) and isinstance(value.get("status"), str):
            raise lease_error_for(value)
        if isinstance(value, str) and value.partition(":")[0] == "NO_LEASE":
            raise NoLease(no_lease_reply(value))
        raise RemoteError(value)

    # -- the context manager -------------------------------------------------------------------

    @asynccontextmanager
    async def lease(
        self,
        resource: str,
        *,
        shared: bool = False,
        wait: float | None = 10,
        ttl: float | None = None,
        note: str = "",
        keep_running: Callable[[], Any] | None = None,
        on_lost: Callable[[Lease], Any] | None = None,
        name: str | None = None,
        cancel_on_loss: bool = True,
        timeout: float | None = None,
    ) -> AsyncIterator[Lease]:
        """Hold ``resource`` for the body: acquire on entry, return on exit (also after an
        exception or cancellation).

        While held, pings go out at least every third of the server timeout and, with a ttl,
        retains every third of the ttl (sooner when the margin leaves less room, see
        :func:`~roost.client.keepalive.keepalive_interval`). ``keep_running()`` (sync or async)
        is asked before each retain; when it returns false or takes longer than that, retaining
        stops and the lease expires. ``keep_running`` implies a ttl (the server timeout, or 30 s).
        The lease counts as lost a margin before the broker could end it, on a revocation push,
        or when the connection drops; then ``lease.lost`` is set, ``on_lost(lease)`` called,
        and (``cancel_on_loss``) the body is cancelled and ``LeaseLost`` raised from the block.

        ``timeout`` bounds the acquire, queueing included (``None``: only ``wait`` bounds it).
        Use it rather than an ``anyio.fail_after`` around the entry: the body runs in a cancel
        scope of its own, so the entry cannot sit in a scope that ends before the block.

        Raises:
            LeaseLost: the lease was lost while the body ran (with ``cancel_on_loss``).
            TimeoutError: not acquired within ``timeout`` seconds (the queued wait is
                withdrawn, and a grant that raced it is returned).
            The acquire errors of :meth:`lease_acquire`.
        """
        if keep_running is not None and ttl is None:
            ttl = float(self.timeout.server_timeout or 30)
        with anyio.fail_after(timeout):
            lease = await self.lease_acquire(
                resource, shared=shared, wait=wait, ttl=ttl, note=note, name=name, on_lost=on_lost
            )
        body_scope = anyio.CancelScope()
        keeper_scope = anyio.CancelScope()
        cancelled_by_loss = False

        def lost() -> None:
            nonlocal cancelled_by_loss
            if cancel_on_loss:
                cancelled_by_loss = True
                body_scope.cancel()

        async def keeper() -> None:
            with keeper_scope:
                try:
                    await self._keep_lease(lease, keep_running, lost)
                except Exception:  # a bug must not take the client's task group down
                    log.exception("the keep-alive of lease %r failed", resource)

        if self._tg is None:
            raise Disconnected("the client is not running")
        self._tg.start_soon(keeper)
        try:
            with body_scope:
                yield lease
        finally:
            keeper_scope.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.timeout.ping_timeout):
                try:
                    await lease.return_lease()
                except Exception as exc:  # the lease is gone either way; say why in the log
                    log.warning("returning lease on %r failed: %r", resource, exc)
        if cancelled_by_loss and body_scope.cancelled_caught:
            raise LeaseLost(lease.lost_reason or "lost", lease.lost_by, lease.lost_why)

    async def _keep_lease(
        self, lease: Lease, keep_running: Callable[[], Any] | None, on_loss: Callable[[], None]
    ) -> None:
        """Retain a lease with a ttl until it ends; call ``on_loss`` if it is lost.

        The local deadline itself is watched for every lease by the client's watchdog.
        """
        retaining = True
        while lease.active:
            if not (lease.ttl and retaining):
                await lease.lost.wait()
                break
            interval = keepalive_interval(lease.ttl)
            wait = lease.retained_at + interval - monotonic()
            if wait > 0:
                with anyio.move_on_after(wait):
                    await lease.lost.wait()
                continue
            if keep_running is not None:
                retaining = await self._ask(keep_running, interval)
                if not retaining:
                    log.warning("keep_running said stop: no more retains of %r", lease.resource)
                    continue
            try:
                with anyio.move_on_after(interval):
                    await lease.retain()
            except (LeaseError, Disconnected) as exc:
                log.debug("retain of %r failed: %r", lease.resource, exc)
                await anyio.sleep(0)  # the loss is recorded by retain or by the link
        if lease.lost.is_set():
            on_loss()

    async def _ask(self, keep_running: Callable[[], Any], limit: float) -> bool:
        """Ask ``keep_running``; a false answer, an exception or a hang longer than ``limit``
        seconds means stop."""
        try:
            with anyio.fail_after(limit):
                if inspect.iscoroutinefunction(keep_running):
                    answer = await keep_running()
                else:
                    answer = await anyio.to_thread.run_sync(keep_running, abandon_on_cancel=True)
        except TimeoutError:
            return False
        except Exception:
            log.exception("keep_running raised")
            return False
        return bool(answer)
