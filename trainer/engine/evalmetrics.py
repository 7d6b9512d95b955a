"""Validation metrics beyond loss and accuracy, for each task.

- **classification** (from the confusion matrix, so exactly what scikit-learn's
  ``recall_score``/``precision_score``/``f1_score``/``balanced_accuracy_score`` give on the same
  predictions): ``val_balanced_acc`` (mean recall over the classes present in the validation
  set), ``val_macro_f1`` (mean F1 over the classes that occur as a label or a prediction; an
  undefined precision or recall counts 0), and, for at most ``train.per_class_metrics`` classes,
  ``val_recall_<class>`` and ``val_precision_<class>`` (``<class>``: the class name with every
  run of characters other than letters and digits made one ``_``). ``val_softmax_std`` is
  the standard deviation of each class's softmax probability over the validation images,
  averaged over the classes: near 0 means the model predicts the same thing for every image.
- **regression**: ``val_mae``, ``val_rmse`` and ``val_r2`` (coefficient of determination), each
  averaged over the targets as scikit-learn's ``uniform_average`` does.
- **embedding**: ``val_knn_acc``, the leave-one-out k-NN accuracy (``train.knn_k`` neighbours
  by cosine similarity, majority vote) of the validation embeddings among themselves.

Sums stay on the device until the end of the pass; with DDP they are summed over the ranks
(embeddings are gathered on rank 0 and its k-NN accuracy is shared), so every rank gets the
same numbers.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from trainer.engine.losses import Objective, TermTally

__all__ = [
    "ClassificationExtras",
    "class_keys",
    "classification_metrics",
    "evaluate_task",
    "knn_accuracy",
    "regression_metrics",
    "val_outputs",
]

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]+")


def class_keys(class_names: list[str]) -> list[str]:
    """Metric-name suffixes for the classes: alphanumerics and ``_``, unique (``c<i>`` when nothing is left)."""
    keys: list[str] = []
    for i, name in enumerate(class_names):
        key = _NON_ALNUM.sub("_", str(name)).strip("_") or f"c{i}"
        if key in keys:
            key = f"{key}_{i}"
        keys.append(key)
    return keys


def classification_metrics(confusion: np.ndarray, class_names: list[str], *, per_class_max: int = 20,
                           prefix: str = "val_") -> dict[str, float]:
    """Balanced accuracy, macro-F1 and (up to ``per_class_max`` classes) per-class recall and precision.

    ``confusion[true, pred]`` counts. Follows scikit-learn on the same predictions (module docstring).
    """
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    actual = cm.sum(1)
    predicted = cm.sum(0)
    present = actual > 0
    labelled = present | (predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = actual + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    out: dict[str, float] = {}
    if present.any():
        out[f"{prefix}balanced_acc"] = float(recall[present].mean())
    if labelled.any():
        out[f"{prefix}macro_f1"] = float(f1[labelled].mean())
    if 0 < len(class_names) <= per_class_max:
        for i, key in enumerate(class_keys(class_names)[:len(tp)]):
            if labelled[i]:
                out[f"{prefix}recall_{key}"] = float(recall[i])
                out[f"{prefix}precision_{key}"] = float(precision[i])
    return out


class ClassificationExtras:
    """What a classification evaluation adds to loss/accuracy: softmax spread and per-term losses."""

    def __init__(self, num_classes: int, device: torch.device, objective: Objective | None = None) -> None:
        self.p_sum = torch.zeros(num_classes, device=device, dtype=torch.float64)
        self.p_sq = torch.zeros(num_classes, device=device, dtype=torch.float64)
        self.n = 0
        self.objective = objective
        self.tally = TermTally()

    def add(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """One batch of float logits ``[B, C]`` and labels ``[B]``."""
        p = logits.softmax(1).double()
        self.p_sum += p.sum(0)
        self.p_sq += (p * p).sum(0)
        self.n += logits.shape[0]
        if self.objective is not None and self.objective.log_terms:
            self.objective(logits, y, self.tally)

    def result(self, confusion: np.ndarray, class_names: list[str], per_class_max: int, dist: Any,
               prefix: str = "val_") -> dict[str, float]:
        """``val_softmax_std``, ``val_loss_<term>`` and :func:`classification_metrics` (DDP: whole set);
        ``prefix`` names another split (``test_``: ``trainer eval``)."""
        n = torch.tensor([float(self.n)], device=self.p_sum.device, dtype=torch.float64)
        if dist is not None and dist.enabled:
            stacked = dist.sum_(torch.cat([self.p_sum, self.p_sq, n]))
            c = self.p_sum.shape[0]
            p_sum, p_sq, n = stacked[:c], stacked[c:2 * c], stacked[2 * c:]
        else:
            p_sum, p_sq = self.p_sum, self.p_sq
        count = max(1.0, float(n[0]))
        mean = p_sum / count
        var = (p_sq / count - mean * mean).clamp(min=0.0)
        out = {f"{prefix}softmax_std": float(var.sqrt().mean())}
        out.update(self.tally.means(f"{prefix}loss_", dist))
        out.update(classification_metrics(confusion, class_names, per_class_max=per_class_max, prefix=prefix))
        return out


def regression_metrics(sums: dict[str, np.ndarray], n: float, prefix: str = "val_") -> dict[str, float]:
    """MAE, RMSE and R² from per-target sums (``abs``, ``sq`` of the errors; ``y``, ``y2`` of the targets)."""
    n = max(1.0, float(n))
    mae = sums["abs"] / n
    rmse = np.sqrt(sums["sq"] / n)
    sst = sums["y2"] - sums["y"] ** 2 / n
    r2 = np.where(sst > 0, 1.0 - sums["sq"] / np.where(sst > 0, sst, 1.0), np.where(sums["sq"] > 0, 0.0, 1.0))
    return {f"{prefix}mae": float(mae.mean()), f"{prefix}rmse": float(rmse.mean()), f"{prefix}r2": float(r2.mean())}


def knn_accuracy(z: torch.Tensor, labels: torch.Tensor, k: int = 5, chunk: int = 1024) -> float:
    """Leave-one-out k-NN accuracy of L2-normalised embeddings ``z`` (cosine similarity, majority vote).

    Ties between classes go to the one whose neighbours are more similar in sum.
    """
    n = z.shape[0]
    if n < 2:
        return float("nan")
    z = torch.nn.functional.normalize(z.float(), dim=1)
    k = min(k, n - 1)
    num_classes = int(labels.max()) + 1
    correct = 0
    for start in range(0, n, chunk):
        q = z[start:start + chunk]
        sim = q @ z.T
        rows = torch.arange(q.shape[0], device=z.device)
        sim[rows, rows + start] = float("-inf")
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(q.shape[0], num_classes, device=z.device, dtype=torch.float64)
        votes.scatter_add_(1, labels[idx], torch.ones_like(top, dtype=torch.float64))
        votes.scatter_add_(1, labels[idx], top.double() * 1e-6)  # the tie-break: summed similarity
        correct += int((votes.argmax(1) == labels[start:start + chunk]).sum())
    return correct / n


def val_outputs(trainer: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The model's float outputs and the labels, on the device, batch by batch over the validation loader.

    The one validation forward pass of every task (the caller holds ``torch.no_grad`` and eval mode);
    ``trainer`` as in :func:`evaluate_task`.
    """
    trainer.data.val_loader.sampler.set_epoch(0)
    for x, y in trainer.data.val_loader:
        x = trainer.prepare(x)
        y = y.to(trainer.device, non_blocking=True)
        with trainer.autocast():
            out = trainer.eval_net(x)
        yield out.float(), y


@torch.no_grad()
def evaluate_task(trainer: Any) -> dict[str, float]:
    """Regression and embedding evaluation over ``trainer``'s validation loader (the model in eval mode).

    ``trainer`` is a :class:`trainer.engine.loop.Trainer` (duck-typed: ``data``, ``prepare``,
    ``autocast``, ``eval_net``, ``objective``, ``dist``, ``device``, ``cfg``).
    """
    task = trainer.cfg.task
    dev = trainer.device
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    tally = TermTally()
    sums: dict[str, torch.Tensor] = {}
    embeddings: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    seen = 0
    for out, y in val_outputs(trainer):
        n = y.shape[0]
        loss_sum += trainer.objective(out, y, tally).double() * n
        seen += n
        if task == "regression":
            yt = y.double().view(n, -1)
            err = out.double().view(n, -1) - yt
            batch = {"abs": err.abs().sum(0), "sq": (err * err).sum(0), "y": yt.sum(0), "y2": (yt * yt).sum(0)}
            for key, value in batch.items():
                sums[key] = sums[key] + value if key in sums else value
        else:
            embeddings.append(out.cpu())
            labels.append(y.cpu())
    dist = trainer.dist
    keys = list(sums)
    flat = torch.cat([loss_sum.view(1), torch.tensor([float(seen)], device=dev, dtype=torch.float64),
                      *(sums[k] for k in keys)])
    if dist.enabled:
        flat = dist.sum_(flat)
    seen_all = float(flat[1])
    metrics = {"val_loss": float(flat[0]) / max(1.0, seen_all)}
    metrics.update(tally.means("val_loss_", dist))
    if task == "regression":
        width = (flat.numel() - 2) // max(1, len(keys))
        arrays = {k: flat[2 + i * width: 2 + (i + 1) * width].cpu().numpy() for i, k in enumerate(keys)}
        if arrays:
            metrics.update(regression_metrics(arrays, seen_all))
    else:
        z = torch.cat(embeddings) if embeddings else torch.zeros(0, 1)
        lab = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
        gathered = dist.gather({"z": z, "y": lab}) if dist.enabled else [{"z": z, "y": lab}]
        acc = 0.0
        if gathered is not None:
            acc = knn_accuracy(torch.cat([g["z"] for g in gathered]), torch.cat([g["y"] for g in gathered]),
                               trainer.cfg.train.knn_k)
        if dist.enabled:  # rank 0 computed it; the others add 0
            acc = dist.reduce_stats({"acc": acc if dist.is_main else 0.0})["acc"]
        metrics["val_knn_acc"] = acc
    return metrics
