"""Our trainer's run folders, and any folder with a config plus metrics files.

The bundled trainer's layout (see :mod:`ednaquery.runfolder`, every file written atomically)::

    <run>/config.yaml      the fully resolved config the run used
    <run>/run.json         {"format": "ednaquery-run", "run_id", "config_id", "status", ...}
    <run>/metrics.jsonl    one JSON object per epoch
    <run>/summary.json     {"metrics": {"val_acc": {"last": .., "best": ..}}, "epochs": ..}

For such a folder the run document is made by :func:`ednaquery.runfolder.document_from`,
the very function ``trainer launch`` uses when it upserts the run as it goes, so the
store holds the same document whichever of the two wrote last (format ``ednaquery-run``).

Any other folder with a config file (``config.yaml``/``.yml``/``.json``) and at least one
of ``metrics.jsonl``, ``metrics.json``, ``metrics.csv``, ``summary.json`` (or a
``run.json`` of another writer) is a *generic* run (format ``run``): metrics are
summarised from those files (:mod:`ednaquery.metrics`), ``run.json`` (if any)
gives ``run_id``, ``config_id``, ``status``, ``started_at``/``ended_at`` (epoch seconds or
ISO strings) and the rest of its fields as ``info``; the id is otherwise derived from the
folder path.
"""
from __future__ import annotations

from pathlib import Path

from ednaquery.errors import LoadError
from ednaquery.loaders import DEFAULT_MAX_BYTES
from ednaquery.metrics import MetricsSummary, read_csv, read_json_metrics, read_jsonl
from ednaquery.runfolder import RUN_FORMAT, is_trainer_run, read_run_folder
from indexer.convert.runs.base import RunInfo, is_file, load_data, load_run_config, normalise_status, to_epoch

CONFIG_NAMES = ("config.yaml", "config.yml", "config.json")
METRIC_NAMES = ("metrics.jsonl", "metrics.json", "metrics.csv", "summary.json")
RUN_FILE = "run.json"
_RESERVED = {"run_id", "config_id", "status", "started_at", "ended_at", "config", "format"}


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
            final = data["metrics"] if isinstance(data.get("metrics"), dict) else data
            for k, v in final.items():
                if str(k).lower() not in ("epoch", "epochs", "step", "status"):
                    summary.set_final(str(k), v)
    info.take_metrics(summary)
    if summary.epoch_count:
        info.info.setdefault("epochs", summary.epoch_count)
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

    def members(self, folder: Path) -> list[Path]:
        return [folder / n for n in (*CONFIG_NAMES, RUN_FILE, *METRIC_NAMES)]

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        if is_trainer_run(folder):
            try:
                return self._read_trainer(folder, max_bytes)
            except LoadError:
                pass  # run.json unreadable after all: read it as a generic run (with warnings)
        return self._read_generic(folder, max_bytes)

    def _read_trainer(self, folder: Path, max_bytes: int) -> RunInfo:
        rf = read_run_folder(folder, max_bytes=max_bytes)
        info = RunInfo(layout=self.name, folder=rf.folder, format=RUN_FORMAT, run_id=rf.run_id,
                       config=rf.config, config_id=rf.config_id, status=rf.status, metrics=rf.metrics,
                       info=rf.info, started_at=rf.started_at, ended_at=rf.ended_at,
                       warnings=list(rf.warnings), mtime=rf.mtime, series=rf.series, trainer_run=rf)
        cfg = folder / "config.yaml"
        if is_file(cfg):  # for the config file's own document (or error record)
            probe = RunInfo(layout=self.name, folder=rf.folder)
            load_run_config(cfg, probe, max_bytes=max_bytes, resolve=False)
            info.config_path, info.config_format = probe.config_path, probe.config_format
            info.config_as_written, info.config_error = probe.config_as_written, probe.config_error
            info.config_warnings = probe.config_warnings
        return info

    def _read_generic(self, folder: Path, max_bytes: int) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder), format="run")
        cfg = next((folder / n for n in CONFIG_NAMES if is_file(folder / n)), None)
        if cfg is not None:
            load_run_config(cfg, info, max_bytes=max_bytes)
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
