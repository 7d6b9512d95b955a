"""The run folder: what a training run leaves on disk, every file written atomically.

A run folder holds::

    config.yaml      the fully resolved trainer config (defaults filled in)
    run.json         identity and state: run id, config id, status, times, host, device,
                     versions, git commit, parameter count, error message
    metrics.jsonl    one JSON line per epoch (and, optionally, every N steps)
    summary.json     last and best value of every metric, epochs, total time
    train.log        the log
    last.pt/best.pt  checkpoints (written by trainer.engine.loop)
    *.png            curves, confusion matrix, predictions (trainer.engine.plots)

Readers (the indexer, ``trainer status``) may look at any moment, so every file but
the log is replaced whole (temp file in the same folder, then ``os.replace``): a
reader sees the old version or the new one, never half of one.

Status moves ``queued -> running -> completed | failed | interrupted | pruned``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ednaquery.fsutil import write_atomic, write_json_atomic
from ednaquery.metrics import MetricsSummary, direction, finite_number, iter_jsonl

RUN_FORMAT = "ednaquery-run"
RUN_FORMAT_VERSION = 1
STATUSES = ("queued", "running", "completed", "failed", "interrupted", "pruned")
#: ``pruned``: a sweep's pruner stopped the run early (see :mod:`trainer.ops.prune`)
FINAL_STATUSES = ("completed", "failed", "interrupted", "pruned")

# ------------------------------------------------------------------ atomic files


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl file (a torn last line, should one exist, is skipped).

    No size limit: these are the trainer's own rows, and a resumed run rewrites the file from them.
    """
    path = Path(path)
    return list(iter_jsonl(path, [], max_bytes=None)) if path.exists() else []


# ------------------------------------------------------------------ environment facts


def git_commit(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git working tree at ``cwd``; (None, None) when there is none."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=cwd,
                                capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def environment_info() -> dict[str, Any]:
    """Host, Python/torch/timm versions and git commit, for run.json."""
    info: dict[str, Any] = {"host": socket.gethostname(), "python": platform.python_version(),
                            "platform": platform.platform(), "pid": os.getpid()}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        info["torch"] = None
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:  # pragma: no cover
        info["timm"] = None
    info["git_commit"], info["git_dirty"] = git_commit()
    return info


# ------------------------------------------------------------------ summary


def summarize(rows: list[dict[str, Any]], *, best_metric: str = "val_acc") -> dict[str, Any]:
    """Last and best of every numeric metric over the epoch rows.

    ``best`` is the max or min over epochs as :func:`ednaquery.metrics.direction` says
    (accuracies and images/s: max; losses, times, data wait: min); for metrics without a
    direction (lr, memory) it is the value at the best epoch by ``best_metric``.
    """
    epochs = [r for r in rows if r.get("scope", "epoch") == "epoch"]
    metrics: dict[str, dict[str, float]] = {}
    if not epochs:
        return {"metrics": metrics, "epochs": 0, "best_epoch": None, "best_metric": best_metric}
    best_dir = direction(best_metric) or "max"
    scored = [r for r in epochs if finite_number(r.get(best_metric)) is not None]
    pick = max if best_dir == "max" else min
    best_row = pick(scored, key=lambda r: finite_number(r[best_metric])) if scored else epochs[-1]
    acc = MetricsSummary()
    for r in epochs:
        acc.add_record(r)
    for name, entry in acc.result().items():
        at_best = finite_number(best_row.get(name))
        undirected = entry["last"] if at_best is None else at_best
        metrics[name] = {"last": entry["last"], "best": entry.get("best", undirected)}
    return {"metrics": metrics, "epochs": int(epochs[-1].get("epoch", len(epochs))),
            "best_epoch": best_row.get("epoch"), "best_metric": best_metric}


# ------------------------------------------------------------------ the writer


class RunWriter:
    """Writes one run folder; every change to run.json goes through :meth:`update`."""

    def __init__(self, run_dir: Path, *, on_status: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.on_status = on_status
        self.run: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []
        self._log_handler: logging.Handler | None = None

    # paths
    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def run_path(self) -> Path:
        return self.dir / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.dir / "summary.json"

    @property
    def log_path(self) -> Path:
        return self.dir / "train.log"

    def load_existing(self) -> None:
        """Pick up run.json and metrics.jsonl of an earlier attempt (resume)."""
        if self.run_path.exists():
            self.run = read_json(self.run_path)
        self.rows = read_metrics(self.metrics_path)

    def write_config(self, resolved: dict[str, Any]) -> None:
        """config.yaml: the fully resolved config."""
        write_atomic(self.config_path, yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into run.json and rewrite it."""
        self.run.update(fields)
        self.run.setdefault("format", RUN_FORMAT)
        self.run.setdefault("format_version", RUN_FORMAT_VERSION)
        self.run["updated_at"] = time.time()
        write_json_atomic(self.run_path, _clean(self.run))
        if self.on_status is not None:
            self.on_status(dict(self.run))
        return self.run

    def truncate_metrics(self, *, epochs_done: int, step: int) -> None:
        """Drop rows an interrupted attempt wrote past its last checkpoint (resume continues from there)."""
        self.rows = [r for r in self.rows
                     if (r.get("scope", "epoch") == "epoch" and r.get("epoch", 0) <= epochs_done)
                     or (r.get("scope") == "step" and r.get("step", 0) <= step)]
        self._write_metrics()

    def add_metrics(self, row: dict[str, Any]) -> None:
        """Append a metrics row (the file is rewritten whole, atomically)."""
        self.rows.append(_clean(row))
        self._write_metrics()

    def _write_metrics(self) -> None:
        text = "".join(json.dumps(r, sort_keys=False) + "\n" for r in self.rows)
        write_atomic(self.metrics_path, text)

    def write_summary(self, extra: dict[str, Any], *, best_metric: str) -> dict[str, Any]:
        """summary.json from the rows so far plus ``extra`` (total time, status...)."""
        summary = summarize(self.rows, best_metric=best_metric)
        summary.update(extra)
        write_json_atomic(self.summary_path, _clean(summary))
        return summary

    def attach_log(self, logger_name: str = "trainer") -> None:
        """Send the trainer's log records to train.log."""
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logger = logging.getLogger(logger_name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        self._log_handler = handler

    def detach_log(self, logger_name: str = "trainer") -> None:
        """Close train.log."""
        if self._log_handler is not None:
            logging.getLogger(logger_name).removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


# ------------------------------------------------------------------ reading a run back


IDENTITY_FIELDS = ("run_id", "config_id", "status", "started_at", "ended_at", "format", "format_version",
                   "updated_at")


@dataclass
class RunSnapshot:
    """Everything a store document for a run needs, read from (or about to be in) its folder.

    ``summary["metrics"]`` is ``{"val_acc": {"last": .., "best": ..}, ...}``; ``info`` is
    run.json without the identity fields (host, device, versions, error...).
    """

    run_id: str
    run_dir: Path
    status: str
    config: dict[str, Any]
    config_id: str | None
    summary: dict[str, Any]
    info: dict[str, Any]
    started_at: float | None
    ended_at: float | None
    row: dict[str, Any] | None = None

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """The summary metrics: last and best of each."""
        return self.summary.get("metrics", {})


def snapshot(run: dict[str, Any], run_dir: Path, config: dict[str, Any], summary: dict[str, Any],
             row: dict[str, Any] | None = None) -> RunSnapshot:
    """A :class:`RunSnapshot` from run.json's content, the resolved config and the summary."""
    return RunSnapshot(
        run_id=run.get("run_id", Path(run_dir).name), run_dir=Path(run_dir), status=run.get("status", "unknown"),
        config=config, config_id=run.get("config_id"), summary=summary,
        info={k: v for k, v in run.items() if k not in IDENTITY_FIELDS},
        started_at=run.get("started_at"), ended_at=run.get("ended_at"), row=row)


def load_run(run_dir: Path) -> RunSnapshot:
    """Read a run folder back (run.json, config.yaml, summary.json or metrics.jsonl)."""
    run_dir = Path(run_dir)
    run_path = run_dir / "run.json"
    if not run_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no run.json)")
    run = read_json(run_path)
    config_path = run_dir / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = read_json(summary_path)
    else:
        summary = summarize(read_metrics(run_dir / "metrics.jsonl"),
                            best_metric=(config.get("train") or {}).get("best_metric", "val_acc"))
    return snapshot(run, run_dir, config or {}, summary)
