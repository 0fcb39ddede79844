"""The broker on the web: eshetsrv's HTTP and websocket API, the dashboard and the metrics.

- :mod:`~roost.broker.gateway.forms`: JSON forms <-> native messages (sans-IO).
- :mod:`~roost.broker.gateway.link`: a router session on a transport that is not a socket.
- :mod:`~roost.broker.gateway.ws`: ``/ws``, one session per websocket.
- :mod:`~roost.broker.gateway.http`: ``/call``, ``/get``, ``/set`` through the gateway's session.
- :mod:`~roost.broker.gateway.metrics`: ``/metrics`` and ``/api/stats``.
- :mod:`~roost.broker.gateway.app`: the aiohttp server tying them together.
"""

from roost.broker.gateway.app import DEFAULT_HTTP_PORT, Gateway

__all__ = ("DEFAULT_HTTP_PORT", "Gateway")
