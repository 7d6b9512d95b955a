"""A minimal protobuf wire-format reader: just enough to decode W&B and TensorBoard records.

The indexer image stays small: no ``protobuf`` package and no generated classes. A message is
read as a list of ``(field number, wire type, value)``: varints as ints, 64/32-bit fields as raw
``bytes`` (see :func:`f64`/:func:`f32`), length-delimited fields as ``bytes`` (a nested message,
a string or a packed array: the caller knows which). A malformed message raises
:class:`ProtoError`; callers turn it into a warning.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

__all__ = ["ProtoError", "f32", "f64", "fields", "first", "packed_floats", "signed", "sint", "text"]


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    n = len(buf)
    while True:
        if i >= n or shift > 63:
            raise ProtoError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` for each field of the message in ``buf``, in order."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
            yield num, wt, v
        elif wt == 1:
            if i + 8 > n:
                raise ProtoError("truncated 64-bit field")
            yield num, wt, buf[i:i + 8]
            i += 8
        elif wt == 2:
            ln, i = _varint(buf, i)
            if i + ln > n:
                raise ProtoError("truncated length-delimited field")
            yield num, wt, buf[i:i + ln]
            i += ln
        elif wt == 5:
            if i + 4 > n:
                raise ProtoError("truncated 32-bit field")
            yield num, wt, buf[i:i + 4]
            i += 4
        else:
            raise ProtoError(f"unsupported wire type {wt}")


def first(buf: bytes, number: int) -> int | bytes | None:
    """The last value of field ``number`` (protobuf's rule for a repeated scalar field), or None."""
    out = None
    for num, _wt, v in fields(buf):
        if num == number:
            out = v
    return out


def f64(v: int | bytes) -> float:
    """A ``double`` field's value."""
    return struct.unpack("<d", v)[0] if isinstance(v, bytes) else float(v)


def f32(v: int | bytes) -> float:
    """A ``float`` field's value."""
    return struct.unpack("<f", v)[0] if isinstance(v, bytes) else float(v)


def signed(v: int) -> int:
    """An ``int32``/``int64`` varint as a signed number (negative ones are 10-byte two's complement)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def sint(v: int) -> int:
    """A zig-zag ``sint32``/``sint64`` varint as a signed number."""
    return (v >> 1) ^ -(v & 1)


def text(v: int | bytes) -> str:
    """A ``string`` field's value (bad UTF-8 replaced)."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def packed_floats(v: int | bytes, wire: int, fmt: str) -> list[float]:
    """A repeated float (``fmt`` ``f``) or double (``d``) field, packed (wire type 2) or not."""
    if not isinstance(v, bytes):
        return [float(v)]
    size = struct.calcsize(fmt)
    if wire != 2:
        return list(struct.unpack("<" + fmt, v[:size]))
    count = len(v) // size
    return list(struct.unpack(f"<{count}{fmt}", v[:count * size]))
