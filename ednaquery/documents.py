"""Parsed config -> document: ids, key escaping, and the flattened, typed leaves queries match.

Everything here is a pure function of its inputs (bar ``indexed_at`` and run ids), so the
indexer, the trainer and the CLI produce the same document for the same content. (Leaves and
section views may be shared objects from the bounded caches of :mod:`ednaquery.view_cache`:
the values a fresh call makes, made once.)

A leaf is one scalar of the config: its path (key segments from the root, list indices
dropped), its type, and precomputed views that make every query term one index lookup:
``n`` the number view (also for YAML-1.1 numeric strings such as ``"1e-3"``: :func:`parse_number`,
the one number rule, which config ids follow too), ``s`` the
lower-cased string, ``w`` the value's tokens (`` vit base patch16 384 ``) and ``b`` booleans.

Size: no document may approach MongoDB's 16 MiB limit. A config (or run info) whose JSON is
over ``MAX_CONFIG_BYTES`` is kept and indexed without its largest values, each replaced by a
``"<dropped: 3.2 MB>"`` marker, and the document's warnings say which; leaves are cut after
``MAX_LEAVES_BYTES``. The id is always the hash of the whole config.

Lists: a list of over ``MAX_LIST_ITEMS`` numbers is indexed as a summary, its first ``LIST_SAMPLE``
values at its key and its length at ``KEY.len`` (also when the list itself is dropped for size);
other long lists by their first ``MAX_LIST_ITEMS`` items. docs/query.md ("Values") says what a user
can query.
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import re
import secrets
import time
from collections.abc import Collection, Sequence
from typing import Any

from ednaquery.keys import RESERVED_PREFIX, path_match_keys
from ednaquery.view_cache import BoundedDict, SharedLeaves, has_shared_section, views_by_section

PATH_SEP = "\x1f"  # joins a leaf's segments into one string (cannot occur in real keys)
MAX_LIST_ITEMS = 1000  # longer lists are indexed by their first items only (with a warning)...
LIST_SAMPLE = 5  # ...except all-number ones: a summary, their first LIST_SAMPLE values and ``KEY.len``
LIST_LEN = "len"  # the segment under a summarised list's key that holds its length (docs/query.md, Values)
MAX_LEAVES = 20000  # leaves per document
MAX_CONFIG_BYTES = 2_000_000  # JSON bytes of a config kept in a document (it may be there twice: as_written)
MAX_LEAVES_BYTES = 6_000_000  # estimated bytes of a document's leaves (long key paths repeat per leaf)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # integers past these are stored as text (BSON, SQLite hold 64 bits)
_NUMERIC = re.compile(r"^\s*[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[-+]?\d[\d_]*\s*$")
_NUMBER_FIRST = frozenset("0123456789+-. \t")  # what a string the number rule accepts can start with
#: Version of the id rule. 2: a string in number syntax (``"1e-3"``) hashes as its number (0.001).
#: Stores remember the version their ids were made with and re-index when it changes.
ID_VERSION = 2
_VALUE_SPLIT = re.compile(r"[_\-./:\s]+")
_ESCAPE = re.compile(r"%|\.|^\$|\x00")
_UNESCAPE = re.compile(r"%(25|2E|24|00)")

# ---------------------------------------------------------------- ids


def _canonical(value: Any) -> Any:
    """Normalise numbers (1.0 -> 1, ``"1e-3"`` -> 0.001, non-finite tagged) and containers for hashing."""
    t = type(value)
    if t is dict:  # the common cases first, without a call per plain scalar
        return {(k if type(k) is str else str(k)): (v if (tv := type(v)) is int or tv is bool
                                                    or (tv is str and v[:1] not in _NUMBER_FIRST)
                                                    else _canonical(v)) for k, v in value.items()}
    if t is list:
        return [v if (tv := type(v)) is int or tv is bool or (tv is str and v[:1] not in _NUMBER_FIRST)
                else _canonical(v) for v in value]
    if isinstance(value, str):
        return _canonical_str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return RESERVED_PREFIX + "float:" + repr(value)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_number(text: str) -> int | float | None:
    """The number a string in number syntax stands for (``"1e-3"`` -> 0.001, ``"32"`` -> 32), else None.

    The one number rule: the loader's view of YAML-1.1 numeric strings, config ids, ``diff``,
    trainer overrides and sweep axes all use it, so equal numbers are equal everywhere.
    """
    if not _NUMERIC.match(text):
        return None
    plain = text.replace("_", "").strip()
    try:
        if _INTEGER.match(plain):
            return int(plain)
        x = float(plain)
    except ValueError:
        return None
    return x if x - x == 0 else None  # "1e400": no float holds it, so it stays a string


def _canonical_str(value: str) -> Any:
    """A string as hashed: in number syntax, its canonical number; else itself."""
    if value[:1] not in _NUMBER_FIRST:
        return value
    n = parse_number(value)
    if n is None:
        return value
    return _canonical(n) if isinstance(n, float) else n


def _exact_number(value: Any) -> int | float | None:
    """A number, or a string's number by :func:`parse_number` (exact: ints stay ints); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    return parse_number(value) if isinstance(value, str) else None


def same_value(a: Any, b: Any) -> bool:
    """True when two values are the same by the number rule (``"1e-3"`` == 0.001 == 1e-3); lists and
    dicts compare item by item."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(v, b[k]) for k, v in a.items())
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    na, nb = _exact_number(a), _exact_number(b)
    if na is not None and nb is not None:
        return na == nb or (isinstance(na, float) and isinstance(nb, float) and math.isnan(na) and math.isnan(nb))
    return type(a) is type(b) and a == b


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, compact separators, normalised numbers."""
    return _CANONICAL_JSON.encode(_canonical(value))


def config_id(config: Any) -> str:
    """Content id of a config: sha256 of its canonical JSON (same content anywhere = same id)."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def error_id(path: str) -> str:
    """Id of the error record for a file path (one per path, replaced when the file changes)."""
    return "err-" + hashlib.sha256(path.encode("utf-8")).hexdigest()[:40]


def new_run_id(now: float | None = None) -> str:
    """Time-sortable unique run id: ``20261122-221530-3fa9`` (UTC time, random suffix)."""
    t = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) + "-" + secrets.token_hex(2)


# ---------------------------------------------------------------- key escaping


def escape_key(key: str) -> str:
    """Make a key safe as a MongoDB field name: ``.``, NUL and a leading ``$`` are %-escaped, reversibly."""
    return _ESCAPE.sub(lambda m: "%" + format(ord(m.group(0)), "02X"), key)


def unescape_key(key: str) -> str:
    """Inverse of :func:`escape_key`."""
    return _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), key)


def _stored(v: Any) -> Any:
    return wide_int_text(v) if type(v) is int else v


def _escape_key_fast(key: Any) -> str:
    key = key if type(key) is str else str(key)
    return escape_key(key) if "." in key or "%" in key or key[:1] == "$" or "\0" in key else key


def escape_keys(value: Any) -> Any:
    """Escape every mapping key in a nested value (see :func:`escape_key`)."""
    if isinstance(value, dict):
        return {_escape_key_fast(k): (escape_keys(v) if isinstance(v, (dict, list)) else _stored(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [escape_keys(v) if isinstance(v, (dict, list)) else _stored(v) for v in value]
    return _stored(value)


def unescape_keys(value: Any) -> Any:
    """Inverse of :func:`escape_keys`."""
    if isinstance(value, dict):
        return {unescape_key(k): unescape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape_keys(v) for v in value]
    return value


# ---------------------------------------------------------------- leaves


def number_view(value: Any) -> float | None:
    """The number a value stands for: numbers, and strings in Python float syntax (``"1e-3"``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            f = float(value)
        except OverflowError:  # an integer past any float
            return None
        return None if math.isnan(f) else f
    if isinstance(value, str):
        n = parse_number(value)
        if n is None:
            return None
        try:
            return float(n)
        except OverflowError:  # a 400-digit integer: no float holds it
            return None
    return None


def wide_int_text(value: int) -> int | str:
    """An integer as stored: itself within 64 bits, else its decimal text (no store holds more)."""
    return value if INT64_MIN <= value <= INT64_MAX else str(value)


def value_tokens(text: str) -> list[str]:
    """Tokens of a string value, split on ``_ - . / : space``, lower-cased."""
    return [t for t in _VALUE_SPLIT.split(text.lower()) if t]


def make_leaf(path: tuple[str, ...], value: Any) -> dict:
    """One leaf: ``p`` path string, ``t`` type and the value views that apply."""
    return _new_leaf(PATH_SEP.join(path), value)


def _new_leaf(p: str, value: Any) -> dict:
    t = type(value)
    if t is str:
        views = _STR_VIEWS.get(value)
        if views is None:
            views = _STR_VIEWS.put(value, (value.lower(), " " + " ".join(value_tokens(value)) + " ",
                                           number_view(value)))
        leaf: dict[str, Any] = {"p": p, "t": "str", "s": views[0], "w": views[1]}
        if views[2] is not None:
            leaf["n"] = views[2]
        return leaf
    if t is int:
        if INT64_MIN <= value <= INT64_MAX:
            return {"p": p, "t": "num", "n": float(value)}
        return _new_leaf(p, str(value))  # kept as text, with its number where a float holds it
    if t is float:
        return {"p": p, "t": "num"} if math.isnan(value) else {"p": p, "t": "num", "n": value}
    leaf = {"p": p}
    if value is None:
        leaf["t"] = "null"
    elif isinstance(value, bool):
        leaf["t"] = "bool"
        leaf["b"] = value
    elif isinstance(value, (int, float)):
        leaf["t"] = "num"
        n = number_view(value)
        if n is not None:
            leaf["n"] = n
    elif isinstance(value, (dict, list)):
        leaf["t"] = "empty"
    else:
        text = str(value)
        leaf["t"] = "str"
        leaf["s"] = text.lower()
        leaf["w"] = " " + " ".join(value_tokens(text)) + " "
        n = number_view(text)
        if n is not None:
            leaf["n"] = n
    return leaf


_STR_VIEWS: BoundedDict = BoundedDict(20000)  # string value -> (s, w, n), values repeat a lot
#: :func:`make_leaf` for a joined path string, for config values: one shared leaf per path and value
_leaf = SharedLeaves(_new_leaf).get


def is_number_list(value: Any) -> bool:
    """True for a list longer than ``MAX_LIST_ITEMS`` whose items are all numbers (not bools; strings in
    number syntax such as YAML 1.1's ``1e-3`` count): it is indexed as a summary (its first ``LIST_SAMPLE``
    values and its length at ``KEY.len``), not item by item.

    Decided by looking at the items only (stops at the first non-number), before any leaf is made.
    """
    return (len(value) > MAX_LIST_ITEMS
            and all(type(v) is int or type(v) is float
                    or (type(v) is str and v[:1] in _NUMBER_FIRST and parse_number(v) is not None) for v in value))


def _list_warning(where: str, value: Any, summary: bool) -> str:
    """The warning for a list longer than ``MAX_LIST_ITEMS`` (a summary when ``summary``)."""
    if summary:
        key = "value" if where == "<root>" else where
        return (f"list at {where} has {len(value):,} numbers; indexed as a summary: {key}.{LIST_LEN} "
                f"= {len(value)} and {key} = its first {LIST_SAMPLE} values only (query {key}.{LIST_LEN}; "
                f"{key}=V finds only a sampled value)")
    return f"list at {where} has {len(value)} items; only the first {MAX_LIST_ITEMS} are indexed"


def flatten_pairs(config: Any, prefix: tuple[str, ...] = (),
                  warnings: list[str] | None = None) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, value)`` for every scalar (and every empty ``{}``/``[]``); list indices are dropped."""
    out: list[tuple[tuple[str, ...], Any]] = []

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if len(out) >= MAX_LEAVES:
            return
        if isinstance(value, dict):
            if not value:
                out.append((path, value))
            for k, v in value.items():
                walk(v, path + (str(k),))
        elif isinstance(value, (list, tuple)):
            if not value:
                out.append((path, []))
            summary = is_number_list(value)
            if len(value) > MAX_LIST_ITEMS and warnings is not None:
                warnings.append(_list_warning('.'.join(path) or '<root>', value, summary))
            for v in value[:LIST_SAMPLE if summary else MAX_LIST_ITEMS]:
                walk(v, path)
            if summary and len(out) < MAX_LEAVES:
                out.append(((*(path or ('value',)), LIST_LEN), len(value)))
        else:
            out.append((path or ("value",), value))

    walk(config, prefix)
    if len(out) >= MAX_LEAVES and warnings is not None:
        warnings.append(f"more than {MAX_LEAVES} values; the rest are not indexed")
    return out


def flatten(config: Any, prefix: tuple[str, ...] = (), warnings: list[str] | None = None) -> list[dict]:
    """Flatten a nested config into leaves: ``[make_leaf(p, v) for p, v in flatten_pairs(...)]``, faster.

    Paths are carried as joined strings (``None`` for the root, which is not the same as a
    key ``""``), and plain scalars need no call of their own.
    """
    out: list[dict] = []
    sep = PATH_SEP

    def walk(value: Any, path: str | None) -> None:
        if len(out) >= MAX_LEAVES:
            return
        if isinstance(value, dict):
            if not value:
                out.append(_leaf(path or "", value))
            for k, v in value.items():
                k = k if type(k) is str else str(k)
                tv = type(v)
                if tv is str or tv is int or tv is float or tv is bool or v is None:  # a scalar: no call
                    if len(out) < MAX_LEAVES:
                        out.append(_leaf(k if path is None else path + sep + k, v))
                else:
                    walk(v, k if path is None else path + sep + k)
        elif isinstance(value, (list, tuple)):
            if not value:
                out.append(_leaf(path or "", []))
            summary = is_number_list(value)
            if len(value) > MAX_LIST_ITEMS and warnings is not None:
                warnings.append(_list_warning((path or '').replace(sep, '.') or '<root>', value, summary))
            for v in value[:LIST_SAMPLE if summary else MAX_LIST_ITEMS]:
                walk(v, path)
            if summary and len(out) < MAX_LEAVES:
                out.append(_leaf(("value" if path is None else path) + sep + LIST_LEN, len(value)))
        else:
            out.append(_leaf("value" if path is None else path, value))

    walk(config, sep.join(prefix) if prefix else None)
    if len(out) >= MAX_LEAVES and warnings is not None:
        warnings.append(f"more than {MAX_LEAVES} values; the rest are not indexed")
    return out


def document_pairs(doc: dict) -> list[tuple[tuple[str, ...], Any]]:
    """Every ``(path, original value)`` a document's leaves were made from, reserved fields included.

    Used to show the matched values of a result (original case), whatever the backend stored.
    """
    pairs = flatten_pairs(unescape_keys(doc.get("config", {})))
    if doc.get("kind") in ("run", "group"):
        pairs += _run_extra_pairs(doc)
    pairs += [(leaf_path(lf), v) for lf, v in _reserved_pairs(doc)]
    return pairs


def leaf_path(leaf: dict) -> tuple[str, ...]:
    """The segments of a leaf's path."""
    return tuple(leaf["p"].split(PATH_SEP))


def leaf_keys(leaf: dict) -> list[str]:
    """The single-segment key terms that match this leaf (every token-suffix of every segment)."""
    return path_match_keys(leaf_path(leaf))


def doc_tags(doc: dict) -> list[str]:
    """Every tag of a document, sorted: those it was indexed with and the user's (``annotations``,
    see :mod:`ednaquery.annotations`)."""
    user = (doc.get("annotations") or {}).get("tags") or []
    return sorted(set(doc.get("tags") or []) | set(user))


def doc_note(doc: dict) -> str | None:
    """The user's note on a document (``annotations``, see :mod:`ednaquery.annotations`), or None."""
    return (doc.get("annotations") or {}).get("note") or None


def _reserved_pairs(doc: dict, skip: Collection[str] = ()) -> list[tuple[dict, Any]]:
    vals: list[tuple[str, Any]] = [("id", doc["_id"]), ("kind", doc["kind"])]
    vals += [("path", p) for p in doc.get("paths") or []]
    vals += [(name, doc[name]) for name in ("status", "format", "indexed_at", "mtime") if doc.get(name) is not None]
    vals += [("tags", t) for t in doc_tags(doc)]
    note = doc_note(doc)
    if note:
        vals.append(("note", note))
    return [(make_leaf((RESERVED_PREFIX + name,), v), v) for name, v in vals if name not in skip]


def reserved_leaves(doc: dict, skip: Collection[str] = ()) -> list[dict]:
    """Leaves for the reserved fields docs/query.md makes always available (id, kind, path, ...).

    Stores call this whenever they (re)write a document, since paths change as files move;
    ``skip`` names fields a store answers otherwise (``{"id", "path"}``), not made at all.
    """
    return [leaf for leaf, _ in _reserved_pairs(doc, skip)]


# ---------------------------------------------------------------- size limits


def _json_size(value: Any) -> int:
    return len(canonical_json(value).encode("utf-8"))


def _human(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _scalar_size(value: Any) -> int:
    """About the JSON size of a scalar (escapes aside), much faster than encoding it."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 2
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, (int, float)):
        return len(repr(value))
    return _json_size(value)


def _measure(value: Any, path: tuple, atoms: list, boxes: list) -> int:
    """About the JSON size of ``value``; collects ``(size, path)`` of its droppable parts.

    Atoms are scalars and flat lists, boxes are dicts and lists of containers; parts of 64
    bytes or less are never worth dropping and are not collected.
    """
    if isinstance(value, dict) and value:
        size = 1
        for k, v in value.items():
            size += _scalar_size(str(k)) + 2 + _measure(v, (*path, k), atoms, boxes)
        into = boxes
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        size = 1
        for i, v in enumerate(value):
            size += 1 + _measure(v, (*path, i), atoms, boxes)
        into = boxes
    else:
        if isinstance(value, (list, tuple)):
            size = 1 + len(value) + sum(_scalar_size(v) for v in value) if value else 2
        else:
            size = _scalar_size(value)
        into = atoms
    if path and size > 64:
        into.append((size, path))
    return size


def _plain(value: Any) -> Any:
    """A copy whose containers are dicts and lists (so values can be replaced in place)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _show_path(path: tuple) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else ("." if out else "") + str(seg)
    return out


def fit_size(value: Any, what: str, warnings: list[str], *, size: int | None = None,
             limit: int = MAX_CONFIG_BYTES) -> Any:
    """``value`` if its JSON fits in ``limit`` bytes, else a copy without its largest values (and a warning).

    The largest scalars (and flat lists) are replaced by ``"<dropped: SIZE>"`` first; if many
    small values are the problem, the smallest subtree whose removal is enough goes (else the
    largest). ``size`` is the value's JSON size when the caller already has it.
    """
    total = _json_size(value) if size is None else size
    if total <= limit:
        return value
    out = _plain(value)
    dropped: list[tuple] = []

    def drop(at: tuple, n: int) -> int:
        marker = f"<dropped: {_human(n)}>"
        parent = out
        for seg in at[:-1]:
            parent = parent[seg]
        parent[at[-1]] = marker
        dropped.append(at)
        return n - len(marker) - 2

    atoms: list = []
    boxes: list = []
    _measure(out, (), atoms, boxes)
    excess = total - limit
    for n, at in sorted(atoms, key=lambda a: -a[0]):
        if excess <= 0:
            break
        excess -= drop(at, n)
    fresh = not dropped  # the boxes' sizes are still right
    while excess > 0:
        if not fresh:
            atoms, boxes = [], []
            excess = _measure(out, (), atoms, boxes) - limit
            if excess <= 0 or not boxes:
                break
        fresh = False
        if not boxes:
            break
        enough = [b for b in boxes if b[0] - 30 >= excess]
        n, at = min(enough, key=lambda b: b[0]) if enough else max(boxes, key=lambda b: b[0])
        excess -= drop(at, n)
    if excess > 0:  # one huge flat value at the root
        out, dropped = f"<dropped: {_human(total)}>", [()]
    shown = ", ".join(_show_path(p) or "<root>" for p in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
    warnings.append(f"{what} is {_human(total)} as JSON, over the {_human(limit)} limit: indexed without its "
                    f"{len(dropped)} largest value{'s' if len(dropped) > 1 else ''} ({shown}), "
                    "each replaced by \"<dropped: SIZE>\"")
    return out


def _with_summaries(kept: Any, config: Any) -> Any:
    """``kept`` (what :func:`fit_size` made of ``config``) with the number lists it dropped put back, to index:
    such a list is indexed as its small summary (:func:`is_number_list`), though the stored config has its marker.

    ``kept`` is changed in place (it is fit_size's own copy unless it is ``config``).
    """
    if kept is config:
        return kept
    if isinstance(kept, str) and isinstance(config, (list, tuple)):
        return config if kept.startswith("<dropped: ") and is_number_list(config) else kept
    if isinstance(kept, dict) and isinstance(config, dict):
        for k, v in kept.items():
            if isinstance(v, (dict, list, str)) and k in config:
                kept[k] = _with_summaries(v, config[k])
    elif isinstance(kept, list) and isinstance(config, (list, tuple)) and len(kept) == len(config):
        for i, v in enumerate(kept):
            if isinstance(v, (dict, list, str)):
                kept[i] = _with_summaries(v, config[i])
    return kept


def _leaves_size(leaf: dict) -> int:
    """A generous estimate of one leaf's BSON bytes (field names, types, array index key)."""
    return 64 + len(leaf["p"]) + 2 * len(leaf.get("s") or "")


_get_p, _get_s = operator.itemgetter("p"), operator.methodcaller("get", "s")


def cap_leaves(leaves: list[dict], warnings: list[str], limit: int = MAX_LEAVES_BYTES) -> list[dict]:
    """The leaves up to ``limit`` estimated bytes (with a warning when some are cut)."""
    # the same sum as _leaves_size's, in C-level passes (this runs for every document)
    strs = filter(None, map(_get_s, leaves))
    if 64 * len(leaves) + sum(map(len, map(_get_p, leaves))) + 2 * sum(map(len, strs)) <= limit:
        return leaves
    total = 0
    for i, leaf in enumerate(leaves):
        total += _leaves_size(leaf)
        if total > limit:
            warnings.append(f"the values take more than {_human(limit)} to index; only the first {i} are indexed")
            return leaves[:i]
    return leaves


# ---------------------------------------------------------------- documents


def _base(kind: str, _id: str, path: str | None, fmt: str, size: int | None, mtime: float | None,
          warnings: Sequence[str]) -> dict:
    return {
        "_id": _id,
        "kind": kind,
        "paths": [os.path.abspath(path)] if path else [],
        "past_paths": [],
        "format": fmt,
        "size": size,
        "mtime": mtime,
        "indexed_at": time.time(),
        "current": True,
        "deleted": False,
        "tags": [],
        "warnings": list(warnings),
    }


def make_config_document(config: Any, *, path: str | None, format: str, size: int | None = None,
                         mtime: float | None = None, as_written: Any = None,
                         warnings: Sequence[str] = (), depends_on: Sequence[str] = ()) -> dict:
    """A config document; ``config`` is the effective config, ``as_written`` the file's own text if different."""
    warns = list(warnings)
    views = _config_views(config)  # escaped copy, leaves and canonical text, in one pass
    text = canonical_json(config) if views is None else views[2]
    data = text.encode("utf-8")  # one encoding for the id (== config_id) and the size
    doc = _base("config", hashlib.sha256(data).hexdigest(), path, format, size, mtime, warns)
    kept = fit_size(config, "the config", doc["warnings"], size=len(data))
    if kept is not config:
        views = None
    doc["config"] = escape_keys(kept) if views is None else views[0]
    if as_written is not None and as_written is not config and as_written != config:
        doc["as_written"] = escape_keys(fit_size(as_written, "the config as written", doc["warnings"]))
    doc["depends_on"] = [os.path.abspath(d) for d in depends_on]
    if views is None:
        leaves = flatten(_with_summaries(kept, config), warnings=doc["warnings"])
    else:
        leaves = views[1]
        doc["warnings"] += views[3]
    doc["leaves"] = cap_leaves(leaves, doc["warnings"])
    return doc


class _NotPlain(Exception):
    """A value :func:`_config_views` leaves to the separate functions (tuples, non-str keys, other types)."""


def _plain_key(key: Any) -> str:
    """A top-level key escaped, for :func:`ednaquery.view_cache.views_by_section`; only string keys are plain."""
    if type(key) is not str:
        raise _NotPlain
    return escape_key(key)


def _canonical_float(value: float) -> Any:
    if not math.isfinite(value) or (value.is_integer() and abs(value) < 2**53):
        return _canonical(value)
    return value


def _config_views(config: Any) -> tuple[Any, list[dict], str, list[str]] | None:
    """``(escape_keys(config), flatten(config, warnings=w), canonical_json(config), w)`` in one pass
    (the canonical copy it encodes shares what needs no change with ``config``).

    Only for plain JSON data (dict, list, str, int, float, bool, None; string keys); else None.
    """
    leaves: list[dict] = []
    warns: list[str] = []
    sep = PATH_SEP

    def walk(value: Any, path: str | None, index: bool) -> tuple[Any, Any]:
        t = type(value)
        if t is dict:
            if index and len(leaves) >= MAX_LEAVES:
                index = False
            if not value and index:
                leaves.append(_leaf(path or "", value))
            out = {}
            canon = None
            for k, v in value.items():
                if type(k) is not str:
                    raise _NotPlain
                ek = escape_key(k) if "." in k or "%" in k or k[:1] == "$" or "\0" in k else k
                tv = type(v)
                if tv is str or tv is int or tv is bool or v is None or tv is float:
                    out[ek] = v if tv is not int or INT64_MIN <= v <= INT64_MAX else str(v)
                    # (v - v != 0: inf or nan)
                    if ((tv is float and (v.is_integer() or v - v != 0) and (c := _canonical_float(v)) is not v)
                            or (tv is str and v[:1] in _NUMBER_FIRST and (c := _canonical_str(v)) is not v)):
                        if canon is None:
                            canon = dict(value)
                        canon[k] = c
                    if index and len(leaves) < MAX_LEAVES:
                        leaves.append(_leaf(k if path is None else path + sep + k, v))
                else:
                    out[ek], c = walk(v, k if path is None else path + sep + k, index)
                    if c is not v:
                        if canon is None:
                            canon = dict(value)
                        canon[k] = c
            return out, (value if canon is None else canon)
        if t is list:
            if index and len(leaves) >= MAX_LEAVES:
                index = False
            upto, summary = MAX_LIST_ITEMS, False  # items indexed; a summary?
            if index:
                if not value:
                    leaves.append(_leaf(path or "", []))
                if len(value) > MAX_LIST_ITEMS:
                    summary = is_number_list(value)
                    upto = LIST_SAMPLE if summary else MAX_LIST_ITEMS
                    warns.append(_list_warning((path or '').replace(sep, '.') or '<root>', value, summary))
            items = []
            canon_l = None
            p = "value" if path is None else path
            for i, v in enumerate(value):
                tv = type(v)
                if tv is str or tv is int or tv is bool or v is None or tv is float:  # as walk(v) does, inline
                    e = c = v
                    if tv is int and not INT64_MIN <= v <= INT64_MAX:
                        e = str(v)
                    if tv is float and (v.is_integer() or v - v != 0):
                        c = _canonical_float(v)
                    elif tv is str and v[:1] in _NUMBER_FIRST:
                        c = _canonical_str(v)
                    if index and i < upto and len(leaves) < MAX_LEAVES:
                        leaves.append(_leaf(p, v))
                else:
                    e, c = walk(v, path, index and i < upto)
                items.append(e)
                if c is not v:
                    if canon_l is None:
                        canon_l = list(value)
                    canon_l[i] = c
            if summary and len(leaves) < MAX_LEAVES:
                leaves.append(_leaf(p + sep + LIST_LEN, len(value)))
            return items, (value if canon_l is None else canon_l)
        c = value
        if t is float:
            c = _canonical_float(value)
        elif t is str:
            c = _canonical_str(value)
        elif not (t is str or t is int or t is bool or value is None):
            raise _NotPlain
        if index and len(leaves) < MAX_LEAVES:
            leaves.append(_leaf("value" if path is None else path, value))
        return (value if t is not int or INT64_MIN <= value <= INT64_MAX else str(value)), c

    try:
        if type(config) is dict and has_shared_section(config):
            views = views_by_section(config, walk, leaves, warns, escape=_plain_key,
                                     encode=_CANONICAL_JSON.encode, max_leaves=MAX_LEAVES)
            if views is not None:
                return views
            leaves.clear()
            warns.clear()
        escaped, canonical = walk(config, None, True)
    except _NotPlain:
        return None
    if len(leaves) >= MAX_LEAVES:
        warns.append(f"more than {MAX_LEAVES} values; the rest are not indexed")
    return escaped, leaves, _CANONICAL_JSON.encode(canonical), warns


def make_run_document(run_id: str, *, config: dict, config_id: str | None, path: str, status: str,
                      metrics: dict[str, dict[str, float]], info: dict | None = None,
                      started_at: float | None = None, ended_at: float | None = None,
                      format: str = "run", warnings: Sequence[str] = (), mtime: float | None = None) -> dict:
    """A run document: the config's leaves, summary metrics (last/best, never series), status, timing."""
    return _outcome_document("run", run_id, config=config, config_id=config_id, path=path, status=status,
                             metrics=metrics, info=info, members=None, started_at=started_at, ended_at=ended_at,
                             format=format, warnings=warnings, mtime=mtime)


def make_group_document(group_id: str, *, config: dict, config_id: str | None, path: str, status: str,
                        metrics: dict[str, dict[str, float]], info: dict, members: list[dict],
                        started_at: float | None = None, ended_at: float | None = None,
                        format: str = "group", warnings: Sequence[str] = (), mtime: float | None = None) -> dict:
    """A group document (cross-validation folds, bagging members): the base config's leaves, each metric's
    ``mean``/``std`` over the member runs, ``group.*`` facts (method, size, run ids), and the members."""
    return _outcome_document("group", group_id, config=config, config_id=config_id, path=path, status=status,
                             metrics=metrics, info=info, members=members, started_at=started_at,
                             ended_at=ended_at, format=format, warnings=warnings, mtime=mtime)


def _outcome_document(kind: str, doc_id: str, *, config: dict, config_id: str | None, path: str, status: str,
                      metrics: dict[str, dict[str, float]], info: dict | None, members: list[dict] | None,
                      started_at: float | None, ended_at: float | None, format: str, warnings: Sequence[str],
                      mtime: float | None) -> dict:
    """The one builder of run and group documents (a group also lists its ``members``)."""
    doc = _base(kind, doc_id, path, format, None, mtime, warnings)
    kept = fit_size(config, f"the {kind}'s config", doc["warnings"])
    doc["config"] = escape_keys(kept)
    doc["config_id"] = config_id
    doc["status"] = status
    doc["metrics"] = escape_keys({str(k): dict(v) for k, v in metrics.items()})
    doc["info"] = escape_keys(fit_size(info or {}, f"the {kind} info", doc["warnings"]))
    if members is not None:
        doc["members"] = escape_keys(fit_size(members, "the group members", doc["warnings"]))
    doc["started_at"] = started_at
    doc["ended_at"] = ended_at
    doc["leaves"] = (cap_leaves(flatten(_with_summaries(kept, config), warnings=doc["warnings"]), doc["warnings"])
                     + [make_leaf(p, v) for p, v in _run_extra_pairs(doc)])
    return doc


def _run_extra_pairs(doc: dict) -> list[tuple[tuple[str, ...], Any]]:
    """Leaves a run (or group) has beside its config: metrics (last/best; a group's mean/std), timing,
    its info (under ``run.``, a group's under ``group.``), config id."""
    started, ended = doc.get("started_at"), doc.get("ended_at")
    timing = {"started_at": started, "ended_at": ended,
              "duration_s": (ended - started) if started is not None and ended is not None else None}
    pairs = flatten_pairs(unescape_keys(doc.get("metrics") or {}), prefix=("metrics",))
    pairs += flatten_pairs({k: v for k, v in timing.items() if v is not None}, prefix=("timing",))
    if doc.get("info"):
        pairs += flatten_pairs(unescape_keys(doc["info"]), prefix=("group" if doc.get("kind") == "group" else "run",))
    if doc.get("config_id"):
        pairs.append((("config_id",), doc["config_id"]))
    return pairs


def make_error_document(path: str, message: str, *, format: str, size: int | None = None,
                        mtime: float | None = None) -> dict:
    """An error record for a file that could not be read or parsed (kept out of ``find`` by default)."""
    doc = _base("error", error_id(os.path.abspath(path)), path, format, size, mtime, [])
    doc["error"] = message
    doc["config"] = {}
    doc["leaves"] = []
    return doc


def original_config(doc: dict, as_written: bool = False) -> Any:
    """The config as loaded (keys unescaped); ``as_written`` gives the file's own text when it differs."""
    if as_written and "as_written" in doc:
        return unescape_keys(doc["as_written"])
    return unescape_keys(doc.get("config", {}))
