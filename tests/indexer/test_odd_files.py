"""Odd files: integers past 64 bits, NUL in keys, symlinked folders, FIFOs and devices."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import bson
import mongomock
import pytest

from ednaquery.documents import original_config
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore
from indexer.convert import convert_path
from tests.support.wait import wait_until

HUGE = int("9" * 400)


def _update(path: Path) -> PathUpdate:
    st = path.stat()
    return PathUpdate(str(path), convert_path(path), FileState(st.st_size, st.st_mtime_ns, st.st_ino))


@pytest.fixture(params=["sqlite", "mongo"])
def store(request, tmp_path: Path):
    s = (SQLiteStore(tmp_path / "index.db") if request.param == "sqlite"
         else MongoStore("mongodb://localhost/edna_test", client=mongomock.MongoClient()))
    yield s
    s.close()


@pytest.mark.parametrize("name, text", [
    ("big.yaml", f"huge: {HUGE}\nu64: {2**64}\nneg: {-(2**63) - 1}\nok: {2**63 - 1}\n"),
    ("big.json", json.dumps({"huge": HUGE, "u64": 2**64, "neg": -(2**63) - 1, "ok": 2**63 - 1})),
])
def test_integers_past_64_bits_are_indexed_as_text_and_number(tmp_path: Path, store, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    [doc] = convert_path(path)
    assert doc["kind"] == "config", doc
    bson.encode(doc)  # what a MongoDB server must accept: no integer past 64 bits
    assert original_config(doc) == {"huge": str(HUGE), "u64": str(2**64), "neg": str(-(2**63) - 1),
                                    "ok": 2**63 - 1}
    store.apply([_update(path)])
    assert store.count(parse("u64>1e19")) == 1  # a float holds it: still a number
    assert store.count(parse("neg<-9e18")) == 1
    assert store.count(parse("huge=9999*")) == 1  # only text holds it
    assert store.count(parse("huge>1")) == 0


def test_a_nul_in_a_key_is_escaped_and_the_file_indexed(tmp_path: Path, store) -> None:
    path = tmp_path / "nul.json"
    path.write_text(json.dumps({"a\u0000b": 1, "x": {"c\u0000": "v"}, "name": "nul"}))
    [doc] = convert_path(path)
    bson.encode(doc)  # BSON field names cannot hold NUL
    assert original_config(doc) == {"a\u0000b": 1, "x": {"c\u0000": "v"}, "name": "nul"}
    store.apply([_update(path)])
    assert store.count(parse("name=nul")) == 1
    assert store.file_states(str(tmp_path)) != {}  # recorded: not retried on every walk


def _started(ix):
    ix.start()
    assert ix.wait_idle(5), ix.status()
    return ix


def test_symlinked_folders_moved_into_a_root_are_never_followed(make_indexer, fake_store, root: Path,
                                                                 tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for i in range(5):
        (elsewhere / f"out{i}.yaml").write_text(f"o: {i}\n")
    (root / "mine.yaml").write_text("m: 1\n")
    staging = tmp_path / "staging" / "proj"
    staging.mkdir(parents=True)
    (staging / "p.yaml").write_text("p: 1\n")
    (staging / "outside").symlink_to(elsewhere, target_is_directory=True)
    (staging / "loop").symlink_to(root, target_is_directory=True)
    (staging / "linked.yaml").symlink_to(root / "mine.yaml")  # a symlinked file: indexed at its own path
    _started(make_indexer(root, convert=convert_path))
    os.rename(staging, root / "proj")
    want = {str(root / "mine.yaml"), str(root / "proj" / "p.yaml"), str(root / "proj" / "linked.yaml")}
    assert wait_until(lambda: set(fake_store.paths()) == want), fake_store.paths()
    ix = make_indexer(root, convert=convert_path)  # a restart walks everything again: still nothing more
    _started(ix)
    time.sleep(0.3)
    assert set(fake_store.paths()) == want


def test_named_pipes_and_device_links_get_error_records(make_indexer, fake_store, root: Path) -> None:
    os.mkfifo(root / "pipe.yaml")
    (root / "zero.yaml").symlink_to("/dev/zero")
    (root / "ok.yaml").write_text("a: 1\n")
    ix = _started(make_indexer(root, convert=convert_path))
    assert wait_until(lambda: fake_store.kind(root / "pipe.yaml") == "error"
                      and fake_store.kind(root / "zero.yaml") == "error"), fake_store.paths()
    assert "named pipe" in fake_store.docs[str(root / "pipe.yaml")][0]["error"]
    assert "character device" in fake_store.docs[str(root / "zero.yaml")][0]["error"]
    assert fake_store.config(root / "ok.yaml") == {"a": 1}
    assert wait_until(lambda: ix.status()["errors"] == 2)


def test_the_one_shot_scan_records_a_named_pipe(tmp_path: Path) -> None:
    from indexer.scan import scan

    root = tmp_path / "r"
    root.mkdir()
    os.mkfifo(root / "pipe.json")
    store = SQLiteStore(tmp_path / "index.db")
    try:
        scan(store, [str(root)])
        [doc] = store.find(parse("kind=error"))
        assert "named pipe" in doc["error"]
    finally:
        store.close()


@pytest.mark.parametrize("name, text", [
    ("keys.yaml", "".join(f"k{i:06d}: {i}\n" for i in range(309_000))),  # 4.9 MB, 309k keys
    ("sections.yaml", "".join(f"s{i:05d}:\n  lr: {i}\n" for i in range(99_000))),
    ("names.json", '{"names": [' + ",".join('"a"' for _ in range(1_300_000)) + "]}"),
    ("nested.json", '{"losses": [' + ",".join("[1]" for _ in range(1_300_000)) + "]}"),
])
def test_a_file_with_too_many_values_is_an_error_record_before_it_is_parsed(tmp_path: Path, name: str,
                                                                           text: str) -> None:
    import resource

    path = tmp_path / name
    path.write_text(text)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    [doc] = convert_path(path, max_bytes=10_000_000)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert doc["kind"] == "error"
    assert "values, over the" in doc["error"] and "alias bomb" not in doc["error"]
    assert grown_mb < 100, f"peak RSS grew by {grown_mb:.0f} MB"  # parsed, these took 100-300 MB


def test_a_file_of_one_long_number_list_is_indexed_as_a_summary_in_bounded_memory(tmp_path: Path) -> None:
    import resource

    path = tmp_path / "losses.json"
    path.write_text('{"losses": [' + ",".join("1" for _ in range(2_570_000)) + "]}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    [doc] = convert_path(path, max_bytes=10_000_000)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert doc["kind"] == "config" and not any("alias bomb" in w for w in doc["warnings"])
    assert [lf["p"] for lf in doc["leaves"]] == ["losses"] * 5 + ["losses\x1flen"]
    assert grown_mb < 100, f"peak RSS grew by {grown_mb:.0f} MB"


def _unlistable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(folder):
            raise PermissionError(13, "Permission denied", str(folder))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_folder_unlistable_from_the_start_is_an_error_record_until_it_can_be_read(
        make_indexer, fake_store, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = root / "locked"
    locked.mkdir()
    (locked / "a.yaml").write_text("a: 1\n")
    (root / "ok.yaml").write_text("ok: 1\n")
    _unlistable(monkeypatch, locked)
    ix = _started(make_indexer(root, convert=convert_path))
    assert wait_until(lambda: fake_store.kind(locked) == "error"), fake_store.paths()
    assert "cannot list this folder (Permission denied)" in fake_store.docs[str(locked)][0]["error"]
    assert fake_store.config(root / "ok.yaml") == {"ok": 1}
    walked = ix.last_reconcile
    ix.request_reconcile()  # a second walk keeps the record (it is not rewritten, nor dropped)
    assert wait_until(lambda: ix.last_reconcile is not walked and ix.idle()), ix.status()
    assert fake_store.kind(locked) == "error"
    monkeypatch.undo()
    ix.request_reconcile()
    assert wait_until(lambda: fake_store.config(locked / "a.yaml") == {"a": 1} and fake_store.kind(locked) is None)


def test_the_one_shot_scan_records_an_unlistable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ednaquery.results import problems
    from indexer.scan import scan

    root = tmp_path / "r"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "a.yaml").write_text("a: 1\n")
    store = SQLiteStore(tmp_path / "index.db")
    try:
        with monkeypatch.context() as m:
            _unlistable(m, root / "locked")
            report = scan(store, [str(root)])
        assert str(root / "locked") in report.unreadable
        assert [p["path"] for p in problems(store, warnings=False)] == [str(root / "locked")]
        scan(store, [str(root)])  # readable again: the record goes, the file is indexed
        assert [p["path"] for p in problems(store, warnings=False)] == []
        assert store.count(parse("a=1")) == 1
    finally:
        store.close()


def test_big_files_dropped_at_once_are_written_a_few_megabytes_at_a_time(make_indexer, fake_store, root: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer import daemon

    monkeypatch.setattr(daemon, "IN_FLIGHT_BYTES", 2_500_000)
    ix = make_indexer(root)
    _started(ix)
    for i in range(10):
        tmp = root.parent / f".big{i}"
        tmp.write_text(f"i: {i}\nblob: {'x' * 1_000_000}\n")
        os.replace(tmp, root / f"big{i}.yaml")
    assert wait_until(lambda: len(fake_store.paths()) == 10, 20)
    assert max(fake_store.batches) <= 3, fake_store.batches  # never ten 1 MB files' documents at once


def _fifo_tree(root: Path, case: str) -> tuple[Path, Path]:
    """A watched tree with one named pipe where a run reader (or the sidecar reader) opens a file:
    (the pipe, the path whose conversion reads it)."""
    if case == "mlflow.db":
        (root / "r").mkdir()
        fifo = root / "r" / "mlflow.db"
        os.mkfifo(fifo)
        return fifo, fifo
    if case == "tensorboard":
        (root / "tb").mkdir()
        os.mkfifo(root / "tb" / "events.out.tfevents.1")
        return root / "tb" / "events.out.tfevents.1", root / "tb"
    if case == "hydra log":
        (root / "job" / ".hydra").mkdir(parents=True)
        (root / "job" / ".hydra" / "config.yaml").write_text("lr: 0.1\n")
        os.mkfifo(root / "job" / "train.log")
        return root / "job" / "train.log", root / "job" / ".hydra" / "config.yaml"
    if case == "wandb":
        folder = root / "wandb" / "run-20240101_120000-abc123"
        (folder / "files").mkdir(parents=True)
        (folder / "files" / "config.yaml").write_text("wandb_version: 1\nlr:\n  desc: null\n  value: 0.01\n")
        (folder / "files" / "wandb-summary.json").write_text('{"val_acc": 0.5, "_runtime": 3}')
        os.mkfifo(folder / "run-abc123.wandb")
        return folder / "run-abc123.wandb", folder
    if case == "trainer metrics.jsonl":
        (root / "run").mkdir()
        (root / "run" / "run.json").write_text(json.dumps({"format": "ednaquery-run", "run_id": "r-1",
                                                           "status": "running"}))
        os.mkfifo(root / "run" / "metrics.jsonl")
        return root / "run" / "metrics.jsonl", root / "run" / "run.json"
    assert case == "sidecar"
    (root / "a.yaml").write_text("lr: 0.1\n")
    os.mkfifo(root / ".ednaquery-annotations.json")
    return root / ".ednaquery-annotations.json", root / "a.yaml"


def _release(fifo: Path) -> None:
    """Unblock a reader stuck on ``fifo`` (open it for writing and close: the reader sees the end)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader is waiting


FIFO_CASES = ["mlflow.db", "tensorboard", "hydra log", "wandb", "trainer metrics.jsonl", "sidecar"]


@pytest.mark.parametrize("case", FIFO_CASES)
def test_converting_around_a_named_pipe_returns_and_reports_it(tmp_path: Path, case: str) -> None:
    import threading

    fifo, target = _fifo_tree(tmp_path, case)
    out: dict[str, list[dict]] = {}
    worker = threading.Thread(target=lambda: out.update(pipe=convert_path(fifo), target=convert_path(target)),
                              daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():
        _release(fifo)
        worker.join(5)
        pytest.fail(f"converting {fifo.name} or {target.name} blocked on the named pipe")
    if case == "sidecar":
        assert out["pipe"] == []  # a sidecar is never a document; the config beside it still is
        [doc] = out["target"]
        assert doc["kind"] == "config" and doc["config"] == {"lr": 0.1}
        return
    [err] = out["pipe"]
    assert err["kind"] == "error" and "named pipe" in err["error"], err
    if target != fifo:
        [doc] = out["target"]
        assert doc["kind"] == "run", doc


@pytest.mark.parametrize("case", FIFO_CASES)
def test_ednaquery_index_finishes_with_a_named_pipe_in_the_tree(tmp_path: Path, case: str) -> None:
    import subprocess
    import sys

    root = tmp_path / "root"
    root.mkdir()
    fifo, _ = _fifo_tree(root, case)
    db = tmp_path / "index.db"
    cmd = [sys.executable, "-c", "from ednaquery.cli import main; main()", "--store", str(db), "index", str(root)]
    try:
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        _release(fifo)
        pytest.fail(f"`ednaquery index` hung on the named pipe {fifo.name}")
    assert res.returncode == 0, res.stderr
    store = SQLiteStore(db)
    try:
        errors = {p: d["error"] for d in store.find(parse("kind=error")) for p in d["paths"]}
        if case == "sidecar":  # never a document; the config beside it still is
            [doc] = store.find(parse("kind=config"))
            assert doc["paths"] == [str(root / "a.yaml")]
        elif case == "hydra log":  # not a file the walk wants; the job's run is still indexed
            [doc] = store.find(parse("kind=run"))
            assert doc["paths"] == [str(root / "job")] and not errors
        else:
            assert "named pipe" in errors[str(fifo)], errors
    finally:
        store.close()
