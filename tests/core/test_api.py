"""The Python API (``ednaquery.connect``): records, DataFrames and metric series, on SQLite and MongoDB.

A small sweep of run folders is indexed with the one-shot scan into each store; the API must
answer what the CLI answers (same settings, same aliases), give plain records (unescaped keys),
DataFrames with numbers as numbers at full precision, and the logged curves from the store.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import mongomock
import pytest
from click.testing import CliRunner

import ednaquery
from ednaquery.api import Index, Record, Results
from ednaquery.cli import main
from ednaquery.errors import NotFound, QuerySyntaxError, UsageError
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore
from indexer.scan import scan

pd = pytest.importorskip("pandas")

#: (folder, lr as written, model, val_acc per epoch)
RUNS = [
    ("r0", "1e-4", "vit", [0.5, 0.61, 0.7123456789012345]),
    ("r1", "3e-4", "vit", [0.55, 0.75, 0.74]),
    ("r2", "0.001", "resnet", [0.4, 0.5, 0.6]),
]


def _write_sweep(root: Path) -> None:
    for name, lr, model, accs in RUNS:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(
            f"model: {model}\noptimizer:\n  name: adamw\n  lr: {lr}\nepochs: {len(accs)}\n"
            "\"a.b\": 1\n")
        with open(folder / "metrics.jsonl", "w") as fh:
            fh.writelines(json.dumps({"epoch": epoch, "step": 100 * epoch, "val_acc": acc,
                                     "val_loss": 1.0 / epoch}) + "\n" for epoch, acc in enumerate(accs, 1))
    (root / "plain.yaml").write_text("model: convnext\neta: 0.0001\n")


@pytest.fixture(params=["sqlite", "mongomock"])
def ix(request, tmp_path: Path) -> Index:
    root = tmp_path / "exp"
    _write_sweep(root)
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "index.db")
    else:
        store = MongoStore("mongodb://localhost/api_test", client=mongomock.MongoClient())
    scan(store, [str(root)], workers=1)
    index = Index(store)
    yield index
    index.close()


def _name(rec: Record) -> str:
    """The run folder's name (a run's path is its folder)."""
    assert rec.path is not None and os.path.isdir(rec.path)
    return os.path.basename(rec.path)


def _runs(ix: Index) -> Results:
    return ix.find("kind=run", sort="optimizer.lr")


def test_find_gives_plain_records_with_the_documented_fields(ix: Index) -> None:
    found = ix.find("lr<1e-3 model=vit", kind="run")
    assert isinstance(found, Results) and len(found) == 2
    rec = found[0]
    assert isinstance(rec, Record)
    assert rec.kind == "run" and rec.status == "unknown"
    assert _name(rec) in ("r0", "r1")
    assert rec.config["optimizer"]["name"] == "adamw"
    assert rec.config["a.b"] == 1  # keys unescaped, not the store's %-escaped form
    assert set(rec.metrics) == {"val_acc", "val_loss"}
    assert rec.metrics["val_acc"]["best"] == max({n: a for n, _, _, a in RUNS}[_name(rec)])
    assert set(rec.values) == {"optimizer.lr", "model"} and rec.values["model"] == "vit"  # unique leaf names
    assert rec.tags == [] and rec.note is None and rec.indexed_at is not None
    assert "_id" not in rec.config and rec.id == rec.doc["_id"]


def test_sort_limit_kind_best_by_count_get(ix: Index) -> None:
    runs = ix.find(kind="run", sort="-optimizer.lr")
    assert [_name(r) for r in runs] == ["r2", "r1", "r0"]
    assert len(ix.find(kind="run", sort="optimizer.lr", limit=2)) == 2
    best = ix.find(kind="run", best="val_acc", by="model")
    assert {_name(r) for r in best} == {"r1", "r2"}  # vit's best is r1 (0.75)
    assert ix.count("kind=run") == 3 and ix.count("model=vit", kind="run") == 2
    assert ix.count("model=vit", kind="config") == 0  # a run folder's config.yaml is part of the run
    one = runs[0]
    assert ix.get(one.id[:8]).id == one.id
    with pytest.raises(NotFound):
        ix.get("zzzzzzzz")
    with pytest.raises(UsageError):
        ix.find(best="val_acc", sort="lr")
    with pytest.raises(QuerySyntaxError):
        ix.find("lr<<")


def test_keys_and_history(ix: Index, tmp_path: Path) -> None:
    paths = {".".join(k.path) for k in ix.keys("lr")}
    assert paths == {"optimizer.lr"}  # eta is no alias of lr here
    assert {".".join(k.path) for k in ix.keys("optimizer.*")} == {"optimizer.lr", "optimizer.name"}
    hist = ix.history(tmp_path / "exp" / "plain.yaml")
    assert len(hist) == 1 and hist[0].config["model"] == "convnext"


def test_to_pandas_one_column_per_key_numbers_as_numbers_full_precision(ix: Index) -> None:
    frame = _runs(ix).to_pandas()
    assert len(frame) == 3
    for col in ("id", "kind", "path", "status", "optimizer.lr", "optimizer.name", "model", "epochs", "a.b",
                "val_acc.last", "val_acc.best", "val_loss.last", "val_loss.best", "started_at"):
        assert col in frame.columns, col
    # YAML reads 1e-4 as a string: the frame has the number
    assert frame["optimizer.lr"].tolist() == [1e-4, 3e-4, 1e-3]
    assert str(frame["optimizer.lr"].dtype) == "float64" and str(frame["epochs"].dtype) == "int64"
    r0 = frame.set_index(frame["path"].map(os.path.basename)).loc["r0"]
    assert r0["val_acc.last"] == 0.7123456789012345  # not rounded
    assert r0["val_loss.best"] == pytest.approx(1 / 3, rel=0, abs=0)
    assert frame["kind"].tolist() == ["run"] * 3


def test_to_pandas_of_nothing_and_of_mixed_kinds(ix: Index) -> None:
    assert len(ix.find("model=nothing_like_this").to_pandas()) == 0
    frame = ix.find("model=convnext").to_pandas()
    assert frame["eta"].tolist() == [0.0001] and frame["kind"].tolist() == ["config"]


def test_to_pandas_without_pandas_is_one_line_naming_the_extra(ix: Index, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(UsageError) as err:
        ix.find("kind=run").to_pandas()
    assert "ednaquery[frames]" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UsageError):
        ix.series(ix.find("kind=run"), "val_acc")
    assert len(ix.series_points(ix.find("kind=run"), "val_acc")) == 9  # the rows need no pandas


def test_series_is_a_long_frame_read_from_the_store(ix: Index) -> None:
    runs = _runs(ix)
    frame = ix.series(runs, "val_acc")
    assert list(frame.columns) == ["run", "epoch", "step", "metric", "value"]
    assert frame["run"].unique().tolist() == runs.ids  # in the order asked
    first = frame[frame["run"] == runs[0].id]
    assert first["epoch"].tolist() == [1, 2, 3] and first["step"].tolist() == [100, 200, 300]
    assert first["value"].tolist() == RUNS[0][3]
    both = ix.series(runs[0].id[:8], ["val_acc", "val_loss"])
    assert sorted(both["metric"].unique()) == ["val_acc", "val_loss"] and len(both) == 6
    assert len(ix.series(runs[0], None)) == 6
    assert ix.series(runs, "no_such_metric").empty


def test_connect_uses_the_settings_and_aliases_the_cli_uses(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "exp"
    _write_sweep(root)
    project = tmp_path / "proj"
    (project / ".ednaquery").mkdir(parents=True)
    (project / ".ednaquery" / "config.toml").write_text('aliases = [["lr", "eta"]]\n')
    monkeypatch.chdir(project)
    for var in ("EDNAQUERY_STORE", "EDNAQUERY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(root)]).exit_code == 0
    cli = runner.invoke(main, ["find", "lr<2e-4", "--format", "ids"])
    assert cli.exit_code == 0, cli.output
    with ednaquery.connect() as ix:
        found = ix.find("lr<2e-4")
        assert sorted(found.ids) == sorted(cli.output.split())
        assert any(r.config.get("eta") == 0.0001 for r in found)  # the configured alias applies
        assert not any(r.config.get("eta") for r in ix.find("lr<2e-4", aliases=False))
    with ednaquery.connect(str(project / ".ednaquery" / "index.db")) as ix:
        assert ix.count("kind=run") == 3


def test_connect_to_a_missing_index_is_one_clear_error(tmp_path: Path) -> None:
    from ednaquery.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="no index"):
        ednaquery.connect(str(tmp_path / "none.db"))


@pytest.mark.wire
def test_find_to_pandas_and_series_over_the_wire(wire_uri: str, tmp_path: Path, request) -> None:
    db = "w_api_" + request.node.name[:30]
    store = MongoStore(wire_uri, timeout_ms=3000, database=db)
    try:
        root = tmp_path / "exp"
        _write_sweep(root)
        scan(store, [str(root)], workers=1)
        ix = Index(store, owns_store=False)
        runs = ix.find("kind=run", sort="optimizer.lr")
        assert len(runs) == 3
        assert runs.to_pandas()["val_acc.last"].tolist() == [RUNS[0][3][-1], 0.74, 0.6]
        frame = ix.series(runs, "val_acc")
        assert len(frame) == 9 and frame[frame["run"] == runs[1].id]["value"].tolist() == RUNS[1][3]
    finally:
        store.client.drop_database(db)
        store.close()


def test_tags_and_notes_through_the_api_are_searchable(ix: Index) -> None:
    run = _runs(ix)[0]
    tagged = ix.tag(run, "+baseline", "+keep")
    assert {"baseline", "keep"} <= set(tagged.tags)
    assert ix.find("tags=baseline").ids == [run.id]
    assert set(ix.tag(run.id[:8], "-keep").tags) >= {"baseline"} and "keep" not in ix.get(run.id).tags
    assert ix.note(run, "diverged after epoch 2").note == "diverged after epoch 2"
    assert ix.find("note~diverged").ids == [run.id]
    frame = ix.find("tags=baseline").to_pandas()
    assert frame["note"].tolist() == ["diverged after epoch 2"] and "baseline" in frame["tags"][0]
    assert ix.note(run, "").note is None


def test_stats_and_problems(ix: Index, tmp_path: Path) -> None:
    assert ix.stats()["documents"]["run"]["current"] == 3
    assert ix.problems() == []


def test_reopen_reads_the_same_store_and_closing_it_leaves_this_index_open(ix: Index) -> None:
    """The ui reads its key catalogue through ``reopen()``; a tag written here is seen there."""
    run = _runs(ix)[0]
    ix.tag(run, "+seen")
    with ix.reopen() as other:
        assert other.find("tags=seen").ids == [run.id]
        assert [k.path for k in other.keys(None)] == [k.path for k in ix.keys(None)]
        assert other.aliases == ix.aliases
    assert ix.find("tags=seen").ids == [run.id]  # still usable once the reopened index is closed
