"""k-fold and bootstrap selections of a training set: ``data.folds``/``data.fold`` and ``data.bootstrap``.

Pure functions of the training labels (numpy only, no torch), so the same selection can be
recomputed anywhere (the ensemble's stacking needs a fold's out-of-fold indices):

- :func:`fold_assignment` deals every training image into one of K folds, stratified by
  class and independent of the run's seed (the split seed is fixed, as for ``val_split``
  and ``fraction``): fold ``i`` is the validation set of run ``i``, the other K-1 folds
  its training set, so the K validation sets partition the training set exactly. The
  dataset's own validation split (Fashion-MNIST's test set, digits' ``val_split``) is
  never in a fold.
- :func:`bootstrap_sample` draws a training set of the same size with replacement,
  reproducibly by its seed; the images never drawn are the out-of-bag ones.

:func:`select` applies both to a training set; its :class:`Selection` records the indices
(into the training set it was given) that ``split.json`` keeps in the run folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FOLD_SEED", "SPLIT_FILE", "Selection", "bootstrap_sample", "fold_assignment", "fold_indices",
           "read_split", "select", "write_split"]

#: the fold assignment's fixed seed: folds never depend on ``train.seed``
FOLD_SEED = 2
#: the run-folder file that records which training images a run trained and validated on
SPLIT_FILE = "split.json"
SPLIT_FORMAT = "ednaquery-split"


def fold_assignment(labels: np.ndarray, folds: int) -> np.ndarray:
    """The fold (0..K-1) of each training image: classes dealt round-robin after a fixed shuffle.

    Each class is spread over the folds as evenly as it can be, and the fold sizes differ by
    at most one overall (the deal continues from class to class, as scikit-learn's
    ``StratifiedKFold`` does).
    """
    labels = np.asarray(labels)
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if len(labels) < folds:
        raise ValueError(f"{len(labels)} training images cannot make {folds} folds")
    rng = np.random.RandomState(FOLD_SEED)
    out = np.empty(len(labels), dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        out[idx] = (start + np.arange(len(idx))) % folds
        start = (start + len(idx)) % folds
    return out


def fold_indices(labels: np.ndarray, folds: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` indices of fold ``fold`` (0-based) of ``folds``, each sorted."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold}")
    assigned = fold_assignment(labels, folds)
    return np.flatnonzero(assigned != fold), np.flatnonzero(assigned == fold)


def bootstrap_sample(n: int, seed: int) -> np.ndarray:
    """``n`` indices in ``0..n-1`` drawn with replacement by ``seed`` (the same seed, the same sample)."""
    return np.random.RandomState(seed % 2**32).randint(0, n, size=n).astype(np.int64)


@dataclass
class Selection:
    """Which images of a training set a run trains on and validates on (indices into that set)."""

    #: training images, in order (repeats for a bootstrap sample)
    train: np.ndarray
    #: the fold's validation images; None keeps the dataset's own validation split
    val: np.ndarray | None = None
    #: bootstrap: the training images never drawn (out of bag), sorted
    oob: np.ndarray | None = None
    folds: int | None = None
    fold: int | None = None
    bootstrap: int | None = None

    def record(self, size: int, about: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``split.json`` mapping: the selection plus what its indices refer to."""
        out: dict[str, Any] = {"format": SPLIT_FORMAT, "train_set_size": int(size), **(about or {})}
        if self.folds is not None:
            out.update(folds=self.folds, fold=self.fold, val=[int(i) for i in self.val])  # type: ignore[union-attr]
        if self.bootstrap is not None:
            out.update(bootstrap=self.bootstrap, sample=[int(i) for i in self.train],
                       oob=[int(i) for i in self.oob])  # type: ignore[union-attr]
        else:
            out["train"] = [int(i) for i in self.train]
        return out


def select(labels: np.ndarray, *, folds: int | None = None, fold: int | None = None,
           bootstrap: int | None = None) -> Selection | None:
    """The selection ``data.folds``/``data.fold``/``data.bootstrap`` make of a training set (None: all of it).

    With both, the bootstrap sample is drawn from the fold's training part (its size), and
    the out-of-bag images are those of that part never drawn.
    """
    if folds is None and bootstrap is None:
        return None
    labels = np.asarray(labels)
    train, val = np.arange(len(labels)), None
    if folds is not None:
        train, val = fold_indices(labels, folds, 0 if fold is None else fold)
    sel = Selection(train=train, val=val, folds=folds, fold=fold if folds is not None else None)
    if bootstrap is not None:
        drawn = train[bootstrap_sample(len(train), bootstrap)]
        sel.train, sel.bootstrap = drawn, bootstrap
        sel.oob = np.setdiff1d(train, drawn)
    return sel


def write_split(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``split.json`` into a run folder (atomically)."""
    import json

    from ednaquery.fsutil import write_atomic

    path = Path(run_dir) / SPLIT_FILE
    write_atomic(path, json.dumps(record) + "\n")
    return path


def read_split(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's ``split.json`` (None when the run used the whole training set)."""
    import json

    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
