"""MLflow file-store runs: ``mlruns/<experiment_id>/<run_id>/{meta.yaml,params/,metrics/,tags/}``.

- ``meta.yaml``: run id, name, status (``RUNNING``/``FINISHED``/... or MLflow's numbers
  1-5), ``start_time``/``end_time`` in milliseconds, lifecycle stage, user;
- ``params/<name>``: one file per parameter, its value the file's text; the run's config
  is ``{name: value}`` (names with ``/`` live in sub-folders and keep the ``/``). Values
  stay strings as MLflow stores them; numeric strings are coerced by the document layer;
- ``metrics/<name>``: lines ``timestamp value step``: summarised to last (highest step)
  and best (see :mod:`ednaquery.metrics`);
- ``tags/<name>``: into ``info.tags``; ``mlflow.runName`` is the run name.

The experiment's name comes from ``mlruns/<experiment_id>/meta.yaml``. The run id is
MLflow's own. MLflow keeps the config in params, not in a file, so no config document is
made; the run's ``config_id`` is still the content id of its params.
"""
from __future__ import annotations

import os
from pathlib import Path

from ednaquery.fsutil import open_regular
from ednaquery.loaders import DEFAULT_MAX_BYTES, read_upto
from ednaquery.metrics import MetricsSummary, read_mlflow_metric
from indexer.convert.runs.base import RunInfo, is_file, load_data, normalise_status, to_epoch

_STATUS = {1: "running", 2: "queued", 3: "completed", 4: "failed", 5: "interrupted"}
_PARTS = ("params", "metrics", "tags")
MAX_PARAM_BYTES = 1_000_000


def _read_values(folder: Path, info: RunInfo) -> dict[str, str]:
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            name = os.path.relpath(p, folder).replace(os.sep, "/")
            try:
                with open_regular(p, "rb", buffering=0) as fh:
                    data = read_upto(fh, os.fstat(fh.fileno()).st_size + 1, MAX_PARAM_BYTES + 1)
            except OSError as exc:
                info.warnings.append(f"{folder.name}/{name} could not be read: {exc.strerror or exc}")
                continue
            info.touch(p)
            if len(data) > MAX_PARAM_BYTES:
                info.warnings.append(f"{folder.name}/{name} is over {MAX_PARAM_BYTES:,} bytes; not read")
                continue
            out[name] = data.decode("utf-8", "replace")
    return out


class MlflowRecogniser:
    name = "mlflow"

    def owner(self, path: Path) -> Path | None:
        if path.name == "meta.yaml":
            return path.parent if self.detect(path.parent) else None
        text = str(path)
        if not any(f"{os.sep}{part}{os.sep}" in text for part in _PARTS):  # the common case, without pathlib
            return None
        parent = path.parent
        for _ in range(6):  # params/a/b/c: names with '/'
            if parent.name in _PARTS:
                folder = parent.parent
                return folder if self.detect(folder) else None
            if parent == parent.parent:
                break
            parent = parent.parent
        return None

    def detect(self, folder: Path) -> bool:
        return is_file(folder / "meta.yaml") and any((folder / d).is_dir() for d in _PARTS)

    def members(self, folder: Path) -> list[Path]:
        out = [folder / "meta.yaml", folder.parent / "meta.yaml"]
        for part in _PARTS:
            for dirpath, _dirs, filenames in os.walk(folder / part):
                out.extend(Path(dirpath) / fn for fn in filenames)
        return out

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder), format="mlflow-run")
        meta = load_data(folder / "meta.yaml", info, max_bytes=max_bytes)
        if isinstance(meta, dict):
            rid = meta.get("run_id") or meta.get("run_uuid")
            info.run_id = str(rid) if rid else None
            status = meta.get("status")
            info.status = _STATUS.get(status, "unknown") if isinstance(status, int) else normalise_status(status)
            info.started_at = to_epoch(meta.get("start_time"))
            info.ended_at = to_epoch(meta.get("end_time"))
            for key in ("run_name", "experiment_id", "lifecycle_stage", "user_id", "artifact_uri"):
                if meta.get(key) not in (None, ""):
                    info.info[key] = meta[key]
        else:
            info.warnings.append("meta.yaml is missing or not a mapping")
        info.run_id = info.run_id or folder.name
        exp = folder.parent / "meta.yaml"
        if is_file(exp):
            em = load_data(exp, info)
            if isinstance(em, dict) and em.get("name"):
                info.info["experiment"] = em["name"]
        info.config = {k: v.strip() for k, v in _read_values(folder / "params", info).items()}
        tags = {k: v.strip() for k, v in _read_values(folder / "tags", info).items()}
        if tags:
            info.info["tags"] = tags
            if "mlflow.runName" in tags:
                info.info.setdefault("run_name", tags["mlflow.runName"])
        summary = MetricsSummary()
        mdir = folder / "metrics"
        if mdir.is_dir():
            for dirpath, dirnames, filenames in os.walk(mdir):
                dirnames.sort()
                for fn in sorted(filenames):
                    p = os.path.join(dirpath, fn)
                    info.touch(p)
                    name = os.path.relpath(p, mdir).replace(os.sep, "/")
                    read_mlflow_metric(p, name, summary, info.warnings)
        info.take_metrics(summary)
        return info
