"""Looking at runs: a 10k-run store with 30 epochs each, and how fast the views of it come.

Usage: ``.venv/bin/python bench/ui_latency.py [--runs 10000] [--epochs 30] [--reps 5]``

Setup writes ``--runs`` run folders (``config.yaml`` from bench/sweepgen.py and a
``metrics.jsonl`` of ``--epochs`` rows, 5 metrics each) and indexes them with the one-shot scan
(``ednaquery index``; it also fills the series table): files/s. Unless ``--no-baseline``, the same
folders are scanned again into a fresh store with the series left out, so that what the series
cost shows apart from what reading run folders costs (the >= 2,000 files/s scan target is a config
sweep's: bench/index_throughput.py).

Figures (each a function in :data:`MEASURES`, given the :class:`Bench`; add one to extend):

- ``to_pandas`` of every run (``ix.find("kind=run").to_pandas()``, target <= 1 s), and as a
  ratio against a reference measured in the same run on the same records:
  ``pandas.json_normalize`` of their configs (what one would write with plain pandas);
- ``find`` of every run (the records the frame is made from);
- ``ix.series`` of a 20-run overlay of one metric (the library side of the overlay view);
- ``ednaquery ui``'s server time, p50/p95: the search page with 50 rows and a 20-run overlay, target
  <= 300 ms (bench/ui_server.py).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweepgen import make_config
from ui_server import server_times

from ednaquery.api import Index
from ednaquery.store import open_store
from indexer.scan import scan

METRICS = ("train_loss", "val_loss", "val_acc", "lr", "epoch_time_s")


@dataclass
class Figure:
    """One printed result."""

    name: str
    value: float
    unit: str
    target: str = ""
    note: str = ""

    def line(self) -> str:
        target = f"  (target {self.target})" if self.target else ""
        note = f"  {self.note}" if self.note else ""
        return f"{self.name:<44} {self.value:>10,.3f} {self.unit}{target}{note}"


@dataclass
class Bench:
    """What every measurement gets: the indexed store, open as an :class:`Index`, and its run ids."""

    work: Path
    root: Path
    db: Path
    runs: int
    epochs: int
    reps: int
    ix: Index
    run_ids: list[str] = field(default_factory=list)


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """The median wall time of ``fn`` over ``reps`` calls (after one warm-up), and its last result."""
    out = fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def write_runs(root: Path, n: int, epochs: int, seed: int = 0) -> int:
    """``n`` run folders (config + metrics.jsonl) under ``root``; returns the number of files written."""
    rng = random.Random(seed)
    for i in range(n):
        folder = root / f"group{i // 100:04d}" / f"run{i:06d}"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(yaml.dump(make_config(i, rng), Dumper=yaml.CSafeDumper, sort_keys=False))
        acc, loss = rng.uniform(0.1, 0.3), rng.uniform(2.0, 3.0)
        rows = []
        for e in range(1, epochs + 1):
            acc += (0.98 - acc) * rng.uniform(0.05, 0.2)
            loss *= rng.uniform(0.85, 0.99)
            rows.append(json.dumps({"epoch": e, "step": e * 100, "train_loss": loss * 0.9, "val_loss": loss,
                                    "val_acc": acc, "lr": 1e-3 * (1 - e / (epochs + 1)),
                                    "epoch_time_s": rng.uniform(5, 6)}))
        (folder / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    return 2 * n


def scan_without_series(root: Path, db: Path) -> float:
    """files/s of a scan of ``root`` into a fresh store at ``db`` with the series left out."""
    import indexer.scan as scan_mod

    real = scan_mod.convert_path

    def no_series(path: Any, **kw: Any) -> list[dict]:
        kw.pop("series", None)
        return real(path, **kw)

    scan_mod.convert_path = no_series  # converter processes fork after this, so they use it too
    try:
        store = open_store(str(db))
        t = time.perf_counter()
        report = scan(store, [str(root)])
        secs = time.perf_counter() - t
        store.close()
    finally:
        scan_mod.convert_path = real
    return report.converted / secs


def setup(work: Path, runs: int, epochs: int, reps: int, baseline: bool = True) -> tuple[Bench, list[Figure]]:
    """Write and index the runs; the scan's own figures."""
    root = work / "runs"
    t = time.perf_counter()
    files = write_runs(root, runs, epochs)
    print(f"wrote {runs:,} runs ({files:,} files) in {time.perf_counter() - t:.1f} s", flush=True)
    db = work / "index.db"
    store = open_store(str(db))
    t = time.perf_counter()
    report = scan(store, [str(root)])
    secs = time.perf_counter() - t
    points = store.db.execute("SELECT count(*) FROM series").fetchone()[0]
    rate = report.converted / secs
    figs = [Figure("one-shot scan of run folders, with series", rate, "files/s", "",
                   f"{report.converted:,} files, {points:,} series values in {secs:.1f} s")]
    if baseline:
        base = scan_without_series(root, work / "baseline.db")
        figs += [Figure("  the same scan without series", base, "files/s"),
                 Figure("  with series / without", rate / base, "x")]
    ix = Index(store)
    bench = Bench(work, root, db, runs, epochs, reps, ix, ix.find("kind=run").ids)
    return bench, figs


# ---------------------------------------------------------------- measurements


def measure_to_pandas(b: Bench) -> list[Figure]:
    """``find`` and ``to_pandas`` of every run, against ``json_normalize`` of the same configs."""
    import pandas as pd

    find_s, results = timed(lambda: b.ix.find("kind=run"), b.reps)
    frame_s, frame = timed(results.to_pandas, b.reps)
    configs = [r.config for r in results]
    ref_s, _ = timed(lambda: pd.json_normalize(configs), b.reps)
    shape = f"{frame.shape[0]:,} rows x {frame.shape[1]} columns"
    return [Figure(f"find kind=run ({len(results):,} runs)", find_s, "s"),
            Figure("to_pandas", frame_s, "s", "<= 1 s", shape),
            Figure("  reference: json_normalize(configs)", ref_s, "s"),
            Figure("  to_pandas / reference", frame_s / ref_s, "x")]


def measure_series(b: Bench) -> list[Figure]:
    """``ix.series`` of one metric for a 20-run overlay."""
    picked = b.run_ids[:: max(1, len(b.run_ids) // 20)][:20]
    secs, frame = timed(lambda: b.ix.series(picked, "val_acc"), b.reps)
    return [Figure("series of 20 runs x 1 metric", secs * 1000, "ms", "", f"{len(frame):,} points")]


#: the measurements, in order; each returns its figures (the UI's server times add theirs here)
def measure_ui(b: Bench) -> list[Figure]:
    """Server times of ``ednaquery ui``: the search page (50 rows) and a 20-run overlay (bench/ui_server.py)."""
    return [Figure(*fig) for fig in server_times(b.ix, b.run_ids, reps=20)]


MEASURES: list[Callable[[Bench], list[Figure]]] = [measure_to_pandas, measure_series, measure_ui]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (its path is printed)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the scan without series")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="eq-ui-bench-"))
    try:
        bench, figures = setup(work, args.runs, args.epochs, args.reps, baseline=not args.no_baseline)
        for fig in figures:
            print(fig.line(), flush=True)
        for measure in MEASURES:
            for fig in measure(bench):
                print(fig.line(), flush=True)
        bench.ix.close()
    finally:
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
