"""Progress display: one rich bar per epoch (loss, accuracy, images/s), or nothing when quiet.

The loop talks to a :class:`Progress`-like object; :func:`make_progress` picks the rich
one for a terminal and the silent one for scripts (``quiet=True``). Per-epoch results
also go to the log, so a quiet run still leaves them in train.log.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Self

from ednaquery.terminal import printable


class NullProgress:
    """Shows nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int = 0) -> None:
        """An epoch of ``total`` batches begins (``done`` already behind it when resuming)."""

    def update(self, done: int, *, loss: float | None, acc: float | None, ips: float | None) -> None:
        """``done`` batches of the epoch are finished."""

    def end_epoch(self, row: dict[str, Any]) -> None:
        """The epoch ended with these metrics."""

    def print(self, message: str) -> None:
        """A message for the user (rich markup)."""

    def say(self, message: str) -> None:
        """A plain-text line for the user: no markup, control characters escaped (paths, names)."""


class RichProgress(NullProgress):
    """One bar per epoch on stderr; finished bars stay, showing the epoch's results."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
            console=self.console, transient=False, refresh_per_second=4)
        self.task: Any = None

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int = 0) -> None:
        self.task = self.progress.add_task(f"epoch {epoch}/{epochs}", total=total, completed=done, stats="")

    def update(self, done: int, *, loss: float | None, acc: float | None, ips: float | None) -> None:
        if self.task is None:
            return
        parts = []
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if acc is not None:
            parts.append(f"acc {acc:.3f}")
        if ips is not None:
            parts.append(f"{ips:,.0f} img/s")
        self.progress.update(self.task, completed=done, stats="  ".join(parts))

    def end_epoch(self, row: dict[str, Any]) -> None:
        if self.task is None:
            return
        parts = [f"loss {row['train_loss']:.4f}" if row.get("train_loss") is not None else ""]
        if row.get("val_loss") is not None:
            parts.append(f"val_loss {row['val_loss']:.4f}")
        if row.get("val_acc") is not None:
            parts.append(f"val_acc {row['val_acc']:.4f}")
        if row.get("images_per_s") is not None:
            parts.append(f"{row['images_per_s']:,.0f} img/s")
        self.progress.update(self.task, stats="  ".join(p for p in parts if p))
        self.task = None

    def print(self, message: str) -> None:
        self.progress.console.print(message)

    def say(self, message: str) -> None:
        self.progress.console.print(printable(message), markup=False, highlight=False, soft_wrap=True)


def make_progress(quiet: bool) -> NullProgress:
    """The rich progress display, or the silent one when ``quiet``."""
    return NullProgress() if quiet else RichProgress()


def rank_say(rank: int) -> Callable[[str], None]:
    """Plain lines on stderr prefixed ``rank R:``, for a DDP rank other than 0 (which has no display)."""
    return lambda m: print(printable(f"rank {rank}: {m}"), file=sys.stderr, flush=True)
