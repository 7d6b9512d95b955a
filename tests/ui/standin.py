"""A stand-in for ednaquery.connect()'s Index until the api branch is merged (same method names)."""
from __future__ import annotations

import json
import os
from typing import Any

from ednaquery.documents import unescape_keys
from ednaquery.output import matched_values, query_columns
from ednaquery.query import compile_query, parse_key
from ednaquery.store.base import FindOptions, SortKey
from ednaquery.store.sqlite import SQLiteStore


def _record(doc: dict, columns: list | None = None) -> dict[str, Any]:
    rec = {k: doc.get(k) for k in ("kind", "paths", "status", "started_at", "ended_at", "tags", "note")}
    rec["id"] = doc["_id"]
    rec["config"] = unescape_keys(doc.get("config") or {})
    rec["metrics"] = unescape_keys(doc.get("metrics") or {})
    rec["values"] = matched_values(doc, columns) if columns else {}
    return rec


class StandInIndex:
    def __init__(self, path: str) -> None:
        self.store = SQLiteStore(path)

    def find(self, q: str, sort: Any = None, limit: int | None = None, kind: str | None = None) -> list[dict]:
        node = compile_query(q)
        sorts = [SortKey(parse_key(s.lstrip("-+")), s.startswith("-")) for s in (sort or [])]
        docs = self.store.find(node, FindOptions(kinds=(kind,) if kind else None, sort=sorts, limit=limit))
        cols = query_columns(node, [s.key for s in sorts])
        return [_record(d, cols) for d in docs]

    def count(self, q: str) -> int:
        return self.store.count(compile_query(q), FindOptions())

    def get(self, doc_id: str) -> dict:
        return _record(self.store.get(doc_id))

    def keys(self, pattern: str | None = None) -> list:
        return self.store.key_stats(pattern)

    def series(self, runs: list[str], metrics: list[str] | None = None) -> list[dict]:
        out = []
        for run in runs:
            doc = self.store.get(run)
            path = os.path.join(os.path.dirname(doc["paths"][0]), "metrics.jsonl")
            if not os.path.exists(path):
                continue
            for i, line in enumerate(open(path)):
                row = json.loads(line)
                for k, v in row.items():
                    if k in ("epoch", "step", "scope") or not isinstance(v, (int, float)):
                        continue
                    if metrics and k not in metrics:
                        continue
                    out.append({"run": doc["_id"], "metric": k, "epoch": row.get("epoch"),
                                "step": row.get("step", i), "value": float(v)})
        return out
