"""The readers of today's tool formats on damaged input, and a run's place in the store.

Torn or corrupt W&B, TensorBoard and MLflow files give warnings or an error record, never an
exception; a run document lives at its run folder and leaves the store with it; ids of runs
without their own id survive moving the watched tree.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ednaquery.query import compile_query
from ednaquery.store import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from indexer.convert import convert_path
from indexer.convert.runs import clear_cache
from indexer.convert.updates import gone_updates, path_updates
from indexer.scan import scan

CORPUS = Path(__file__).resolve().parents[1] / "corpora_runs"


def _one(pattern: str) -> Path:
    return next(CORPUS.glob(pattern))


def test_a_torn_wandb_file_reads_what_is_whole(tmp_path: Path) -> None:
    src = _one("wandb/wandb/*corpusw1/run-corpusw1.wandb")
    folder = tmp_path / "wandb" / src.parent.name
    folder.mkdir(parents=True)
    data = src.read_bytes()
    (folder / src.name).write_bytes(data[: len(data) * 2 // 3])  # the writer is still going
    doc = convert_path(folder / src.name)[0]
    assert doc["kind"] == "run" and doc["_id"] == "corpusw1" and doc["config"]["model"] == "resnet18"
    assert doc["status"] in ("running", "unknown")  # no exit record yet
    damaged = bytearray(data)
    damaged[200] ^= 0xFF  # a flipped bit: that record fails its checksum
    (folder / src.name).write_bytes(bytes(damaged))
    clear_cache()
    doc = convert_path(folder / src.name)[0]
    assert any("checksum" in w for w in doc["warnings"])
    (folder / src.name).write_bytes(b"not a wandb file")
    clear_cache()
    doc = convert_path(folder / src.name)[0]
    assert doc["kind"] == "run" and any("no :W&B header" in w for w in doc["warnings"])


def test_a_torn_or_corrupt_event_file_never_raises(tmp_path: Path) -> None:
    src = _one("lightning_tb/l1/version_0/events.out.tfevents.*")
    folder = tmp_path / "version_0"
    folder.mkdir()
    data = src.read_bytes()
    (folder / src.name).write_bytes(data[:-7])  # the last record half written
    doc = convert_path(folder / src.name)[0]
    assert doc["metrics"]["val_acc"]["best"] == 0.875 and doc["warnings"] == []
    (folder / src.name).write_bytes(b"\xff" * 8 + data)  # a length no record has
    clear_cache()
    doc = convert_path(folder / src.name)[0]
    assert doc["kind"] == "run" and any("corrupt" in w for w in doc["warnings"])


def test_a_damaged_mlflow_db_is_one_error_record(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    data = (CORPUS / "mlflow_sqlite" / "mlflow.db").read_bytes()
    db.write_bytes(data[:100] + b"\x00" * (len(data) - 100))
    docs = convert_path(db)
    assert [d["kind"] for d in docs] == ["error"] and "MLflow database" in docs[0]["error"]


def test_a_run_lives_at_its_folder_and_leaves_with_it(tmp_path: Path) -> None:
    run = tmp_path / "lightning_logs" / "version_0"
    shutil.copytree(CORPUS / "lightning_csv" / "c1" / "version_0", run)
    member = run / "metrics.csv"
    ups = path_updates(str(member), convert_path(member), None)
    assert [(u.path, [d["kind"] for d in u.docs]) for u in ups] == [(str(member), []), (str(run), ["run"])]
    shutil.rmtree(run)
    gone = gone_updates(str(member), lambda folder: convert_path(folder))
    assert (str(run), []) in [(u.path, u.docs) for u in gone]


def test_ids_of_runs_without_their_own_survive_moving_the_tree(tmp_path: Path) -> None:
    def ids(root: Path) -> dict[str, str]:
        store = SQLiteStore(str(root.parent / "index.db"))
        try:
            scan(store, [str(root)], workers=1)
            docs = store.find(compile_query("kind=run"), FindOptions(kinds=("run",)))
            return {Path(d["paths"][0]).relative_to(root).as_posix(): d["_id"] for d in docs}
        finally:
            store.close()

    first = tmp_path / "a" / "runs"
    shutil.copytree(CORPUS / "lightning_tb", first / "tb")
    shutil.copytree(CORPUS / "hydra", first / "hydra")
    before = ids(first)
    moved = tmp_path / "b" / "runs"
    moved.parent.mkdir()
    first.rename(moved)
    clear_cache()
    assert ids(moved) == before and len(before) == 4
