"""Text safe to print to a terminal: control characters in indexed data shown as escapes.

Config values, keys and paths come from files anyone with write access to a watched folder
can make; printed raw, an ESC sequence in one could set a teammate's window title, clear the
screen or fake output. Every human-facing output (tables, status lines) passes such text
through :func:`printable`; the machine formats (json, jsonl, csv, ids) keep the exact bytes.
"""
from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls, DEL, and the invisible direction marks and overrides that reorder what is shown
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def printable(text: str) -> str:
    """``text`` with control and direction-override characters written as escapes (``\\x1b``, ``\\n``)."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text
