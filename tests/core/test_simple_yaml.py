"""ednaquery.simple_yaml: whenever the fast reader answers, it answers what the full loader does.

The full loader (PyYAML's parser + our builder) is the reference: for generated configs
(dumped in block, flow and mixed styles), for mutated, often broken, variants of them, for
hand-picked YAML corner cases and for every real config in the corpora and ``examples/``,
the fast reader must either give up (None) or give exactly the same data, types included.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ednaquery.errors import LoadError
from ednaquery.loaders import SafeDataLoader, _load_yaml_full, decode, load_text
from ednaquery.simple_yaml import load_simple

ROOT = Path(__file__).resolve().parents[2]


def typed(x: object) -> object:
    """A form of ``x`` where True != 1, 1 != 1.0 and -0.0 != 0.0, and key order counts."""
    if isinstance(x, dict):
        return ("dict", [(k, typed(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [typed(v) for v in x])
    if isinstance(x, float) and math.isnan(x):
        return ("float", "nan")
    return (type(x).__name__, repr(x))


def full(text: str) -> object:
    try:
        return typed(_load_yaml_full(text)[0])
    except LoadError:
        return "error"


def check(text: str) -> bool:
    """True when the fast path answered (and then it must agree with the full loader)."""
    fast = load_simple(text, SafeDataLoader)
    if fast is None:
        return False
    assert typed(fast) == full(text), text
    return True


# plain words, YAML 1.1 look-alikes and the characters that make YAML hard
TRICKY = ["1e-3", "1.0e-3", "1.0e+3", "yes", "No", "on", "OFF", "y", "~", "null", "Null", "", " ", "0x1F", "0o17",
          "017", "08", "0b101", "1_000", "1:30", "190:20:30.15", ".inf", "-.Inf", ".nan", "+12", "-0", "0.", ".5",
          "2024-03-01", "2001-12-14t21:59:43.10-05:00", "<<", "=", "-", "- a", "a: b", "a:b", "a #b", "a#b",
          "#c", "'q'", '"d"', "it's", "[x]", "{y}", "&a", "*a", "!t", "|", ">", "%", "@", "`", "?", ": x", "x:",
          "a\\b", "tab\there", "nl\nhere", "caf\u00e9", "\u2028", "x,y", "  padded  ", "--- x", "...", "true",
          "FALSE", "3.14", "-2.5e-3", "1e3", "0.0", "-0.0", "12345678901234567890"]
words = st.one_of(st.sampled_from(TRICKY), st.text(min_size=0, max_size=12),
                  st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), words)
keys = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,12}", fullmatch=True), st.sampled_from(TRICKY))
configs = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(keys, c, max_size=5)),
                       max_leaves=30)
styles = st.sampled_from([{"default_flow_style": False}, {"default_flow_style": None},
                          {"default_flow_style": True}, {"default_flow_style": False, "indent": 4},
                          {"default_flow_style": False, "width": 30}, {"default_flow_style": None, "allow_unicode": True},
                          {"default_flow_style": False, "explicit_start": True, "sort_keys": False}])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, style=styles)
def test_dumped_configs_read_the_same(config: object, style: dict) -> None:
    check(yaml.safe_dump(config, **style))


MUTATIONS = [" ", "  ", "\n", ":", ": ", "-", "- ", "#", " #", "'", '"', "[", "]", "{", "}", ",", "&a ", "*a",
             "!x ", "|", ">", "?", "---\n", "\t", "\\", "<<: ", "x", "1", "~"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, style=styles, edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3),
                                                               st.sampled_from(MUTATIONS)), min_size=1, max_size=3))
def test_mutated_text_is_read_the_same_or_left_to_the_full_loader(config: object, style: dict, edits: list) -> None:
    text = yaml.safe_dump(config, **style)
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut:]
    check(text)


def test_typical_sweep_configs_take_the_fast_path() -> None:
    text = ("# sweep\n---\nexperiment:\n  name: sweep-0001\n  tags:\n  - sweep\n  - 'vit'\n"
            "model: {name: vit_base_patch16_384, pretrained: false}\n"
            "optimizer:\n  lr: 1e-3   # a string in YAML 1.1\n  lr2: 1.0e-3\n  betas: [0.9, 0.999]\n"
            "  wd: 5e-2\n  clip: null\n  flags: [yes, No, ~, \"x y\"]\n"
            "data:\n- name: a\n  size: 32\n-\n  name: b\n- plain text\n- \n- [1, [2, 3], {k: v}]\n"
            "'quoted key': \"v\"\n1: one\nempty:\n")
    assert check(text)
    assert load_text(text, "yaml").documents[0]["optimizer"] == {
        "lr": "1e-3", "lr2": 0.001, "betas": [0.9, 0.999], "wd": "5e-2", "clip": None, "flags": [True, False, None, "x y"]}


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: |\n  text\n", "a: >\n  text\n", "a: 2024-01-01\n", "<<: {a: 1}\n",
    "a: b: c\n", "a:\n  b: 1\n c: 2\n", "a: 'unclosed\n  more'\n", "a: plain\n  continued\n", "- - a\n",
    "a: 1\n---\nb: 2\n", "%YAML 1.1\n---\na: 1\n", "? a\n: b\n", "a:\tb\n", "a: 1\r\nb: 2\r\n", "a: \"x\\ty\"\n",
    "[a, b]\n", "a: [1,\n  2]\n", "just a scalar\n", "a: 0b_\n", "a: =\n", "a: 1\n b: 2\n",
    "- ['\u2028    ']\n", "a: x\x85y\n", "a: \ufeffx\n", "a: x\x7f\n", "a: " + "9" * 5000 + "\n",
])
def test_what_the_fast_path_leaves_to_the_full_loader(text: str) -> None:
    assert load_simple(text, SafeDataLoader) is None


def test_empty_and_comment_only_files_have_no_documents() -> None:
    for text in ("", "\n\n", "# only\n  # comments\n", "---\n"):
        assert load_simple(text, SafeDataLoader) == [] == _load_yaml_full(text)[0]


def _real_configs() -> list[Path]:
    roots = [ROOT.parent / "shared" / "corpora", ROOT / "examples"]
    return sorted(p for r in roots if r.is_dir() for p in r.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_every_real_config_is_read_the_same() -> None:
    files = _real_configs()
    if not files:
        pytest.skip("no corpora or examples folder next to this checkout")
    fast = 0
    for path in files:
        try:
            text = decode(path.read_bytes())
        except LoadError:
            continue
        fast += check(text)
    assert fast >= len(files) // 2  # most real configs are in the simple subset


# ---------------------------------------------------------------- shared blocks (the scan's reading)


def _load_thrice(text: str) -> list:
    """The text read shared three times: built, built and kept (second sighting), then from the cache."""
    return [load_simple(text, SafeDataLoader, shared=True) for _ in range(3)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.dictionaries(keys, configs, min_size=1, max_size=5), other=configs,
       style=styles.filter(lambda s: s.get("default_flow_style") is not True))
def test_shared_reading_gives_what_the_full_loader_gives(config: dict, other: object, style: dict) -> None:
    text = yaml.safe_dump(config, **style)
    variant = yaml.safe_dump({**config, "zz_other": other}, **style)  # the same blocks beside another one
    for t in (text, variant, text):
        for got in _load_thrice(t):
            if got is not None:
                assert typed(got) == full(t), t


def test_a_block_seen_twice_is_one_shared_object_and_lines_decide() -> None:
    from ednaquery import simple_yaml

    def load(text: str) -> dict:
        got = load_simple(text, SafeDataLoader, shared=True)
        assert got is not None
        return got[0]

    a = "model:\n  name: vit\n  depth: 12\nseed: {}\nrun:\n  name: r{}\n"
    first, second, third = (load(a.format(i, i)) for i in range(3))
    assert first["model"] == second["model"] == third["model"] == {"name": "vit", "depth": 12}
    assert third["model"] is second["model"] and simple_yaml.SHARED[id(third["model"])] is third["model"]
    assert third["run"] == {"name": "r2"} and third["run"] is not second["run"]  # unique blocks are built
    assert [d["seed"] for d in (first, second, third)] == [0, 1, 2]
    # lines that look alike as values (1 == 1.0 == True) are different lines: no mix-up
    for value, expect in (("1", 1), ("1.0", 1.0), ("true", True), ("'1'", "1")):
        for _ in range(3):
            got = load(f"x:\n  v: {value}\n")["x"]["v"]
            assert got == expect and type(got) is type(expect)
    # reading unshared never hands out a cached object
    plain = load_simple(a.format(9, 9), SafeDataLoader)
    assert plain is not None and plain[0]["model"] is not third["model"]
