"""Our trainer's run folders (and any folder with a config plus metrics files).

Layout, as ``trainer`` writes it (every file written atomically)::

    <run>/config.yaml      the config the run used (also .yml or .json)
    <run>/run.json         {"run_id", "config_id", "status", "started_at", "ended_at", ...}
    <run>/metrics.jsonl    one JSON object per epoch/step: {"epoch": 3, "val_acc": 0.91, ...}
    <run>/summary.json     final values: {"val_acc": 0.93} or {"val_acc": {"last": .., "best": ..}}

A folder is such a run if it has ``run.json``, or a config file and at least one of
``metrics.jsonl``, ``metrics.json``, ``metrics.csv``, ``summary.json``. ``run.json`` gives
the run id (else one is derived from the folder path), the config id it was launched
from (else the config file's content id), the status and the timing (epoch seconds or
ISO strings); its other fields become the run's ``info``.
"""
from __future__ import annotations

from pathlib import Path

from ednaquery.loaders import DEFAULT_MAX_BYTES
from indexer.convert.runs.base import RunInfo, is_file, load_config, load_data, normalise_status, to_epoch
from indexer.convert.runs.metrics import MetricsSummary, read_csv, read_json_metrics, read_jsonl

CONFIG_NAMES = ("config.yaml", "config.yml", "config.json")
METRIC_NAMES = ("metrics.jsonl", "metrics.json", "metrics.csv", "summary.json")
RUN_FILE = "run.json"
_RESERVED = {"run_id", "config_id", "status", "started_at", "ended_at", "config"}


def read_metric_files(folder: Path, info: RunInfo) -> None:
    """Summarise the metrics files a run folder has (shared by layouts that use them)."""
    summary = MetricsSummary()
    for name in ("metrics.jsonl", "metrics.csv"):
        p = folder / name
        if is_file(p):
            info.touch(p)
            (read_jsonl if name.endswith(".jsonl") else read_csv)(str(p), summary, info.warnings)
    p = folder / "metrics.json"
    if is_file(p):
        read_json_metrics(load_data(p, info), summary)
    p = folder / "summary.json"
    if is_file(p):
        data = load_data(p, info)
        if isinstance(data, dict):
            for k, v in data.items():
                if str(k).lower() not in ("epoch", "step", "status"):
                    summary.set_final(str(k), v)
    info.metrics = summary.result()
    info.warnings += summary.warnings()
    if summary.last_epoch is not None:
        info.info.setdefault("epochs", summary.last_epoch)
    if summary.last_step is not None:
        info.info.setdefault("steps", summary.last_step)


class TrainerRecogniser:
    name = "ednaquery"

    def owner(self, path: Path) -> Path | None:
        if path.name in CONFIG_NAMES or path.name in METRIC_NAMES or path.name == RUN_FILE:
            return path.parent if self.detect(path.parent) else None
        return None

    def detect(self, folder: Path) -> bool:
        if is_file(folder / RUN_FILE):
            return True
        return any(is_file(folder / n) for n in CONFIG_NAMES) and any(is_file(folder / n) for n in METRIC_NAMES)

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder))
        cfg = next((folder / n for n in CONFIG_NAMES if is_file(folder / n)), None)
        if cfg is not None:
            load_config(cfg, info, max_bytes=max_bytes)
        else:
            info.warnings.append("no config file (config.yaml) in the run folder")
        run = load_data(folder / RUN_FILE, info) if is_file(folder / RUN_FILE) else None
        if isinstance(run, dict):
            info.run_id = str(run["run_id"]) if run.get("run_id") else None
            info.config_id = str(run["config_id"]) if run.get("config_id") else None
            info.status = normalise_status(run.get("status"))
            info.started_at = to_epoch(run.get("started_at"))
            info.ended_at = to_epoch(run.get("ended_at"))
            info.info.update({k: v for k, v in run.items() if k not in _RESERVED})
            if cfg is None and isinstance(run.get("config"), dict):
                info.config = run["config"]
        elif run is not None:
            info.warnings.append("run.json is not a JSON object; ignored")
        read_metric_files(folder, info)
        return info
