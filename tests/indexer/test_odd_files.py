"""Odd files: integers past 64 bits, NUL in keys, symlinked folders, FIFOs and devices."""
from __future__ import annotations

import json
from pathlib import Path

import bson
import mongomock
import pytest

from ednaquery.documents import original_config
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore
from indexer.convert import convert_path

HUGE = int("9" * 400)


def _update(path: Path) -> PathUpdate:
    st = path.stat()
    return PathUpdate(str(path), convert_path(path), FileState(st.st_size, st.st_mtime_ns, st.st_ino))


@pytest.fixture(params=["sqlite", "mongo"])
def store(request, tmp_path: Path):
    s = (SQLiteStore(tmp_path / "index.db") if request.param == "sqlite"
         else MongoStore("mongodb://localhost/edna_test", client=mongomock.MongoClient()))
    yield s
    s.close()


@pytest.mark.parametrize("name, text", [
    ("big.yaml", f"huge: {HUGE}\nu64: {2**64}\nneg: {-(2**63) - 1}\nok: {2**63 - 1}\n"),
    ("big.json", json.dumps({"huge": HUGE, "u64": 2**64, "neg": -(2**63) - 1, "ok": 2**63 - 1})),
])
def test_integers_past_64_bits_are_indexed_as_text_and_number(tmp_path: Path, store, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    [doc] = convert_path(path)
    assert doc["kind"] == "config", doc
    bson.encode(doc)  # what a MongoDB server must accept: no integer past 64 bits
    assert original_config(doc) == {"huge": str(HUGE), "u64": str(2**64), "neg": str(-(2**63) - 1),
                                    "ok": 2**63 - 1}
    store.apply([_update(path)])
    assert store.count(parse("u64>1e19")) == 1  # a float holds it: still a number
    assert store.count(parse("neg<-9e18")) == 1
    assert store.count(parse("huge=9999*")) == 1  # only text holds it
    assert store.count(parse("huge>1")) == 0


def test_a_nul_in_a_key_is_escaped_and_the_file_indexed(tmp_path: Path, store) -> None:
    path = tmp_path / "nul.json"
    path.write_text(json.dumps({"a\u0000b": 1, "x": {"c\u0000": "v"}, "name": "nul"}))
    [doc] = convert_path(path)
    bson.encode(doc)  # BSON field names cannot hold NUL
    assert original_config(doc) == {"a\u0000b": 1, "x": {"c\u0000": "v"}, "name": "nul"}
    store.apply([_update(path)])
    assert store.count(parse("name=nul")) == 1
    assert store.file_states(str(tmp_path)) != {}  # recorded: not retried on every walk
