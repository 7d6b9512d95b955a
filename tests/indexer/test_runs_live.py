"""Runs as the libraries write them today: a fresh run from each installed library reads as its truth,
and a run written into a watched folder is findable, with its final metrics, within seconds.

The libraries are not ednaquery's dependencies: these tests use them when this Python has them,
or when ``EDNAQUERY_RUNLIBS_PYTHON`` names a Python that has them (a throwaway venv, see
tests/corpora_runs/generate.py), and skip otherwise. wandb 0.16 needs a venv of its own, named in
``EDNAQUERY_WANDB16_PYTHON``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ednaquery.query import compile_query
from ednaquery.store import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from indexer.convert import convert_path
from indexer.daemon import Indexer
from tests.support.indexer import resnet_kinds, sqlite_indexer
from tests.support.wait import wait_until

CORPUS = Path(__file__).resolve().parents[1] / "corpora_runs"
GENERATOR = CORPUS / "generate.py"
TRUTH = json.loads((CORPUS / "truth.json").read_text())
LIBRARIES = {"mlflow_sqlite": "mlflow", "mlflow_files": "mlflow", "wandb": "wandb", "lightning_tb": "lightning",
             "lightning_csv": "lightning", "hydra": "hydra", "hydra_multirun": "hydra", "wandb16": "wandb"}


def run_docs(root: Path) -> dict[str, dict]:
    """Every run document under ``root`` (converted file by file, as the daemon does), by path."""
    out: dict[str, dict] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            for d in convert_path(p):
                if d["kind"] == "run":
                    out[d["paths"][0]] = d
    return out


PYTHON = os.environ.get("EDNAQUERY_RUNLIBS_PYTHON") or sys.executable
#: wandb 0.16 lives in a venv of its own (generate.py): its Python, named in this variable
WANDB16_PYTHON = os.environ.get("EDNAQUERY_WANDB16_PYTHON") or sys.executable


def generate(out: Path, lib: str) -> list[dict]:
    """Write ``lib``'s runs under ``out/lib`` with the real library; their truth (skips if it is missing)."""
    modules = [LIBRARIES[lib], *(["tensorboard"] if lib == "lightning_tb" else [])]
    python = WANDB16_PYTHON if lib == "wandb16" else PYTHON
    check = "; assert wandb.__version__.startswith('0.16.')" if lib == "wandb16" else ""
    probe = subprocess.run([python, "-c", "import " + ", ".join(modules) + check], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        pytest.skip(f"{' and '.join(modules)} {'0.16 ' if check else ''}not installed for {python}")
    proc = subprocess.run([python, str(GENERATOR), str(out), lib], capture_output=True, text=True,
                          cwd=out, timeout=300, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("TRUTH ")), None)
    assert line is not None, proc.stderr[-2000:]
    return json.loads(line[6:])


def test_a_folder_that_stops_being_a_run_leaves_no_run_behind(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    run = root / "r1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: resnet18\nlr: 0.1\n")
    (run / "run.json").write_text('{"run_id": "r1", "status": "finished"}\n')
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val_acc": 0.5}\n')
    with sqlite_indexer(root, str(tmp_path / "index.db")) as (_ix, store):
        def kinds() -> list[tuple[str, list[str]]]:
            return resnet_kinds(store)

        assert wait_until(lambda: kinds() == [("run", [str(run)])], timeout=10), kinds()
        (run / "run.json").unlink()
        (run / "metrics.jsonl").unlink()  # the folder stays, with only a config in it
        assert wait_until(lambda: kinds() == [("config", [str(run / "config.yaml")])], timeout=10), kinds()


@pytest.mark.parametrize("lib", sorted(LIBRARIES))
def test_a_fresh_run_from_each_installed_library_reads_as_its_truth(tmp_path: Path, lib: str) -> None:
    truth = generate(tmp_path, lib)
    docs = run_docs(tmp_path / lib)
    for run in truth:
        doc = docs[str(tmp_path / lib / run["folder"])]
        assert doc["metrics"] == run["metrics"] and doc["status"] == run["status"]


def test_a_run_written_into_a_watched_folder_is_found_within_seconds(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    db = str(tmp_path / "index.db")
    ix = Indexer(lambda: SQLiteStore(db), [str(root)], debounce=0.05, reconcile_every=None)
    ix.start()
    try:
        assert wait_until(ix.idle, timeout=10)
        for lib in ("wandb", "lightning_tb", "mlflow_sqlite", "hydra"):
            run = TRUTH["libraries"][lib][0]
            shutil.copytree(CORPUS / lib, root / lib)  # as the library writes it: files appear one by one
            path = str(root / lib / run["folder"])
            store = SQLiteStore(db)
            try:
                def found(store: SQLiteStore = store, path: str = path, run: dict = run) -> bool:
                    docs = store.find(compile_query("kind=run"), FindOptions(kinds=("run",)))
                    return any(d["paths"] == [path] and d["metrics"] == run["metrics"] for d in docs)

                assert wait_until(found, timeout=10), f"{lib}: {path} not found with its final metrics"
            finally:
                store.close()
    finally:
        ix.stop()


def test_a_config_written_before_its_folder_became_a_run_is_no_config_after(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    run = root / "r1"
    run.mkdir(parents=True)
    with sqlite_indexer(root, str(tmp_path / "index.db")) as (_ix, store):
        def kinds() -> list[tuple[str, list[str]]]:
            return resnet_kinds(store)

        (run / "config.yaml").write_text("model: resnet18\nlr: 0.1\n")
        assert wait_until(lambda: kinds() == [("config", [str(run / "config.yaml")])], timeout=10)
        (run / "metrics.jsonl").write_text('{"epoch": 1, "val_acc": 0.5}\n')  # now it is a run
        assert wait_until(lambda: kinds() == [("run", [str(run)])], timeout=10), kinds()


@pytest.mark.parametrize("lib", sorted(LIBRARIES))
def test_each_library_writing_into_a_watched_folder_is_found_within_seconds(tmp_path: Path, lib: str) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    db = str(tmp_path / "index.db")
    ix = Indexer(lambda: SQLiteStore(db), [str(root)], debounce=0.05, reconcile_every=None)
    ix.start()
    store = SQLiteStore(db)
    try:
        truth = generate(root, lib)  # the library writes while the daemon watches

        def found() -> bool:
            docs = {d["paths"][0]: d for d in store.find(compile_query("kind=run"), FindOptions(kinds=("run",)))}
            return all(docs.get(str(root / lib / run["folder"]), {}).get("metrics") == run["metrics"]
                       and docs[str(root / lib / run["folder"])]["status"] == run["status"] for run in truth)

        assert wait_until(found, timeout=10)
    finally:
        store.close()
        ix.stop()
