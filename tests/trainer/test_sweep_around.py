"""``trainer sweep --around``: the best run a query finds, perturbed on the chosen keys only, queued as one sweep.

The runs here are documents in the store (no training): only what the sweep queues matters.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.documents import config_id, make_config_document, make_run_document, original_config
from ednaquery.store.sqlite import SQLiteStore
from tests.support.configs import with_sections
from tests.support.settings import clean_settings
from trainer.cli import main
from trainer.ops.around import img_step
from trainer.ops.jobs import open_jobs

BASE = {"model": {"name": "test_resnet"}, "data": {"dataset": "digits", "img_size": 16},
        "optimizer": {"name": "adamw", "lr": 1e-3}, "train": {"epochs": 2, "device": "cpu"}}


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    clean_settings(tmp_path, monkeypatch)
    store = SQLiteStore(tmp_path / "index.db")
    runs = {}
    for i, (model, lr, acc) in enumerate([("test_resnet", 1e-3, 0.80), ("test_resnet", 3e-3, 0.93),
                                          ("resnet18", 1e-2, 0.85), ("resnet10t", 1e-2, 0.5)]):
        cfg = with_sections(BASE, model={"name": model}, optimizer={"lr": lr})
        cid = config_id(cfg)
        store.upsert([make_config_document(cfg, path=None, format="derived")])
        rid = f"20261204-10000{i}-abcd"
        store.upsert([make_run_document(rid, config=cfg, config_id=cid, path=str(tmp_path / "runs" / rid),
                                        status="completed", metrics={"val_acc": {"last": acc, "best": acc}},
                                        info={"epochs_done": 2})])
        runs[(model, lr)] = (rid, cfg)
    yield tmp_path, store, runs
    store.close()


def _run(tmp: Path, *args: str):
    return CliRunner().invoke(main, ["--store", str(tmp / "index.db"), "sweep", *args])


def _leaves(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_around_perturbs_only_the_chosen_keys_of_the_best_run(env):
    tmp, store, runs = env
    best_id, best_cfg = runs[("test_resnet", 3e-3)]
    res = _run(tmp, "--around", "dataset=digits model=test_resnet", "--keys", "lr,img_size", "--n", "6",
               "--no-work", "--no-wait")
    assert res.exit_code == 0, res.output
    assert f"around run {best_id}" in res.output
    jobs = open_jobs(store).list()
    assert len(jobs) == 6 and len({j.options["sweep"]["id"] for j in jobs}) == 1
    centre = _leaves(best_cfg)
    changed = set()
    for j in jobs:
        cfg = _leaves(original_config(store.get(j.config_id)))
        diff = {k for k in set(cfg) | set(centre) if cfg.get(k) != centre.get(k)}
        assert diff and diff <= {"optimizer.lr", "data.img_size"}, diff
        changed |= diff
        assert 3e-3 / 2 <= cfg["optimizer.lr"] <= 3e-3 * 2
        assert isinstance(cfg["data.img_size"], int) and cfg["data.img_size"] % 8 == 0
        assert 8 <= cfg["data.img_size"] <= 32
        assert j.options["sweep"]["params"] == {"optimizer.lr": cfg["optimizer.lr"],
                                                "data.img_size": cfg["data.img_size"]}
    assert changed == {"optimizer.lr", "data.img_size"}
    # a trial that beats the centre does not move it: the same command is the same sweep, nothing more is queued
    j = jobs[0]
    cfg = original_config(store.get(j.config_id))
    store.upsert([make_run_document("20261204-110000-abcd", config=cfg, config_id=j.config_id, path=str(tmp / "r"),
                                    status="completed", metrics={"val_acc": {"last": 0.99, "best": 0.99}},
                                    info={"sweep": j.options["sweep"]["id"], "trial": 0})])
    again = _run(tmp, "--around", "dataset=digits model=test_resnet", "--keys", "lr,img_size", "--n", "6",
                 "--no-work", "--no-wait")
    assert again.exit_code == 0, again.output
    assert len(open_jobs(store).list()) == 6


def test_around_a_run_id_moves_a_name_to_its_neighbours_dry_run(env):
    tmp, store, runs = env
    rid, _ = runs[("resnet18", 1e-2)]
    res = _run(tmp, "--around", rid[:17], "--keys", "model", "--n", "4", "--dry-run")
    # a run given by id is the only run known, so its model has no neighbour to move to
    assert res.exit_code == 2 and "no neighbour" in res.output, res.output
    res = _run(tmp, "--around", rid[:17], "--keys", "lr", "--n", "3", "--dry-run")
    assert res.exit_code == 0 and f"around run {rid}" in res.output, res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("trial ")]) == 3
    res = _run(tmp, "--around", "dataset=digits lr>5e-3", "--keys", "model", "--n", "4", "--dry-run")
    assert res.exit_code == 0, res.output
    shown = {ln.split("model.name=")[1] for ln in res.output.splitlines() if ln.startswith("trial ")}
    assert shown == {"resnet10t"}  # resnet18 (the best of the two) moves to its neighbour; never to itself
    assert open_jobs(store).list() == []


def test_around_refuses_what_it_cannot_scale(env):
    tmp, _, _ = env
    for args, words in [(["--keys", "weight_decay"], "is 0"), (["--keys", "optimizer.nope"], "optimizer.nope"),
                        (["--factor", "1"], "--factor"), (["--keys", "lr", "--metric", "val_f1"], "no run with a val_f1")]:
        res = _run(tmp, "--around", "dataset=digits", *args, "--dry-run")
        assert res.exit_code != 0 and words in res.output and "Traceback" not in res.output, res.output


def test_img_size_steps_follow_the_model():
    assert img_step({"model": {"name": "vit_tiny_patch16_224"}}, 224) == 16
    assert img_step({"model": {"name": "vit_small", "patch_size": 14}}, 224) == 14
    assert img_step({"model": {"name": "resnet50"}}, 224) == 32
    assert img_step({"model": {"name": "resnet50"}}, 40) == 8
    assert img_step({"model": {"name": "resnet50"}}, 28) == 1
