"""The exceptions of eshet.py's API, each also a roost exception.

``Disconnected`` is also :class:`roost.errors.Disconnected` and ``ErrorValue`` also
:class:`roost.errors.RemoteError`, so code catching either family's names works.
"""

from __future__ import annotations

from typing import Any

from roost import errors

__all__ = ("Disconnected", "ESHETException", "ErrorValue")


class ESHETException(Exception):
    """Root of the exceptions raised through the eshet.py API."""


class Disconnected(ESHETException, errors.Disconnected):
    """Not connected to the broker, or the connection was lost before the reply."""


class ErrorValue(ESHETException, errors.RemoteError):
    """The broker or the owner answered with an error; ``args[0]`` (and ``value``) is it."""

    def __init__(self, value: Any) -> None:
        errors.RemoteError.__init__(self, value)
