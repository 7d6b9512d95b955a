"""Every QUERY.md case in ``cases.py`` on every store backend, and the backends agree.

The fixture corpus (``fixtures.py``) is loaded once per backend: the embedded SQLite store
and the MongoDB store driven through mongomock. Each case must return exactly the names
the table expects; a cross-backend test also demands identical results from both, so a
difference shows up even where the table itself were wrong.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from ednaquery.errors import QuerySyntaxError
from ednaquery.query import expand_aliases, load_alias_groups, parse
from ednaquery.query.ast import Exists, MatchAll
from ednaquery.store import FindOptions, SortKey, Store, open_store

from .cases import CASES, CUSTOM_ALIAS_CASES, INJECTIONS, SORT_CASES, Case
from .fixtures import ALL, build_documents

BACKENDS = ["sqlite", "mongomock"]


def _open_backend(backend: str, tmp_dir) -> Store:
    if backend == "sqlite":
        return open_store(str(tmp_dir / "conformance.db"))
    mongomock = pytest.importorskip("mongomock")
    if importlib.util.find_spec("ednaquery.store.mongo") is None:
        pytest.skip("ednaquery.store.mongo does not exist yet")
    from ednaquery.store.mongo import MongoStore

    return MongoStore("mongodb://127.0.0.1:27017/conformance", client=mongomock.MongoClient())


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory) -> Iterator[tuple[str, Store, dict[str, str]]]:
    """(backend name, store holding the fixture corpus, id -> fixture name)."""
    store = _open_backend(request.param, tmp_path_factory.mktemp(request.param))
    docs, names = build_documents()
    store.upsert(docs)
    yield request.param, store, names
    store.close()


def _node(case: Case):
    return expand_aliases(parse(case.query), enabled=case.aliases)


def _names(docs: list[dict], names: dict[str, str]) -> list[str]:
    return [names.get(d["_id"], f"<unknown {d['_id'][:12]}>") for d in docs]


def run_case(store: Store, names: dict[str, str], case: Case) -> set[str]:
    found = _names(store.find(_node(case), FindOptions(kinds=case.kinds)), names)
    assert len(found) == len(set(found)), f"duplicate documents in the result: {sorted(found)}"
    return set(found)


def _case_id(case: Case) -> str:
    return case.query + ("" if case.aliases else " [no aliases]") + (f" [kinds={case.kinds}]" if case.kinds else "")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_case(loaded, case: Case) -> None:
    _, store, names = loaded
    got = run_case(store, names, case)
    assert got == set(case.expected), (
        f"query {case.query!r}: missing {sorted(set(case.expected) - got)}, unexpected {sorted(got - set(case.expected))}"
    )
    assert store.count(_node(case), FindOptions(kinds=case.kinds)) == len(case.expected)


@pytest.mark.parametrize("groups,case", CUSTOM_ALIAS_CASES, ids=lambda x: getattr(x, "query", str(x)))
def test_user_alias_groups(loaded, groups, case: Case) -> None:
    _, store, names = loaded
    node = expand_aliases(parse(case.query), load_alias_groups(groups))
    assert set(_names(store.find(node), names)) == set(case.expected)


def _sort_key(text: str) -> SortKey:
    descending = text.startswith("-")
    node = expand_aliases(parse(text.lstrip("-")))
    assert isinstance(node, Exists), text
    return SortKey(node.key, descending=descending)


@pytest.mark.parametrize("sc", SORT_CASES, ids=lambda sc: f"{sc.query} sort={','.join(sc.sort)} "
                                                       f"limit={sc.limit} offset={sc.offset}")
def test_sort_and_limit(loaded, sc) -> None:
    _, store, names = loaded
    opts = FindOptions(sort=[_sort_key(s) for s in sc.sort], limit=sc.limit, offset=sc.offset)
    got = _names(store.find(expand_aliases(parse(sc.query)), opts), names)
    assert tuple(got) == sc.expected


@pytest.mark.parametrize("query", INJECTIONS)
def test_injection_finds_nothing_and_breaks_nothing(loaded, query: str) -> None:
    _, store, names = loaded
    try:
        node = expand_aliases(parse(query))
    except QuerySyntaxError:
        node = None
    if node is not None:
        assert _names(store.find(node), names) == []
        assert store.count(node) == 0
    assert set(_names(store.find(MatchAll()), names)) == ALL
    assert store.count(MatchAll(), FindOptions(kinds=("config", "run", "error"))) == len(ALL) + 1


def test_backends_agree(tmp_path) -> None:
    """Both backends return identical sets for every case (independently of the table)."""
    stores = {b: _open_backend(b, tmp_path) for b in BACKENDS}
    docs, names = build_documents()
    try:
        for store in stores.values():
            store.upsert([dict(d) for d in docs])
        diffs = []
        for case in CASES:
            results = {b: run_case(s, names, case) for b, s in stores.items()}
            if results["sqlite"] != results["mongomock"]:
                diffs.append(f"{_case_id(case)}: sqlite-only {sorted(results['sqlite'] - results['mongomock'])}, "
                             f"mongomock-only {sorted(results['mongomock'] - results['sqlite'])}")
        for sc in SORT_CASES:
            opts = FindOptions(sort=[_sort_key(s) for s in sc.sort], limit=sc.limit, offset=sc.offset)
            results = {b: _names(s.find(expand_aliases(parse(sc.query)), opts), names) for b, s in stores.items()}
            if results["sqlite"] != results["mongomock"]:
                diffs.append(f"{sc.query} sort={sc.sort}: sqlite {results['sqlite']}, mongomock {results['mongomock']}")
        assert not diffs, "backends disagree:\n" + "\n".join(diffs)
    finally:
        for store in stores.values():
            store.close()
