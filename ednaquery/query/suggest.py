"""Help for queries that name what the index does not have: unknown keys ("did you mean") and kinds.

The suggestions come from the key catalogue (every distinct leaf path a store has seen), so they
name keys that really exist; nothing here reads documents.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from ednaquery.errors import UsageError
from ednaquery.keys import RESERVED_FIELDS, KeySpec, key_matches
from ednaquery.query.ast import Compare, Node, keys_of, terms_of
from ednaquery.query.describe import key_text

__all__ = ["KINDS", "check_kinds", "describe_unknown", "unknown_keys"]

#: the kinds of document a store holds (``kind=...``); a ``group`` is a cross-validation or bagging
#: group of runs (mean and std of its runs' metrics, see :mod:`ednaquery.groups`)
KINDS = ("config", "run", "error", "group")


def unknown_keys(node: Node, paths: Sequence[tuple[str, ...]]) -> list[KeySpec]:
    """The keys of ``node`` that no path of the catalogue matches, in either tier (reserved fields exist)."""
    return [k for k in keys_of(node) if not known(k, paths)]


def known(key: KeySpec, paths: Iterable[tuple[str, ...]]) -> bool:
    """True when some catalogue path matches ``key`` (reserved fields always do)."""
    return key.reserved_field() is not None or any(key_matches(key, p) for p in paths)


def _candidates(key: KeySpec, paths: Iterable[tuple[str, ...]]) -> dict[str, tuple[str, int]]:
    """Lower-cased names a key like ``key`` could be (segments, or dotted runs of as many) -> (a spelling,
    how many catalogue paths hold it); the lower-case spelling is preferred when there is one."""
    n = len(key.segments)
    out: dict[str, tuple[str, int]] = {name: (name, 0) for name in RESERVED_FIELDS} if n == 1 else {}
    for path in paths:
        for name in {".".join(path[i:i + n]) for i in range(len(path) - n + 1)}:
            low = name.lower()
            spelling, count = out.get(low, (name, 0))
            out[low] = (name if name == low else spelling, count + 1)
    return out


def _distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbours as one edit (``modle`` -> ``model`` is 1)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggestion(key: KeySpec, paths: Sequence[tuple[str, ...]]) -> str | None:
    """The catalogue's closest key name to ``key`` (``modle`` -> ``model``), or None.

    Fewest edits wins (at most a third of the name, at least one), then the name more paths hold.
    """
    typed = ".".join(key.segments).lower()
    limit = max(1, len(typed) // 3)
    best: tuple[int, int, str] | None = None
    for low, (spelling, count) in _candidates(key, paths).items():
        if abs(len(low) - len(typed)) > limit:
            continue
        d = _distance(typed, low)
        if d <= limit and (best is None or (d, -count, spelling) < best):
            best = (d, -count, spelling)
    return best[2] if best else None


def describe_unknown(key: KeySpec, paths: Sequence[tuple[str, ...]]) -> str:
    """One line for a key the index does not have: ``no key 'modle' in the index; did you mean 'model'?``."""
    line = f"no key '{key_text(key)}' in the index"
    hint = suggestion(key, paths)
    return f"{line}; did you mean '{hint}'?" if hint else line


def check_kinds(node: Node) -> None:
    """Raise :class:`UsageError` for ``kind=x`` where ``x`` is no kind (globs and regexes pass)."""
    for n in terms_of(node):
        if isinstance(n, Compare) and n.key.reserved_field() == "kind" and n.op in ("=", "!="):
            for v in n.values:
                if v.glob or str(v.value).lower() in KINDS:
                    continue
                hint = difflib.get_close_matches(str(v.value).lower(), KINDS, n=1, cutoff=0.6)
                more = f"; did you mean '{hint[0]}'?" if hint else ""
                raise UsageError(f"'{v.value}' is not a kind: the kinds are {', '.join(KINDS)}{more}")
