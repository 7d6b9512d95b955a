"""The SQLite store's document bodies: JSON without the leaves, deflated with a per-store dictionary.

Converter processes pack bodies with :func:`pack_body` (the scan sends them along with
:func:`slim_for_body` documents); the store unpacks them with :func:`unpack_body`.
"""
from __future__ import annotations

import json
import re
import zlib
from typing import Any

import orjson

__all__ = ["JSON_MARK", "body_json", "pack_body", "slim_for_body", "unpack_body"]

#: an integer of 19+ digits (not a float's digits): maybe past 64 bits, which orjson would read as a float
_LONG_DIGITS = re.compile(rb"(?<![\d.])\d{19,}(?![\d.eE])")


def _non_finite(value: Any) -> bool:
    """True if ``value`` holds a NaN or infinite float anywhere."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            stack += v.values()
        elif t is list:
            stack += v
        elif t is float and v - v != 0:
            return True
    return False


#: the first byte of a body json.dumps wrote (JSON allows leading white space): read it with json.loads
JSON_MARK = b" "


def body_json(doc: dict) -> bytes:
    """A document's JSON without its leaves (NaN, infinities and huge integers kept).

    Written by orjson, which reads it back exactly; where orjson would change a value, by
    json.dumps, after :data:`JSON_MARK`, so that readers know to use json.loads."""
    body = {k: v for k, v in doc.items() if k != "leaves"}
    try:  # orjson is several times faster, but writes NaN and infinities as null: json.dumps keeps them
        text = orjson.dumps(body)
        if b"null" not in text or not _non_finite(body):
            return text
    except TypeError:  # integers past 64 bits, lone surrogates...
        pass
    return JSON_MARK + json.dumps(body, separators=(",", ":")).encode()


def pack_body(doc: dict, zdict: bytes) -> bytes:
    """A document's stored body: its JSON without the leaves, deflated with the store's dictionary."""
    body = body_json(doc)
    # a window just big enough for dictionary + body compresses the same, and sets up much faster
    wbits = max(9, min(15, (len(zdict) + len(body) + 300).bit_length()))
    c = zlib.compressobj(6, zlib.DEFLATED, wbits, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    return c.compress(body) + c.flush()


#: what the writer reads from a document whose body comes packed (ids, paths, flags, reserved fields)
_WRITER_KEYS = ("_id", "kind", "paths", "past_paths", "current", "deleted", "indexed_at", "tags", "status",
                "format", "mtime", "depends_on", "leaves", "annotations")


def slim_for_body(doc: dict) -> dict:
    """``doc`` without what its packed body already carries: less to send between processes."""
    return {k: doc[k] for k in _WRITER_KEYS if k in doc}


def unpack_body(blob: bytes, zdict: bytes, *, marked: bool = False) -> dict:
    """The document a stored body holds (without its leaves); ``zdict`` is the store's dictionary.

    orjson reads bodies several times faster (a find of 10k runs), but reads an integer past 64
    bits as a float. ``marked``: every body of the store was written by :func:`body_json` as it is
    now, so one without :data:`JSON_MARK` is orjson's own output; otherwise a body with a long
    integer in it goes to json.loads."""
    d = zlib.decompressobj(15, zdict)
    text = d.decompress(blob) + d.flush()
    if text[:1] != JSON_MARK and (marked or _LONG_DIGITS.search(text) is None):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # NaN, infinities, lone surrogates (an unmarked older body)
            pass
    return json.loads(text)
