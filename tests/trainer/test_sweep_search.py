"""Sweeps that search: random and bayes sweeps through Optuna, ASHA pruning, resume after SIGKILL,
two workers on one study (SQLite and MongoDB over the wire), status, plots and bad sweep files.

Every trial trains for real on CPU, tiny: a 16-pixel test_resnet on digits, a few steps an epoch.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.documents import original_config
from ednaquery.errors import UsageError
from ednaquery.query.parser import parse
from ednaquery.store.base import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from tests.support.configs import tiny_config
from tests.support.settings import clean_settings
from trainer.cli import main
from trainer.ops.jobs import open_jobs
from trainer.ops.search import drive, enqueue_trial, load_search, load_trials, search_spec, summary
from trainer.ops.space import parse_axis
from trainer.ops.worker import WorkerOptions, launch_runner, run_worker

BASE = tiny_config(data={"batch_size": 32, "fraction": 0.5}, train={"epochs": 2, "max_steps_per_epoch": 4})


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    clean_settings(tmp_path, monkeypatch)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE, sort_keys=False))
    store = SQLiteStore(tmp_path / "index.db")
    yield tmp_path, store
    store.close()


def _write(tmp: Path, name: str, sweep: dict) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump({"base": "base.yaml", **sweep}, sort_keys=False))
    return path


def _sweep_runs(store, sweep_id: str, status: str | None = None) -> list[dict]:
    words = [f"sweep={sweep_id}"] + ([f"status={status}"] if status else [])
    return store.find(parse(words), FindOptions(kinds=("run",)))


# ------------------------------------------------------------------ the sweep file


def test_distributions_read_from_strings_mappings_and_lists():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    assert parse_axis("lr", "loguniform(1e-5, 1e-2)") == FloatDistribution(1e-5, 1e-2, log=True)
    assert parse_axis("wd", {"uniform": [0, "1e-1"]}) == FloatDistribution(0.0, 0.1)
    assert parse_axis("img", "int(16, 64, 16)") == IntDistribution(16, 64, step=16)
    assert parse_axis("m", "choice([resnet18, convnext_atto])") == CategoricalDistribution(["resnet18",
                                                                                             "convnext_atto"])
    assert parse_axis("m", [1e-3, "3e-4"]) == CategoricalDistribution([1e-3, 3e-4])
    assert parse_axis("seed", 0) == CategoricalDistribution([0])
    for bad, words in [("loguniform(0, 1)", "low > 0"), ("uniform(2, 1)", "above high"),
                       ("int(1.5, 4)", "whole numbers"), ("normal(0, 1)", "unknown distribution"),
                       ({"gauss": [0, 1]}, "one distribution"), ("uniform(a, 1)", "not a number")]:
        with pytest.raises(UsageError, match=words):
            parse_axis("k", bad)


def test_bad_search_files_fail_in_one_line(env):
    tmp, _ = env
    cases = [({"method": "bayes", "axes": {"lr": "loguniform(1e-5, 1e-2)"}}, "budget"),
             ({"method": "random", "budget": 4, "early_stop": "sometimes", "axes": {"lr": [1e-3]}}, "early_stop"),
             ({"method": "random", "budget": {"trials": 0}, "axes": {"lr": [1e-3]}}, "budget.trials"),
             ({"method": "anneal", "budget": 4, "axes": {"lr": [1e-3]}}, "method"),
             ({"method": "random", "budget": 4, "axes": {"optimizer.lrr": "uniform(0, 1)"}}, "optimizer.lrr"),
             ({"axes": {"lr": ["loguniform(1e-5, 1e-2)"]}}, "distribution"),
             ({"budget": 4, "axes": {"lr": [1e-3]}}, "method: random")]
    for i, (sweep, words) in enumerate(cases):
        path = _write(tmp, f"bad{i}.yaml", sweep)
        res = CliRunner().invoke(main, ["sweep", str(path), "--dry-run", "--store", str(tmp / "index.db")])
        assert res.exit_code == 2, (sweep, res.output)
        assert words in res.output and "Traceback" not in res.output, res.output
        assert len([ln for ln in res.output.splitlines() if ln.strip()]) == 1, res.output
    (tmp / "broken.yaml").write_text("base: base.yaml\naxes: [1, 2\n")  # not YAML: bad input too
    res = CliRunner().invoke(main, ["sweep", str(tmp / "broken.yaml"), "--dry-run", "--store", str(tmp / "index.db")])
    assert res.exit_code == 2 and res.output.startswith(f"error: {tmp / 'broken.yaml'}: YAML: line 3"), res.output
    assert res.output.count("\n") == 1, res.output


def test_dry_runs_show_control_characters_from_the_sweep_file_as_escapes(env):
    tmp, _ = env
    red = "a\x1b[31mred"
    grid = _write(tmp, "grid.yaml", {"axes": {"name": ["plain", red]}})
    search = _write(tmp, "search.yaml", {"method": "random", "budget": 1, "metric": f"val_{red}",
                                         "axes": {"name": [red]}})
    for path, shown in [(grid, "name=a\\x1b[31mred"), (search, "trial 0: name=a\\x1b[31mred")]:
        res = CliRunner().invoke(main, ["sweep", str(path), "--dry-run", "--store", str(tmp / "index.db")],
                                 color=True)  # as on a terminal: nothing strips the escape sequences
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.output and shown in res.stdout, res.output
    assert "random, val_a\\x1b[31mred max" in res.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(env):
    tmp, store = env
    path = _write(tmp, "s.yaml", {"method": "bayes", "budget": {"trials": 8, "minutes": 5},
                                  "early_stop": {"name": "asha", "reduction_factor": 3},
                                  "axes": {"lr": "loguniform(1e-4, 3e-2)", "img_size": "int(8, 16, 8)"}})
    res = CliRunner().invoke(main, ["sweep", str(path), "--dry-run", "--store", str(tmp / "index.db")])
    assert res.exit_code == 0, res.output
    assert "bayes, val_acc max, budget 8 trials and 5 minutes, early stop asha" in res.output
    assert "optimizer.lr: loguniform(0.0001, 0.03)" in res.output and "data.img_size: int(8, 16, 8)" in res.output
    assert "trial 0: optimizer.lr=" in res.output
    assert store.find(parse("kind=config"), FindOptions()) == []
    assert open_jobs(store).list() == []


def test_asha_rungs_are_rebuilt_from_a_trials_epoch_values():
    from trainer.ops.prune import make_pruner, rung_records

    asha = make_pruner({"name": "asha"})  # rungs at epochs 1, 2, 4, 8...
    assert rung_records(asha, {1: .5, 2: .6, 3: .7, 4: .8}) == {"completed_rung_0": .5, "completed_rung_1": .6,
                                                                "completed_rung_2": .8}
    assert rung_records(asha, {1: .5, 2: .6}, before=2) == {"completed_rung_0": .5}  # epoch 2 is being judged
    assert rung_records(make_pruner({"name": "asha", "reduction_factor": 3}), {1: .1, 2: .2, 3: .3}) == \
        {"completed_rung_0": .1, "completed_rung_1": .3}
    assert rung_records(asha, {2: .4}) == {"completed_rung_0": .4, "completed_rung_1": .4}  # evaluated every 2


def test_pruners_judge_a_trial_against_its_siblings_in_the_store(env):
    from ednaquery.documents import make_run_document
    from trainer.ops.prune import TrialPruner

    tmp, store = env
    for n, curve in enumerate([[.5, .6, .7, .8], [.4, .5, .6, .7], [.6, .7, .8, .9], [.3, .4, .5, .6]]):
        rid = f"20261204-12000{n}-abcd"
        store.upsert([make_run_document(rid, config=BASE, config_id=None, path=str(tmp / rid), status="completed",
                                        metrics={"val_acc": {"last": curve[-1], "best": curve[-1]}},
                                        info={"sweep": "sw-test", "trial": n, "epochs_done": 4})])
        store.replace_series({rid: [("val_acc", None, e + 1, v) for e, v in enumerate(curve)]})

    def verdicts(name: str, value: float, epoch: int = 1) -> str | None:
        judge = TrialPruner(store, {"id": "sw-test", "trial": 4, "metric": "val_acc", "goal": "max",
                                    "early_stop": {"name": name}})
        snap = type("Snap", (), {"row": {"epoch": epoch, "val_acc": value}, "run_id": "20261204-120004-abcd",
                                 "config": {"train": {"epochs": 4}}})()
        return judge(snap)

    for name in ("asha", "median"):
        assert verdicts(name, 0.1) == "pruned", name
        assert verdicts(name, 0.65) is None, name
        assert verdicts(name, 0.1, epoch=4) is None, name  # the last epoch: nothing left to save
    assert verdicts("hyperband", 0.1) in ("pruned", None)  # its bracket may not stop anything at epoch 1
    assert verdicts("hyperband", 0.65) is None


def test_budget_in_trials_and_minutes():
    from trainer.ops.jobs import Job
    from trainer.ops.launch import ResolvedConfig
    from trainer.ops.search import SearchSpec, Trial, budget_left

    spec = SearchSpec(base=ResolvedConfig(config=BASE, config_id="c" * 64, doc={}), method="random",
                      metric="val_acc", goal="max", space={}, trials=5, minutes=10)
    trials = [Trial(number=i, params={}, job=Job(id=f"j{i}", config_id="c", created_at=1000.0 + i), state="failed")
              for i in range(3)]
    assert budget_left(spec, [], 0.0) == 5
    assert budget_left(spec, trials, 1000.0 + 599) == 2  # failed trials count
    assert budget_left(spec, trials, 1000.0 + 600) == 0  # ten minutes after the first trial was queued
    spec.trials = None
    assert budget_left(spec, trials, 1500.0) > 100


def test_every_command_form_has_help_with_examples():
    res = CliRunner().invoke(main, ["sweep", "--help"])
    assert res.exit_code == 0
    for words in ("trainer sweep search.yaml", "--around", "trainer sweep status", "--plot", "Examples:",
                  "early_stop", "loguniform"):
        assert words in res.output


# ------------------------------------------------------------------ random and bayes, resumed after SIGKILL


def _jobs_with_runs(db: Path) -> int:
    import sqlite3

    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM jobs WHERE run_id IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_a_sweep_of_8_trials_completes_and_resumes_after_sigkill(env, method):
    tmp, store = env
    path = _write(tmp, f"{method}.yaml", {"method": method, "budget": {"trials": 8}, "seed": 1,
                                          "axes": {"lr": "loguniform(1e-4, 3e-2)", "weight_decay": "uniform(0, 0.1)"}})
    cmd = [sys.executable, "-m", "trainer.cli", "sweep", str(path), "--store", str(tmp / "index.db"), "--runs-root",
           str(tmp / "runs"), "-q", "--heartbeat", "0.2", "--stale-after", "2", "--poll-interval", "0.2"]
    penv = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(cmd, env=penv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while _jobs_with_runs(tmp / "index.db") < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGKILL)  # no clean stop: the running trial's job stays "running"
    proc.wait()
    first = {j.id for j in open_jobs(store).list()}
    assert 2 <= len(first) < 8

    done = subprocess.run(cmd, check=False, env=penv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trials: 8 (8 done, 0 running, 0 queued, 0 pruned, 0 failed)" in done.stdout

    spec = load_search(path, yaml.safe_load(path.read_text()), store=store)
    jobs = open_jobs(store).list()
    assert first <= {j.id for j in jobs}  # the same sweep went on: its first trials are among the eight
    assert sorted(j.options["sweep"]["trial"] for j in jobs) == list(range(8))
    assert {j.options["sweep"]["id"] for j in jobs} == {spec.sweep_id}
    assert {j.status for j in jobs} == {"completed"}
    completed = _sweep_runs(store, spec.sweep_id, "completed")
    assert sorted(d["info"]["trial"] for d in completed) == list(range(8))  # one finished run per trial
    lrs = [j.options["sweep"]["params"]["optimizer.lr"] for j in jobs]
    assert len(set(lrs)) == 8  # a rebuilt study never repeats a draw
    for j in jobs:  # each trial's config is the base with its params
        cfg = original_config(store.get(j.config_id))
        assert cfg["optimizer"]["lr"] == j.options["sweep"]["params"]["optimizer.lr"]
        assert cfg["model"] == BASE["model"]


# ------------------------------------------------------------------ ASHA, status, plot


def test_asha_prunes_some_trials_but_not_the_best(env):
    tmp, store = env
    base = {**BASE, "train": {**BASE["train"], "epochs": 4, "max_steps_per_epoch": 6}}
    path = tmp / "asha.yaml"
    path.write_text(yaml.safe_dump({"base": base, "method": "random", "budget": 8, "early_stop": "asha",
                                    "seed": 3, "axes": {"lr": "loguniform(1e-5, 5e-2)"}}))
    spec = load_search(path, yaml.safe_load(path.read_text()), store=store)
    q = open_jobs(store)
    trials = drive(spec, store=store, queue=q, run_job=launch_runner(store, runs_root=tmp / "runs"),
                   poll_interval=0.05)
    s = summary(trials, "max")
    assert len(trials) == 8 and s["counts"]["queued"] == s["counts"]["running"] == s["counts"]["failed"] == 0
    pruned = _sweep_runs(store, spec.sweep_id, "pruned")  # status=pruned is searchable
    assert s["counts"]["pruned"] == len(pruned) >= 1
    assert all(d["info"]["epochs_done"] < 4 and d["info"]["stop_reason"] == "pruned" for d in pruned)
    best = s["best"]
    assert best.state == "complete" and best.epochs == 4
    assert all(d["metrics"]["val_acc"]["best"] < best.value for d in pruned)
    assert {j.status for j in q.list()} == {"completed"}  # a pruned trial's job did its work

    res = CliRunner().invoke(main, ["--store", str(tmp / "index.db"), "sweep", "status", spec.sweep_id[:6]])
    assert res.exit_code == 0, res.output
    assert "pruned, 0 failed" in res.output and f"best: trial {best.number} val_acc {best.value:.4f}" in res.output
    assert "best so far: " in res.output and " at epoch " in res.output
    res = CliRunner().invoke(main, ["--store", str(tmp / "index.db"), "sweep", "status", spec.sweep_id, "--json"])
    import json

    out = json.loads(res.output)
    assert out["counts"]["pruned"] == len(pruned) and out["best"]["trial"] == best.number
    assert len(out["best_so_far"]) == 8 and out["best_so_far"][-1] == best.value

    res = CliRunner().invoke(main, ["--store", str(tmp / "index.db"), "sweep", spec.sweep_id, "--plot",
                                    "-o", str(tmp / "plots")])
    assert res.exit_code == 0, res.output
    for name in ("history", "importance"):
        png = tmp / "plots" / f"sweep-{spec.sweep_id}-{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ two workers, one study


def _two_workers_run_no_trial_twice(stores: list, tmp: Path) -> None:
    path = tmp / "two.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "method": "random", "budget": 8,
                                    "axes": {"lr": "loguniform(1e-4, 3e-2)"}}))
    spec = search_spec(yaml.safe_load(path.read_text()), store=stores[0], source=str(path))
    queues = [open_jobs(s) for s in stores]
    drive(spec, store=stores[0], queue=queues[0], parallel=8, wait=False)  # queue all eight, return
    again = drive(spec, store=stores[0], queue=queues[0], parallel=8, wait=False)
    assert len(again) == 8  # a second driver finds the sweep full
    assert enqueue_trial(spec, store=stores[0], queue=queues[0], number=3, params={"optimizer.lr": 1e-3}) is None
    reports: list = []

    def work(i: int) -> None:
        runner = launch_runner(stores[i + 1], runs_root=tmp / "runs")
        reports.append(run_worker(queues[i + 1], runner, worker_id=f"w{i}",
                                  options=WorkerOptions(until_empty=True, heartbeat=0.2)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    claimed = Counter(job_id for r in reports for job_id, _ in r.jobs)
    assert len(claimed) == 8 and set(claimed.values()) == {1}, claimed
    assert all(r.jobs for r in reports), "both workers ran trials"
    trials = load_trials(stores[0], queues[0], spec.sweep_id, "val_acc", "max")
    assert [t.state for t in trials] == ["complete"] * 8
    runs = _sweep_runs(stores[0], spec.sweep_id)
    assert sorted(d["info"]["trial"] for d in runs) == list(range(8))


def test_two_workers_on_one_study_run_no_trial_twice_sqlite(env):
    tmp, store = env
    stores = [store, SQLiteStore(tmp / "index.db"), SQLiteStore(tmp / "index.db")]
    try:
        _two_workers_run_no_trial_twice(stores, tmp)
    finally:
        for s in stores[1:]:
            s.close()


@pytest.mark.wire
def test_two_workers_on_one_study_run_no_trial_twice_mongodb(env, wire_uri):
    from ednaquery.store.mongo import MongoStore
    from tests.support.wire import with_database

    tmp, _ = env
    uri = with_database(wire_uri, "sweep_search")
    stores = [MongoStore(uri, timeout_ms=5000) for _ in range(3)]
    try:
        _two_workers_run_no_trial_twice(stores, tmp)
    finally:
        for s in stores:
            s.close()
