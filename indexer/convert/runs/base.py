"""The run-recogniser interface and what every recogniser returns.

A *run folder* holds one training run's outputs: its config plus metrics and status.
Each layout (our trainer, Hydra, Lightning, W&B, MLflow...) is one small module with a
:class:`Recogniser`; adding a layout is adding a module and listing it in
:data:`indexer.convert.runs.RECOGNISERS`.

A recogniser answers four questions:

- :meth:`~Recogniser.owner`: does this file belong to a run folder of my layout, and which
  folder? (cheap: file names, a few ``stat`` calls, no parsing);
- :meth:`~Recogniser.detect`: is this folder a run of my layout?
- :meth:`~Recogniser.members`: which files does reading the folder read? (their stats
  decide whether a cached read is still good: every file of a run triggers a read, and
  an MLflow run has one file per param and metric);
- :meth:`~Recogniser.read`: read the folder into a :class:`RunInfo` (never raises for bad
  content: problems become warnings; a broken config file becomes ``config_error``).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ednaquery.errors import LoadError
from ednaquery.loaders import DEFAULT_MAX_BYTES, load_file
from ednaquery.metrics import MetricsSummary, Point


@dataclass
class RunInfo:
    """One run, as read from its folder."""

    layout: str
    folder: str
    #: the run document's ``format``: ``<layout>-run`` (``ednaquery-run`` for our trainer)
    format: str = "run"
    #: the config the run used (effective: interpolations resolved, W&B values unwrapped)
    config: dict = field(default_factory=dict)
    #: the file the config comes from; converting that file also yields a config document
    config_path: str | None = None
    config_format: str = "yaml"
    #: the config file as written, when it differs from ``config``
    config_as_written: Any = None
    config_warnings: list[str] = field(default_factory=list)
    #: why the config file could not be loaded (it then gets an error document)
    config_error: str | None = None
    #: the run's own id if the layout records one, else derived from the folder
    run_id: str | None = None
    #: the content id of the config it ran, if the layout records it (else computed)
    config_id: str | None = None
    status: str = "unknown"
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: every logged metric value with its step/epoch (``MetricsSummary.points``); goes to the store's
    #: series table, never into the run document
    series: list[Point] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    warnings: list[str] = field(default_factory=list)
    #: latest mtime of the files that were read
    mtime: float | None = None
    #: our trainer's own reading of its folder (:class:`ednaquery.runfolder.RunFolder`): when
    #: set, the run document is made exactly as the trainer makes it
    trainer_run: Any = None

    def touch(self, path: str | Path) -> None:
        """Note that ``path`` was read (keeps :attr:`mtime` the newest of them)."""
        try:
            m = os.stat(path).st_mtime
        except OSError:
            return
        self.mtime = m if self.mtime is None else max(self.mtime, m)

    def take_metrics(self, summary: MetricsSummary) -> None:
        """The run's metrics (last/best), series and metric warnings from what ``summary`` gathered."""
        self.metrics = summary.result()
        self.series = summary.points
        self.warnings += summary.warnings()


@runtime_checkable
class Recogniser(Protocol):
    """One run-folder layout."""

    name: str

    def owner(self, path: Path) -> Path | None:
        """The run folder of this layout that ``path`` (a file) belongs to, or None."""
        ...

    def detect(self, folder: Path) -> bool:
        """True if ``folder`` is a run folder of this layout."""
        ...

    def members(self, folder: Path) -> list[Path]:
        """The files :meth:`read` reads (existing or not): a run is re-read when one changes."""
        ...

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        """Read the run in ``folder`` (which :meth:`detect` accepted)."""
        ...


# ---------------------------------------------------------------- helpers for recognisers


def derived_run_id(folder: str | Path, started_at: float | None = None, root: str | None = None) -> str:
    """A stable id for a run whose layout has none: its start time (UTC) when recorded, plus a
    hash of where the folder is (``20240101-120000-3fa9c2d1``); the hash alone otherwise.

    With ``root`` (the watched folder it was found under) the hash is of the path from the
    root's own name down (``runs/lightning_logs/version_0``), so the id survives moving the
    tree; without one, of the absolute path.
    """
    where = os.path.abspath(folder)
    if root is not None:
        top = os.path.abspath(root)
        rel = os.path.relpath(where, os.path.dirname(top))
        if not rel.startswith(os.pardir):
            where = rel.replace(os.sep, "/")
    digest = hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()
    if started_at is not None:
        return time.strftime("%Y%m%d-%H%M%S", time.gmtime(started_at)) + "-" + digest[:8]
    return digest[:20]


def to_epoch(value: Any) -> float | None:
    """Seconds since the epoch from a number (seconds, or milliseconds if huge) or an ISO string."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        return v / 1000.0 if v > 1e11 else v
    if isinstance(value, str):
        s = value.strip()
        try:
            return to_epoch(float(s))
        except ValueError:
            pass
        try:
            d = _dt.datetime.fromisoformat(s)
        except ValueError:
            return None
        if d.tzinfo is None:
            d = d.replace(tzinfo=_dt.UTC)
        return d.timestamp()
    return None


# the bundled trainer's words (queued, running, completed, failed, interrupted), for every layout
_STATUS_WORDS = {
    "running": "running", "started": "running", "in_progress": "running",
    "queued": "queued", "scheduled": "queued", "pending": "queued",
    "finished": "completed", "completed": "completed", "complete": "completed", "done": "completed",
    "success": "completed", "succeeded": "completed",
    "failed": "failed", "failure": "failed", "error": "failed", "crashed": "failed",
    "killed": "interrupted", "cancelled": "interrupted", "canceled": "interrupted",
    "interrupted": "interrupted", "stopped": "interrupted",
}


def normalise_status(value: Any) -> str:
    """The trainer's status words (queued, running, completed, failed, interrupted) for the
    usual synonyms (MLflow's FINISHED, KILLED...), else the lower-cased word, or unknown."""
    if value is None:
        return "unknown"
    word = str(value).strip().lower()
    return _STATUS_WORDS.get(word, word or "unknown")


def load_data(path: str | Path, info: RunInfo, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The first document of a small run file (JSON/YAML), or None with a warning."""
    try:
        loaded = load_file(path, max_bytes=max_bytes)
    except LoadError as exc:
        info.warnings.append(f"{Path(path).name}: {exc.detail}")
        return None
    info.touch(path)
    return loaded.documents[0] if loaded.documents else None


def load_run_config(path: str | Path, info: RunInfo, *, max_bytes: int = DEFAULT_MAX_BYTES,
                resolve: bool = True) -> Any:
    """Load a run's config file into ``info`` (config, as written, warnings or error); returns
    the document as written (None if it cannot be loaded)."""
    from indexer.convert.inherit import resolve as resolve_config

    p = str(path)
    info.config_path = os.path.abspath(p)
    try:
        loaded = load_file(p, max_bytes=max_bytes)
    except LoadError as exc:
        info.config_error = exc.detail
        info.warnings.append(f"config {Path(p).name} could not be loaded: {exc.detail}")
        return None
    info.touch(p)
    info.config_format = loaded.format
    info.config_warnings = list(loaded.warnings)
    doc = loaded.documents[0] if loaded.documents else {}
    if len(loaded.documents) > 1:
        info.config_warnings.append("the config file holds several documents; the run uses the first")
    if not isinstance(doc, dict):
        info.config_warnings.append("the config is not a mapping; it is kept under the key 'value'")
        doc = {"value": doc}
    info.config_as_written = doc
    info.config = doc
    if resolve:
        res = resolve_config(doc, p, loaded.directives, max_bytes=max_bytes)
        info.config = res.config if isinstance(res.config, dict) else doc
        info.config_warnings += res.warnings
    return doc


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
