"""MongoStore through real pymongo over TCP, against the nx-27017 wire-protocol server.

No mongod can be installed here, so a MongoDB wire-protocol server on 127.0.0.1 stands in
for the network path: handshake, index creation, bulk upserts, cursors that need getMore,
id-prefix lookups, duplicate keys. It is NOT a judge of query semantics (DESIGN.md: it gets
some wrong, e.g. compound ``$group`` keys, and it is slow), so the queries here are ones it
answers correctly; the semantics are proven by the conformance suite. Skipped, with the
reason shown, only when the server cannot start.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ednaquery.documents import make_config_document
from ednaquery.errors import AmbiguousId, EdnaError, StoreUnavailable
from ednaquery.keys import KeySpec
from ednaquery.query.ast import MatchAll
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, FindOptions, PathUpdate, SortKey
from ednaquery.store.mongo import INDEXES, MongoStore
from tests.support.wire import start_server, stop

pytestmark = pytest.mark.wire

MODELS = ["vit_base_patch16_384", "convnext_tiny", "resnet50", "eva02_small", "efficientnet_b0"]


@pytest.fixture
def store(wire_uri, request):
    # one database per test keeps tests independent on the shared server
    db = "w_" + request.node.name.replace("[", "_").replace("]", "")[:40]
    s = MongoStore(wire_uri, timeout_ms=3000, database=db)
    yield s
    s.client.drop_database(db)
    s.close()


def _config(i: int) -> dict:
    return {
        "model": {"name": MODELS[i % len(MODELS)], "img_size": [224, 384][i % 2], "drop_path": 0.1},
        "optimizer": {"name": ["adamw", "sgd", "lamb"][i % 3], "lr": f"{(i % 7 + 1)}e-4", "weight_decay": 0.05},
        "data": {"batch_size": 32 * (1 + i % 4), "dataset": "imagenet-1k"},
        "seed": i,
    }


def _updates(root: Path, n: int) -> tuple[list[PathUpdate], list[dict]]:
    ups, docs = [], []
    for i in range(n):
        path = str(root / f"exp{i:04d}.yaml")
        doc = make_config_document(_config(i), path=path, format="yaml")
        docs.append(doc)
        ups.append(PathUpdate(path, [doc], FileState(100 + i, 1_700_000_000_000_000_000 + i, 5000 + i)))
    return ups, docs


def test_handshake_and_ping(store):
    store.ping()
    hello = store.client.admin.command("hello")
    assert hello.get("maxWireVersion", 0) >= 6


def test_ensure_indexes_is_idempotent(store):
    names = store.ensure_indexes()
    assert names == [n for n, _ in INDEXES]
    assert store.ensure_indexes() == names
    keys = {tuple(v["key"]) for v in store.docs.index_information().values()}
    for _, spec in INDEXES:
        assert tuple(spec) in keys


def test_bulk_upserts_cursors_with_getmore_and_prefix_lookup(wire_uri, tmp_path):
    from pymongo import MongoClient, monitoring

    class Commands(monitoring.CommandListener):
        def __init__(self):
            self.names: list[str] = []

        def started(self, event):
            self.names.append(event.command_name)

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    seen = Commands()
    client = MongoClient(wire_uri, serverSelectionTimeoutMS=3000, event_listeners=[seen])
    store = MongoStore(wire_uri, client=client, database="w_bulk")
    try:
        ups, docs = _updates(tmp_path, 240)
        store.apply(ups)
        assert store.count(MatchAll()) == 240
        assert "update" in seen.names  # bulk_write sends batched update commands
        seen.names.clear()
        found = store.find(MatchAll())  # default first batch is 101 documents
        assert len(found) == 240 and len({d["_id"] for d in found}) == 240
        assert seen.names.count("getMore") >= 1
        seen.names.clear()
        assert len(list(store.docs.find({}, {"_id": 1}, batch_size=50))) == 240
        assert seen.names.count("getMore") >= 4
        # id prefixes
        target = docs[17]["_id"]
        assert store.get(target[:8])["_id"] == target
        assert store.get(target)["paths"] == [str(tmp_path / "exp0017.yaml")]
        assert len(store.file_states(str(tmp_path))) == 240
    finally:
        client.drop_database("w_bulk")
        store.close()


def test_ambiguous_prefix(store):
    for i in ("beef0001", "beef0002"):
        doc = make_config_document({"n": i}, path=None, format="yaml")
        doc["_id"] = i
        store.upsert([doc])
    with pytest.raises(AmbiguousId):
        store.get("beef")
    assert store.get("beef0002")["_id"] == "beef0002"


def test_queries_over_the_wire(store, tmp_path):
    ups, docs = _updates(tmp_path, 30)
    store.apply(ups)
    want = {d["_id"] for i, d in enumerate(docs) if (i % 7 + 1) * 1e-4 < 3e-4}
    assert {d["_id"] for d in store.find(parse("lr<3e-4"))} == want
    assert store.count(parse("2e-4<=lr<4e-4")) == sum(1 for i in range(30) if 2 <= i % 7 + 1 < 4)
    assert store.count(parse("model=vit")) == sum(1 for i in range(30) if i % 5 == 0)
    assert store.count(parse("optimizer.name!=sgd")) == sum(1 for i in range(30) if i % 3 != 1)
    top = store.find(parse("model=resnet50"), FindOptions(sort=[SortKey(KeySpec(("seed",)), descending=True)],
                                                           limit=3))
    assert [original_seed(d) for d in top] == [27, 22, 17]


def original_seed(doc: dict) -> int:
    return doc["config"]["seed"]


def test_duplicate_keys_and_concurrent_writers(wire_uri, tmp_path):
    from pymongo.errors import DuplicateKeyError

    a = MongoStore(wire_uri, database="w_dup")
    b = MongoStore(wire_uri, database="w_dup")
    try:
        doc = make_config_document({"lr": 0.1}, path=str(tmp_path / "one.yaml"), format="yaml")
        a.apply([PathUpdate(str(tmp_path / "one.yaml"), [doc], FileState(1, 1, 1))])
        with pytest.raises(DuplicateKeyError):  # the server enforces unique ids
            a.docs.insert_one({"_id": doc["_id"]})
        real = a._record_keys
        raced = []

        def racing(docs):  # b writes the same document between a's read and a's write
            if not raced:
                raced.append(1)
                b.apply([PathUpdate(str(tmp_path / "two.yaml"), [doc], FileState(2, 2, 2))])
            return real(docs)

        a._record_keys = racing
        a.apply([PathUpdate(str(tmp_path / "three.yaml"), [doc], FileState(3, 3, 3))])
        assert raced
        got = b.get(doc["_id"])
        assert sorted(Path(p).name for p in got["paths"]) == ["one.yaml", "three.yaml", "two.yaml"]
    finally:
        a.client.drop_database("w_dup")
        a.close()
        b.close()


def test_a_document_the_driver_cannot_encode_does_not_lose_the_batch(store, tmp_path, caplog):
    ups, _ = _updates(tmp_path, 5)
    bad = make_config_document({"bad": 1}, path=str(tmp_path / "bad.yaml"), format="yaml")
    bad["config"]["bad\x00key"] = 1  # a field name the driver refuses (documents escape NUL themselves)
    ups.insert(2, PathUpdate(str(tmp_path / "bad.yaml"), [bad], FileState(1, 1, 1)))
    with caplog.at_level(logging.WARNING), pytest.raises(EdnaError) as e:
        store.apply(ups)
    assert "1 document(s) could not be written" in str(e.value)
    assert store.count(MatchAll()) == 5
    assert str(tmp_path / "bad.yaml") not in store.file_states()


def test_a_server_that_goes_away_is_one_clear_line_within_seconds(wire_uri, tmp_path, caplog):
    proc, uri, why = start_server(tmp_path)  # a server of its own, to stop
    if proc is None:
        pytest.skip(why)
    live = MongoStore(uri, timeout_ms=1500)
    assert live.count(MatchAll()) == 0  # connected, pool open
    host = uri.split("//", 1)[1].split("/", 1)[0]
    secret = MongoStore(f"mongodb://carol:Pa55w0rdX@{host}/x", timeout_ms=1500)
    stop(proc)
    for s in (live, secret):
        # within seconds: the driver gives up after the store's timeout, not pymongo's default 30 s
        assert s.client.options.server_selection_timeout == 1.5
        with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as e:
            s.find(parse("lr<1"))
        msg = str(e.value)
        assert "\n" not in msg and msg.endswith("is it running?") and host in msg
        s.close()
    assert "carol:***@" in msg
    assert "Pa55w0rdX" not in msg and "Pa55w0rdX" not in caplog.text
