"""The readers of today's tool formats on damaged input, and a run's place in the store.

Torn or corrupt W&B, TensorBoard and MLflow files give warnings or an error record, never an
exception; a run document lives at its run folder and leaves the store with it; ids of runs
without their own id survive moving the watched tree.
"""
from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from ednaquery.query import compile_query
from ednaquery.store import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from indexer.convert import convert_path
from indexer.convert.runs import clear_cache, read_run, recognise_folder
from indexer.convert.updates import gone_updates, path_updates
from indexer.scan import scan
from tests.support.indexer import resnet_kinds

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


def test_a_rescan_drops_a_run_whose_folder_is_no_run_any_more(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = root / "r1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: resnet18\n")
    (run / "run.json").write_text('{"run_id": "r1", "status": "finished"}\n')
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val_acc": 0.5}\n')
    store = SQLiteStore(str(tmp_path / "index.db"))
    try:
        def kinds() -> list[tuple[str, list[str]]]:
            return resnet_kinds(store)

        scan(store, [str(root)], workers=1)
        assert kinds() == [("run", [str(run)])]
        (run / "run.json").unlink()
        (run / "metrics.jsonl").unlink()  # the folder stays, with only a config in it
        clear_cache()
        scan(store, [str(root)], workers=1)
        assert kinds() == [("config", [str(run / "config.yaml")])]
        shutil.rmtree(run)  # and a folder deleted whole leaves nothing
        scan(store, [str(root)], workers=1)
        assert kinds() == []
    finally:
        store.close()


def test_a_rescan_leaves_what_a_fresh_scan_finds_once_an_mlflow_run_loses_its_parts(tmp_path: Path) -> None:
    def found(root: Path, db: str) -> list[tuple[str, list[str]]]:
        store = SQLiteStore(db)
        try:
            scan(store, [str(root)], workers=1)
            docs = store.find(compile_query("kind=run or kind=config"), FindOptions(kinds=("config", "run")))
            return sorted((d["kind"], d["paths"]) for d in docs)
        finally:
            store.close()

    root = tmp_path / "runs"
    shutil.copytree(CORPUS / "mlflow_files", root)
    run = next(root.glob("mlruns/*/*/params")).parent
    assert ("run", [str(run)]) in found(root, str(tmp_path / "index.db"))
    for part in ("params", "metrics", "tags"):
        shutil.rmtree(run / part)  # meta.yaml stays: no run folder any more
    clear_cache()
    again = found(root, str(tmp_path / "index.db"))
    assert ("run", [str(run)]) not in again and again == found(root, str(tmp_path / "fresh.db"))


def test_a_run_that_cannot_be_read_now_keeps_its_document(tmp_path: Path) -> None:
    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.yaml").write_text("model: resnet18\n")
    (run / "run.json").write_text('{"run_id": "r1"}\n')
    gone = gone_updates(str(run / "metrics.jsonl"), lambda path: [])  # a read that failed this time
    assert [u.path for u in gone] == [str(run / "metrics.jsonl")]


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


def test_wandb_016_runs_are_read_from_their_wandb_file(tmp_path: Path) -> None:
    """wandb 0.16 keeps config, history and exit code in the .wandb file; files/ has only a runtime."""
    src = _one("wandb16/wandb/*corpusa3")
    folder = tmp_path / "wandb" / src.name
    shutil.copytree(src, folder)
    assert "val_acc" not in (folder / "files" / "wandb-summary.json").read_text()
    doc = convert_path(folder / "files" / "wandb-summary.json")[0]
    assert doc["paths"] == [str(folder)] and doc["_id"] == "corpusa3"
    assert doc["config"]["model"] == "resnet18" and doc["status"] == "failed"  # it raised an exception
    assert doc["metrics"]["val_acc"]["last"] == 0.65625
    named = datetime.datetime.strptime(src.name.split("-")[2], "%Y%m%d_%H%M%S").replace(tzinfo=datetime.UTC)
    assert abs(doc["started_at"] - named.timestamp()) < 15 * 3600  # W&B names folders in its local time
    assert 0 < doc["ended_at"] - doc["started_at"] < 60  # the summary's _runtime, not ended == started
    series = read_run(recognise_folder(folder), folder).series
    assert [(p.epoch, p.value) for p in series if p.metric == "val_acc"] == [(0, 0.40625), (1, 0.65625)]


def test_files_are_the_fallback_when_the_wandb_file_holds_no_run(tmp_path: Path) -> None:
    folder = tmp_path / "wandb" / "run-20240101_120000-abc123"
    (folder / "files").mkdir(parents=True)
    (folder / "run-abc123.wandb").write_bytes(b":W&B\xe1\xbe\x00")  # started, no record yet
    (folder / "files" / "config.yaml").write_text("wandb_version: 1\nlr:\n  desc: null\n  value: 0.01\n")
    (folder / "files" / "wandb-summary.json").write_text('{"val_acc": 0.5, "_runtime": 3}')
    doc = convert_path(folder / "run-abc123.wandb")[0]
    assert doc["config"] == {"lr": 0.01} and doc["metrics"]["val_acc"]["last"] == 0.5
    assert doc["_id"] == "abc123" and doc["paths"] == [str(folder)]
    assert any("no run record" in w for w in doc["warnings"])


def test_a_hydra_multiruns_multirun_yaml_belongs_to_its_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "2026-12-04" / "20-57-47"
    shutil.copytree(CORPUS / "hydra_multirun" / "multirun", sweep)
    assert convert_path(sweep / "multirun.yaml") == []  # never a config document
    doc = convert_path(sweep / "1")[0]
    assert doc["kind"] == "run" and doc["config"]["lr"] == 0.004
    assert doc["info"]["multirun"] == {"folder": str(sweep), "overrides": ["lr=0.001,0.004"]}
    # the sweep has started, no job folder yet (what a watching daemon sees first): still not a config
    shutil.rmtree(sweep / "0")
    shutil.rmtree(sweep / "1")
    clear_cache()
    assert convert_path(sweep / "multirun.yaml") == []
    # a file of one's own that only shares the name is still a config
    own = tmp_path / "mine" / "multirun.yaml"
    own.parent.mkdir()
    own.write_text("lr: 0.1\n")
    assert [d["kind"] for d in convert_path(own)] == ["config"]
