"""No document approaches MongoDB's 16 MiB limit: oversized configs lose their largest values, and say so.

A config whose JSON is over ``MAX_CONFIG_BYTES`` is kept and indexed with its largest values
replaced by ``"<dropped: SIZE>"`` markers (a warning on the document names them); leaves are cut
after ``MAX_LEAVES_BYTES``. Every normal config is untouched and keeps its id; an oversized one
keeps the id of its whole content, so the same file gets the same id wherever it lies.
"""
from __future__ import annotations

import bson
import pytest

from ednaquery.documents import (
    MAX_CONFIG_BYTES,
    canonical_json,
    config_id,
    fit_size,
    make_config_document,
    make_run_document,
    original_config,
)
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.sqlite import SQLiteStore

BSON_LIMIT = 16 * 1024 * 1024


def _normal(i: int) -> dict:
    return {"model": {"name": f"vit_{i}", "img_size": 224}, "optimizer": {"lr": "1e-3", "betas": [0.9, 0.999]},
            "data": {"mean": [0.485, 0.456, 0.406], "classes": list(range(100))}, "notes": "x" * 2000, "seed": i}


def _jsize(value) -> int:
    return len(canonical_json(value).encode())


def test_normal_configs_are_untouched_and_keep_their_ids():
    for i in range(20):
        cfg = _normal(i)
        doc = make_config_document(cfg, path=f"/e/{i}.yaml", format="yaml")
        assert doc["_id"] == config_id(cfg)
        assert original_config(doc) == cfg and doc["warnings"] == []
    cfg = _normal(0)
    assert fit_size(cfg, "the config", w := []) is cfg and w == []  # not even copied


def test_a_huge_value_is_dropped_and_the_document_says_so():
    cfg = {"model": "vit_base", "lr": 0.001, "data": {"vocab": "tok " * 1_000_000, "split": "train"},
           "prompt": "p" * 300_000}
    doc = make_config_document(cfg, path="/e/big.yaml", format="yaml")
    assert doc["_id"] == config_id(cfg)  # the id of the whole content, not of what was kept
    kept = original_config(doc)
    assert kept["data"]["vocab"] == "<dropped: 4.0 MB>"
    assert kept["prompt"] == cfg["prompt"] and kept["model"] == "vit_base" and kept["data"]["split"] == "train"
    assert _jsize(kept) <= MAX_CONFIG_BYTES
    [warning] = doc["warnings"]
    assert "over the 2.0 MB limit" in warning and "1 largest value (data.vocab)" in warning
    assert len(bson.encode(doc)) < BSON_LIMIT // 2


def test_the_largest_values_go_first_and_only_as_many_as_needed():
    cfg = {"a": "a" * 900_000, "b": "b" * 1_500_000, "c": "c" * 1_200_000, "small": list(range(50)), "lr": 0.1}
    kept = fit_size(cfg, "the config", warnings := [])
    assert kept["b"].startswith("<dropped: 1.5 MB") and kept["c"].startswith("<dropped: 1.2 MB")
    assert kept["a"] == cfg["a"] and kept["small"] == cfg["small"] and kept["lr"] == 0.1
    assert "2 largest values (b, c)" in warnings[0]
    assert cfg["b"] == "b" * 1_500_000  # the caller's config is not modified


def test_many_small_values_drop_the_smallest_subtree_that_is_enough():
    vocab = {f"token_{i}": i for i in range(200_000)}
    cfg = {"model": {"name": "bert", "lr": 3e-5}, "tokenizer": {"vocab": vocab, "lower": True}, "labels": [1, 2]}
    doc = make_config_document(cfg, path="/e/tok.yaml", format="json")
    kept = original_config(doc)
    assert kept["tokenizer"]["vocab"].startswith("<dropped: ")
    assert kept["tokenizer"]["lower"] is True and kept["model"] == cfg["model"] and kept["labels"] == [1, 2]
    assert "(tokenizer.vocab)" in doc["warnings"][0]


def test_a_huge_list_of_numbers_and_a_huge_root_value():
    kept = fit_size({"weights": [0.123456789] * 200_000, "name": "w"}, "the config", w := [])
    assert kept["name"] == "w" and kept["weights"].startswith("<dropped: 2.4 MB") and "(weights)" in w[0]
    assert fit_size("z" * 3_000_000, "the config", w2 := []) == "<dropped: 3.0 MB>" and "(<root>)" in w2[0]


def test_long_key_paths_repeated_per_leaf_are_cut():
    cfg = {"k" * 20_000: list(range(1000)), "lr": 0.1}  # small JSON, but every leaf repeats the 20 kB key
    doc = make_config_document(cfg, path="/e/keys.yaml", format="yaml")
    assert len(bson.encode(doc)) < BSON_LIMIT // 2
    assert any("only the first" in w and "are indexed" in w for w in doc["warnings"])


def test_run_documents_are_limited_too_and_keep_their_metrics():
    doc = make_run_document("20261122-221530-3fa9", config={"lr": 0.1, "blob": "b" * 3_000_000}, config_id=None,
                            path="/r/1", status="done", metrics={"val_acc": {"last": 0.9, "best": 0.95}},
                            info={"env": "e" * 2_500_000, "host": "gpu1"})
    assert doc["config"]["blob"].startswith("<dropped:") and doc["info"]["env"].startswith("<dropped:")
    assert doc["info"]["host"] == "gpu1"
    assert len(doc["warnings"]) == 2 and {lf["p"] for lf in doc["leaves"]} >= {"metrics\x1fval_acc\x1fbest"}
    assert len(bson.encode(doc)) < BSON_LIMIT // 2


@pytest.mark.parametrize("as_written", [None, {"_BASE_": "base.yaml", "big": "q" * 2_500_000}])
def test_the_worst_document_the_converter_can_make_stays_far_below_16_mib(as_written):
    # a 5 MB file (the converter's limit) of one long string, resolved and as written: both kept
    cfg = {"lr": 0.1, "big": "q " * 2_500_000}
    doc = make_config_document(cfg, path="/e/w.yaml", format="yaml", as_written=as_written)
    assert len(bson.encode(doc)) < 8 * 1024 * 1024


def test_a_dropped_value_is_searchable_as_dropped(tmp_path):
    store = SQLiteStore(str(tmp_path / "index.db"))
    try:
        doc = make_config_document({"lr": 0.1, "vocab": "v" * 2_100_000}, path=str(tmp_path / "a.yaml"), format="yaml")
        store.apply([PathUpdate(str(tmp_path / "a.yaml"), [doc], FileState(1, 1, 1))])
        assert [d["_id"] for d in store.find(parse("vocab~^<dropped"))] == [doc["_id"]]
        assert [d["_id"] for d in store.find(parse("lr=0.1"))] == [doc["_id"]]
    finally:
        store.close()
