"""Query latency of the embedded store at 10k and 100k configs, against the naive YAML scan.

Usage: ``.venv/bin/python bench/query_latency.py [--sizes 10000,100000] [--reps 20]``

For each size it writes a sweep of realistic configs (bench/sweepgen.py), indexes them into a
fresh SQLite store with ``indexer.scan.scan`` (the ``ednaquery index`` pipeline; timed:
documents/s), then times 10 representative queries as library calls (``count`` and
``find --limit 50``, p50/p95), whole ``ednaquery find`` commands (p50), and the naive way
(load every YAML file, filter in Python) on the same query. It prints the figures, the speed-up ratio and the store size against the YAML it indexes.
Then it stores as many runs (the sweep's configs with val_acc/val_loss summaries) in a second store and
times ``find kind=run --best val_acc --by model`` (library call, p50/p95) against a ``count`` there.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweepgen import make_config, write_sweep

from ednaquery.documents import config_id, make_run_document
from ednaquery.output import Column
from ednaquery.query import compile_query
from ednaquery.results import best_in_store
from ednaquery.store import FindOptions, open_store
from indexer.scan import scan

QUERIES = [
    "lr<1e-3",
    "model=vit",
    "model=convnext img_size=224",
    "1e-4<=lr<1e-3 optimizer=adamw",
    "optimizer.name=sgd,lamb scheduler=cosine",
    "weight_decay>0 drop_path_rate>=0.05",
    "model=vit_base_patch16_384 batch_size>=128",
    "notes~resnet.*224",
    "not optimizer=adamw and img_size<64",
    "model=eva02 or model=caformer",
]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def index_folder(store, folder: Path) -> float:
    """Index the folder as ``ednaquery index`` does (``indexer.scan.scan``: walk, convert in a
    process pool, batched writes); returns documents/s."""
    t0 = time.perf_counter()
    rep = scan(store, [str(folder)])
    return rep.converted / (time.perf_counter() - t0)


def naive(files: list[Path], test) -> tuple[int, float]:
    """What users do today: load every YAML and filter in Python."""
    t0 = time.perf_counter()
    hits = 0
    for f in files:
        with open(f) as fh:
            cfg = yaml.safe_load(fh)
        if test(cfg):
            hits += 1
    return hits, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--cli-reps", type=int, default=5)
    ap.add_argument("--naive-sample", type=int, default=10000,
                    help="files the naive scan loads (its time is extrapolated linearly beyond this)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="eq-bench-"))
    for n in [int(s) for s in args.sizes.split(",")]:
        folder = work / f"sweep{n}"
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        files = write_sweep(folder, n)
        print(f"\n== {n} configs (generated in {time.perf_counter() - t0:.1f}s)")
        yaml_bytes = sum(f.stat().st_size for f in files)
        db = work / f"index{n}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        store = open_store(str(db))
        rate = index_folder(store, folder)
        store.close()
        store = open_store(str(db))
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(os.path.getsize(str(db) + s) for s in ("", "-wal") if os.path.exists(str(db) + s))
        print(f"index build: {rate:,.0f} documents/s   store {size / 1e6:.1f} MB for {yaml_bytes / 1e6:.1f} MB of YAML "
              f"({size / yaml_bytes:.2f}x)")
        print(f"{'query':45} {'hits':>7} {'count p50':>10} {'p95':>8} {'find50 p50':>11} {'p95':>8}")
        all_count, all_find = [], []
        for q in QUERIES:
            node = compile_query(q)
            store.count(node)  # warm the catalog and page cache
            tc, tf = [], []
            for _ in range(args.reps):
                t = time.perf_counter(); hits = store.count(node); tc.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter(); store.find(node, FindOptions(limit=50)); tf.append((time.perf_counter() - t) * 1000)
            all_count += tc
            all_find += tf
            print(f"{q:45} {hits:>7} {statistics.median(tc):>8.1f}ms {pct(tc, 95):>6.1f}ms "
                  f"{statistics.median(tf):>9.1f}ms {pct(tf, 95):>6.1f}ms")
        print(f"{'ALL QUERIES':45} {'':>7} {statistics.median(all_count):>8.1f}ms {pct(all_count, 95):>6.1f}ms "
              f"{statistics.median(all_find):>9.1f}ms {pct(all_find, 95):>6.1f}ms")
        store.close()
        exe = shutil.which("ednaquery", path=str(Path(sys.executable).parent)) or "ednaquery"
        tcli = []
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: .pyc cached
        for _ in range(args.cli_reps + 1):
            t = time.perf_counter()
            subprocess.run([exe, "--store", str(db), "find", "lr<1e-3", "model=vit", "--limit", "50"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
            tcli.append((time.perf_counter() - t) * 1000)
        tcli = tcli[1:]  # the first run writes the bytecode cache
        print(f"whole `ednaquery find lr<1e-3 model=vit --limit 50` command: p50 {statistics.median(tcli):.0f} ms")
        sample = files[: args.naive_sample]

        def test(cfg: dict) -> bool:
            return float(cfg["optimizer"]["lr"]) < 1e-3 and "vit" in cfg["model"]["name"].split("_")

        hits, secs = naive(sample, test)
        est = secs * len(files) / len(sample)
        node = compile_query("lr<1e-3 model=vit")
        t = time.perf_counter(); store = open_store(str(db)); c = store.count(node); ours = time.perf_counter() - t
        store.close()
        label = "" if len(sample) == len(files) else f" (measured on {len(sample)}, extrapolated)"
        print(f"naive YAML scan for `lr<1e-3 model=vit`: {est:.1f} s{label}; ednaquery count (cold store open): "
              f"{ours * 1000:.1f} ms, {c} hits -> {est / ours:,.0f}x faster")
        best_by(work, n, args.reps)
    print(f"\nwork folder: {work}")


def best_by(work: Path, n: int, reps: int) -> None:
    """``--best val_acc --by model`` over ``n`` runs, timed as the library call ``find`` makes."""
    db = work / f"runs{n}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    store = open_store(str(db))
    rng = random.Random(1)
    t0 = time.perf_counter()
    for start in range(0, n, 2000):
        docs = []
        for i in range(start, min(n, start + 2000)):
            cfg = make_config(i, rng)
            acc = rng.random()
            docs.append(make_run_document(f"20260101-{i // 10000:06d}-{i % 10000:04x}", config=cfg,
                                          config_id=config_id(cfg), path=f"/runs/{i:06d}", status="completed",
                                          metrics={"val_acc": {"last": acc * 0.98, "best": acc},
                                                   "val_loss": {"last": 2 - acc, "best": 1.9 - acc}}))
        store.upsert(docs)
    print(f"\n{n} runs stored in {time.perf_counter() - t0:.1f}s")
    node, opts = compile_query("kind=run"), FindOptions()
    metric, by = Column(compile_query("val_acc").key, "val_acc"), Column(compile_query("model").key, "model")
    for label, fn in (("count kind=run", lambda: store.count(node)),
                      ("find kind=run --best val_acc --by model", lambda: best_in_store(store, node, opts, metric, by))):
        fn()
        ts = []
        for _ in range(reps):
            t = time.perf_counter(); out = fn(); ts.append((time.perf_counter() - t) * 1000)
        size = out if isinstance(out, int) else len(out)
        print(f"{label:45} {size:>7} {statistics.median(ts):>8.1f}ms {pct(ts, 95):>6.1f}ms")
    store.close()


if __name__ == "__main__":
    main()
