"""Compile a query AST to SQLite SQL with bound parameters.

Every term becomes a set of document row ids (``SELECT rid FROM leaves WHERE pid IN (..)
AND <value condition>``), answered from the ``(pid, n)``, ``(pid, sid)`` or ``(pid, t)``
index; AND/OR/NOT combine the sets with INTERSECT/UNION/EXCEPT. Keys arrive as path ids from
the catalog and values as ``?`` parameters: nothing the user typed becomes SQL text.
"""
from __future__ import annotations

from collections.abc import Callable

from ednaquery.documents import value_tokens
from ednaquery.errors import UsageError
from ednaquery.keys import KeySpec
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range, Value

# leaf type codes in the leaves table
T_NULL, T_FALSE, T_TRUE, T_NUM, T_STR, T_EMPTY = 0, 1, 2, 3, 4, 5

Resolver = Callable[[KeySpec], list[int]]
SQL = tuple[str, list]
NOTHING: SQL = ("SELECT rid FROM docs WHERE 0", [])


def compile_sql(node: Node, resolve: Resolver) -> SQL:
    """``(sql, params)`` selecting the ``docs.rid`` of every document matching ``node``."""
    return _node(node, resolve)


def _node(node: Node, resolve: Resolver) -> SQL:
    if isinstance(node, MatchAll):
        return "SELECT rid FROM docs", []
    if isinstance(node, (And, Or)):
        parts = [_node(i, resolve) for i in node.items]
        glue = " INTERSECT " if isinstance(node, And) else " UNION "
        return glue.join(f"SELECT * FROM ({s})" for s, _ in parts), [p for _, ps in parts for p in ps]
    if isinstance(node, Not):
        s, p = _node(node.item, resolve)
        return f"SELECT rid FROM docs EXCEPT SELECT * FROM ({s})", p
    if isinstance(node, Exists):
        return _leaves(node.key, resolve, None)
    if isinstance(node, Range):
        conds = []
        for bound, incl, op in ((node.low, node.low_inclusive, ">"), (node.high, node.high_inclusive, "<")):
            if bound is not None:
                conds.append(_ordered(op + ("=" if incl else ""), bound))
        return _leaves(node.key, resolve, _and(conds))
    if isinstance(node, Compare):
        return _compare(node, resolve)
    raise UsageError(f"cannot compile query node {type(node).__name__}")


def _and(conds: list[SQL]) -> SQL:
    return " AND ".join(f"({c})" for c, _ in conds), [p for _, ps in conds for p in ps]


def _leaves(key: KeySpec, resolve: Resolver, cond: SQL | None) -> SQL:
    pids = resolve(key)
    if not pids:
        return NOTHING
    sql = f"SELECT rid FROM leaves WHERE pid IN ({','.join('?' * len(pids))})"
    params = list(pids)
    if cond is not None:
        sql += f" AND ({cond[0]})"
        params += cond[1]
    return sql, params


def _compare(node: Compare, resolve: Resolver) -> SQL:
    op = node.op
    if op in ("=", "!=", "~", "!~"):
        one = _equal if op in ("=", "!=") else _regex
        parts = [one(v) for v in node.values]
        cond = (" OR ".join(f"({s})" for s, _ in parts), [p for _, ps in parts for p in ps])
        match = _leaves(node.key, resolve, cond)
        if op in ("=", "~"):
            return match
        exists = _leaves(node.key, resolve, None)  # k!=v: has k, and no matching leaf equals v
        if exists is NOTHING:
            return NOTHING
        return f"SELECT * FROM ({exists[0]}) EXCEPT SELECT * FROM ({match[0]})", exists[1] + match[1]
    if len(node.values) != 1:
        raise UsageError(f"a list of values only works with = and !=, not {op}")
    return _leaves(node.key, resolve, _ordered(op, node.values[0]))


def _equal(v: Value) -> SQL:
    if v.kind == "num":
        return "n = ?", [v.value]
    if v.kind == "bool":
        return f"t = {T_TRUE if v.value else T_FALSE}", []
    if v.kind == "null":
        return f"t = {T_NULL}", []
    text = str(v.value).lower()
    if v.glob:
        return "sid IN (SELECT sid FROM strs WHERE s GLOB ?)", [_glob_pattern(text)]
    toks = value_tokens(text)
    if not toks:
        return "sid IN (SELECT sid FROM strs WHERE s = ?)", [text]
    return (("sid IN (SELECT sid FROM strs WHERE s = ? UNION SELECT t.sid FROM strtok t "
            "JOIN strs s ON s.sid = t.sid WHERE t.tok = ? AND instr(s.w, ?) > 0)"),
            [text, toks[0], " " + " ".join(toks) + " "])


def _regex(v: Value) -> SQL:
    return "sid IN (SELECT sid FROM strs WHERE ednaquery_regexp(?, s))", [str(v.value)]


def _ordered(op: str, v: Value) -> SQL:
    if v.kind == "num":
        return f"n {op} ?", [v.value]
    if v.kind == "str":
        return f"sid IN (SELECT sid FROM strs WHERE s {op} ?)", [str(v.value).lower()]
    raise UsageError(f"{op} needs a number or a string, not {v.kind}")


def _glob_pattern(text: str) -> str:
    """A user glob (only ``*`` and ``?`` special) as an SQLite GLOB pattern (``[`` escaped)."""
    return text.replace("[", "[[]")
