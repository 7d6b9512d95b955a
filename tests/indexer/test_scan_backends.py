"""The scan through the ``Store`` interface alone: a backend without packed bodies or a bulk-load
mode (MongoDB) ends up with the same documents as the embedded store."""
from __future__ import annotations

from pathlib import Path

import mongomock

from ednaquery.query import compile_query
from ednaquery.store import FindOptions, Store
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore
from indexer.scan import scan


def _contents(store: Store) -> dict:
    docs = store.find(compile_query(""), FindOptions(kinds=("config", "run", "error"), all_versions=True))
    return {d["_id"]: (sorted(d["paths"]), d.get("config")) for d in docs}


def test_a_store_without_packed_bodies_gets_the_same_documents(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    root.mkdir()
    for i in range(12):
        (root / f"c{i:02d}.yaml").write_text(f"model:\n  name: m{i % 3}\noptimizer:\n  lr: {i}e-4\n")
    (root / "bad.yaml").write_text("model: [unclosed\n")
    sqlite = SQLiteStore(tmp_path / "index.db")
    mongo = MongoStore("mongodb://localhost/scan_test", client=mongomock.MongoClient())
    try:
        assert sqlite.takes_packed_bodies and not mongo.takes_packed_bodies and mongo.body_dictionary() is None
        for store in (sqlite, mongo):
            rep = scan(store, [str(root)], workers=2)
            assert rep.converted == 13 and rep.errors == 1
        assert _contents(sqlite) == _contents(mongo) and len(_contents(mongo)) == 13
        assert mongo.count(compile_query("model.name=m1")) == sqlite.count(compile_query("model.name=m1")) == 4
    finally:
        sqlite.close()
        mongo.close()
