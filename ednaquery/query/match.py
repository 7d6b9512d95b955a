"""The query rules in Python, on one document's ``(path, value)`` leaves (docs/query.md).

The home of the matching rules outside the stores: the table's matched-value columns use
:func:`value_satisfies` and :func:`resolved_pairs`, and the conformance suite uses
:func:`matches` as a third oracle beside the SQLite and MongoDB compilers. It reads the
document's original values (``ednaquery.documents.document_pairs``), never a store.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from ednaquery.documents import number_view, value_tokens
from ednaquery.keys import KeySpec, resolve_paths
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range, Value
from ednaquery.regex import RegexError, compile_regex

__all__ = ["Pairs", "matches", "resolved_pairs", "value_satisfies"]

Pairs = Sequence[tuple[tuple[str, ...], Any]]


def _str_equal(want: Value, text: str) -> bool:
    """``=`` on a string leaf: the whole value or a run of its tokens, case-insensitive; a glob whole."""
    wanted = str(want.value).lower()
    low = text.lower()
    if want.glob and not want.quoted:  # only * and ? are special, as in the stores
        return fnmatch.fnmatchcase(low, wanted.replace("[", "[[]"))
    if low == wanted:
        return True
    want_toks = value_tokens(wanted)
    have = value_tokens(text)
    n = len(want_toks)
    return n > 0 and any(have[i:i + n] == want_toks for i in range(len(have) - n + 1))


def _equal(want: Value, value: Any) -> bool:
    if want.kind == "null":
        return value is None
    if want.kind == "bool":
        return isinstance(value, bool) and value == want.value
    if want.kind == "num":
        n = number_view(value)
        return n is not None and n == want.value
    return isinstance(value, str) and _str_equal(want, value)


def _ordered(op: str, bound: Value, value: Any) -> bool:
    if bound.kind == "num":
        x: Any = number_view(value)
        b: Any = bound.value
    elif bound.kind == "str" and isinstance(value, str):
        x, b = value.lower(), str(bound.value).lower()
    else:
        return False
    if x is None:
        return False
    return {"<": x < b, "<=": x <= b, ">": x > b, ">=": x >= b}[op]


def _regex(pattern: Value, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return compile_regex(str(pattern.value)).search(value.lower()) is not None  # as the stores: RE2 on ``s``
    except RegexError:
        return False


def value_satisfies(term: Compare | Range, value: Any) -> bool:
    """One positive term on one leaf value; ``!=``/``!~`` say True (they are about the whole document)."""
    if isinstance(term, Range):
        ok = True
        if term.low is not None:
            ok = _ordered(">=" if term.low_inclusive else ">", term.low, value)
        if ok and term.high is not None:
            ok = _ordered("<=" if term.high_inclusive else "<", term.high, value)
        return ok
    if term.op == "=":
        return any(_equal(v, value) for v in term.values)
    if term.op in ("<", "<=", ">", ">="):
        return _ordered(term.op, term.values[0], value)
    if term.op == "~":
        return _regex(term.values[0], value)
    return True


def resolved_pairs(key: KeySpec, pairs: Pairs) -> list[tuple[tuple[str, ...], Any]]:
    """The leaves of one document that ``key`` resolves to: exact paths first, else the suffix tier."""
    chosen = set(resolve_paths(key, dict.fromkeys(p for p, _ in pairs)))
    return [(p, v) for p, v in pairs if p in chosen]


def matches(node: Node, pairs: Pairs) -> bool:
    """True when the document whose leaves are ``pairs`` matches ``node`` (the stores' answer, in Python)."""
    if isinstance(node, MatchAll):
        return True
    if isinstance(node, And):
        return all(matches(i, pairs) for i in node.items)
    if isinstance(node, Or):
        return any(matches(i, pairs) for i in node.items)
    if isinstance(node, Not):
        return not matches(node.item, pairs)
    hits = resolved_pairs(node.key, pairs)
    if isinstance(node, Exists):
        return bool(hits)
    if isinstance(node, Range):
        return any(value_satisfies(node, v) for _, v in hits)
    if node.op in ("!=", "!~"):
        positive = Compare(node.key, "=" if node.op == "!=" else "~", node.values)
        return bool(hits) and not any(value_satisfies(positive, v) for _, v in hits)
    if node.op in ("~", "<", "<=", ">", ">=") and len(node.values) != 1:
        return False
    return any(value_satisfies(node, v) for _, v in hits)
