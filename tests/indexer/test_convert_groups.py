"""The indexer turns a group.json (k-fold / bagging group of runs) into one kind=group document."""
from __future__ import annotations

from pathlib import Path

from ednaquery.groups import write_group
from indexer.convert.core import convert_path


def test_group_file_becomes_a_group_document(tmp_path: Path) -> None:
    path = tmp_path / "cv-20261204-221530-3fa9" / "group.json"
    members = [{"config_id": "a" * 64, "fold": 0, "run_id": "r0", "status": "completed", "metrics": {"val_acc": 0.8}},
               {"config_id": "b" * 64, "fold": 1, "run_id": "r1", "status": "completed", "metrics": {"val_acc": 0.9}}]
    write_group(path, {"group_id": "cv-20261204-221530-3fa9", "method": "cv", "folds": 2, "config_id": "c" * 64,
                       "config": {"model": {"name": "resnet18"}}, "members": members})
    (doc,) = convert_path(path)
    assert (doc["kind"], doc["_id"], doc["status"]) == ("group", "cv-20261204-221530-3fa9", "completed")
    assert doc["paths"] == [str(path)] and doc["info"]["runs"] == ["r0", "r1"]
    assert abs(doc["metrics"]["val_acc"]["mean"] - 0.85) < 1e-12


def test_a_broken_group_file_is_an_error_record_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "g" / "group.json"
    path.parent.mkdir()
    path.write_text('{"format": "ednaquery-group", "members": 3}')
    (doc,) = convert_path(path)
    assert doc["kind"] == "error" and "group_id" in doc["error"]
    other = tmp_path / "plain" / "group.json"  # not ours: an ordinary config file
    other.parent.mkdir()
    other.write_text('{"model": "resnet18"}')
    assert [d["kind"] for d in convert_path(other)] == ["config"]


def test_a_tagged_group_keeps_its_tag_whoever_reindexes_it(tmp_path: Path) -> None:
    from ednaquery.annotations import annotate
    from ednaquery.documents import doc_tags
    from ednaquery.groups import group_document
    from ednaquery.store.sqlite import SQLiteStore

    path = tmp_path / "bag-1" / "group.json"
    write_group(path, {"group_id": "bag-1", "method": "bag", "n": 1, "config": {}, "members": []})
    store = SQLiteStore(tmp_path / "index.db")
    try:
        store.upsert([group_document(path)])
        annotate(store, store.get("bag-1"), tag_changes=["+baseline"])
        assert doc_tags(group_document(path)) == ["baseline"]  # the trainer's re-index keeps it
        assert doc_tags(convert_path(path)[0]) == ["baseline"]  # and so does the indexer's
    finally:
        store.close()
