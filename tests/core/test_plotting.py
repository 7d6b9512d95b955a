"""Curves from the terminal (issue 12, item 5): `ednaquery plot`, `trainer plot A B`, curves.png titles."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.cli import main
from ednaquery.documents import make_run_document
from ednaquery.metrics import Point
from ednaquery.plotting import legend_labels, matching_curves, run_points
from tests.support.folders import scanned_store

pytest.importorskip("matplotlib")


def make_run(root: Path, run_id: str, lr: float, accs: list[float]) -> Path:
    run = root / "runs" / run_id
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"model: {{name: resnet18}}\noptimizer: {{name: adamw, lr: {lr}}}\n"
                                     "data: {batch_size: 64}\n")
    (run / "run.json").write_text(json.dumps({"format": "ednaquery-run", "run_id": run_id, "status": "completed",
                                              "started_at": 1795386930.0, "ended_at": 1795389330.0}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"scope": "epoch", "epoch": e, "val_acc": a, "train_loss": 1 - a}) + "\n"
        for e, a in enumerate(accs)))
    (run / "summary.json").write_text(json.dumps({"metrics": {"val_acc": {"last": accs[-1], "best": max(accs)}}}))
    return run


@pytest.fixture
def world(tmp_path, monkeypatch):
    runs = [make_run(tmp_path / "exp", f"20261204-10{i}000-aa0{i}", lr, [0.5, 0.6 + i / 10, 0.7 + i / 10])
            for i, lr in enumerate((0.1, 0.01, 0.001))]
    db = scanned_store(tmp_path, monkeypatch, tmp_path / "exp")
    return {"db": db, "runs": runs, "tmp": tmp_path}


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ednaquery_plot_overlays_the_matching_runs(world):
    r = CliRunner().invoke(main, ["--store", world["db"], "plot", "val_acc", "lr<0.05", "-o", "acc.png"])
    assert r.exit_code == 0, r.output
    assert _png(world["tmp"] / "acc.png") and "2 curves of 2 runs" in r.stdout
    none = CliRunner().invoke(main, ["--store", world["db"], "plot", "no_such_metric", "-o", "x.png"])
    assert none.exit_code == 2 and "no_such_metric" in none.stderr and not (world["tmp"] / "x.png").exists()


def test_legend_shows_the_params_that_vary():
    docs = [make_run_document(f"r{i}", config={"model": {"name": "resnet18"}, "optimizer": {"lr": lr}},
                              config_id=None, path=f"/x/r{i}", status="completed", metrics={})
            for i, lr in enumerate((0.1, 0.01))]
    assert legend_labels(docs) == ["lr=0.1", "lr=0.01"]
    same = [docs[0], dict(docs[0], _id="r9")]
    assert legend_labels(same) == ["r0", "r9"]


def test_curves_are_read_from_the_run_folder_by_epoch(world):
    doc = {"_id": "x", "paths": [str(world["runs"][0] / "metrics.jsonl")]}
    curves = matching_curves(run_points(doc), "val_acc")
    assert curves == {"val_acc": ([0.0, 1.0, 2.0], [0.5, 0.6, 0.7], "epoch")}
    pts = [Point("val/acc", 10, None, 0.5), Point("val/acc", 20, None, 0.6)]
    assert matching_curves(pts, "acc") == {"val/acc": ([10.0, 20.0], [0.5, 0.6], "step")}


def test_missing_matplotlib_is_a_one_line_error_naming_the_extra(world, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = CliRunner().invoke(main, ["--store", world["db"], "plot", "val_acc"])
    assert r.exit_code == 2 and "'train' extra" in r.stderr and len(r.stderr.splitlines()) == 1


def test_trainer_plot_several_runs_and_the_curves_title(world):
    from trainer.cli import main as trainer_main
    from trainer.engine.plots import run_title

    a, b, c = world["runs"]
    r = CliRunner().invoke(trainer_main, ["plot", str(a), str(b), str(c), "-o", "cmp.png"])
    assert r.exit_code == 0, r.output
    assert _png(world["tmp"] / "cmp.png")
    assert run_title(a) == "20261204-100000-aa00 · resnet18 · opt=adamw lr=0.1 bs=64"
    r = CliRunner().invoke(trainer_main, ["plot", str(a)])
    assert r.exit_code == 0 and _png(a / "curves.png")


def test_curves_come_from_the_store_series_when_it_has_them(world):
    from ednaquery.plotting import runs_points

    class SeriesStore:
        def series(self, run_ids, metrics=None):
            return [("stored", "val_acc", None, 0, 0.1), ("stored", "val_acc", None, 1, 0.2)]

    folder_run = {"_id": "20261204-100000-aa00", "paths": [str(world["runs"][0])]}
    no_folder = {"_id": "stored", "paths": ["/nowhere/stored"]}  # a team on MongoDB, no run folders here
    pts = runs_points([folder_run, no_folder], SeriesStore())
    assert [p.value for p in pts[1]] == [0.1, 0.2]
    assert [p.value for p in pts[0] if p.metric == "val_acc"] == [0.5, 0.6, 0.7]  # not stored: its folder
