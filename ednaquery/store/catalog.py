"""The leaf-path catalog: which stored leaf paths a key term matches.

Both backends keep every distinct leaf path once (a few hundred or thousand, not one per
document). A query's key is resolved here, in Python, against that small catalog; the
backend then answers ``path IN (...) AND value ...`` from its index. That keeps the leaves
lean (one path id per leaf instead of every token-suffix) and makes dotted keys, aliases and
anchors exact.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ednaquery.documents import PATH_SEP
from ednaquery.keys import EXACT, RESERVED_PREFIX, KeySpec, group_leaf, key_tier
from ednaquery.metrics import summary_rank


class Tiers(NamedTuple):
    """A key resolved against the catalog: ``exact`` handles, and ``fallback`` handles that count
    only in documents with no leaf under an ``exact`` one (docs/query.md, "Keys")."""

    exact: list
    fallback: list

    @property
    def all(self) -> list:
        """Every handle in either tier (sorted): where the key exists at all."""
        return sorted(self.exact + self.fallback)

    def __bool__(self) -> bool:
        return bool(self.exact or self.fallback)


class PathCatalog:
    """Distinct leaf paths (as stored strings) with memoised key resolution."""

    def __init__(self) -> None:
        self._paths: dict[str, object] = {}  # stored path string -> backend handle (e.g. sqlite pid)
        self._memo: dict[KeySpec, Tiers] = {}

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

    def resolve(self, key: KeySpec) -> Tiers:
        """The handles of the catalog paths the key matches, by tier (each sorted, for stable query text).

        ``*key`` (``every``) puts every match in ``exact``: no document prefers one over another.
        """
        hit = self._memo.get(key)
        if hit is None:
            exact, fallback = [], []
            for p, h in self._paths.items():
                tier = key_tier(key, tuple(p.split(PATH_SEP)))
                if tier is not None:
                    (exact if tier == EXACT or key.every else fallback).append(h)
            hit = self._memo[key] = Tiers(sorted(exact), sorted(fallback))
        return hit

    def paths(self) -> list[str]:
        return list(self._paths)

    def items(self) -> list[tuple[str, object]]:
        """``(stored path, handle)`` for every path."""
        return list(self._paths.items())

    def key_paths(self) -> list[tuple[str, ...]]:
        """Every config (not reserved) leaf path, as segments: what "did you mean" suggests from."""
        return [tuple(p.split(PATH_SEP)) for p in self._paths if not p.startswith(RESERVED_PREFIX)]

    def best_handles(self, metric: Tiers, by: KeySpec | None, group: Tiers | None) -> tuple[dict, list]:
        """For ``--best``: each of ``metric``'s handles with its leaf's :func:`~ednaquery.metrics.summary_rank`,
        and those of ``group``'s handles whose leaves name a group for ``by`` (:func:`~ednaquery.keys.group_leaf`)."""
        wanted = set(metric.all) | set(group.all if group is not None else ())
        path_of = {h: tuple(p.split(PATH_SEP)) for p, h in self._paths.items() if h in wanted}
        ranks = {h: summary_rank(path_of[h][-1]) for h in metric.all}
        group_handles = [] if by is None or group is None else [h for h in group.all if group_leaf(by, path_of[h])]
        return ranks, group_handles
