"""The embedded store's two plans for ``find --limit``: a walk of documents in path order with a
per-document probe, and the match-set plan it falls back to when the walk runs over its step
budget. Whatever plan answers, pages are the same; an interrupted walk leaves the store usable."""
from __future__ import annotations

import pytest

from ednaquery.documents import make_config_document
from ednaquery.query import compile_query
from ednaquery.store import FindOptions
from ednaquery.store.sqlite import SQLiteStore

QUERIES = ["lr<1e-3", "model=vit", "model=vit seed=7", "seed=13", "not model=vit and lr>=1e-3",
           "model=eva02 or seed=1", ".tags=sweep", "model!=vit", "missing.key=1", "model~^eva"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SQLiteStore:
    store = SQLiteStore(tmp_path_factory.mktemp("plans") / "index.db")
    docs = []
    for i in range(600):
        cfg = {"model": {"name": ("vit", "resnet", "eva02")[i % 3]}, "seed": i % 20,
               "optimizer": {"lr": (1e-4, 3e-4, 1e-3, 3e-3)[i % 4]}, "tags": ["sweep", f"g{i // 50}"]}
        doc = make_config_document(cfg, path=f"/sweep/g{i // 50:02d}/cfg{i:04d}.yaml", format="yaml",
                                   size=100, mtime=1.0)
        docs.append(doc)
    store.upsert(docs)
    yield store
    store.close()


def _paths(docs: list[dict]) -> list[str]:
    return [d["paths"][0] for d in docs]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("limit,offset", [(50, 0), (5, 30), (1000, 0)])
def test_walk_interrupted_walk_and_match_set_give_the_same_page(store, query, limit, offset) -> None:
    node = compile_query(query)
    opts = FindOptions(limit=limit, offset=offset)
    walked = _paths(store.find(node, opts))
    assert store._page_by_probe(node, opts) is not None  # the default budget covers 600 documents
    budget = store.probe_budget
    try:
        store.probe_budget = 1  # interrupted after about 1000 VM steps
        assert store._page_by_probe(node, opts) in (None, [])  # [] when no key matches: a constant
        interrupted = _paths(store.find(node, opts))
        store.probe_budget = 0  # the walk is off
        matched = _paths(store.find(node, opts))
    finally:
        store.probe_budget = budget
    everything = _paths(store.find(node, FindOptions()))
    assert walked == interrupted == matched == everything[offset:offset + limit]
    assert everything == sorted(everything)  # pages come in path order
    assert store.count(node) == len(everything)


def test_sorted_and_unlimited_finds_do_not_walk(store) -> None:
    node = compile_query("model=vit")
    assert store._page_by_probe(node, FindOptions()) is None
    assert store._page_by_probe(node, FindOptions(limit=10, sort=[])) is not None
    assert store._page_by_probe(node, FindOptions(limit=5000)) is None
