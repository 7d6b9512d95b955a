"""ednaquery.runfolder: a trainer run folder -> its run document (shared by trainer and indexer)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ednaquery.documents import config_id
from ednaquery.errors import LoadError
from ednaquery.runfolder import is_trainer_run, read_run_folder, run_document

CONFIG = {"model": {"name": "resnet18"}, "optimizer": {"name": "adamw", "lr": 0.001}}


def make_run(folder: Path, *, summary: dict | None = None, rows: list[dict] | None = None, config: bool = True,
             **run: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"format": "ednaquery-run", "format_version": 1, "run_id": "20261122-120000-abcd", "config_id": "c0ffee",
            "status": "running", "started_at": 1000.0, "ended_at": None, "host": "gpu1", "updated_at": 5.0}
    base.update(run)
    (folder / "run.json").write_text(json.dumps(base))
    if config:
        (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    if rows is not None:
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 9, "val')
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_summary_metrics_status_and_identity(tmp_path):
    folder = make_run(tmp_path / "r", status="completed", ended_at=1060.0,
                      summary={"metrics": {"val_acc": {"last": 0.9, "best": 0.93}, "lr": {"last": 1e-4, "best": 1e-4},
                                           "bad": {"last": float("nan")}},
                               "epochs": 3, "best_epoch": 2, "total_time_s": 60.0},
                      rows=[{"scope": "epoch", "epoch": 1, "val_acc": 0.5}])
    doc = run_document(folder)
    assert doc["_id"] == "20261122-120000-abcd" and doc["kind"] == "run" and doc["format"] == "ednaquery-run"
    assert doc["status"] == "completed"  # the trainer's own word, not normalised
    assert doc["config_id"] == "c0ffee" and doc["paths"] == [str(folder)]
    assert doc["metrics"] == {"val_acc": {"last": 0.9, "best": 0.93}, "lr": {"last": 1e-4, "best": 1e-4}}
    assert doc["info"]["host"] == "gpu1" and doc["info"]["epochs"] == 3 and doc["info"]["best_epoch"] == 2
    assert "updated_at" not in doc["info"] and "format" not in doc["info"]
    assert (doc["started_at"], doc["ended_at"]) == (1000.0, 1060.0)
    leaf_paths = {lf["p"] for lf in doc["leaves"]}
    assert "metrics\x1fval_acc\x1fbest" in leaf_paths and "optimizer\x1flr" in leaf_paths
    assert "timing\x1fduration_s" in leaf_paths


def test_same_files_same_document(tmp_path):
    folder = make_run(tmp_path / "r", summary={"metrics": {"val_acc": {"last": 0.9, "best": 0.9}}})
    a, b = run_document(folder), run_document(folder)
    a.pop("indexed_at"), b.pop("indexed_at")
    assert a == b


def test_without_summary_the_epoch_rows_are_summarised(tmp_path):
    rows = [{"scope": "epoch", "epoch": 1, "train_loss": 2.0, "val_acc": 0.6, "lr": 1e-3},
            {"scope": "step", "step": 5, "train_loss": 0.1},
            {"scope": "epoch", "epoch": 2, "train_loss": 1.0, "val_acc": 0.5, "lr": 5e-4}]
    doc = run_document(make_run(tmp_path / "r", rows=rows))
    assert doc["metrics"]["val_acc"] == {"last": 0.5, "best": 0.6}
    assert doc["metrics"]["train_loss"] == {"last": 1.0, "best": 1.0}  # the step row is not an epoch
    assert doc["metrics"]["lr"] == {"last": 5e-4}
    assert "epoch" not in doc["metrics"] and "step" not in doc["metrics"]


def test_missing_pieces(tmp_path):
    rf = read_run_folder(make_run(tmp_path / "r", config=False, config_id=None))
    assert rf.config == {} and rf.config_id is None and any("config.yaml" in w for w in rf.warnings)
    rf = read_run_folder(make_run(tmp_path / "s", config_id=None))
    assert rf.config_id == config_id(CONFIG)  # no launch config recorded: the content id of the one it ran
    with pytest.raises(LoadError):
        read_run_folder(tmp_path / "nothing")
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "run.json").write_text("[1, 2]")
    with pytest.raises(LoadError, match="JSON object"):
        read_run_folder(tmp_path / "list")


def test_is_trainer_run(tmp_path):
    assert is_trainer_run(make_run(tmp_path / "r"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text('{"run_id": "x", "status": "FINISHED"}')
    assert not is_trainer_run(tmp_path / "other")
    assert not is_trainer_run(tmp_path / "missing")
