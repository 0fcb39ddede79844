"""The file that keeps stored values across restarts, and the ``[store]`` settings.

Rules of this module:

- One file, ``store.msgpack`` in the state dir: a header line, the CRC-32 and length of the
  body, and the body, a msgpack map of path -> the value's msgpack bytes (as bin).
- Every write replaces the whole file atomically: a temporary file in the same directory is
  written, fsynced, renamed over the old one, and the directory is fsynced. A crash leaves the
  old file or the new one, never a mix. With ``fsync = false`` the rename is still atomic, but
  a power loss may lose the last writes.
- Reading is strict: a file that is truncated, fails its checksum or does not decode raises
  :class:`~roost.errors.StoreError` naming the file. The broker refuses to start rather than
  start without values it was trusted with; the operator decides what to do with the file.
- No clock and no event loop: the broker calls :func:`write_store` from a worker thread.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from roost.broker.subtree import PatternError, parse_pattern
from roost.errors import InvalidValue, StoreError
from roost.protocol.values import decode_value, pack, unpack

__all__ = (
    "DEFAULT_MAX_TOTAL",
    "DEFAULT_MAX_VALUE",
    "STORE_FILE",
    "StoreSettings",
    "parse_store_section",
    "read_store",
    "write_store",
)

STORE_FILE: Final = "store.msgpack"
DEFAULT_MAX_VALUE: Final = 16 * 1024
DEFAULT_MAX_TOTAL: Final = 1024 * 1024
_MAGIC: Final = b"roost-store 1\n"
_HEAD: Final = struct.Struct(">II")  # crc32 of the body, length of the body


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """What the broker stores (the ``[store]`` section).

    Attributes:
        create: patterns (``/store/**``) under which a ``set`` of a free path creates a stored
            value.
        paths: stored values that exist from start-up (unknown until first set).
        max_value: the largest value in bytes (msgpack encoded).
        max_total: the most bytes all stored values may take together.
        fsync: flush every write to the disk before acknowledging the set.
    """

    create: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    max_value: int = DEFAULT_MAX_VALUE
    max_total: int = DEFAULT_MAX_TOTAL
    fsync: bool = True


def parse_store_section(value: object, where: Any) -> StoreSettings:
    """The ``[store]`` table of the configuration file (``where`` is the config's ``Where``).

    Raises:
        ConfigError: an unknown key, a bad pattern or path, or a limit out of range.
    """
    table = where.table(value, ("create", "paths", "max_value", "max_total", "fsync"))
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("create", "paths"):
        items = table.get(key, [])
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise where.error("must be a list of strings", key)
        for item in items:
            try:
                segments = parse_pattern(item)
            except PatternError as exc:
                raise where.error(str(exc), key) from exc
            if key == "paths" and ("+" in segments or "**" in segments):
                raise where.error(f"{item!r}: a stored path has no wildcard", key)
        lists[key] = tuple(items)
    max_value = where.integer(table, "max_value", DEFAULT_MAX_VALUE, 1)
    if max_value > 0xFFFF - 8:
        raise where.error(f"must be at most {0xFFFF - 8} (one frame), not {max_value}", "max_value")
    return StoreSettings(
        create=lists["create"],
        paths=lists["paths"],
        max_value=max_value,
        max_total=where.integer(table, "max_total", DEFAULT_MAX_TOTAL, 1),
        fsync=where.boolean(table, "fsync", True),
    )


def read_store(directory: str | os.PathLike[str]) -> dict[str, bytes]:
    """The stored values in ``directory`` (none if it has no store file).

    Raises:
        StoreError: the file exists but cannot be read or is damaged (the message names it).
    """
    path = Path(directory) / STORE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StoreError(f"cannot read the store file {path}: {exc.strerror or exc}") from exc
    start = len(_MAGIC) + _HEAD.size
    if not data.startswith(_MAGIC) or len(data) < start:
        raise StoreError(f"the store file {path} is damaged: not a roost store file")
    crc, length = _HEAD.unpack_from(data, len(_MAGIC))
    body = data[start:]
    if len(body) != length:
        raise StoreError(
            f"the store file {path} is damaged: {len(body)} bytes of body, {length} expected"
        )
    if zlib.crc32(body) != crc:
        raise StoreError(f"the store file {path} is damaged: checksum mismatch")
    try:
        values = unpack(body)
    except Exception as exc:
        raise StoreError(f"the store file {path} is damaged: {exc}") from exc
    if not isinstance(values, dict):
        raise StoreError(f"the store file {path} is damaged: not a map")
    out: dict[str, bytes] = {}
    for key, raw in values.items():
        if not isinstance(key, str) or not isinstance(raw, bytes):
            raise StoreError(f"the store file {path} is damaged: bad entry {key!r}")
        try:
            decode_value(raw)
        except InvalidValue as exc:
            raise StoreError(f"the store file {path} is damaged: value of {key}: {exc}") from exc
        out[key] = raw
    return out


def write_store(
    directory: str | os.PathLike[str], values: Mapping[str, bytes], fsync: bool
) -> None:
    """Replace the store file in ``directory`` with ``values``, atomically (see the module
    rules). Runs in a worker thread.

    Raises:
        OSError: the file could not be written; the old one is left as it was.
    """
    folder = Path(directory)
    body = pack(dict(values))
    data = _MAGIC + _HEAD.pack(zlib.crc32(body), len(body)) + body
    temporary = folder / f".{STORE_FILE}.tmp"
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(temporary, folder / STORE_FILE)
    if fsync:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
