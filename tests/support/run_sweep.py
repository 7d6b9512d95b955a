"""A small sweep of trainer run folders (the ui tests): 6 runs, 5 epochs each, one image per run."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import yaml

#: a 1x1 PNG (the "confusion matrix" of every run)
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
LRS = [1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 1e-2]
MODELS = ["vit_tiny", "resnet18", "vit_tiny", "resnet18", "vit_tiny", "resnet18"]
EPOCHS = 5


def write_sweep(root: Path) -> list[str]:
    """Write the run folders under ``root/runs``; returns the run ids (lr ascending)."""
    ids = []
    for i, (lr, model) in enumerate(zip(LRS, MODELS)):
        run_id = f"20261204-1200{i:02d}-ab{i:02d}"
        folder = root / "runs" / run_id
        folder.mkdir(parents=True)
        config = {"model": {"name": model}, "optimizer": {"name": "adamw", "lr": lr, "weight_decay": 0.05},
                  "data": {"img_size": 32, "batch_size": 64}, "train": {"epochs": EPOCHS, "seed": 0}}
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        rows = []
        for e in range(1, EPOCHS + 1):
            acc = 0.5 + 0.08 * e - abs(i - 2) * 0.02
            rows.append({"scope": "epoch", "epoch": e, "step": e * 10, "train_loss": 2.0 / (e + i), "val_acc": acc})
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        last = rows[-1]
        summary = {"metrics": {"val_acc": {"last": last["val_acc"], "best": max(r["val_acc"] for r in rows)},
                               "train_loss": {"last": last["train_loss"], "best": last["train_loss"]}},
                   "epochs": EPOCHS}
        (folder / "summary.json").write_text(json.dumps(summary))
        run = {"format": "ednaquery-run", "run_id": run_id, "status": "completed",
               "started_at": 1.8e9 + i * 60, "ended_at": 1.8e9 + i * 60 + 50}
        (folder / "run.json").write_text(json.dumps(run))
        (folder / "confusion_matrix.png").write_bytes(PNG)
        ids.append(run_id)
    return ids


def add_secret_outside(root: Path, run_folder: Path) -> Path:
    """A secret file beside the runs and a symlink to it from inside a run folder."""
    secret = root / "secret.txt"
    secret.write_text("top secret\n")
    os.symlink(secret, run_folder / "link_out.txt")
    return secret
