"""Every docs/query.md query shape is answered by one of the indexes MongoStore creates.

No mongod runs here, and the nx-27017 wire server's ``explain`` describes its own SQLite plan
("SCAN docs"), not MongoDB's planner. So the compiled filter is checked against the rules
MongoDB's planner follows (docs: "Query Plans", "Multikey Index Bounds"):

- a conjunction can use an index when ONE of its conjuncts can; an ``$or`` only when EVERY
  branch can (each branch gets its own IXSCAN under an OR stage); ``$nor`` never can;
- ``{leaves: {$elemMatch: {p: {$in: P}, <f>: C}}}`` is answered by the compound multikey index
  ``{leaves.p: 1, leaves.<f>: 1}`` with bounds on BOTH fields, because both conditions sit in
  one ``$elemMatch`` on the array (bounds are only compounded that way);
- a top-level field is answered by an index whose first key it is (``kind``, ``_id``...).

``model_indexes(filter)`` applies those rules, and each shape names the indexes it must get.
With ``EDNAQUERY_TEST_MONGODB_URI`` pointing at a real mongod (a scratch database is created and
dropped), the same table is checked against the server's own ``explain``: no COLLSCAN, and
only the indexes the model allows. docs/deploy.md gives the command users run themselves.
"""
from __future__ import annotations

import io
import os
import re
from contextlib import redirect_stdout
from typing import Any

import pytest

from bench import mongo_explain
from ednaquery.documents import make_config_document, make_run_document, reserved_leaves
from ednaquery.query.parser import parse
from ednaquery.store.base import FindOptions
from ednaquery.store.catalog import PathCatalog, Tiers
from ednaquery.store.mongo import INDEXES, MongoStore
from ednaquery.store.mongo_compile import compile_filter, find_filter
from tests.support.mongo_filters import elem_matches

#: leaf value field -> the compound index on (leaves.p, leaves.<field>)
LEAF_INDEX = {keys[1][0].split(".", 1)[1]: name for name, keys in INDEXES if keys[0][0] == "leaves.p"}
ALL_LEAF = set(LEAF_INDEX.values())
#: top-level field -> index whose FIRST key it is (only a prefix of an index can bound a scan)
FIELD_INDEX = {"_id": "_id_", **{keys[0][0]: name for name, keys in INDEXES if keys[0][0] != "leaves.p"}}
S_OR_W = {"leaves_p_s", "leaves_p_w"}

CONFIGS = {
    "/exp/vit/config.yaml": {"model": {"name": "vit_base_patch16_384"}, "optimizer": {"name": "adamw", "lr": "1e-3"},
                             "amp": True, "sched": None, "aug": {}, "seed": "42"},
    "/exp/r18/config.yaml": {"MODEL": {"MODEL_BASE": "resnet18"}, "OPTIMIZER": [{"BASE_LR": 0.0005, "NAME": "SGD"}],
                             "amp": False, "i_shape": [200, 200]},
    "/exp/cnx/config.yaml": {"model": "convnext_tiny", "optimizer": {"lr": 0.01, "name": "sgd"}, "name": "zeta"},
}


def _documents() -> list[dict]:
    docs = [make_config_document(c, path=p, format="yaml") for p, c in CONFIGS.items()]
    docs.append(make_run_document("20261122-221530-3fa9", config=CONFIGS["/exp/vit/config.yaml"],
                                  config_id=docs[0]["_id"], path="/exp/vit/runs/1", status="done",
                                  metrics={"val_acc": {"last": 0.93, "best": 0.95}}))
    return docs


@pytest.fixture(scope="module")
def resolve():
    cat = PathCatalog()
    for d in _documents():
        for lf in [*d["leaves"], *reserved_leaves(d)]:
            cat.add(lf["p"])
    return cat.resolve


# (what docs/query.md calls it, query, indexes that may answer the query's own filter; None: none can)
SHAPES: list[tuple[str, str, set[str] | None]] = [
    ("equality, number", "lr=0.001", {"leaves_p_n"}),
    ("equality, number written as a string", 'seed="42"', S_OR_W),
    ("equality, whole string or token run", "model=vit_base", S_OR_W),
    ("equality, boolean", "amp=true", {"leaves_p_t"}),
    ("equality, null", "sched=null", {"leaves_p_t"}),
    ("equality, list element", "i_shape=200", {"leaves_p_n"}),
    ("range, one side", "lr<1e-3", {"leaves_p_n"}),
    ("range, spelled out", "lr:ge:1e-4", {"leaves_p_n"}),
    ("range, both sides on one leaf", "1e-4<=lr<1e-3", {"leaves_p_n"}),
    ("range, strings", "name>r", {"leaves_p_s"}),
    ("glob", "model=vit_*_384", {"leaves_p_s"}),
    ("regex", "model~^conv", {"leaves_p_s"}),
    ("negated regex (has the key, no leaf matches)", "model!~vit", ALL_LEAF),
    ("exists", "aug", ALL_LEAF),
    ("!= (has the key, no leaf equals)", "optimizer!=sgd", ALL_LEAF),
    ("list = (IN), strings", "model=vit,convnext", S_OR_W),
    ("list = (IN), numbers", "lr=1e-3,0.01", {"leaves_p_n"}),
    ("list != (NOT IN)", "optimizer.name!=sgd,adamw", ALL_LEAF),
    ("kind filter in the query", "kind=run", S_OR_W),
    ("reserved field: path", "path=/exp/vit/config.yaml", S_OR_W),
    ("reserved field: status", "status=done val_acc>0.9", S_OR_W | {"leaves_p_n"}),
    ("id, whole", "id=0123abcd", {"_id_"}),
    ("id prefix (glob)", "id=0123*", {"_id_"}),
    ("id regex", "id~^0123", {"_id_"}),
    ("and of terms", "lr<1e-3 model=vit", {"leaves_p_n"} | S_OR_W),
    ("or of terms", "model=vit or lr<1", {"leaves_p_n"} | S_OR_W),
    ("absence", "!aug", None),
    ("not", "not amp", None),
    ("empty query (everything)", "", None),
]


def _conjuncts(flt: dict) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in flt.items():
        if k == "$and":
            for item in v:
                out += _conjuncts(item)
        else:
            out.append((k, v))
    return out


def _elem_match_index(em: dict) -> set[str]:
    """The leaf indexes that bound BOTH fields of one elemMatch (it must have the served shape)."""
    assert set(em["p"]) == {"$in"} and em["p"]["$in"], f"p must be $in-bounded: {em}"
    assert all(isinstance(p, str) for p in em["p"]["$in"])
    fields = set(em) - {"p"}
    assert not fields & {"$or", "$and", "$nor"}, f"alternatives belong outside the elemMatch: {em}"
    assert fields <= {"n", "s", "w", "t", "b"}, f"unindexed leaf field in {em}"
    if "b" in fields:  # a boolean: t="bool" bounds the index, b is checked on the fetched document
        assert em.get("t") == "bool", em
        fields -= {"b"}
    assert len(fields) <= 1, f"one value field per elemMatch, one compound index: {em}"
    return {LEAF_INDEX[f] for f in fields} if fields else set(ALL_LEAF)


def model_indexes(flt: dict) -> set[str] | None:
    """Indexes MongoDB's planner can use for ``flt`` (None: only a collection scan answers it)."""
    options: set[str] = set()
    for key, value in _conjuncts(flt):
        got: set[str] | None
        if key == "$or":
            branches = [model_indexes(b) for b in value]
            got = None if any(b is None for b in branches) else set().union(*branches)
        elif key == "$nor":
            got = None  # a negation bounds no index
        elif key == "leaves":
            assert set(value) == {"$elemMatch"}, f"every leaf condition is one $elemMatch: {value}"
            got = _elem_match_index(value["$elemMatch"])
        else:
            got = {FIELD_INDEX[key]} if key in FIELD_INDEX else None
        if got:
            options |= got
    return options or None


def _bounds(em: dict) -> str:
    """How tightly one elemMatch bounds its value field: point, range, prefix or a scan of the key's entries."""
    conds = [v for k, v in em.items() if k in ("n", "s", "w", "t")]
    if not conds:
        return "key"
    c = conds[0]
    if not isinstance(c, dict):
        return "point"
    if "$regex" in c:
        literal = re.match(r"\^[\w-]", c["$regex"]) and not c.get("$options")
        return "prefix" if literal else "key"
    return "range"


@pytest.mark.parametrize("what,query,expected", SHAPES, ids=[s[0] for s in SHAPES])
def test_each_query_shape_is_answered_by_an_index(what, query, expected, resolve):
    node = parse(query)
    assert model_indexes(compile_filter(node, resolve)) == expected
    # what `find` sends adds the kind filter (unless the query names kind) and current=true:
    full = find_filter(node, FindOptions(), resolve)
    served = model_indexes(full)
    assert served is not None, f"{query!r} would be a COLLSCAN: {full}"
    kinds_added = not query.startswith("kind=")
    assert served == (expected or set()) | ({"kind_current"} if kinds_added else set())
    assert set(served) <= set(FIELD_INDEX.values()) | ALL_LEAF  # only indexes that exist


def test_every_index_in_the_table_is_created(resolve):
    names = {name for name, _ in INDEXES}
    used = set().union(*(e for _, _, e in SHAPES if e)) - {"_id_"}
    assert used | {"kind_current"} <= names
    assert {keys[0][0] for name, keys in INDEXES if name.startswith("leaves_p_")} == {"leaves.p"}


def test_kind_option_and_absence_use_the_kind_index(resolve):
    for query in ("!aug", "", "not amp"):
        flt = find_filter(parse(query), FindOptions(kinds=["run"]), resolve)
        assert model_indexes(flt) == {"kind_current"}
        assert {"kind": {"$in": ["run"]}} in flt.get("$and", [flt])
    # an absence is not selective: kind_current answers it by reading every document of those kinds
    assert model_indexes(find_filter(parse("!aug"), FindOptions(kinds=["config", "run", "error"],
                                                                 all_versions=True), resolve)) == {"kind_current"}


@pytest.mark.parametrize("query,bounds", [
    ("lr=0.001", {"point"}), ("amp=true", {"point"}), ("sched=null", {"point"}), ("lr<1e-3", {"range"}),
    ("1e-4<=lr<1e-3", {"range"}), ("name>r", {"range"}), ("model=vit_*_384", {"prefix"}),
    # a token run is searched inside the token string, a user regex case-insensitively: the index
    # is scanned over the matching keys' entries only (bounded by leaves.p), never a COLLSCAN
    ("model=vit", {"point", "key"}), ("model~^conv", {"key"}), ("aug", {"key"}),
])
def test_how_tightly_the_value_is_bounded(query, bounds, resolve):
    ems = list(elem_matches(compile_filter(parse(query), resolve)))
    # the fallback tier's anti-join ({$nor: [{p: {$in: exact paths}}]}) tests a document already found
    # through an indexed branch: it has no value to bound, so only the value conditions are rated here
    ems = [em for em in ems if set(em) != {"p"}] if not query.isidentifier() else ems
    assert {_bounds(em) for em in ems} == bounds
    for em in ems:  # the range holds on ONE leaf: both operators in the same elemMatch
        if query.startswith("1e-4"):
            assert set(em["n"]) == {"$gte", "$lt"}


# ------------------------------------------------------------------ the explain helper


@pytest.mark.wire
def test_explain_script_prints_the_filter_and_the_plan(wire_uri, capsys):
    uri = wire_uri.rsplit("/", 1)[0] + "/w_explain"
    store = MongoStore(uri, timeout_ms=3000)
    try:
        store.upsert(_documents())
    finally:
        store.close()
    try:
        buf = io.StringIO()
        with redirect_stdout(buf):
            code = mongo_explain.main([uri, "lr<1e-3", "model=vit"])
        out = buf.getvalue()
        assert code == 0
        flt = out.split("winning plan")[0]
        assert '"$elemMatch"' in flt and '"leaves"' in flt and "\\u001f" in flt  # paste-able JSON, escaped
        assert "winning plan" in out
        # nx-27017 answers with its SQLite plan, which the script must not call an index verdict
        assert "not MongoDB's query planner" in out and "verdict:" not in out
    finally:
        store = MongoStore(uri, timeout_ms=3000)
        store.client.drop_database("w_explain")
        store.close()


def test_explain_verdicts_on_mongodb_shaped_plans():
    ix = {"queryPlanner": {"winningPlan": {"stage": "FETCH", "inputStage": {
        "stage": "IXSCAN", "indexName": "leaves_p_n",
        "indexBounds": {"leaves.p": ["[\"lr\", \"lr\"]"], "leaves.n": ["[-inf.0, 0.001)"]}}}}}
    coll = {"queryPlanner": {"winningPlan": {"queryPlan": {"stage": "COLLSCAN"}}}}

    class Fake:
        def __init__(self, res):
            self.res = res
            self.docs = type("C", (), {"name": "docs"})()
            self.db = type("D", (), {"command": lambda _s, *a, **k: res})()

        def _ready(self):
            pass

        def _resolver(self):
            return lambda key: Tiers(["lr"], [])

        def _errors(self, what):
            from contextlib import nullcontext

            return nullcontext()

    text, code = mongo_explain.report(mongo_explain.explain(Fake(ix), "lr<1e-3"))
    assert code == 0 and "IXSCAN leaves_p_n  {leaves.p:" in text and "answered by index leaves_p_n" in text
    text, code = mongo_explain.report(mongo_explain.explain(Fake(coll), "lr<1e-3"))
    assert code == 1 and "COLLSCAN" in text
    idhack = {"queryPlanner": {"winningPlan": {"stage": "IDHACK"}}}  # a plain _id lookup
    assert mongo_explain.explain(Fake(idhack), "id=0123abcd")["indexes"] == ["_id_"]


# ------------------------------------------------------------------ a real mongod, when one is given

REAL_URI = os.environ.get("EDNAQUERY_TEST_MONGODB_URI", "")


@pytest.mark.wire
@pytest.mark.skipif(not REAL_URI, reason="set EDNAQUERY_TEST_MONGODB_URI=mongodb://... to check the plans with a "
                                         "real mongod's explain (nx-27017's explain is its SQLite plan)")
@pytest.mark.parametrize("what,query,expected", SHAPES, ids=[s[0] for s in SHAPES])
def test_a_real_server_explains_each_shape_with_an_index(what, query, expected):
    store = MongoStore(REAL_URI, timeout_ms=5000, database="ednaquery_explain_test")
    try:
        store.upsert(_documents())
        got = mongo_explain.explain(store, query)
        assert got["mongodb_plan"], got["winning_plan"]
        assert not got["collscan"], f"{query!r}: COLLSCAN\n{got['winning_plan']}"
        allowed = (expected or set()) | {"kind_current"}
        assert got["indexes"] and set(got["indexes"]) <= allowed, got["indexes"]
    finally:
        store.client.drop_database("ednaquery_explain_test")
        store.close()
