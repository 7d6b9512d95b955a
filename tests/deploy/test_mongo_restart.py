"""The indexer daemon rides out a MongoDB restart, a crash mid-write and an election, losing nothing.

The daemon (``indexer.daemon.Indexer`` with the real watchdog observer and the real converter)
writes through ``MongoStore``/pymongo over TCP to the nx-27017 wire-protocol server, kept
ON DISK (``--db FILE``) so that a restarted server still holds what was written before, as a
mongod with its data volume does. The server is killed (SIGKILL, like a crash or an OOM kill),
files change while it is down, and a new server starts on the same port: the daemon must say
"down" and "back" once each (not once per retry), show it in ``status()``, and end with the
store equal to the disk. Skipped, with the reason shown, only when the server cannot start.

A replica-set election cannot be staged with one wire-protocol server: the driver reports it as
``NotPrimaryError`` (an ``AutoReconnect``), which the store turns into ``StoreUnavailable``
like a restart; the last test injects exactly that into the store's bulk writes.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ednaquery.documents import original_config
from ednaquery.store.mongo import MongoStore
from indexer.daemon import Indexer
from indexer.walk import file_state
from tests.support.wire import free_port, start_server, stop

pytestmark = pytest.mark.wire

DB = "ednaquery_restart"


def _wait(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Server:
    """nx-27017 on a fixed 127.0.0.1 port with its data in one SQLite file, restartable."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp / "server"
        self.dir.mkdir()
        self.data = self.dir / "store.db"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.uri = f"mongodb://127.0.0.1:{self.port}/{DB}"

    def start(self) -> str:
        """Start it; returns "" or why it could not start."""
        self.starts += 1
        self.proc, _, why = start_server(self.dir, db=str(self.data), port=self.port,
                                         log_name=f"server{self.starts}.log", database=DB)
        return why

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    why = srv.start()
    if why:
        pytest.skip(why)
    yield srv
    srv.stop()


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "experiments"
    r.mkdir()
    return Path(os.path.realpath(r))


class CountingStore(MongoStore):
    """MongoStore that counts ``apply`` calls (each retry of held changes is one), and can run a hook."""

    calls = 0
    hook: Callable[[], None] | None = None

    def apply(self, updates):
        type(self).calls += 1
        return super().apply(updates)

    def _record_keys(self, docs):  # between the read and the bulk write of a batch
        hook, type(self).hook = type(self).hook, None
        if hook is not None:
            hook()
        return super()._record_keys(docs)


@pytest.fixture(autouse=True)
def _fresh_counters():
    CountingStore.calls, CountingStore.hook = 0, None
    yield
    CountingStore.hook = None


def _indexer(uri: str, root: Path, store_cls: type[MongoStore] = MongoStore) -> Indexer:
    # reconcile_every=None: nothing here is caught up by a periodic walk, only by holding and retrying
    return Indexer(lambda: store_cls(uri, timeout_ms=800), [str(root)], debounce=0.05, batch_linger=0.02,
                   reconcile_every=None, retry_interval=0.2, backoff_cap=0.4)


def _write(path: Path, config: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))


def _assert_store_equals_disk(uri: str, root: Path, deleted: list[Path]) -> None:
    """Every file on disk: one current document with its content, its state recorded; deleted ones marked.

    Array fields are matched with ``$in``: nx-27017 misses plain equality on an indexed array
    field (``{paths: P}`` finds nothing where ``{paths: {$in: [P]}}`` does); MongoDB does not.
    """
    store = MongoStore(uri, timeout_ms=3000)
    try:
        on_disk = {str(p): p for p in root.rglob("*.yaml")}
        assert store.file_states(str(root)) == {k: file_state(os.stat(k)) for k in on_disk}
        for path, p in on_disk.items():
            docs = list(store.docs.find({"paths": {"$in": [path]}}))
            assert len(docs) == 1, f"{p.name}: {len(docs)} documents hold it"
            assert docs[0]["current"] is True and docs[0]["deleted"] is False
            assert original_config(docs[0]) == yaml.safe_load(p.read_text()), p.name
        for p in deleted:
            docs = list(store.docs.find({"past_paths": {"$in": [str(p)]}}))
            assert docs, f"{p.name}: the store lost the deleted file's document"
            assert not list(store.docs.find({"paths": {"$in": [str(p)]}})), f"{p.name} is still current"
            for d in docs:
                if not d["paths"]:
                    assert d["deleted"] is True and d["current"] is False, p.name
    finally:
        store.close()


def _lines(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "indexer" and text in r.getMessage()]


def test_the_daemon_keeps_running_through_a_server_restart_and_loses_nothing(server, root, caplog):
    for i in range(6):
        _write(root / f"exp{i}" / "config.yaml", {"model": f"resnet{i}", "lr": 0.001 * (i + 1), "seed": i})
    ix = _indexer(server.uri, root, CountingStore)
    caplog.set_level(logging.INFO, logger="indexer")
    ix.start()
    try:
        assert ix.wait_idle(20), ix.status()
        assert ix.status()["store_state"] == "up" and ix.status()["files_indexed"] == 6

        server.kill()
        # while it is down: modify, delete, create (in a new folder too), modify what was created
        _write(root / "exp0" / "config.yaml", {"model": "vit_base", "lr": "3e-4", "seed": 0})
        (root / "exp1" / "config.yaml").unlink()
        _write(root / "exp2" / "config.yaml", {"model": "convnext", "lr": 0.01, "seed": 2, "amp": True})
        _write(root / "new" / "deep" / "config.yaml", {"model": "eva02", "lr": 1e-5})
        _wait(lambda: ix.status()["store_state"] == "down", what="the daemon to notice the server is down")
        _write(root / "new" / "deep" / "config.yaml", {"model": "eva02", "lr": 2e-5, "note": "edited while down"})
        (root / "exp3" / "config.yaml").unlink()
        calls = CountingStore.calls
        _wait(lambda: CountingStore.calls >= calls + 2, what="two more write attempts while down")
        status = ix.status()
        assert status["state"] == "running" and status["store_state"] == "down"
        assert status["queue_depth"] >= 4  # held, not dropped
        assert ix._worker is not None and ix._worker.is_alive()

        why = server.start()  # same port, same data file
        assert not why, why
        _wait(lambda: ix.status()["store_state"] == "up" and ix.idle(), what="the daemon to catch up")
        assert ix.status()["store"] == f"mongodb://127.0.0.1:{server.port}/{DB}"
    finally:
        ix.stop()

    down, back = _lines(caplog, "store unavailable"), _lines(caplog, "store is reachable again")
    assert len(down) == 1 and len(back) == 1, ("one line per state change, not per retry", down, back)
    assert CountingStore.calls - calls >= 2  # it did retry more than once, silently
    assert f"127.0.0.1:{server.port}" in down[0] and "\n" not in down[0]
    _assert_store_equals_disk(server.uri, root, deleted=[root / "exp1" / "config.yaml",
                                                         root / "exp3" / "config.yaml"])


def test_a_crash_in_the_middle_of_a_batch_write_loses_nothing(server, root, caplog):
    """The server dies after the batch's documents were read and before they were written."""
    ix = _indexer(server.uri, root, CountingStore)
    caplog.set_level(logging.INFO, logger="indexer")
    ix.start()
    try:
        assert ix.wait_idle(20)
        CountingStore.hook = server.kill
        for i in range(40):
            _write(root / f"sweep{i:02d}.yaml", {"model": ["vit", "resnet"][i % 2], "lr": 1e-4 * (i + 1), "i": i})
        _wait(lambda: CountingStore.hook is None and ix.status()["store_state"] == "down",
              what="the crash in the middle of a write")
        (root / "sweep05.yaml").unlink()
        assert not server.start()
        _wait(lambda: ix.status()["store_state"] == "up" and ix.idle(), what="the daemon to catch up")
    finally:
        ix.stop()
    assert len(_lines(caplog, "store unavailable")) == 1
    assert len(_lines(caplog, "store is reachable again")) == 1
    _assert_store_equals_disk(server.uri, root, deleted=[])
    store = MongoStore(server.uri, timeout_ms=3000)
    try:  # sweep05 was deleted before it was ever written: nothing holds it, nothing mentions it
        assert store.docs.count_documents({"kind": "config", "current": True}) == 39
    finally:
        store.close()


def test_an_election_is_held_and_retried_like_a_restart(root, caplog, monkeypatch):
    """``NotPrimaryError`` (a replica set electing a new primary) holds the changes until it is over."""
    import mongomock
    from pymongo.errors import NotPrimaryError

    from ednaquery.store import mongo

    client = mongomock.MongoClient()
    electing = {"on": False, "refused": 0}
    real_bulk = mongo.bulk

    def bulk(coll, ops):
        if electing["on"] and ops:
            electing["refused"] += 1
            raise NotPrimaryError("not primary")
        return real_bulk(coll, ops)

    monkeypatch.setattr(mongo, "bulk", bulk)
    uri = "mongodb://db0,db1,db2/ednaquery?replicaSet=rs0"
    ix = Indexer(lambda: MongoStore(uri, client=client), [str(root)], debounce=0.05, reconcile_every=None,
                 retry_interval=0.2, backoff_cap=0.2)
    caplog.set_level(logging.INFO, logger="indexer")
    ix.start()
    try:
        assert ix.wait_idle(20)
        electing["on"] = True
        _write(root / "a.yaml", {"model": "vit", "lr": 0.1})
        _write(root / "b.yaml", {"model": "resnet", "lr": 0.2})
        _wait(lambda: electing["refused"] >= 3, what="refused writes during the election")
        assert ix.status()["store_state"] == "down"
        electing["on"] = False
        _wait(lambda: ix.status()["store_state"] == "up" and ix.idle(), what="the writes after the election")
    finally:
        ix.stop()
    assert len(_lines(caplog, "store unavailable")) == 1
    assert len(_lines(caplog, "store is reachable again")) == 1
    store = MongoStore(uri, client=client)
    got = {Path(d["paths"][0]).name: original_config(d) for d in store.docs.find({"current": True})}
    assert got == {"a.yaml": {"model": "vit", "lr": 0.1}, "b.yaml": {"model": "resnet", "lr": 0.2}}
