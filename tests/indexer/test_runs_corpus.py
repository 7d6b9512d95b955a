"""The run corpus written by the real libraries (tests/corpora_runs, see its generate.py) reads exactly.

Every run the generator wrote is indexed once, at its run folder (``mlflow.db#<run id>`` for
MLflow's SQLite store), with its params typed, its metrics' last/best, its status and its epochs
as the generator's ground truth (``truth.json``) says; ``--best --by model`` picks what the
truth picks; nothing inside a run folder becomes a config document.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.cli import main
from ednaquery.query import compile_query
from ednaquery.store import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from indexer.scan import scan

CORPUS = Path(__file__).resolve().parents[1] / "corpora_runs"
TRUTH = json.loads((CORPUS / "truth.json").read_text())
RUNS = [(lib, run) for lib, runs in sorted(TRUTH["libraries"].items()) for run in runs]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs") / "corpus"
    shutil.copytree(CORPUS, root, ignore=shutil.ignore_patterns("generate.py", "truth.json", "__pycache__"))
    store = SQLiteStore(str(root.parent / "index.db"))
    scan(store, [str(root)], workers=1)
    docs = store.find(compile_query(""), FindOptions(kinds=("config", "run", "error")))
    yield root, store, docs
    store.close()


def expected_path(root: Path, lib: str, run: dict) -> str:
    return str(root / lib / run["folder"])


def test_every_run_once_at_its_folder_and_nothing_else(indexed) -> None:
    root, _store, docs = indexed
    runs = sorted(d["paths"][0] for d in docs if d["kind"] == "run")
    assert runs == sorted(expected_path(root, lib, run) for lib, run in RUNS)
    assert all(len(d["paths"]) == 1 for d in docs if d["kind"] == "run")
    assert [d["paths"] for d in docs if d["kind"] != "run"] == []  # no configs, no errors from run folders


@pytest.mark.parametrize(("lib", "run"), RUNS, ids=[f"{lib}-{run['name']}" for lib, run in RUNS])
def test_run_reads_as_the_truth(indexed, lib: str, run: dict) -> None:
    root, store, docs = indexed
    doc = next(d for d in docs if d["kind"] == "run" and d["paths"] == [expected_path(root, lib, run)])
    assert doc["metrics"] == run["metrics"]
    assert doc["status"] == run["status"]
    if run["epochs"] is not None:
        assert doc["info"]["epochs"] == run["epochs"]
    if run["run_id"]:
        assert doc["_id"] == run["run_id"]
    # params by typed comparison: lr=0.001 finds the run whether the tool kept "0.001" or 0.001
    query = " ".join(f"{k}={v}" for k, v in run["params"].items())
    found = store.find(compile_query(f"kind=run {query}"), FindOptions(kinds=("run",)))
    assert doc["_id"] in [d["_id"] for d in found]
    p = run["params"]
    above = store.find(compile_query(f"kind=run lr>{p['lr']} model={p['model']}"), FindOptions(kinds=("run",)))
    assert doc["_id"] not in [d["_id"] for d in above]


def test_best_by_model_picks_the_truth(indexed) -> None:
    root, _store, docs = indexed
    best: dict[str, tuple[float, str]] = {}
    for lib, run in RUNS:
        acc = run["metrics"]["val_acc"]["best"]
        m = run["params"]["model"]
        if m not in best or acc > best[m][0]:
            best[m] = (acc, expected_path(root, lib, run))
    r = CliRunner().invoke(main, ["--store", str(root.parent / "index.db"), "find", "kind=run", "--best",
                                  "val_acc", "--by", "model", "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    by_id = {d["_id"]: d for d in docs}
    got = {row["values"]["model"]: by_id[row["id"]]["paths"][0] for row in rows}
    assert got == {m: path for m, (_acc, path) in best.items()}


def test_paths_end_at_the_run_folder(indexed) -> None:
    root, store, _docs = indexed
    found = store.find(compile_query("kind=run path~version_0$"), FindOptions(kinds=("run",)))
    assert sorted(d["paths"][0] for d in found) == sorted(
        expected_path(root, lib, run) for lib, run in RUNS if run["folder"].endswith("version_0"))
