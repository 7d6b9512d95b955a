"""Pictures of a run: curves.png, confusion_matrix.png, predictions.png.

Drawn from the run folder's files alone (metrics.jsonl, val_confusion.json,
holdout.npz), so ``trainer plot <run-dir>`` can redraw them at any time, with no
model or GPU. Matplotlib's Agg canvas is used directly (no pyplot, no display, no
global state), and each PNG is written atomically.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ednaquery.fsutil import write_atomic
from trainer.engine.runs import read_metrics


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return path


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(r["epoch"])
            ys.append(v)
    return xs, ys


def plot_curves(rows: list[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """Train/val loss, accuracy and lr per epoch."""
    epochs = [r for r in rows if r.get("scope", "epoch") == "epoch" and "epoch" in r]
    fig = _figure(13, 3.8)
    axes = fig.subplots(1, 3)
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        xs, ys = _series(epochs, key)
        if xs:
            axes[0].plot(xs, ys, marker="o", ms=3, label=label)
    axes[0].set_title("loss")
    for key, label in (("train_acc", "train"), ("val_acc", "val"), ("val_top5", "val top-5"),
                       ("val_knn_acc", "val k-NN"), ("val_r2", "val R²")):  # embedding, regression runs
        xs, ys = _series(epochs, key)
        if xs:
            axes[1].plot(xs, ys, marker="o", ms=3, label=label)
    r2 = _series(epochs, "val_r2")[1]
    axes[1].set_title("R²" if r2 else "accuracy")
    axes[1].set_ylim(max(-1.0, min([0.0, *r2])), 1.02)  # R² goes below 0 early on (shown down to -1)
    xs, ys = _series(epochs, "lr")
    if xs:
        axes[2].plot(xs, ys, marker="o", ms=3, color="tab:green")
        if min(ys) > 0 and max(ys) / min(ys) > 50:
            axes[2].set_yscale("log")
    axes[2].set_title("learning rate (epoch start)")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, *, title: str = "",
                   split: str = "validation") -> Path:
    """Confusion matrix (rows: true class, columns: predicted), class names on the axes; ``split`` names
    the images in the title."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    size = min(20.0, max(5.0, 0.45 * n + 2.5))
    fig = _figure(size, size)
    ax = fig.subplots()
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix, dtype=float), where=totals > 0)
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=class_names, rotation=60 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if normalised[i, j] > 0.5 else "black")
    acc = np.trace(matrix) / max(1, matrix.sum())
    ax.set_title(f"{title + ': ' if title else ''}{split} accuracy {acc:.3f}")
    fig.tight_layout()
    return _save(fig, path)


def plot_predictions(images: np.ndarray, labels: np.ndarray, preds: np.ndarray, class_names: list[str],
                     path: Path) -> Path:
    """A grid of holdout images titled 'predicted (true)', green when right, red when wrong."""
    k = len(labels)
    cols = min(8, max(1, k))
    rows = max(1, math.ceil(k / cols))
    fig = _figure(cols * 1.7, rows * 1.9)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= k:
            continue
        img = images[i]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(np.transpose(img[:3], (1, 2, 0)))
        ok = preds[i] == labels[i]
        ax.set_title(f"{class_names[preds[i]]}\n({class_names[labels[i]]})", fontsize=8,
                     color="tab:green" if ok else "tab:red")
    fig.suptitle("predicted (true)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_lr_range(lrs: list[float], losses: list[float], smoothed: list[float], suggestion: float | None,
                  path: Path, *, title: str = "") -> Path:
    """The learning-rate range test (``trainer tune lr``): loss against lr (log scale), the suggestion marked."""
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    ax.plot(lrs, losses, color="tab:blue", alpha=0.3, lw=1, label="loss")
    ax.plot(lrs, smoothed, color="tab:blue", lw=2, label="smoothed")
    if suggestion is not None:
        ax.axvline(suggestion, color="tab:red", ls="--", label=f"suggested lr {suggestion:.2g}")
    ax.set_xscale("log")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:  # the divergence at the end would squash the interesting part
        low, high = min(finite), max(finite[: max(1, len(finite) // 10)] + [min(finite)])
        ax.set_ylim(low - 0.1 * (high - low + 1e-9), high + 0.3 * (high - low + 1e-9))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title or "learning-rate range test")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


#: config keys shown in a run's picture titles, as (label, dotted key)
TITLE_KEYS = (("opt", "optimizer.name"), ("lr", "optimizer.lr"), ("bs", "data.batch_size"),
              ("img", "data.img_size"), ("epochs", "train.epochs"))


def run_title(run_dir: Path) -> str:
    """A run's picture title: its id, model and key params (``… · resnet18 · opt=adamw lr=0.001 bs=64``)."""
    title = ""
    try:
        title = json.loads((run_dir / "run.json").read_text()).get("run_id", "") or ""
    except (OSError, ValueError, AttributeError):
        title = ""
    try:
        import yaml

        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except Exception:  # noqa: BLE001 - a title never stops a plot
        config = None
    if not isinstance(config, dict):
        return title
    model = config.get("model")
    model_name = model.get("name") if isinstance(model, dict) else model
    params = []
    for label, key in TITLE_KEYS:
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, (dict, list)):
            params.append(f"{label}={value}")
    return " · ".join(p for p in (title, str(model_name or ""), " ".join(params)) if p)


def plot_run(run_dir: Path) -> list[Path]:
    """Draw every picture the run folder has data for; returns the files written."""
    run_dir = Path(run_dir)
    written = []
    title = run_title(run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    if any(r.get("scope", "epoch") == "epoch" for r in rows):
        written.append(plot_curves(rows, run_dir / "curves.png", title=title))
    confusion = run_dir / "val_confusion.json"
    if confusion.exists():
        c = json.loads(confusion.read_text())
        written.append(plot_confusion(np.array(c["matrix"]), c["class_names"], run_dir / "confusion_matrix.png",
                                      title=title))
    holdout = run_dir / "holdout.npz"
    if holdout.exists():
        with np.load(holdout, allow_pickle=False) as h:
            written.append(plot_predictions(h["images"], h["labels"], h["preds"],
                                            [str(s) for s in h["class_names"]], run_dir / "predictions.png"))
    return written
