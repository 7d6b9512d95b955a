"""Pictures from a run folder's files alone: valid PNGs of sane size, redrawn on demand."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from trainer.engine.plots import plot_confusion, plot_run


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_run_draws_from_files(tmp_path: Path) -> None:
    rows = [{"scope": "epoch", "epoch": e, "step": 10 * e, "train_loss": 2.0 / e, "val_loss": 2.2 / e,
             "train_acc": 0.3 * e, "val_acc": 0.25 * e, "lr": 0.1 / e} for e in (1, 2, 3)]
    rows.insert(1, {"scope": "step", "epoch": 1, "step": 5, "train_loss": 1.5, "lr": 0.1})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    names = ["T-shirt/top", "Trouser", "Pullover"]
    (tmp_path / "val_confusion.json").write_text(json.dumps(
        {"class_names": names, "matrix": [[5, 1, 0], [0, 6, 0], [2, 0, 4]]}))
    rng = np.random.RandomState(0)
    np.savez(tmp_path / "holdout.npz", images=rng.randint(0, 256, (5, 3, 16, 16)).astype(np.uint8),
             labels=np.array([0, 1, 2, 0, 1]), preds=np.array([0, 1, 0, 0, 2]), class_names=np.array(names))
    files = plot_run(tmp_path)
    assert [f.name for f in files] == ["curves.png", "confusion_matrix.png", "predictions.png"]
    for f in files:
        w, h = png_size(f)
        assert 200 <= w <= 4000 and 150 <= h <= 4000 and f.stat().st_size > 3000


def test_nothing_to_draw_in_an_empty_folder(tmp_path: Path) -> None:
    assert plot_run(tmp_path) == []


def test_confusion_matrix_with_many_classes_stays_bounded(tmp_path: Path) -> None:
    n = 100
    m = np.eye(n, dtype=int) * 3
    path = plot_confusion(m, [f"class{i}" for i in range(n)], tmp_path / "cm.png")
    w, h = png_size(path)
    assert w <= 2000 and h <= 2000
