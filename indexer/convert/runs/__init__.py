"""Run-output recognisers: which folders are training runs, and what they hold.

One module per layout (see :mod:`indexer.convert.runs.base` for the interface):
:mod:`~indexer.convert.runs.mlflow`, :mod:`~indexer.convert.runs.wandb`,
:mod:`~indexer.convert.runs.lightning`, :mod:`~indexer.convert.runs.trainer` (ours, and
any folder with a config plus metrics files), :mod:`~indexer.convert.runs.hydra_run`.
They are tried in :data:`RECOGNISERS` order; the first that claims a file wins.

A run is one document whose path is the run *folder*; every file of the folder that a
recogniser claims (its config, metrics, summary, status files) maps to that folder, so a
change to any of them re-reads the whole run (:func:`run_folder_of`).
"""
from __future__ import annotations

from pathlib import Path

from indexer.convert.runs.base import Recogniser, RunInfo, derived_run_id
from indexer.convert.runs.hydra_run import HydraRecogniser
from indexer.convert.runs.lightning import LightningRecogniser
from indexer.convert.runs.mlflow import MlflowRecogniser
from indexer.convert.runs.trainer import TrainerRecogniser
from indexer.convert.runs.wandb import WandbRecogniser

RECOGNISERS: list[Recogniser] = [
    MlflowRecogniser(), WandbRecogniser(), LightningRecogniser(), TrainerRecogniser(), HydraRecogniser(),
]

__all__ = ["RECOGNISERS", "Recogniser", "RunInfo", "derived_run_id", "recognise_folder", "run_folder_of"]


def run_folder_of(path: str | Path) -> tuple[Recogniser, Path] | None:
    """The recogniser and run folder a file belongs to, or None if it is not part of a run."""
    p = Path(path)
    for rec in RECOGNISERS:
        try:
            folder = rec.owner(p)
        except OSError:
            folder = None
        if folder is not None:
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
