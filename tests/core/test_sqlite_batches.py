"""The embedded store's batched writes: a batch leaves the store as the same updates one by one.

``SQLiteStore.apply`` looks up a whole batch's ids and paths at once and skips work for new
documents and new files; whatever a batch holds (the same content at two paths, a path twice,
a file that changes or disappears in the batch that also moves its content elsewhere), the
result must be what applying the updates one at a time gives. ``bulk_load`` (used by a big
first scan) drops and rebuilds the leaf indexes: results must not change, and the indexes
must be back afterwards, also after an error and after a writer was killed in between.
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ednaquery.documents import make_config_document
from ednaquery.query import compile_query
from ednaquery.store import FileState, FindOptions, PathUpdate
from ednaquery.store import sqlite as sqlite_mod
from ednaquery.store.sqlite import SQLiteStore

PATHS = [f"/r/cfg{i}.yaml" for i in range(4)]
CONTENTS = [{"model": {"name": n}, "optimizer": {"lr": lr}, "tags": ["a", n]}
            for n, lr in (("vit", "1e-3"), ("resnet", 0.1), ("vit", 0.1), ("eva02", 3e-4))]


def update(path: str, content: int | None, t: int) -> PathUpdate:
    if content is None:
        return PathUpdate(path, [], None)
    doc = make_config_document(CONTENTS[content], path=path, format="yaml", size=t, mtime=float(t))
    doc["indexed_at"] = 0.0
    return PathUpdate(path, [doc], FileState(t, t, 1))


def snapshot(store: SQLiteStore) -> dict:
    """Everything a reader can see, in a comparable form (rids and row order aside)."""
    docs = {}
    for doc_id, body in store.db.execute("SELECT id, body FROM docs"):
        d = store._unpack(body)
        d.pop("indexed_at", None)
        docs[doc_id] = d
    leaves = sorted(store.db.execute(
        "SELECT d.id, l.i, p.p, l.t, l.n, s.s, s.w FROM leaves l JOIN docs d ON d.rid=l.rid "
        "JOIN paths p ON p.pid=l.pid LEFT JOIN strs s ON s.sid=l.sid WHERE p.p NOT LIKE '%indexed_at'"),
        key=repr)
    paths = sorted(store.db.execute("SELECT x.path, d.id, x.live FROM doc_paths x JOIN docs d ON d.rid=x.rid"))
    files = sorted(store.db.execute("SELECT * FROM files"))
    cols = sorted(store.db.execute("SELECT id, kind, current, deleted, path0 FROM docs"))
    return {"docs": docs, "leaves": leaves, "paths": paths, "files": files, "cols": cols}


steps = st.lists(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.none(), st.integers(0, 3))),
                          min_size=1, max_size=6), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(batches=steps)
def test_a_batch_gives_what_its_updates_give_one_by_one(batches: list, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("b")
    batched, single = SQLiteStore(folder / "a.db"), SQLiteStore(folder / "b.db")
    try:
        t = 0
        for batch in batches:
            ups = []
            for path, content in batch:
                t += 1
                ups.append(update(path, content, t))
            batched.apply(ups)
            for up in ups:
                single.apply([up])
            assert snapshot(batched) == snapshot(single)
    finally:
        batched.close()
        single.close()


def _sweep(n: int) -> list[PathUpdate]:
    rng = random.Random(n)
    out = []
    for i in range(n):
        cfg = {"model": {"name": rng.choice(["vit_base", "resnet50", "eva02_tiny"])},
               "optimizer": {"lr": rng.choice(["1e-3", 3e-4, 0.1]), "name": rng.choice(["adamw", "sgd"])},
               "data": {"img_size": rng.choice([32, 224]), "flip": rng.choice([True, False, None])}, "seed": i}
        path = f"/r/g{i // 10}/cfg{i}.yaml"
        doc = make_config_document(cfg, path=path, format="yaml", size=i, mtime=1.0)
        out.append(PathUpdate(path, [doc], FileState(i, i, i)))
    return out


QUERIES = ["lr<1e-3", "model=vit", "img_size=224 optimizer=sgd", "flip=true", "flip=null", "not lr=0.1", "seed>=5"]


def _answers(store: SQLiteStore) -> list:
    return [sorted(d["_id"] for d in store.find(compile_query(q), FindOptions())) for q in QUERIES]


def _leaf_indexes(store: SQLiteStore) -> set[str]:
    return {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='index' AND name LIKE 'leaves_%'")}


def test_bulk_load_gives_the_same_answers_and_keeps_the_indexes(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_mod, "BULK_MIN_DOCS", 10)
    ups = _sweep(60)
    plain, bulk = SQLiteStore(tmp_path / "plain.db"), SQLiteStore(tmp_path / "bulk.db")
    indexes = _leaf_indexes(plain)
    assert indexes == set(sqlite_mod._BULK_INDEXES)
    for i in range(0, 60, 25):
        plain.apply(ups[i:i + 25])
    with bulk.bulk_load(len(ups)):
        assert _leaf_indexes(bulk) == set()  # dropped while the documents go in ...
        for i in range(0, 60, 25):
            bulk.apply(ups[i:i + 25])
        assert _answers(bulk) == _answers(plain)  # ... queries still answer (without them)
    assert _leaf_indexes(bulk) == indexes  # ... and built again at the end
    assert _answers(bulk) == _answers(plain) and all(_answers(plain))
    plan = " ".join(r[-1] for r in bulk.db.execute(
        "EXPLAIN QUERY PLAN SELECT rid FROM leaves WHERE pid=1 AND n < 0.001"))
    assert "leaves_num" in plan
    # a small load into a big store keeps its indexes all along
    with bulk.bulk_load(10):
        assert _leaf_indexes(bulk) == indexes
    plain.close()
    bulk.close()


def test_indexes_come_back_after_an_error_or_a_killed_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_mod, "BULK_MIN_DOCS", 10)
    store = SQLiteStore(tmp_path / "i.db")
    indexes = _leaf_indexes(store)
    with pytest.raises(RuntimeError), store.bulk_load(50):
        store.apply(_sweep(20))
        raise RuntimeError("converter crashed")
    assert _leaf_indexes(store) == indexes
    store.close()
    # a writer killed inside bulk_load leaves the indexes dropped and its marker: the next open builds them,
    # also when its pid now belongs to another process (a restarted container) or to this one
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    host = socket.gethostname()
    for marker in (f"{host}:{dead}", f"{host}:{dead}:123", f"{host}:{os.getpid()}:1", f"{host}:{os.getppid()}:1"):
        killed = SQLiteStore(tmp_path / "i.db")
        for name in sqlite_mod._BULK_INDEXES:
            killed.db.execute(f"DROP INDEX {name}")
        killed.db.execute("INSERT OR REPLACE INTO meta VALUES ('bulk_load', ?)", (marker,))
        killed.close()
        again = SQLiteStore(tmp_path / "i.db")
        assert _leaf_indexes(again) == indexes, marker
        assert again.db.execute("SELECT v FROM meta WHERE k='bulk_load'").fetchone() is None
        again.close()


def test_a_reader_opening_during_a_live_bulk_load_leaves_the_indexes_to_the_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the indexes is the writer's job at its end: a reader must not do it (slowly, under
    the write lock) in the middle of a big first scan. It still answers, from the tables."""
    monkeypatch.setattr(sqlite_mod, "BULK_MIN_DOCS", 10)
    writer = SQLiteStore(tmp_path / "w.db")
    indexes = _leaf_indexes(writer)
    with writer.bulk_load(50):
        writer.apply(_sweep(20))
        reader = SQLiteStore(tmp_path / "w.db")  # this process is alive: the marker holds
        assert _leaf_indexes(reader) == set()
        assert _answers(reader) == _answers(writer) and all(_answers(reader))
        reader.close()
    assert _leaf_indexes(writer) == indexes
    assert writer.db.execute("SELECT v FROM meta WHERE k='bulk_load'").fetchone() is None
    writer.close()


def test_dependants_of_many_paths_at_once(tmp_path: Path) -> None:
    """``dependants`` answers for a whole scan's paths (chunked lookups), live paths only."""
    store = SQLiteStore(tmp_path / "d.db")
    assert store.dependants(["/r/base.yaml"]) == []  # no dependencies stored yet
    docs = []
    for i in range(3):
        doc = make_config_document({"i": i}, path=f"/r/child{i}.yaml", format="yaml", size=1, mtime=1.0,
                                   depends_on=[f"/r/base{i}.yaml", "/r/common.yaml"])
        docs.append(PathUpdate(f"/r/child{i}.yaml", [doc], FileState(1, 1, 1)))
    store.apply(docs)
    store.apply([PathUpdate("/r/child2.yaml", [], None)])  # gone: no longer a live dependant
    noise = [f"/r/other{i}.yaml" for i in range(1200)]
    assert store.dependants(noise + ["/r/base1.yaml"]) == ["/r/child1.yaml"]
    assert store.dependants(["/r/common.yaml"] + noise) == ["/r/child0.yaml", "/r/child1.yaml"]
    assert store.dependants(noise) == []
    store.close()
