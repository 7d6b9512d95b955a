"""The trainer's own indexing of a run (RunRecorder) writes the run's metric series as it grows,
the same series the indexer reads from the folder."""
from __future__ import annotations

import json
from pathlib import Path

from ednaquery.store.sqlite import SQLiteStore
from trainer.recorder import RunRecorder


def _epoch_rows(folder: Path, n: int) -> None:
    with open(folder / "metrics.jsonl", "w") as fh:
        for e in range(1, n + 1):
            fh.write(json.dumps({"scope": "epoch", "epoch": e, "step": 10 * e, "val_acc": 0.1 * e,
                                 "train_loss": 1.0 / e}) + "\n")
            fh.write(json.dumps({"scope": "step", "epoch": e, "step": 10 * e - 5, "train_loss": 2.0}) + "\n")


def test_each_record_replaces_the_series_with_the_folders(tmp_path: Path) -> None:
    run = tmp_path / "run-0001"
    run.mkdir()
    (run / "config.yaml").write_text("model: resnet18\nlr: 0.01\n")
    (run / "run.json").write_text(json.dumps({"format": "ednaquery-run", "run_id": "run-0001", "status": "running"}))
    store = SQLiteStore(tmp_path / "index.db")
    try:
        rec = RunRecorder(store, run)
        for n in (1, 2, 3):
            _epoch_rows(run, n)
            assert rec.record()
            points = store.series(["run-0001"])
            assert [(p[1], p[2], p[3]) for p in points if p[1] == "val_acc"] == \
                [("val_acc", 10 * e, e) for e in range(1, n + 1)]
            # train_loss comes from the epoch rows (epoch means), not the per-batch step rows
            assert [p[4] for p in points if p[1] == "train_loss"] == [1.0 / e for e in range(1, n + 1)]
        assert store.get("run-0001")["metrics"]["val_acc"]["last"] == 0.30000000000000004
    finally:
        store.close()
