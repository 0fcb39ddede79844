"""Public means listed: every name in each module's ``__all__`` exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import roost


def _modules() -> list[str]:
    # roost.__main__ runs the CLI when imported; it defines nothing public.
    names = ["roost"]
    for info in pkgutil.walk_packages(roost.__path__, prefix="roost."):
        if info.name != "roost.__main__":
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_all_names_exist(name: str) -> None:
    """Each module has an ``__all__`` tuple, and every name in it is an attribute."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, tuple), f"{name} has no __all__ tuple"
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert not missing, f"{name}.__all__ lists missing names: {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"


def test_protocol_surface() -> None:
    """The sans-IO surface other packages build on is exported."""
    from roost.protocol import codec, connection, framing, values

    assert {"decode", "encode", "encode_payload"} <= set(codec.__all__)
    assert {"FrameDecoder", "encode_frame"} <= set(framing.__all__)
    assert {"Connection", "Role"} <= set(connection.__all__)
    assert {"Value", "decode_value", "pack", "unpack", "NIL"} <= set(values.__all__)
