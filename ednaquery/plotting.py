"""Overlaying the metric curves of several runs in one PNG (``ednaquery plot``, ``trainer plot A B``).

One line per run (per matched metric name), against epoch where the run logged epochs, else step;
the legend names each run by the config values that vary between the plotted runs. Curves are
read by :func:`runs_points`, the one place that knows where they come from: the store's series
table where the store has one (``Store.series``), else the run folder's ``metrics.jsonl`` /
``metrics.csv`` (read with :mod:`ednaquery.metrics`). Matplotlib (the ``train`` extra) is imported only when drawing; its Agg
canvas is used directly (no pyplot, no display) and the PNG is written atomically.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

from ednaquery.documents import original_config
from ednaquery.errors import UsageError
from ednaquery.fsutil import write_atomic
from ednaquery.keys import KeySpec, key_matches
from ednaquery.metrics import MetricsSummary, Point, read_csv, read_jsonl

__all__ = ["MAX_LEGEND_KEYS", "legend_labels", "matching_curves", "plot_overlay", "require_matplotlib",
           "run_points", "runs_points", "varying_keys"]

MAX_LEGEND_KEYS = 4
_METRIC_FILES = (("metrics.jsonl", read_jsonl), ("metrics.csv", read_csv))


def require_matplotlib() -> None:
    """Raise a one-line error naming the extra when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("plotting needs matplotlib, which comes with the 'train' extra: "
                         "pip install 'ednaquery[train]'") from None


def runs_points(docs: Sequence[dict], store: Any = None) -> list[list[Point]]:
    """Every logged value of each run: from the store's series (one query for them all) where it has
    them, else from the run's folder (:func:`run_points`)."""
    stored: dict[str, list[Point]] = {}
    if store is not None and docs:
        for run, metric, step, epoch, value in store.series([d["_id"] for d in docs]):
            stored.setdefault(run, []).append(Point(metric, step, epoch, value))
    return [stored.get(d["_id"]) or run_points(d) for d in docs]


def run_points(doc: dict) -> list[Point]:
    """Every logged value of a run, from its run folder's metrics file ([] when it has none)."""
    from ednaquery.annotations import run_folder

    paths = doc.get("paths") or doc.get("past_paths") or []
    if not paths:
        return []
    folder = run_folder(paths)
    for name, reader in _METRIC_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            summary = MetricsSummary()
            reader(path, summary, [])
            return summary.points
    return []


def matching_curves(points: Sequence[Point], metric: str) -> dict[str, tuple[list[float], list[float], str]]:
    """``{metric name: (xs, ys, "epoch"|"step")}`` for the names ``metric`` stands for: the name itself
    (any case), else every name it matches as a query key (``acc`` -> ``val_acc``, ``train_acc``)."""
    names = list(dict.fromkeys(p.metric for p in points))
    chosen = [n for n in names if n.lower() == metric.lower()]
    if not chosen:
        key = KeySpec(tuple(metric.split(".")))
        chosen = [n for n in names if key_matches(key, tuple(n.split(".")))]
    out: dict[str, tuple[list[float], list[float], str]] = {}
    for name in chosen:
        mine = [p for p in points if p.metric == name]
        by_epoch = [p for p in mine if p.epoch is not None]
        if by_epoch:
            xs: list[float] = [float(p.epoch) for p in by_epoch]  # type: ignore[arg-type]
            out[name] = (xs, [p.value for p in by_epoch], "epoch")
        else:
            stepped = [p for p in mine if p.step is not None]
            use = stepped or mine
            xs = [float(p.step) if p.step is not None else float(i) for i, p in enumerate(use)]
            out[name] = (xs, [p.value for p in use], "step")
    return out


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for k, v in config.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: config if not isinstance(config, list) else tuple(config)} if prefix else {}


def varying_keys(docs: Sequence[dict], limit: int = MAX_LEGEND_KEYS) -> list[str]:
    """The dotted config keys whose values differ between ``docs`` (at most ``limit``, shortest first)."""
    flats = [_flat(original_config(d)) for d in docs]
    keys: dict[str, None] = {}
    for f in flats:
        for k in f:
            keys.setdefault(k, None)
    varying = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    varying.sort(key=lambda k: (k.count("."), len(k)))
    return varying[:limit]


def _short(value: Any) -> str:
    from ednaquery.output import scalar_text

    text = scalar_text(value) if not isinstance(value, tuple) else "[" + ",".join(map(str, value)) + "]"
    return text if len(text) <= 24 else text[:23] + "…"


def legend_labels(docs: Sequence[dict]) -> list[str]:
    """One legend label per run: the varying config values (``lr=1e-3 model=vit``), else its id."""
    keys = varying_keys(docs)
    labels = []
    for d in docs:
        flat = _flat(original_config(d))
        parts = [f"{k.rsplit('.', 1)[-1]}={_short(flat[k])}" for k in keys if k in flat]
        labels.append(" ".join(parts) or d["_id"])
    if len(set(labels)) < len(labels):  # same params: tell the runs apart by id
        labels = [f"{lab} ({d['_id'][-8:]})" for lab, d in zip(labels, docs)]
    return labels


def plot_overlay(docs: Sequence[dict], metric: str, out: str | os.PathLike[str], *,
                 title: str | None = None, points: Sequence[Sequence[Point]] | None = None) -> int:
    """Draw ``metric`` of every run in ``docs`` into one PNG at ``out``; returns how many lines it drew.

    ``points``: each run's points when the caller has them (else :func:`runs_points` reads them from
    the run folders). Raises UsageError when no run has the metric.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = legend_labels(docs)
    drawn = 0
    axis = set()
    all_points = points if points is not None else runs_points(docs)
    for doc, label, pts in zip(docs, labels, all_points):
        curves = matching_curves(pts, metric)
        for name, (xs, ys, x_name) in curves.items():
            shown = label if len(curves) == 1 else f"{label} {name}"
            ax.plot(xs, ys, marker="o" if len(xs) <= 50 else None, ms=3, label=shown)
            axis.add(x_name)
            drawn += 1
    if not drawn:
        raise UsageError(f"none of the {len(docs)} run(s) logged a metric matching {metric!r}")
    ax.set_xlabel(" / ".join(sorted(axis)))
    ax.set_ylabel(metric)
    if axis == {"epoch"}:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or f"{metric}: {drawn} run(s)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(out, buf.getvalue())
    return drawn
