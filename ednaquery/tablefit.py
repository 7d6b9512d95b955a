"""Fitting a table of text cells into a terminal width without wrapping and without dropping a column.

Every cell stays on one line: long values are cut at the end with ``…``, paths in the middle
(``runs/2026…/metrics.jsonl``), and when the table is still too wide the widest columns give up
characters first, down to a floor that keeps each column readable (ids keep at least 8
characters, so ``ednaquery show`` accepts what a table prints). Pure functions over strings:
the renderer (:mod:`ednaquery.output`) and ``trainer ls`` both use them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ELLIPSIS", "GAP", "FitColumn", "cut_end", "cut_middle", "fit_cells", "fit_table", "fit_widths"]

ELLIPSIS = "…"
GAP = 2  # characters between two columns (rich's padding (0, 1) without edge padding)


def cut_end(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at the end with ``…`` when longer."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    return text[:width - 1] + ELLIPSIS


def cut_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle with ``…`` (paths keep both ends)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    tail = (width - 1) // 2 + (width - 1) % 2
    head = width - 1 - tail
    return text[:head] + ELLIPSIS + text[len(text) - tail:]


@dataclass(frozen=True)
class FitColumn:
    """How one column may shrink: to ``soft`` characters while others still can (None: not at all
    in that round), then to ``floor`` at most; ``middle``: cut in the middle (paths)."""

    floor: int = 8
    soft: int | None = 12
    middle: bool = False
    first: bool = False  # gives up width before the others (a path)


def fit_widths(natural: Sequence[int], specs: Sequence[FitColumn], total: int | None, gap: int = GAP) -> list[int]:
    """Column widths that fit ``total`` characters (None: no limit) with ``gap`` between columns.

    Two rounds: first every column shrinks to its ``soft`` width, then to its ``floor``; in each
    round columns marked ``first`` give up width before the others, and then the widest column
    loses width until it is as narrow as the next widest. No column goes below
    ``min(natural, floor)``; when even the floors do not fit, the line is wider than ``total``.
    """
    widths = list(natural)
    if total is None:
        return widths
    budget = total - gap * max(0, len(widths) - 1)
    for hard in (False, True):
        floors = [min(n, s.floor) if hard else min(n, max(s.floor, n if s.soft is None else s.soft))
                  for n, s in zip(natural, specs)]
        _shrink(widths, floors, specs, sum(widths) - budget)
    return widths


def _shrink(widths: list[int], floors: Sequence[int], specs: Sequence[FitColumn], excess: int) -> None:
    """Take ``excess`` characters from ``widths`` (in place), none below ``floors``."""
    for i, s in enumerate(specs):
        if excess <= 0:
            return
        if s.first and widths[i] > floors[i]:
            give = min(excess, widths[i] - floors[i])
            widths[i] -= give
            excess -= give
    while excess > 0:
        i = max(range(len(widths)), key=lambda k: (widths[k] - floors[k] > 0, widths[k]))
        if widths[i] <= floors[i]:
            break
        # cut the widest column down to the next widest (or as far as needed), in one step
        others = [w for k, w in enumerate(widths) if k != i and widths[k] > floors[k]]
        target = max(max(others) if others else floors[i], floors[i], widths[i] - excess)
        give = max(1, widths[i] - target)
        widths[i] -= give
        excess -= give


def fit_cells(header: Sequence[str], rows: Sequence[Sequence[str]], specs: Sequence[FitColumn],
              total: int | None) -> tuple[list[str], list[list[str]], list[int]]:
    """Header and rows cut to widths that fit ``total`` (see :func:`fit_widths`), and the widths."""
    natural = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    widths = fit_widths(natural, specs, total)

    def cut(text: str, i: int) -> str:
        return cut_middle(text, widths[i]) if specs[i].middle else cut_end(text, widths[i])

    return ([cut(h, i) for i, h in enumerate(header)],
            [[cut(c, i) for i, c in enumerate(r)] for r in rows], widths)


def fit_table(header: Sequence[str], rows: Sequence[Sequence[str]], specs: Sequence[FitColumn], total: int | None,
              droppable: Sequence[int] = ()) -> tuple[list[str], list[list[str]], list[int], list[int]]:
    """:func:`fit_cells`, leaving out the ``droppable`` columns one by one (in that order) while even the
    narrowest widths do not fit ``total``. Returns header, rows, widths and the indices of the kept columns."""
    keep = list(range(len(header)))
    pending = list(droppable)
    while True:
        h = [header[i] for i in keep]
        r = [[row[i] for i in keep] for row in rows]
        cut_h, cut_r, widths = fit_cells(h, r, [specs[i] for i in keep], total)
        if total is None or not pending or sum(widths) + GAP * (len(widths) - 1) <= total:
            return cut_h, cut_r, widths, keep
        keep.remove(pending.pop(0))
