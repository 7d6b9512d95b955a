"""Key semantics of docs/query.md: how a key term like ``lr`` or ``optimizer.lr`` finds leaf paths.

A leaf path is a tuple of segments from the root with list indices dropped. A key
segment ``T`` matches a path segment ``S`` when S's tokens end with T's tokens
(case-insensitive; tokens split on ``_``, ``-``, ``.``, spaces and camelCase). A
dotted key matches consecutive segments; the leaf may lie anywhere below the last
matched segment. Reserved document fields (``kind``, ``path``...) live under paths
whose single segment starts with ``RESERVED_PREFIX`` so no config key can collide.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

RESERVED_PREFIX = "\x00"
RESERVED_FIELDS = ("id", "kind", "path", "status", "format", "indexed_at", "mtime", "tags", "note")

_SPLIT = re.compile(r"[_\-.\s/:]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@lru_cache(maxsize=65536)
def segment_tokens(segment: str) -> tuple[str, ...]:
    """Lower-case tokens of a key segment: ``BASE_LR`` -> (base, lr), ``learningRate`` -> (learning, rate)."""
    out: list[str] = []
    for part in _SPLIT.split(segment):
        if part:
            out.extend(p.lower() for p in _CAMEL.split(part) if p)
    return tuple(out) if out else (segment.lower(),)


def segment_suffixes(segment: str) -> list[str]:
    """Every token-suffix of a segment, joined with ``_``: ``BASE_LR`` -> [``lr``, ``base_lr``]."""
    toks = segment_tokens(segment)
    return ["_".join(toks[i:]) for i in range(len(toks) - 1, -1, -1)]


def path_match_keys(path: tuple[str, ...]) -> list[str]:
    """All single-segment key terms that match a leaf at ``path`` (every suffix of every segment)."""
    seen: dict[str, None] = {}
    for seg in path:
        for suf in segment_suffixes(seg):
            seen.setdefault(suf, None)
    return list(seen)


def is_reserved_path(path: tuple[str, ...]) -> bool:
    return len(path) == 1 and path[0].startswith(RESERVED_PREFIX)


@dataclass(frozen=True)
class KeySpec:
    """A key term as the matcher needs it.

    ``segments``: the key's segments as written; ``literal[i]``: segment i was backquoted
    (matched whole, case-insensitive); ``anchored``: must start at the root;
    ``last_alternatives``: alias names that may stand for the last segment.
    """

    segments: tuple[str, ...]
    literal: tuple[bool, ...] = ()
    anchored: bool = False
    last_alternatives: tuple[str, ...] = field(default=())

    def reserved_field(self) -> str | None:
        """The reserved field this key names (``kind``...), or None for a config key."""
        if len(self.segments) == 1 and not self.anchored and not any(self.literal):
            name = self.segments[0].lower()
            if name in RESERVED_FIELDS:
                return name
        return None


def _seg_matches(term: str, literal: bool, seg: str) -> bool:
    if literal:
        return term.lower() == seg.lower()
    t = segment_tokens(term)
    s = segment_tokens(seg)
    return len(t) <= len(s) and s[len(s) - len(t):] == t


@lru_cache(maxsize=262144)
def key_matches(key: KeySpec, path: tuple[str, ...]) -> bool:
    """True if a leaf at ``path`` is matched by ``key`` (docs/query.md's key rule)."""
    if is_reserved_path(path):
        res = key.reserved_field()
        return res is not None and path[0] == RESERVED_PREFIX + res
    if key.reserved_field() is not None:
        return False
    n = len(key.segments)
    lits = key.literal or (False,) * n
    lasts = (key.segments[-1],) + tuple(key.last_alternatives)
    starts = [0] if key.anchored else range(len(path) - n + 1)
    for i in starts:
        if i + n > len(path):
            break
        ok = all(_seg_matches(key.segments[j], lits[j], path[i + j]) for j in range(n - 1))
        if ok and any(_seg_matches(last, lits[n - 1] and last == key.segments[-1], path[i + n - 1]) for last in lasts):
            return True
    return False
