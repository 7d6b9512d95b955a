"""``trainer cv`` / ``trainer bag``: K fold runs (or N bootstrap runs) queued as a group whose mean/std
follow its runs; the group is a searchable ``kind=group`` document."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.api import Index
from ednaquery.cli import main as ednaquery_main
from ednaquery.groups import read_group
from ednaquery.store.sqlite import SQLiteStore
from tests.support.configs import tiny_config
from tests.support.settings import clean_settings
from trainer.cli import main
from trainer.engine.data import load_digits
from trainer.engine.folds import read_split
from trainer.ops.groups import plan_bag, plan_cv, refresh_group
from trainer.ops.jobs import open_jobs

pytest.importorskip("timm")

TINY = tiny_config(data={"img_size": 8, "fraction": 0.3}, train={"max_steps_per_epoch": 2})


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    clean_settings(tmp_path, monkeypatch)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    return tmp_path


def _cli(tmp: Path, *args: str):
    res = CliRunner().invoke(main, [*args, "--store", str(tmp / "index.db")])
    assert res.exit_code == 0, res.output
    return res


def _worker(tmp: Path) -> None:
    _cli(tmp, "worker", "--until-empty", "--quiet", "--runs-root", str(tmp / "runs"), "--poll-interval", "0.05")


def test_cv_dry_run_prints_the_plan_and_writes_nothing(env):
    res = _cli(env, "cv", str(env / "base.yaml"), "--folds", "3", "--dry-run", "--runs-root", str(env / "runs"))
    assert [ln.split("  ")[1] for ln in res.output.splitlines() if "fold" in ln and "would" not in ln] == \
        ["fold 0", "fold 1", "fold 2"]
    assert "would queue 3 run(s)" in res.output
    assert not (env / "runs").exists()
    store = SQLiteStore(env / "index.db")
    try:
        assert open_jobs(store).list() == [] and Index(store, owns_store=False).count("kind=config or kind=group") == 0
    finally:
        store.close()


def test_plans_derive_one_config_per_fold_and_per_bootstrap_seed(env):
    store = SQLiteStore(env / "index.db")
    try:
        cv = plan_cv(store, str(env / "base.yaml"), ["epochs=2"], folds=4)
        assert [m.config.config["data"]["fold"] for m in cv.members] == [0, 1, 2, 3]
        assert {m.config.config["data"]["folds"] for m in cv.members} == {4}
        assert {m.config.config["train"]["epochs"] for m in cv.members} == {2}
        assert len({m.config.config_id for m in cv.members}) == 4 and cv.group_id.startswith("cv-")
        bag = plan_bag(store, str(env / "base.yaml"), n=3, seed=10)
        assert [m.config.config["data"]["bootstrap"] for m in bag.members] == [10, 11, 12]
        assert [m.label for m in bag.members] == [{"bootstrap": 10}, {"bootstrap": 11}, {"bootstrap": 12}]
    finally:
        store.close()


@pytest.mark.parametrize(("args", "message"), [
    (["--folds", "1"], "--folds must be at least 2"),
    (["--folds", "500"], "over the limit of 100 runs"),
    (["--folds", "3", "data.fold=9"], "data.fold"),
])
def test_bad_cv_requests_are_one_line_usage_errors(env, args, message):
    res = CliRunner().invoke(main, ["cv", str(env / "base.yaml"), *args, "--store", str(env / "index.db")])
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1


def test_cv_group_metrics_are_the_mean_of_its_fold_runs(env):
    res = _cli(env, "cv", str(env / "base.yaml"), "--folds", "3", "--runs-root", str(env / "runs"))
    gid = res.output.split(" as group ")[1].split()[0]
    path = env / "runs" / gid / "group.json"
    assert read_group(path)["status"] == "queued"
    _worker(env)
    record = read_group(path)
    assert record["status"] == "completed" and [m["fold"] for m in record["members"]] == [0, 1, 2]
    store = SQLiteStore(env / "index.db")
    ix = Index(store, owns_store=False)
    try:
        runs = [store.get(m["run_id"]) for m in record["members"]]
        assert {r["status"] for r in runs} == {"completed"}
        accs = [r["metrics"]["val_acc"]["best"] for r in runs]
        losses = [r["metrics"]["val_loss"]["best"] for r in runs]
        doc = store.get(gid)
        assert doc["kind"] == "group" and doc["status"] == "completed"
        assert doc["metrics"]["val_acc"]["mean"] == pytest.approx(statistics.fmean(accs))
        assert doc["metrics"]["val_acc"]["std"] == pytest.approx(statistics.stdev(accs))
        assert doc["metrics"]["val_loss"]["mean"] == pytest.approx(statistics.fmean(losses))
        # searchable like any document, best by mean
        threshold = statistics.fmean(accs) - 1e-9
        assert [r.id for r in ix.find(["kind=group", f"val_acc.mean>{threshold}"])] == [gid]
        assert [r.id for r in ix.find(["kind=group", f"val_acc.mean>{threshold + 1e-6}"])] == []
        assert [r.id for r in ix.find("kind=group", best="val_acc")] == [gid]
        assert [r.id for r in ix.find(["kind=group", f"group.runs={runs[1]['_id']}"])] == [gid]
        # the K validation folds partition the training set the runs had (digits' train split, 30%)
        folders = [Path(r["paths"][0]) for r in runs]
        vals = [read_split(f)["val"] for f in folders]
        assert all(read_split(f)["folds"] == 3 for f in folders)
        train_size = read_split(folders[0])["train_set_size"]
        flat = sorted(i for v in vals for i in v)
        assert len(flat) == train_size and len(set(flat)) == train_size
        assert max(flat) < len(load_digits(0.2)[0].labels)
    finally:
        store.close()
    # the CLI shows it and a refresh by hand gives the same numbers
    shown = _cli(env, "group", gid[:-2], "--refresh", "--runs-root", str(env / "runs")).output
    assert "completed" in shown and "fold 2" in shown and "val_acc: mean" in shown
    assert read_group(path)["metrics"] == record["metrics"]
    found = CliRunner().invoke(ednaquery_main, ["--store", str(env / "index.db"), "find", "kind=group",
                                                "--format", "json"])
    assert found.exit_code == 0, found.output
    assert [d["id"] for d in json.loads(found.output)] == [gid]


def test_bag_runs_record_out_of_bag_indices_and_the_group_follows(env):
    res = _cli(env, "bag", str(env / "base.yaml"), "--n", "2", "--seed", "4", "--runs-root", str(env / "runs"))
    gid = res.output.split(" as group ")[1].split()[0]
    _worker(env)
    record = read_group(env / "runs" / gid / "group.json")
    assert record["status"] == "completed" and [m["bootstrap"] for m in record["members"]] == [4, 5]
    store = SQLiteStore(env / "index.db")
    try:
        folders = [Path(store.get(m["run_id"])["paths"][0]) for m in record["members"]]
        splits = [read_split(f) for f in folders]
        assert [s["bootstrap"] for s in splits] == [4, 5] and splits[0]["sample"] != splits[1]["sample"]
        for s in splits:
            assert len(s["sample"]) == s["train_set_size"] and set(s["oob"]).isdisjoint(s["sample"])
        assert store.get(gid)["info"]["method"] == "bag"
    finally:
        store.close()


def test_cv_prints_a_runs_root_with_control_characters_as_escapes(env):
    root = env / "runs\x1b]0;pwned\x07"  # printed raw, this would set the terminal's title
    res = CliRunner().invoke(main, ["cv", str(env / "base.yaml"), "--folds", "2", "--dry-run", "--runs-root",
                                    str(root), "--store", str(env / "index.db")], color=True)
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "runs\\x1b]0;pwned\\x07/cv-" in res.stderr


def test_a_member_relaunched_by_hand_counts_after_a_refresh(env):
    store = SQLiteStore(env / "index.db")
    try:
        plan = plan_cv(store, str(env / "base.yaml"), folds=2)
        q = open_jobs(store)
        from trainer.ops.groups import submit

        path, jobs = submit(plan, store=store, queue=q, runs_root=env / "runs")
        for j in jobs:
            q.cancel(j.id)
        record = refresh_group(store, path, queue=q)
        assert record["status"] == "failed" and {m["status"] for m in record["members"]} == {"cancelled"}
        q.close()
    finally:
        store.close()
    # fold 0 launched by hand: the group takes its run
    fold0 = plan.members[0].config.config_id
    _cli(env, "launch", fold0, "--quiet", "--runs-root", str(env / "runs"))
    before = path.read_bytes()
    preview = _cli(env, "group", plan.group_id, "--refresh", "--dry-run", "--json", "--runs-root",
                   str(env / "runs")).output
    assert [m["status"] for m in json.loads(preview)["members"]] == ["completed", "cancelled"]
    assert path.read_bytes() == before  # a dry run writes nothing
    _cli(env, "group", plan.group_id, "--refresh", "--runs-root", str(env / "runs"))
    record = read_group(path)
    assert [m["status"] for m in record["members"]] == ["completed", "cancelled"]
    assert record["metrics"]["val_acc"]["std"] == 0.0 and record["members"][0]["run_id"]


def test_a_member_that_fails_before_any_run_marks_the_group_failed(env):
    import threading

    from ednaquery.errors import EdnaError
    from trainer.ops.groups import after_member, submit

    store = SQLiteStore(env / "index.db")
    try:
        plan = plan_bag(store, str(env / "base.yaml"), n=1)
        q = open_jobs(store)
        path, _ = submit(plan, store=store, queue=q, runs_root=env / "runs")
        job = q.claim("w1")

        def broken(job, stop, started):
            raise EdnaError("config no longer valid")

        with pytest.raises(EdnaError):
            after_member(broken, store, runs_root=env / "runs")(job, threading.Event(), lambda rid: None)
        record = read_group(path)
        assert record["status"] == "failed" and record["members"][0]["status"] == "failed"
        assert store.get(plan.group_id)["status"] == "failed"  # indexed as it changed
        q.close()
    finally:
        store.close()
