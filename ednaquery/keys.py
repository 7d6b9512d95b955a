"""Key semantics (docs/query.md, "Keys"): how a key term like ``lr`` or ``optimizer.lr`` finds leaf paths.

A leaf path is a tuple of segments from the root with list indices dropped. Segments are
compared by their tokens (case-insensitive; split on ``_``, ``-``, ``.``, spaces and
camelCase). A key resolves per document, most specific first:

- tier :data:`EXACT`: a segment whose tokens *equal* the key's last segment's (or an alias's);
- tier :data:`SUFFIX`: a segment whose tokens *end with* them (``lr`` -> ``BASE_LR``), used only
  by documents that have no exact leaf for the key (:func:`resolve_paths`);
- a key written ``*lr`` (``KeySpec.every``) takes both tiers in every document.

A dotted key matches consecutive segments (earlier ones by the suffix rule); the leaf may lie
anywhere below the last matched segment. Reserved document fields (``kind``, ``path``...) live
under paths whose single segment starts with ``RESERVED_PREFIX`` so no config key can collide.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
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
    ``last_alternatives``: alias names that may stand for the last segment; ``every``: written
    ``*key``, every suffix match in every document (no exact-first resolution).
    """

    segments: tuple[str, ...]
    literal: tuple[bool, ...] = ()
    anchored: bool = False
    last_alternatives: tuple[str, ...] = field(default=())
    every: bool = False

    def reserved_field(self) -> str | None:
        """The reserved field this key names (``kind``...), or None for a config key."""
        if len(self.segments) == 1 and not self.anchored and not any(self.literal) and not self.every:
            name = self.segments[0].lower()
            if name in RESERVED_FIELDS:
                return name
        return None


#: tiers of :func:`key_tier`
EXACT, SUFFIX = 0, 1


def _seg_matches(term: str, literal: bool, seg: str, exact: bool = False) -> bool:
    if literal:
        return term.lower() == seg.lower()
    t = segment_tokens(term)
    s = segment_tokens(seg)
    if exact:
        return s == t
    return len(t) <= len(s) and s[len(s) - len(t):] == t


@lru_cache(maxsize=262144)
def key_tier(key: KeySpec, path: tuple[str, ...]) -> int | None:
    """:data:`EXACT` or :data:`SUFFIX` when ``key`` matches a leaf at ``path``, None when it does not.

    A reserved field and a literal (backquoted) last segment only ever match :data:`EXACT`.
    """
    if is_reserved_path(path):
        res = key.reserved_field()
        return EXACT if res is not None and path[0] == RESERVED_PREFIX + res else None
    if key.reserved_field() is not None:
        return None
    n = len(key.segments)
    lits = key.literal or (False,) * n
    lasts = (key.segments[-1],) + tuple(key.last_alternatives)
    starts = [0] if key.anchored else range(len(path) - n + 1)
    best: int | None = None
    for i in starts:
        if i + n > len(path):
            break
        if not all(_seg_matches(key.segments[j], lits[j], path[i + j]) for j in range(n - 1)):
            continue
        seg = path[i + n - 1]
        for last in lasts:
            lit = lits[n - 1] and last == key.segments[-1]
            if _seg_matches(last, lit, seg, exact=True):
                return EXACT
            if best is None and _seg_matches(last, lit, seg):
                best = SUFFIX
    return best


def key_matches(key: KeySpec, path: tuple[str, ...]) -> bool:
    """True if ``key`` matches a leaf at ``path`` in some tier (the ``*key`` rule: every suffix match)."""
    return key_tier(key, path) is not None


def resolve_paths(key: KeySpec, paths: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The paths of ONE document that ``key`` resolves to: its exact matches, else its suffix matches.

    ``*key`` (``every``) takes both tiers. Order and repeats of ``paths`` are kept.
    """
    tiers = [(p, key_tier(key, p)) for p in paths]
    if key.every:
        return [p for p, t in tiers if t is not None]
    exact = [p for p, t in tiers if t == EXACT]
    return exact if exact else [p for p, t in tiers if t == SUFFIX]


def matched_tail(key: KeySpec, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The part of ``path`` below the segment ``key`` matched (``()`` for the leaf itself), None if no match."""
    for n in range(1, len(path) + 1):
        if key_matches(key, path[:n]):
            return path[n:]
    return None


def group_leaf(key: KeySpec, path: tuple[str, ...]) -> bool:
    """True when a leaf at ``path`` names a group for ``--by key``: the key's own value, or the ``name`` leaf
    of the section it names (``model: vit_b`` and ``model: {name: vit_b, ...}`` are one group)."""
    tail = matched_tail(key, path)
    return tail is not None and (not tail or (len(tail) == 1 and segment_tokens(tail[0]) == ("name",)))
