"""The query language of docs/query.md: text or CLI arguments -> tokens -> AST -> aliases expanded.

``compile_query("lr<1e-3 model=vit")`` is what a command calls; backends compile the
resulting AST (:mod:`ednaquery.query.ast`) for their store.
"""
from __future__ import annotations

from collections.abc import Sequence

from ednaquery.query.aliases import BUILTIN_ALIASES, expand_aliases, load_alias_groups
from ednaquery.query.ast import Node
from ednaquery.query.describe import to_text
from ednaquery.query.parser import parse, parse_key
from ednaquery.query.suggest import check_kinds

__all__ = [
    "BUILTIN_ALIASES",
    "compile_query",
    "expand_aliases",
    "load_alias_groups",
    "parse",
    "parse_key",
    "to_text",
]


def compile_query(
    text_or_args: str | Sequence[str],
    aliases: Sequence[Sequence[str]] | None = None,
    use_aliases: bool = True,
) -> Node:
    """Parse a query and widen its keys by alias groups.

    ``aliases``: the groups in force (``load_alias_groups(settings_value)``); None means the
    built-ins. ``use_aliases=False`` is ``--no-aliases``. Raises ``QuerySyntaxError``, and
    ``UsageError`` for a ``kind=`` value that is no kind.
    """
    node = parse(text_or_args)
    check_kinds(node)
    return expand_aliases(node, aliases, enabled=use_aliases)
