"""Hydra output folders: ``<run>/.hydra/config.yaml`` (+ ``overrides.yaml``, ``hydra.yaml``).

Hydra writes, at the start of every job, the composed config (interpolations still as
written: they are resolved here where the config has the answer), the command-line
overrides and its own runtime config. A run's metrics, when the program writes them to
the output folder, are read as for our trainer (``metrics.jsonl``, ``metrics.csv``,
``metrics.json``, ``summary.json``).

Hydra records no status, so it is inferred: a ``run.json`` status wins; else an ``ERROR``
line or a traceback in the job log (``<job name>.log``) means ``failed``; else the end marker
``summary.json`` (written when the program finishes) means ``completed``; a run with neither
is ``unknown`` (still going, or killed). ``started_at`` is when ``.hydra/config.yaml`` was
written. The id is derived from the folder's path relative to the watched root. ``info`` holds the overrides,
the config-group choices (``hydra.runtime.choices``) and the job name.

A multirun (``-m``) writes ``multirun.yaml`` (the sweep's own config, Hydra's part first) into
the sweep folder, then one job folder per job below it (``<sweep>/<job num>/.hydra/...``).
That file belongs to the multirun's runs, never a config document (:func:`is_multirun_file`):
each job's run reads it into ``info["multirun"]`` (the sweep folder and the sweep's overrides,
e.g. ``lr=0.001,0.004``) and is re-read when it changes.
"""
from __future__ import annotations

import os
from pathlib import Path

from ednaquery.fsutil import open_regular
from ednaquery.loaders import DEFAULT_MAX_BYTES
from indexer.convert.runs.base import RunInfo, is_file, load_data, load_run_config
from indexer.convert.runs.ours import METRIC_NAMES, read_metric_files

HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")
MULTIRUN_FILE = "multirun.yaml"
#: the end of a job log read for errors
LOG_TAIL_BYTES = 256 * 1024


def _job_log(folder: Path, job: str | None) -> Path | None:
    if job and is_file(folder / f"{job}.log"):
        return folder / f"{job}.log"
    try:
        logs = sorted(n for n in os.listdir(folder) if n.endswith(".log"))
    except OSError:
        return None
    return folder / logs[0] if len(logs) == 1 else None


def log_failed(path: Path) -> bool:
    """True if a job log's tail holds an ERROR line or a traceback."""
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            tail = fh.read(LOG_TAIL_BYTES).decode("utf-8", "replace")
    except OSError:
        return False
    return "Traceback (most recent call last)" in tail or any(
        "[ERROR]" in line or " - ERROR - " in line for line in tail.splitlines())


def is_multirun_file(path: Path) -> bool:
    """True for a Hydra multirun's ``multirun.yaml``: a job folder beside it, or Hydra's own key first.

    The content check covers the moment the sweep has started but no job folder exists yet.
    """
    if path.name != MULTIRUN_FILE:
        return False
    try:
        with open_regular(path) as fh:
            if fh.read(7) in (b"hydra:\n", b"hydra:\r"):
                return True
        return any(is_file(path.parent / n / ".hydra" / "config.yaml") for n in os.listdir(path.parent))
    except OSError:
        return False


def _multirun(folder: Path, info: RunInfo) -> None:
    """A job's sweep, from the ``multirun.yaml`` beside its folder (module docstring)."""
    f = folder.parent / MULTIRUN_FILE
    if not is_file(f):
        return
    data = load_data(f, info)
    h = data.get("hydra") if isinstance(data, dict) else None
    if not isinstance(h, dict):
        return
    sweep: dict = {"folder": str(folder.parent)}
    overrides = h.get("overrides") if isinstance(h.get("overrides"), dict) else {}
    if isinstance(overrides.get("task"), list):
        sweep["overrides"] = [str(o) for o in overrides["task"]]
    info.info["multirun"] = sweep


class HydraRecogniser:
    name = "hydra"

    def owner(self, path: Path) -> Path | None:
        if path.parent.name == ".hydra" and path.name in HYDRA_FILES:
            folder = path.parent.parent
        elif path.name in METRIC_NAMES:
            folder = path.parent
        else:
            return None
        return folder if self.detect(folder) else None

    def detect(self, folder: Path) -> bool:
        return is_file(folder / ".hydra" / "config.yaml")

    def members(self, folder: Path) -> list[Path]:
        logs = [_job_log(folder, None)]
        return [folder / ".hydra" / n for n in HYDRA_FILES] + [folder / n for n in METRIC_NAMES] \
            + [p for p in logs if p is not None] + [folder.parent / MULTIRUN_FILE]

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder), format="hydra-run")
        cfg = folder / ".hydra" / "config.yaml"
        load_run_config(cfg, info, max_bytes=max_bytes)
        try:
            info.started_at = os.stat(cfg).st_mtime
        except OSError:
            pass
        overrides = load_data(folder / ".hydra" / "overrides.yaml", info) \
            if is_file(folder / ".hydra" / "overrides.yaml") else None
        if isinstance(overrides, list):
            info.info["overrides"] = [str(o) for o in overrides]
        hydra = load_data(folder / ".hydra" / "hydra.yaml", info) \
            if is_file(folder / ".hydra" / "hydra.yaml") else None
        if isinstance(hydra, dict) and isinstance(hydra.get("hydra"), dict):
            h = hydra["hydra"]
            runtime = h.get("runtime") if isinstance(h.get("runtime"), dict) else {}
            job = h.get("job") if isinstance(h.get("job"), dict) else {}
            if isinstance(runtime.get("choices"), dict):
                info.info["choices"] = runtime["choices"]
            if job.get("name"):
                info.info["job"] = job["name"]
            if job.get("num") is not None:
                info.info["job_num"] = job["num"]
        _multirun(folder, info)  # Hydra < 1.2 has no hydra.mode: the file beside the job folder says it
        read_metric_files(folder, info)
        log = _job_log(folder, info.info.get("job"))
        if info.status == "unknown":
            if log is not None and log_failed(log):
                info.status = "failed"
            elif is_file(folder / "summary.json"):
                info.status = "completed"
        return info
