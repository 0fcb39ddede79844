"""Subtree subscriptions under access rules: decided when made, narrowed by a reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.broker.auth.settings import AuthSettings, from_sections
from roost.broker.config import load_config
from roost.protocol import messages as m
from tests.broker.auth.authkit import HASH, broker, user_wire
from tests.broker.test_subtree import observe
from tests.wire import v

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
owner = "{hash}"
alice = "{hash}"

[[acl]]
user = "owner"
paths = ["/**"]
allow = ["all"]

[[acl]]
user = "alice"
paths = ["/house/kitchen/**", "/house/bath/**"]
allow = ["observe"]
"""


async def test_subtree_observe_sees_only_granted_states(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text(CONFIG.replace("{hash}", HASH))
    first = from_sections(load_config(config).get)
    auth = AuthSettings(
        first.users, first.rules, 0.01, reload=lambda: from_sections(load_config(config).get)
    )
    with broker(auth) as b:
        owner = await user_wire(b.port, "owner")
        for path, value in (("/house/kitchen/t", 20), ("/house/bath/t", 22), ("/house/attic/t", 9)):
            await owner.register("state", path)
            await owner.call_ok(m.StateChanged(owner.next_id(), path, v(value)))
        alice = await user_wire(b.port, "alice")
        snapshot = await observe(alice, 1, "/house/**")
        assert sorted(s.path for s in snapshot) == ["/house/bath/t", "/house/kitchen/t"]
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/attic/t", v(10)))
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/bath/t", v(23)))
        assert await alice.recv() == m.SubtreeChanged("/house/bath/t", v(23))
        # A reload takes the bathroom away: the subscription goes on without it.
        config.write_text(CONFIG.replace("{hash}", HASH).replace(', "/house/bath/**"]', "]"))
        assert b.call(b.broker.reload) == (2, 2)
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/bath/t", v(24)))
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/kitchen/t", v(21)))
        assert await alice.recv() == m.SubtreeChanged("/house/kitchen/t", v(21))
        await owner.aclose()
        await alice.aclose()
