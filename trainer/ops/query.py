"""Run documents an ednaquery query finds: the one search ``trainer ls``, ``trainer status``,
``trainer ensemble``, ``trainer sweep --around``, the sweep pruner and group refreshes share (docs/query.md)."""
from __future__ import annotations

from collections.abc import Sequence

from ednaquery.store.base import Store

__all__ = ["find_runs"]


def find_runs(store: Store, query: Sequence[str] = (), *, status: str | None = None,
              limit: int | None = None) -> list[dict]:
    """Run documents, newest first (run ids sort by start time), filtered by an ednaquery query."""
    from ednaquery.keys import KeySpec
    from ednaquery.query.parser import parse
    from ednaquery.store.base import FindOptions, SortKey

    words = list(query) + ([f"status={status}"] if status else [])
    node = parse(words)
    return store.find(node, FindOptions(kinds=("run",), sort=[SortKey(KeySpec(("id",)), descending=True)],
                                        limit=limit))
