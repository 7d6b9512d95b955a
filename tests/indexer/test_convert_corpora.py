"""The converter on the real-world corpora (EdnaML, detectron2, lightning-hydra-template)."""
from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import pytest

from indexer.convert import convert_path

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"
if not CORPORA.is_dir():
    CORPORA = Path("/work/shared/corpora")
D2 = CORPORA / "detectron2" / "configs"
LHT = CORPORA / "lightning-hydra-template" / "configs"
BROKEN = CORPORA / "ednaml" / "archives" / "CoLabel" / "VehicleColor" / "exp-v1" / "colabel_vehiclecolor-3.yml"

pytestmark = pytest.mark.skipif(not CORPORA.is_dir(), reason=f"corpora not found at {CORPORA}")


def config_files() -> list[Path]:
    return sorted(p for p in CORPORA.rglob("*") if p.suffix in (".yaml", ".yml"))


def one(path: Path) -> dict:
    docs = convert_path(path)
    assert len(docs) == 1, docs
    return docs[0]


def test_whole_corpora_convert_without_exceptions_and_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("the converter must never evaluate anything")

    monkeypatch.setattr(builtins, "eval", forbidden)
    files = config_files()
    assert len(files) > 250
    errors = []
    for f in files:
        for doc in convert_path(f):
            assert doc["kind"] in ("config", "error")
            json.dumps(doc)  # JSON-able, as both stores need
            if doc["kind"] == "error":
                errors.append(doc)
            else:
                assert doc["paths"] == [str(f)]
    assert [e["paths"] for e in errors] == [[str(BROKEN)]]


def test_broken_ednaml_file_is_an_error_record_with_its_line() -> None:
    doc = one(BROKEN)
    assert doc["kind"] == "error" and doc["format"] == "yaml"
    assert "line 49" in doc["error"] and "\n" not in doc["error"]
    assert doc["mtime"] == pytest.approx(os.stat(BROKEN).st_mtime)


def test_ednaml_lists_of_dicts_are_indexed_as_loaded() -> None:
    doc = one(CORPORA / "ednaml" / "profiles" / "NELA" / "nela-covid-v1.yml")
    assert doc["config"]["OPTIMIZER"][0]["BASE_LR"] == 1e-5 and not doc["warnings"]
    lrs = [leaf for leaf in doc["leaves"] if leaf["p"].endswith("BASE_LR")]
    assert lrs and lrs[0]["n"] == pytest.approx(1e-5)


def test_detectron2_base_lr_comes_from_the_base_file() -> None:
    doc = one(D2 / "COCO-Detection" / "faster_rcnn_R_50_FPN_1x.yaml")
    assert doc["config"]["SOLVER"]["BASE_LR"] == 0.02
    assert doc["config"]["MODEL"]["RESNETS"] == {"OUT_FEATURES": ["res2", "res3", "res4", "res5"], "DEPTH": 50}
    assert "_BASE_" not in doc["config"] and doc["as_written"]["_BASE_"] == "../Base-RCNN-FPN.yaml"
    assert str(D2 / "Base-RCNN-FPN.yaml") in doc["depends_on"]


def test_detectron2_eval_tag_is_kept_as_data_through_inheritance() -> None:
    base = one(D2 / "Base-RetinaNet.yaml")
    sizes = base["config"]["MODEL"]["ANCHOR_GENERATOR"]["SIZES"]
    assert sizes == ["[[x, x * 2**(1.0/3), x * 2**(2.0/3) ] for x in [32, 64, 128, 256, 512 ]]"]
    assert any("!!python/object/apply:eval" in w and "line 8" in w for w in base["warnings"])
    child = one(D2 / "COCO-Detection" / "retinanet_R_50_FPN_1x.yaml")
    assert child["config"]["MODEL"]["ANCHOR_GENERATOR"]["SIZES"] == sizes
    assert child["config"]["SOLVER"]["BASE_LR"] == 0.01
    assert any("!!python/object/apply:eval" in w for w in child["warnings"])


def test_detectron2_chains_through_several_bases() -> None:
    chained = [f for f in D2.rglob("*.yaml") if "_BASE_" in f.read_text()]
    assert len(chained) > 80
    for f in chained:
        doc = one(f)
        assert "_BASE_" not in doc["config"], (f, doc["warnings"])
        assert doc["depends_on"]


def test_hydra_train_config_resolves_defaults_and_interpolations() -> None:
    doc = one(LHT / "train.yaml")
    c = doc["config"]
    assert c["model"]["optimizer"]["lr"] == 0.001 and c["model"]["net"]["lin1_size"] == 64
    assert c["data"]["batch_size"] == 128 and c["trainer"]["max_epochs"] == 10
    assert c["callbacks"]["early_stopping"]["monitor"] == "val/acc"  # callbacks/default.yaml beats the group file
    assert c["callbacks"]["early_stopping"]["_target_"] == "lightning.pytorch.callbacks.EarlyStopping"
    assert c["task_name"] == "train" and "defaults" not in c
    # ${paths.data_dir} -> ${paths.root_dir}/data/ -> root_dir needs the environment: resolved as far as it goes
    assert c["data"]["data_dir"] == "${oc.env:PROJECT_ROOT}/data/"
    assert any("oc.env" in w for w in doc["warnings"])
    assert str(LHT / "model" / "mnist.yaml") in doc["depends_on"]
    assert str(LHT / "callbacks" / "early_stopping.yaml") in doc["depends_on"]


def test_hydra_experiment_and_group_files() -> None:
    exp = one(LHT / "experiment" / "example.yaml")["config"]
    assert exp["model"]["optimizer"]["lr"] == 0.002 and exp["model"]["net"]["lin1_size"] == 128
    assert exp["trainer"]["max_epochs"] == 10 and exp["trainer"]["gradient_clip_val"] == 0.5
    assert exp["logger"]["wandb"]["tags"] == ["mnist", "simple_dense_net"]  # ${tags}
    model = one(LHT / "model" / "mnist.yaml")
    assert model["config"]["optimizer"]["lr"] == 0.001 and "as_written" not in model
    fdr = one(LHT / "debug" / "fdr.yaml")["config"]
    assert fdr["trainer"] == {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "detect_anomaly": True,
                              "fast_dev_run": True}
