"""``trainer eval``: a run's best.pt on held-out images, the metrics recorded in the run.

The images come from ``--data imagefolder:PATH`` (``PATH/<split>/<class>/*`` when that folder
exists, else ``PATH/<class>/*``), or without ``--data`` from the run's own dataset: its
``test`` split where it has one (Fashion-MNIST's t10k files, an image folder's ``test/``),
or its validation split (``--split val``). Folder class names are matched to the
checkpoint's class list **by name**, never by position; a class the model does not know
is an error.

Recorded in the run folder, every file replaced atomically: the metrics ``test_loss``,
``test_acc``, ``test_top5`` (more than 5 classes), ``test_softmax_std``, ``test_balanced_acc``,
``test_macro_f1`` and per-class ``test_recall_<class>``/``test_precision_<class>`` (as the
validation's, :mod:`trainer.engine.evalmetrics`) go into ``summary.json`` (searchable like ``val_acc``:
``ednaquery find kind=run 'test_acc>0.9'``), what was evaluated into ``run.json``'s
``eval.<split>``, the matrix into ``test_confusion.json`` and ``confusion_matrix_test.png``.
``--split val`` records under ``eval_val_*`` (``eval_val_confusion.json``...) so the training's
``val_*`` metrics and files stay as they were.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ednaquery.errors import UsageError
from ednaquery.fsutil import write_atomic, write_json_atomic
from trainer.ops.restore import RestoredRun, read_images

__all__ = ["EvalReport", "check_recordable", "evaluate", "metric_prefix", "record"]

SPLITS = ("test", "val")
IMAGEFOLDER = "imagefolder:"


@dataclass
class EvalReport:
    """The outcome of one evaluation."""

    split: str
    source: str
    metrics: dict[str, float]
    confusion: np.ndarray
    class_names: list[str]
    images: int
    files: list[Path] = field(default_factory=list)


def metric_prefix(split: str) -> str:
    """``test_`` for the test split; ``eval_val_`` for val (the training's ``val_*`` keep their meaning)."""
    return "test_" if split == "test" else f"eval_{split}_"


# ------------------------------------------------------------------ image sources


Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def _folder_batches(run: RestoredRun, root: Path, batch_size: int) -> tuple[int, Batches]:
    from trainer.engine.data import scan_classes

    classes = scan_classes(root)
    if not classes:
        raise UsageError(f"{root}: no class folders with images (<folder>/<class>/*.png)")
    index = {name: i for i, name in enumerate(run.class_names)}
    unknown = sorted(set(classes) - set(index))
    if unknown:
        raise UsageError(f"{root}: classes the model was not trained on: {', '.join(unknown[:10])}"
                         f"{' ...' if len(unknown) > 10 else ''} (it knows {', '.join(run.class_names[:10])}"
                         f"{' ...' if len(run.class_names) > 10 else ''})")
    items = [(p, index[name]) for name in sorted(classes) for p in classes[name]]

    def batches() -> Batches:
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            yield (read_images([p for p, _ in chunk], run.preprocess),
                   torch.tensor([c for _, c in chunk], dtype=torch.long))

    return len(items), batches()


def _tensor_batches(images: torch.Tensor, labels: torch.Tensor, run: RestoredRun, batch_size: int
                    ) -> tuple[int, Batches]:
    from trainer.engine.data import convert_channels, resize_uint8

    def batches() -> Batches:
        for i in range(0, len(labels), batch_size):
            x = convert_channels(resize_uint8(images[i:i + batch_size], run.preprocess.img_size),
                                 run.preprocess.channels)
            yield x, labels[i:i + batch_size]

    return len(labels), batches()


def _fashion_mnist_test(run: RestoredRun, batch_size: int) -> tuple[int, Batches]:
    from trainer.engine.data import FASHION_MNIST_CLASSES, load_fashion_mnist

    if run.class_names != list(FASHION_MNIST_CLASSES):
        raise UsageError("the run's class list is not Fashion-MNIST's; give --data")
    _, test, _ = load_fashion_mnist(run.cfg.data.root)  # t10k: Fashion-MNIST's official test files
    assert test.images is not None
    return _tensor_batches(test.images, test.labels, run, batch_size)


def _val_batches(run: RestoredRun) -> tuple[int, Batches]:
    from trainer.engine.data import build_data

    data = build_data(run.cfg, device_type="cpu")
    if list(data.class_names) != run.class_names:
        raise UsageError("the run's dataset now has other classes than its checkpoint; give --data")

    def batches() -> Batches:
        data.val_loader.sampler.set_epoch(0)
        yield from data.val_loader

    return data.val_size, batches()


def _source(run: RestoredRun, data: str | None, split: str, batch_size: int) -> tuple[str, int, Batches]:
    """(description, image count, batches of (uint8 images, checkpoint class indices))."""
    if data is None and split == "val":
        n, b = _val_batches(run)
        return f"{run.cfg.data.dataset} (validation split)", n, b
    dataset = data or run.cfg.data.dataset
    if dataset.startswith(IMAGEFOLDER):
        root = Path(dataset[len(IMAGEFOLDER):]).expanduser()
        if not root.is_dir():
            raise UsageError(f"--data: {root} is not a folder")
        sub = root / split
        if sub.is_dir():
            root = sub
        elif data is None:
            raise UsageError(f"{root} has no {split}/ folder; give --data imagefolder:PATH")
        n, b = _folder_batches(run, root, batch_size)
        return f"{IMAGEFOLDER}{root}", n, b
    if dataset == "fashion_mnist" and split == "test":
        n, b = _fashion_mnist_test(run, batch_size)
        return "fashion_mnist (t10k test files)", n, b
    if data is not None:
        raise UsageError(f"--data: {data!r} is not imagefolder:PATH (or fashion_mnist)")
    raise UsageError(f"{dataset} has no {split} split; give --data imagefolder:PATH (or --split val)")


# ------------------------------------------------------------------ evaluate and record


def evaluate(run: RestoredRun, *, data: str | None = None, split: str = "test",
             batch_size: int | None = None) -> EvalReport:
    """Evaluate ``run``'s model on ``split`` of ``data`` (or of its own dataset); nothing is written."""
    if split not in SPLITS:
        raise UsageError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    bs = batch_size or run.cfg.data.eval_batch_size or run.cfg.data.batch_size
    source, _, batches = _source(run, data, split, bs)
    from trainer.engine.evalmetrics import ClassificationExtras

    c = len(run.class_names)
    confusion = torch.zeros(c * c, dtype=torch.long)
    extras = ClassificationExtras(c, torch.device("cpu"))  # the softmax spread, as the training's validation
    loss_sum = top5 = 0.0
    seen = 0
    for x, y in batches:
        logits = run.logits(x, bs)
        extras.add(logits, y)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        pred = logits.argmax(1)
        if c > 5:
            top5 += float((logits.topk(5, dim=1).indices == y[:, None]).any(1).sum())
        confusion += torch.bincount(y * c + pred, minlength=c * c)
        seen += int(y.shape[0])
    if seen == 0:
        raise UsageError(f"{source}: no images to evaluate")
    matrix = confusion.view(c, c).numpy()
    prefix = metric_prefix(split)
    metrics = {f"{prefix}loss": loss_sum / seen, f"{prefix}acc": float(np.trace(matrix)) / seen}
    if c > 5:
        metrics[f"{prefix}top5"] = top5 / seen
    metrics.update(extras.result(matrix, run.class_names, run.cfg.train.per_class_metrics, None, prefix=prefix))
    return EvalReport(split, source, metrics, matrix, list(run.class_names), seen)


def check_recordable(run: RestoredRun) -> None:
    """UsageError for a run whose files are still being rewritten (status running)."""
    if (_read_json(run.run_dir / "run.json") or {}).get("status") == "running":
        raise UsageError(f"run {run.run_id} is still running (its files are being rewritten); "
                         f"evaluate it when it has ended, or use --no-record")


def record(run: RestoredRun, report: EvalReport, store: Any = None) -> list[Path]:
    """Write the report into the run folder (atomically) and re-index the run in ``store`` if given."""
    from trainer.engine.plots import plot_confusion, run_title

    run_dir = run.run_dir
    check_recordable(run)
    status = _read_json(run_dir / "run.json") or {}
    summary = _read_json(run_dir / "summary.json") or {"metrics": {}}
    metrics = summary.setdefault("metrics", {})
    for name, value in report.metrics.items():
        metrics[name] = {"last": value, "best": value}
    write_json_atomic(run_dir / "summary.json", summary)
    status.setdefault("eval", {})[report.split] = {
        "data": report.source, "checkpoint": run.checkpoint, "checkpoint_epoch": run.best.get("epoch"),
        "images": report.images, "at": time.time()}
    write_json_atomic(run_dir / "run.json", status)
    tag = metric_prefix(report.split).rstrip("_")  # test, eval_val: never the training's val_confusion.json
    conf = run_dir / f"{tag}_confusion.json"
    write_atomic(conf, json.dumps({"class_names": report.class_names, "split": report.split,
                                   "data": report.source, "matrix": report.confusion.tolist()}) + "\n")
    png = plot_confusion(report.confusion, report.class_names, run_dir / f"confusion_matrix_{tag}.png",
                         title=run_title(run_dir), split=report.split)
    report.files = [run_dir / "summary.json", run_dir / "run.json", conf, png]
    if store is not None:
        from trainer.recorder import RunRecorder

        if not RunRecorder(store, run_dir).record():
            raise UsageError(f"run {run.run_id}: the metrics are in its folder but the store refused them; "
                             f"`ednaquery index {run_dir}` adds them later")
    return report.files


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
