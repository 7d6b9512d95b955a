"""Parsed config -> document: ids, key escaping, and the flattened, typed leaves queries match.

Everything here is a pure function of its inputs (bar ``indexed_at`` and run ids), so the
indexer, the trainer and the CLI produce the same document for the same content.

A leaf is one scalar of the config: its path (key segments from the root, list indices
dropped), its type, and precomputed views that make every query term one index lookup:
``n`` the number view (also for YAML-1.1 numeric strings such as ``"1e-3"``), ``s`` the
lower-cased string, ``w`` the value's tokens (`` vit base patch16 384 ``) and ``b`` booleans.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ednaquery.keys import RESERVED_PREFIX, path_match_keys

PATH_SEP = "\x1f"  # joins a leaf's segments into one string (cannot occur in real keys)
MAX_LIST_ITEMS = 1000  # longer lists are indexed by their first items only (with a warning)
MAX_LEAVES = 20000  # leaves per document

_NUMERIC = re.compile(r"^\s*[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_VALUE_SPLIT = re.compile(r"[_\-./:\s]+")
_ESCAPE = re.compile(r"%|\.|^\$")
_UNESCAPE = re.compile(r"%(25|2E|24)")

# ---------------------------------------------------------------- ids


def _canonical(value: Any) -> Any:
    """Normalise numbers (1.0 -> 1, non-finite tagged) and containers for hashing."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
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


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, compact separators, normalised numbers."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
    """Make a key safe as a MongoDB field name: ``.`` and a leading ``$`` are %-escaped, reversibly."""
    return _ESCAPE.sub(lambda m: "%" + format(ord(m.group(0)), "02X"), key)


def unescape_key(key: str) -> str:
    """Inverse of :func:`escape_key`."""
    return _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), key)


def escape_keys(value: Any) -> Any:
    """Escape every mapping key in a nested value (see :func:`escape_key`)."""
    if isinstance(value, dict):
        return {escape_key(str(k)): escape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_keys(v) for v in value]
    return value


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
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, str) and _NUMERIC.match(value):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return None
    return None


def value_tokens(text: str) -> list[str]:
    """Tokens of a string value, split on ``_ - . / : space``, lower-cased."""
    return [t for t in _VALUE_SPLIT.split(text.lower()) if t]


def make_leaf(path: tuple[str, ...], value: Any) -> dict:
    """One leaf: ``p`` path string, ``t`` type and the value views that apply."""
    leaf: dict[str, Any] = {"p": PATH_SEP.join(path)}
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
            if len(value) > MAX_LIST_ITEMS and warnings is not None:
                warnings.append(f"list at {'.'.join(path) or '<root>'} has {len(value)} items; "
                                f"only the first {MAX_LIST_ITEMS} are indexed")
            for v in list(value)[:MAX_LIST_ITEMS]:
                walk(v, path)
        else:
            out.append((path or ("value",), value))

    walk(config, prefix)
    if len(out) >= MAX_LEAVES and warnings is not None:
        warnings.append(f"more than {MAX_LEAVES} values; the rest are not indexed")
    return out


def flatten(config: Any, prefix: tuple[str, ...] = (), warnings: list[str] | None = None) -> list[dict]:
    """Flatten a nested config into leaves (see :func:`make_leaf`)."""
    return [make_leaf(p, v) for p, v in flatten_pairs(config, prefix, warnings)]


def document_pairs(doc: dict) -> list[tuple[tuple[str, ...], Any]]:
    """Every ``(path, original value)`` a document's leaves were made from, reserved fields included.

    Used to show the matched values of a result (original case), whatever the backend stored.
    """
    pairs = flatten_pairs(unescape_keys(doc.get("config", {})))
    if doc.get("kind") == "run":
        pairs += _run_extra_pairs(doc)
    pairs += [(leaf_path(lf), v) for lf, v in _reserved_pairs(doc)]
    return pairs


def leaf_path(leaf: dict) -> tuple[str, ...]:
    """The segments of a leaf's path."""
    return tuple(leaf["p"].split(PATH_SEP))


def leaf_value(leaf: dict) -> Any:
    """A leaf's value as shown to users (strings lower-cased; use the config for the original)."""
    t = leaf["t"]
    if t == "num":
        n = leaf.get("n")
        return int(n) if n is not None and n.is_integer() and abs(n) < 2**53 else n
    if t == "str":
        return leaf["s"]
    if t == "bool":
        return leaf["b"]
    return None


def leaf_keys(leaf: dict) -> list[str]:
    """The single-segment key terms that match this leaf (every token-suffix of every segment)."""
    return path_match_keys(leaf_path(leaf))


def _reserved_pairs(doc: dict) -> list[tuple[dict, Any]]:
    vals: list[tuple[str, Any]] = [("id", doc["_id"]), ("kind", doc["kind"])]
    vals += [("path", p) for p in doc.get("paths") or []]
    vals += [(name, doc[name]) for name in ("status", "format", "indexed_at", "mtime") if doc.get(name) is not None]
    vals += [("tags", t) for t in doc.get("tags") or []]
    return [(make_leaf((RESERVED_PREFIX + name,), v), v) for name, v in vals]


def reserved_leaves(doc: dict) -> list[dict]:
    """Leaves for the reserved fields QUERY.md makes always available (id, kind, path, ...).

    Stores call this whenever they (re)write a document, since paths change as files move.
    """
    return [leaf for leaf, _ in _reserved_pairs(doc)]


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
    doc = _base("config", config_id(config), path, format, size, mtime, warns)
    doc["config"] = escape_keys(config)
    if as_written is not None and as_written != config:
        doc["as_written"] = escape_keys(as_written)
    doc["depends_on"] = [os.path.abspath(d) for d in depends_on]
    doc["leaves"] = flatten(config, warnings=doc["warnings"])
    return doc


def make_run_document(run_id: str, *, config: dict, config_id: str | None, path: str, status: str,
                      metrics: dict[str, dict[str, float]], info: dict | None = None,
                      started_at: float | None = None, ended_at: float | None = None,
                      format: str = "run", warnings: Sequence[str] = (), mtime: float | None = None) -> dict:
    """A run document: the config's leaves, summary metrics (last/best, never series), status, timing."""
    doc = _base("run", run_id, path, format, None, mtime, warnings)
    doc["config"] = escape_keys(config)
    doc["config_id"] = config_id
    doc["status"] = status
    doc["metrics"] = escape_keys({str(k): dict(v) for k, v in metrics.items()})
    doc["info"] = escape_keys(info or {})
    doc["started_at"] = started_at
    doc["ended_at"] = ended_at
    doc["leaves"] = flatten(config, warnings=doc["warnings"]) + [make_leaf(p, v) for p, v in _run_extra_pairs(doc)]
    return doc


def _run_extra_pairs(doc: dict) -> list[tuple[tuple[str, ...], Any]]:
    """Leaves a run has beside its config: metrics (last/best), timing, run info, config id."""
    started, ended = doc.get("started_at"), doc.get("ended_at")
    timing = {"started_at": started, "ended_at": ended,
              "duration_s": (ended - started) if started is not None and ended is not None else None}
    pairs = flatten_pairs(unescape_keys(doc.get("metrics") or {}), prefix=("metrics",))
    pairs += flatten_pairs({k: v for k, v in timing.items() if v is not None}, prefix=("timing",))
    if doc.get("info"):
        pairs += flatten_pairs(unescape_keys(doc["info"]), prefix=("run",))
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


def all_leaves(doc: dict) -> Iterable[dict]:
    """Config leaves plus reserved-field leaves."""
    yield from doc.get("leaves", [])
    yield from reserved_leaves(doc)
