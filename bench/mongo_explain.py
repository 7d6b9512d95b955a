"""Show how MongoDB answers an ednaquery query: the compiled filter and the server's winning plan.

    .venv/bin/python bench/mongo_explain.py "$EDNAQUERY_STORE" 'lr<1e-3' 'model=vit'
    .venv/bin/python bench/mongo_explain.py URI --kind run 'val_acc>0.9'

The query is compiled exactly as ``ednaquery find`` compiles it (keys resolved against the
store's key catalog, the kind filter and ``current`` added), then sent as
``explain {find: "docs", filter: ...}`` with ``executionStats``. It prints the filter (as
JSON you can paste into mongosh: ``\\u0000``/``\\u001f`` are the reserved-key prefix and the path
separator), the winning plan as a tree of stages, the keys/documents examined, and a verdict:
which indexes answered it, or COLLSCAN. Exit status 1 on a COLLSCAN.

The nx-27017 wire-protocol server (the tests' stand-in) answers explain with its SQLite plan,
not MongoDB's planner: the script says so and gives no verdict.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if not __package__:  # run as a script from a checkout: find the repo's packages without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ednaquery.errors import EdnaError
from ednaquery.query.parser import parse
from ednaquery.store.base import FindOptions
from ednaquery.store.mongo import MongoStore
from ednaquery.store.mongo_compile import NOTHING, find_filter


def stages(plan: Any) -> list[dict]:
    """Every dict with a ``stage`` in a plan tree (classic ``inputStage(s)`` and SBE ``queryPlan`` alike)."""
    found: list[dict] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            found.append(plan)
        for v in plan.values():
            found += stages(v)
    elif isinstance(plan, list):
        for v in plan:
            found += stages(v)
    return found


def _tree(plan: Any, depth: int = 0) -> list[str]:
    if not isinstance(plan, dict):
        return []
    if "queryPlan" in plan:  # SBE (MongoDB 7+): the classic-shaped tree is under queryPlan
        return _tree(plan["queryPlan"], depth)
    line = "  " * depth + str(plan.get("stage", "?"))
    if plan.get("indexName"):
        bounds = ", ".join(f"{k}: {v}" for k, v in (plan.get("indexBounds") or {}).items())
        line += f" {plan['indexName']}" + (f"  {{{bounds}}}" if bounds else "")
    out = [line]
    for child in [plan.get("inputStage"), *(plan.get("inputStages") or [])]:
        out += _tree(child, depth + 1)
    return out


def explain(store: MongoStore, query: str, *, kinds: list[str] | None = None, all_versions: bool = False,
            verbosity: str = "executionStats") -> dict:
    """The compiled filter and the server's explain of ``find`` on ``docs`` with it."""
    store._ready()
    flt = find_filter(parse(query), FindOptions(kinds=kinds, all_versions=all_versions), store._resolver())
    out: dict[str, Any] = {"filter": flt, "nothing": flt == NOTHING}
    with store._errors("explain"):
        res = store.db.command("explain", {"find": store.docs.name, "filter": flt}, verbosity=verbosity)
    winning = (res.get("queryPlanner") or {}).get("winningPlan")
    found = stages(winning)
    out["winning_plan"] = winning
    out["mongodb_plan"] = bool(found)  # nx-27017 returns a list of SQLite details instead
    out["indexes"] = sorted({s.get("indexName") or "_id_" for s in found
                             if s.get("indexName") or "IDHACK" in str(s.get("stage"))})
    out["collscan"] = any(s.get("stage") == "COLLSCAN" for s in found)
    out["stats"] = {k: (res.get("executionStats") or {}).get(k)
                    for k in ("nReturned", "totalKeysExamined", "totalDocsExamined", "executionTimeMillis")}
    return out


def report(result: dict) -> tuple[str, int]:
    """Printable text and exit status (1 on a COLLSCAN)."""
    lines = ["filter:", json.dumps(result["filter"], indent=2, ensure_ascii=True)]
    if result["nothing"]:
        lines.append("(a key nobody has: the filter matches nothing and the server is not even asked by find)")
    if not result["mongodb_plan"]:
        lines += ["winning plan (not MongoDB's query planner; this server's own plan, no verdict):",
                  json.dumps(result["winning_plan"], indent=2, default=str)]
        return "\n".join(lines), 0
    lines += ["winning plan:", *_tree(result["winning_plan"], 1)]
    lines.append("examined: " + ", ".join(f"{k}={v}" for k, v in result["stats"].items() if v is not None))
    if result["collscan"]:
        lines.append("verdict: COLLSCAN, no index answers this query")
        return "\n".join(lines), 1
    lines.append("verdict: answered by index " + ", ".join(result["indexes"]))
    return "\n".join(lines), 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("uri", help="mongodb://... (the EDNAQUERY_STORE of the team deployment)")
    ap.add_argument("query", nargs="+", help="an ednaquery query, as for `ednaquery find`")
    ap.add_argument("--kind", action="append", help="restrict to a kind (config, run, error), like find --kind")
    ap.add_argument("--all-versions", action="store_true", help="include superseded and deleted documents")
    ap.add_argument("--verbosity", default="executionStats",
                    choices=["queryPlanner", "executionStats", "allPlansExecution"])
    args = ap.parse_args(argv)
    store = MongoStore(args.uri, timeout_ms=5000)
    try:
        text, code = report(explain(store, " ".join(args.query), kinds=args.kind, all_versions=args.all_versions,
                                    verbosity=args.verbosity))
    except EdnaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
