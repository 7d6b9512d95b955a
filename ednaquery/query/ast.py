"""The query AST: what the parser produces and every backend compiler consumes.

Nodes are small frozen dataclasses so they can be compared in tests and cached.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ednaquery.keys import KeySpec

ValueKind = Literal["num", "str", "bool", "null"]
CompareOp = Literal["=", "!=", "<", "<=", ">", ">=", "~", "!~"]


@dataclass(frozen=True)
class Value:
    """A literal: a number (float), a string, a boolean or null.

    ``quoted`` strings never become numbers or globs; ``glob`` is set for unquoted strings with ``*``/``?``.
    """

    kind: ValueKind
    value: float | str | bool | None
    quoted: bool = False
    glob: bool = False


@dataclass(frozen=True)
class Compare:
    """``key op value[,value...]``: several values mean IN for ``=`` and NOT IN for ``!=``."""

    key: KeySpec
    op: CompareOp
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Range:
    """``low <(=) key <(=) high`` on one leaf; either bound may be None."""

    key: KeySpec
    low: Value | None
    low_inclusive: bool
    high: Value | None
    high_inclusive: bool


@dataclass(frozen=True)
class Exists:
    """``key``: some leaf matches the key (``!key`` parses to ``Not(Exists(key))``)."""

    key: KeySpec


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class MatchAll:
    """The empty query: every document."""


Node = Compare | Range | Exists | And | Or | Not | MatchAll


def terms_of(node: Node) -> Iterator[Compare | Range | Exists]:
    """Every term of the query (under and/or/not alike), in order of appearance."""
    if isinstance(node, (Compare, Range, Exists)):
        yield node
    elif isinstance(node, (And, Or)):
        for item in node.items:
            yield from terms_of(item)
    elif isinstance(node, Not):
        yield from terms_of(node.item)


def keys_of(node: Node) -> list[KeySpec]:
    """Every key the query names, in order of appearance (for table columns and projection)."""
    return list(dict.fromkeys(t.key for t in terms_of(node)))
