"""Run folder of the bundled trainer -> run document: the one function both writers of runs use.

``trainer launch`` indexes its run as it goes, and the indexer daemon indexes the same folder
when it sees it change. Both call :func:`run_document` on the folder's files, so the store
holds one document for a run (same ``_id``, the run id; same fields), whichever wrote last.

The layout (written by :mod:`trainer.engine.runs`, every file replaced atomically)::

    <run>/config.yaml    the fully resolved config the run used
    <run>/run.json       {"format": "ednaquery-run", "run_id", "config_id", "status",
                          "started_at", "ended_at", host, device, versions, error...}
    <run>/metrics.jsonl  one JSON object per epoch ({"scope": "epoch", "epoch": 3, "val_acc": ..})
    <run>/summary.json   {"metrics": {"val_acc": {"last": .., "best": ..}, ...}, "epochs": ..}

The document's ``metrics`` come from ``summary.json`` (the trainer's own last/best), or,
while it is missing, from the epoch rows of ``metrics.jsonl`` (summarised by
:class:`ednaquery.metrics.MetricsSummary`, whose rule decides each metric's best). Per-epoch series never go
into the document. ``info`` is ``run.json`` without the identity fields, plus the summary's
epoch counts and total time. The status is kept as the trainer writes it
(``queued``, ``running``, ``completed``, ``failed``, ``interrupted``).

Pure apart from reading the files: no store, no torch; importable by the trainer and the
indexer alike.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ednaquery.annotations import read_annotation
from ednaquery.documents import config_id as content_id
from ednaquery.documents import make_run_document
from ednaquery.errors import LoadError
from ednaquery.fsutil import head_has_marker
from ednaquery.loaders import DEFAULT_MAX_BYTES, load_file
from ednaquery.metrics import MetricsSummary, Point, finite_number, iter_jsonl

#: ``run.json``'s ``format`` marker for the bundled trainer's run folders.
RUN_FORMAT = "ednaquery-run"
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
#: run.json fields that are document fields, not ``info``
IDENTITY_FIELDS = frozenset({"run_id", "config_id", "status", "started_at", "ended_at", "format",
                             "format_version", "updated_at", "config"})
#: summary.json fields copied into ``info`` (when run.json does not have them)
SUMMARY_INFO = ("epochs", "best_epoch", "best_metric", "total_time_s", "stop_reason")


@dataclass
class RunFolder:
    """What a trainer run folder says about its run."""

    folder: str
    run_id: str
    config: dict = field(default_factory=dict)
    config_id: str | None = None
    status: str = "unknown"
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    warnings: list[str] = field(default_factory=list)
    #: newest mtime of the files that were read
    mtime: float | None = None
    #: every value logged in ``metrics.jsonl`` (:func:`series_points`; the store's series table, never the document)
    series: list[Point] = field(default_factory=list)


def is_trainer_run(folder: str | os.PathLike[str]) -> bool:
    """True if ``folder`` holds a ``run.json`` written by the bundled trainer."""
    return head_has_marker(Path(folder) / RUN_FILE, RUN_FORMAT)


def epoch_summary(rows: list[dict]) -> MetricsSummary:
    """The epoch rows of ``metrics.jsonl`` summarised (step rows are left out: their ``train_loss``
    is per batch, the epoch rows' an epoch mean; mixed, they would not make one curve)."""
    summary = MetricsSummary()
    for row in rows:
        if row.get("scope", "epoch") == "epoch":
            summary.add_record(row)
    return summary


def series_points(rows: list[dict], epochs: MetricsSummary) -> list[Point]:
    """A run's series: a metric logged in epoch rows comes from them (``epochs``, the epoch rows
    summarised), one logged only in step rows (``start_run(...).log(..., step=)``) from those."""
    steps = MetricsSummary()
    for row in rows:
        if row.get("scope", "epoch") != "epoch":
            steps.add_record(row)
    return epochs.points + [p for p in steps.points if p.metric not in epochs.series]


def _clean_metrics(raw: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    if not isinstance(raw, dict):
        return out
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        kept = {k: x for k in ("last", "best") if (x := finite_number(entry.get(k))) is not None}
        if kept:
            out[str(name)] = kept
    return out


def _epoch(value: Any) -> float | None:
    x = finite_number(value)
    if x is None:
        return None
    return x / 1000.0 if x > 1e11 else x


def read_run_folder(folder: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunFolder:
    """Read a trainer run folder. Raises :class:`LoadError` when ``run.json`` is missing or unreadable;
    every other problem (no config, no metrics yet, a bad summary) becomes a warning."""
    root = Path(os.path.abspath(folder))
    mtimes: list[float] = []

    def load(name: str) -> Any:
        loaded = load_file(root / name, max_bytes=max_bytes)
        if loaded.mtime is not None:
            mtimes.append(loaded.mtime)
        return loaded.documents[0] if loaded.documents else None

    run = load(RUN_FILE)
    if not isinstance(run, dict):
        raise LoadError("run.json does not hold a JSON object", path=str(root / RUN_FILE))
    rf = RunFolder(folder=str(root), run_id=str(run.get("run_id") or root.name))
    rf.config_id = str(run["config_id"]) if run.get("config_id") else None
    rf.status = str(run.get("status") or "unknown")
    rf.started_at = _epoch(run.get("started_at"))
    rf.ended_at = _epoch(run.get("ended_at"))
    rf.info = {k: v for k, v in run.items() if k not in IDENTITY_FIELDS}

    if (root / CONFIG_FILE).is_file():
        try:
            config = load(CONFIG_FILE)
        except LoadError as exc:
            rf.warnings.append(f"{CONFIG_FILE} could not be loaded: {exc.detail}")
            config = None
        if isinstance(config, dict):
            rf.config = config
        elif config is not None:
            rf.warnings.append(f"{CONFIG_FILE} is not a mapping; ignored")
    else:
        rf.warnings.append(f"no {CONFIG_FILE} in the run folder")
    if rf.config_id is None and rf.config:
        rf.config_id = content_id(rf.config)

    rows = None  # the series always come from metrics.jsonl; its last/best only while summary.json is missing
    rows_warnings: list[str] = []
    if (root / METRICS_FILE).is_file():
        logged = list(iter_jsonl(root / METRICS_FILE, rows_warnings))
        rows = epoch_summary(logged)
        rf.series = series_points(logged, rows)
    summary = None
    if (root / SUMMARY_FILE).is_file():
        try:
            summary = load(SUMMARY_FILE)
        except LoadError as exc:
            rf.warnings.append(f"{SUMMARY_FILE} could not be loaded: {exc.detail}")
    if isinstance(summary, dict) and isinstance(summary.get("metrics"), dict):
        rf.metrics = _clean_metrics(summary["metrics"])
        for key in SUMMARY_INFO:
            if summary.get(key) is not None and key not in rf.info:
                rf.info[key] = summary[key]
    elif rows is not None:
        rf.metrics = rows.result()
        rf.warnings += rows_warnings
        try:
            mtimes.append(os.stat(root / METRICS_FILE).st_mtime)
        except OSError:
            pass
    rf.mtime = max(mtimes) if mtimes else None
    return rf


def document_from(rf: RunFolder) -> dict:
    """The store document for a :class:`RunFolder`, with the user's tags and note from the folder's
    annotations sidecar (so the trainer's own upserts during a run keep them; :mod:`ednaquery.annotations`)."""
    doc = make_run_document(rf.run_id, config=rf.config, config_id=rf.config_id, path=rf.folder,
                            status=rf.status, metrics=rf.metrics, info=rf.info, started_at=rf.started_at,
                            ended_at=rf.ended_at, format=RUN_FORMAT, warnings=rf.warnings, mtime=rf.mtime)
    ann = read_annotation(rf.folder, is_run=True)
    if ann:
        doc["annotations"] = ann
    return doc


def run_document(folder: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The run document for a trainer run folder (``_id`` = the run id; see the module docstring)."""
    return document_from(read_run_folder(folder, max_bytes=max_bytes))
