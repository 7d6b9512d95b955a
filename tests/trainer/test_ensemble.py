"""``trainer ensemble`` for real: three tiny members trained once on digits (timm's ``test_resnet``,
16x16, 2 short epochs, seeds 0-2: a few seconds), then combined, written and indexed as runs.

The members' softmax outputs are recomputed here with the engine's own pieces (the run folder's
config.yaml, build_data, best.pt, the model's normalisation), independently of trainer.ops.ensemble,
and compared with what the ensemble run saved and scored.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from ednaquery.query.parser import parse
from ednaquery.store.base import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from tests.support.configs import tiny_config
from tests.support.settings import clean_settings

pytest.importorskip("timm")
pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow

TINY = tiny_config(train={"epochs": 2, "max_steps_per_epoch": 40})
QUERY = ["model=test_resnet", "dataset=digits"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """Three members (seeds 0, 1, 2) trained and indexed once for the module."""
    from trainer.ops.launch import launch

    root = tmp_path_factory.mktemp("ensemble")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    with pytest.MonkeyPatch.context() as mp:
        clean_settings(root, mp)
        store = SQLiteStore(root / "index.db")
        ids = []
        for seed in range(3):
            result = launch(str(root / "tiny.yaml"), [f"train.seed={seed}"], store=store,
                            runs_root=root / "runs", quiet=True, handle_signals=False)
            assert result.status == "completed", result.error
            ids.append(result.run_id)
        store.close()
    return {"root": root, "db": str(root / "index.db"), "runs": root / "runs", "ids": ids}


@pytest.fixture
def env(trained, tmp_path: Path, monkeypatch):
    clean_settings(tmp_path, monkeypatch)
    return {**trained, "out": tmp_path / "ensembles"}


def trainer(env, *args: str):
    return CliRunner().invoke(_main(), ["--store", env["db"], *args], catch_exceptions=False)


def _main():
    from trainer.cli import main

    return main


def _written(out: Path) -> list[Path]:
    return sorted(out.iterdir()) if out.exists() else []


def member_softmax(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(softmax [N, C], labels) of a member on its validation images, computed from its folder alone."""
    import torch

    from trainer.engine.config import load_config
    from trainer.engine.data import build_data, normalization
    from trainer.engine.model import build_model, model_mean_std

    cfg = load_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    data = build_data(cfg)
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    model = build_model(cfg.model, num_classes=len(state["class_names"]), in_chans=data.channels,
                        img_size=cfg.img_hw)
    model.load_state_dict(state["model"])
    model.eval()
    mean, std = normalization(*(model_mean_std(model) or (None, None)), data.channels)
    mean_t = torch.tensor(mean).view(1, -1, 1, 1) * 255
    std_t = torch.tensor(std).view(1, -1, 1, 1) * 255
    probs, labels = [], []
    with torch.no_grad():
        for x, y in data.val_loader:
            probs.append(torch.softmax(model((x.float() - mean_t) / std_t).double(), 1).numpy())
            labels.append(y.numpy())
    return np.concatenate(probs), np.concatenate(labels)


def _run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_mean_of_three_is_the_mean_of_the_members_softmax_and_is_indexed(env):
    res = trainer(env, "ensemble", *QUERY, "--top", "3", "--combine", "mean", "--runs-root", str(env["out"]), "-q")
    assert res.exit_code == 0, res.output
    [folder] = _written(env["out"])
    run = _run_json(folder)
    assert run["status"] == "completed" and sorted(run["members"]) == sorted(env["ids"])

    saved = np.load(folder / "predictions.npz")
    runs = {d.name: d for d in env["runs"].iterdir()}
    member_probs = []
    store = SQLiteStore(env["db"])
    try:
        for i, rid in enumerate(run["members"]):
            p, labels = member_softmax(runs[rid])
            member_probs.append(p)
            assert np.allclose(saved["member_probs"][i], p, atol=1e-6)
            assert np.array_equal(saved["labels"], labels)
            # the very images the member was validated on: its accuracy is the one its run recorded
            recorded = store.get(rid)["metrics"]["val_acc"]["best"]
            assert np.mean(p.argmax(1) == labels) == pytest.approx(recorded)
        expected = np.mean(member_probs, axis=0)
        assert np.allclose(saved["probs"], expected, atol=1e-6)
        acc = float(np.mean(expected.argmax(1) == labels))
        summary = json.loads((folder / "summary.json").read_text())["metrics"]
        assert summary["val_acc"]["last"] == pytest.approx(acc)
        loss = float(np.mean(-np.log(expected[np.arange(len(labels)), labels])))
        assert summary["val_loss"]["last"] == pytest.approx(loss, rel=1e-6)
        assert "val_top5" in summary
        confusion = json.loads((folder / "val_confusion.json").read_text())["matrix"]
        assert np.trace(confusion) == round(acc * len(labels)) and np.sum(confusion) == len(labels)
        best_member = max(np.mean(p.argmax(1) == labels) for p in member_probs)
        assert summary["val_acc_gain"]["last"] == pytest.approx(acc - best_member)

        # an ordinary run in the store: members= finds it, its gain is one query away
        [doc] = store.find(parse(["kind=run", f"members={env['ids'][0]}"]), FindOptions())
        assert doc["_id"] == folder.name and doc["status"] == "completed"
        assert doc["metrics"]["val_acc_gain"]["last"] == pytest.approx(acc - best_member)
        assert doc["info"]["ensemble"]["combine"] == "mean"
        # val_acc compares accuracies only (no gain is stored under a val_acc key)
        assert store.find(parse(["kind=run", f"members={env['ids'][0]}", "val_acc<0.5"]), FindOptions()) == []
    finally:
        store.close()
    from ednaquery.cli import main as ednaquery_main

    res = CliRunner().invoke(ednaquery_main, ["--store", env["db"], "find", "kind=run", f"members={env['ids'][1]}",
                                              "--best", "val_acc", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in json.loads(res.output)] == [folder.name]


def test_weighted_and_vote_follow_their_documented_rules(env):
    res = trainer(env, "ensemble", *QUERY, "--combine", "weighted", "--combine", "vote",
                  "--runs-root", str(env["out"]), "-q")
    assert res.exit_code == 0, res.output
    assert res.output.count("ensemble ") == 2
    by_method = {_run_json(f)["ensemble"]["combine"]: f for f in _written(env["out"])}
    w_saved = np.load(by_method["weighted"] / "predictions.npz")
    info = _run_json(by_method["weighted"])["ensemble"]
    acc = np.array(info["member_val_acc"])
    alpha = np.maximum(0, np.log(acc / (1 - acc)) + np.log(9))
    assert np.allclose(info["weights"], alpha / alpha.sum())
    assert np.allclose(w_saved["probs"], np.tensordot(info["weights"], w_saved["member_probs"], axes=1))
    v_saved = np.load(by_method["vote"] / "predictions.npz")
    tops = v_saved["member_probs"].argmax(2)  # [M, N]
    votes = np.stack([(tops == c).sum(0) for c in range(10)], 1)
    majority = votes.max(1)
    pred = v_saved["probs"].argmax(1)
    assert (votes[np.arange(len(pred)), pred] == majority).all()  # the winner always has the most votes


def test_stacking_scores_each_fold_with_a_meta_learner_fitted_on_the_other_folds(env):
    from sklearn.linear_model import LogisticRegression

    res = trainer(env, "ensemble", *QUERY, "--combine", "stacking", "--folds", "4", "--runs-root", str(env["out"]),
                  "-q")
    assert res.exit_code == 0, res.output
    [folder] = _written(env["out"])
    assert _run_json(folder)["ensemble"]["folds"] == 4
    saved = np.load(folder / "predictions.npz")
    fold, labels, members = saved["stack_fold"], saved["labels"], saved["member_probs"]
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3]  # every validation image scored, by one of 4 folds
    x = np.log(np.clip(members, 1e-12, None)).transpose(1, 0, 2).reshape(len(labels), -1)
    for k in range(4):
        held = fold == k
        meta = LogisticRegression(max_iter=2000).fit(x[~held], labels[~held])  # the other folds only
        assert np.allclose(saved["probs"][held], meta.predict_proba(x[held]), atol=1e-6)
    summary = json.loads((folder / "summary.json").read_text())["metrics"]
    assert summary["val_acc"]["last"] == pytest.approx(float(np.mean(saved["probs"].argmax(1) == labels)))


def _copy_member(env, src_id: str, store: SQLiteStore, new_id: str, *, data: dict | None = None,
                 class_names: list[str] | None = None) -> str:
    """A copy of a member's folder under a new run id, edited and indexed into ``store``."""
    from trainer.recorder import RunRecorder

    dst = env["out"].parent / "members" / new_id
    shutil.copytree(env["runs"] / src_id, dst)
    cfg = yaml.safe_load((dst / "config.yaml").read_text())
    cfg["data"].update(data or {})
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = _run_json(dst)
    run["run_id"] = new_id
    if class_names is not None:
        run["class_names"] = class_names
    (dst / "run.json").write_text(json.dumps(run))
    assert RunRecorder(store, dst).record()
    return new_id


@pytest.mark.parametrize(("first", "edit", "message", "dry_run_sees_it"), [
    ({}, {"data": {"img_size": 12}}, "members disagree on the input size", True),
    ({"data": {"channels": 1}}, {"data": {"channels": 3}}, "members disagree on the input channels", True),
    ({}, {"data": {"channels": 3}}, "members disagree on the input channels", False),  # digits' own: 1
    ({}, {"class_names": [f"c{i}" for i in range(10)]}, "members disagree on the classes", True),
])
def test_members_that_differ_are_refused_in_one_line_and_nothing_is_written(env, tmp_path, first, edit, message,
                                                                           dry_run_sees_it):
    db = str(tmp_path / "own.db")
    store = SQLiteStore(db)
    try:
        _copy_member(env, env["ids"][0], store, "20990101-000000-aaaa", **first)
        _copy_member(env, env["ids"][1], store, "20990101-000000-bbbb", **edit)
    finally:
        store.close()
    for extra in ((), ("--dry-run",)) if dry_run_sees_it else ((),):
        res = CliRunner().invoke(_main(), ["--store", db, "ensemble", "model=test_resnet", "-q",
                                           "--runs-root", str(env["out"]), *extra])
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith("error: " + message) and res.stderr.count("\n") == 1, res.stderr
        assert _written(env["out"]) == []


@pytest.mark.parametrize("data", [{"val_split": 0.3}, {"folds": 5, "fold": 1}],
                         ids=["val_split", "cross-validation-fold"])
def test_members_validated_on_other_images_are_refused(env, tmp_path, data):
    db = str(tmp_path / "own.db")
    store = SQLiteStore(db)
    try:
        _copy_member(env, env["ids"][0], store, "20990101-000000-aaaa")
        _copy_member(env, env["ids"][1], store, "20990101-000000-bbbb", data=data)
    finally:
        store.close()
    res = CliRunner().invoke(_main(), ["--store", db, "ensemble", "model=test_resnet", "-q",
                                       "--runs-root", str(env["out"])])
    assert res.exit_code == 2 and "validated on different images" in res.stderr, res.stderr
    assert _written(env["out"]) == []


def test_dry_run_prints_the_plan_and_writes_nothing(env):
    store = SQLiteStore(env["db"])
    try:
        before = len(store.find(parse(["kind=run"]), FindOptions()))
    finally:
        store.close()
    res = trainer(env, "ensemble", *QUERY, "--top", "2", "--combine", "stacking", "--dry-run",
                  "--runs-root", str(env["out"]))
    assert res.exit_code == 0, res.output
    assert "members: 2 run(s)" in res.output and "stacking (5 folds" in res.output
    assert "digits" in res.output and "16x16" in res.output
    assert sum(rid in res.output for rid in env["ids"]) == 2
    assert _written(env["out"]) == []
    store = SQLiteStore(env["db"])
    try:
        assert len(store.find(parse(["kind=run"]), FindOptions())) == before
    finally:
        store.close()


def test_a_query_with_fewer_than_two_runs_is_refused(env):
    res = trainer(env, "ensemble", "model=no_such_model", "--runs-root", str(env["out"]))
    assert res.exit_code == 2 and "at least 2 completed trainer runs" in res.output
    res = trainer(env, "ensemble", *QUERY, "--top", "1")
    assert res.exit_code == 2  # click: K >= 2
    res = trainer(env, "ensemble", *QUERY, "--top", "2", "--by", "val_acc_typo", "--dry-run")  # 3 runs, no ranking
    assert res.exit_code == 2 and res.stderr == ("error: --by val_acc_typo: none of the 3 runs has this metric, so "
                                                 "--top 2 cannot rank them; `ednaquery keys 'metrics.*'` lists the "
                                                 "metrics\n"), res.output


def test_a_test_split_is_scored_and_stacking_scores_it_with_a_meta_learner_fitted_on_all_validation(
        env, monkeypatch):
    """digits has no test split: one is simulated (the validation images again) to follow that path."""
    from sklearn.linear_model import LogisticRegression

    import trainer.engine.data as data_mod

    real = data_mod.build_data

    def with_test_split(cfg, **kw):
        bundle = real(cfg, **kw)
        bundle.test_loader = bundle.val_loader
        return bundle

    monkeypatch.setattr(data_mod, "build_data", with_test_split)
    res = trainer(env, "ensemble", *QUERY, "--combine", "mean", "--combine", "stacking", "--runs-root",
                  str(env["out"]), "-q")
    assert res.exit_code == 0, res.output
    by_method = {_run_json(f)["ensemble"]["combine"]: f for f in _written(env["out"])}
    mean = json.loads((by_method["mean"] / "summary.json").read_text())["metrics"]
    assert mean["test_acc"]["last"] == pytest.approx(mean["val_acc"]["last"])  # the same images
    assert "test_acc_gain" in mean and _run_json(by_method["mean"])["test_size"] == 359
    saved = np.load(by_method["stacking"] / "predictions.npz")
    labels = saved["labels"]
    x = np.log(np.clip(saved["member_probs"], 1e-12, None)).transpose(1, 0, 2).reshape(len(labels), -1)
    meta = LogisticRegression(max_iter=2000).fit(x, labels)  # all the validation rows, and only them
    assert np.allclose(saved["test_probs"], meta.predict_proba(x), atol=1e-6)


def test_a_member_trained_on_feature_channels_is_fed_its_own_stack(env, tmp_path):
    from trainer.ops.launch import launch

    db = str(tmp_path / "own.db")
    store = SQLiteStore(db)
    try:
        plain = _copy_member(env, env["ids"][0], store, "20990101-000000-aaaa")
        featured = launch(str(env["root"] / "tiny.yaml"), ["train.seed=5", "data.features=[gray,sobel]"],
                          store=store, runs_root=tmp_path / "runs", quiet=True, handle_signals=False)
        assert featured.status == "completed", featured.error
    finally:
        store.close()
    res = CliRunner().invoke(_main(), ["--store", db, "ensemble", "model=test_resnet", "-q",
                                       "--runs-root", str(env["out"])])
    assert res.exit_code == 0, res.output
    [folder] = _written(env["out"])
    run = _run_json(folder)
    store = SQLiteStore(db)
    try:
        recorded = {m: store.get(m)["metrics"]["val_acc"]["best"] for m in (plain, featured.run_id)}
    finally:
        store.close()
    # each member scores on the shared validation images what its own run recorded: inputs made its way
    assert run["ensemble"]["member_val_acc"] == pytest.approx([recorded[m] for m in run["members"]])
