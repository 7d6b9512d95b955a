"""ednaquery.documents' fast paths give exactly what the straightforward definitions give.

``flatten`` must equal ``make_leaf`` over ``flatten_pairs`` (warnings included), and the
canonical JSON behind ids and the key escaping must equal their one-line definitions, for
any JSON-able nested value (ids and leaves may never change for the same content).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ednaquery import documents as D
from ednaquery.keys import RESERVED_PREFIX
from ednaquery.view_cache import has_shared_section


@contextlib.contextmanager
def step_by_step() -> Iterator[None]:
    """A context in which make_config_document takes its step-by-step path (the reference)."""
    saved = D._config_views
    D._config_views = lambda config: None
    try:
        yield
    finally:
        D._config_views = saved


def ref_canonical(value: Any) -> Any:
    if isinstance(value, str):  # the one number rule: "1e-3" hashes as 0.001
        n = D.parse_number(value)
        return value if n is None else ref_canonical(n)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return RESERVED_PREFIX + "float:" + repr(value)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): ref_canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [ref_canonical(v) for v in value]
    return str(value)


def ref_escape_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {D.escape_key(str(k)): ref_escape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [ref_escape_keys(v) for v in value]
    if type(value) is int and not -(2**63) <= value < 2**63:
        return str(value)  # integers past 64 bits are stored as text
    return value


def same(a: Any, b: Any) -> bool:
    """Equal with types (True != 1.0) and key order; NaN equal to NaN."""
    return json.dumps(a, sort_keys=False, default=repr) == json.dumps(b, sort_keys=False, default=repr) and \
        repr(a) == repr(b)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.sampled_from(["1e-3", "vit_base_patch16_384", "", "a.b", "$x", "50%", "1_000", " 2 ", "N/A",
                                     "imagefolder:/data/pets", "ViT-B/16", "nan", "inf"]),
                    st.text(max_size=10))
keys = st.one_of(st.text(max_size=8), st.sampled_from(["", "a.b", "$set", "lr", "x%2E", "value", "BASE_LR"]))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.tuples(c, c),
                                                   st.dictionaries(keys, c, max_size=5)), max_leaves=40)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, prefix=st.sampled_from([(), ("metrics",), ("",), ("a", "b")]))
def test_flatten_is_make_leaf_over_flatten_pairs(value: Any, prefix: tuple) -> None:
    w1: list[str] = []
    w2: list[str] = []
    fast = D.flatten(value, prefix, warnings=w1)
    ref = [D.make_leaf(p, v) for p, v in D.flatten_pairs(value, prefix, warnings=w2)]
    assert same(fast, ref) and [list(a) for a in fast] == [list(b) for b in ref]
    assert w1 == w2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values)
def test_canonical_json_and_escaping_are_unchanged(value: Any) -> None:
    ref = json.dumps(ref_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert D.canonical_json(value) == ref
    assert same(D.escape_keys(value), ref_escape_keys(value))
    assert D.unescape_keys(D.escape_keys(value if isinstance(value, dict) else {"v": value})) is not None


def test_long_lists_and_many_values_warn_the_same() -> None:
    big = {"a": {"b": list(range(D.MAX_LIST_ITEMS + 5))}, "c": [[1] * 30] * 800}
    w1: list[str] = []
    w2: list[str] = []
    fast = D.flatten(big, warnings=w1)
    ref = [D.make_leaf(p, v) for p, v in D.flatten_pairs(big, warnings=w2)]
    assert fast == ref and w1 == w2 and len(w1) == 2
    for value in ([2.5] * 1200, {"t": tuple(range(1500))}, {"a": [[1] * 1001, ["x"] * 1001]}):
        w1, w2 = [], []
        fast = D.flatten(value, warnings=w1)
        assert fast == [D.make_leaf(p, v) for p, v in D.flatten_pairs(value, warnings=w2)] and w1 == w2
    assert D.flatten(7) == [D.make_leaf(("value",), 7)] and D.flatten({"": 7})[0]["p"] == ""


config_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(keys, c, max_size=5)),
                             max_leaves=40)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.one_of(config_values, st.dictionaries(st.integers(0, 3), scalars, max_size=3), values),
       as_written=st.one_of(st.none(), config_values))
def test_config_documents_are_the_same_as_built_step_by_step(config: Any, as_written: Any) -> None:
    kw = {"path": "/x/a.yaml", "format": "yaml", "size": 10, "mtime": 1.0, "as_written": as_written,
          "warnings": ["w"], "depends_on": ["/x/base.yaml"]}
    fast = D.make_config_document(config, **kw)
    with step_by_step():
        ref = D.make_config_document(config, **kw)
    fast.pop("indexed_at")
    ref.pop("indexed_at")
    assert same(fast, ref) and fast["_id"] == D.config_id(config)


def test_config_documents_of_long_lists_and_many_values() -> None:
    for config in ({"a": {"b": list(range(D.MAX_LIST_ITEMS + 5))}, "c": [[1.0] * 30] * 800},
                   {"x.y": [{"$z": [float("nan"), 2.0]}] * 1200}, [1, 2.5, {"a": None}], 3.0, "text", {},
                   # long number lists: one summary each (nested, at the root, past 64 bits, 1.0 hashed as 1)
                   {"losses": [0.5, 1.0, "2"] * 700, "m": [{"acc": [2**70, 1.0, float("nan")] * 400}] * 3},
                   [1.0, -0.0, 3] * 400, {"": [1] * 1001, "tags": ["a"] * 1001}):
        fast = D.make_config_document(config, path=None, format="yaml")
        with step_by_step():
            ref = D.make_config_document(config, path=None, format="yaml")
        fast.pop("indexed_at")
        ref.pop("indexed_at")
        assert same(fast, ref)
        # ids come from the whole canonical config, never from the leaves
        text = json.dumps(ref_canonical(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert fast["_id"] == D.config_id(config) == hashlib.sha256(text.encode()).hexdigest()


def test_config_documents_of_a_long_number_list_are_one_summary_on_both_paths() -> None:
    from ednaquery.loaders import load_text
    n = D.MAX_LIST_ITEMS * 3
    for text in ["losses: [" + ", ".join(str(i / 7) for i in range(n)) + "]\nlr: 1e-3\n",
                 "seed: 1\nlosses:\n" + "".join(f"- {i}\n" for i in range(n)),
                 "seed: 1\nlosses:\n" + "".join(f"- {i}e-3\n" for i in range(n))]:  # YAML 1.1: strings
        shared = [load_text(text, "yaml", shared=True).documents[0] for _ in range(2)]
        with step_by_step():
            ref = D.make_config_document(load_text(text, "yaml").documents[0], path=None, format="yaml")
        ref.pop("indexed_at")
        for config in shared:
            fast = D.make_config_document(config, path=None, format="yaml")
            fast.pop("indexed_at")
            assert same(fast, ref)
        assert [lf["p"] for lf in ref["leaves"] if lf["p"].startswith("losses")] == \
            ["losses"] * D.LIST_SAMPLE + ["losses" + D.PATH_SEP + "len"]
        assert ref["leaves"][-1 if text.startswith("seed") else -2]["n"] == n
    big = {"losses": [0.25] * 1_100_000, "lr": 0.1}  # over MAX_CONFIG_BYTES: dropped, still summarised
    fast = D.make_config_document(big, path=None, format="json")
    with step_by_step():
        ref = D.make_config_document(big, path=None, format="json")
    fast.pop("indexed_at")
    ref.pop("indexed_at")
    assert same(fast, ref) and fast["config"]["losses"].startswith("<dropped: ")
    assert [lf.get("n") for lf in fast["leaves"]] == [0.25] * D.LIST_SAMPLE + [1_100_000, 0.1]
    assert fast["_id"] == D.config_id(big)


SWEEP = ("model:\n  name: {model}\n  drop_path_rate: 0.1\n  'a.b': 1.0\nrun:\n  name: run-{i}\n"
         "optimizer:\n  $type: adamw\n  lr: {lr}\n  betas: [0.9, 0.999]\n  eps: .nan\n  steps: [1.0, 2]\n"
         "seed: {i}\nempty: {{}}\n")


def test_config_documents_of_shared_yaml_sections_are_the_same_as_built_step_by_step() -> None:
    """The scan reads YAML shared (sections repeated across a sweep are one object, whose escaped
    copy, leaves and canonical text are made once): documents and ids must not change."""
    from ednaquery.loaders import load_text
    used = 0
    for i in range(12):
        text = SWEEP.format(model=("vit", "resnet")[i % 2], lr=("1e-3", "3e-4")[i % 3 % 2], i=i)
        config = load_text(text, "yaml", shared=True).documents[0]
        fresh = load_text(text, "yaml").documents[0]
        used += has_shared_section(config)
        fast = D.make_config_document(config, path="/x/a.yaml", format="yaml", as_written=config)
        with step_by_step():
            ref = D.make_config_document(fresh, path="/x/a.yaml", format="yaml", as_written=fresh)
        for d in (fast, ref):
            d.pop("indexed_at")
        assert same(fast, ref) and fast["_id"] == D.config_id(fresh)
        assert fast["config"]["optimizer"]["%24type"] == "adamw" and fast["config"]["model"]["a%2Eb"] == 1.0
    assert used >= 8  # the section cache was in play for most of them


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.dictionaries(keys, config_values, min_size=1, max_size=5), seed=st.integers(0, 5))
def test_config_documents_of_shared_yaml_are_the_same_for_any_config(config: dict, seed: int) -> None:
    import yaml

    from ednaquery.loaders import LoadError, load_text
    text = yaml.safe_dump({**config, "zz_seed": seed}, default_flow_style=False)
    try:
        loaded = [load_text(text, "yaml", shared=True).documents[0] for _ in range(3)]
        fresh = load_text(text, "yaml").documents[0]
    except LoadError:
        return
    with step_by_step():
        ref = D.make_config_document(fresh, path=None, format="yaml")
    ref.pop("indexed_at")
    for got in loaded:
        fast = D.make_config_document(got, path=None, format="yaml")
        fast.pop("indexed_at")
        assert same(fast, ref)


def test_shared_sections_past_the_leaf_limit_are_the_same_as_built_step_by_step() -> None:
    """A section cut short by the leaf limit behind a big one must not be reused where it comes first."""
    from ednaquery.loaders import load_text

    def lists(n: int) -> str:
        return "".join(f"  k{j}:\n" + "".join(f"  - {j * 1000 + i}\n" for i in range(900)) for j in range(n))
    pre, big = lists(10), lists(25)
    for text in [f"pre:\n{pre}big:\n{big}seed: 1\n"] * 3 + [f"big:\n{big}seed: 2\n", f"small: 1\nbig:\n{big}"]:
        config = load_text(text, "yaml", shared=True).documents[0]
        fast = D.make_config_document(config, path=None, format="yaml")
        with step_by_step():
            ref = D.make_config_document(load_text(text, "yaml").documents[0], path=None, format="yaml")
        fast.pop("indexed_at")
        ref.pop("indexed_at")
        assert same(fast, ref) and len(fast["leaves"]) == D.MAX_LEAVES
