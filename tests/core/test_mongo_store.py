"""MongoStore through mongomock: writes, ids, queries, sorting, versions, key stats, safety.

The real network path (pymongo over TCP) is in test_mongo_wire.py; here a closed port checks
that a down server is one clear line within seconds and never shows the URI's password.
"""
from __future__ import annotations

import logging
import os
import socket

import mongomock
import pytest

from ednaquery.documents import make_config_document, make_run_document, original_config
from ednaquery.errors import AmbiguousId, EdnaError, NotFound, StoreUnavailable, UsageError
from ednaquery.keys import KeySpec
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Not, Or, Range, Value
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, FindOptions, PathUpdate, SortKey
from ednaquery.store.catalog import Tiers
from ednaquery.store.mongo import INDEXES, MongoStore, database_name
from ednaquery.store.mongo_compile import compile_filter, glob_regex
from tests.support.mongo_filters import elem_matches

CONFIGS = {
    "vit.yaml": {"model": {"name": "vit_base_patch16_384"}, "optimizer": {"name": "adamw", "lr": "1e-3"},
                 "batch_size": 64, "amp": True},
    "r18.yaml": {"MODEL": {"MODEL_BASE": "resnet18"}, "OPTIMIZER": [{"BASE_LR": 0.0005, "NAME": "SGD"}],
                 "amp": False},
    "vitb.yaml": {"model": "ViT-B/16", "optimizer": {"lr": 0.01, "name": "sgd"}, "sched": None, "aug": {}},
    "levit.yaml": {"model": {"name": "levit_128"}, "lr": 3e-4, "i_shape": [200, 200]},
    "odd.yaml": {"a.b": 1, "$x": {"y": 2}, "%z": "pct"},
    "evil.yaml": {"$where": "1", "note": "$where", "js": "function() { return true; }"},
}


def _state(i: int = 1) -> FileState:
    return FileState(size=100 + i, mtime_ns=1_700_000_000_000_000_000 + i, inode=1000 + i)


def _doc(root, name: str, config: dict | None = None) -> dict:
    return make_config_document(CONFIGS[name] if config is None else config, path=str(root / name), format="yaml")


@pytest.fixture
def store():
    s = MongoStore("mongodb://localhost/edna_test", client=mongomock.MongoClient())
    yield s
    s.close()


@pytest.fixture
def corpus(store, tmp_path):
    ids = {}
    ups = []
    for i, name in enumerate(CONFIGS):
        doc = _doc(tmp_path, name)
        ids[name] = doc["_id"]
        ups.append(PathUpdate(str(tmp_path / name), [doc], _state(i)))
    store.apply(ups)
    return ids


def _names(ids: dict, docs: list[dict]) -> set[str]:
    back = {v: k for k, v in ids.items()}
    return {back.get(d["_id"], d["_id"]) for d in docs}


def _find(store, ids, query: str, **opts) -> set[str]:
    return _names(ids, store.find(parse(query), FindOptions(**opts)))


# ------------------------------------------------------------------ writes and ids


def test_apply_then_get_returns_the_document_without_internals(store, corpus, tmp_path):
    doc = store.get(corpus["vit.yaml"])
    assert doc["kind"] == "config" and doc["current"] is True and doc["deleted"] is False
    assert doc["paths"] == [str(tmp_path / "vit.yaml")]
    assert original_config(doc) == CONFIGS["vit.yaml"]
    assert not {"leaves", "_rev", "path0", "nopath"} & set(doc)


def test_escaped_keys_round_trip(store, corpus):
    doc = store.get(corpus["odd.yaml"])
    assert "a%2Eb" in doc["config"] and "%24x" in doc["config"]
    assert original_config(doc) == CONFIGS["odd.yaml"]


def test_get_by_unique_prefix_ambiguous_and_missing(store, corpus):
    full = corpus["levit.yaml"]
    assert store.get(full[:6])["_id"] == full
    a = dict(_doc_with_id("abcd1111"))
    b = dict(_doc_with_id("abcd2222"))
    store.upsert([a, b])
    with pytest.raises(AmbiguousId) as e:
        store.get("abcd")
    assert set(e.value.matches) == {"abcd1111", "abcd2222"}
    assert store.get("abcd2")["_id"] == "abcd2222"
    with pytest.raises(NotFound):
        store.get("ffff0000")
    with pytest.raises(UsageError):
        store.get("abc")


def _doc_with_id(doc_id: str) -> dict:
    doc = make_config_document({"n": doc_id}, path=None, format="yaml")
    doc["_id"] = doc_id
    return doc


def test_regex_metacharacters_in_a_prefix_are_literal(store, corpus):
    store.upsert([_doc_with_id("a.b.1234")])
    with pytest.raises(NotFound):
        store.get("a-b.")  # '.' must not act as a wildcard
    assert store.get("a.b.")["_id"] == "a.b.1234"


def test_same_content_at_two_paths_is_one_document(store, tmp_path):
    doc = _doc(tmp_path, "vit.yaml")
    store.apply([PathUpdate(str(tmp_path / "a.yaml"), [doc], _state(1)),
                 PathUpdate(str(tmp_path / "b.yaml"), [doc], _state(2))])
    got = store.get(doc["_id"])
    assert sorted(got["paths"]) == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    assert store.count(MatchAll()) == 1
    # one copy goes away: still current, at the other path
    store.apply([PathUpdate(str(tmp_path / "a.yaml"), [], None)])
    got = store.get(doc["_id"])
    assert got["paths"] == [str(tmp_path / "b.yaml")] and got["current"] is True
    assert str(tmp_path / "a.yaml") in got["past_paths"]
    # path=... follows the paths (reserved leaves are rewritten with them)
    assert store.count(parse(f'path="{tmp_path / "b.yaml"}"')) == 1
    assert store.count(parse(f'path="{tmp_path / "a.yaml"}"')) == 0


def test_edit_supersedes_and_delete_marks_deleted(store, tmp_path):
    path = str(tmp_path / "cfg.yaml")
    v1 = make_config_document({"lr": 0.1}, path=path, format="yaml")
    v2 = make_config_document({"lr": 0.2}, path=path, format="yaml")
    store.apply([PathUpdate(path, [v1], _state(1))])
    store.apply([PathUpdate(path, [v2], _state(2))])
    assert [d["_id"] for d in store.find(MatchAll())] == [v2["_id"]]
    assert {d["_id"] for d in store.find(MatchAll(), FindOptions(all_versions=True))} == {v1["_id"], v2["_id"]}
    old = store.get(v1["_id"])
    assert old["current"] is False and old["deleted"] is False and old["past_paths"] == [path]
    assert [d["_id"] for d in store.history(path)] == [v2["_id"], v1["_id"]]
    assert store.count(parse("lr=0.1")) == 0 and store.count(parse("lr=0.1"), FindOptions(all_versions=True)) == 1
    store.apply([PathUpdate(path, [], None)])
    gone = store.get(v2["_id"])
    assert gone["current"] is False and gone["deleted"] is True
    assert store.count(MatchAll()) == 0
    assert path not in store.file_states()


def test_file_states_under_a_root(store, corpus, tmp_path):
    states = store.file_states(str(tmp_path))
    assert set(states) == {str(tmp_path / n) for n in CONFIGS}
    assert states[str(tmp_path / "vit.yaml")] == _state(0)
    assert store.file_states(str(tmp_path / "elsewhere")) == {}


def test_dependants_and_stats(store, tmp_path):
    base = str(tmp_path / "base.yaml")
    child = make_config_document({"lr": 1}, path=str(tmp_path / "child.yaml"), format="yaml", depends_on=[base])
    store.apply([PathUpdate(str(tmp_path / "child.yaml"), [child], _state())])
    assert store.dependants([base]) == [str(tmp_path / "child.yaml")]
    assert store.dependants([str(tmp_path / "other.yaml")]) == []
    st = store.stats()
    assert st["documents"]["config"]["current"] == 1 and st["files"] == 1
    assert "***" not in st["store"] and st["leaves"] >= 2


def test_upsert_keeps_recorded_paths_and_merges_tags(store, tmp_path):
    run = make_run_document("20260101-000000-abcd", config={"lr": 0.1}, config_id=None,
                            path=str(tmp_path / "run1"), status="running", metrics={})
    store.upsert([run])
    done = make_run_document("20260101-000000-abcd", config={"lr": 0.1}, config_id=None,
                             path=str(tmp_path / "run1-moved"), status="done",
                             metrics={"val_acc": {"last": 0.9, "best": 0.95}})
    done["tags"] = ["best"]
    store.upsert([done])
    got = store.get("20260101-000000-abcd")
    assert got["status"] == "done" and got["tags"] == ["best"]
    assert got["paths"] == [str(tmp_path / "run1"), str(tmp_path / "run1-moved")]
    assert store.count(parse("status=done val_acc>0.9")) == 1


def test_a_bad_document_is_reported_and_the_rest_are_written(store, tmp_path, caplog):
    good1, good2 = _doc(tmp_path, "vit.yaml"), _doc(tmp_path, "r18.yaml")
    bad = make_config_document({"bad": 1}, path=str(tmp_path / "bad.yaml"), format="yaml")
    bad["config"]["bad\x00key"] = 1  # a field name the server refuses (documents escape NUL themselves)
    ups = [PathUpdate(str(tmp_path / "vit.yaml"), [good1], _state(1)),
           PathUpdate(str(tmp_path / "bad.yaml"), [bad], _state(2)),
           PathUpdate(str(tmp_path / "r18.yaml"), [good2], _state(3))]
    with caplog.at_level(logging.WARNING), pytest.raises(EdnaError) as e:
        store.apply(ups)
    assert "1 document(s) could not be written" in str(e.value) and "\n" not in str(e.value)
    assert bad["_id"][:12] in caplog.text
    assert store.count(MatchAll()) == 2
    # the bad file's state is not recorded, so the reconcile walk will try it again
    assert set(store.file_states()) == {str(tmp_path / "vit.yaml"), str(tmp_path / "r18.yaml")}


def test_a_concurrent_writer_loses_no_path(tmp_path):
    client = mongomock.MongoClient()
    a = MongoStore("mongodb://localhost/race", client=client)
    b = MongoStore("mongodb://localhost/race", client=client)
    doc = _doc(tmp_path, "vit.yaml")
    a.apply([PathUpdate(str(tmp_path / "one.yaml"), [doc], _state(1))])
    real = a._record_keys
    calls = []

    def racing(docs):  # runs between a's read and a's write: b writes the same document first
        if not calls:
            calls.append(1)
            b.apply([PathUpdate(str(tmp_path / "two.yaml"), [doc], _state(2))])
        return real(docs)

    a._record_keys = racing
    a.apply([PathUpdate(str(tmp_path / "three.yaml"), [doc], _state(3))])
    got = b.get(doc["_id"])
    assert sorted(os.path.basename(p) for p in got["paths"]) == ["one.yaml", "three.yaml", "two.yaml"]


def test_ensure_indexes_is_idempotent_and_named(store):
    names = store.ensure_indexes()
    assert names == [n for n, _ in INDEXES] == store.ensure_indexes()
    assert set(names) <= set(store.docs.index_information())


def test_database_name_from_uri():
    assert database_name("mongodb://u:p@h:1/team?authSource=admin") == "team"
    assert database_name("mongodb://h:1") == "ednaquery"
    assert database_name("mongodb+srv://h/") == "ednaquery"


# ------------------------------------------------------------------ queries


@pytest.mark.parametrize("query, expected", [
    ("lr<1e-3", {"r18.yaml", "levit.yaml"}),  # OPTIMIZER[0].BASE_LR, top-level lr
    ("lr<=1e-3", {"r18.yaml", "levit.yaml", "vit.yaml"}),  # "1e-3" is a numeric string
    ("lr=0.001", {"vit.yaml"}),
    ("1e-4<=lr<1e-3", {"r18.yaml", "levit.yaml"}),
    ("0.001<lr<=0.01", {"vitb.yaml"}),
    ("model=vit", {"vit.yaml", "vitb.yaml"}),  # tokens: not levit_128
    ("model=vit_base", {"vit.yaml"}),
    ("model=VIT-B/16", {"vitb.yaml"}),
    ("model=vit_*_384", {"vit.yaml"}),
    ("model=*18", {"r18.yaml"}),
    ("model=resnet18,levit_128", {"r18.yaml", "levit.yaml"}),
    ("model~^res", {"r18.yaml"}),
    ("model~LEVIT", {"levit.yaml"}),
    ("model!~vit", {"r18.yaml"}),
    ("optimizer!=sgd", {"vit.yaml"}),
    ("optimizer!=sgd,adamw", set()),
    ("!optimizer", {"levit.yaml", "odd.yaml", "evil.yaml"}),
    ("amp=true", {"vit.yaml"}),
    ("amp=false", {"r18.yaml"}),
    ("amp=1", set()),  # a boolean is not the number 1 (mongomock's True == 1 cannot bite)
    ("batch_size=true", set()),
    ("sched=null", {"vitb.yaml"}),
    ("sched", {"vitb.yaml"}),
    ("aug", {"vitb.yaml"}),
    ("aug=x", set()),  # an empty {} exists but matches no comparison
    ("i_shape=200", {"levit.yaml"}),
    ("name>r", {"vit.yaml", "vitb.yaml", "r18.yaml"}),  # strings with strings: vit_base..., sgd, SGD
    ("model=resnet18 or lr>5e-3", {"r18.yaml", "vitb.yaml"}),
    ("not model=vit and optimizer", {"r18.yaml"}),
    ("nosuchkey", set()),
    ("!nosuchkey", set(CONFIGS)),
    ("a.b=1", set()),  # dotted key: segments a then b; the stored key is the one segment 'a.b'
    ("`a.b`=1", {"odd.yaml"}),
    ("$x.y=2", {"odd.yaml"}),
    ("`%z`=PCT", {"odd.yaml"}),
    ('.note="$where"', {"evil.yaml"}),  # `note` alone is the reserved field of the user's notes
    ("`$where`=1", {"evil.yaml"}),
    ("js~return", {"evil.yaml"}),
    ("kind=config", set(CONFIGS)),
    ("", set(CONFIGS)),
])
def test_query_semantics(store, corpus, query, expected):
    assert _find(store, corpus, query) == expected
    assert store.count(parse(query)) == len(expected)


def test_ast_built_directly(store, corpus):
    lr = KeySpec(("lr",))
    rng = Range(lr, Value("num", 1e-4), True, Value("num", 1e-3), False)
    assert _names(corpus, store.find(rng)) == {"r18.yaml", "levit.yaml"}
    node = Or((And((Exists(KeySpec(("model",))), Not(Compare(KeySpec(("amp",)), "=", (Value("bool", True),))))),
               Compare(KeySpec(("kind",)), "=", (Value("str", "nothing"),))))
    assert _names(corpus, store.find(node)) == {"r18.yaml", "vitb.yaml", "levit.yaml"}


def test_range_holds_on_one_leaf(store, tmp_path):
    # two lr leaves, one below and one above the range: no single leaf is inside it
    doc = make_config_document({"a": {"lr": 1e-5}, "b": {"lr": 1e-2}}, path=str(tmp_path / "x.yaml"), format="yaml")
    store.apply([PathUpdate(str(tmp_path / "x.yaml"), [doc], _state())])
    assert store.count(parse("1e-4<=lr<1e-3")) == 0
    assert store.count(parse("lr<1e-4 lr>1e-3")) == 1


def test_kinds_runs_and_error_records(store, corpus, tmp_path):
    run = make_run_document("20260101-120000-beef", config=CONFIGS["levit.yaml"], config_id=corpus["levit.yaml"],
                            path=str(tmp_path / "runs" / "r1"), status="done",
                            metrics={"val_acc": {"last": 0.91, "best": 0.93}})
    store.upsert([run])
    assert _find(store, corpus, "lr<1e-3 val_acc>0.9") == {"20260101-120000-beef"}
    assert _find(store, corpus, "kind=run") == {"20260101-120000-beef"}
    # `id` compares the whole id (like the embedded store's id column): globs and regexes for parts
    assert _find(store, corpus, "id=20260101-120000-BEEF") == {"20260101-120000-beef"}
    assert _find(store, corpus, "id=20260101") == set()
    assert _find(store, corpus, "id=2026*") == {"20260101-120000-beef"}
    assert _find(store, corpus, "kind=run id!=20260101-120000-beef") == set()
    assert _find(store, corpus, "lr<1e-3", kinds=["config"]) == {"r18.yaml", "levit.yaml"}
    assert _find(store, corpus, "lr<1e-3") == {"r18.yaml", "levit.yaml", "20260101-120000-beef"}
    from ednaquery.documents import make_error_document

    err = make_error_document(str(tmp_path / "broken.yaml"), "bad YAML", format="yaml")
    store.apply([PathUpdate(str(tmp_path / "broken.yaml"), [err], _state(9))])
    assert store.count(MatchAll()) == len(CONFIGS) + 1  # error records stay out of find
    assert store.count(parse("kind=error")) == 1
    assert [d["_id"] for d in store.errors()] == [err["_id"]]


def test_sort_limit_offset(store, corpus):
    lr = KeySpec(("lr",))
    asc = store.find(MatchAll(), FindOptions(sort=[SortKey(lr)]))
    order = [_names(corpus, [d]).pop() for d in asc]
    assert order[:4] == ["levit.yaml", "r18.yaml", "vit.yaml", "vitb.yaml"]
    assert set(order[4:]) == {"odd.yaml", "evil.yaml"}  # documents without lr come last, by path
    desc = store.find(MatchAll(), FindOptions(sort=[SortKey(lr, descending=True)]))
    assert [_names(corpus, [d]).pop() for d in desc][:4] == ["vitb.yaml", "vit.yaml", "r18.yaml", "levit.yaml"]
    page = store.find(MatchAll(), FindOptions(sort=[SortKey(lr)], limit=2, offset=1))
    assert [_names(corpus, [d]).pop() for d in page] == ["r18.yaml", "vit.yaml"]
    assert store.find(parse("lr"), FindOptions(limit=0)) == []


def test_sort_falls_back_to_strings_then_default_order(store, corpus):
    by_name = store.find(parse("optimizer"), FindOptions(sort=[SortKey(KeySpec(("name",)))]))
    # no numbers under 'name': lower-cased strings, smallest first (adamw < levit_128... per document min)
    assert [_names(corpus, [d]).pop() for d in by_name] == ["vit.yaml", "r18.yaml", "vitb.yaml"]
    plain = store.find(MatchAll())
    assert [d["paths"][0] for d in plain] == sorted(d["paths"][0] for d in plain)
    two_keys = store.find(parse("amp"), FindOptions(sort=[SortKey(KeySpec(("amp",))), SortKey(KeySpec(("lr",)))]))
    assert [_names(corpus, [d]).pop() for d in two_keys] == ["r18.yaml", "vit.yaml"]


def test_key_stats(store, corpus):
    stats = {s.path: s for s in store.key_stats()}
    assert stats[("optimizer", "lr")].count == 2
    assert stats[("optimizer", "lr")].types == {"str": 1, "num": 1}
    assert set(stats[("optimizer", "lr")].examples) == {"1e-3", 0.01}
    assert stats[("amp",)].types == {"bool": 2}
    assert not any(p[0].startswith("\x00") for p in stats)  # reserved fields are not keys
    only_lr = store.key_stats("lr")
    assert {s.path for s in only_lr} == {("optimizer", "lr"), ("OPTIMIZER", "BASE_LR"), ("lr",)}
    assert store.key_stats("nosuchkey") == []


def test_catalog_sees_keys_written_by_another_process(tmp_path):
    client = mongomock.MongoClient()
    reader = MongoStore("mongodb://localhost/cat", client=client)
    writer = MongoStore("mongodb://localhost/cat", client=client)
    assert reader.count(parse("brand_new_key=1")) == 0  # loads the (empty) catalog
    doc = make_config_document({"brand_new_key": 1}, path=str(tmp_path / "n.yaml"), format="yaml")
    writer.apply([PathUpdate(str(tmp_path / "n.yaml"), [doc], _state())])
    assert reader.count(parse("brand_new_key=1")) == 1  # a miss re-reads the catalog


# ------------------------------------------------------------------ safety of the compiled filter

_ALLOWED = {"$elemMatch", "$and", "$or", "$nor", "$in", "$lt", "$lte", "$gt", "$gte", "$eq", "$regex",
            "$options", "$exists"}
_FIELDS = {"leaves", "p", "n", "s", "w", "t", "b", "_id"}


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


@pytest.mark.parametrize("query", [
    'x="$where"', "`$where`=1", "`$where`", "$function~x", "x=$gt", "model=vit,convnext", "!model",
    "optimizer!=sgd", "1e-4<=lr<1e-3", "model~^conv", "model=vit_*", "not (a or b) and c>1",
])
def test_compiled_filters_use_only_portable_operators(query):
    def resolve(key):
        return Tiers(["$where", "x\x1f$gt"], ["$function"])  # both tiers: the anti-join shape too

    flt = compile_filter(parse(query), resolve)
    for k in _keys(flt):
        assert k in _ALLOWED or k in _FIELDS, k


_SHAPES = ["lr<1e-3", "1e-4<=lr<1e-3", "lr=0.001", "model=vit", "model=vit_*_384", "model=vit,convnext",
           "model~^conv", "model!~vit", "optimizer!=sgd", "amp=true", "sched=null", "aug", "!aug", "name>r",
           "kind=run", "path=/x/y.yaml", "id=abcd", "model=vit or lr<1 and not amp"]
_INDEXED = {("leaves", "n"), ("leaves", "s"), ("leaves", "w"), ("leaves", "t")}


@pytest.mark.parametrize("query", _SHAPES)
def test_every_term_has_the_shape_a_compound_leaves_index_serves(query):
    """Each elemMatch is ``p $in [...]`` plus conditions on ONE indexed field (+ ``b`` beside ``t``).

    On a real server, check with: ``db.docs.find(<filter>).explain()`` shows IXSCAN on leaves_p_*.
    """
    flt = compile_filter(parse(query), lambda key: Tiers(["a\x1fb", "\x00kind"], []))
    ems = list(elem_matches(flt))
    if query.startswith("id="):
        assert flt == {"_id": "abcd"} and not ems  # the id is its own (unique) index
        return
    assert ems
    for em in ems:
        assert set(em["p"]) == {"$in"}
        fields = set(em) - {"p"}
        assert fields <= {"n", "s", "w", "t", "b"} and len(fields - {"b"}) <= 1
        assert "b" not in fields or em.get("t") == "bool"
        assert "$or" not in em and "$and" not in em


def test_glob_escapes_everything_but_wildcards():
    import re

    rx = re.compile(glob_regex("vit_(b).*?"))
    assert rx.match("vit_(b).xyz!") and not rx.match("vit_b_xyz")


def test_invalid_regex_is_a_usage_error(store, corpus):
    bad = Compare(KeySpec(("model",)), "~", (Value("str", "("),))
    with pytest.raises(UsageError):
        store.find(bad)


# ------------------------------------------------------------------ a server that is down (real pymongo)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_down_server_is_one_clear_line_within_seconds_without_the_password(caplog):
    port = _closed_port()
    uri = f"mongodb://alice:s3cr%40tPw@127.0.0.1:{port}/team?authSource=admin"
    store = MongoStore(uri, timeout_ms=1000)
    assert "s3cr" not in store.display_uri
    # within seconds: the driver gives up after the store's timeout, not pymongo's default 30 s
    assert store.client.options.server_selection_timeout == 1.0
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as e:
        store.count(parse("lr<1e-3"))
    msg = str(e.value)
    assert msg.startswith(f"cannot reach MongoDB at mongodb://alice:***@127.0.0.1:{port}/team")
    assert "refused" in msg.lower() and msg.endswith("is it running?") and "\n" not in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__
    for secret in ("s3cr%40tPw", "s3cr@tPw"):
        assert secret not in msg and secret not in caplog.text
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.close()


def test_invalid_uri_is_a_usage_error_without_the_password():
    with pytest.raises(UsageError) as e:
        MongoStore("mongodb://bob:hunter2@127.0.0.1:notaport/x")
    assert "hunter2" not in str(e.value) and "\n" not in str(e.value)


def test_refused_credentials_are_one_line_without_the_password(monkeypatch):
    from pymongo.errors import OperationFailure

    store = MongoStore("mongodb://bob:Xyz%2F123@db.example.org/team", client=mongomock.MongoClient())

    def refuse(*a, **k):
        raise OperationFailure("Authentication failed for bob:Xyz/123", code=18,
                               details={"errmsg": "Authentication failed for bob:Xyz/123", "code": 18})

    monkeypatch.setattr(store.docs, "count_documents", refuse)
    with pytest.raises(StoreUnavailable) as e:
        store.count(MatchAll())
    msg = str(e.value)
    assert "refused access" in msg and "bob:***@db.example.org" in msg and "\n" not in msg
    assert "Xyz" not in msg and e.value.__suppress_context__
