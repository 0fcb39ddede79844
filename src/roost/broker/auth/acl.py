"""Access rules: path patterns, permissions, and each user's compiled grants.

Rules of this module:

- A rule grants permissions on path patterns to a user, a group or everybody (``*``). What no
  rule grants is denied, once any rule exists; with no rules at all there is no access control
  (a broker without configuration behaves as ESHET: everybody may do everything).
- Patterns are paths whose segments may be ``+`` (exactly one segment) or, as the last one,
  ``**`` (that place and everything below it, at any depth).
- :class:`Grants` is compiled once per user and shared by every session of that user; each
  decision is computed once per (permission, path) and then answered from a dict, so the busy
  per-message checks (call, get, set, emit) cost one lookup.
- Pure data and functions: no I/O, no clock, no sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = (
    "ANONYMOUS",
    "EVERYBODY",
    "PERMISSIONS",
    "Grants",
    "Pattern",
    "Rule",
    "compile_pattern",
    "grants_for",
    "resource_path",
)

#: The user of a connection that did not log in.
ANONYMOUS: Final = "anonymous"
#: The rule subject that means every user, ``anonymous`` included.
EVERYBODY: Final = "*"
#: Every permission a rule can grant, in documentation order.
PERMISSIONS: Final = (
    "register",
    "call",
    "get",
    "set",
    "observe",
    "listen",
    "emit",
    "lease",
    "take",
    "admin",
)
#: Decisions cached per permission before the cache is cleared (paths are client-chosen).
_CACHE_MAX: Final = 4096
#: What every user may do whatever the rules: list, and read what the broker is (D12).
_OPEN: Final = frozenset(
    {("call", "/meta/ls"), ("get", "/meta/broker"), ("observe", "/meta/broker")}
)
_READ: Final = frozenset({"get", "observe", "listen"})
_LEASES: Final = "/meta/leases/"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled path pattern: its text and segments (``+`` one segment, ``**`` the rest)."""

    text: str
    segments: tuple[str, ...]

    def matches(self, path: str) -> bool:
        """True if ``path`` (a valid path, or ``/`` for the root) is matched."""
        parts = _segments(path)
        pattern = self.segments
        for i, seg in enumerate(pattern):
            if seg == "**":
                return True
            if i >= len(parts) or (seg != "+" and seg != parts[i]):
                return False
        return len(parts) == len(pattern)

    def reaches(self, path: str) -> bool:
        """True if ``path`` or a path below it can match (for listings)."""
        parts = _segments(path)
        for i, part in enumerate(parts):
            if i >= len(self.segments):
                return False
            seg = self.segments[i]
            if seg == "**":
                return True
            if seg not in ("+", part):
                return False
        return True


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def compile_pattern(text: str) -> Pattern:
    """Compile a pattern such as ``/kitchen/**`` or ``/lab/+/scope``.

    Raises:
        ValueError: not ``/`` followed by ``/``-separated segments of ``[A-Za-z0-9_]``, ``+``
            or (last) ``**``.
    """
    if not text.startswith("/") or (text.endswith("/") and text != "/"):
        raise ValueError(f"pattern {text!r} must start with / and not end with /")
    parts = text[1:].split("/") if text != "/" else []
    for i, part in enumerate(parts):
        if part == "**":
            if i != len(parts) - 1:
                raise ValueError(f"pattern {text!r}: ** may only be the last segment")
        elif part != "+" and (
            not part or not all(c.isascii() and (c.isalnum() or c == "_") for c in part)
        ):
            raise ValueError(f"pattern {text!r}: bad segment {part!r}")
    return Pattern(text, tuple(parts))


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL rule: ``subject`` is a user name, ``@group`` or ``*``; it grants ``allow`` on
    every path matching one of ``patterns``."""

    subject: str
    patterns: tuple[Pattern, ...]
    allow: frozenset[str]

    def applies_to(self, user: str, groups: Mapping[str, frozenset[str]]) -> bool:
        """True if this rule is about ``user`` (directly, by a group, or everybody)."""
        subject = self.subject
        if subject in (EVERYBODY, user):
            return True
        return subject.startswith("@") and user in groups.get(subject[1:], frozenset())


def resource_path(resource: str) -> str:
    """The path a lease resource name is checked as (``lab/scope`` -> ``/lab/scope``)."""
    return "/" + resource


class Grants:
    """What one user may do, compiled from the rules that apply to it.

    ``allows(permission, path)`` answers from a per-permission cache after the first time.
    """

    __slots__ = ("_patterns", "admin", "decided", "user")

    def __init__(self, user: str, rules: Iterable[Rule]) -> None:
        self.user = user
        patterns: dict[str, list[Pattern]] = {perm: [] for perm in PERMISSIONS}
        for rule in rules:
            for perm in rule.allow:
                patterns[perm].extend(rule.patterns)
        self._patterns = {perm: tuple(found) for perm, found in patterns.items()}
        #: Decisions made so far: permission -> path -> granted (read by the router's checks).
        self.decided: dict[str, dict[str, bool]] = {perm: {} for perm in PERMISSIONS}
        #: True if ``admin`` is granted on ``/meta`` (``/meta/**`` or ``/**``): the broker's
        #: details, other clients, reload.
        self.admin = any(p.matches("/meta") for p in self._patterns["admin"])

    def allows(self, permission: str, path: str) -> bool:
        """True if ``permission`` is granted on ``path``."""
        cache = self.decided[permission]
        decision = cache.get(path)
        if decision is None:
            decision = self._decide(permission, path)
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[path] = decision
        return decision

    def _decide(self, permission: str, path: str) -> bool:
        """The broker's own /meta nodes: ``/meta/ls`` and ``/meta/broker`` are open to all;
        ``/meta/clients`` and ``/meta/lease_events`` are read by admins; a lease holder state
        or event is read by whoever may lease, take or observe that resource, or an admin.
        Everything else by the rules."""
        if path.startswith("/meta/"):
            if (permission, path) in _OPEN:
                return True
            if path in ("/meta/clients", "/meta/lease_events"):
                return self.admin and permission in _READ
            if path.startswith(_LEASES):
                if permission not in _READ:
                    return False
                name = resource_path(path[len(_LEASES) :].rpartition("/")[0])
                return self.admin or any(
                    self.allows(perm, name) for perm in ("lease", "take", "observe")
                )
        return any(p.matches(path) for p in self._patterns[permission])

    def sees(self, path: str) -> bool:
        """True if any permission is granted on ``path`` or somewhere below it (what a
        listing shows); ``/meta`` and its open nodes are always shown."""
        if any(path == p or p.startswith(path.rstrip("/") + "/") for _, p in _OPEN):
            return True
        if self.admin and path.startswith("/meta/"):
            return True
        return any(p.reaches(path) for found in self._patterns.values() for p in found)

    def permissions(self, path: str) -> list[str]:
        """Every permission granted on ``path``, in :data:`PERMISSIONS` order."""
        return [perm for perm in PERMISSIONS if self.allows(perm, path)]


def grants_for(user: str, rules: Iterable[Rule], groups: Mapping[str, frozenset[str]]) -> Grants:
    """Compile the grants of ``user`` from every rule that applies to it."""
    return Grants(user, [rule for rule in rules if rule.applies_to(user, groups)])
