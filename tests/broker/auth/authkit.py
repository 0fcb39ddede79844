"""Helpers for access tests: a broker with users and rules, and logged-in raw connections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from roost.broker.auth.settings import AuthSettings, from_sections
from roost.broker.auth.users import hash_password
from roost.broker.config import parse_config
from roost.broker.listeners import Listener
from roost.protocol import messages as m
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import Wire

PASSWORD = "correct horse"
#: One hash for every test user (argon2 is slow on purpose).
HASH = hash_password(PASSWORD)


def settings(text: str, *, delay: float = 0.01) -> AuthSettings:
    """Auth settings from configuration text (``{hash}`` is replaced by :data:`HASH`)."""
    parsed = from_sections(parse_config(text.replace("{hash}", HASH)).get)
    return AuthSettings(parsed.users, parsed.rules, login_delay=delay)


@contextmanager
def broker(auth: AuthSettings, **options: Any) -> Iterator[BrokerThread]:
    """A broker on loopback with ``auth`` (and one plain loopback listener by default)."""
    options.setdefault("listeners", [Listener("127.0.0.1", 0)])
    handle, stop, thread = start_broker_thread(auth=auth, **options)
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)


async def user_wire(port: int, user: str | None, *, timeout: int = 30) -> Wire:
    """Connect, log in as ``user`` (unless ``None``: anonymous) and say hello."""
    wire = await Wire.connect(port)
    if user is not None:
        reply = await wire.login(user, PASSWORD)
        assert isinstance(reply, m.ReplyOk), reply
        assert reply.value.obj == {"status": "OK", "user": user}
    await wire.hello(timeout)
    return wire
