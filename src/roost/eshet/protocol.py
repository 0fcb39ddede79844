"""Where eshet.py keeps ``TimeoutConfig``: the same settings as roost's."""

from __future__ import annotations

from roost.client.config import TimeoutConfig

__all__ = ("TimeoutConfig",)
