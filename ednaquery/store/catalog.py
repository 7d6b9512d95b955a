"""The leaf-path catalog: which stored leaf paths a key term matches.

Both backends keep every distinct leaf path once (a few hundred or thousand, not one per
document). A query's key is resolved here, in Python, against that small catalog; the
backend then answers ``path IN (...) AND value ...`` from its index. That keeps the leaves
lean (one path id per leaf instead of every token-suffix) and makes dotted keys, aliases and
anchors exact.
"""
from __future__ import annotations

from collections.abc import Iterable

from ednaquery.documents import PATH_SEP
from ednaquery.keys import KeySpec, key_matches


class PathCatalog:
    """Distinct leaf paths (as stored strings) with memoised key resolution."""

    def __init__(self) -> None:
        self._paths: dict[str, object] = {}  # stored path string -> backend handle (e.g. sqlite pid)
        self._memo: dict[KeySpec, list] = {}

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, path: str) -> bool:
        return path in self._paths

    def add(self, path: str, handle: object = None) -> None:
        """Record a path (with the backend's handle for it); invalidates memoised matches."""
        if path not in self._paths:
            self._paths[path] = path if handle is None else handle
            self._memo.clear()

    def update(self, items: Iterable[tuple[str, object]]) -> None:
        for path, handle in items:
            self.add(path, handle)

    def resolve(self, key: KeySpec) -> list:
        """Handles of every catalog path the key matches (sorted, for stable query text)."""
        hit = self._memo.get(key)
        if hit is None:
            hit = sorted(h for p, h in self._paths.items() if key_matches(key, tuple(p.split(PATH_SEP))))
            self._memo[key] = hit
        return hit

    def paths(self) -> list[str]:
        return list(self._paths)
