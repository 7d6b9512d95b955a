"""A run logged with ``ednaquery.start_run`` is indexed and queried like a trainer run."""
from __future__ import annotations

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
