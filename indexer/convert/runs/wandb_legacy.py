"""Weights & Biases run folders: ``wandb/run-<date>_<time>-<id>/files/...`` (online or offline).

- ``files/config.yaml``: every entry is ``{key: {value: v, desc: ...}}``; the run's config
  is the unwrapped ``{key: v}`` (``wandb_version`` and ``_wandb`` are W&B's own and left
  out). The file's config document carries the unwrapped config, the file as written
  kept beside it.
- ``files/wandb-summary.json``: the final value of each metric (``last``; W&B's own
  ``_step``/``_runtime``/``_timestamp`` give steps and timing). ``best`` needs a series:
  it comes from ``files/wandb-history.jsonl`` when present (older W&B), or from summary
  entries W&B stores as ``{"max": v}``/``{"min": v}`` (``define_metric(summary=...)``).
- ``files/wandb-metadata.json``: start time, host, program, GPU (into ``info``).

W&B's folders record no final state, so the status is ``unknown``. The id is W&B's run id
from the folder name (a resumed run's folders are one run); a folder not named by W&B gets its
start time plus a hash of its path. Newer W&B folders hold a ``.wandb`` file:
:mod:`~indexer.convert.runs.wandb_binary` reads those.
"""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from ednaquery.loaders import DEFAULT_MAX_BYTES
from ednaquery.metrics import MetricsSummary, as_number, read_jsonl
from indexer.convert.runs.base import RunInfo, derived_run_id, is_file, load_data, load_run_config, to_epoch

_FOLDER = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-(\w+)$")
FILES = ("config.yaml", "wandb-summary.json", "wandb-metadata.json", "wandb-history.jsonl")
_META_KEYS = ("host", "program", "codePath", "gpu", "gpu_count", "cpu_count", "python", "os", "username",
              "executable", "git")


def unwrap(raw: Any) -> dict:
    """W&B's ``{key: {value: v, desc: d}}`` config as ``{key: v}``."""
    if not isinstance(raw, dict):
        return {}
    out = {}
    for k, v in raw.items():
        if k in ("wandb_version", "_wandb"):
            continue
        out[k] = v["value"] if isinstance(v, dict) and "value" in v else v
    return out


class WandbRecogniser:
    name = "wandb"

    def owner(self, path: Path) -> Path | None:
        if path.parent.name == "files" and path.name in FILES:
            folder = path.parent.parent
            return folder if self.detect(folder) else None
        return None

    def detect(self, folder: Path) -> bool:
        files = folder / "files"
        if not (is_file(files / "config.yaml") or is_file(files / "wandb-summary.json")):
            return False
        return bool(_FOLDER.match(folder.name)) or is_file(files / "wandb-summary.json") \
            or is_file(files / "wandb-metadata.json")

    def members(self, folder: Path) -> list[Path]:
        return [folder / "files" / n for n in FILES]

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder), format="wandb-run")
        files = folder / "files"
        m = _FOLDER.match(folder.name)
        if m:
            info.info["wandb_id"] = m.group(2)
            info.info["offline"] = folder.name.startswith("offline-")
            stamp = _dt.datetime.strptime(m.group(1), "%Y%m%d_%H%M%S")
            info.started_at = stamp.timestamp()  # W&B names folders in local time
        if is_file(files / "config.yaml"):
            raw = load_run_config(files / "config.yaml", info, max_bytes=max_bytes, resolve=False)
            if raw is not None:
                info.config = unwrap(raw)
        else:
            info.warnings.append("no files/config.yaml in the W&B run folder")
        meta = load_data(files / "wandb-metadata.json", info) if is_file(files / "wandb-metadata.json") else None
        if isinstance(meta, dict):
            started = to_epoch(meta.get("startedAt"))
            if started is not None:
                info.started_at = started
            info.info.update({k: meta[k] for k in _META_KEYS if k in meta})
        summary = MetricsSummary()
        if is_file(files / "wandb-history.jsonl"):
            info.touch(files / "wandb-history.jsonl")
            read_jsonl(str(files / "wandb-history.jsonl"), summary, info.warnings)
        final = load_data(files / "wandb-summary.json", info) if is_file(files / "wandb-summary.json") else None
        if isinstance(final, dict):
            runtime = as_number(final.get("_runtime"))
            wb = final.get("_wandb")
            if runtime is None and isinstance(wb, dict):
                runtime = as_number(wb.get("runtime"))
            if runtime is not None and info.started_at is not None:
                info.ended_at = info.started_at + runtime
            if as_number(final.get("_step")) is not None:
                info.info["steps"] = as_number(final.get("_step"))
            for k, v in final.items():
                if str(k).startswith("_"):
                    continue
                if isinstance(v, dict) and ("_type" in v or not any(x in v for x in ("max", "min", "last", "best"))):
                    continue  # media, histograms, tables
                summary.set_final(str(k), v)
        info.take_metrics(summary)
        if summary.epoch_count:
            info.info["epochs"] = summary.epoch_count
        info.run_id = m.group(2) if m else derived_run_id(folder, info.started_at)
        return info
