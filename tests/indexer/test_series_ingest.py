"""Runs' metric series reach the store: the one-shot scan (converter processes too) writes them,
and the daemon keeps them in step with a run folder as it grows, and drops them with the run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ednaquery.query import compile_query
from ednaquery.store import FindOptions, open_store
from ednaquery.store.sqlite import SQLiteStore
from indexer.daemon import Indexer
from indexer.scan import scan
from tests.support.wait import wait_until


def _write_run(folder: Path, epochs: int, *, trainer: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(f"model: vit\nlr: 0.001\nseed: {folder.name}\n")
    if trainer:
        (folder / "run.json").write_text(json.dumps({"format": "ednaquery-run", "run_id": folder.name,
                                                     "status": "running"}))
    with open(folder / "metrics.jsonl", "w") as fh:
        for e in range(1, epochs + 1):
            row = {"epoch": e, "step": 50 * e, "val_acc": e / 100, "train_loss": 1 / e}
            fh.write(json.dumps({"scope": "epoch", **row} if trainer else row) + "\n")
            if trainer:  # step rows are not part of a trainer run's series
                fh.write(json.dumps({"scope": "step", "epoch": e, "step": 50 * e - 1, "train_loss": 9.0}) + "\n")


def _runs(store) -> dict[str, dict]:
    return {d["_id"]: d for d in store.find(compile_query("kind=run"), FindOptions())}


@pytest.mark.parametrize("workers", [1, 2])
def test_scan_writes_every_runs_series(tmp_path: Path, workers: int, monkeypatch) -> None:
    from indexer import scan as scan_mod

    pooled = []
    real_close = scan_mod._Converter.close

    def close(self) -> None:
        pooled.append(self.pool is not None)
        real_close(self)

    monkeypatch.setattr(scan_mod._Converter, "close", close)
    root = tmp_path / "runs"
    for i in range(140):  # 280 files: over the pool threshold (four chunks of 64) with two workers
        _write_run(root / f"{i:03d}", 3 + i % 4, trainer=i % 2 == 1)
    store = SQLiteStore(tmp_path / "index.db")
    try:
        report = scan(store, [str(root)], workers=workers)
        assert report.errors == 0
        assert pooled == [workers > 1]  # with two workers, converter processes sent the series back
        runs = _runs(store)
        assert len(runs) == 140
        for run_id in runs:
            points = store.series([run_id], ["val_acc"])
            epochs = [p[3] for p in points]
            assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) in (3, 4, 5, 6)
        trainer_run = "001"
        assert [p[4] for p in store.series([trainer_run], ["train_loss"])] == [1.0, 0.5, 1 / 3, 0.25]
        # each run's series is there once, though each of its files carried it
        total = store.db.execute("SELECT count(*) FROM series").fetchone()[0]
        assert total == sum(2 * (3 + i % 4) for i in range(140))
    finally:
        store.close()


def test_rescan_after_a_run_grows_replaces_its_series(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _write_run(root / "a", 2)
    store = SQLiteStore(tmp_path / "index.db")
    try:
        scan(store, [str(root)], workers=1)
        run_id = next(iter(_runs(store)))
        assert len(store.series([run_id], ["val_acc"])) == 2
        _write_run(root / "a", 5)
        scan(store, [str(root)], workers=1)
        assert [p[3] for p in store.series([run_id], ["val_acc"])] == [1, 2, 3, 4, 5]
    finally:
        store.close()


def test_daemon_keeps_the_series_in_step_as_the_run_grows_and_drops_it_with_the_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    db = str(tmp_path / "index.db")
    _write_run(root / "run0001", 1, trainer=True)
    ix = Indexer(lambda: open_store(db), [str(root)], debounce=0.05, poll=True, poll_interval=0.1,
                 reconcile_every=None)
    ix.start()
    reader = None
    try:
        assert ix.wait_idle(10)
        reader = open_store(db)

        def epochs() -> list:
            return [p[3] for p in reader.series(["run0001"], ["val_acc"])]

        assert wait_until(lambda: epochs() == [1], 10)
        for n in (2, 3, 4):  # the trainer appends an epoch row (rewriting the file atomically)
            tmp = root / "run0001" / "metrics.tmp"
            _write_run(tmp_path / "staging", n, trainer=True)
            shutil.copy(tmp_path / "staging" / "metrics.jsonl", tmp)
            tmp.replace(root / "run0001" / "metrics.jsonl")
            assert wait_until(lambda n=n: epochs() == list(range(1, n + 1)), 10), epochs()
        (root / "run0001" / "metrics.jsonl").unlink()  # the run lost a file: read again, series and all
        assert wait_until(lambda: epochs() == [], 10), epochs()
        assert reader.get("run0001")["current"] is True
        shutil.rmtree(root / "run0001")
        assert wait_until(lambda: reader.get("run0001")["deleted"] is True, 10)
        assert reader.series(["run0001"]) == []
    finally:
        ix.stop()
        if reader is not None:
            reader.close()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_every_layout_hands_over_its_series_by_run_id(tmp_path: Path) -> None:
    from indexer.convert import convert_path

    lightning = tmp_path / "lightning_logs" / "version_0"
    _write(lightning / "hparams.yaml", "lr: 0.01\n")
    _write(lightning / "metrics.csv", "epoch,step,train_loss,val_acc\n0,99,0.9,\n0,99,,0.6\n1,199,0.5,\n1,199,,0.7\n")
    mlflow = tmp_path / "mlruns" / "1" / "0123456789abcdef0123456789abcdef"
    _write(mlflow.parent / "meta.yaml", "experiment_id: '1'\nname: cifar\nlifecycle_stage: active\n")
    _write(mlflow / "meta.yaml", "run_id: 0123456789abcdef0123456789abcdef\nstatus: 3\nexperiment_id: '1'\n")
    _write(mlflow / "params" / "lr", "0.001")
    _write(mlflow / "metrics" / "val_loss", "1704449500000 0.9 0\n1704449600000 0.5 1\n")
    wandb = tmp_path / "wandb" / "run-20240105_101112-ab12cd34" / "files"
    _write(wandb / "config.yaml", "wandb_version: 1\nlr:\n  desc: null\n  value: 0.0003\n")
    _write(wandb / "wandb-summary.json", json.dumps({"loss": 0.2, "_step": 2}))
    _write(wandb / "wandb-history.jsonl", "\n".join(json.dumps({"_step": s, "loss": 1 / (s + 1)}) for s in range(3)))
    for member, metric, values in ((lightning / "metrics.csv", "val_acc", [0.6, 0.7]),
                                   (mlflow / "params" / "lr", "val_loss", [0.9, 0.5]),
                                   (wandb / "wandb-summary.json", "loss", [1.0, 0.5, 1 / 3])):
        series: dict = {}
        docs = convert_path(member, series=series)
        run = next(d for d in docs if d["kind"] == "run")
        assert list(series) == [run["_id"]], member
        assert [v for m, _, _, v in series[run["_id"]] if m == metric] == values, member
        assert "series" not in run and "points" not in run


def test_a_start_run_run_logged_by_step_has_its_series(tmp_path: Path) -> None:
    import ednaquery

    with ednaquery.start_run(config={"lr": 0.1}, root=tmp_path / "runs", name="loop") as run:
        for step in range(4):
            run.log({"loss": 1 / (step + 1)}, step=step, epoch=step // 2)
        run.log({"val_acc": 0.5}, epoch=1)
    store = SQLiteStore(tmp_path / "index.db")
    try:
        scan(store, [str(tmp_path / "runs")], workers=1)
        (run_id,) = _runs(store)
        points = store.series([run_id])
        assert [(p[1], p[2], p[3]) for p in points if p[1] == "loss"] == [("loss", s, s // 2) for s in range(4)]
        assert [(p[1], p[3], p[4]) for p in points if p[1] == "val_acc"] == [("val_acc", 1, 0.5)]
    finally:
        store.close()
