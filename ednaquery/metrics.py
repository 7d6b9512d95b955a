"""Metric names and series: which way is better, which columns are steps, last/best summaries.

The one home of these rules: the indexer's run readers, :mod:`ednaquery.runfolder`, the
trainer's ``summary.json`` and ``ednaquery find --best`` all use this module, so a metric
gets the same *best* whichever of them looks at it.

Run folders log metrics per step or epoch (``metrics.jsonl``, ``metrics.csv``, MLflow's
``metrics/<name>`` files...). A run document keeps only ``{"last": x, "best": y}`` per
metric (MongoDB's 16 MB document limit; and it is what queries ask for).

**Step columns are not metrics.** A column whose whole name (any case) is one of
:data:`STEP_KEYS` (``epoch``, ``step``, ``global_step``, ``iteration``, ``time``,
``timestamp``, ``_runtime``, ``wall_time``...) indexes the series; the last epoch and step
are reported separately. ``epoch_time_s`` is a metric: only whole names are step columns.

**Direction** (:func:`direction`) comes from the metric name's tokens (split on anything
but letters and digits, and on camelCase: ``val/acc@5`` -> val, acc, 5):

- **lower is better** (``"min"``) if a token is a loss, an error or a time: ``loss``,
  ``error``/``err``, ``mae``, ``mse``, ``rmse``, ``nll``, ``perplexity``/``ppl``, ``cer``,
  ``wer``, ``fid``, ``mape``, ``eer``, ``ece``, ``kl``, ``time``, ``latency``, ``duration``,
  ``seconds``, ``wait``... Checked first: ``top1_err`` is an error, ``epoch_time_s`` a time;
- **higher is better** (``"max"``) if a token is a score: ``acc``/``accuracy``,
  ``top1``/``top5``, ``f1``, ``auc``/``auroc``, ``iou``/``miou``, ``map``/``ap``/``ap50``...,
  ``precision``, ``recall``, ``dice``, ``r2``, ``bleu``, ``rouge``, ``ndcg``, ``mrr``,
  ``psnr``, ``ssim``, ``kappa``, ``mcc``, ``score``, ``reward``...;
- a **rate** ``<what>_per_<unit>`` is judged by ``<what>`` (``loss_per_token``: min,
  ``time_per_step``: min); if that says nothing and the unit is a time (``s``, ``sec``,
  ``second``, ``min``, ``hour``), it is a throughput: ``images_per_s`` is max;
- a **per-class score** ``<split>_<score>_<class>`` (split ``train``/``val``/``test``, score
  ``recall``/``precision``/``f1``, as the trainer logs ``val_recall_<class>``) is a score whatever
  the class is called: ``val_recall_Times_New_Roman`` is max, though ``times`` alone is a time;
- **otherwise** (``lr``, ``grad_norm``, ``throughput``, ``cpu_rss_mb``) the direction is
  unknown (None): a summary keeps only ``last``, no ``best``; ``--best`` maximises.

Numbers (:func:`as_number`): ints, floats and numeric strings; never bools. Non-finite
values (NaN, inf) are skipped and counted in a warning. Metric files over
:data:`MAX_METRICS_BYTES` are not read (a warning says so). In JSONL, a last line without
its newline that is not JSON is a line still being written (torn) and is skipped quietly;
any other line that is not a JSON object is skipped and counted in a warning.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from ednaquery.fsutil import open_regular
from ednaquery.keys import segment_tokens

__all__ = [
    "MAX_METRICS_BYTES", "MAX_POINTS", "STEP_KEYS", "SUMMARY_PICKS", "Direction", "MetricsSummary", "Point",
    "as_number", "direction", "finite_number", "is_step_key", "iter_jsonl", "read_csv", "read_json_metrics",
    "read_jsonl", "read_mlflow_metric", "summary_rank",
]

Direction = Literal["min", "max"]

#: the summary leaves ``--best METRIC`` scores a document by, in order of preference: a run's
#: best epoch, its last epoch, a group's mean over its runs (:mod:`ednaquery.groups`); any other
#: number under the key comes after them (:func:`summary_rank`)
SUMMARY_PICKS = ("best", "last", "mean")


def summary_rank(leaf: str) -> int:
    """Where a metric leaf named ``leaf`` stands for ``--best``: 0 best, 1 last, 2 mean, 3 anything else."""
    name = leaf.lower()
    return SUMMARY_PICKS.index(name) if name in SUMMARY_PICKS else len(SUMMARY_PICKS)

#: Metric files bigger than this are not read (a warning says so).
MAX_METRICS_BYTES = 200_000_000
#: A run keeps at most this many series points (metric values at a step/epoch); past it, last/best
#: are still exact and a warning says the series was cut.
MAX_POINTS = 200_000


class Point(NamedTuple):
    """One logged value of a run's metric, at a step and/or an epoch (either may be unknown).

    A named tuple: cheap to make for every logged value; ``tuple(point)`` is the row a store takes
    (:data:`ednaquery.store.base.SeriesRow`)."""

    metric: str
    step: int | None
    epoch: int | None
    value: float

_MIN_TOKENS = frozenset({
    # losses and errors
    "loss", "losses", "error", "errors", "err", "mae", "mse", "rmse", "msle", "rmsle", "nll", "perplexity",
    "ppl", "cer", "wer", "ter", "fid", "kid", "mape", "smape", "eer", "ece", "brier", "lpips", "regret",
    "distance", "dist", "divergence", "kl",
    # times
    "time", "times", "latency", "duration", "seconds", "secs", "wait",
})
_MAX_TOKENS = frozenset({
    "acc", "accuracy", "f1", "fscore", "f1score", "auc", "auroc", "auprc", "roc", "iou", "miou", "map", "ap",
    "ar", "precision", "prec", "recall", "dice", "r2", "bleu", "rouge", "meteor", "ndcg", "mrr", "psnr",
    "ssim", "kappa", "mcc", "score", "sensitivity", "specificity", "jaccard", "hits", "hit",
    "spearman", "pearson", "correlation", "corr", "sacrebleu", "chrf", "reward", "return",
})
_MAX_NUMBERED = re.compile(r"^(top|acc|ap|map|ar|mar|f|hit|hits|recall|precision|ndcg|r)\d+$")
#: units after ``per`` that make a rate a throughput (higher is better)
_TIME_UNITS = frozenset({"s", "sec", "secs", "second", "seconds", "min", "minute", "minutes", "h", "hour",
                         "hours", "ms"})
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]+")
#: ``<split>_<score>_<class>``: per-class scores, judged by the score, never by the class's name
_SPLITS = frozenset({"train", "val", "valid", "validation", "test"})
_PER_CLASS_SCORES = frozenset({"recall", "precision", "f1"})

#: Columns (whole names, any case) that index a series rather than measure something.
STEP_KEYS = frozenset({
    "epoch", "step", "steps", "global_step", "iteration", "iter", "it", "batch", "_step", "time", "timestamp",
    "_timestamp", "_runtime", "wall_time", "walltime", "elapsed", "created_at", "datetime", "date",
})
_STEP_COUNTERS = frozenset({"step", "global_step", "_step", "steps", "iteration", "iter"})


def is_step_key(name: str) -> bool:
    """True for a column that indexes the series (``epoch``, ``step``, ``time``...), not a metric."""
    return name.lower() in STEP_KEYS


def _by_tokens(tokens: list[str]) -> Direction | None:
    if any(t in _MIN_TOKENS for t in tokens):
        return "min"
    if any(t in _MAX_TOKENS or _MAX_NUMBERED.match(t) for t in tokens):
        return "max"
    return None


def direction(name: str) -> Direction | None:
    """``"min"`` or ``"max"`` (which way is better) for a metric name, None if unknown (module docstring)."""
    tokens = [t for part in _NON_ALNUM.split(name) if part for t in segment_tokens(part)]
    if len(tokens) >= 3 and tokens[0] in _SPLITS and tokens[1] in _PER_CLASS_SCORES:
        return "max"
    if "per" in tokens:
        i = tokens.index("per")
        found = _by_tokens(tokens[:i])
        if found is not None:
            return found
        return "max" if i + 1 < len(tokens) and tokens[i + 1] in _TIME_UNITS else None
    return _by_tokens(tokens)


def as_number(value: Any) -> float | None:
    """A float for ints, floats and numeric strings (NaN/inf included); None otherwise (bools too)."""
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


def finite_number(value: Any) -> float | None:
    """:func:`as_number`, but None for NaN and infinities as well."""
    x = as_number(value)
    return x if x is not None and math.isfinite(x) else None


# ---------------------------------------------------------------- last/best summaries


@dataclass
class _Series:
    direction: Direction | None = None
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
    #: every finite value in logging order, with its step/epoch (at most :data:`MAX_POINTS`)
    points: list[Point] = field(default_factory=list)
    points_dropped: int = 0
    #: the distinct epoch values seen (0- or 1-based alike): their number is the epochs a run trained
    epoch_values: set[float] = field(default_factory=set)

    @property
    def epoch_count(self) -> int | None:
        """How many epochs the values were logged in (a 4-epoch run says 4, whether it counts from 0 or 1)."""
        return len(self.epoch_values) or None

    def add(self, name: str, value: Any, *, step: Any = None, epoch: Any = None) -> None:
        """One value of one metric (later calls are later in time), at ``step``/``epoch`` if known."""
        e = _whole(epoch)
        if self._add(name, value, _whole(step), e) and e is not None and len(self.epoch_values) < MAX_POINTS:
            self.epoch_values.add(float(e))

    def _add(self, name: str, value: Any, step: int | None, epoch: int | None) -> bool:
        """Record one value; True when it was a finite number (the caller notes its epoch: :meth:`add_record`
        notes the row's epoch field once, not once per metric)."""
        x = as_number(value)
        if x is None:
            return False
        s = self.series.get(name)
        if s is None:
            s = self.series[name] = _Series(direction(name))
        if not math.isfinite(x):
            s.nonfinite += 1
            return False
        s.count += 1
        s.last = x
        if len(self.points) < MAX_POINTS:
            self.points.append(Point(name, step, epoch, x))
        else:
            self.points_dropped += 1
        d = s.direction
        if d == "min":
            s.best = x if s.best is None else min(s.best, x)
        elif d == "max":
            s.best = x if s.best is None else max(s.best, x)
        return True

    def add_record(self, record: dict) -> None:
        """A logged row: every numeric field is a metric except the step columns."""
        step = epoch = None
        for k, v in record.items():
            low = str(k).lower()
            if low == "epoch":
                epoch = v
            elif low in _STEP_COUNTERS and step is None:
                step = v
        step, epoch = _whole(step), _whole(epoch)
        for k, v in record.items():
            key = str(k)
            if is_step_key(key):
                x = finite_number(v)
                if x is not None:
                    low = key.lower()
                    if low == "epoch":
                        self.last_epoch = x
                        if len(self.epoch_values) < MAX_POINTS:
                            self.epoch_values.add(x)
                    elif low in _STEP_COUNTERS:
                        self.last_step = x
                continue
            if isinstance(v, dict):
                for sk, sv in v.items():  # {"val": {"acc": 0.9}} -> val/acc
                    if not isinstance(sv, (dict, list)):
                        self._add(f"{key}/{sk}", sv, step, epoch)
                continue
            self._add(key, v, step, epoch)

    def set_final(self, name: str, value: Any) -> None:
        """A final value from a summary file: it is ``last``; ``best`` only if given."""
        if isinstance(value, dict):
            out: dict[str, float] = {}
            for k in ("last", "best", "max", "min", "mean"):
                x = finite_number(value.get(k))
                if x is not None:
                    out["best" if k in ("max", "min") and "best" not in value else k] = x
            if out:
                self.final[name] = out
            return
        x = finite_number(value)
        if x is not None:
            self.final[name] = {"last": x}

    def result(self) -> dict[str, dict[str, float]]:
        """``{metric: {"last": x, "best": y}}`` (``best`` only where the direction is known or given)."""
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
        """Warnings: metrics that had NaN/inf values (with counts); a series cut at :data:`MAX_POINTS`."""
        out = []
        bad = {n: s.nonfinite for n, s in self.series.items() if s.nonfinite}
        if bad:
            shown = ", ".join(f"{n} ({c})" for n, c in sorted(bad.items())[:10])
            out.append(f"non-finite metric values (NaN/inf) were skipped: {shown}")
        if self.points_dropped:
            out.append(f"metric series cut at {MAX_POINTS} points ({self.points_dropped} later values kept "
                       "only in last/best)")
        return out


def _whole(value: Any) -> int | None:
    """A step or epoch as an int (``3.0`` -> 3), or None where it is missing or not a whole number."""
    x = finite_number(value)
    return int(x) if x is not None and x == int(x) else None


# ---------------------------------------------------------------- reading metric files


def _too_big(path: str | os.PathLike[str], warnings: list[str], max_bytes: int | None) -> bool:
    """True (with a warning) when the file cannot be read or is over ``max_bytes`` (None: no limit)."""
    name = os.path.basename(os.fspath(path))
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        warnings.append(f"{name} could not be read: {exc.strerror or exc}")
        return True
    if max_bytes is not None and size > max_bytes:
        warnings.append(f"{name} is {size:,} bytes, over {max_bytes:,}; not read")
        return True
    return False


def iter_jsonl(path: str | os.PathLike[str], warnings: list[str], *,
               max_bytes: int | None = MAX_METRICS_BYTES) -> Iterator[dict]:
    """The JSON objects of a JSONL file, one per line.

    A torn last line (no newline yet: a run still writing) is skipped quietly; other lines that
    are not JSON objects are skipped and counted in one warning. A file over ``max_bytes`` (None:
    no limit) or unreadable yields nothing and adds a warning.
    """
    name = os.path.basename(os.fspath(path))
    if _too_big(path, warnings, max_bytes):
        return
    bad = 0
    try:
        with open_regular(path, "r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                text = line.strip()
                if not text:
                    continue
                try:
                    rec = json.loads(text)
                except ValueError:
                    if line.endswith("\n"):  # a line without its newline is the torn last one
                        bad += 1
                    continue
                if isinstance(rec, dict):
                    yield rec
                else:
                    bad += 1
    except OSError as exc:
        warnings.append(f"{name} could not be read: {exc.strerror or exc}")
    if bad:
        warnings.append(f"{name}: {bad} line{'s' if bad > 1 else ''} not a JSON object, skipped")


def read_jsonl(path: str | os.PathLike[str], summary: MetricsSummary, warnings: list[str]) -> None:
    """``metrics.jsonl`` and the like: one JSON object per line, each a logged row."""
    for rec in iter_jsonl(path, warnings):
        summary.add_record(rec)


def read_csv(path: str | os.PathLike[str], summary: MetricsSummary, warnings: list[str]) -> None:
    """``metrics.csv`` (Lightning's CSVLogger and the like): a header row, sparse numeric rows."""
    if _too_big(path, warnings, MAX_METRICS_BYTES):
        return
    try:
        with open_regular(path, "r", newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                return
            names = [h.strip() for h in header]
            for row in reader:
                summary.add_record({n: v for n, v in zip(names, row) if v != ""})
    except (OSError, csv.Error) as exc:
        warnings.append(f"{os.path.basename(os.fspath(path))} could not be read: {exc}")


def read_json_metrics(data: Any, summary: MetricsSummary) -> None:
    """``metrics.json``: a list of records, a mapping of series (lists), or of final values."""
    if isinstance(data, list):
        for rec in data:
            if isinstance(rec, dict):
                summary.add_record(rec)
    elif isinstance(data, dict):
        for k, v in data.items():
            if is_step_key(str(k)):
                continue
            if isinstance(v, list):
                for x in v:
                    summary.add(str(k), x)
            else:
                summary.set_final(str(k), v)


def read_mlflow_metric(path: str | os.PathLike[str], name: str, summary: MetricsSummary,
                       warnings: list[str]) -> None:
    """An MLflow file-store metric: lines ``timestamp value step``; last = highest step, then time."""
    if _too_big(path, warnings, MAX_METRICS_BYTES):
        return
    rows: list[tuple[float, float, float]] = []
    try:
        with open_regular(path, "r", encoding="utf-8", errors="replace") as fh:
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
