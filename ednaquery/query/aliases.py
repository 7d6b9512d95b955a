"""Key aliases (docs/query.md): ``lr`` also matches whatever ``learning_rate`` or ``lr0`` match.

Expansion is an AST rewrite done after parsing: a key whose single segment (or last
segment of a dotted key) belongs to an alias group gets the group's other members as
``KeySpec.last_alternatives``; the backends match any of them. Names are compared the way
keys are (case-insensitive, ``-``/``_``/camelCase equivalent). Backquoted (literal)
segments and reserved fields (``kind``, ``path``...) are never widened.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ednaquery.errors import UsageError
from ednaquery.keys import KeySpec, segment_tokens
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range

#: The built-in alias groups, exactly as docs/query.md lists them.
BUILTIN_ALIASES: tuple[tuple[str, ...], ...] = (
    ("lr", "learning_rate", "lr0"),
    ("bs", "batch_size"),
    ("wd", "weight_decay"),
    ("model", "arch", "architecture", "backbone"),
)


def normalise(name: str) -> str:
    """The form in which alias names are compared: ``learningRate`` -> ``learning_rate``."""
    return "_".join(segment_tokens(name))


def load_alias_groups(extra: object = None) -> list[list[str]]:
    """The built-in groups merged with the user's (``extra``: a list of lists of key names).

    Groups that share a member (after normalisation) become one group, so a user group
    ``[lr, base_lr]`` widens the built-in ``lr`` group. Raises :class:`UsageError` for a
    setting that is not a list of lists of single-segment names.
    """
    groups: list[list[str]] = [list(g) for g in BUILTIN_ALIASES]
    if extra is None:
        return groups
    if not isinstance(extra, (list, tuple)):
        raise UsageError("the 'aliases' setting must be a list of lists of key names, like [[lr, base_lr]]")
    for group in extra:
        if not isinstance(group, (list, tuple)) or not all(isinstance(n, str) for n in group):
            raise UsageError(f"alias group {group!r} must be a list of key names, like [lr, base_lr]")
        for name in group:
            if not name.strip() or "." in name or "`" in name:
                raise UsageError(f"alias name {name!r} must be one key segment (no '.', not empty)")
        groups.append(list(group))
    return _merge(groups)


def _merge(groups: Iterable[Sequence[str]]) -> list[list[str]]:
    """Union of groups that share a normalised member; first spelling of each name kept."""
    merged: list[list[str]] = []
    for group in groups:
        names = list(group)
        norms = {normalise(n) for n in names}
        rest: list[list[str]] = []
        joined: list[str] = []
        for existing in merged:
            if norms & {normalise(n) for n in existing}:
                joined += existing
            else:
                rest.append(existing)
        names = joined + names
        unique: dict[str, str] = {}
        for name in names:
            unique.setdefault(normalise(name), name)
        merged = rest + [list(unique.values())]
    return [g for g in merged if len(g) > 1]


def alternatives(name: str, groups: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The other members of the group ``name`` belongs to (empty if none)."""
    norm = normalise(name)
    for group in groups:
        if any(normalise(m) == norm for m in group):
            return tuple(m for m in group if normalise(m) != norm)
    return ()


def expand_key(key: KeySpec, groups: Sequence[Sequence[str]]) -> KeySpec:
    """``key`` with ``last_alternatives`` set from ``groups`` (unchanged if no group applies)."""
    if key.reserved_field() is not None or (key.literal and key.literal[-1]):
        return key
    alts = alternatives(key.segments[-1], groups)
    return replace(key, last_alternatives=alts) if alts != key.last_alternatives else key


def expand_aliases(
    node: Node, groups: Sequence[Sequence[str]] | None = None, enabled: bool = True
) -> Node:
    """Widen every key of ``node`` by its alias group (``groups`` None: the built-ins).

    With ``enabled=False`` (``--no-aliases``) the node comes back with no alternatives at all.
    """
    use: Sequence[Sequence[str]] = BUILTIN_ALIASES if groups is None else groups
    if not enabled:
        use = ()

    def walk(n: Node) -> Node:
        if isinstance(n, (Compare, Range, Exists)):
            return replace(n, key=expand_key(n.key, use))
        if isinstance(n, And):
            return And(tuple(walk(i) for i in n.items))
        if isinstance(n, Or):
            return Or(tuple(walk(i) for i in n.items))
        if isinstance(n, Not):
            return Not(walk(n.item))
        if isinstance(n, MatchAll):
            return n
        raise TypeError(f"not a query node: {n!r}")

    return walk(node)
