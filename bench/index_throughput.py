"""Indexer throughput and freshness on the embedded store.

Usage: ``.venv/bin/python bench/index_throughput.py [--sizes 10000,100000] [--writes 200]``
       ``.venv/bin/python bench/index_throughput.py --runs 10000``

1. One-shot scan (``ednaquery index``'s library call, ``indexer.scan.scan``) of a generated sweep grid
   (models x img sizes x optimizers x schedulers x lrs x seeds, ~40 leaves each): files/s.
2. With the daemon (``indexer.daemon.Indexer``, real watchdog observer, default debounce) running on the
   folder: latency from writing a new config to ``find`` returning it, p50/p95 over ``--writes`` writes.
3. Peak RSS of this process (``ru_maxrss``; it also ran the scan), and RSS of a daemon started in a process
   of its own on the indexed folder, once it watches it (``VmRSS``, and ``VmHWM`` for its start-up peak).

``--runs N`` instead: ``ednaquery index`` in a process of its own on ``N`` trainer-style run folders
(``sweepgen.write_runs``: 5 files each), and on a config sweep of as many files, measured in the same run:
files/s and the scan's peak RSS (``ru_maxrss`` of the ``ednaquery`` process, from ``wait4``) of each, and
the run folders' figures as a ratio of the sweep's.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweepgen import make_config, write_runs, write_sweep

from ednaquery.query import compile_query
from ednaquery.store import open_store
from indexer.daemon import Indexer
from indexer.scan import scan


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None, help="scan N trainer run folders (5N files) instead")
    args = ap.parse_args()
    if args.runs:
        run_folders(args.runs, args.workers)
        return
    work = Path(tempfile.mkdtemp(prefix="eq-index-bench-"))
    for n in [int(s) for s in args.sizes.split(",")]:
        folder = work / f"sweep{n}"
        write_sweep(folder, n)
        db = work / f"index{n}.db"
        store = open_store(str(db))
        t0 = time.perf_counter()
        rep = scan(store, [str(folder)], workers=args.workers)
        secs = time.perf_counter() - t0
        print(f"one-shot scan of {n} configs: {rep.converted / secs:,.0f} files/s ({secs:.1f} s, {rep.errors} errors)")
        store.close()
        # freshness: daemon running, write new files one at a time, poll find until each is returned
        idx = Indexer(lambda db=db: open_store(str(db)), [str(folder)], reconcile_every=None)
        idx.start()
        idx.wait_idle(timeout=600)
        reader = open_store(str(db))
        lat = []
        import random

        rng = random.Random(1)
        for i in range(args.writes):
            name = f"fresh-{n}-{i}"
            cfg = make_config(i, rng)
            cfg["experiment"]["name"] = name
            p = folder / "fresh" / f"{name}.yaml"
            p.parent.mkdir(exist_ok=True)
            node = compile_query(f"experiment.name={name}")
            t = time.perf_counter()
            tmp = p.with_suffix(".tmp")
            tmp.write_text(yaml.dump(cfg, Dumper=yaml.CSafeDumper))
            tmp.replace(p)
            while reader.count(node) == 0:
                if time.perf_counter() - t > 10:
                    break
                time.sleep(0.005)
            lat.append(time.perf_counter() - t)
        reader.close()
        idx.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"write -> queryable over {len(lat)} writes: p50 {statistics.median(lat) * 1000:.0f} ms, "
              f"p95 {pct(lat, 95) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms (debounce {idx.queue.quiet if hasattr(idx.queue, 'quiet') else 0.3} s)")
        print(f"peak RSS of this process (scan + daemon watching {n} files): {rss:.0f} MB")
        now, peak = daemon_rss(folder, db)
        print(f"daemon alone (its own process) watching {n} files: RSS {now:.0f} MB, {peak:.0f} MB at its peak")
    shutil.rmtree(work, ignore_errors=True)


def index_subprocess(folder: Path, db: Path, workers: int | None) -> tuple[float, float, str]:
    """``ednaquery index`` on ``folder`` in a process of its own: (seconds, its peak RSS in MB, summary line)."""
    cmd = [sys.executable, "-c", "from ednaquery.cli import main; main()", "--store", str(db), "index", "-q", str(folder)]
    if workers:
        cmd[6:6] = ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parents[1])
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"ednaquery index failed ({proc.returncode}): {out}")
    return secs, usage.ru_maxrss / 1024, out.strip().splitlines()[-1] if out.strip() else ""


def run_folders(n: int, workers: int | None) -> None:
    """Scan ``n`` run folders and a config sweep of as many files; print files/s and peak RSS of each."""
    work = Path(tempfile.mkdtemp(prefix="eq-index-bench-"))
    try:
        runs, sweep = work / "runs", work / "sweep"
        write_runs(runs, n)
        files = sum(len(fs) for _, _, fs in os.walk(runs))
        write_sweep(sweep, files)
        figures = {}
        for name, folder in (("config sweep", sweep), ("run folders", runs)):
            secs, rss, line = index_subprocess(folder, work / f"{name.split()[0]}.db", workers)
            figures[name] = (files / secs, rss)
            print(f"ednaquery index of {files} files ({name}): {files / secs:,.0f} files/s ({secs:.1f} s), "
                  f"peak RSS {rss:.0f} MB  [{line}]")
        (rf, rr), (cf, cr) = figures["run folders"], figures["config sweep"]
        print(f"run folders ({n}) vs config sweep: {rf / cf:.2f}x the files/s, {rr / cr:.2f}x the peak RSS")
    finally:
        shutil.rmtree(work, ignore_errors=True)


_DAEMON = """
import sys, time
from ednaquery.store import open_store
from indexer.daemon import Indexer
idx = Indexer(lambda: open_store(sys.argv[2]), [sys.argv[1]], reconcile_every=None)
idx.start()
idx.wait_idle(timeout=600)
time.sleep(2)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024)
idx.stop()
"""


def daemon_rss(folder: Path, db: Path) -> tuple[float, float]:
    """RSS (now, peak) in MB of a daemon process started on an indexed folder, once it is watching."""
    out = subprocess.run([sys.executable, "-c", _DAEMON, str(folder), str(db)], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    now, peak = out.stdout.split()
    return float(now), float(peak)


if __name__ == "__main__":
    main()
