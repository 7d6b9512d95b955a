"""``trainer launch`` / ``queue`` / ``worker`` / ``ls`` / ``status`` / ``resume`` against a store.

Everything here runs on a stand-in engine that writes a run folder the way the real one
does (trainer.engine.runs.RunWriter) without training, so each test takes well under a second;
test_store_e2e.py trains for real.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.documents import config_id, make_config_document, original_config
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, FindOptions, PathUpdate
from ednaquery.store.sqlite import SQLiteStore
from tests.support.settings import clean_settings
from trainer.cli import main
from trainer.ops.jobs import open_jobs
from trainer.ops.launch import prepare

TINY = {"model": {"name": "resnet18"}, "data": {"dataset": "digits", "img_size": 16, "fraction": 0.5},
        "optimizer": {"name": "adamw", "lr": 1e-3}, "train": {"epochs": 2}}
EDNAML = {"EXECUTION": {"EPOCHS": 10}, "MODEL": {"BUILDER": "resnet50"}, "SAVE": {"MODEL_VERSION": 1}}


def fake_run_training(cfg, run_dir, *, on_status=None, run_id=None, config_id=None, stop=None, resume_from=None,
                      **_kw):
    """Writes what the engine writes (config.yaml, run.json, metrics.jsonl, summary.json, last.pt)."""
    from trainer.engine.config import load_config, to_dict
    from trainer.engine.runner import RunResult
    from trainer.engine.runs import RunWriter

    cfg = load_config(cfg)
    writer = RunWriter(Path(run_dir), on_status=lambda _run: on_status(None) if on_status else None)
    if resume_from is not None:
        writer.load_existing()
    writer.write_config(to_dict(cfg))
    writer.update(format="ednaquery-run", run_id=run_id, config_id=config_id, status="running",
                  started_at=writer.run.get("started_at") or time.time(), device="cpu", device_name="x86_64")
    status = "completed"
    for epoch in range(len(writer.rows) + 1, cfg.train.epochs + 1):
        if stop is not None and stop.is_set():
            status = "interrupted"
            break
        writer.add_metrics({"scope": "epoch", "epoch": epoch, "step": epoch * 10, "train_loss": 1.0 / epoch,
                            "val_acc": 0.5 + 0.1 * epoch, "lr": 1e-3})
        summary = writer.write_summary({"status": "running"}, best_metric="val_acc")
        writer.update(epochs_done=epoch)
        (Path(run_dir) / "last.pt").write_bytes(b"checkpoint")
    summary = writer.write_summary({"status": status}, best_metric="val_acc")
    writer.update(status=status, ended_at=time.time())
    return RunResult(run_id=run_id, run_dir=Path(run_dir), status=status, summary=summary,
                     exit_code=0 if status == "completed" else 130)


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("trainer.engine.runner.run_training", fake_run_training)
    clean_settings(tmp_path, monkeypatch)
    cfg_path = tmp_path / "configs" / "tiny.yaml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(yaml.safe_dump(TINY))
    store = SQLiteStore(tmp_path / "index.db")
    st = cfg_path.stat()
    doc = make_config_document(TINY, path=str(cfg_path), format="yaml", size=st.st_size, mtime=st.st_mtime)
    store.apply([PathUpdate(str(cfg_path), [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino))])
    yield {"tmp": tmp_path, "store": store, "db": str(tmp_path / "index.db"), "cfg_id": doc["_id"],
           "cfg_path": cfg_path, "runs": tmp_path / "runs"}
    store.close()


def invoke(env, *args):
    return CliRunner().invoke(main, ["--store", env["db"], *args], catch_exceptions=False)


def _runs(store) -> list[dict]:
    return store.find(parse("kind=run"), FindOptions())


def test_launch_by_prefix_indexes_the_run_as_the_indexer_would(env):
    res = invoke(env, "launch", env["cfg_id"][:6], "--runs-root", str(env["runs"]))
    assert res.exit_code == 0, res.output
    assert "completed" in res.output and "val_acc 0.7000" in res.output
    [doc] = _runs(env["store"])
    run_dir = env["runs"] / doc["_id"]
    assert doc["paths"] == [str(run_dir)] and doc["status"] == "completed"
    assert doc["config_id"] == env["cfg_id"]
    assert doc["metrics"]["val_acc"] == {"last": 0.7, "best": 0.7}
    assert original_config(doc)["optimizer"]["lr"] == 1e-3  # the resolved config's leaves are on the run
    # the indexer converts the same folder into the very same document: one run, not two
    from indexer.convert import convert_path

    daemon_doc = next(d for d in convert_path(run_dir) if d["kind"] == "run")
    drop = ("indexed_at", "leaves")
    assert {k: v for k, v in daemon_doc.items() if k not in drop} == {k: v for k, v in doc.items() if k not in drop}
    assert len(env["store"].find(parse(f"kind=run config_id={env['cfg_id']}"), FindOptions())) == 1


def test_run_document_is_upserted_while_the_run_goes(env, monkeypatch):
    seen = []
    real_upsert = env["store"].upsert

    from ednaquery.store import sqlite as sqlite_mod

    def spy(self, docs):
        docs = list(docs)
        seen.extend((d["status"], sorted(d.get("metrics", {}))) for d in docs if d["kind"] == "run")
        return real_upsert.__func__(self, docs)

    monkeypatch.setattr(sqlite_mod.SQLiteStore, "upsert", spy)
    res = invoke(env, "launch", env["cfg_id"][:8], "--runs-root", str(env["runs"]), "-q")
    assert res.exit_code == 0, res.output
    statuses = [s for s, _ in seen]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    assert any(s == "running" and "val_acc" in m for s, m in seen)  # per-epoch summary before the end


def test_overrides_make_a_derived_config_that_runs(env):
    res = invoke(env, "launch", env["cfg_id"][:8], "optimizer.lr=3e-4", "epochs=3", "--runs-root", str(env["runs"]))
    assert res.exit_code == 0, res.output
    [run] = _runs(env["store"])
    derived = env["store"].get(run["config_id"])
    assert derived["_id"] != env["cfg_id"] and derived["derived_from"] == env["cfg_id"]
    assert "derived" in derived["tags"] and derived["paths"] == []
    cfg = original_config(derived)
    assert cfg["optimizer"]["lr"] == 3e-4 and cfg["train"]["epochs"] == 3
    assert original_config(env["store"].get(env["cfg_id"]))["optimizer"]["lr"] == 1e-3  # parent untouched
    assert run["info"]["epochs_done"] == 3
    assert "derived from" in res.output


def test_a_file_target_is_indexed_then_run(env):
    path = env["tmp"] / "configs" / "new.yaml"
    new = dict(TINY, train={"epochs": 1})
    path.write_text(yaml.safe_dump(new))
    res = invoke(env, "launch", str(path), "--runs-root", str(env["runs"]))
    assert res.exit_code == 0, res.output
    doc = env["store"].get(config_id(new))
    assert doc["kind"] == "config" and doc["paths"] == [str(path)]
    assert str(path) in env["store"].file_states()
    assert _runs(env["store"])[0]["config_id"] == doc["_id"]


def test_default_runs_root_is_under_the_first_watched_root(env, monkeypatch):
    monkeypatch.setenv("EDNAQUERY_ROOTS", str(env["tmp"] / "watched"))
    res = invoke(env, "launch", env["cfg_id"][:8], "-q")
    assert res.exit_code == 0, res.output
    [run] = _runs(env["store"])
    assert run["paths"] == [str(env["tmp"] / "watched" / "runs" / run["_id"])]


@pytest.mark.parametrize("args, code, words", [
    (["launch", "{bad}"], 2, "not a trainer config: missing model.name"),
    (["launch", "ffff0000"], 1, "no config with id"),
    (["launch", "{cfg}", "optimizer.lrr=1"], 2, "optimizer.lr"),
    (["launch", "{cfg}", "--gpus", "-1"], 2, "--gpus must be 0"),
    (["launch", "{cfg}", "--device", "tpu"], 2, "--device"),
    (["launch", "missing/config.yaml"], 2, "no such config file"),
    (["resume", "20990101"], 1, "no run"),
])
def test_bad_targets_give_one_line_errors(env, args, code, words):
    bad = env["tmp"] / "ednaml.yaml"
    bad.write_text(yaml.safe_dump(EDNAML))
    args = [a.format(bad=bad, cfg=env["cfg_id"][:8]) for a in args]
    res = CliRunner().invoke(main, ["--store", env["db"], *args])
    assert res.exit_code == code, res.output
    assert words in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_run_id_is_not_a_launch_target(env):
    invoke(env, "launch", env["cfg_id"][:8], "--runs-root", str(env["runs"]), "-q")
    run_id = _runs(env["store"])[0]["_id"]
    res = CliRunner().invoke(main, ["--store", env["db"], "launch", run_id])
    assert res.exit_code == 2 and "is a run, not a config" in res.output and "trainer resume" in res.output


def test_queue_then_worker_runs_the_jobs_and_ls_status_show_them(env):
    res = invoke(env, "queue", env["cfg_id"][:8], str(env["cfg_path"]), "epochs=1")
    assert res.exit_code == 0, res.output
    jobs = open_jobs(env["store"]).list()
    # the id and the file name the same config: with epochs=1 it is one derived config, launched twice
    assert len(jobs) == 2 and jobs[0].config_id == jobs[1].config_id != env["cfg_id"]
    res = invoke(env, "queue", env["cfg_id"][:8])
    assert len(open_jobs(env["store"]).list()) == 3
    res = invoke(env, "worker", "--until-empty", "--runs-root", str(env["runs"]), "-q", "--poll-interval", "0.05")
    assert res.exit_code == 0, res.output
    jobs = open_jobs(env["store"]).list()
    assert [j.status for j in jobs] == ["completed"] * 3 and all(j.run_id for j in jobs)
    runs = _runs(env["store"])
    assert {r["_id"] for r in runs} == {j.run_id for j in jobs}
    res = invoke(env, "ls", "--json")
    rows = json.loads(res.output)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}
    assert rows[0]["id"] > rows[1]["id"] > rows[2]["id"]  # newest first
    assert {r["model"] for r in rows} == {"resnet18"}
    assert all(isinstance(r["val_acc.last"], float) and 0 <= r["val_acc.last"] <= 1 for r in rows)  # numbers
    assert all(r["started"][:4].isdigit() and "T" in r["started"] for r in rows)  # ISO 8601, with the year
    assert all(isinstance(r["duration_s"], float) for r in rows)
    res = invoke(env, "ls", "epochs=1", "--json")
    assert len(json.loads(res.output)) == 2
    res = invoke(env, "status", "--json")
    assert json.loads(res.output)["jobs"] == {"completed": 3}
    res = invoke(env, "status", rows[0]["id"])
    assert "completed" in res.output and "val_acc" in res.output
    res = invoke(env, "jobs")
    assert res.exit_code == 0 and jobs[0].id in res.output


def test_resume_continues_an_interrupted_run_in_its_folder(env, monkeypatch):
    import threading

    stop = threading.Event()
    stop.set()
    from trainer.ops.launch import launch, resume

    result = launch(env["cfg_id"][:8], store=env["store"], runs_root=env["runs"], quiet=True, stop=stop)
    assert result.status == "interrupted"
    (result.run_dir / "last.pt").write_bytes(b"checkpoint")
    assert env["store"].get(result.run_id)["status"] == "interrupted"
    res = invoke(env, "resume", result.run_id[:15])
    assert res.exit_code == 0, res.output
    doc = env["store"].get(result.run_id)
    assert doc["status"] == "completed" and doc["paths"] == [str(result.run_dir)]
    assert len(_runs(env["store"])) == 1
    res = invoke(env, "resume", result.run_id)
    assert res.exit_code == 2 and "already completed" in res.output
    assert resume  # the library entry exists for Python users


def test_prepare_does_not_index_a_derived_config_that_changes_nothing(env):
    resolved = prepare(env["store"], env["cfg_id"][:8], ["optimizer.lr=1e-3"])
    assert resolved.config_id == env["cfg_id"] and resolved.derived_from is None
    assert len(env["store"].find(parse("kind=config"), FindOptions())) == 1


def test_worker_on_a_mongo_store_runs_queued_launches(env):
    import mongomock

    from ednaquery.store.mongo import MongoStore
    from trainer.ops.worker import WorkerOptions, launch_runner, run_worker

    store = MongoStore("mongodb://localhost/launch_test", client=mongomock.MongoClient())
    resolved = prepare(store, str(env["cfg_path"]), ["epochs=1"])  # file indexed, derived config upserted
    q = open_jobs(store)
    job = q.enqueue(resolved.config_id)
    report = run_worker(q, launch_runner(store, runs_root=env["runs"]), worker_id="w",
                        options=WorkerOptions(until_empty=True))
    assert report.jobs == [(job.id, "completed")]
    run_id = q.get(job.id).run_id
    doc = store.get(run_id)
    assert doc["status"] == "completed" and doc["config_id"] == resolved.config_id
    assert store.get(resolved.config_id)["derived_from"] == env["cfg_id"]
    assert [d["_id"] for d in store.find(parse("kind=run val_acc>0.55"), FindOptions())] == [run_id]
