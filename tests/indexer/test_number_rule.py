"""Equal numbers are equal everywhere: config ids, ``diff``, and the once-only re-index of old stores.

YAML 1.1 loads ``lr: 1e-3`` as the string ``"1e-3"``; an override writes the float 0.001.
Both are one config (one id), ``diff`` sees no difference, and a store whose ids an older
rule made says so once and has every file read again.
"""
from __future__ import annotations

import logging
import sqlite3

import mongomock
import yaml

from ednaquery.documents import ID_VERSION, config_id, make_config_document, make_run_document, parse_number
from ednaquery.results import diff_documents, problems
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore
from indexer.scan import scan


def test_lr_1e_3_from_yaml_and_from_an_override_is_one_config_id():
    loaded = yaml.safe_load("optimizer: {name: adamw, lr: 1e-3}\ntrain: {epochs: 2}")
    assert loaded["optimizer"]["lr"] == "1e-3"  # YAML 1.1: a string
    overridden = {"optimizer": {"name": "adamw", "lr": 1e-3}, "train": {"epochs": 2}}
    written = {"optimizer": {"name": "adamw", "lr": 0.001}, "train": {"epochs": 2.0}}
    ids = {config_id(loaded), config_id(overridden), config_id(written),
           make_config_document(loaded, path=None, format="yaml")["_id"]}
    assert len(ids) == 1
    assert config_id({"lr": "1e-4"}) != config_id({"lr": 1e-3})  # different numbers stay different
    assert config_id({"name": "resnet18"}) != config_id({"name": "resnet19"})


def test_the_number_rule():
    assert parse_number("1e-3") == 0.001 and parse_number(" 32 ") == 32 and isinstance(parse_number("32"), int)
    assert parse_number("1_000") == 1000 and parse_number(".5") == 0.5
    assert parse_number("resnet18") is None and parse_number("nan") is None and parse_number("") is None


def test_diff_compares_numbers_by_value():
    a = make_config_document({"optimizer": {"lr": "1e-3"}, "epochs": 10}, path=None, format="yaml")
    b = make_config_document({"optimizer": {"lr": 0.001}, "epochs": 10.0}, path=None, format="derived")
    assert diff_documents(a, b) == []
    c = make_config_document({"optimizer": {"lr": 3e-4}, "epochs": 10}, path=None, format="derived")
    assert [k for k, _, _ in diff_documents(a, c)] == ["optimizer.lr"]
    assert [k for k, _, _ in diff_documents({"config": {"x": True}}, {"config": {"x": 1}})] == ["x"]


def test_diff_run_config_treats_default_filled_keys_as_equal():
    config = make_config_document({"model": {"name": "resnet18"}, "optimizer": {"lr": "1e-3"}}, path=None,
                                  format="yaml")
    run_config = {"model": {"name": "resnet18", "pretrained": False},
                  "optimizer": {"lr": 0.001, "momentum": 0.9, "betas": [0.9, 0.999]},
                  "train": {"epochs": 5}}
    run = make_run_document("20261204-000000-abcd", config=run_config, config_id=config["_id"], path="/r",
                            status="completed", metrics={},
                            info={"default_keys": ["model.pretrained", "optimizer.momentum", "optimizer.betas"]})
    rows = diff_documents(run, config)
    # train.epochs was an override (not a default): the one real difference; no "(absent)" defaults
    assert [k for k, _, _ in rows if not k.startswith("(")] == ["train.epochs"]
    assert [k for k, _, _ in diff_documents(config, run) if not k.startswith("(")] == ["train.epochs"]


def _write_tree(root):
    (root / "a.yaml").write_text("optimizer: {lr: 1e-3}\n")
    (root / "b.yaml").write_text("optimizer: {lr: 3e-4}\n")


def _make_old(store, path, old_id: str) -> None:
    """Make ``path`` hold a document under the id an older rule gave it (as the previous version wrote)."""
    import os

    from ednaquery.store.base import FileState, PathUpdate

    st = os.stat(path)
    doc = make_config_document(yaml.safe_load(path.read_text()), path=str(path), format="yaml")
    doc["_id"] = old_id
    store.apply([PathUpdate(str(path), [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino))])


def test_an_sqlite_store_of_the_old_rule_says_so_once_and_reindexes(tmp_path, caplog):
    root = tmp_path / "configs"
    root.mkdir()
    _write_tree(root)
    path = tmp_path / "index.db"
    store = SQLiteStore(path)
    scan(store, [str(root)], workers=0)
    new_a = config_id({"optimizer": {"lr": 0.001}})
    assert store.get(new_a[:12])["paths"] == [str(root / "a.yaml")]
    _make_old(store, root / "a.yaml", "0" * 64)
    store.db.execute("DELETE FROM meta WHERE k='ids'")  # the previous version recorded no id version
    store.close()

    with caplog.at_level(logging.WARNING, logger="ednaquery.store"):
        store = SQLiteStore(path)
    said = [r for r in caplog.records if "re-indexing" in r.getMessage()]
    assert len(said) == 1 and "2 file(s)" in said[0].getMessage()
    report = scan(store, [str(root)], workers=0)
    assert report.unchanged == 0  # every file read again
    assert store.get(new_a[:12])["paths"] == [str(root / "a.yaml")]
    assert not store.get("0" * 12).get("current", True)  # the old id is an old version, not a live one
    store.close()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ednaquery.store"):
        store = SQLiteStore(path)
        assert scan(store, [str(root)], workers=0).unchanged == 2  # once: nothing is read again
    assert not [r for r in caplog.records if "re-indexing" in r.getMessage()]
    store.close()


def test_a_new_sqlite_store_records_the_id_version_silently(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ednaquery.store"):
        SQLiteStore(tmp_path / "index.db").close()
        SQLiteStore(tmp_path / "index.db").close()
    assert not caplog.records
    db = sqlite3.connect(tmp_path / "index.db")
    assert db.execute("SELECT v FROM meta WHERE k='ids'").fetchone() == (str(ID_VERSION),)


def test_a_mongo_store_of_the_old_rule_says_so_once_and_reindexes(tmp_path, caplog):
    root = tmp_path / "configs"
    root.mkdir()
    _write_tree(root)
    client = mongomock.MongoClient()
    store = MongoStore("mongodb://localhost/edna_ids", client=client)
    scan(store, [str(root)], workers=0)
    _make_old(store, root / "a.yaml", "0" * 64)
    client["edna_ids"]["meta"].delete_many({})  # what the previous version left: no id version
    store.close()

    with caplog.at_level(logging.WARNING, logger="ednaquery.store"):
        store = MongoStore("mongodb://localhost/edna_ids", client=client)
        assert scan(store, [str(root)], workers=0).unchanged == 0
        assert store.get(config_id({"optimizer": {"lr": 0.001}})[:12])["paths"] == [str(root / "a.yaml")]
        assert not store.get("0" * 12).get("current", True)
        store.close()
        store = MongoStore("mongodb://localhost/edna_ids", client=client)
        assert scan(store, [str(root)], workers=0).unchanged == 2
    assert len([r for r in caplog.records if "re-indexing" in r.getMessage()]) == 1
    assert client["edna_ids"]["meta"].find_one({"_id": "ids"})["v"] == ID_VERSION


def _old_derived() -> dict:
    """A derived config as the previous version stored it: old-rule id, a "derived from" warning."""
    doc = make_config_document({"model": {"name": "resnet18"}, "optimizer": {"lr": "1e-3"}, "epochs": 3},
                               path=None, format="derived", warnings=["derived from abcd with epochs=3"])
    doc.update(_id="1" * 64, tags=["derived"], derived_from="abcd" * 16, overrides=["epochs=3"])
    return doc


def _check_rekeyed(store) -> None:
    new_id = config_id({"model": {"name": "resnet18"}, "optimizer": {"lr": 0.001}, "epochs": 3})
    new = store.get(new_id)
    assert new["current"] and new["derived_from"] == "abcd" * 16 and new["overrides"] == ["epochs=3"]
    assert new["tags"] == ["derived"] and new["warnings"] == []
    assert not store.get("1" * 12)["current"]  # the old id: a past version, not a live config
    assert problems(store) == []


def test_configs_without_a_file_get_their_new_id_at_once_sqlite(tmp_path, caplog):
    store = SQLiteStore(tmp_path / "index.db")
    store.upsert([_old_derived()])
    store.db.execute("DELETE FROM meta WHERE k='ids'")
    store.close()
    with caplog.at_level(logging.WARNING, logger="ednaquery.store"):
        store = SQLiteStore(tmp_path / "index.db")
    assert len([r for r in caplog.records if "1 config(s) without a file" in r.getMessage()]) == 1
    _check_rekeyed(store)
    store.close()


def test_configs_without_a_file_get_their_new_id_at_once_mongo():
    client = mongomock.MongoClient()
    store = MongoStore("mongodb://localhost/edna_rekey", client=client)
    store.upsert([_old_derived()])
    client["edna_rekey"]["meta"].delete_many({})
    store = MongoStore("mongodb://localhost/edna_rekey", client=client)
    _check_rekeyed(store)
