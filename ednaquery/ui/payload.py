"""Records of the public API -> plain JSON for the pages: one shape, passwords masked.

Every string that looks like a URI goes through :func:`ednaquery.masking.redact`, so a
``mongodb://user:pass@...`` in a config or a run's info never reaches a page.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ednaquery.api import flat_config
from ednaquery.documents import same_value
from ednaquery.masking import redact

__all__ = ["cleaned", "config_diff", "record_json", "series_json"]

#: record attributes copied to the page (missing ones are left out)
FIELDS = ("id", "kind", "paths", "status", "config", "metrics", "values", "tags", "note",
          "started_at", "ended_at", "indexed_at", "mtime", "config_id", "info", "warnings", "error")


def cleaned(value: Any, secrets: Sequence[str] = ()) -> Any:
    """``value`` as JSON-safe data: non-finite floats as strings, URIs' passwords masked."""
    if isinstance(value, str):
        if "://" in value or (secrets and any(s in value for s in secrets)):
            return redact(value, secrets)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(cleaned(k, secrets)): cleaned(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [cleaned(v, secrets) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return cleaned(str(value), secrets)


def _get(record: Any, name: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)


def record_json(record: Any, *, with_config: bool = True) -> dict[str, Any]:
    """One record (an API ``Record`` or a plain dict with the same fields) as a dict for the page."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        if name == "config" and not with_config:
            continue
        value = _get(record, name)
        if value is not None:
            out[name] = value
    out.setdefault("paths", [])
    return out


def _flat(record: Any) -> dict[str, Any]:
    """``{dotted.key: value}`` of a record's config by the API's rule (:func:`ednaquery.api.flat_config`:
    the key names of ``to_pandas()`` columns, lists as one value), then ``metrics.NAME.last/best`` for runs."""
    flat = flat_config(_get(record, "config") or {}, escaped=False)
    for name, entry in (_get(record, "metrics") or {}).items():
        if isinstance(entry, Mapping):
            for k, v in entry.items():
                flat[f"metrics.{name}.{k}"] = v
    return flat


_ABSENT = object()


def config_diff(records: Sequence[Any]) -> list[dict[str, Any]]:
    """The keys whose values are not all the same across ``records``: ``[{key, values: [...]}]``.

    Keys are named as ``to_pandas()`` names its columns (a list is one value). Values compare by the number
    rule (:func:`ednaquery.documents.same_value`: ``"1e-3"`` == 0.001, in lists item by item).
    A key a record lacks shows as ``{"missing": true}`` in its place. Keys keep the first
    record's order, then the keys only later records have.
    """
    flats = [_flat(r) for r in records]
    order: dict[str, None] = {}
    for flat in flats:
        order.update(dict.fromkeys(flat))
    rows = []
    for key in order:
        vals = [f.get(key, _ABSENT) for f in flats]
        first = vals[0]
        if all(v is not _ABSENT for v in vals) and all(same_value(first, v) for v in vals[1:]):
            continue
        rows.append({"key": key, "values": [{"missing": True} if v is _ABSENT else v for v in vals]})
    return rows


def series_json(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, list]]]:
    """Long rows (run, metric, epoch, step, value) -> ``{run: {metric: {epoch: [], step: [], value: []}}}``."""
    out: dict[str, dict[str, dict[str, list]]] = {}
    for row in rows:
        value = row.get("value")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        per = out.setdefault(str(row["run"]), {}).setdefault(str(row["metric"]),
                                                            {"epoch": [], "step": [], "value": []})
        per["epoch"].append(_num(row.get("epoch")))
        per["step"].append(_num(row.get("step")))
        per["value"].append(value)
    return out


def _num(value: Any) -> Any:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return int(x) if x.is_integer() else x
