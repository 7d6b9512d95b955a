"""Compile a query AST to SQLite SQL with bound parameters.

Every term becomes a set of document row ids (``SELECT rid FROM leaves WHERE pid IN (..)
AND <value condition>``), answered from the ``(pid, n)``, ``(pid, sid)`` or ``(pid, t)``
partial indexes. A key resolves in two tiers (docs/query.md, "Keys"): the leaves under its
exact paths, UNION ALL the leaves under its fallback paths in documents that have no exact
leaf (an anti-join: ``rid NOT IN`` the set of documents with an exact leaf, one more indexed
lookup per term); AND/OR/NOT combine the sets with INTERSECT/UNION/EXCEPT. String terms
first narrow the distinct strings seen under the key (a small set), then look the matching
ones up. Keys arrive as path ids from the catalog and values as ``?`` parameters: nothing
the user typed becomes SQL text. The reserved ``id`` and ``path`` fields live in columns
(``docs.id``, ``doc_paths.path``) instead of leaves, since they are unique per document.
"""
from __future__ import annotations

from collections.abc import Callable

from ednaquery.documents import value_tokens
from ednaquery.errors import UsageError
from ednaquery.keys import KeySpec
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range, Value
from ednaquery.store.catalog import Tiers

# leaf type codes in the leaves table
T_NULL, T_FALSE, T_TRUE, T_NUM, T_STR, T_EMPTY = 0, 1, 2, 3, 4, 5
OTHER_TYPES = "(t < 3 OR t = 5)"  # exactly the partial index leaves_typ's WHERE (null, bools, empty)

Resolver = Callable[[KeySpec], Tiers]
SQL = tuple[str, list]
NOTHING: SQL = ("SELECT rid FROM docs WHERE 0", [])
NEVER: SQL = ("0", [])  # NOTHING as a per-document test (see _as_probe)
# reserved fields stored as columns: (table, string column, token column)
COLUMN_FIELDS = {
    "id": ("SELECT rid FROM docs WHERE ", "id", "(' ' || id || ' ')"),
    "path": ("SELECT rid FROM doc_paths WHERE live = 1 AND ", "lower(path)", "ednaquery_tokens(path)"),
}


#: SQLite's words for a statement past one of its size limits (the query's fault, not the store's)
_SIZE_LIMITS = ("too many terms in compound select", "expression tree is too large", "parser stack overflow",
                "too many sql variables", "string or blob too big", "too many columns", "statement too long")


def too_large(exc: Exception) -> UsageError | None:
    """The one-line "query too large" error for an SQLite error that a query's size caused, else None."""
    text = str(exc).lower()
    if any(m in text for m in _SIZE_LIMITS):
        return UsageError(f"query too large for the embedded store ({exc}): split it into smaller queries")
    return None


#: a query nested deeper than this (and/or/not levels) is compiled as a list of CTEs, one per level:
#: nested subqueries would overflow SQLite's parser stack at about eight levels
MAX_INLINE_DEPTH = 3


def compile_sql(node: Node, resolve: Resolver) -> SQL:
    """``(sql, params)`` selecting the ``docs.rid`` of every document matching ``node``."""
    if _depth(node) <= MAX_INLINE_DEPTH:
        return _node(node, resolve)
    ctes: list[SQL] = []
    last, _ = _node(node, resolve, ctes)
    defs = ", ".join(f"q{i}(rid) AS ({sql})" for i, (sql, _) in enumerate(ctes))
    return f"WITH {defs} {last}", [p for _, ps in ctes for p in ps]


def _depth(node: Node) -> int:
    if isinstance(node, (And, Or)):
        return 1 + max(_depth(i) for i in node.items)
    if isinstance(node, Not):
        return 1 + _depth(node.item)
    return 0


def compile_probe(node: Node, resolve: Resolver, alias: str = "d") -> SQL:
    """``(expr, params)``: a boolean SQL expression true when the ``docs`` row ``alias`` matches.

    The per-document form of :func:`compile_sql`: each leaf term is an EXISTS probe into that
    document's leaves. It pays off when a query matches many documents and only the first page in
    path order is wanted: the scan of ``docs_order`` stops after the page, with no set built.
    """
    return _probe(node, resolve, alias)


def _probe(node: Node, resolve: Resolver, alias: str) -> SQL:
    if isinstance(node, MatchAll):
        return "1", []
    if isinstance(node, (And, Or)):
        parts = [_probe(i, resolve, alias) for i in node.items]
        return _bool(" AND " if isinstance(node, And) else " OR ", parts)
    if isinstance(node, Not):
        s, p = _probe(node.item, resolve, alias)
        return f"NOT ({s})", p
    return _probe_term(node, resolve, alias)


def yields_distinct(node: Node) -> bool:
    """True when ``compile_sql(node)`` gives each ``rid`` once (a compound SELECT or the docs table)."""
    if isinstance(node, (MatchAll, Or, Not, Exists)):
        return not (isinstance(node, Exists) and node.key.reserved_field() == "path")
    if isinstance(node, And):
        return len(node.items) > 1 or any(isinstance(i, Not) for i in node.items)
    if isinstance(node, Compare) and node.op in ("!=", "!~"):
        return True
    return isinstance(node, (Compare, Range)) and node.key.reserved_field() == "id"


def _node(node: Node, resolve: Resolver, ctes: list[SQL] | None = None) -> SQL:
    """The set form of ``node``; with ``ctes``, every and/or/not level becomes a CTE appended there, and
    the SQL returned selects from it (a flat statement, however deep the query)."""
    if ctes is None or not isinstance(node, (And, Or, Not)):
        return _set(node, resolve, ctes)
    ctes.append(_set(node, resolve, ctes))
    return f"SELECT rid FROM q{len(ctes) - 1}", []


def _set(node: Node, resolve: Resolver, ctes: list[SQL] | None) -> SQL:
    if isinstance(node, MatchAll):
        return "SELECT rid FROM docs", []
    if isinstance(node, And):
        # a AND NOT b is a EXCEPT b: no complement of the whole store is ever materialised
        pos = [_node(i, resolve, ctes) for i in sorted((i for i in node.items if not isinstance(i, Not)), key=_rank)]
        neg = [_node(i.item, resolve, ctes) for i in node.items if isinstance(i, Not)]
        if not pos:
            pos = [("SELECT rid FROM docs", [])]
        if len(pos) + len(neg) > MAX_FANOUT:  # a long list: INTERSECT the positives, EXCEPT the union of the rest
            sql, params = _compound(" INTERSECT ", pos)
            if neg:
                nsql, nparams = _compound(" UNION ", neg)
                sql, params = f"SELECT * FROM ({sql}) EXCEPT SELECT * FROM ({nsql})", params + nparams
            return sql, params
        sql = " INTERSECT ".join(f"SELECT * FROM ({s})" for s, _ in pos)
        sql += "".join(f" EXCEPT SELECT * FROM ({s})" for s, _ in neg)
        return sql, [p for _, ps in pos + neg for p in ps]
    if isinstance(node, Or):
        return _compound(" UNION ", [_node(i, resolve, ctes) for i in node.items])
    if isinstance(node, Not):
        s, p = _node(node.item, resolve, ctes)
        return f"SELECT rid FROM docs EXCEPT SELECT * FROM ({s})", p
    if isinstance(node, Exists):
        return _exists(node.key, resolve)
    if isinstance(node, Range):
        return _term(node.key, resolve, lambda src: _range(node, src))
    if isinstance(node, Compare):
        return _compare(node, resolve)
    raise UsageError(f"cannot compile query node {type(node).__name__}")


def _probe_term(node: Node, resolve: Resolver, alias: str) -> SQL:
    """A term tested on one document's leaves: the same leaf condition as the set form."""
    if isinstance(node, Exists):
        return _exists(node.key, resolve, alias)
    if isinstance(node, Range):
        return _term(node.key, resolve, lambda src: _range(node, src), alias)
    if isinstance(node, Compare):
        return _compare(node, resolve, alias)
    return _as_probe(_node(node, resolve), alias)


def _as_probe(rids: SQL, probe: str | None) -> SQL:
    """A set of rids as the per-document test ``probe.rid IN (set)`` (the set is built once); as is
    without ``probe``."""
    if probe is None:
        return rids
    return NEVER if rids is NOTHING else (f"{probe}.rid IN ({rids[0]})", rids[1])


def _rank(node: Node) -> int:
    """Guess of how selective a term is (smaller first): the left-most INTERSECT operand is materialised."""
    if isinstance(node, Compare) and node.op == "=":
        return 0 if all(v.kind == "str" and not v.glob for v in node.values) else 1
    if isinstance(node, Compare) and node.op == "~":
        return 2
    if isinstance(node, (Compare, Range)):
        return 3
    return 4


#: at most this many operands in one AND/OR expression or one compound SELECT: longer lists become a
#: balanced tree (SQLite allows 500 terms in a compound SELECT and an expression 1000 deep)
MAX_FANOUT = 64


def _bool(joiner: str, conds: list[SQL]) -> SQL:
    """Conditions joined by ``joiner`` (`` AND ``/`` OR ``), as a balanced tree when there are many."""
    if len(conds) > MAX_FANOUT:
        size = -(-len(conds) // MAX_FANOUT)
        conds = [_bool(joiner, conds[i:i + size]) for i in range(0, len(conds), size)]
    return joiner.join(f"({c})" for c, _ in conds), [p for _, ps in conds for p in ps]


def _and(conds: list[SQL]) -> SQL:
    return _bool(" AND ", conds)


def _or(conds: list[SQL]) -> SQL:
    return _bool(" OR ", conds)


def _compound(op: str, parts: list[SQL]) -> SQL:
    """Row sets combined by ``op`` (`` UNION ``/`` INTERSECT ``), nested in subqueries when there are many."""
    if len(parts) > MAX_FANOUT:
        size = -(-len(parts) // MAX_FANOUT)
        parts = [_compound(op, parts[i:i + size]) for i in range(0, len(parts), size)]
    return op.join(f"SELECT * FROM ({s})" for s, _ in parts), [p for _, ps in parts for p in ps]


class _Source:
    """Where a key's values live: leaf rows under some path ids (``fallback`` ids only in documents
    with no leaf under ``pids``), or a reserved column."""

    def __init__(self, pids: list[int] | None = None, column: str | None = None,
                 fallback: list[int] | None = None) -> None:
        self.pids = pids or []
        self.fallback = fallback or []
        self.column = column

    def pid_in(self, pids: list[int] | None = None) -> SQL:
        pids = self.pids if pids is None else pids
        return f"pid IN ({','.join('?' * len(pids))})", list(pids)


_UNBOUND = _Source(column="*")  # string predicates not yet bound to a source (see _any_of)


def _source(key: KeySpec, resolve: Resolver) -> _Source | None:
    field = key.reserved_field()
    if field in COLUMN_FIELDS:
        return _Source(column=field)
    tiers = resolve(key)
    if not tiers:
        return None
    if not tiers.exact:  # no document has an exact leaf: the fallback paths are the key
        return _Source(pids=tiers.fallback)
    return _Source(pids=tiers.exact, fallback=tiers.fallback)


_ANY_TYPE = ("n IS NOT NULL", "sid IS NOT NULL", OTHER_TYPES)  # together: every leaf, each from one index


def _any_leaf(pids: list[int]) -> SQL:
    """The rids with any leaf under ``pids``, from the three partial indexes (none covers every leaf)."""
    marks = ",".join("?" * len(pids))
    return " UNION ALL ".join(f"SELECT rid FROM leaves WHERE pid IN ({marks}) AND {c}" for c in _ANY_TYPE), \
        list(pids) * len(_ANY_TYPE)


def _term(key: KeySpec, resolve: Resolver, cond: Callable[[_Source], SQL], probe: str | None = None) -> SQL:
    src = _source(key, resolve)
    if src is None:
        return _as_probe(NOTHING, probe)
    c, cp = cond(src)
    if src.column:
        return _as_probe((COLUMN_FIELDS[src.column][0] + f"({c})", cp), probe)
    pin, pp = src.pid_in()
    if probe:  # '+pid' keeps the planner on the primary key (rid, ...) rather than a (pid, ...) index
        sql = f"EXISTS (SELECT 1 FROM leaves WHERE rid = {probe}.rid AND +{pin} AND ({c}))"
        params = pp + cp
        if src.fallback:
            fin, fp = src.pid_in(src.fallback)
            # "no exact leaf" first: most documents have one, and it stops at the first such leaf
            sql = (f"{sql} OR (NOT EXISTS (SELECT 1 FROM leaves WHERE rid = {probe}.rid AND +{pin}) "
                   f"AND EXISTS (SELECT 1 FROM leaves WHERE rid = {probe}.rid AND +{fin} AND ({c})))")
            params = params + pp + fp + cp
        return sql, params
    sql, params = f"SELECT rid FROM leaves WHERE {pin} AND ({c})", pp + cp
    if src.fallback:
        fin, fp = src.pid_in(src.fallback)
        exact, ep = _any_leaf(src.pids)
        sql += f" UNION ALL SELECT rid FROM leaves WHERE {fin} AND ({c}) AND rid NOT IN ({exact})"
        params = params + fp + cp + ep
    return sql, params


def _exists(key: KeySpec, resolve: Resolver, probe: str | None = None) -> SQL:
    """Documents where the key resolves to some leaf: a leaf under either tier's paths."""
    src = _source(key, resolve)
    if src is None:
        return _as_probe(NOTHING, probe)
    if src.column:
        return _as_probe((COLUMN_FIELDS[src.column][0] + "1", []), probe)
    pin, pp = src.pid_in(sorted(src.pids + src.fallback))
    if probe:
        return f"EXISTS (SELECT 1 FROM leaves WHERE rid = {probe}.rid AND +{pin} AND ({' OR '.join(_ANY_TYPE)}))", pp
    parts = [f"SELECT rid FROM leaves WHERE {pin} AND {c}" for c in _ANY_TYPE]
    return " UNION ".join(parts), pp * 3


def _compare(node: Compare, resolve: Resolver, probe: str | None = None) -> SQL:
    op = node.op
    if op in ("=", "!=", "~", "!~"):
        one = _equal if op in ("=", "!=") else _regex
        match = _term(node.key, resolve, lambda src: _any_of(node.values, src, one), probe)
        if op in ("=", "~"):
            return match
        exists = _exists(node.key, resolve, probe)  # k!=v: has k, and no matching leaf equals v
        if exists is NOTHING or exists is NEVER:
            return exists
        if probe:
            return f"({exists[0]}) AND NOT ({match[0]})", exists[1] + match[1]
        return f"SELECT * FROM ({exists[0]}) EXCEPT SELECT * FROM ({match[0]})", exists[1] + match[1]
    if len(node.values) != 1:
        raise UsageError(f"a list of values only works with = and !=, not {op}")
    return _term(node.key, resolve, lambda src: _ordered(op, node.values[0], src), probe)


def _any_of(values: tuple[Value, ...], src: _Source, one: Callable[[Value, _Source], SQL]) -> SQL:
    """One leaf condition for a value list: string tests share one candidate scan, numbers one IN."""
    strs = [v for v in values if v.kind == "str"]
    nums = [v for v in values if v.kind == "num"]
    conds: list[SQL] = []
    if len(strs) > 1:
        conds.append(_strings(src, _or([one(v, _UNBOUND) for v in strs])))
    else:
        conds += [one(v, src) for v in strs]
    if one is _equal and len(nums) > 1 and not src.column:
        conds.append((f"n IN ({','.join('?' * len(nums))})", [v.value for v in nums]))
    else:
        conds += [one(v, src) for v in nums]
    conds += [one(v, src) for v in values if v.kind not in ("str", "num")]
    return conds[0] if len(conds) == 1 else _or(conds)


def _strings(src: _Source, pred: SQL) -> SQL:
    """Leaves whose string value satisfies ``pred`` (over strs.s / strs.w, or the reserved column)."""
    if src.column == "*":  # unbound: the caller combines several predicates first
        return pred
    if src.column:
        _, s_col, w_col = COLUMN_FIELDS[src.column]
        return pred[0].replace("{s}", s_col).replace("{w}", w_col), pred[1]
    # The distinct strings stored under these paths are few; find them with a loose index scan of
    # leaves_str (one seek per distinct string, not one step per leaf), test them, then look the hits up.
    cond = pred[0].replace("{s}", "s.s").replace("{w}", "s.w")
    pids = src.pids + src.fallback
    values = ",".join(["(?)"] * len(pids))
    cand = (f"WITH RECURSIVE ps(pid) AS (VALUES {values}), "
            "d(pid, sid) AS (SELECT pid, (SELECT min(sid) FROM leaves WHERE pid = ps.pid AND sid IS NOT NULL) FROM ps "
            "UNION ALL SELECT pid, (SELECT min(sid) FROM leaves WHERE pid = d.pid AND sid > d.sid) "
            "FROM d WHERE d.sid IS NOT NULL) "
            f"SELECT s.sid FROM d JOIN strs s ON s.sid = d.sid WHERE ({cond})")
    return f"sid IN ({cand})", pids + pred[1]


def _equal(v: Value, src: _Source) -> SQL:
    if v.kind in ("num", "bool", "null") and src.column:
        return "0", []
    if v.kind == "num":
        return "n = ?", [v.value]
    if v.kind == "bool":
        return f"{OTHER_TYPES} AND t = {T_TRUE if v.value else T_FALSE}", []
    if v.kind == "null":
        return f"{OTHER_TYPES} AND t = {T_NULL}", []
    text = str(v.value).lower()
    if v.glob:
        return _strings(src, ("{s} GLOB ?", [_glob_pattern(text)]))
    toks = value_tokens(text)
    if not toks:
        return _strings(src, ("{s} = ?", [text]))
    return _strings(src, ("{s} = ? OR instr({w}, ?) > 0", [text, " " + " ".join(toks) + " "]))


def _regex(v: Value, src: _Source) -> SQL:
    return _strings(src, ("ednaquery_regexp(?, {s})", [str(v.value)]))


def _ordered(op: str, v: Value, src: _Source) -> SQL:
    if v.kind == "num":
        return ("0", []) if src.column else (f"n {op} ?", [v.value])
    if v.kind == "str":
        return _strings(src, (f"{{s}} {op} ?", [str(v.value).lower()]))
    raise UsageError(f"{op} needs a number or a string, not {v.kind}")


def _range(node: Range, src: _Source) -> SQL:
    bounds = [(node.low, node.low_inclusive, ">"), (node.high, node.high_inclusive, "<")]
    return _and([_ordered(op + ("=" if incl else ""), b, src) for b, incl, op in bounds if b is not None])


def _glob_pattern(text: str) -> str:
    """A user glob (only ``*`` and ``?`` special) as an SQLite GLOB pattern (``[`` escaped)."""
    return text.replace("[", "[[]")


def leaf_filter(tiers: Tiers, doc: str = "d.rid", alias: str = "l") -> SQL:
    """A condition on leaf row ``alias`` of document ``doc``: the leaf is one the key resolves to there
    (an exact path, or a fallback path when the document has no exact leaf); for sorting and grouping."""
    marks = ",".join("?" * len(tiers.exact))
    if not tiers.fallback or not tiers.exact:
        pids = tiers.exact or tiers.fallback
        return f"{alias}.pid IN ({','.join('?' * len(pids))})", list(pids)
    fmarks = ",".join("?" * len(tiers.fallback))
    sql = (f"({alias}.pid IN ({marks}) OR ({alias}.pid IN ({fmarks}) AND NOT EXISTS "
           f"(SELECT 1 FROM leaves x WHERE x.rid = {doc} AND x.pid IN ({marks}))))")
    return sql, list(tiers.exact) + list(tiers.fallback) + list(tiers.exact)


def best_rows_sql(match: SQL, metric: Tiers, ranks: dict[int, int], group: Tiers | None, group_pids: list[int],
                  minimize: bool) -> SQL:
    """``(id, score, group label, order)`` of the best-scoring documents of each group (ties kept).

    A document's score is its best number (``min`` with ``minimize``) among the metric's leaves of the
    lowest rank present (``ranks``: path id -> :func:`ednaquery.metrics.summary_rank`: 0 for ``.best``, 1 for
    ``.last``, 2 for a group's ``.mean``, 3 otherwise); its label is
    the smallest value (strings lower-cased) of its ``group`` leaves under ``group_pids``, '' without.
    Scores come from the ``(pid, n)`` index, labels from ``(pid, sid)``/``(pid, n)``, one GROUP BY each;
    ``RANK()`` per label keeps the winners, and only their ``docs`` rows are read.
    """
    agg = "min" if minimize else "max"
    mf, mp = leaf_filter(metric, doc="l.rid", alias="l")
    pids = sorted(ranks)
    values = ",".join("(?,?)" for _ in pids)
    params: list = list(match[1]) + [x for p in pids for x in (p, ranks[p])] + mp
    score = " ".join(f"WHEN {k} THEN {agg}(CASE WHEN r.k = {k} THEN l.n END)" for k in sorted(set(ranks.values())))
    sql = (f"WITH m(rid) AS ({match[0]}), r(pid, k) AS (VALUES {values}), "
           f"b(rid, v) AS (SELECT l.rid, CASE min(r.k) {score} END FROM r JOIN leaves l ON l.pid = r.pid "
           f"WHERE l.n IS NOT NULL AND l.rid IN (SELECT rid FROM m) AND {mf} GROUP BY l.rid)")
    label = "''"
    if group and group_pids:
        gf, gp = leaf_filter(group, doc="l.rid", alias="l")
        gin = ",".join("?" * len(group_pids))
        sql += (f", g(rid, label) AS (SELECT rid, min(label) FROM ("
                f"SELECT l.rid AS rid, s.s AS label FROM leaves l JOIN strs s ON s.sid = l.sid "
                f"WHERE l.pid IN ({gin}) AND l.sid IS NOT NULL AND l.rid IN (SELECT rid FROM b) AND {gf} "
                f"UNION ALL SELECT l.rid, printf('%.15g', l.n) FROM leaves l "
                f"WHERE l.pid IN ({gin}) AND l.n IS NOT NULL AND l.sid IS NULL AND l.rid IN (SELECT rid FROM b) "
                f"AND {gf}) GROUP BY rid)")
        params += list(group_pids) + gp + list(group_pids) + gp
        label = "coalesce(g.label, '')"
    order = "ASC" if minimize else "DESC"
    sql += (f", w(rid, v, label, rk) AS (SELECT b.rid, b.v, {label}, "
            f"RANK() OVER (PARTITION BY {label} ORDER BY b.v {order}) FROM b"
            + (" LEFT JOIN g ON g.rid = b.rid" if label != "''" else "") + ") "
            "SELECT d.id, w.v, w.label, coalesce(d.path0, '~' || d.id) FROM w JOIN docs d ON d.rid = w.rid "
            "WHERE w.rk = 1")
    return sql, params
