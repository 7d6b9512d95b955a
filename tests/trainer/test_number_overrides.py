"""Overrides and sweep axes follow the one number rule, and runs say which keys hold defaults.

``trainer queue 305e lr=1e-3`` on a config whose file says ``lr: 1e-3`` (a string to YAML 1.1)
changes nothing, so it runs the parent itself; ``diff RUN CONFIG`` shows no default-filled key.
"""
from __future__ import annotations

import os

from ednaquery.documents import make_config_document, make_run_document
from ednaquery.results import diff_documents, problems
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.sqlite import SQLiteStore
from trainer.engine.config import apply_overrides, default_keys, load_config, parse_value, to_dict
from trainer.ops.launch import derived_document, prepare
from trainer.ops.sweep import _axes

TEXT = "model: resnet18\ndata: {dataset: digits, img_size: 16}\noptimizer: {name: adamw, lr: 1e-3}\n"


def _store_with_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TEXT)
    import yaml

    config = yaml.safe_load(TEXT)
    assert config["optimizer"]["lr"] == "1e-3"
    st = os.stat(path)
    doc = make_config_document(config, path=str(path), format="yaml")
    store = SQLiteStore(tmp_path / "index.db")
    store.apply([PathUpdate(str(path), [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino))])
    return store, doc


def test_an_override_equal_by_value_runs_the_parent_itself(tmp_path):
    store, doc = _store_with_file(tmp_path)
    for value in ("1e-3", "0.001", "1.0e-3"):
        resolved = prepare(store, doc["_id"][:4], [f"lr={value}"])
        assert resolved.config_id == doc["_id"] and resolved.derived_from is None
    assert prepare(store, doc["_id"][:4], ["lr=3e-4"]).config_id != doc["_id"]
    store.close()


def test_override_and_sweep_values_use_the_number_rule():
    assert parse_value("1e-3") == 0.001 and parse_value("32") == 32 and parse_value("1_000") == 1000
    assert parse_value("resnet18") == "resnet18" and parse_value("[16, 32]") == [16, 32]
    assert _axes({"axes": {"optimizer.lr": ["1e-3", 3e-4, "adamw"]}}, "s.yaml") == [
        ("optimizer.lr", [0.001, 3e-4, "adamw"])]
    assert apply_overrides({"optimizer": {"lr": "1e-3"}}, ["lr=1e-3"])["optimizer"]["lr"] == 0.001


def test_default_keys_name_what_the_trainer_filled_in_and_diff_skips_them(tmp_path):
    import yaml

    config = yaml.safe_load(TEXT)
    resolved = to_dict(load_config(apply_overrides(config, ["epochs=3"])))
    keys = default_keys(resolved)
    assert "train.seed" in keys and "optimizer.weight_decay" in keys
    assert "model.name" not in keys and "train.epochs" not in keys  # set, not filled in
    cdoc = make_config_document(config, path=None, format="yaml")
    run = make_run_document("20261204-000000-abcd", config=resolved, config_id=cdoc["_id"], path=str(tmp_path),
                            status="completed", metrics={}, info={"default_keys": keys})
    rows = [k for k, _, _ in diff_documents(run, cdoc) if not k.startswith("(")]
    # the config's `model: resnet18` shorthand is model.name; epochs was overridden
    assert set(rows) <= {"model", "model.name", "train.epochs"} and "train.epochs" in rows
    assert not [k for k in rows if k.startswith(("train.seed", "optimizer.weight_decay", "data.mean"))]


def test_derived_configs_are_not_warnings(tmp_path):
    store = SQLiteStore(tmp_path / "index.db")
    store.upsert([derived_document({"optimizer": {"lr": 0.1}}, "a" * 64, ["optimizer.lr=0.1"])])
    assert problems(store) == []
    store.close()
