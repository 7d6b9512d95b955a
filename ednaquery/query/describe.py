"""Print a query AST back as canonical query text (for ``--explain``, logs and tests).

``parse(to_text(node)) == node`` for every node the parser can produce (aliases aside:
``last_alternatives`` are not query syntax). Canonical form: juxtaposition for AND,
`` or `` for OR, ``!key`` for absence, ``not (...)`` otherwise, numbers in the shortest
form that reads back equal, strings bare when they read back the same and quoted otherwise.
"""
from __future__ import annotations

import math

from ednaquery.errors import QuerySyntaxError
from ednaquery.keys import KeySpec
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range, Value
from ednaquery.query.parser import LIST_OPS, word_value
from ednaquery.query.tokens import REGEX_OPS, tokenize

_OR, _AND, _NOT = 1, 2, 3


def to_text(node: Node) -> str:
    """``node`` as query text that parses back to the same AST."""
    return _node(node, 0)


def key_text(key: KeySpec) -> str:
    """A key as typed: ``optimizer.lr``, ``.model.name``, ``a.`weird.key```, ``*lr``."""
    lits = key.literal or (False,) * len(key.segments)
    parts = [_backquote(s) if lit else s for s, lit in zip(key.segments, lits)]
    star = "*" if key.every else ""
    text = star + ("." if key.anchored else "") + ".".join(parts)
    if not all(lits) and not _single_word(text):
        text = star + ("." if key.anchored else "") + ".".join(_backquote(s) for s in key.segments)
    return text


def value_text(value: Value, op: str = "=") -> str:
    """A value as typed after ``op``: bare when it reads back the same, else quoted."""
    if value.kind == "num":
        return _number(float(value.value))  # type: ignore[arg-type]
    if value.kind == "bool":
        return "true" if value.value else "false"
    if value.kind == "null":
        return "null"
    text = str(value.value)
    if not value.quoted and _bare_ok(text, value, op):
        return text
    return _quote(text)


def _node(node: Node, parent: int) -> str:
    if isinstance(node, MatchAll):
        return ""
    if isinstance(node, Or):
        text = " or ".join(_node(i, _OR) for i in node.items)
        return f"({text})" if parent > _OR else text
    if isinstance(node, And):
        text = " ".join(_node(i, _AND) for i in node.items)
        return f"({text})" if parent > _AND else text
    if isinstance(node, Not):
        if isinstance(node.item, Exists):
            return "!" + key_text(node.item.key)
        return "not " + _node(node.item, _NOT)
    if isinstance(node, Exists):
        return key_text(node.key)
    if isinstance(node, Compare):
        return key_text(node.key) + node.op + ",".join(value_text(v, node.op) for v in node.values)
    if isinstance(node, Range):
        key = key_text(node.key)
        if node.low is None and node.high is None:
            return key
        below = "<=" if node.high_inclusive else "<"
        above = "<=" if node.low_inclusive else "<"
        if node.low is None:  # one-sided ranges are never parsed, but print them as comparisons
            return key + below + value_text(node.high, "<")  # type: ignore[arg-type]
        if node.high is None:
            return key + above.replace("<", ">") + value_text(node.low, ">")
        return value_text(node.low, "<") + above + key + below + value_text(node.high, "<")
    raise TypeError(f"not a query node: {node!r}")


def _number(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _backquote(text: str) -> str:
    return "`" + text.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _single_word(text: str) -> bool:
    try:
        toks = tokenize(text)
    except QuerySyntaxError:
        return False
    return len(toks) == 1 and toks[0].kind == "WORD" and toks[0].text == text


def _bare_ok(text: str, value: Value, op: str) -> bool:
    if op in REGEX_OPS:
        try:
            toks = tokenize("k" + op + text)
        except QuerySyntaxError:
            return False
        return len(toks) == 3 and toks[2].kind == "REGEX" and toks[2].text == text
    if "`" in text or not _single_word(text):
        return False
    return word_value(text, glob_allowed=op in LIST_OPS) == value
