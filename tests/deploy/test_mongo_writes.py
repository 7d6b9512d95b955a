"""MongoStore writes the way production needs them: bulk, unordered, retryable, no lost neighbours.

Already proven elsewhere (not repeated here):

- tests/core/test_mongo_store.py::test_a_bad_document_is_reported_and_the_rest_are_written and
  tests/core/test_mongo_wire.py::test_a_document_the_driver_cannot_encode_does_not_lose_the_batch:
  a document pymongo cannot encode fails the whole request client-side, the batch is replayed
  one by one, the others are written, the bad file's state is not recorded;
- tests/core/test_mongo_wire.py::test_duplicate_keys_and_concurrent_writers: a concurrent writer's
  duplicate key is retried on fresh data, no path is lost.

Here, over TCP to the nx-27017 wire-protocol server: a batch goes out as ONE ``update`` command
with ``ordered: false``; the client MongoStore builds has retryable writes on; and a document the
SERVER refuses (a per-document ``writeErrors`` entry of a ``BulkWriteError``, the path a real
mongod takes for e.g. a document over 16 MiB) is reported in one line while the rest of the same
command is written.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pymongo import monitoring

from ednaquery.documents import make_config_document
from ednaquery.errors import EdnaError
from ednaquery.query.ast import MatchAll
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.mongo import MongoStore

pytestmark = pytest.mark.wire


class Commands(monitoring.CommandListener):
    """A pymongo command listener keeping every write command sent to a collection."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def started(self, event) -> None:
        if event.command_name in ("update", "insert", "delete"):
            self.sent.append(dict(event.command))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass

    def to(self, coll: str) -> list[dict]:
        return [c for c in self.sent if next(iter(c.values())) == coll]


@pytest.fixture
def listened(wire_uri, request):
    from pymongo import MongoClient

    db = "w_" + request.node.name[:40]
    seen = Commands()
    client = MongoClient(wire_uri, serverSelectionTimeoutMS=3000, retryWrites=True, event_listeners=[seen])
    store = MongoStore(wire_uri, client=client, database=db)
    yield store, seen
    client.drop_database(db)
    client.close()


def _updates(root: Path, n: int) -> list[PathUpdate]:
    out = []
    for i in range(n):
        path = str(root / f"exp{i:03d}.yaml")
        doc = make_config_document({"model": f"m{i}", "lr": 1e-4 * (i + 1)}, path=path, format="yaml")
        out.append(PathUpdate(path, [doc], FileState(100 + i, 1_700_000_000_000_000_000 + i, 9000 + i)))
    return out


def test_a_batch_is_one_unordered_bulk_command(listened, tmp_path):
    store, seen = listened
    store.apply(_updates(tmp_path, 120))
    docs_writes = seen.to("docs")
    assert len(docs_writes) == 1, "120 files = one bulk command, not one round trip per document"
    cmd = docs_writes[0]
    assert cmd["ordered"] is False and len(cmd["updates"]) == 120
    assert all(u["upsert"] is True for u in cmd["updates"])
    # replacements are conditioned on the revision read (optimistic concurrency), keyed by _id
    assert all(set(u["q"]) == {"_id", "_rev"} for u in cmd["updates"])
    files = seen.to("files")
    assert len(files) == 1 and files[0]["ordered"] is False and len(files[0]["updates"]) == 120
    assert store.count(MatchAll()) == 120


def test_the_client_the_store_opens_asks_for_retryable_writes(wire_uri, monkeypatch):
    import pymongo

    asked: list[dict] = []
    real = pymongo.MongoClient

    def spy(*args, **kwargs):
        asked.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pymongo, "MongoClient", spy)
    store = MongoStore(wire_uri, timeout_ms=2000)
    try:
        # explicitly, not by the driver's default: a write interrupted by a primary stepping down
        # is retried once on the new primary (this needs a replica set, hence rs0 in compose.yaml;
        # nx-27017 is a standalone server, so the driver adds no txnNumber to its writes)
        assert asked and asked[0].get("retryWrites") is True
        assert store.client.options.retry_writes is True
    finally:
        store.close()


def test_a_document_the_server_refuses_is_reported_and_the_rest_are_written(listened, tmp_path, caplog):
    store, seen = listened
    ups = _updates(tmp_path, 6)
    bad = ups[3].docs[0]
    bad["$refused"] = 1  # pymongo sends it; the server rejects that one replacement
    with caplog.at_level(logging.WARNING, logger="ednaquery.store.mongo"), pytest.raises(EdnaError) as e:
        store.apply(ups)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("1 document(s) could not be written")
    assert "the rest were written" in msg and bad["_id"][:12] in msg
    assert bad["_id"] in caplog.text
    # it went out in the same unordered command as the others, and the server went on after it
    cmd = seen.to("docs")[0]
    assert cmd["ordered"] is False and len(cmd["updates"]) == 6
    assert store.count(MatchAll()) == 5
    # the refused file's state is not recorded, so the next reconcile walk tries it again
    assert set(store.file_states()) == {u.path for i, u in enumerate(ups) if i != 3}
