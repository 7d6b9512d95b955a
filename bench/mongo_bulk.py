"""Bulk-write throughput of the MongoDB store: documents/s through MongoStore.apply and .upsert.

    .venv/bin/python bench/mongo_bulk.py --uri mongodb://localhost:27017/bench --n 10000

Generates realistic experiment configs (timm-style: model x image size x optimizer x
scheduler x lr, nested, ~80 leaves each), converts them to documents, and times

- ``apply``: what the indexer does, one PathUpdate per file, in batches (read-modify-write with
  ``bulk_write(ordered=False)``), into an empty database;
- ``apply (again)``: the same files re-applied (every document already there: the reconcile case);
- ``upsert``: documents not tied to files (runs written by the trainer).

Without ``--uri`` it starts the nx-27017 wire-protocol server on 127.0.0.1 and measures that:
the figure is then NOT a real mongod figure (that server sits on SQLite and is much slower).
The benchmark database is dropped at the end.
"""
from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ednaquery.documents import make_config_document, make_run_document
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.mongo import MongoStore

MODELS = ["convnext_tiny", "convnext_base", "vit_base_patch16_224", "vit_large_patch16_384",
          "eva02_small_patch14_336", "caformer_s18", "efficientnet_b3", "resnet50", "resnet18"]
OPTIMIZERS = ["adamw", "sgd", "lamb", "adamp"]
SCHEDULERS = ["cosine", "step", "plateau", "onecycle"]


def make_config(i: int, rng: random.Random) -> dict:
    """One realistic nested training config (YAML-shaped: some numbers as strings, lists, nulls)."""
    model = MODELS[i % len(MODELS)]
    lr = rng.choice([1e-5, 3e-5, 1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 1e-2, 0.1])
    return {
        "experiment": {"name": f"{model}-run{i}", "group": f"sweep-{i // 500}", "tags": ["bench", model.split("_")[0]],
                       "notes": None},
        "model": {"name": model, "pretrained": rng.random() < 0.7, "num_classes": rng.choice([10, 100, 1000]),
                  "img_size": rng.choice([160, 224, 256, 288, 384]), "drop_rate": round(rng.random() * 0.3, 2),
                  "drop_path_rate": round(rng.random() * 0.4, 2), "global_pool": rng.choice(["avg", "token", ""])},
        "optimizer": {"name": OPTIMIZERS[i % len(OPTIMIZERS)], "lr": f"{lr:g}" if i % 2 else lr,
                      "weight_decay": rng.choice([0.0, 0.01, 0.05, 0.1]), "betas": [0.9, 0.999], "eps": 1e-8,
                      "momentum": 0.9, "layer_decay": rng.choice([None, 0.65, 0.75])},
        "scheduler": {"name": SCHEDULERS[i % len(SCHEDULERS)], "warmup_epochs": rng.choice([0, 5, 10]),
                      "warmup_lr": 1e-6, "min_lr": 1e-6, "cooldown_epochs": 10, "decay_rate": 0.1},
        "data": {"dataset": rng.choice(["imagenet-1k", "cifar100", "inat21", "food101"]),
                 "root": f"/datasets/{rng.choice(['imagenet', 'cifar', 'inat'])}", "batch_size": rng.choice([32, 64, 128, 256]),
                 "num_workers": 8, "pin_memory": True,
                 "augment": {"auto_augment": "rand-m9-mstd0.5-inc1", "mixup": 0.8, "cutmix": 1.0, "reprob": 0.25,
                             "hflip": 0.5, "color_jitter": 0.4, "interpolation": "bicubic",
                             "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
        "training": {"epochs": rng.choice([50, 100, 300]), "amp": rng.random() < 0.8, "grad_clip": rng.choice([None, 1.0, 5.0]),
                     "ema": {"enabled": rng.random() < 0.5, "decay": 0.9998}, "label_smoothing": 0.1,
                     "accumulate": rng.choice([1, 2, 4]), "channels_last": True},
        "seed": i, "output": f"/runs/{model}/{i:06d}", "device": "cuda",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_wire_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    exe = Path(sys.executable).with_name("nx-27017")
    exe_s = str(exe) if exe.exists() else shutil.which("nx-27017")
    if not exe_s:
        sys.exit("no --uri given and nx-27017 is not installed; give --uri mongodb://...")
    port = _free_port()
    proc = subprocess.Popen([exe_s, "--db", "memory", "--host", "127.0.0.1", "-p", str(port),
                             "--log-file", str(tmp / "nx.log"), "--pid-file", str(tmp / "nx.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    uri = f"mongodb://127.0.0.1:{port}/ednaquery_bench"
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    for _ in range(100):
        try:
            with MongoClient(uri, serverSelectionTimeoutMS=300) as c:
                c.admin.command("ping")
            return proc, uri
        except PyMongoError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("nx-27017 did not start")


def run(uri: str, n: int, batch: int, database: str) -> None:
    rng = random.Random(0)
    root = "/bench/experiments"
    t0 = time.perf_counter()
    docs = [make_config_document(make_config(i, rng), path=f"{root}/exp{i:06d}.yaml", format="yaml") for i in range(n)]
    convert_s = time.perf_counter() - t0
    leaves = sum(len(d["leaves"]) for d in docs) / max(1, n)
    updates = [PathUpdate(d["paths"][0], [d], FileState(1000 + i, 1_700_000_000_000_000_000 + i, 10_000 + i))
               for i, d in enumerate(docs)]
    runs = [make_run_document(f"20260101-{i:06d}-bench", config=make_config(i, rng), config_id=None,
                              path=f"/bench/runs/r{i:06d}", status="done",
                              metrics={"val_acc": {"last": rng.random(), "best": rng.random()},
                                       "train_loss": {"last": rng.random(), "best": rng.random()}})
            for i in range(n)]
    store = MongoStore(uri, timeout_ms=10_000, database=database)
    try:
        store.client.drop_database(database)
        store.ensure_indexes()
        print(f"store: {store.display_uri} (database {database}); {n} configs, {leaves:.0f} leaves each; "
              f"documents built in {convert_s:.2f} s ({n / convert_s:,.0f}/s); batch {batch}")
        for label, fn in (("apply (new files)", lambda: _batched(store.apply, updates, batch)),
                          ("apply (again, all present)", lambda: _batched(store.apply, updates, batch)),
                          ("upsert (runs)", lambda: _batched(store.upsert, runs, batch))):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            print(f"{label:28s} {n:>7} docs in {dt:7.2f} s = {n / dt:>9,.0f} documents/s")
        assert store.count(_match_all()) == 2 * n, "not every document was written"
    finally:
        store.client.drop_database(database)
        store.close()


def _match_all():
    from ednaquery.query.ast import MatchAll

    return MatchAll()


def _batched(fn, items: list, batch: int) -> None:
    for i in range(0, len(items), batch):
        fn(items[i: i + batch])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uri", help="MongoDB URI (default: start the nx-27017 wire server; NOT a mongod figure)")
    ap.add_argument("--n", type=int, default=10_000, help="documents per phase (default 10000)")
    ap.add_argument("--batch", type=int, default=500, help="documents per apply/upsert call (default 500)")
    ap.add_argument("--database", default="ednaquery_bench", help="database to use (dropped afterwards)")
    args = ap.parse_args()
    if args.uri:
        run(args.uri, args.n, args.batch, args.database)
        return
    print("!" * 78)
    print("!! no --uri: measuring the nx-27017 wire-protocol server (SQLite underneath).")
    print("!! These figures exercise pymongo's network path; they are NOT real mongod figures.")
    print("!" * 78)
    with tempfile.TemporaryDirectory() as tmp:
        proc, uri = start_wire_server(Path(tmp))
        try:
            run(uri, args.n, args.batch, args.database)
        finally:
            proc.terminate()
            proc.wait(10)
    print("(figures above: nx-27017 wire server, not a real mongod)")


if __name__ == "__main__":
    main()
