"""Queries that used to break the engine: deep nesting, long OR/IN lists, generated queries.

Every query the parser accepts either runs (with the same answer on SQLite, mongomock and the
Python matcher) or is refused with a one-line "query too large"; the store is never reported as
broken because of a query. The limits were found with the hypothesis test at the end.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ednaquery.errors import QuerySyntaxError, StoreUnavailable, UsageError
from ednaquery.query import expand_aliases, parse, to_text
from ednaquery.query.ast import And, Compare, Exists, Node, Not, Or, Range, Value
from ednaquery.query.parser import MAX_NESTING, MAX_VALUES, parse_key
from ednaquery.store import FindOptions, open_store

from . import tiers
from .test_conformance import _names, python_matches


@pytest.fixture(scope="module")
def corpus() -> tuple[list[dict], dict[str, str]]:
    return tiers.build_documents()


@pytest.fixture(scope="module")
def stores(corpus, tmp_path_factory):
    mongomock = pytest.importorskip("mongomock")
    from ednaquery.store.mongo import MongoStore

    out = {"sqlite": open_store(str(tmp_path_factory.mktemp("limits") / "l.db")),
           "mongomock": MongoStore("mongodb://127.0.0.1:27017/limits", client=mongomock.MongoClient())}
    for s in out.values():
        s.upsert(corpus[0])
    yield out
    for s in out.values():
        s.close()


def _answers(stores, corpus, node: Node) -> dict[str, set[str]]:
    """Each backend's answer (and the Python matcher's), or a "query too large" marker."""
    got: dict[str, set[str]] = {"python": python_matches(corpus[0], corpus[1], node)}
    for name, store in stores.items():
        try:
            found = set(_names(store.find(node), corpus[1]))
            assert store.count(node) == len(found)
            assert set(_names(store.find(node, FindOptions(limit=3)), corpus[1])) <= found
            got[name] = found
        except StoreUnavailable as exc:  # never: a query cannot break the store
            pytest.fail(f"{name} reported the store as broken for a query: {exc}")
        except UsageError as exc:
            assert "query too large" in str(exc) and "\n" not in str(exc)
            got[name] = {"<too large>"}
    return got


def test_deep_parentheses_are_a_one_line_error_not_a_recursion_error():
    with pytest.raises(QuerySyntaxError, match="nests too deeply"):
        parse("(" * 3000 + "lr" + ")" * 3000)
    with pytest.raises(QuerySyntaxError, match="nests too deeply"):
        parse("not " * 3000 + "lr")
    parse("(" * MAX_NESTING + "lr" + ")" * MAX_NESTING)  # the limit itself is fine


def test_too_many_terms_is_a_usage_error():
    with pytest.raises(UsageError, match="query too large"):
        parse(" or ".join(f"lr<{i}" for i in range(MAX_VALUES)))


@pytest.mark.parametrize("query", [
    " or ".join(f"lr={i}" for i in range(600)),            # > 500 terms in one compound SELECT
    " ".join(f"!k{i}" for i in range(600)),                # a long EXCEPT chain
    "model=" + ",".join(f"v{i}" for i in range(1500)),     # a long OR of string tests in one term
    "lr=" + ",".join(str(i) for i in range(3000)),         # a long IN list
    "".join(f"(lr<{i} or " for i in range(30)) + "lr" + " min_lr)" * 30,  # 60 nested subqueries
])
def test_large_generated_queries_run_on_every_backend(stores, corpus, query):
    node = expand_aliases(parse(query))
    got = _answers(stores, corpus, node)
    assert got["sqlite"] == got["mongomock"] == got["python"], query[:80]


_KEYS = ["lr", "*lr", "min_lr", "optimizer.lr", "scheduler.lr", "model", "val_acc", "base_lr", "epochs", "nokey"]
_NUMS = st.sampled_from([0.0, 1e-06, 5e-05, 0.0001, 0.0003, 0.001, 0.002, 0.01, 0.9])


@st.composite
def _terms(draw) -> Node:
    key = parse_key(draw(st.sampled_from(_KEYS)))
    kind = draw(st.sampled_from(["exists", "cmp", "range", "str", "null"]))
    if kind == "exists":
        return Exists(key)
    if kind == "range":
        lo, hi = sorted([draw(_NUMS), draw(_NUMS)])
        return Range(key, Value("num", lo), draw(st.booleans()), Value("num", hi), draw(st.booleans()))
    if kind == "str":
        return Compare(key, draw(st.sampled_from(["=", "!=", "~", "!~"])),
                       (Value("str", draw(st.sampled_from(["resnet18", "vit", "adam", "^1e", "1e-3"]))),))
    if kind == "null":
        return Compare(key, draw(st.sampled_from(["=", "!="])), (Value("null", None),))
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "=", "!="]))
    return Compare(key, op, (Value("num", draw(_NUMS)),))


_QUERIES = st.recursive(
    _terms(),
    lambda sub: st.one_of(st.lists(sub, min_size=2, max_size=40).map(lambda xs: And(tuple(xs))),
                          st.lists(sub, min_size=2, max_size=40).map(lambda xs: Or(tuple(xs))),
                          sub.map(Not)),
    max_leaves=300,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tree=_QUERIES)
def test_random_grammar_valid_queries_agree_or_are_refused(stores, corpus, tree):
    try:
        node = expand_aliases(parse(to_text(tree)))  # through the text form: what a user could type
    except UsageError as exc:
        assert "nests too deeply" in str(exc) or "query too large" in str(exc)
        return
    got = _answers(stores, corpus, node)
    assert got["sqlite"] == got["mongomock"] == got["python"], to_text(tree)[:200]
