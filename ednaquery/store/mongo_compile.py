"""Compile a query AST to a MongoDB filter (and a sort pipeline) over the ``leaves`` array.

Each condition is ONE ``$elemMatch`` on ``leaves``: ``p $in [paths the key resolves to]`` plus
the value condition, so a range holds on one leaf and a compound multikey index
``(leaves.p, leaves.n|s|w|t)`` answers it. A key resolves in two tiers (docs/query.md, "Keys"):
``{$or: [<exact paths + cond>, {$and: [<fallback paths + cond>, {$nor: [<any exact leaf>]}]}]}``,
each ``$or`` branch led by an indexed elemMatch. A term with alternatives (``model=vit`` = whole value
OR a run of tokens; value lists) is an ``$or`` of such elemMatches, never an ``$or`` inside one. Keys are resolved in Python (the path catalog) and
values only ever appear as operands, so nothing a user types becomes an operator or a field name.

Only operators whose meaning is the same on real MongoDB, mongomock and the nx-27017 wire
server are emitted: ``$elemMatch $and $or $nor $in $lt $lte $gt $gte $eq $regex $options
$exists`` in filters (never ``$not``, ``$ne``/``$nin`` on arrays, ``$where``, ``$expr``,
``$function``). The sort pipeline uses ``$project``/``$filter``/``$unwind``/``$group``
(``$min``/``$max``/``$first`` accumulators)/``$cond``/``$gt``/``$size``/``$addFields``/``$sort``/``$skip``/``$limit``, because
mongomock's ``$max`` over an array expression is wrong.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ednaquery.documents import value_tokens
from ednaquery.errors import UsageError
from ednaquery.keys import KeySpec
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range, Value
from ednaquery.store.base import FindOptions, SortKey, effective_kinds
from ednaquery.store.catalog import Tiers

Resolver = Callable[[KeySpec], Tiers]

#: a filter no document matches (an empty ``$in``), portable everywhere
NOTHING: dict = {"_id": {"$in": []}}

_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_REGEX_SPECIAL = re.compile(r"([^\w\s])", re.ASCII)


def escape_regex(text: str) -> str:
    """Escape a literal for a regex that means the same in Python ``re`` and PCRE.

    Every ASCII character that is not a letter, digit, ``_`` or whitespace gets a backslash
    (in both dialects a backslash before such a character is the character itself).
    """
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def glob_regex(pattern: str) -> str:
    """An anchored regex for a user glob on the lower-cased value: only ``*`` and ``?`` are special."""
    out = []
    for ch in pattern.lower():
        if ch == "*":
            out.append(r"[\s\S]*")
        elif ch == "?":
            out.append(r"[\s\S]")
        else:
            out.append(escape_regex(ch))
    return "^" + "".join(out) + "$"


def _text(v: Value) -> str:
    if isinstance(v.value, float) and v.value.is_integer() and abs(v.value) < 2**53:
        return str(int(v.value))
    return str(v.value)


def _equal(v: Value) -> list[dict]:
    """Conditions on one leaf for ``key = v`` (typed, whole value or a run of tokens, globs); any may hold."""
    if v.kind == "num":
        return [{"n": v.value}]
    if v.kind == "bool":
        return [{"t": "bool", "b": bool(v.value)}]
    if v.kind == "null":
        return [{"t": "null"}]
    text = str(v.value).lower()
    if v.glob:
        return [{"s": {"$regex": glob_regex(text)}}]
    toks = value_tokens(text)
    if not toks:
        return [{"s": text}]
    run = " " + " ".join(toks) + " "
    return [{"s": text}, {"w": {"$regex": escape_regex(run)}}]


def _regex(v: Value) -> list[dict]:
    pattern = str(v.value) if v.kind == "str" else _text(v)
    try:
        re.compile(pattern)
    except re.error as e:
        raise UsageError(f"invalid regular expression {pattern!r}: {e}") from None
    return [{"s": {"$regex": pattern, "$options": "i"}}]


def _ordered(op: str, v: Value) -> dict:
    if v.kind == "num":
        return {"n": {_OPS[op]: v.value}}
    if v.kind == "str":
        return {"s": {_OPS[op]: str(v.value).lower()}}
    raise UsageError(f"{op} needs a number or a string, not {v.kind}")


def _merge(conds: list[dict]) -> dict:
    """AND conditions on one leaf into one dict (``{n: {$gt: a}}`` + ``{n: {$lt: b}}`` -> one field)."""
    out: dict[str, Any] = {}
    for c in conds:
        for field, cond in c.items():
            if field in out and isinstance(out[field], dict) and isinstance(cond, dict):
                out[field] = {**out[field], **cond}
            elif field in out:
                out.setdefault("$and", []).append({field: cond})
            else:
                out[field] = cond
    return out


def _id_conds(op: str, v: Value) -> list[dict]:
    """The reserved ``id`` key compares the document id itself (``_id``, its own index).

    Like the embedded store's ``docs.id`` column: a string compares with the whole id
    (lower-cased; ids are lower-case), globs and regexes match it, numbers/booleans/null never do.
    """
    if v.kind != "str":
        if op in ("~", "!~"):
            return [{"_id": _regex(v)[0]["s"]}]
        if op in _OPS:
            _ordered(op, v)  # same usage errors as any key
        return []
    text = str(v.value)
    if op in ("~", "!~"):
        return [{"_id": _regex(v)[0]["s"]}]
    if op in _OPS:
        return [{"_id": {_OPS[op]: text.lower()}}]
    if v.glob:
        return [{"_id": {"$regex": glob_regex(text)}}]
    return [{"_id": text.lower()}]


def _id_term(node: Node) -> dict:
    if isinstance(node, Exists):
        return {}
    if isinstance(node, Range):
        conds = []
        if node.low is not None:
            conds += _id_conds(">=" if node.low_inclusive else ">", node.low) or [NOTHING]
        if node.high is not None:
            conds += _id_conds("<=" if node.high_inclusive else "<", node.high) or [NOTHING]
        if any(c == NOTHING for c in conds):
            return NOTHING
        return _merge(conds)
    assert isinstance(node, Compare)
    if node.op in _OPS and len(node.values) != 1:
        raise UsageError(f"a list of values only works with = and !=, not {node.op}")
    conds = [c for v in node.values for c in _id_conds(node.op, v)]
    match = NOTHING if not conds else conds[0] if len(conds) == 1 else {"$or": conds}
    if node.op in ("!=", "!~"):
        return {} if match == NOTHING else {"$nor": [match]}
    return match


def _is_id(node: Node) -> bool:
    return isinstance(node, (Compare, Range, Exists)) and node.key.reserved_field() == "id"


def _leaves(paths: list[str], cond: dict | None) -> dict:
    match: dict[str, Any] = {"p": {"$in": list(paths)}}
    if cond:
        match.update(cond)
    return {"leaves": {"$elemMatch": match}}


def _tiered(tiers: Tiers, cond: dict | None) -> dict:
    """Documents with a leaf meeting ``cond`` among those the key resolves to (exact first, else fallback)."""
    if not tiers.fallback or not tiers.exact:
        return _leaves(tiers.exact or tiers.fallback, cond)
    return {"$or": [_leaves(tiers.exact, cond),
                    {"$and": [_leaves(tiers.fallback, cond), {"$nor": [_leaves(tiers.exact, None)]}]}]}


def compile_filter(node: Node, resolve: Resolver) -> dict:
    """The MongoDB filter selecting every document that matches ``node``."""
    if isinstance(node, MatchAll):
        return {}
    if isinstance(node, And):
        parts = [compile_filter(i, resolve) for i in node.items]
        parts = [p for p in parts if p]
        if any(p == NOTHING for p in parts):
            return NOTHING
        return {} if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
    if isinstance(node, Or):
        if not node.items:
            return NOTHING
        parts = [compile_filter(i, resolve) for i in node.items]
        if any(p == {} for p in parts):
            return {}
        parts = [p for p in parts if p != NOTHING]
        return NOTHING if not parts else parts[0] if len(parts) == 1 else {"$or": parts}
    if isinstance(node, Not):
        inner = compile_filter(node.item, resolve)
        if inner == {}:
            return NOTHING
        if inner == NOTHING:
            return {}
        return {"$nor": [inner]}
    if _is_id(node):
        return _id_term(node)
    if isinstance(node, Exists):
        tiers = resolve(node.key)
        return _leaves(tiers.all, None) if tiers else NOTHING
    if isinstance(node, Range):
        tiers = resolve(node.key)
        conds = []
        if node.low is not None:
            conds.append(_ordered(">=" if node.low_inclusive else ">", node.low))
        if node.high is not None:
            conds.append(_ordered("<=" if node.high_inclusive else "<", node.high))
        return _tiered(tiers, _merge(conds)) if tiers else NOTHING
    if isinstance(node, Compare):
        return _compare(node, resolve)
    raise UsageError(f"cannot compile query node {type(node).__name__}")


def _compare(node: Compare, resolve: Resolver) -> dict:
    op = node.op
    if op in ("=", "!=", "~", "!~"):
        one = _equal if op in ("=", "!=") else _regex
        conds = [c for v in node.values for c in one(v)]  # validate values even when the key is unknown
        tiers = resolve(node.key)
        if not tiers:
            return NOTHING
        # any of the conditions on some leaf == some leaf meeting one of them: an $or of elemMatches,
        # each one served by one compound index (and the shape every backend gets right)
        matches = [_tiered(tiers, c) for c in conds]
        if op in ("=", "~"):
            return matches[0] if len(matches) == 1 else {"$or": matches}
        # k!=v: documents that have k, and where no matching leaf equals v
        return {"$and": [_leaves(tiers.all, None), {"$nor": matches}]}
    if len(node.values) != 1:
        raise UsageError(f"a list of values only works with = and !=, not {op}")
    cond = _ordered(op, node.values[0])
    tiers = resolve(node.key)
    return _tiered(tiers, cond) if tiers else NOTHING


def find_filter(node: Node, options: FindOptions, resolve: Resolver) -> dict:
    """The query filter plus the kind filter (``effective_kinds``) and ``current`` unless all versions."""
    parts = []
    q = compile_filter(node, resolve)
    if q == NOTHING:
        return NOTHING
    if q:
        parts.append(q)
    kinds = effective_kinds(node, options.kinds)
    if kinds:
        parts.append({"kind": {"$in": list(kinds)}})
    if not options.all_versions:
        parts.append({"current": True})
    return {} if not parts else parts[0] if len(parts) == 1 else {"$and": parts}


#: default order of results (after any sort keys): documents with a path first, by path, then id
DEFAULT_ORDER = [("nopath", 1), ("path0", 1), ("_id", 1)]
#: reserved keys that sort by a document field, like the embedded store's columns
_COLUMN_SORT = {"id": "_id", "path": "path0"}


def _sort_keys(sort: Sequence[SortKey], resolve: Resolver) -> list[tuple[SortKey, Tiers | None, str | None]]:
    """``(key, resolved paths, None)`` or ``(key, None, field)`` for every sort key that can sort anything."""
    out: list[tuple[SortKey, Tiers | None, str | None]] = []
    for sk in sort:
        field = _COLUMN_SORT.get(sk.key.reserved_field() or "")
        if field:
            out.append((sk, None, field))
        elif tiers := resolve(sk.key):
            out.append((sk, tiers, None))
    return out


def tiered_leaves(tiers: Tiers, source: str = "$leaves") -> dict:
    """An aggregation expression: the leaves of a document the key resolves to (exact, else fallback)."""
    def pick(paths: list[str]) -> dict:
        return {"$filter": {"input": source, "as": "l", "cond": {"$in": ["$$l.p", list(paths)]}}}
    if not tiers.fallback or not tiers.exact:
        return pick(tiers.exact or tiers.fallback)
    return {"$cond": [{"$gt": [{"$size": pick(tiers.exact)}, 0]}, pick(tiers.exact), pick(tiers.fallback)]}


def needs_sort_pipeline(sort: Sequence[SortKey], resolve: Resolver) -> bool:
    """True when the sort keys change the order (else a plain find in the default order)."""
    return bool(_sort_keys(sort, resolve))


def sort_pipeline(match: dict, sort: Sequence[SortKey], resolve: Resolver,
                  offset: int = 0, limit: int | None = None) -> list[dict]:
    """An aggregation yielding ``{_id}`` of the matching documents in key-sort order, paged.

    For each sort key: the smallest (ascending) or largest (descending) number among the
    document's leaves on the key's paths, documents without one after those with; then the
    same over the lower-cased strings; then the default order. ``id`` and ``path`` sort by the
    document id and first path. The caller fetches the page's documents by id, so the heavy
    stages only carry ids and the sort values.
    """
    keys = _sort_keys(sort, resolve)
    leaf_keys = [(sk, paths) for sk, paths, field in keys if field is None]
    stages: list[dict] = [{"$match": match}]
    project: dict[str, Any] = {"_id": 1, "nopath": 1, "path0": 1}
    for i, (_, tiers) in enumerate(leaf_keys):
        project[f"l{i}"] = tiered_leaves(tiers)
    stages.append({"$project": project})
    carried = ["nopath", "path0"]
    for i, (sk, _) in enumerate(leaf_keys):
        agg = "$max" if sk.descending else "$min"
        stages.append({"$unwind": {"path": f"$l{i}", "preserveNullAndEmptyArrays": True}})
        group: dict[str, Any] = {"_id": "$_id", f"n{i}": {agg: f"$l{i}.n"}, f"s{i}": {agg: f"$l{i}.s"}}
        for name in carried:
            group[name] = {"$first": f"${name}"}
        for j in range(i + 1, len(leaf_keys)):
            group[f"l{j}"] = {"$first": f"$l{j}"}
        stages.append({"$group": group})
        carried += [f"n{i}", f"s{i}"]
    order: dict[str, int] = {}
    flags: dict[str, Any] = {}
    i = 0
    for sk, _, field in keys:
        d = -1 if sk.descending else 1
        if field is not None:
            order.setdefault(field, d)
            continue
        for v in (f"n{i}", f"s{i}"):
            flags[f"{v}_none"] = {"$cond": [{"$gt": [f"${v}", None]}, 0, 1]}
            order[f"{v}_none"] = 1
            order[v] = d
        i += 1
    if flags:
        stages.append({"$addFields": flags})
    for name, d in DEFAULT_ORDER:
        order.setdefault(name, d)
    stages.append({"$sort": order})
    if offset:
        stages.append({"$skip": int(offset)})
    if limit is not None:
        stages.append({"$limit": int(limit)})
    stages.append({"$project": {"_id": 1}})
    return stages


def best_pipeline(match: dict, metric: Tiers, ranks: dict[str, int], group: Tiers | None,
                  group_paths: list[str], minimize: bool) -> list[dict]:
    """For ``--best``: ``{_id, v, g, path0, nopath}`` per matching document with a number for the metric.

    ``v`` is the document's best number (lowest with ``minimize``) among the metric's leaves of the lowest
    rank present (``ranks``: path -> :func:`ednaquery.metrics.summary_rank`: 0 for ``.best``, 1 for ``.last``,
    2 for a group's ``.mean``, 3 otherwise), picked by ``$unwind``,
    ``$sort`` and ``$group`` (``$first``); ``g`` holds the document's group leaves (``group_paths``) for the
    caller to label.
    """
    def ranked(paths: list[str], k: int, rest: Any) -> dict:
        return {"$cond": [{"$in": ["$m.p", paths]}, k, rest]} if paths else rest

    levels = sorted(set(ranks.values()))
    rank: Any = levels[-1] if levels else 0  # the highest rank needs no test
    for level in reversed(levels[:-1]):
        rank = ranked([p for p, k in ranks.items() if k == level], level, rank)
    project: dict[str, Any] = {"_id": 1, "path0": 1, "nopath": 1, "m": tiered_leaves(metric), "g": {"$literal": []}}
    if group and group_paths:
        project["g"] = {"$filter": {"input": tiered_leaves(group), "as": "l",
                                    "cond": {"$in": ["$$l.p", list(group_paths)]}}}
    return [
        {"$match": match},
        {"$project": project},
        {"$unwind": "$m"},
        {"$match": {"m.n": {"$exists": True}}},
        {"$addFields": {"k": rank}},
        {"$sort": {"_id": 1, "k": 1, "m.n": 1 if minimize else -1}},
        {"$group": {"_id": "$_id", "v": {"$first": "$m.n"}, "g": {"$first": "$g"},
                    "path0": {"$first": "$path0"}, "nopath": {"$first": "$nopath"}}},
    ]
