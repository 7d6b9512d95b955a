"""``ednaquery.start_run``: a run logged from any loop is a run folder ednaquery reads like a trainer run."""
from __future__ import annotations

import errno
import json
import os
import time

import pytest

import ednaquery
from ednaquery.documents import config_id
from ednaquery.runfolder import is_trainer_run, run_document


def _run_json(run) -> dict:
    return json.loads((run.dir / "run.json").read_text())


def test_a_completed_run_reads_back_like_a_trainer_run(tmp_path):
    cfg = {"model": "resnet18", "optimizer": {"lr": "1e-3"}}
    with ednaquery.start_run(config=cfg, root=tmp_path, name="baseline") as run:
        for epoch in range(3):
            for step in range(epoch * 5, epoch * 5 + 5):
                run.log({"train_loss": 1.0 / (step + 1)}, step=step, epoch=epoch)
            run.log({"val_acc": [0.5, 0.8, 0.7][epoch], "val_loss": [0.9, 0.4, 0.6][epoch]}, epoch=epoch)
    assert run.dir == tmp_path / run.id and is_trainer_run(run.dir)
    doc = run_document(run.dir)
    assert doc["_id"] == run.id and doc["status"] == "completed" and doc["kind"] == "run"
    assert doc["config_id"] == config_id({"model": "resnet18", "optimizer": {"lr": 0.001}})
    assert doc["metrics"]["val_acc"] == {"last": 0.7, "best": 0.8}
    assert doc["metrics"]["val_loss"] == {"last": 0.6, "best": 0.4}
    assert doc["metrics"]["train_loss"]["last"] == pytest.approx(1 / 15)
    assert doc["info"]["name"] == "baseline" and doc["info"]["epochs"] == 3
    assert doc["ended_at"] >= doc["started_at"]
    rows = (run.dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 18 and json.loads(rows[-1])["scope"] == "epoch"


def test_an_exception_fails_the_run_with_its_error_and_ctrl_c_interrupts_it(tmp_path):
    with pytest.raises(ValueError), ednaquery.start_run(config={"a": 1}, root=tmp_path) as failed:
        failed.log({"loss": 1.0}, step=0)
        raise ValueError("loss is NaN\nsecond line")
    assert _run_json(failed)["status"] == "failed" and _run_json(failed)["error"] == "ValueError: loss is NaN"
    assert run_document(failed.dir)["metrics"]["loss"]["last"] == 1.0  # buffered rows are not lost
    with pytest.raises(KeyboardInterrupt), ednaquery.start_run(root=tmp_path) as stopped:
        raise KeyboardInterrupt
    assert _run_json(stopped)["status"] == "interrupted"


def test_rows_reach_the_folder_while_the_run_goes(tmp_path):
    run = ednaquery.start_run(config={"a": 1}, root=tmp_path, flush_every=0.05)
    try:
        assert _run_json(run)["status"] == "running"
        run.log({"val_acc": 0.5}, epoch=0)
        deadline = time.monotonic() + 10
        while "val_acc" not in run_document(run.dir)["metrics"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run_document(run.dir)["metrics"]["val_acc"]["last"] == 0.5
        assert run_document(run.dir)["status"] == "running"
    finally:
        run.finish()
    assert _run_json(run)["status"] == "completed"


def test_values_that_are_not_plain_numbers(tmp_path):
    class Scalar:  # a tensor or NumPy scalar: float() reads it
        def __float__(self) -> float:
            return 0.25

    with ednaquery.start_run(config={"n": 1}, root=tmp_path) as run:
        run.log({"loss": Scalar(), "bad": float("nan"), "phase": "train"}, step=1)
    row = json.loads((run.dir / "metrics.jsonl").read_text())
    assert row["loss"] == 0.25 and row["bad"] is None and row["phase"] is None
    with pytest.raises(TypeError):
        ednaquery.start_run(config=[1, 2], root=tmp_path)


def test_the_lightning_logger_when_lightning_is_installed(tmp_path):
    pytest.importorskip("lightning")
    from ednaquery.tracking_lightning import EdnaLogger

    logger = EdnaLogger(root=tmp_path, name="pl")
    logger.log_hyperparams({"lr": 1e-3})
    logger.log_metrics({"val_acc": 0.7, "epoch": 0}, step=10)
    logger.finalize("success")
    doc = run_document(logger.log_dir)
    assert doc["status"] == "completed" and doc["metrics"]["val_acc"]["last"] == 0.7
    assert doc["config"] == {"lr": 0.001}


def test_without_lightning_the_adapter_says_what_to_install():
    try:
        import lightning  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install lightning"):
            import ednaquery.tracking_lightning  # noqa: F401
    else:
        pytest.skip("lightning is installed")


def test_a_failed_write_keeps_the_rows_and_run_fields_are_protected(tmp_path):
    run = ednaquery.start_run(config={"a": 1}, root=tmp_path, flush_every=3600)
    with pytest.raises(ValueError, match="status"):
        run.set_info(status="done")
    run.set_info(dataset="digits")
    (run.dir / "metrics.jsonl").unlink()
    (run.dir / "metrics.jsonl").mkdir()  # writing it fails now
    run.log({"loss": 1.0}, step=0)
    with pytest.raises(OSError):
        run.flush()
    (run.dir / "metrics.jsonl").rmdir()
    run.log({"loss": 0.5}, step=1)
    run.finish()
    doc = run_document(run.dir)
    assert doc["metrics"]["loss"] == {"last": 0.5, "best": 0.5} and doc["info"]["dataset"] == "digits"
    assert len((run.dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_write_cut_short_by_a_full_disk_writes_each_row_once(tmp_path, monkeypatch):
    run = ednaquery.start_run(config={"a": 1}, root=tmp_path, flush_every=3600)
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1)}, step=i)
    real_write = os.write
    calls = []

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))  # half the rows, one of them torn
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        run.flush()
    monkeypatch.setattr(os, "write", real_write)
    run.log({"loss": 0.1}, step=5)
    run.finish()
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert run_document(run.dir)["metrics"]["loss"]["last"] == 0.1
