"""Effective configs: detectron2 _BASE_, Hydra defaults lists, ${...} interpolation, dependencies."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.convert import convert_path, dependants_of
from indexer.convert.filecache import clear
from indexer.convert.interpolate import resolve_interpolations


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear()


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def one(path: Path) -> dict:
    docs = convert_path(path)
    assert len(docs) == 1, docs
    return docs[0]


# ---------------------------------------------------------------- _BASE_


def test_base_chain_relative_paths_and_recursive_override(tmp_path: Path) -> None:
    write(tmp_path, "Base.yaml", "MODEL: {DEPTH: 50, FPN: {ON: true, DIM: 256}}\nSOLVER: {BASE_LR: 0.02, STEPS: [1, 2]}\n")
    write(tmp_path, "det/mid.yaml", '_BASE_: "../Base.yaml"\nMODEL: {FPN: {DIM: 128}}\nSOLVER: {STEPS: [5]}\n')
    leaf = write(tmp_path, "det/x/leaf.yaml", "_BASE_: ../mid.yaml\nSOLVER: {BASE_LR: 0.01}\n")
    doc = one(leaf)
    assert doc["kind"] == "config" and not doc["warnings"]
    assert doc["config"] == {"MODEL": {"DEPTH": 50, "FPN": {"ON": True, "DIM": 128}},
                             "SOLVER": {"BASE_LR": 0.01, "STEPS": [5]}}
    assert doc["as_written"] == {"_BASE_": "../mid.yaml", "SOLVER": {"BASE_LR": 0.01}}
    assert doc["depends_on"] == [str(tmp_path / "det/mid.yaml"), str(tmp_path / "Base.yaml")]


def test_list_of_bases_merge_in_order(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "x: 1\ny: {p: 1, q: 1}\n")
    write(tmp_path, "b.yaml", "x: 2\ny: {q: 2}\n")
    doc = one(write(tmp_path, "c.yaml", "_BASE_: [a.yaml, b.yaml]\nz: 3\n"))
    assert doc["config"] == {"x": 2, "y": {"p": 1, "q": 2}, "z": 3}


def test_missing_base_is_indexed_as_written_and_creating_it_reindexes(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "_BASE_: base.yaml\nlr: 0.1\n")
    doc = one(child)
    assert doc["config"] == {"_BASE_": "base.yaml", "lr": 0.1}
    assert any("base.yaml" in w and "as written" in w for w in doc["warnings"])
    assert doc["depends_on"] == [str(tmp_path / "base.yaml")]
    # the missing base is a dependency: when it appears, the indexer finds the child to re-convert
    assert dependants_of(str(tmp_path / "base.yaml"), [doc]) == [str(child)]
    write(tmp_path, "base.yaml", "lr: 1.0\nbs: 8\n")
    assert one(child)["config"] == {"lr": 0.1, "bs": 8}


def test_base_cycle_and_broken_base(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "_BASE_: b.yaml\nx: 1\n")
    write(tmp_path, "b.yaml", "_BASE_: a.yaml\ny: 1\n")
    doc = one(tmp_path / "a.yaml")
    assert doc["config"] == {"_BASE_": "b.yaml", "x": 1}
    assert any("cycle" in w for w in doc["warnings"])
    write(tmp_path, "broken.yaml", "a: [1, 2\n")
    doc = one(write(tmp_path, "c.yaml", "_BASE_: broken.yaml\nx: 1\n"))
    assert doc["config"]["_BASE_"] == "broken.yaml"
    assert any("broken.yaml" in w and "line" in w for w in doc["warnings"])


def test_edited_base_is_reread(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", "lr: 1\n")
    child = write(tmp_path, "child.yaml", "_BASE_: base.yaml\nbs: 2\n")
    assert one(child)["config"]["lr"] == 1
    base.write_text("lr: 22\n")
    os.utime(base, ns=(base.stat().st_atime_ns, base.stat().st_mtime_ns + 10**9))
    assert one(child)["config"]["lr"] == 22


# ---------------------------------------------------------------- Hydra


@pytest.fixture
def hydra_tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj" / "configs"
    write(root, "train.yaml", "defaults:\n  - _self_\n  - model: small\n  - optim@model.optim: adam\n"
                              "  - trainer: default\n  - optional local: default\n  - logger: null\n"
                              "  - override hydra/launcher: joblib\n"
                              "seed: 1\nmodel: {width: 99}\nout: ${paths.root}/out\npaths: {root: /data}\n")
    write(root, "model/small.yaml", "width: 64\ndepth: 4\nname: small_${.depth}\n")
    write(root, "model/big.yaml", "width: 512\ndepth: 24\n")
    write(root, "optim/adam.yaml", "lr: 1e-3\nbetas: [0.9, 0.999]\n")
    write(root, "trainer/default.yaml", "max_epochs: 10\ndevices: 1\n")
    write(root, "trainer/ddp.yaml", "defaults:\n  - default\nstrategy: ddp\ndevices: 4\n")
    write(root, "experiment/big.yaml", "# @package _global_\ndefaults:\n  - override /model: big\n"
                                       "  - override /trainer: ddp\nseed: 7\ntrainer: {max_epochs: 3}\n")
    write(root, "globalish/opts.yaml", "# @package _global_\ndebug: true\n")
    write(root, "main2.yaml", "defaults:\n  - model: small\n  - globalish/opts\n  - experiment: big\nseed: 0\n")
    return root


def test_hydra_primary_config_composes_groups_packages_and_order(hydra_tree: Path) -> None:
    doc = one(hydra_tree / "train.yaml")
    c = doc["config"]
    # _self_ first: the group configs listed after it win over the file's own model.width
    assert c["model"]["width"] == 64 and c["model"]["depth"] == 4
    assert c["model"]["optim"] == {"lr": "1e-3", "betas": [0.9, 0.999]}  # optim@model.optim
    assert c["trainer"] == {"max_epochs": 10, "devices": 1}
    assert "logger" not in c and "defaults" not in c
    # interpolations: absolute and relative
    assert c["out"] == "/data/out" and c["model"]["name"] == "small_4"
    assert "defaults" in doc["as_written"]
    deps = {os.path.relpath(d, hydra_tree) for d in doc["depends_on"]}
    assert {"model/small.yaml", "optim/adam.yaml", "trainer/default.yaml", "local/default.yaml"} <= deps
    # optional missing and Hydra's own groups are not worth a warning
    assert not [w for w in doc["warnings"] if "not found" in w], doc["warnings"]


def test_hydra_self_last_by_default_and_config_entries(hydra_tree: Path) -> None:
    c = one(hydra_tree / "trainer" / "ddp.yaml")["config"]
    assert c == {"max_epochs": 10, "devices": 4, "strategy": "ddp"}


def test_hydra_overrides_and_package_directive(hydra_tree: Path) -> None:
    c = one(hydra_tree / "main2.yaml")["config"]
    # experiment/big.yaml (package _global_) overrides the model and trainer choices made in main2
    assert c["model"] == {"width": 512, "depth": 24}
    assert c["trainer"] == {"max_epochs": 3, "devices": 4, "strategy": "ddp"}
    assert c["debug"] is True  # globalish/opts.yaml is @package _global_
    assert c["seed"] == 0  # _self_ last: main2's own seed wins over the experiment's


def test_hydra_experiment_alone_applies_its_overrides_as_selections(hydra_tree: Path) -> None:
    c = one(hydra_tree / "experiment" / "big.yaml")["config"]
    assert c["model"]["width"] == 512 and c["trainer"]["strategy"] == "ddp" and c["seed"] == 7


def test_hydra_missing_option_warns_and_keeps_the_rest(hydra_tree: Path) -> None:
    doc = one(write(hydra_tree, "bad.yaml", "defaults:\n  - model: nope\n  - trainer: default\nx: 1\n"))
    assert doc["config"] == {"trainer": {"max_epochs": 10, "devices": 1}, "x": 1}
    assert any("model/nope.yaml" in w and "not found" in w for w in doc["warnings"])


def test_a_defaults_key_that_is_not_hydra_stays_data(tmp_path: Path) -> None:
    doc = one(write(tmp_path, "plain.yaml", "defaults: [fast, safe]\nlr: 0.1\n"))
    assert doc["config"] == {"defaults": ["fast", "safe"], "lr": 0.1} and not doc["warnings"]


# ---------------------------------------------------------------- interpolation


def test_interpolation_types_relative_lists_and_what_stays_as_written() -> None:
    cfg = {"a": {"n": 3, "l": [1, "${a.n}", "${a.l[0]}"]}, "b": "${a}", "c": "x${a.n}y", "d": "${.e}", "e": 2,
           "env": "${oc.env:HOME}", "when": "${now:%Y}", "miss": "${nope.x}", "m": "???", "rm": "${m}",
           "cyc1": "${cyc2}", "cyc2": "${cyc1}", "esc": "\\${a.n}", "deep": {"up": "${..e}"}}
    out, warnings = resolve_interpolations(cfg)
    assert out["a"]["l"] == [1, 3, 1] and out["b"] == {"n": 3, "l": [1, 3, 1]}
    assert out["c"] == "x3y" and out["d"] == 2 and out["deep"]["up"] == 2
    for k in ("env", "when", "miss", "rm", "esc"):
        assert out[k] == cfg[k]
    assert out["cyc1"] == "${cyc2}" and out["cyc2"] == "${cyc1}"
    text = " ".join(warnings)
    for needle in ("oc.env", "'now'", "${nope.x}", "???", "cycle"):
        assert needle in text
    assert cfg["b"] == "${a}"  # input untouched


def test_interpolation_keeps_number_types_for_queries(tmp_path: Path) -> None:
    doc = one(write(tmp_path, "c.yaml", "base_lr: 0.1\noptim: {lr: '${base_lr}'}\n"))
    assert doc["config"]["optim"]["lr"] == 0.1
    assert doc["as_written"]["optim"]["lr"] == "${base_lr}"


def test_interpolation_spelled_with_escapes_is_still_resolved(tmp_path: Path) -> None:
    """The converter skips the search for ``${`` when the file's bytes hold none; an escape in a
    double-quoted YAML or a JSON string can still spell it, and must still be resolved."""
    doc = one(write(tmp_path, "e.yaml", 'base_lr: 0.1\noptim: {lr: "\\x24{base_lr}"}\n'))
    assert doc["config"]["optim"]["lr"] == 0.1
    doc = one(write(tmp_path, "e.json", '{"base_lr": 0.2, "lr": "\\u0024{base_lr}"}'))
    assert doc["config"]["lr"] == 0.2
    doc = one(write(tmp_path, "plain.yaml", "base_lr: 0.3\nlr: $base_lr {x}\n"))
    assert doc["config"]["lr"] == "$base_lr {x}"


def test_dependants_of() -> None:
    docs = [{"paths": ["/r/a.yaml"], "depends_on": ["/r/base.yaml"]},
            {"paths": ["/r/b.yaml", "/r/b2.yaml"], "depends_on": ["/r/base.yaml", "/r/x.yaml"]},
            {"paths": ["/r/c.yaml"], "depends_on": []}]
    assert dependants_of("/r/base.yaml", docs) == ["/r/a.yaml", "/r/b.yaml", "/r/b2.yaml"]
    assert dependants_of("/r/x.yaml", docs) == ["/r/b.yaml", "/r/b2.yaml"]
