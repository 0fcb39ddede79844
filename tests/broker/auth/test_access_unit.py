"""The access layer against a router with fake I/O: login delays per connection and per
peer address, without a clock or a network."""

from __future__ import annotations

from collections.abc import Callable

from roost.broker.auth.access import (
    HOST_MEMORY,
    MAX_DELAY,
    HostFailures,
    failure_delay,
    install_access,
    peer_host,
)
from roost.broker.auth.settings import AuthSettings
from roost.broker.auth.users import Users
from roost.broker.router import Router
from roost.protocol import messages as m
from tests.broker.auth.authkit import HASH, PASSWORD
from tests.broker.test_router import FakeHooks, _drain
from tests.wire import v


def _sync_submit(fn: Callable[[], bool], done: Callable[[bool, float], None]) -> None:
    done(fn(), 0.0)


def _setup() -> tuple[Router, FakeHooks]:
    hooks = FakeHooks()
    router = Router(hooks, 0.0, max_outbound=1 << 20)
    settings = AuthSettings(Users({"alice": HASH}), (), login_delay=1.0)
    install_access(router, settings, _sync_submit)
    return router, hooks


def _login(router: Router, peer: str, password: str, rid: int = 1) -> None:
    session = router.open_session(peer, 0.0, 0.0)
    router.handle(session, m.AuthLogin(rid, v({"user": "alice", "password": password})), 0.0)


def test_failures_from_one_address_double_across_connections() -> None:
    router, hooks = _setup()
    for _ in range(4):
        _login(router, "10.0.0.5:1000", "wrong")
    _login(router, "10.0.0.6:1000", "wrong")
    delays = [delay for delay, _ in hooks.timers]
    # Each new connection from 10.0.0.5 waits longer; another address starts over.
    assert delays == [1.0, 2.0, 4.0, 8.0, 1.0]


def test_delay_is_capped_and_a_success_resets_the_address() -> None:
    router, hooks = _setup()
    for _ in range(12):
        _login(router, "[::1]:5", "wrong")
    assert hooks.timers[-1][0] == MAX_DELAY
    session = router.open_session("[::1]:6", 0.0, 0.0)
    router.handle(session, m.AuthLogin(1, v({"user": "alice", "password": PASSWORD})), 0.0)
    assert _drain(session) == [m.ReplyOk(1, v({"status": "OK", "user": "alice"}))]
    hooks.timers.clear()
    _login(router, "[::1]:7", "wrong")
    assert [delay for delay, _ in hooks.timers] == [1.0]


def test_the_refusal_comes_only_when_the_timer_fires() -> None:
    router, hooks = _setup()
    session = router.open_session("10.1.1.1:9", 0.0, 0.0)
    router.handle(session, m.AuthLogin(4, v({"user": "bob", "password": "x"})), 0.0)
    assert _drain(session) == []
    ((_, fire),) = hooks.timers
    fire(1.0)
    assert _drain(session) == [
        m.ReplyError(4, v({"status": "bad_login", "reason": "wrong user name or password"}))
    ]


def test_host_failures_count_in_a_row_and_are_forgotten() -> None:
    failures = HostFailures()
    assert [failures.failed("10.0.0.1", t) for t in (0.0, 1.0, 2.0)] == [1, 2, 3]
    assert failures.failed("10.0.0.2", 2.0) == 1  # per host
    assert failures.failed("10.0.0.1", 3.0 + HOST_MEMORY) == 1  # quiet long enough: a new run
    failures.forget("10.0.0.1")  # a success
    assert failures.failed("10.0.0.1", 4.0 + HOST_MEMORY) == 1
    assert [failure_delay(0.5, n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert failure_delay(0.5, 40) == MAX_DELAY


def test_peer_host_strips_port_and_brackets() -> None:
    assert peer_host("192.0.2.7:51000") == "192.0.2.7"
    assert peer_host("[::1]:51000") == "::1"
    assert peer_host("gateway") == "gateway"
