"""The roost broker: ESHET-compatible routing over msgpack TCP.

- :mod:`roost.broker.tree`: the path tree; :mod:`roost.broker.tree_entries`: its nodes and
  path-compressed directories.
- :mod:`roost.broker.session`: one session per connection (identity, outbox, forwarded requests).
- :mod:`roost.broker.router`: ``handle(session, message, now)``, synchronous, the only mutator.
- :mod:`roost.broker.meta`: the broker's own nodes under ``/meta``.
- :mod:`roost.broker.frames`: whole frames from ids, cached path heads and raw value bytes.
- :mod:`roost.broker.hooks`: what the router asks of the I/O layer.
- :mod:`roost.broker.server`: the only I/O (asyncio Protocols, one flush per loop iteration).
- :mod:`roost.broker.run`: ``serve()``, logging set-up and signal handling.
- :mod:`roost.broker.listeners`: where the broker listens (plain or TLS) and who may connect.
- :mod:`roost.broker.auth`: users, logins and access rules.
"""

from roost.broker.run import serve
from roost.broker.server import Broker

__all__ = ("Broker", "serve")
