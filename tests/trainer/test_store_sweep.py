"""``trainer sweep``: grid expansion, derived config documents, queued jobs, dry runs, bad axes."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.documents import config_id, original_config
from ednaquery.query.parser import parse
from ednaquery.store.base import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from trainer.cli import main
from trainer.errors import ConfigError
from trainer.ops.jobs import open_jobs
from trainer.ops.sweep import expand, load_plan, submit

BASE = {"model": {"name": "resnet18"}, "data": {"dataset": "digits", "img_size": 16},
        "optimizer": {"name": "adamw", "lr": 1e-3}, "train": {"epochs": 1}}


@pytest.fixture
def env(tmp_path: Path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    grid = {"base": "base.yaml", "axes": {"model.name": ["resnet18", "convnext_atto"],
                                          "optimizer.lr": [1e-3, 3e-4], "img_size": [16, 32]}}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    store = SQLiteStore(tmp_path / "index.db")
    yield tmp_path, store
    store.close()


def _configs(store) -> list[dict]:
    return store.find(parse("kind=config"), FindOptions())


def test_grid_expands_to_the_cartesian_product_indexed_and_queued(env):
    tmp, store = env
    plan = load_plan(tmp / "grid.yaml", store=store)
    assert len(plan.items) == 8 and plan.duplicates == 0
    assert len(set(plan.config_ids)) == 8
    # last axis fastest, values applied through the override rules (img_size -> data.img_size)
    assert plan.items[0].overrides == {"model.name": "resnet18", "optimizer.lr": 1e-3, "img_size": 16}
    assert plan.items[1].config.config["data"]["img_size"] == 32
    assert plan.items[7].config.config["model"]["name"] == "convnext_atto"
    q = open_jobs(store)
    jobs = submit(plan, store=store, queue=q)
    assert [j.config_id for j in jobs] == plan.config_ids
    assert [j.status for j in q.list()] == ["queued"] * 8
    base_id = config_id(BASE)
    for cid in plan.config_ids:
        doc = store.get(cid)
        if cid == base_id:  # resnet18 / 1e-3 / 16 is the base itself
            continue
        assert doc["derived_from"] == base_id and set(doc["tags"]) == {"derived", "sweep"}
        assert config_id(original_config(doc)) == cid
    assert store.get(base_id)["paths"] == [str(tmp / "base.yaml")]
    # queryable like any config
    assert len(store.find(parse("kind=config model=convnext_atto lr<5e-4"), FindOptions())) == 2
    q.close()


def test_dry_run_writes_nothing(env):
    tmp, store = env
    res = CliRunner().invoke(main, ["sweep", str(tmp / "grid.yaml"), "--dry-run", "--store", str(tmp / "index.db")])
    assert res.exit_code == 0, res.output
    assert "would queue 8 config(s)" in res.output
    lines = [ln for ln in res.output.splitlines() if "model.name=" in ln]
    assert len(lines) == 8
    assert _configs(store) == []
    assert open_jobs(store).list() == []


def test_cli_sweep_queues_and_prints_ids(env):
    tmp, store = env
    res = CliRunner().invoke(main, ["--store", str(tmp / "index.db"), "sweep", str(tmp / "grid.yaml")])
    assert res.exit_code == 0, res.output
    assert "queued 8 config(s)" in res.output
    jobs = open_jobs(store).list()
    assert len(jobs) == 8
    for j in jobs:
        assert j.id in res.output and j.config_id[:12] in res.output


def test_duplicate_combinations_are_one_config(env):
    _, store = env
    plan = expand({"base": dict(BASE), "axes": {"lr": [1e-3, 0.001, "1e-3"], "epochs": [1, 2]}}, store=store)
    assert len(plan.items) == 2 and plan.duplicates == 4


def test_bad_axis_names_the_key(env):
    tmp, store = env
    with pytest.raises(ConfigError, match="optimizer.lrr"):
        expand({"base": dict(BASE), "axes": {"optimizer.lrr": [1e-3]}}, store=store)
    with pytest.raises(ConfigError, match="model.name"):
        expand({"base": {"data": {"dataset": "digits"}}, "axes": {"lr": [1e-3]}}, store=store)
    (tmp / "noaxes.yaml").write_text("base: base.yaml\n")
    res = CliRunner().invoke(main, ["sweep", str(tmp / "noaxes.yaml"), "--store", str(tmp / "index.db")])
    assert res.exit_code == 2 and "axes" in res.output and "Traceback" not in res.output


def test_too_many_combinations_are_refused(env):
    from ednaquery.errors import UsageError

    _, store = env
    with pytest.raises(UsageError, match="combinations"):
        expand({"base": dict(BASE), "axes": {"seed": list(range(200)), "lr": [i * 1e-4 + 1e-4 for i in range(100)]}},
               store=store)
