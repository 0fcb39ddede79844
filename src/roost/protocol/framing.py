"""Frames: ``0x47, u16 length, payload`` (protocol.md §2).

Rules of this module:

- Sans-IO: bytes in, payloads out. No sockets, no event loop, no clock.
- A bad sync byte or a zero length raises :class:`~roost.errors.FramingError` as soon as the
  offending header byte arrives; the caller closes the connection.
- A partially received frame is buffered and costs at most its declared length (<= 65535 bytes
  plus the 3 header bytes); complete frames are never held back.
"""

from __future__ import annotations

from typing import Final

from roost.errors import FramingError, LocalProtocolError

__all__ = ("HEADER_SIZE", "MAX_PAYLOAD", "SYNC", "FrameDecoder", "encode_frame")

#: The first byte of every frame.
SYNC: Final = 0x47
#: Sync byte plus the u16 payload length.
HEADER_SIZE: Final = 3
#: The largest payload a frame can carry.
MAX_PAYLOAD: Final = 0xFFFF


def encode_frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with the sync byte and its u16 length.

    Raises:
        LocalProtocolError: the payload is empty or longer than 65535 bytes.
    """
    size = len(payload)
    if not 0 < size <= MAX_PAYLOAD:
        raise LocalProtocolError(f"payload of {size} bytes does not fit in a frame")
    return b"G" + size.to_bytes(2, "big") + payload


class FrameDecoder:
    """Incremental frame decoder: feed any split of the byte stream, get whole payloads.

    After a :class:`~roost.errors.FramingError` the decoder's state is undefined: discard it
    with its connection.
    """

    __slots__ = ("_buf", "_need")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = 0  # bytes the buffered partial frame needs before it can be parsed

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes and return the payloads of every frame now complete, in order.

        Args:
            data: any number of bytes (or a bytes-like object), cut anywhere, also empty.

        Raises:
            FramingError: a bad sync byte or a zero-length frame.
        """
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            buf = bytes(self._buf)
            self._buf = bytearray()
        else:
            if type(data) is not bytes:
                data = bytes(data)  # payloads must be immutable: values are kept and hashed
            # The common case: a chunk that holds exactly one whole frame.
            size = len(data) - HEADER_SIZE
            if size > 0 and data[0] == SYNC and (data[1] << 8) | data[2] == size:
                return [data[HEADER_SIZE:]]
            buf = data
        out: list[bytes] = []
        pos = 0
        end_of_data = len(buf)
        while end_of_data - pos >= HEADER_SIZE:
            if buf[pos] != SYNC:
                raise FramingError(f"bad sync byte 0x{buf[pos]:02x}")
            size = (buf[pos + 1] << 8) | buf[pos + 2]
            if size == 0:
                raise FramingError("zero-length frame")
            end = pos + HEADER_SIZE + size
            if end > end_of_data:
                self._need = end - pos
                break
            out.append(buf[pos + HEADER_SIZE : end])
            pos = end
        else:
            self._need = HEADER_SIZE
            if pos < end_of_data and buf[pos] != SYNC:
                raise FramingError(f"bad sync byte 0x{buf[pos]:02x}")
        if pos < end_of_data:
            self._buf = bytearray(buf[pos:])
        return out
