"""Run folders: each recogniser on a small fixture folder, summaries (last/best), linking to configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ednaquery import runfolder
from ednaquery.documents import config_id
from indexer.convert import convert_path, run_folder_of
from indexer.convert.runs import RECOGNISERS, Recogniser, clear_cache


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def the_run(docs: list[dict]) -> dict:
    runs = by_kind(docs)["run"]
    assert len(runs) == 1
    return runs[0]


# ---------------------------------------------------------------- our trainer


def make_trainer_run(root: Path) -> Path:
    """A run folder as the bundled trainer writes it (see ednaquery.runfolder)."""
    run = root / "runs" / "20261122-221530-3fa9"
    config = {"model": {"name": "vit_base_patch16_224"}, "optimizer": {"name": "adamw", "lr": "1e-3"}}
    write(run, "config.yaml", "model: {name: vit_base_patch16_224}\noptimizer: {name: adamw, lr: 1e-3}\n")
    write(run, "run.json", json.dumps({"format": "ednaquery-run", "run_id": "20261122-221530-3fa9",
                                       "config_id": config_id(config), "status": "completed",
                                       "started_at": 1795386930.0, "ended_at": 1795389330.0, "host": "gpu1"}))
    write(run, "metrics.jsonl", '{"scope": "epoch", "epoch": 0, "val_acc": 0.5}\n'
                                '{"scope": "epoch", "epoch": 1, "val_acc": 0.8}\n')
    write(run, "summary.json", json.dumps({"metrics": {"val_acc": {"last": 0.8, "best": 0.8}}, "epochs": 2}))
    return run


def test_trainer_run_is_the_document_the_trainer_itself_writes(tmp_path: Path) -> None:
    run = make_trainer_run(tmp_path)
    expected = runfolder.run_document(run)
    for member in ("metrics.jsonl", "run.json", "summary.json", "config.yaml", "."):
        doc = the_run(convert_path(run / member))
        assert {k: v for k, v in doc.items() if k != "indexed_at"} == \
            {k: v for k, v in expected.items() if k != "indexed_at"}
    assert doc["_id"] == "20261122-221530-3fa9" and doc["format"] == "ednaquery-run"
    assert doc["metrics"]["val_acc"] == {"last": 0.8, "best": 0.8} and doc["status"] == "completed"


def test_files_in_a_trainer_run_folder_are_the_run_never_configs(tmp_path: Path) -> None:
    run = make_trainer_run(tmp_path)
    write(run, "val_confusion.json", json.dumps({"classes": ["a", "b"], "matrix": [[1, 0], [0, 1]]}))
    for member in ("config.yaml", "val_confusion.json"):
        kinds = by_kind(convert_path(run / member))
        assert set(kinds) == {"run"} and kinds["run"][0]["paths"] == [str(run)]


# ---------------------------------------------------------------- generic: a config plus metrics files


def make_generic_run(root: Path, status: str = "finished") -> Path:
    run = root / "exp" / "trial-7"
    write(run, "config.yaml", "model: {name: resnet50}\noptimizer: {name: sgd, lr: 0.1}\n")
    write(run, "run.json", json.dumps({"run_id": "trial-7-abc", "status": status,
                                       "started_at": 1795386930.0, "ended_at": "2026-11-22T23:15:30+00:00",
                                       "host": "gpu1", "device": "cuda:0"}))
    lines = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_acc": [0.5, 0.8, 0.7][e]} for e in range(3)]
    write(run, "metrics.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n{\"epoch\": 3, \"val_")
    write(run, "summary.json", json.dumps({"test_acc": 0.77}))
    return run


def test_generic_run_document(tmp_path: Path) -> None:
    run = make_generic_run(tmp_path)
    doc = the_run(convert_path(run / "metrics.jsonl"))
    assert doc["_id"] == "trial-7-abc" and doc["status"] == "completed" and doc["format"] == "run"
    assert doc["paths"] == [str(run)]
    assert doc["config"]["optimizer"]["lr"] == 0.1
    assert doc["metrics"]["val_acc"] == {"last": 0.7, "best": 0.8}
    assert doc["metrics"]["train_loss"] == {"last": pytest.approx(1 / 3), "best": pytest.approx(1 / 3)}
    assert doc["metrics"]["test_acc"] == {"last": 0.77}
    assert doc["started_at"] == 1795386930.0 and doc["ended_at"] == pytest.approx(1795389330.0)
    assert doc["info"]["host"] == "gpu1" and doc["info"]["epochs"] == 3  # epochs 0, 1, 2: three epochs
    assert "epoch" not in doc["metrics"]
    kinds = by_kind(convert_path(run / "config.yaml"))
    assert set(kinds) == {"run"}
    for p in (run, run / "run.json", run / "summary.json"):
        assert the_run(convert_path(p))["metrics"] == doc["metrics"]


def test_run_document_follows_new_metrics(tmp_path: Path) -> None:
    run = make_generic_run(tmp_path, status="running")
    assert the_run(convert_path(run))["metrics"]["val_acc"]["best"] == 0.8
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('\n{"epoch": 3, "val_acc": 0.95}\n')
    doc = the_run(convert_path(run / "metrics.jsonl"))
    assert doc["metrics"]["val_acc"] == {"last": 0.95, "best": 0.95}


def test_run_with_broken_config_says_so_in_the_run(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write(run, "config.yaml", "model: [vit\n")
    write(run, "metrics.jsonl", '{"epoch": 0, "loss": 1.0}\n')
    kinds = by_kind(convert_path(run / "config.yaml"))
    assert set(kinds) == {"run"}
    rdoc = kinds["run"][0]
    assert rdoc["metrics"]["loss"]["last"] == 1.0 and rdoc["status"] == "unknown"
    assert any("config.yaml" in w for w in rdoc["warnings"])
    # no run.json: the id is derived from the folder and stable
    assert rdoc["_id"] == the_run(convert_path(run))["_id"]


# ---------------------------------------------------------------- Hydra


def test_hydra_output_folder(tmp_path: Path) -> None:
    run = tmp_path / "outputs" / "2024-01-02" / "10-11-12"
    write(run, ".hydra/config.yaml", "paths: {root: /data}\ndata: {dir: '${paths.root}/mnist', bs: 64}\n"
                                     "model: {lr: 0.002}\nout: ${hydra:runtime.output_dir}\n")
    write(run, ".hydra/overrides.yaml", "- model.lr=0.002\n- data.bs=64\n")
    write(run, ".hydra/hydra.yaml", "hydra:\n  runtime: {choices: {model: mnist, data: mnist}}\n"
                                    "  job: {name: train, num: 3}\n")
    write(run, "metrics.csv", "epoch,step,val/acc,train/loss\n0,10,0.5,\n0,10,,1.5\n1,20,0.6,0.9\n")
    docs = convert_path(run / ".hydra" / "config.yaml")
    kinds = by_kind(docs)
    assert set(kinds) == {"run"}
    rdoc = kinds["run"][0]
    assert rdoc["config"]["data"]["dir"] == "/data/mnist" and rdoc["config"]["out"] == "${hydra:runtime.output_dir}"
    assert rdoc["paths"] == [str(run)] and rdoc["info"]["epochs"] == 2
    assert rdoc["info"]["overrides"] == ["model.lr=0.002", "data.bs=64"]
    assert rdoc["info"]["choices"] == {"model": "mnist", "data": "mnist"} and rdoc["info"]["job"] == "train"
    assert rdoc["metrics"] == {"val/acc": {"last": 0.6, "best": 0.6}, "train/loss": {"last": 0.9, "best": 0.9}}
    assert rdoc["format"] == "hydra-run" and rdoc["started_at"] is not None
    other = convert_path(run / ".hydra" / "overrides.yaml")  # a run file, not a config: only the run
    assert [d["kind"] for d in other] == ["run"] and other[0]["_id"] == rdoc["_id"]


# ---------------------------------------------------------------- Lightning


def test_lightning_csv_logger_folder(tmp_path: Path) -> None:
    run = tmp_path / "lightning_logs" / "version_3"
    write(run, "hparams.yaml", "lr: 0.01\nbatch_size: 32\nbetas: !!python/tuple\n- 0.9\n- 0.999\n")
    write(run, "metrics.csv", "epoch,step,train_loss,val_loss,val_acc\n0,99,0.9,,\n0,99,,0.8,0.6\n"
                              "1,199,0.5,,\n1,199,,0.85,0.7\n")
    kinds = by_kind(convert_path(run / "hparams.yaml"))
    rdoc = kinds["run"][0]
    assert rdoc["config"] == {"lr": 0.01, "batch_size": 32, "betas": [0.9, 0.999]}
    assert rdoc["metrics"]["val_loss"] == {"last": 0.85, "best": 0.8}
    assert rdoc["metrics"]["val_acc"] == {"last": 0.7, "best": 0.7}
    assert rdoc["info"]["version"] == "version_3" and rdoc["info"]["steps"] == 199
    assert rdoc["format"] == "lightning-run" and rdoc["status"] == "unknown"
    assert set(kinds) == {"run"} and rdoc["info"]["epochs"] == 2  # epochs 0 and 1: two epochs
    assert the_run(convert_path(run / "metrics.csv"))["_id"] == rdoc["_id"]


# ---------------------------------------------------------------- W&B


def test_wandb_run_folder_unwraps_config_values(tmp_path: Path) -> None:
    run = tmp_path / "wandb" / "run-20240105_101112-ab12cd34"
    write(run, "files/config.yaml", "wandb_version: 1\n_wandb:\n  desc: null\n  value: {cli_version: 0.16.0}\n"
                                    "lr:\n  desc: learning rate\n  value: 0.0003\nmodel:\n  desc: null\n"
                                    "  value: {name: resnet50, depth: 50}\n")
    write(run, "files/wandb-summary.json", json.dumps({"val/acc": 0.91, "loss": 0.2, "acc_best": {"max": 0.93},
                                                       "_step": 500, "_runtime": 3600.5, "_timestamp": 1704449472,
                                                       "examples": {"_type": "table-file", "path": "x"}}))
    write(run, "files/wandb-metadata.json", json.dumps({"startedAt": "2024-01-05T10:11:12.000000",
                                                        "host": "node7", "program": "train.py"}))
    kinds = by_kind(convert_path(run / "files" / "config.yaml"))
    assert set(kinds) == {"run"}
    rdoc = kinds["run"][0]
    assert rdoc["config"] == {"lr": 0.0003, "model": {"name": "resnet50", "depth": 50}}
    assert rdoc["metrics"] == {"val/acc": {"last": 0.91}, "loss": {"last": 0.2}, "acc_best": {"best": 0.93}}
    assert rdoc["info"]["wandb_id"] == "ab12cd34" and rdoc["info"]["host"] == "node7"
    assert rdoc["format"] == "wandb-run" and rdoc["_id"] == "ab12cd34"  # W&B's own run id
    assert rdoc["info"]["steps"] == 500
    assert rdoc["ended_at"] - rdoc["started_at"] == pytest.approx(3600.5)
    assert the_run(convert_path(run / "files" / "wandb-summary.json"))["_id"] == rdoc["_id"]


# ---------------------------------------------------------------- MLflow


def make_mlflow_run(root: Path) -> Path:
    exp = root / "mlruns" / "1"
    write(exp, "meta.yaml", "experiment_id: '1'\nname: cifar\nlifecycle_stage: active\n")
    run = exp / "0123456789abcdef0123456789abcdef"
    write(run, "meta.yaml", "run_id: 0123456789abcdef0123456789abcdef\nrun_name: bold-owl\nstatus: 3\n"
                            "start_time: 1704449472000\nend_time: 1704453072000\nexperiment_id: '1'\n"
                            "lifecycle_stage: active\nuser_id: ana\n")
    write(run, "params/lr", "0.001")
    write(run, "params/optimizer", "adamw\n")
    write(run, "params/model/depth", "50")
    write(run, "metrics/val_loss", "1704449500000 0.9 0\n1704449600000 0.5 1\n1704449700000 0.7 2\n")
    write(run, "metrics/val_acc", "1704449500000 0.6 0\n1704449700000 0.75 2\n1704449600000 0.8 1\n")
    write(run, "tags/mlflow.runName", "bold-owl")
    write(run, "tags/team", "vision")
    return run


def test_mlflow_file_store_run(tmp_path: Path) -> None:
    run = make_mlflow_run(tmp_path)
    docs = convert_path(run / "params" / "lr")
    rdoc = the_run(docs)
    assert [d["kind"] for d in docs] == ["run"]  # params are not a config file
    assert rdoc["_id"] == "0123456789abcdef0123456789abcdef" and rdoc["status"] == "completed"
    assert rdoc["config"] == {"lr": "0.001", "optimizer": "adamw", "model/depth": "50"}
    assert rdoc["config_id"] == config_id(rdoc["config"])
    assert rdoc["metrics"]["val_loss"] == {"last": 0.7, "best": 0.5}
    assert rdoc["metrics"]["val_acc"] == {"last": 0.75, "best": 0.8}  # last = highest step
    assert rdoc["started_at"] == 1704449472.0 and rdoc["ended_at"] == 1704453072.0
    assert rdoc["info"]["experiment"] == "cifar" and rdoc["info"]["tags"]["team"] == "vision"
    for member in ("meta.yaml", "metrics/val_acc", "params/model/depth", "tags/team"):
        assert the_run(convert_path(run / member))["_id"] == rdoc["_id"]


# ---------------------------------------------------------------- which files belong to runs


def test_recognisers_follow_the_protocol() -> None:
    assert {r.name for r in RECOGNISERS} == {"ednaquery", "hydra", "lightning", "wandb", "mlflow", "wandb_binary",
                                              "tensorboard"}
    assert all(isinstance(r, Recogniser) for r in RECOGNISERS)


def test_plain_configs_are_not_runs(tmp_path: Path) -> None:
    write(tmp_path, "exp/config.yaml", "lr: 0.1\n")
    write(tmp_path, "exp/notes.json", "{}\n")
    write(tmp_path, "hp/hparams.yaml", "lr: 0.1\n")
    assert run_folder_of(tmp_path / "exp" / "config.yaml") is None
    assert run_folder_of(tmp_path / "hp" / "hparams.yaml") is None
    assert [d["kind"] for d in convert_path(tmp_path / "exp" / "config.yaml")] == ["config"]
    assert convert_path(tmp_path / "exp") == []
    write(tmp_path, "exp/metrics.jsonl", '{"loss": 1}\n')  # now it is a run
    rec, folder = run_folder_of(tmp_path / "exp" / "config.yaml")
    assert rec.name == "ednaquery" and folder == tmp_path / "exp"
