"""A run logged with ``ednaquery.start_run`` is indexed and queried like a trainer run."""
from __future__ import annotations

import pytest

import ednaquery


def test_the_indexer_finds_a_logged_run(tmp_path):
    from ednaquery.query.parser import parse
    from ednaquery.store.base import FindOptions
    from ednaquery.store.sqlite import SQLiteStore
    from indexer.scan import scan

    with ednaquery.start_run(config={"model": "vit"}, root=tmp_path / "runs", name="mine") as run:
        run.log({"val_acc": 0.9}, epoch=0)
    store = SQLiteStore(tmp_path / "index.db")
    scan(store, [str(tmp_path / "runs")], workers=0)
    found = store.find(parse("kind=run val_acc>0.8 run.name=mine"), FindOptions())
    assert [d["_id"] for d in found] == [run.id] and found[0]["status"] == "completed"
    store.close()


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_the_daemon_finds_a_run_while_it_is_logged_and_its_final_metrics(tmp_path, mode):
    from ednaquery.query.parser import parse
    from ednaquery.store import open_store
    from ednaquery.store.base import FindOptions
    from indexer.daemon import Indexer
    from tests.support.wait import wait_until

    root = tmp_path / "runs"
    root.mkdir()
    db = str(tmp_path / "index.db")
    ix = Indexer(lambda: open_store(db), [str(root)], debounce=0.05, poll=mode == "polling", poll_interval=0.1,
                 reconcile_every=None)
    ix.start()
    assert ix.wait_idle(10)
    reader = open_store(db)

    def run_doc(query: str) -> dict | None:
        found = reader.find(parse(query), FindOptions())
        return found[0] if found else None

    try:
        with ednaquery.start_run(config={"model": "vit"}, root=root, name="live", flush_every=0.05) as run:
            run.log({"val_acc": 0.5}, epoch=0)
            assert wait_until(lambda: run_doc("kind=run run.name=live val_acc=0.5"), 10)
            assert run_doc("kind=run run.name=live")["status"] == "running"
            run.log({"val_acc": 0.75}, epoch=1)
        assert wait_until(lambda: (d := run_doc("kind=run run.name=live")) is not None
                          and d["status"] == "completed" and d["metrics"]["val_acc"] == {"last": 0.75, "best": 0.75},
                          10)
        assert run_doc("kind=run run.name=live")["_id"] == run.id
    finally:
        ix.stop()
        reader.close()
