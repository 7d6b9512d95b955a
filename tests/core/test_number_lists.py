"""A long list of numbers (a loss curve pasted into a config) is indexed as one summary, not item by item.

Over ``MAX_LIST_ITEMS`` numbers: ``KEY`` holds the first ``LIST_SAMPLE`` values and ``KEY.len`` the length
(docs/query.md, "Values"); the config id is still the hash of the whole list.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mongomock
import pytest

from ednaquery import documents as D
from ednaquery.keys import KeySpec
from ednaquery.loaders import load_file
from ednaquery.query import compile_query
from ednaquery.store.base import FindOptions, SortKey
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore

N = 2_570_000  # the most numbers a 5 MiB JSON file holds


@pytest.fixture(scope="module")
def losses_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lists") / "losses.json"
    # 9 8 7 6 5 are sampled; 3 is the last value, not sampled
    path.write_text('{"lr": 0.1, "losses": [9,8,7,6,5,' + "1," * (N - 6) + "3]}")
    assert path.stat().st_size < 5 * 1024 * 1024  # the converter's default limit
    return path


@pytest.fixture(scope="module")
def losses_doc(losses_file: Path) -> dict:
    [config] = load_file(losses_file).documents
    return D.make_config_document(config, path=str(losses_file), format="json")


def test_a_file_of_a_long_number_list_indexes_as_one_summary(losses_file: Path, losses_doc: dict) -> None:
    leaves = [(lf["p"].replace(D.PATH_SEP, "."), lf.get("n")) for lf in losses_doc["leaves"]]
    assert leaves == [("lr", 0.1), ("losses", 9.0), ("losses", 8.0), ("losses", 7.0), ("losses", 6.0),
                      ("losses", 5.0), ("losses.len", float(N))]
    assert any(f"losses has {N:,} numbers; indexed as a summary: losses.len = {N}" in w
               for w in losses_doc["warnings"])
    # the id is the hash of the whole content, as it always was (not of the summary)
    whole = {"losses": [9, 8, 7, 6, 5] + [1] * (N - 6) + [3], "lr": 0.1}
    text = json.dumps(whole, sort_keys=True, separators=(",", ":"))
    assert losses_doc["_id"] == hashlib.sha256(text.encode()).hexdigest() == D.config_id(whole)
    assert losses_doc["config"]["losses"].startswith("<dropped: ")  # too big to store, as before


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_the_summary_answers_queries_on_both_stores(tmp_path: Path, losses_doc: dict, backend: str) -> None:
    store = (SQLiteStore(tmp_path / "index.db") if backend == "sqlite"
             else MongoStore("mongodb://localhost/lists_test", client=mongomock.MongoClient()))
    short = D.make_config_document({"lr": 0.2, "losses": [9.0, 2.0]}, path=str(tmp_path / "short.json"),
                                   format="json")
    try:
        store.upsert([losses_doc, short])

        def ids(q: str) -> set[str]:
            return {d["_id"] for d in store.find(compile_query(q))}

        long_id, short_id = losses_doc["_id"], short["_id"]
        assert ids("losses.len>1000") == {long_id}
        assert ids(f"losses.len={N}") == ids("losses.len>=2570000") == {long_id}
        assert ids("losses.len<1000") == set()  # a short list is indexed item by item: it has no .len
        assert ids("losses") == {long_id, short_id}  # the key exists
        assert ids("losses=9") == {long_id, short_id} and ids("losses=7") == {long_id}  # sampled values
        assert ids("losses=3") == set()  # past the sample: not findable
        assert ids("1000<losses.len<3000000") == ids("len>1000") == {long_id} and ids("!losses") == set()
        third = D.make_config_document({"lr": 0.3, "losses": [1.5] * 2000}, path=str(tmp_path / "c.json"),
                                       format="json")
        store.upsert([third])
        by_len = store.find(compile_query("losses.len>0"),
                            FindOptions(sort=[SortKey(KeySpec(("losses", "len")), descending=True)]))
        assert [d["_id"] for d in by_len] == [long_id, third["_id"]]
    finally:
        store.close()


def test_short_and_mixed_lists_keep_their_leaves() -> None:
    at_limit = D.flatten({"x": list(range(D.MAX_LIST_ITEMS))}, warnings=(w := []))
    assert len(at_limit) == D.MAX_LIST_ITEMS and w == []
    mixed = D.flatten({"x": [1] * D.MAX_LIST_ITEMS + ["a"]}, warnings=(w2 := []))
    assert len(mixed) == D.MAX_LIST_ITEMS
    assert w2 == [f"list at x has {D.MAX_LIST_ITEMS + 1} items; only the first {D.MAX_LIST_ITEMS} are indexed"]
    bools = D.flatten({"x": [True] * (D.MAX_LIST_ITEMS + 1)})  # booleans are not numbers
    assert len(bools) == D.MAX_LIST_ITEMS
