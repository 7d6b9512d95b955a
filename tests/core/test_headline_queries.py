"""The README's headline queries on a store indexed from ``examples/`` plus a trainer run folder.

The run's config is the bundled trainer's resolved config (``optimizer.lr: 1e-3`` next to
``scheduler.min_lr: 0.0`` and ``scheduler.warmup_lr: 1e-6``), in the folder layout the trainer
writes (``config.yaml``, ``run.json``, ``summary.json``) and read back by ``run_document``, as the
indexer does. Expected files are derived by hand from the example file names, which spell each
config's model, optimizer, scheduler and ``optimizer.lr`` (``lr0p0003`` = 3e-4, ``lr1p0e-4`` = 1e-4).
Also: unknown keys get "did you mean", and ``kind=`` values that are not kinds are usage errors.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.cli import main
from ednaquery.runfolder import run_document
from ednaquery.store import open_store
from tests.support.folders import EXAMPLES, index_folder  # the indexer's way of indexing a folder

RUN_ID = "20261201-120000-ab12"
VIT_BELOW_1E3 = {  # vit_tiny_patch16_224 configs with lr 1e-4 or 3e-4 (lr0p001/1e-3 are not below)
    "digits_32px_sgd_step_lr1e-4_s1.yaml", "fake_224x192px_adamw_step_lr1e-4_s0.json",
    "fake_224x192px_sgd_step_lr1e-4_s1.yaml", "fashion_mnist_224px_lamb_cosine_lr1e-4_s1.yaml",
    "fashion_mnist_224px_sgd_step_lr0p0003_s2.yaml",
}
ADAMW_COSINE = {"fake_224x192px_adamw_cosine_lr1e-3_s1.yaml", "fashion_mnist_64px_adamw_cosine_lr1e-4_s0.yaml",
                "resnet18_digits.yaml"}


def _trainer_run(folder: Path) -> dict:
    """A run folder as the trainer writes it, for the vit config with lr 1e-3, read back into a document."""
    from trainer.engine.config import load_config, to_dict

    raw = yaml.safe_load((EXAMPLES / "sweeps/vit_tiny_patch16_224/fashion_mnist_64px_adamw_step_lr1e-3_s0.yaml")
                         .read_text())
    config = to_dict(load_config(raw))
    assert config["optimizer"]["lr"] == 1e-3 and config["scheduler"]["min_lr"] == 0.0
    assert config["scheduler"]["warmup_lr"] == 1e-6
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "run.json").write_text(json.dumps({
        "format": "ednaquery-run", "run_id": RUN_ID, "status": "completed",
        "started_at": 1_800_000_000.0, "ended_at": 1_800_000_600.0}))
    (folder / "summary.json").write_text(json.dumps({
        "metrics": {"val_acc": {"last": 0.89, "best": 0.91}, "val_loss": {"last": 0.4, "best": 0.35}},
        "epochs": 30}))
    return run_document(folder)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("headline")
    shutil.copytree(EXAMPLES, base / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    store = open_store(str(base / "index.db"))
    try:
        index_folder(store, base / "examples")
        store.upsert([_trainer_run(base / "runs" / RUN_ID)])
    finally:
        store.close()
    return base


@pytest.fixture
def eq(world, monkeypatch):
    for name in [n for n in os.environ if n.startswith("EDNAQUERY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(world / "xdg"))
    monkeypatch.chdir(world)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["--store", str(world / "index.db"), *args], catch_exceptions=False)


def _names(result) -> set[str]:
    assert result.exit_code == 0, result.output
    return {Path(row["paths"][0]).name if row["kind"] == "config" else row["id"]
            for row in json.loads(result.stdout)}


def test_lr_below_1e3_model_vit_is_the_optimizer_lr_not_min_lr(eq):
    assert _names(eq("find", "lr<1e-3", "model=vit", "--format", "json")) == VIT_BELOW_1E3


def test_a_run_trained_at_1e3_is_not_below_1e4(eq):
    r = eq("find", "kind=run", "lr<1e-4")
    assert r.exit_code == 1  # warmup_lr=1e-06 and min_lr=0 are not this run's lr
    assert _names(eq("find", "kind=run", "*lr<1e-4", "--format", "json")) == {RUN_ID}


def test_no_config_has_lr_below_1e5(eq):
    assert eq("find", "kind=config", "lr<1e-5").exit_code == 1
    assert eq("count", "kind=config", "*lr<1e-5").stdout.strip() != "0"  # min_lr=1e-6 in cosine configs


def test_runs_that_reached_val_acc_09(eq):
    assert _names(eq("find", "kind=run", "val_acc>0.9", "--format", "json")) == {RUN_ID}  # best 0.91
    assert eq("find", "kind=run", "val_acc.last>0.9").exit_code == 1  # last 0.89


def test_count_adamw_cosine(eq):
    r = eq("count", "optimizer=adamw", "scheduler=cosine", "kind=config")
    assert r.stdout.strip() == str(len(ADAMW_COSINE))
    assert _names(eq("find", "optimizer=adamw", "scheduler=cosine", "kind=config", "--format", "json")) \
        == ADAMW_COSINE


def test_sort_by_lr_descending(eq):
    r = eq("find", "model=convnext", "img_size=224", "--sort=-lr", "--limit", "10", "--format", "json")
    names = [Path(row["paths"][0]).name for row in json.loads(r.stdout)]
    assert names[:2] == ["fake_224x192px_sgd_onecycle_lr1e-3_s1.yaml", "fashion_mnist_224px_sgd_cosine_lr3e-4_s1.yaml"]
    assert set(names[2:]) == {"fake_224x192px_lamb_step_lr1p0e-4_s2.yaml", "fake_224x192px_sgd_cosine_lr1p0e-4_s0.yaml",
                              "fashion_mnist_224px_lamb_cosine_lr1e-4_s0.yaml"}


def test_a_typo_gets_did_you_mean_and_still_exits_1(eq):
    r = eq("find", "modle=vit")
    assert r.exit_code == 1
    assert "no key 'modle' in the index; did you mean 'model'?" in r.stderr
    r = eq("count", "lrr<1e-3")
    assert r.exit_code == 1 and "did you mean 'lr'?" in r.stderr
    r = eq("count", "--quiet", "lrr<1e-3")
    assert r.exit_code == 1 and r.stderr == ""


def test_sort_or_by_on_an_unknown_key_is_a_usage_error(eq):
    r = eq("find", "lr", "--sort=-lrr")
    assert r.exit_code == 2 and "did you mean 'lr'?" in r.stderr
    r = eq("find", "kind=run", "--best", "val_acc", "--by", "modle")
    assert r.exit_code == 2 and "--by: no key 'modle' in the index; did you mean 'model'?" in r.stderr


def test_a_kind_that_is_not_a_kind_says_which_exist(eq):
    r = eq("find", "kind=confg")
    assert r.exit_code == 2 and "the kinds are config, run, error" in r.stderr and "'config'" in r.stderr
