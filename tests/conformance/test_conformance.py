"""Every docs/query.md case in ``cases.py`` on every store backend, and the backends agree.

The fixture corpus (``fixtures.py``) is loaded once per backend: the embedded SQLite store
and the MongoDB store driven through mongomock. Each case must return exactly the names
the table expects; a cross-backend test also demands identical results from both, so a
difference shows up even where the table itself were wrong. The Python matcher
(``ednaquery.query.match``, which the table output uses) is the third oracle.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from ednaquery.documents import document_pairs
from ednaquery.errors import QuerySyntaxError
from ednaquery.query import expand_aliases, load_alias_groups, parse
from ednaquery.query.ast import Exists, MatchAll, Node
from ednaquery.query.match import matches
from ednaquery.store import FindOptions, SortKey, Store, open_store
from ednaquery.store.base import effective_kinds

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


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    return build_documents()[1]


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Iterator[dict[str, Store | str]]:
    """Each backend loaded with the fixture corpus once (or why it cannot run)."""
    out: dict[str, Store | str] = {}
    for backend in BACKENDS:
        try:
            store = _open_backend(backend, tmp_path_factory.mktemp(backend))
        except pytest.skip.Exception as exc:
            out[backend] = str(exc)
            continue
        store.upsert(build_documents()[0])
        out[backend] = store
    yield out
    for store in out.values():
        if not isinstance(store, str):
            store.close()


@pytest.fixture(params=BACKENDS)
def store(request, stores) -> Store:
    got = stores[request.param]
    if isinstance(got, str):
        pytest.skip(got)
    return got


def _node(case: Case):
    return expand_aliases(parse(case.query), enabled=case.aliases)


def _names(docs: list[dict], names: dict[str, str]) -> list[str]:
    return [names.get(d["_id"], f"<unknown {d['_id'][:12]}>") for d in docs]


#: results already computed by test_case, reused by test_backends_agree: (store id, case) -> names
_SEEN: dict[tuple[int, Case], set[str]] = {}


def run_case(store: Store, names: dict[str, str], case: Case) -> set[str]:
    key = (id(store), case)
    if key not in _SEEN:
        found = _names(store.find(_node(case), FindOptions(kinds=case.kinds)), names)
        assert len(found) == len(set(found)), f"duplicate documents in the result: {sorted(found)}"
        _SEEN[key] = set(found)
    return _SEEN[key]


def _case_id(case: Case) -> str:
    return case.query + ("" if case.aliases else " [no aliases]") + (f" [kinds={case.kinds}]" if case.kinds else "")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_case(store, names, case: Case) -> None:
    got = run_case(store, names, case)
    assert got == set(case.expected), (
        f"query {case.query!r}: missing {sorted(set(case.expected) - got)}, unexpected {sorted(got - set(case.expected))}"
    )
    assert store.count(_node(case), FindOptions(kinds=case.kinds)) == len(case.expected)


@pytest.mark.parametrize("groups,case", CUSTOM_ALIAS_CASES, ids=lambda x: getattr(x, "query", str(x)))
def test_user_alias_groups(store, names, groups, case: Case) -> None:
    node = expand_aliases(parse(case.query), load_alias_groups(groups))
    assert set(_names(store.find(node), names)) == set(case.expected)


def _sort_key(text: str) -> SortKey:
    descending = text.startswith("-")
    node = expand_aliases(parse(text.lstrip("-")))
    assert isinstance(node, Exists), text
    return SortKey(node.key, descending=descending)


@pytest.mark.parametrize("sc", SORT_CASES, ids=lambda sc: f"{sc.query} sort={','.join(sc.sort)} "
                                                       f"limit={sc.limit} offset={sc.offset}")
def test_sort_and_limit(store, names, sc) -> None:
    opts = FindOptions(sort=[_sort_key(s) for s in sc.sort], limit=sc.limit, offset=sc.offset)
    got = _names(store.find(expand_aliases(parse(sc.query)), opts), names)
    assert tuple(got) == sc.expected


@pytest.mark.parametrize("query", INJECTIONS)
def test_injection_finds_nothing_and_breaks_nothing(store, names, query: str) -> None:
    try:
        node = expand_aliases(parse(query))
    except QuerySyntaxError:
        node = None
    if node is not None:
        assert _names(store.find(node), names) == []
        assert store.count(node) == 0
    assert set(_names(store.find(MatchAll()), names)) == ALL
    assert store.count(MatchAll(), FindOptions(kinds=("config", "run", "error"))) == len(ALL) + 1


def test_backends_agree(stores, names) -> None:
    """Both backends return identical results for every case (independently of the table)."""
    missing = [f"{b}: {s}" for b, s in stores.items() if isinstance(s, str)]
    if missing:
        pytest.skip("; ".join(missing))
    sqlite, mongo = stores["sqlite"], stores["mongomock"]
    diffs = []
    for case in CASES:
        a, b = run_case(sqlite, names, case), run_case(mongo, names, case)
        if a != b:
            diffs.append(f"{_case_id(case)}: sqlite-only {sorted(a - b)}, mongomock-only {sorted(b - a)}")
    for sc in SORT_CASES:
        opts = FindOptions(sort=[_sort_key(s) for s in sc.sort], limit=sc.limit, offset=sc.offset)
        node = expand_aliases(parse(sc.query))
        a, b = _names(sqlite.find(node, opts), names), _names(mongo.find(node, opts), names)
        if a != b:
            diffs.append(f"{sc.query} sort={sc.sort}: sqlite {a}, mongomock {b}")
    assert not diffs, "backends disagree:\n" + "\n".join(diffs)


def test_sqlite_page_walk_agrees_with_the_match_set(stores, names) -> None:
    """``find --limit`` on SQLite walks documents in path order with per-document probes (the
    page plan) and builds the whole match set only past a step budget: both give the same page."""
    sqlite = stores["sqlite"]
    if isinstance(sqlite, str):
        pytest.skip(sqlite)
    walked = 0
    for case in CASES:
        node = _node(case)
        for limit, offset in ((1000, 0), (2, 1)):
            opts = FindOptions(kinds=case.kinds, limit=limit, offset=offset)
            rids = sqlite._page_by_probe(node, opts)
            walked += rids is not None
            page = _names(sqlite.find(node, opts), names)
            budget, sqlite.probe_budget = sqlite.probe_budget, 0  # no walk: the match-set plan
            try:
                assert _names(sqlite.find(node, opts), names) == page, _case_id(case)
            finally:
                sqlite.probe_budget = budget
            if limit == 1000:
                assert set(page) == set(case.expected), _case_id(case)
    assert walked == 2 * len(CASES)  # the small corpus always fits the budget: the walk was tested


def python_matches(docs: list[dict], names: dict[str, str], node: Node,
                   kinds: tuple[str, ...] | None = None) -> set[str]:
    """The fixture names the Python matcher finds: what a store returns, computed without one."""
    wanted = effective_kinds(node, kinds)
    return {names[d["_id"]] for d in docs
            if (wanted is None or d["kind"] in wanted) and matches(node, document_pairs(d))}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_python_matcher_is_a_third_oracle(names, case: Case) -> None:
    """The Python matcher gives each case's expected set too (it shows the table's matched values)."""
    docs = build_documents()[0]
    got = python_matches(docs, names, _node(case), case.kinds)
    assert got == set(case.expected), (
        f"query {case.query!r}: missing {sorted(set(case.expected) - got)}, unexpected {sorted(got - set(case.expected))}"
    )
