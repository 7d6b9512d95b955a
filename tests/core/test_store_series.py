"""Metric series beside the documents: replaced when a run is read again, deleted with the run,
never inside the run document; and an index made before the series table gains it when opened."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import mongomock
import pytest

from ednaquery.documents import make_run_document
from ednaquery.store.base import FileState, PathUpdate, Store
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SCHEMA_VERSION, SQLiteStore


@pytest.fixture(params=["sqlite", "mongomock"])
def store(request, tmp_path: Path) -> Store:
    s: Store = SQLiteStore(tmp_path / "index.db") if request.param == "sqlite" else \
        MongoStore("mongodb://localhost/series_test", client=mongomock.MongoClient())
    yield s
    s.close()


def _run(run_id: str, folder: Path) -> dict:
    return make_run_document(run_id, config={"lr": 0.1}, config_id=None, path=str(folder), status="running",
                             metrics={"val_acc": {"last": 0.5}})


def _rows(n: int, metric: str = "val_acc") -> list[tuple]:
    return [(metric, 10 * e, e, 0.1 * e) for e in range(1, n + 1)]


def test_apply_writes_series_and_a_new_read_replaces_it(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "run1" / "metrics.jsonl"
    store.apply([PathUpdate(str(f), [_run("run1", f.parent)], FileState(1, 1, 1), series={"run1": _rows(2)})])
    assert store.series(["run1"]) == [("run1", "val_acc", 10, 1, 0.1), ("run1", "val_acc", 20, 2, 0.2)]
    store.apply([PathUpdate(str(f), [_run("run1", f.parent)], FileState(2, 2, 1),
                            series={"run1": _rows(3) + _rows(1, "loss")})])
    assert [p[3] for p in store.series(["run1"], ["val_acc"])] == [1, 2, 3]
    assert [p[1] for p in store.series(["run1"])] == ["loss", "val_acc", "val_acc", "val_acc"]
    assert "series" not in store.get("run1") and "points" not in store.get("run1")


def test_an_update_without_series_keeps_it_and_the_runs_come_in_the_order_asked(store: Store, tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "m.csv", tmp_path / "b" / "m.csv"
    store.apply([PathUpdate(str(a), [_run("runa", a.parent)], FileState(1, 1, 1), series={"runa": _rows(1)}),
                 PathUpdate(str(b), [_run("runb", b.parent)], FileState(1, 1, 2), series={"runb": _rows(2)})])
    store.apply([PathUpdate(str(a), [_run("runa", a.parent)], FileState(3, 3, 1))])
    assert [p[0] for p in store.series(["runb", "runa", "missing"])] == ["runb", "runb", "runa"]
    assert store.series([]) == []


def test_series_go_when_the_run_is_deleted(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "run1" / "metrics.jsonl"
    store.apply([PathUpdate(str(f), [_run("run1", f.parent)], FileState(1, 1, 1), series={"run1": _rows(3)})])
    store.apply([PathUpdate(str(f), [], None)])  # the run's last file is gone
    assert store.get("run1")["deleted"] is True
    assert store.series(["run1"]) == []


def test_replace_series_for_upserted_runs(store: Store, tmp_path: Path) -> None:
    store.upsert([_run("run9", tmp_path / "run9")])
    store.replace_series({"run9": _rows(2)})
    store.replace_series({"run9": _rows(4)})
    assert len(store.series(["run9"])) == 4
    store.replace_series({"run9": []})
    assert store.series(["run9"]) == []


def test_mongo_keeps_long_series_in_buckets_indexed_on_run_metric_step() -> None:
    store = MongoStore("mongodb://localhost/series_buckets", client=mongomock.MongoClient())
    store.upsert([_run("long", Path("/x/long"))])
    store.replace_series({"long": _rows(2500)})
    assert store.series_coll.count_documents({"run": "long"}) == 3
    assert [p[3] for p in store.series(["long"])] == list(range(1, 2501))
    assert "run_metric_step" in store.series_coll.index_information()
    # mid-replacement (the new generation written, the old one not deleted yet) a reader sees the new one
    old = store.series_coll.find_one({"run": "long", "b": 0}, {"_id": 0})
    store.replace_series({"long": _rows(2)})
    store.series_coll.insert_one(dict(old, g=old["g"] - 1))
    assert [p[3] for p in store.series(["long"])] == [1, 2]


def test_a_v2_index_gains_the_series_table_and_its_runs_are_read_again(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    store = SQLiteStore(db)
    f = tmp_path / "run1" / "metrics.jsonl"
    cfg = tmp_path / "c.yaml"
    from ednaquery.documents import make_config_document

    store.apply([PathUpdate(str(f), [_run("run1", f.parent)], FileState(1, 1, 1)),
                 PathUpdate(str(cfg), [make_config_document({"a": 1}, path=str(cfg), format="yaml")],
                            FileState(1, 1, 2))])
    store.close()
    con = sqlite3.connect(db)  # what ednaquery before the series table left
    con.execute("DROP TABLE series")
    con.execute("UPDATE meta SET v='2' WHERE k='schema'")
    con.commit()
    con.close()
    store = SQLiteStore(db)
    try:
        assert store.db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()[0] == str(SCHEMA_VERSION)
        assert "series_run" in store.ensure_indexes()
        assert set(store.file_states()) == {str(cfg)}  # the run's file is read again by the next scan
        assert store.get("run1")["kind"] == "run"
        store.replace_series({"run1": _rows(1)})
        assert len(store.series(["run1"])) == 1
    finally:
        store.close()
