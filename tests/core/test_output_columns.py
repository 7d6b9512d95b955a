"""Output a script and a person can use: unique column names, full precision, ISO times, --columns,
tables fitted to 80 columns without wrapping, piped output never wrapped (issue 12, item 3)."""
from __future__ import annotations

import csv
import datetime
import io
import json
import os

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.cli import main
from ednaquery.documents import config_id, make_config_document, make_run_document
from ednaquery.store import open_store
from ednaquery.tablefit import FitColumn, cut_end, cut_middle, fit_widths

ACC = 0.9637123456789012  # more digits than any rounding would keep
LONG = "a_very_long_experiment_folder_name_that_no_terminal_can_show_whole"


def _run(run_id: str, folder: str, model: str, lr: float, acc: float) -> dict:
    config = {"model": {"name": model}, "optimizer": {"name": "adamw", "lr": lr}, "train": {"epochs": 3}}
    return make_run_document(run_id, config=config, config_id=config_id(config), path=os.path.join(folder, run_id),
                             status="completed", metrics={"val_acc": {"last": acc - 0.01, "best": acc},
                                                          "val_loss": {"last": 0.25, "best": 0.2}},
                             started_at=1_800_000_000.0, ended_at=1_800_000_061.5)


@pytest.fixture
def eq(tmp_path, monkeypatch):
    """``ednaquery --store <tmp index> ARGS`` run from tmp_path, over three runs and two configs."""
    for name in list(os.environ):
        if name.startswith("EDNAQUERY_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    folder = str(tmp_path / "runs" / LONG / LONG)
    db = str(tmp_path / "index.db")
    store = open_store(db)
    try:
        store.upsert([_run("20261204-101500-aa01", folder, "resnet18", 1e-3, ACC),
                      _run("20261204-101600-aa02", folder, "vit_tiny_patch16_224", 3e-4, 0.91),
                      _run("20261204-101700-aa03", folder, "convnext_atto", 1e-4, 0.88)])
        store.upsert([make_config_document({"model": {"name": "resnet18"}, "optimizer": {"lr": 0.001},
                                            "status": "draft"}, path=str(tmp_path / "c1.yaml"), format="yaml"),
                      make_config_document({"model": "vit", "train": {"lr": "1e-3"}},
                                           path=str(tmp_path / "c2.yaml"), format="yaml")])
    finally:
        store.close()
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str):
        return CliRunner().invoke(main, ["--store", db, *args], catch_exceptions=False)

    return invoke


# ---------------------------------------------------------------- machine formats


def test_csv_has_unique_headers_and_full_precision_numbers(eq):
    r = eq("find", "kind=run", "val_acc>0.9", "id", "path", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    header = rows[0]
    assert len(header) == len(set(header)), header  # was id,kind,path,status,kind,status,val_acc,id,path
    assert header == ["id", "kind", "path", "status", "val_acc.last", "val_acc.best"]
    by_id = {row[0]: dict(zip(header, row)) for row in rows[1:]}
    assert float(by_id["20261204-101500-aa01"]["val_acc.best"]) == ACC  # not rounded to 0.96371
    assert by_id["20261204-101500-aa01"]["val_acc.last"] == repr(ACC - 0.01)


def test_json_values_always_a_dict_with_the_same_names(eq):
    r = eq("find", "lr", "model", "--format", "json")
    rows = json.loads(r.stdout)
    assert len(rows) == 5
    names = list(rows[0]["values"])
    assert {"optimizer.lr", "train.lr", "model.name", "model"} <= set(names)
    for row in rows:
        assert isinstance(row["values"], dict) and list(row["values"]) == names
    runs = [row for row in rows if row["kind"] == "run"]
    assert all(isinstance(row["values"]["optimizer.lr"], float) for row in runs)
    assert {row["values"]["train.lr"] for row in rows} == {None, "1e-3"}  # null where a document lacks it


def test_times_are_iso_8601(eq):
    rows = json.loads(eq("find", "kind=run", "timing.started_at", "--format", "json").stdout)
    for row in rows:
        for name in ("started_at", "ended_at", "indexed_at"):
            assert isinstance(row[name], str)
            datetime.datetime.fromisoformat(row[name])  # parses
        assert datetime.datetime.fromisoformat(row["started_at"]).timestamp() == 1_800_000_000.0
        assert row["values"]["timing.started_at"] == row["started_at"]


def test_jsonl_and_yaml_carry_the_same_records(eq):
    jl = [json.loads(line) for line in eq("find", "--kind", "run", "val_acc", "--format", "jsonl").stdout.splitlines()]
    y = yaml.safe_load(eq("find", "--kind", "run", "val_acc", "--format", "yaml").stdout)
    assert [o["values"] for o in jl] == [o["values"] for o in y]
    assert all(list(o["values"]) == ["val_acc.last", "val_acc.best"] for o in jl)


def test_columns_option_chooses_the_columns(eq):
    r = eq("find", "kind=run", "--columns", "model,optimizer.lr,val_loss", "--format", "csv")
    header = next(csv.reader(io.StringIO(r.stdout)))
    assert header == ["id", "kind", "path", "status", "model.name", "optimizer.lr", "val_loss.last",
                      "val_loss.best"]
    t = eq("find", "kind=run", "--columns", "model,lr")
    assert t.stdout.splitlines()[0].split() == ["id", "kind", "path", "model", "lr"]
    bad = eq("find", "--columns", ",")
    assert bad.exit_code == 2 and "--columns" in bad.stderr


def test_a_config_key_named_like_a_reserved_field_keeps_a_unique_name(eq):
    rows = json.loads(eq("find", "status", "or", ".status", "--format", "json").stdout)
    assert list(rows[0]["values"]) == ["status", "config.status"]
    cfg = next(r for r in rows if r["kind"] == "config")
    assert cfg["values"] == {"status": None, "config.status": "draft"}
    assert {r["values"]["status"] for r in rows if r["kind"] == "run"} == {"completed"}


# ---------------------------------------------------------------- tables


def test_table_at_80_columns_keeps_every_asked_value_on_one_line(eq, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = eq("find", "kind=run", "model", "optimizer.lr", "val_acc", "epochs")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 4, r.stdout  # header + one line per run: nothing wrapped
    assert all(len(line.rstrip()) <= 80 for line in lines), r.stdout
    assert lines[0].split() == ["id", "kind", "path", "model", "optimiz…", "val_acc", "epochs"]
    for line in lines[1:]:
        cells = line.split()
        assert len(cells) >= 7
        assert "…" in cells[2] and cells[2].startswith("runs") and cells[2].endswith(cells[0][-4:])  # middle cut
    assert "resnet18" in r.stdout and "0.001" in r.stdout
    # more asked-about keys than fit beside the path: the path goes, every asked value stays
    r = eq("find", "kind=run", "model", "optimizer.lr", "val_acc", "val_loss", "epochs", "optimizer.name")
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and all(len(line.rstrip()) <= 80 for line in lines), r.stdout
    assert lines[0].split()[:2] == ["id", "kind"] and len(lines[0].split()) == 8


def test_table_ids_stay_8_characters_and_show_accepts_them(eq, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = eq("find", "kind=config", "model", "lr")
    lines = r.stdout.splitlines()
    ids = [line.split()[0] for line in lines[1:]]
    assert ids and all(len(i) >= 8 for i in ids)
    for i in ids:
        assert eq("show", i).exit_code == 0


def test_piped_table_is_never_wrapped(eq):
    r = eq("find", "kind=run", "model", "optimizer.lr", "val_acc", "val_loss")  # no COLUMNS, not a terminal
    lines = r.stdout.splitlines()
    assert len(lines) == 4
    assert all(os.path.join("runs", LONG, LONG) in line for line in lines[1:])  # whole paths, no …
    assert "…" not in r.stdout


# ---------------------------------------------------------------- fitting


def test_cut_middle_and_end():
    assert cut_middle("runs/2026/abc/metrics.jsonl", 12) == "runs/….jsonl"
    assert cut_middle("abcdefghij", 5) == "ab…ij"
    assert cut_middle("short", 10) == "short"
    assert cut_end("0.9637123", 6) == "0.963…"
    assert cut_end("abc", 3) == "abc"


def test_fit_widths_never_drops_a_column():
    natural = [20, 13, 70, 19, 20, 10, 30]
    specs = [FitColumn(floor=20, soft=None), FitColumn(floor=4, soft=None),
             FitColumn(floor=10, soft=24, first=True, middle=True)] + [FitColumn(floor=6)] * 4
    w = fit_widths(natural, specs, 80)
    assert sum(w) + 2 * (len(w) - 1) <= 80
    assert w[0] == 20 and all(x >= 4 for x in w) and min(w[3:]) >= 6
    assert fit_widths(natural, specs, None) == natural
    assert fit_widths([5, 5], [FitColumn(), FitColumn()], 80) == [5, 5]


def test_fit_table_drops_the_optional_columns_first():
    from ednaquery.tablefit import fit_table

    header = ["id", "kind", "path", "a", "b", "c", "d", "e", "f", "g"]
    rows = [["20261204-101500-aa01", "run:completed", "runs/" + "x" * 60] + ["0.123456789"] * 7]
    specs = [FitColumn(floor=20, soft=None), FitColumn(floor=4, soft=None), FitColumn(floor=10, first=True)]
    specs += [FitColumn(floor=6)] * 7
    h, r, widths, kept = fit_table(header, rows, specs, 80, droppable=(2, 1))
    assert kept == [0, 3, 4, 5, 6, 7, 8, 9] and h[0] == "id" and len(r[0]) == 8  # path and kind went
    assert sum(widths) + 2 * (len(widths) - 1) <= 80
    assert fit_table(header, rows, specs, None, droppable=(2, 1))[3] == list(range(10))
