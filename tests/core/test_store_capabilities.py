"""What the ``Store`` interface offers beside queries: another process can open the same store
(``reopen_uri``), and a backend that lacks a capability says so instead of failing later."""
from __future__ import annotations

from pathlib import Path

import mongomock

from ednaquery.documents import make_config_document
from ednaquery.query import compile_query
from ednaquery.store import open_store
from ednaquery.store.base import JobHome, Store
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore


def test_reopen_uri_opens_the_same_store(tmp_path: Path, monkeypatch) -> None:
    store = SQLiteStore(tmp_path / "index.db")
    store.upsert([make_config_document({"lr": 0.1}, path=str(tmp_path / "a.yaml"), format="yaml")])
    store.close()
    monkeypatch.chdir(tmp_path)
    relative = SQLiteStore("index.db")  # opened by a relative path, reopened from anywhere
    uri = relative.reopen_uri()
    relative.close()
    monkeypatch.chdir("/")
    with open_store(uri) as again:
        assert again.count(compile_query("lr=0.1")) == 1
    mongo = MongoStore("mongodb://u:secret@localhost/caps_test", client=mongomock.MongoClient())
    assert mongo.reopen_uri() == "mongodb://u:secret@localhost/caps_test"


def test_each_backend_says_where_its_job_queue_lives(tmp_path: Path) -> None:
    sqlite = SQLiteStore(tmp_path / "index.db")
    assert sqlite.job_home() == JobHome(sqlite_path=str(tmp_path / "index.db"))
    mongo = MongoStore("mongodb://localhost/caps_test", client=mongomock.MongoClient())
    home = mongo.job_home()
    assert home.sqlite_path is None and home.mongo_database.name == "caps_test" and home.guard is not None


#: a backend that implements only the abstract methods (doing nothing)
_Bare = type("_Bare", (Store,), {name: (lambda self, *a, **k: None) for name in Store.__abstractmethods__})


def test_a_backend_without_capabilities_gets_safe_defaults() -> None:
    store = _Bare()
    assert not store.takes_packed_bodies and store.body_dictionary() is None
    with store.bulk_load(10_000):
        pass
    assert store.reopen_uri() is None and store.job_home() == JobHome()
