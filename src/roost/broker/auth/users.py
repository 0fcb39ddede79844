"""Users, groups and password hashes (argon2id).

Rules of this module:

- Passwords are stored only as argon2id hashes (``argon2-cffi``'s PHC strings, ``$argon2id$...``);
  a password is never logged, never stored, never taken from the command line.
- A users file is TOML with one ``[users]`` table, ``name = "hash"``, the same form as the
  ``[users]`` section of the configuration file; :func:`set_password` edits either in place,
  keeping every other line as it was.
- Checking a password is slow on purpose (tens of milliseconds): callers run
  :meth:`Users.verify` off the event loop.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = (
    "USER_NAME",
    "Users",
    "hash_password",
    "set_password",
    "valid_user_name",
)

#: A user name: what a path segment allows, plus ``-`` and ``.`` (certificate names use them).
USER_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

_HASHER: Final = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """A hash of a password nobody has (made on first use: hashing is slow on purpose), so an
    unknown user costs as much time as a wrong password."""
    return _HASHER.hash("not a password anyone has")


def valid_user_name(name: object) -> bool:
    """True if ``name`` is a usable user name (not ``anonymous``, not ``*``)."""
    return isinstance(name, str) and USER_NAME.fullmatch(name) is not None and name != "anonymous"


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of ``password``."""
    return _HASHER.hash(password)


def valid_hash(text: object) -> bool:
    """True if ``text`` looks like an argon2id PHC string."""
    return isinstance(text, str) and text.startswith("$argon2id$")


@dataclass(frozen=True, slots=True)
class Users:
    """The known users (name -> argon2id hash) and groups (name -> member names)."""

    hashes: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def verify(self, user: str, password: str) -> bool:
        """True if ``user`` exists and ``password`` is its password. Slow (argon2): run it off
        the event loop. An unknown user takes as long as a wrong password."""
        stored = self.hashes.get(user)
        try:
            _HASHER.verify(_dummy() if stored is None else stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored is not None


_SECTION: Final = re.compile(r"^\s*\[\s*users\s*\]\s*(#.*)?$")
_ANY_HEADER: Final = re.compile(r"^\s*\[")


def set_password(path: str, user: str, password: str) -> bool:
    """Write the hash of ``password`` for ``user`` into the ``[users]`` table of the TOML file
    at ``path`` (created if missing; the table is added if absent). Other lines stay as they
    were; the file is replaced atomically and keeps mode 0600 when created.

    Returns:
        True if the user already had a password (it was replaced).

    Raises:
        ValueError: a bad user name.
        OSError: the file cannot be read or written.
    """
    if not valid_user_name(user):
        raise ValueError(f"bad user name {user!r}")
    line = f'{user} = "{hash_password(password)}"\n'
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        lines = []
    key = re.compile(rf"""^\s*("{re.escape(user)}"|'{re.escape(user)}'|{re.escape(user)})\s*=""")
    start = next((i for i, text in enumerate(lines) if _SECTION.match(text)), None)
    replaced = False
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        if lines:
            lines.append("\n")
        lines += ["[users]\n", line]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines)
        )
        for i in range(start + 1, end):
            if key.match(lines[i]):
                lines[i] = line
                replaced = True
                break
        else:
            # After the table's last non-blank line.
            at = end
            while at > start + 1 and not lines[at - 1].strip():
                at -= 1
            if at > 0 and not lines[at - 1].endswith("\n"):
                lines[at - 1] += "\n"
            lines.insert(at, line)
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
    fd, tmp = tempfile.mkstemp(prefix=".roost-users-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return replaced
