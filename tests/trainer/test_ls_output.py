"""`trainer ls` for scripts and people (issue 12, item 3): --json with numbers, ISO times and seconds;
--columns; a table that fits 80 columns without wrapping."""
from __future__ import annotations

import datetime
import json
import os

import pytest
from click.testing import CliRunner

from ednaquery.documents import config_id, make_run_document
from ednaquery.store import open_store
from trainer.cli import main

ACC = 0.9387123456789


@pytest.fixture
def db(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("EDNAQUERY_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = str(tmp_path / "index.db")
    store = open_store(path)
    try:
        for i, (model, lr) in enumerate((("resnet18", 1e-3), ("vit_tiny_patch16_224_with_a_long_name", 3e-4))):
            config = {"model": {"name": model}, "optimizer": {"name": "adamw", "lr": lr},
                      "data": {"batch_size": 64}, "train": {"epochs": 10}}
            store.upsert([make_run_document(f"20261204-18180{i}-aa0{i}", config=config, config_id=config_id(config),
                                            path=str(tmp_path / "runs" / f"r{i}"), status="completed",
                                            metrics={"val_acc": {"last": ACC - i / 10, "best": ACC},
                                                     "val_loss": {"last": 0.31, "best": 0.3}},
                                            info={"total_time_s": 10.25}, started_at=1_796_000_000.0 + i,
                                            ended_at=1_796_000_011.0 + i)])
    finally:
        store.close()
    return path


def test_ls_json_has_numbers_iso_times_and_seconds(db):
    r = CliRunner().invoke(main, ["--store", db, "ls", "--json", "--columns", "optimizer.lr,val_loss"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["val_acc.best"] for row in rows] == [ACC, ACC]  # numbers at full precision, not "0.9387"
    for row in rows:
        started = datetime.datetime.fromisoformat(row["started"])  # ISO 8601, with the year
        assert started.year == 2026 and row["duration_s"] == 10.25
        assert list(row["values"]) == ["optimizer.lr", "val_loss.last", "val_loss.best"]
    assert {row["values"]["optimizer.lr"] for row in rows} == {1e-3, 3e-4}


def test_ls_table_fits_80_columns_with_the_chosen_columns(db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = CliRunner().invoke(main, ["--store", db, "ls", "--columns", "optimizer.lr,batch_size"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and all(len(line.rstrip()) <= 80 for line in lines), r.stdout
    header = lines[0].split()
    assert header[0] == "run" and [h.rstrip("…") for h in header[-2:]] == ["optimiz", "batch_s"]
    assert all(line.split()[0].startswith("20261204-18180") and len(line.split()[0]) == 20 for line in lines[1:])
    assert "…" in r.stdout  # the long model name is cut, not wrapped
    assert "0.001" in r.stdout and "0.0003" in r.stdout and "64" in r.stdout
