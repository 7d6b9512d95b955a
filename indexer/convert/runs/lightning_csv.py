"""PyTorch Lightning logger folders: ``<version>/hparams.yaml`` + ``<version>/metrics.csv``.

``CSVLogger`` (and the ``lightning_logs/version_N`` folders it makes) writes the model's
hyper-parameters to ``hparams.yaml`` and every logged value to ``metrics.csv`` (one
column per metric, sparse rows, ``epoch`` and ``step`` columns). ``hparams.yaml`` may hold
``!!python/...`` tags for objects Lightning could not store plainly: they are kept as
data, never constructed. A folder is such a run when it has ``hparams.yaml`` and
``metrics.csv``, or ``hparams.yaml`` in a ``version_N`` folder (a run that has not logged
yet). Lightning records no status or timing: ``unknown``.
"""
from __future__ import annotations

import re
from pathlib import Path

from ednaquery.loaders import DEFAULT_MAX_BYTES
from ednaquery.metrics import MetricsSummary, read_csv
from indexer.convert.runs.base import RunInfo, is_file, load_run_config

_VERSION = re.compile(r"^version_\d+$")


class LightningRecogniser:
    name = "lightning"

    def owner(self, path: Path) -> Path | None:
        if path.name in ("hparams.yaml", "metrics.csv"):
            return path.parent if self.detect(path.parent) else None
        return None

    def detect(self, folder: Path) -> bool:
        if not is_file(folder / "hparams.yaml"):
            return False
        return is_file(folder / "metrics.csv") or bool(_VERSION.match(folder.name))

    def members(self, folder: Path) -> list[Path]:
        return [folder / "hparams.yaml", folder / "metrics.csv"]

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder), format="lightning-run")
        load_run_config(folder / "hparams.yaml", info, max_bytes=max_bytes)
        info.info["version"] = folder.name
        info.info["name"] = folder.parent.name
        csv_path = folder / "metrics.csv"
        if is_file(csv_path):
            info.touch(csv_path)
            summary = MetricsSummary()
            read_csv(str(csv_path), summary, info.warnings)
            info.take_metrics(summary)
            if summary.epoch_count:
                info.info["epochs"] = summary.epoch_count
            if summary.last_step is not None:
                info.info["steps"] = summary.last_step
        return info
