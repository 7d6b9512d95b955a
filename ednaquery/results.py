"""Post-processing of found documents: best run per group, config diffs, problem lists.

Library functions behind ``ednaquery find --best``, ``ednaquery diff`` and ``ednaquery
errors``, so a Python user gets the same answers as the CLI.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ednaquery.documents import number_view, original_config, same_value
from ednaquery.errors import UsageError
from ednaquery.keys import KeySpec, group_leaf, key_matches, matched_tail
from ednaquery.metrics import SUMMARY_PICKS, direction
from ednaquery.output import Column, matched_pairs, structure, value_text
from ednaquery.query.ast import MatchAll, Node
from ednaquery.query.describe import key_text
from ednaquery.store.base import FindOptions, Store

MISSING = object()  # a key one side of a diff does not have


# ---------------------------------------------------------------- --best METRIC --by KEY


def lower_is_better(metric: KeySpec | str) -> bool:
    """True for loss-, error- and time-like metrics (``val_loss``, ``top1_err``, ``epoch_time_s``...):
    :func:`ednaquery.metrics.direction` says ``"min"``."""
    name = metric if isinstance(metric, str) else metric.segments[-1]
    return direction(name) == "min"


def metric_value(doc: dict, metric: Column, minimize: bool) -> float | None:
    """The number a document scores on ``metric``: among the leaves the key matches, a run's
    ``best`` summary if it has one, else ``last``, else a group's ``mean``, else any numeric leaf
    (:data:`ednaquery.metrics.SUMMARY_PICKS`); the best of them."""
    nums = [(p, number_view(v)) for p, v in matched_pairs(doc, metric)]
    nums = [(p, n) for p, n in nums if n is not None and not math.isnan(n)]
    if not nums:
        return None
    for pick in SUMMARY_PICKS:
        chosen = [n for p, n in nums if p and p[-1].lower() == pick]
        if chosen:
            return min(chosen) if minimize else max(chosen)
    values = [n for _, n in nums]
    return min(values) if minimize else max(values)


def group_label(doc: dict, by: Column) -> str:
    """The value a document groups under for ``--by KEY`` (``(none)`` when it lacks the key): the key's own
    value, or its section's ``name`` leaf (:func:`ednaquery.keys.group_leaf`)."""
    hits = matched_pairs(doc, by if by.group else Column(by.key, by.label, group=True))
    return value_text(structure(hits)) if hits else "(none)"


def check_group_key(by: KeySpec, paths: Sequence[tuple[str, ...]]) -> None:
    """``--by KEY`` where KEY only names sections without a ``name`` leaf: a one-line :class:`UsageError`
    saying which leaves to group by instead."""
    hits = [p for p in paths if key_matches(by, p)]
    if not hits or any(group_leaf(by, p) for p in hits):
        return
    leaves = sorted({".".join(p[len(p) - len(matched_tail(by, p) or ()) - 1:]) for p in hits})
    shown = ", ".join(leaves[:4]) + (", ..." if len(leaves) > 4 else "")
    raise UsageError(f"--by {key_text(by)} names a section with no 'name' leaf: group by one of its leaves "
                     f"({shown}), e.g. --by {leaves[0]}")


def best_in_store(store: Store, node: Node, options: FindOptions, metric: Column, by: Column | None = None,
                  minimize: bool | None = None) -> list[dict]:
    """:func:`best_per_group` over the documents matching ``node``, scored and grouped by the store's
    indexes where it can (``Store.best_rows``): only the winners' documents are read."""
    if minimize is None:
        minimize = lower_is_better(metric.key)
    rows = store.best_rows(node, options, metric.key, by.key if by is not None else None, minimize)
    if rows is None:
        return best_per_group(store.find(node, options), metric, by, minimize)
    best: dict[str, tuple[tuple[float, str], str]] = {}
    for doc_id, score, label, order in rows:
        if score is None or math.isnan(score):
            continue
        rank = (score if minimize else -score, order)  # ties: the first in path order, as in best_per_group
        held = best.get(label)
        if held is None or rank < held[0]:
            best[label] = (rank, doc_id)
    ranked = sorted(best.values())
    return [store.get(doc_id) for _, doc_id in ranked]  # one id lookup per group


def best_per_group(docs: Iterable[dict], metric: Column, by: Column | None = None,
                   minimize: bool | None = None) -> list[dict]:
    """The best document of each group (all documents one group when ``by`` is None), best first.

    ``minimize`` None: lower is better for loss-like metric names (:func:`lower_is_better`).
    Documents without a numeric value for the metric are left out.
    """
    if minimize is None:
        minimize = lower_is_better(metric.key)
    best: dict[str, tuple[float, dict]] = {}
    for doc in docs:
        score = metric_value(doc, metric, minimize)
        if score is None:
            continue
        label = group_label(doc, by).lower() if by is not None else ""
        held = best.get(label)
        if held is None or (score < held[0] if minimize else score > held[0]):
            best[label] = (score, doc)
    ranked = sorted(best.values(), key=lambda sd: sd[0], reverse=not minimize)
    return [doc for _, doc in ranked]


# ---------------------------------------------------------------- diff


def flatten_indexed(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted.path[i]: scalar}`` for a nested config (list indices kept, empty containers kept)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for k, v in value.items():
            out.update(flatten_indexed(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        if not value and prefix:
            out[prefix] = []
        for i, v in enumerate(value):
            out.update(flatten_indexed(v, f"{prefix}[{i}]"))
    else:
        out[prefix or "(value)"] = value
    return out


def comparable(doc: dict, *, as_written: bool = False) -> dict[str, Any]:
    """What ``diff`` compares: the config's flattened keys, plus status and metrics for runs."""
    flat = flatten_indexed(original_config(doc, as_written=as_written))
    if doc.get("kind") == "run":
        flat["(status)"] = doc.get("status")
        flat.update(flatten_indexed(doc.get("metrics") or {}, "(metrics)"))
    if doc.get("kind") == "error":
        flat["(error)"] = doc.get("error")
    return flat


def _default_filled(run: dict, other: dict) -> set[str]:
    """Keys of ``run`` that hold the trainer's default while ``other`` (a config) does not name them.

    A config's effective value for a key it leaves out is the default, so such keys are equal,
    not absent. Runs say which of their keys hold defaults (run.json ``default_keys``, from the trainer).
    """
    if run.get("kind") != "run" or other.get("kind") != "config":
        return set()
    keys = (run.get("info") or {}).get("default_keys")
    return {str(k) for k in keys} if isinstance(keys, list) else set()


def _base_key(key: str) -> str:
    return key.split("[", 1)[0]


def diff_documents(a: dict, b: dict, *, as_written: bool = False) -> list[tuple[str, Any, Any]]:
    """``(key, value in a, value in b)`` for every key whose value differs (:data:`MISSING` if absent).

    Keys come in ``a``'s order, then keys only ``b`` has. Numbers compare by value, by the one
    number rule (:func:`ednaquery.documents.same_value`: ``"1e-3"`` and ``0.001`` are equal, as
    their config ids are). Between a run and a config, the run's keys that hold the trainer's
    default and that the config leaves out are the same effective value, not absent.
    """
    fa, fb = comparable(a, as_written=as_written), comparable(b, as_written=as_written)
    filled_a, filled_b = _default_filled(a, b), _default_filled(b, a)
    out = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(key, MISSING), fb.get(key, MISSING)
        if vb is MISSING and va is not MISSING and _base_key(key) in filled_a:
            continue
        if va is MISSING and vb is not MISSING and _base_key(key) in filled_b:
            continue
        if va is MISSING or vb is MISSING or not same_value(va, vb):
            out.append((key, va, vb))
    return out


# ---------------------------------------------------------------- errors and warnings


def problems(store: Store, *, warnings: bool = True) -> list[dict[str, Any]]:
    """Error records (files that could not be read) and, with ``warnings``, documents with warnings.

    Each item: ``{"kind": "error"|"warning", "id", "path", "message"}``, errors first.
    Finding documents with warnings reads every current document (no index covers warnings).
    """
    out: list[dict[str, Any]] = []
    for doc in store.find(MatchAll(), FindOptions(kinds=("error",))):
        for path in doc.get("paths") or [None]:
            out.append({"kind": "error", "id": doc["_id"], "path": path, "message": doc.get("error") or ""})
    if warnings:
        for doc in store.find(MatchAll(), FindOptions(kinds=("config", "run"))):
            for message in doc.get("warnings") or ():
                paths: Sequence[str | None] = doc.get("paths") or [None]
                out.append({"kind": "warning", "id": doc["_id"], "path": paths[0], "message": message})
    return out
