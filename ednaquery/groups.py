"""Groups of runs (k-fold cross-validation, bagging) on disk and as ``kind=group`` documents.

A group is a file, ``<runs root>/<group id>/group.json`` (written atomically), so the
filesystem stays the source of truth and a walk rebuilds the index::

    {"format": "ednaquery-group", "format_version": 1, "group_id": "cv-20261204-221530-3fa9",
     "method": "cv", "folds": 5,            # or "method": "bag", "n": 5
     "config_id": "<base config id>", "config": {...the base config...},
     "created_at": 1796420130.2, "updated_at": ...,
     "members": [{"config_id": "...", "job_id": "job-...", "fold": 0,      # or "bootstrap": SEED
                  "run_id": "20261204-221602-9c1e", "status": "completed",
                  "metrics": {"val_acc": 0.93, "val_loss": 0.21, ...}}, ...],
     "status": "running", "metrics": {"val_acc": {"mean": 0.93, "std": 0.01}, ...}}

A member's metric value is its run's summary as ``--best`` scores a run: the best epoch's
value, else the last (:func:`member_value`). The group's ``metrics`` are the mean and the
sample standard deviation (n-1; 0 for one run) of those values over the members whose run
*completed* (:func:`aggregate`); :func:`group_document` recomputes them from the members, so
the document always agrees with the members the file lists. Who fills the members in is
the trainer (``trainer.ops.groups.refresh_group``, run after each member finishes).

The document (``kind=group``): the base config's leaves, so ``kind=group model=resnet18``
works; ``metrics.<name>.mean`` / ``.std`` (``ednaquery find kind=group 'val_acc.mean>0.9'``;
``--best val_acc`` scores a group by its mean); ``group.method``, ``group.size``,
``group.completed``, ``group.runs`` (its run ids: ``kind=group group.runs=<run id>`` finds a run's
group), ``group.configs``; ``status`` (queued, running, completed, failed) and the members.
"""
from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

from ednaquery.annotations import read_annotation
from ednaquery.documents import make_group_document
from ednaquery.errors import LoadError
from ednaquery.fsutil import head_has_marker, write_json_atomic
from ednaquery.loaders import DEFAULT_MAX_BYTES, load_file
from ednaquery.metrics import finite_number

__all__ = ["GROUP_FILE", "GROUP_FORMAT", "aggregate", "group_document", "group_status", "is_group_file",
           "member_value", "read_group", "write_group"]

GROUP_FILE = "group.json"
GROUP_FORMAT = "ednaquery-group"
GROUP_FORMAT_VERSION = 1
#: member states that will not change any more
FINAL = frozenset({"completed", "failed", "interrupted", "cancelled"})


def is_group_file(path: str | os.PathLike[str]) -> bool:
    """True for a ``group.json`` that says it is ours (cheap: the name, then the first 4 KB)."""
    return Path(path).name == GROUP_FILE and head_has_marker(path, GROUP_FORMAT)


def member_value(summary: Any) -> float | None:
    """One run's number for a metric summary ``{"last": x, "best": y}``: best, else last (as ``--best``)."""
    if not isinstance(summary, dict):
        return finite_number(summary)
    for pick in ("best", "last"):
        x = finite_number(summary.get(pick))
        if x is not None:
            return x
    return None


def aggregate(members: list[dict]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` over the completed members' metric values (sample std, 0 for one)."""
    values: dict[str, list[float]] = {}
    for m in members:
        if m.get("status") != "completed" or not isinstance(m.get("metrics"), dict):
            continue
        for name, v in m["metrics"].items():
            x = finite_number(v)
            if x is not None:
                values.setdefault(str(name), []).append(x)
    out: dict[str, dict[str, float]] = {}
    for name, xs in sorted(values.items()):
        std = statistics.stdev(xs) if len(xs) > 1 else 0.0
        out[name] = {"mean": statistics.fmean(xs), "std": std if math.isfinite(std) else 0.0}
    return out


def group_status(members: list[dict]) -> str:
    """completed (every member's run completed), failed (all ended, not all completed), running
    (some started), or queued."""
    states = [m.get("status") or "queued" for m in members]
    if states and all(s == "completed" for s in states):
        return "completed"
    if states and all(s in FINAL for s in states):
        return "failed"
    return "running" if any(s != "queued" for s in states) else "queued"


def read_group(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The mapping a ``group.json`` holds; :class:`LoadError` when it is unreadable or not a group."""
    loaded = load_file(path, max_bytes=max_bytes, format="json")
    record = loaded.documents[0] if loaded.documents else None
    if not isinstance(record, dict) or record.get("format") != GROUP_FORMAT:
        raise LoadError(f"not an {GROUP_FORMAT} file", path=str(path))
    if not isinstance(record.get("group_id"), str) or not isinstance(record.get("members"), list):
        raise LoadError("a group file needs group_id and a members list", path=str(path))
    return record


def write_group(path: str | os.PathLike[str], record: dict) -> None:
    """Write ``group.json`` atomically, its status and metrics recomputed from its members."""
    members = [m for m in record.get("members") or [] if isinstance(m, dict)]
    record = dict(record, format=GROUP_FORMAT, format_version=GROUP_FORMAT_VERSION,
                  status=group_status(members), metrics=aggregate(members))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json_atomic(path, record)


def group_document(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The ``kind=group`` document of a ``group.json`` (its path is the file), with the user's tags and note
    from its annotations sidecar (:mod:`ednaquery.annotations`): the indexer and the trainer make the same one."""
    p = os.path.abspath(path)
    record = read_group(p, max_bytes=max_bytes)
    members = [m for m in record["members"] if isinstance(m, dict)]
    runs = [str(m["run_id"]) for m in members if m.get("run_id")]
    info: dict[str, Any] = {"method": record.get("method"), "size": len(members),
                            "completed": sum(1 for m in members if m.get("status") == "completed"),
                            "runs": runs, "configs": [str(m.get("config_id")) for m in members]}
    for key in ("folds", "n"):
        if record.get(key) is not None:
            info[key] = record[key]
    status = group_status(members)
    updated = finite_number(record.get("updated_at"))
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    doc = make_group_document(
        record["group_id"], config=config, config_id=record.get("config_id"), path=p, status=status,
        metrics=aggregate(members), info=info, members=members, started_at=finite_number(record.get("created_at")),
        ended_at=updated if status in ("completed", "failed") else None, format=GROUP_FORMAT,
        mtime=os.stat(p).st_mtime)
    ann = read_annotation(p, is_run=False)  # the user's tags and note, whichever writer indexes it
    if ann:
        doc["annotations"] = ann
    return doc
