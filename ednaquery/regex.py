"""The regex engine behind ``~``: RE2, whose matching time is linear in the text.

A backtracking engine (Python's ``re``, PCRE) can take hours on ``(a+)+$`` against a value
of 36 ``a`` and a ``!``; a config anyone can write must not be able to do that to a query.
RE2 has no backreferences or lookarounds (they need backtracking): the query parser reports
such a pattern as a syntax error, so every backend runs the same language.
"""
from __future__ import annotations

from typing import Any

import re2

__all__ = ["RegexError", "compile_regex"]

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.log_errors = False  # a bad pattern is our one-line error, not a line on stderr
_CACHE: dict[str, Any] = {}


class RegexError(ValueError):
    """A pattern RE2 does not run; the message says why in a few words."""


def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled case-insensitively by RE2 (cached); RegexError if RE2 cannot run it."""
    rx = _CACHE.get(pattern)
    if rx is None:
        try:
            rx = re2.compile(pattern, _OPTIONS)
        except re2.error as e:
            why = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
            raise RegexError(f"{why} (regexes run on RE2: no backreferences or lookarounds)") from None
        if len(_CACHE) > 1000:
            _CACHE.clear()
        _CACHE[pattern] = rx
    return rx
