"""The key-resolution table (``tiers.py``) on SQLite, on MongoDB through mongomock, in the Python
matcher, and (a few cases) through pymongo against the nx-27017 wire-protocol server."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from ednaquery.query import expand_aliases, parse
from ednaquery.store import FindOptions, Store, open_store

from . import tiers
from .test_conformance import _case_id, _names, _sort_key, python_matches

BACKENDS = ["sqlite", "mongomock"]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[dict], dict[str, str]]:
    return tiers.build_documents()


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, corpus, tmp_path_factory) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = open_store(str(tmp_path_factory.mktemp("tiers") / "tiers.db"))
    else:
        mongomock = pytest.importorskip("mongomock")
        from ednaquery.store.mongo import MongoStore

        s = MongoStore("mongodb://127.0.0.1:27017/tiers", client=mongomock.MongoClient())
    s.upsert(corpus[0])
    yield s
    s.close()


def _node(case: tiers.Case):
    return expand_aliases(parse(case.query), enabled=case.aliases)


@pytest.mark.parametrize("case", tiers.CASES, ids=_case_id)
def test_store_resolves_keys_per_document(store, corpus, case) -> None:
    got = set(_names(store.find(_node(case), FindOptions(kinds=case.kinds)), corpus[1]))
    assert got == set(case.expected), (
        f"{case.query!r}: missing {sorted(set(case.expected) - got)}, unexpected {sorted(got - set(case.expected))}")
    assert store.count(_node(case), FindOptions(kinds=case.kinds)) == len(case.expected)


@pytest.mark.parametrize("case", tiers.CASES, ids=_case_id)
def test_python_matcher_resolves_keys_per_document(corpus, case) -> None:
    assert python_matches(corpus[0], corpus[1], _node(case), case.kinds) == set(case.expected)


@pytest.mark.parametrize("sc", tiers.SORT_CASES, ids=lambda sc: f"{sc.query} sort={','.join(sc.sort)}")
def test_sort_uses_the_resolved_leaves(store, corpus, sc) -> None:
    opts = FindOptions(sort=[_sort_key(s) for s in sc.sort], limit=sc.limit, offset=sc.offset)
    assert tuple(_names(store.find(expand_aliases(parse(sc.query)), opts), corpus[1])) == sc.expected


def test_sqlite_page_walk_resolves_keys_like_the_match_set(tmp_path, corpus) -> None:
    """``find --limit`` walks documents with per-document probes: the same tiers as the set plan."""
    s = open_store(str(tmp_path / "walk.db"))
    try:
        s.upsert(corpus[0])
        for case in tiers.CASES:
            opts = FindOptions(kinds=case.kinds, limit=100)
            assert s._page_by_probe(_node(case), opts) is not None
            assert set(_names(s.find(_node(case), opts), corpus[1])) == set(case.expected), case.query
    finally:
        s.close()


_WIRE = ["lr<1e-4", "*lr<1e-4", "lr!=0.001", "optimizer.lr=0.001", "lr<1e-4 val_acc>0.9"]


@pytest.mark.wire
def test_wire_server_resolves_keys_per_document(wire_uri, corpus) -> None:
    from ednaquery.store.mongo import MongoStore

    s = MongoStore(wire_uri.rsplit("/", 1)[0] + "/w_tiers", timeout_ms=3000)
    try:
        s.upsert(corpus[0])
        for case in [c for c in tiers.CASES if c.query in _WIRE and c.aliases]:
            got = set(_names(s.find(_node(case)), corpus[1]))
            assert got == set(case.expected), case.query
    finally:
        s.client.drop_database("w_tiers")
        s.close()
