"""Hydra output folders: ``<run>/.hydra/config.yaml`` (+ ``overrides.yaml``, ``hydra.yaml``).

Hydra writes, at the start of every job, the composed config (interpolations still as
written: they are resolved here where the config has the answer), the command-line
overrides and its own runtime config. A run's metrics, when the program writes them to
the output folder, are read as for our trainer (``metrics.jsonl``, ``metrics.csv``,
``metrics.json``, ``summary.json``). Hydra records no status: it is ``unknown``.
``started_at`` is when ``.hydra/config.yaml`` was written. ``info`` holds the overrides,
the config-group choices (``hydra.runtime.choices``) and the job name.
"""
from __future__ import annotations

import os
from pathlib import Path

from ednaquery.loaders import DEFAULT_MAX_BYTES
from indexer.convert.runs.base import RunInfo, is_file, load_data, load_run_config
from indexer.convert.runs.trainer import METRIC_NAMES, read_metric_files

HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")


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
        return [folder / ".hydra" / n for n in HYDRA_FILES] + [folder / n for n in METRIC_NAMES]

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
        read_metric_files(folder, info)
        return info
