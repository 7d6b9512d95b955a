"""Generate realistic sweep configs (models x img sizes x optimizers x schedulers x lrs x seeds).

Shared by the benchmarks: ``write_sweep(folder, n)`` writes ``n`` nested YAML files of ~40
leaves each, the way our users' sweep launchers do; ``write_runs(folder, n)`` writes ``n`` run folders
the way our trainer does (5 files each, ~30 epochs of metrics).
"""
from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path

import yaml

MODELS = ["convnext_atto", "convnext_tiny", "vit_tiny_patch16_224", "vit_base_patch16_384", "eva02_tiny_patch14_224",
          "caformer_s18", "efficientnet_b0", "resnet18", "resnet50", "mobilenetv3_small_100"]
IMG = [32, 64, 128, 224, 384]
OPT = ["adamw", "sgd", "lamb", "adam", "lion"]
SCHED = ["cosine", "step", "onecycle", "plateau", "linear"]
LRS = ["1e-3", 3e-4, "1e-4", 0.01, 5e-5, "2e-3"]


def make_config(i: int, rng: random.Random) -> dict:
    """One config: nested sections, YAML-1.1 numeric strings, lists, as real sweep files look."""
    model, img, opt, sched, lr = (MODELS[i % len(MODELS)], IMG[(i // 10) % len(IMG)], OPT[(i // 50) % len(OPT)],
                                  SCHED[(i // 250) % len(SCHED)], LRS[(i // 1250) % len(LRS)])
    return {
        "experiment": {"name": f"sweep-{i // 100:04d}", "seed": i % 5, "tags": ["sweep", model.split("_")[0]],
                       "notes": f"{model} at {img}px with {opt}/{sched}"},
        "model": {"name": model, "pretrained": False, "drop_rate": round(rng.choice([0.0, 0.1, 0.2]), 2),
                  "drop_path_rate": rng.choice([0.0, 0.05, 0.1]), "num_classes": 10, "in_chans": 3},
        "data": {"dataset": rng.choice(["digits", "fashion_mnist", "imagefolder:/data/pets"]), "img_size": img,
                 "batch_size": rng.choice([32, 64, 128, 256]), "workers": 4, "fraction": rng.choice([0.25, 0.5, 1.0]),
                 "augment": {"hflip": 0.5, "random_resized_crop": {"scale": [0.08, 1.0]}, "color_jitter": 0.4,
                             "mixup": rng.choice([0.0, 0.2, 0.8])}},
        "optimizer": {"name": opt, "lr": lr, "weight_decay": rng.choice([0.0, "5e-2", 1e-4]),
                      "betas": [0.9, 0.999], "momentum": 0.9, "clip_grad": rng.choice([None, 1.0])},
        "scheduler": {"name": sched, "warmup_epochs": rng.choice([0, 1, 5]), "min_lr": "1e-6", "step_size": 30},
        "train": {"epochs": rng.choice([10, 50, 100, 300]), "amp": True, "channels_last": True,
                  "compile": False, "device": "auto", "early_stopping": {"patience": 10, "metric": "val_acc"}},
        "loss": {"name": "cross_entropy", "label_smoothing": rng.choice([0.0, 0.1])},
        "logging": {"every_n_steps": 50, "output_dir": f"runs/{model}/{i:06d}"},
    }


def write_sweep(folder: str | os.PathLike, n: int, seed: int = 0) -> list[Path]:
    """Write ``n`` config files under ``folder`` (100 per subfolder); returns their paths."""
    rng = random.Random(seed)
    root = Path(folder)
    out = []
    for i in range(n):
        sub = root / f"group{i // 100:04d}"
        if i % 100 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"cfg{i:06d}.yaml"
        p.write_text(yaml.dump(make_config(i, rng), Dumper=yaml.CSafeDumper, sort_keys=False))
        out.append(p)
    return out


RUN_EPOCHS = 30


def write_run(folder: Path, i: int, rng: random.Random) -> None:
    """One trainer-style run folder: config.yaml, run.json, metrics.jsonl, summary.json, val_confusion.json."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = make_config(i, rng)
    epochs = RUN_EPOCHS - rng.randrange(5)
    (folder / "config.yaml").write_text(yaml.dump(cfg, Dumper=yaml.CSafeDumper, sort_keys=False))
    rows, best = [], 0.0
    for e in range(1, epochs + 1):
        acc = min(0.99, 0.3 + 0.6 * (1 - 0.9 ** e) + rng.uniform(-0.02, 0.02))
        best = max(best, acc)
        rows.append({"scope": "epoch", "epoch": e, "step": e * 390, "train_loss": round(2.3 * 0.9 ** e, 6),
                     "val_loss": round(2.1 * 0.92 ** e + 0.1, 6), "val_acc": round(acc, 6),
                     "lr": 1e-3 * (1 - e / (epochs + 1)), "epoch_time_s": round(rng.uniform(20, 30), 3)})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    last = rows[-1]
    summary = {"metrics": {k: {"last": last[k], "best": (max if k == "val_acc" else min)(r[k] for r in rows)}
                           for k in ("train_loss", "val_loss", "val_acc")},
               "epochs": epochs, "best_epoch": max(rows, key=lambda r: r["val_acc"])["epoch"],
               "best_metric": "val_acc", "total_time_s": sum(r["epoch_time_s"] for r in rows)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    run = {"format": "ednaquery-run", "format_version": 1, "run_id": f"20261204-{i:08d}", "status": "completed",
           "started_at": 1.8e9 + i * 60, "ended_at": 1.8e9 + i * 60 + 900, "host": "gpu-node-3",
           "device": "cuda:0", "versions": {"torch": "2.5.1", "timm": "1.0.12", "python": "3.11.9"}}
    (folder / "run.json").write_text(json.dumps(run, indent=2))
    n = 10
    cm = [[rng.randrange(0, 20) + (900 if a == b else 0) for b in range(n)] for a in range(n)]
    (folder / "val_confusion.json").write_text(json.dumps({"labels": [str(c) for c in range(n)], "matrix": cm}))


def write_runs(folder: str | os.PathLike, n: int, seed: int = 0) -> None:
    """Write ``n`` trainer-style run folders under ``folder`` (100 per subfolder, 5 files each)."""
    rng = random.Random(seed)
    root = Path(folder)
    for i in range(n):
        write_run(root / f"sweep{i // 100:04d}" / f"run{i:06d}", i, rng)


__all__ = ["itertools", "make_config", "write_run", "write_runs", "write_sweep"]
