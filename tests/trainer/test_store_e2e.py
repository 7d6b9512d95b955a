"""End to end, for real: index a tiny config, ``trainer launch <prefix>`` trains it on CPU on
real data (scikit-learn's digits), and ``ednaquery find kind=run val_acc>...`` finds the run.

resnet18 at 16x16 on half of digits' training split, 2 epochs: seconds on one core.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.documents import make_config_document
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, FindOptions, PathUpdate
from ednaquery.store.sqlite import SQLiteStore
from tests.support.settings import clean_settings

pytest.importorskip("timm")

TINY = {"model": {"name": "resnet18"},
        "data": {"dataset": "digits", "img_size": 16, "batch_size": 32, "fraction": 0.5},
        "optimizer": {"name": "adamw", "lr": 2e-3}, "scheduler": {"name": "cosine"},
        "train": {"epochs": 2, "seed": 0, "device": "cpu"}}


@pytest.mark.slow
def test_launch_trains_indexes_and_find_returns_the_run(tmp_path: Path, monkeypatch):
    from ednaquery.cli import main as ednaquery_main
    from trainer.cli import main as trainer_main

    clean_settings(tmp_path, monkeypatch)
    db = str(tmp_path / "index.db")
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    store = SQLiteStore(db)
    st = cfg_path.stat()
    doc = make_config_document(TINY, path=str(cfg_path), format="yaml", size=st.st_size, mtime=st.st_mtime)
    store.apply([PathUpdate(str(cfg_path), [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino))])

    res = CliRunner().invoke(trainer_main, ["--store", db, "launch", doc["_id"][:6], "--runs-root",
                                            str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    assert "using CPU" in res.output and "completed" in res.output

    [run_dir] = list((tmp_path / "runs").iterdir())
    for name in ("config.yaml", "run.json", "metrics.jsonl", "summary.json", "last.pt"):
        assert (run_dir / name).is_file(), name
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["config_id"] == doc["_id"] and run["run_id"] == run_dir.name
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r.get("scope", "epoch") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    val_acc = epochs[-1]["val_acc"]
    assert val_acc > 0.3, f"val_acc {val_acc} after 2 epochs is not well above chance (0.1)"

    # the library API finds it...
    hits = store.find(parse(["kind=run", "val_acc>0.3"]), FindOptions())
    assert [h["_id"] for h in hits] == [run_dir.name]
    assert hits[0]["metrics"]["val_acc"]["last"] == pytest.approx(val_acc)
    assert store.find(parse(["kind=run", "val_acc>0.3", "optimizer.lr<1e-3"]), FindOptions()) == []  # config leaves
    # ... and so does the query CLI, with metrics, status, config id and the run folder
    res = CliRunner().invoke(ednaquery_main, ["--store", db, "find", "kind=run", "val_acc>0.3", "--format", "json"])
    assert res.exit_code == 0, res.output
    [row] = json.loads(res.output)
    assert row["status"] == "completed" and row["config_id"] == doc["_id"]
    assert str(run_dir) in row["paths"] and row["metrics"]["val_acc"]["last"] == pytest.approx(val_acc)
    # diff RUN CONFIG compares effective values: the keys the trainer filled in with defaults are not "absent"
    assert "train.deterministic" in run["default_keys"] and "optimizer.lr" not in run["default_keys"]
    res = CliRunner().invoke(ednaquery_main, ["--store", db, "diff", run_dir.name, doc["_id"][:8], "--json"])
    assert res.exit_code == 1, res.output  # status and metrics differ: a config has none
    assert [r["key"] for r in json.loads(res.output) if not r["key"].startswith("(")] == []
    store.close()
