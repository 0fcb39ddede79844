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
    "meta_name",
    "newer",
    "overlaps",
    "resource_problem",
    "root_of",
    "sublease",
    "unmeta_name",
    "valid_resource",
)

_WORD: Final = re.compile(r"[A-Za-z0-9_]+")
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.:-]*)*")
#: How the characters a resource segment may have beyond ``[A-Za-z0-9_]`` appear in the
#: ``/meta/leases`` paths, whose segments are ESHET path segments (``[A-Za-z0-9_]`` only).
_ESCAPES: Final = {"-": "_2D", ".": "_2E", ":": "_3A"}
_UNESCAPE: Final = re.compile("|".join(_ESCAPES.values()))

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
    """True if ``name`` is a valid resource name (protocol.md E4): at most 1024 ASCII
    characters, segments split by ``/``, each starting with a letter, digit or ``_`` and going on
    with those or ``-``, ``.``, ``:`` (``printer-1``, ``lab.arm``, ``job:42``), no segment
    ``holder`` or ``events``. ``""``, ``"/lab"``, ``"lab//x"``, ``"lab/holder"``, ``"-x"`` and a
    1025-character name are all invalid; :func:`resource_problem` says why.
    """
    if not isinstance(name, str) or len(name) > MAX_RESOURCE or _NAME.fullmatch(name) is None:
        return False
    return not any(segment in RESERVED_SEGMENTS for segment in name.split("/"))


def resource_problem(name: object) -> str | None:
    """Why ``name`` is not a valid resource name, in words for people; ``None`` if it is."""
    if not isinstance(name, str):
        return f"a resource name is a str, not {type(name).__name__}"
    if not name:
        return "the resource name is empty"
    if len(name) > MAX_RESOURCE:
        return f"the resource name is {len(name)} characters long (at most {MAX_RESOURCE})"
    for segment in name.split("/"):
        if not segment:
            return f"{name!r} has an empty segment (a '/' at the start or end, or '//')"
        if segment in RESERVED_SEGMENTS:
            return f"segment {segment!r} of {name!r} is reserved (holder and events are)"
        if _SEGMENT.fullmatch(segment) is None:
            bad = next(
                (c for c in segment if not (c.isascii() and (c.isalnum() or c in "_.:-"))), ""
            )
            if bad:
                return (
                    f"segment {segment!r} of {name!r} has the character {bad!r}"
                    " (allowed: letters, digits, '_', '-', '.', ':')"
                )
            return f"segment {segment!r} of {name!r} must start with a letter, digit or '_'"
    return None


def _allowed(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "_.:-")


def meta_name(name: str) -> str:
    """The form of resource ``name`` in ``/meta/leases/<name>/...`` paths: segments of
    ``[A-Za-z0-9_]`` stay as they are; in others ``-``, ``.`` and ``:`` become ``_2D``, ``_2E``
    and ``_3A`` (``printer-1`` is ``printer_2D1``), since ESHET paths allow no more."""
    if _WORD.fullmatch(name.replace("/", "_")) is not None:
        return name
    return "".join(_ESCAPES.get(c, c) for c in name)


def unmeta_name(name: str) -> str:
    """The resource name whose :func:`meta_name` ``name`` would be if every escape in it were
    one (the inverse of :func:`meta_name` for names it produced)."""
    back = {v: k for k, v in _ESCAPES.items()}
    return _UNESCAPE.sub(lambda m: back[m.group(0)], name)


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
