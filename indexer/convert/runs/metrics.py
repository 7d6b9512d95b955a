"""Metric series -> summary: the last and the best value of each metric, never the series.

Run folders log metrics per step or epoch (``metrics.jsonl``, ``metrics.csv``, MLflow's
``metrics/<name>`` files...). A run document keeps only ``{"last": x, "best": y}`` per
metric (MongoDB's 16 MB document limit; and it is what queries ask for).

Which value is *best* depends on the metric's name (:func:`direction`), by its tokens
(split on anything but letters and digits, and on camelCase: ``val/acc@5`` -> val, acc, 5):

- **lower is better** if a token is a loss or error: ``loss``, ``error``/``err``, ``mae``,
  ``mse``, ``rmse``, ``nll``, ``perplexity``/``ppl``, ``cer``, ``wer``, ``fid``, ``mape``,
  ``eer``, ``ece``... (checked first: ``top1_err`` is an error);
- **higher is better** if a token is a score: ``acc``/``accuracy``, ``top1``/``top5``,
  ``f1``, ``auc``/``auroc``, ``iou``/``miou``, ``map``/``ap``/``ap50``..., ``precision``,
  ``recall``, ``dice``, ``r2``, ``bleu``, ``rouge``, ``ndcg``, ``mrr``, ``psnr``, ``ssim``,
  ``kappa``, ``mcc``, ``score``...;
- otherwise (``lr``, ``grad_norm``, ``throughput``) there is no best, only ``last``.

Non-finite values (NaN, inf) are skipped and counted. Step-like columns (``epoch``,
``step``, ``_step``, ``timestamp``...) are not metrics; the last epoch and step are
reported separately.
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ednaquery.keys import segment_tokens
from ednaquery.runfolder import iter_jsonl

#: Metric files bigger than this are not read (a warning says so).
MAX_METRICS_BYTES = 200_000_000

_MIN_TOKENS = frozenset({
    "loss", "losses", "error", "errors", "err", "mae", "mse", "rmse", "msle", "rmsle", "nll", "perplexity",
    "ppl", "cer", "wer", "ter", "fid", "kid", "mape", "smape", "eer", "ece", "brier", "lpips", "regret",
    "distance", "dist", "divergence", "kl",
})
_MAX_TOKENS = frozenset({
    "acc", "accuracy", "f1", "fscore", "f1score", "auc", "auroc", "auprc", "roc", "iou", "miou", "map", "ap",
    "ar", "precision", "prec", "recall", "dice", "r2", "bleu", "rouge", "meteor", "ndcg", "mrr", "psnr",
    "ssim", "ms_ssim", "kappa", "mcc", "score", "sensitivity", "specificity", "jaccard", "hits", "hit",
    "spearman", "pearson", "correlation", "corr", "sacrebleu", "chrf", "reward", "return",
})
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_MAX_NUMBERED = re.compile(r"^(top|acc|ap|map|ar|mar|f|hit|hits|recall|precision|ndcg|r)\d+$")

#: Columns that index a series rather than measure something.
STEP_KEYS = frozenset({
    "epoch", "step", "steps", "global_step", "iteration", "iter", "it", "batch", "_step", "time", "timestamp",
    "_timestamp", "_runtime", "wall_time", "walltime", "elapsed", "created_at", "datetime", "date",
})


def direction(name: str) -> str | None:
    """``"min"`` or ``"max"`` (which way is better) for a metric name, or None if unknown."""
    tokens = [t for part in _NON_ALNUM.split(name) if part for t in segment_tokens(part)]
    if any(t in _MIN_TOKENS for t in tokens):
        return "min"
    if any(t in _MAX_TOKENS or _MAX_NUMBERED.match(t) for t in tokens):
        return "max"
    return None


def as_number(value: Any) -> float | None:
    """A float for ints, floats and numeric strings; None for anything else (bools included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        try:
            return float(s)
        except ValueError:
            return None
    return None


@dataclass
class _Series:
    last: float | None = None
    best: float | None = None
    count: int = 0
    nonfinite: int = 0


@dataclass
class MetricsSummary:
    """Accumulates metric values (in logging order) into last/best per metric."""

    series: dict[str, _Series] = field(default_factory=dict)
    last_epoch: float | None = None
    last_step: float | None = None
    final: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        """One value of one metric (later calls are later in time)."""
        x = as_number(value)
        if x is None:
            return
        s = self.series.setdefault(name, _Series())
        if not math.isfinite(x):
            s.nonfinite += 1
            return
        s.count += 1
        s.last = x
        d = direction(name)
        if d == "min":
            s.best = x if s.best is None else min(s.best, x)
        elif d == "max":
            s.best = x if s.best is None else max(s.best, x)

    def add_record(self, record: dict) -> None:
        """A logged row: every numeric field is a metric except the step-like ones."""
        for k, v in record.items():
            key = str(k)
            low = key.lower()
            if low in STEP_KEYS:
                x = as_number(v)
                if x is not None and math.isfinite(x):
                    if low == "epoch":
                        self.last_epoch = x
                    elif low in ("step", "global_step", "_step", "steps", "iteration", "iter"):
                        self.last_step = x
                continue
            if isinstance(v, dict):
                for sk, sv in v.items():  # {"val": {"acc": 0.9}} -> val/acc
                    if not isinstance(sv, (dict, list)):
                        self.add(f"{key}/{sk}", sv)
                continue
            self.add(key, v)

    def set_final(self, name: str, value: Any) -> None:
        """A final value from a summary file: it is ``last``; ``best`` only if given."""
        if isinstance(value, dict):
            out: dict[str, float] = {}
            for k in ("last", "best", "max", "min", "mean"):
                x = as_number(value.get(k))
                if x is not None and math.isfinite(x):
                    out["best" if k in ("max", "min") and "best" not in value else k] = x
            if out:
                self.final[name] = out
            return
        x = as_number(value)
        if x is not None and math.isfinite(x):
            self.final[name] = {"last": x}

    def result(self) -> dict[str, dict[str, float]]:
        """``{metric: {"last": x, "best": y}}`` (``best`` only where a series gives it)."""
        out: dict[str, dict[str, float]] = {}
        for name, s in self.series.items():
            if s.last is None:
                continue
            out[name] = {"last": s.last}
            if s.best is not None:
                out[name]["best"] = s.best
        for name, fin in self.final.items():
            merged = dict(out.get(name, {}))
            merged.update(fin)
            if "best" not in fin and name in out and "best" in out[name]:
                d = direction(name)
                b, last = out[name]["best"], fin.get("last")
                if last is not None and d is not None:
                    merged["best"] = min(b, last) if d == "min" else max(b, last)
            out[name] = merged
        return out

    def warnings(self) -> list[str]:
        bad = {n: s.nonfinite for n, s in self.series.items() if s.nonfinite}
        if not bad:
            return []
        shown = ", ".join(f"{n} ({c})" for n, c in sorted(bad.items())[:10])
        return [f"non-finite metric values (NaN/inf) were skipped: {shown}"]


def _too_big(path: str, warnings: list[str]) -> bool:
    try:
        size = os.path.getsize(path)
    except OSError:
        return True
    if size > MAX_METRICS_BYTES:
        warnings.append(f"{os.path.basename(path)} is {size:,} bytes, over {MAX_METRICS_BYTES:,}; not read")
        return True
    return False


def read_jsonl(path: str, summary: MetricsSummary, warnings: list[str]) -> None:
    """``metrics.jsonl``: one JSON object per line; a torn last line (still being written) is ignored."""
    if _too_big(path, warnings):
        return
    for rec in iter_jsonl(path, warnings):
        summary.add_record(rec)


def read_csv(path: str, summary: MetricsSummary, warnings: list[str]) -> None:
    """``metrics.csv`` (Lightning's CSVLogger and the like): a header row, sparse numeric rows."""
    if _too_big(path, warnings):
        return
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                return
            names = [h.strip() for h in header]
            for row in reader:
                summary.add_record({n: v for n, v in zip(names, row) if v != ""})
    except (OSError, csv.Error) as exc:
        warnings.append(f"{os.path.basename(path)} could not be read: {exc}")


def read_json_metrics(data: Any, summary: MetricsSummary) -> None:
    """``metrics.json``: a list of records, a mapping of series (lists), or of final values."""
    if isinstance(data, list):
        for rec in data:
            if isinstance(rec, dict):
                summary.add_record(rec)
    elif isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, list):
                if str(k).lower() in STEP_KEYS:
                    continue
                for x in v:
                    summary.add(str(k), x)
            elif str(k).lower() not in STEP_KEYS:
                summary.set_final(str(k), v)


def read_mlflow_metric(path: str, name: str, summary: MetricsSummary, warnings: list[str]) -> None:
    """An MLflow file-store metric: lines ``timestamp value step``; last = highest step, then time."""
    if _too_big(path, warnings):
        return
    rows: list[tuple[float, float, float]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 2:
                    continue
                ts, value = as_number(parts[0]), as_number(parts[1])
                step = as_number(parts[2]) if len(parts) > 2 else 0.0
                if ts is None or value is None:
                    continue
                rows.append((step or 0.0, ts, value))
    except OSError as exc:
        warnings.append(f"metric {name} could not be read: {exc.strerror or exc}")
        return
    rows.sort(key=lambda r: (r[0], r[1]))
    for _, _, value in rows:
        summary.add(name, value)
