"""Run-output recognisers: which folders are training runs, and what they hold.

One module per layout (see :mod:`indexer.convert.runs.base` for the interface):
:mod:`~indexer.convert.runs.mlflow_files` (file store), :mod:`~indexer.convert.runs.wandb_binary`
(``.wandb`` files, wandb >= 0.17), :mod:`~indexer.convert.runs.wandb_legacy` (older W&B folders),
:mod:`~indexer.convert.runs.tensorboard` (event files, Lightning's default logger),
:mod:`~indexer.convert.runs.lightning_csv` (CSVLogger), :mod:`~indexer.convert.runs.ours` (ours,
and any folder with a config plus metrics files), :mod:`~indexer.convert.runs.hydra`.
They are tried in :data:`RECOGNISERS` order; the first that claims a file wins. MLflow's
SQLite store is a file, not a folder: :mod:`~indexer.convert.runs.mlflow_sqlite`.

A run is its folder: one document whose path is the run *folder*. Every file in the folder
(and in its tool's sub-folders: ``.hydra/``, W&B's ``files/``, MLflow's ``params/`` ...) is
part of the run, never a config document of its own; a change to any file a recogniser reads
re-reads the whole run (:func:`run_folder_of`).
"""
from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from pathlib import Path

from ednaquery.loaders import DEFAULT_MAX_BYTES
from indexer.convert.runs.base import Recogniser, RunInfo, derived_run_id
from indexer.convert.runs.hydra import HydraRecogniser, is_multirun_file
from indexer.convert.runs.lightning_csv import LightningRecogniser
from indexer.convert.runs.mlflow_files import MlflowRecogniser
from indexer.convert.runs.ours import TrainerRecogniser
from indexer.convert.runs.tensorboard import TensorboardRecogniser
from indexer.convert.runs.wandb_binary import WandbBinaryRecogniser
from indexer.convert.runs.wandb_legacy import WandbRecogniser

RECOGNISERS: list[Recogniser] = [
    MlflowRecogniser(), WandbBinaryRecogniser(), WandbRecogniser(), TensorboardRecogniser(),
    LightningRecogniser(), TrainerRecogniser(), HydraRecogniser(),
]

__all__ = ["IGNORED", "RECOGNISERS", "TOOL_SUBFOLDERS", "Recogniser", "RunInfo", "clear_cache", "derived_run_id",
           "read_run", "recognise_folder", "run_folder_of", "run_signature"]

#: sub-folders a tool keeps inside its run folder: files in them belong to the run above
TOOL_SUBFOLDERS = frozenset({".hydra", "files", "params", "metrics", "tags", "artifacts", "checkpoints"})
#: :func:`run_folder_of`'s answer for a file that is a tool's bookkeeping, not a config or a run
IGNORED = Path("/")

#: runs remembered by :func:`read_run` (each entry is one run's summary, a few KB)
CACHE_SIZE = 256
_cache: OrderedDict[tuple[str, str], tuple[tuple, RunInfo]] = OrderedDict()
_lock = threading.Lock()


def run_folder_of(path: str | Path, folders: dict[Path, Recogniser | None] | None = None,
                  ) -> tuple[Recogniser | None, Path] | None:
    """The recogniser and run folder a file belongs to, or None if it is not part of a run.

    First the layouts' own file names; then any file directly in a run folder (our trainer's
    ``val_confusion.json``) or in a tool's sub-folder of one. MLflow's experiment
    ``meta.yaml`` and a Hydra multirun's ``multirun.yaml`` give ``(None, IGNORED)``: neither
    is a config or a run of its own (a multirun's jobs read theirs). ``folders``: a caller's
    memo of :func:`recognise_folder` answers, kept over a few files at once (the scan's chunks),
    so that the files of one big folder do not each list it again.
    """
    p = path if isinstance(path, Path) else Path(path)
    for rec in RECOGNISERS:
        try:
            folder = rec.owner(p)
        except OSError:
            folder = None
        if folder is not None:
            return rec, folder
    if (p.name == "meta.yaml" and p.parent.parent.name == "mlruns") or is_multirun_file(p):
        return None, IGNORED  # read by the runs it belongs to
    candidates = [p.parent]
    if p.parent.name in TOOL_SUBFOLDERS:
        candidates.append(p.parent.parent)
    for folder in candidates:
        if folders is None:
            rec = recognise_folder(folder)
        elif folder in folders:
            rec = folders[folder]
        else:
            rec = folders[folder] = recognise_folder(folder)
        if rec is not None:
            return rec, folder
    return None


def recognise_folder(folder: str | Path) -> Recogniser | None:
    """The recogniser whose layout ``folder`` is, or None."""
    f = Path(folder)
    for rec in RECOGNISERS:
        try:
            if rec.detect(f):
                return rec
        except OSError:
            continue
    return None


def run_signature(rec: Recogniser, folder: Path) -> tuple:
    """(path, size, mtime_ns, inode) of each file ``rec`` reads in ``folder``: a run changed if this did."""
    sig = []
    for p in rec.members(folder):
        try:
            st = os.stat(p)
        except OSError:
            continue
        sig.append((str(p), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(sorted(sig))


def read_run(rec: Recogniser, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
    """``rec.read(folder)``, reusing the last read while none of the run's files changed.

    Every file of a run folder triggers a conversion of the whole run (an MLflow run has
    one file per param and per metric), so a scan would otherwise read each run once per
    file it holds.
    """
    key = (rec.name, str(folder))
    sig = run_signature(rec, folder)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == sig:
            _cache.move_to_end(key)
            return _copy(hit[1])
    info = rec.read(folder, max_bytes=max_bytes)
    with _lock:
        _cache[key] = (sig, _copy(info))
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return info


def _copy(info: RunInfo) -> RunInfo:
    """A deep copy, but for the series: its points are immutable, so a new list of the same ones."""
    memo: dict[int, object] = {id(info.series): list(info.series)}
    if info.trainer_run is not None:
        memo[id(info.trainer_run.series)] = list(info.trainer_run.series)
    return copy.deepcopy(info, memo)


def clear_cache() -> None:
    """Forget every cached run read (tests)."""
    with _lock:
        _cache.clear()
