"""Lease tokens and resource names: pure helpers shared by broker, client and owners.

Rules of this module:

- A token is a plain decoded msgpack map ``{epoch, seq, resource, client_names}`` (protocol.md E4);
  nothing here wraps it in a class, so tokens travel through every layer unchanged.
- Functions never raise on a malformed token where a verdict exists (``compare`` answers
  ``INVALID``); only the constructors (``sublease``, ``newer``) raise, on misuse.
- No I/O, no clock, no msgpack: the callers decode.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import Any, Final

__all__ = (
    "MAX_RESOURCE",
    "RESERVED_SEGMENTS",
    "Comparison",
    "ancestors",
    "compare",
    "covers",
    "is_valid_token",
    "make_token",
    "newer",
    "overlaps",
    "root_of",
    "sublease",
    "valid_resource",
)

_NAME: Final = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*")

#: Longest resource name, in characters (so that every node under ``/meta/leases`` fits a frame).
MAX_RESOURCE: Final = 1024

#: Segments no resource may contain: they name the nodes under ``/meta/leases/<resource>/``.
RESERVED_SEGMENTS: Final = frozenset({"holder", "events"})


class Comparison(enum.StrEnum):
    """Outcome of :func:`compare` (protocol.md E5); the value is the upper-case wire name."""

    SAME = "SAME"
    SUPER_LEASE = "SUPER_LEASE"
    SUB_LEASE = "SUB_LEASE"
    OLDER = "OLDER"
    NEWER = "NEWER"
    DIFFERENT_RESOURCES = "DIFFERENT_RESOURCES"
    DIFFERENT_EPOCHS = "DIFFERENT_EPOCHS"
    INVALID = "INVALID"


def valid_resource(name: object) -> bool:
    """True if ``name`` is a str of at most 1024 ASCII ``[A-Za-z0-9_]`` segment characters and
    ``/`` separators, no segment ``holder`` or ``events`` (protocol.md E4). ``""``, ``"/lab"``,
    ``"lab//x"``, ``"lab/holder"`` and a 1025-character name are all invalid.
    """
    if not isinstance(name, str) or len(name) > MAX_RESOURCE or _NAME.fullmatch(name) is None:
        return False
    return not any(segment in RESERVED_SEGMENTS for segment in name.split("/"))


def ancestors(name: str) -> Iterator[str]:
    """Yield the proper ancestors of a resource name, nearest first: ``a/b/c`` gives ``a/b``,
    then ``a``."""
    end = name.rfind("/")
    while end > 0:
        name = name[:end]
        yield name
        end = name.rfind("/")


def covers(holder: str, resource: str) -> bool:
    """True if a grant on ``holder`` covers ``resource``: equal, or ``holder`` is a segment-wise
    ancestor of it (``lab`` covers ``lab/arm``, not ``laboratory``)."""
    return resource == holder or (
        resource.startswith(holder) and resource[len(holder) : len(holder) + 1] == "/"
    )


def overlaps(a: str, b: str) -> bool:
    """True if one resource covers the other (equal, ancestor or descendant)."""
    return covers(a, b) or covers(b, a)


def _is_nat(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def is_valid_token(token: object) -> bool:
    """True if ``token`` is well formed (protocol.md E5 rule 1).

    Well formed: a dict; ``epoch`` an int; ``seq`` a non-empty list of ints >= 0; ``resource`` a
    valid resource name; ``client_names`` absent, or a list of str. Other keys are ignored.
    """
    if not isinstance(token, dict):
        return False
    epoch = token.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        return False
    seq = token.get("seq")
    if not isinstance(seq, list) or not seq or not all(_is_nat(x) for x in seq):
        return False
    if not valid_resource(token.get("resource")):
        return False
    if "client_names" in token:
        names = token["client_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return False
    return True


def root_of(token: dict[str, Any]) -> int:
    """The first element of a well-formed token's ``seq``: the broker-issued root."""
    root: int = token["seq"][0]
    return root


def compare(a: object, b: object) -> Comparison:
    """Compare two tokens as protocol.md E5 does (first matching rule wins).

    ``client_names`` never matter. Examples: ``[5]`` vs ``[5, 0]`` is ``SUPER_LEASE``; ``[6]`` vs
    ``[5, 99]`` is ``NEWER``; ``[5, 3]`` vs ``[5, 2, 7]`` is ``NEWER``.

    Returns:
        ``INVALID`` if either operand is malformed; never raises.
    """
    if not is_valid_token(a) or not is_valid_token(b):
        return Comparison.INVALID
    assert isinstance(a, dict) and isinstance(b, dict)  # narrowed by is_valid_token
    if a["resource"] != b["resource"]:
        return Comparison.DIFFERENT_RESOURCES
    if a["epoch"] != b["epoch"]:
        return Comparison.DIFFERENT_EPOCHS
    sa: list[int] = a["seq"]
    sb: list[int] = b["seq"]
    for x, y in zip(sa, sb, strict=False):
        if x != y:
            return Comparison.OLDER if x < y else Comparison.NEWER
    if len(sa) < len(sb):
        return Comparison.SUPER_LEASE
    if len(sa) > len(sb):
        return Comparison.SUB_LEASE
    return Comparison.SAME


def make_token(epoch: int, root: int, resource: str, name: str | None) -> dict[str, Any]:
    """The token the broker issues for a grant: ``seq`` ``[root]``, ``client_names`` ``[name]``
    (``[]`` when the acquirer gave no name)."""
    return {
        "epoch": epoch,
        "seq": [root],
        "resource": resource,
        "client_names": [name] if name else [],
    }


def _copy_checked(token: dict[str, Any]) -> dict[str, Any]:
    if not is_valid_token(token):
        raise ValueError(f"not a well-formed lease token: {token!r}")
    out = dict(token)
    out["seq"] = list(token["seq"])
    out["client_names"] = list(token.get("client_names", []))
    return out


def sublease(token: dict[str, Any], name: str) -> dict[str, Any]:
    """A sub-lease of ``token`` for a delegate called ``name``: ``seq + [0]``,
    ``client_names + [name]``. It compares as ``SUB_LEASE`` of ``token``.

    Raises:
        ValueError: ``token`` is malformed.
    """
    out = _copy_checked(token)
    out["seq"].append(0)
    out["client_names"].append(name)
    return out


def newer(token: dict[str, Any]) -> dict[str, Any]:
    """The next token in a holder's own sequence: the last ``seq`` element plus one. It compares
    as ``NEWER`` than ``token``; a later broker grant still beats it.

    Raises:
        ValueError: ``token`` is malformed.
    """
    out = _copy_checked(token)
    out["seq"][-1] += 1
    return out
