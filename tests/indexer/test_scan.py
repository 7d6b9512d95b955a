"""The one-shot scan (``ednaquery index``): with a process pool, converters also pack the
stored bodies; the store must end up exactly as a serial scan leaves it, first scan or re-scan,
with the same content at two paths and a broken file among them."""
from __future__ import annotations

from pathlib import Path

import pytest

from ednaquery.query import compile_query
from ednaquery.store import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from indexer.scan import scan

N = 260  # over the pool threshold (200 files)


def _write_sweep(root: Path, version: int) -> None:
    for i in range(N):
        folder = root / f"g{i // 50}"
        folder.mkdir(parents=True, exist_ok=True)
        lr = ("1e-4", "3e-4", "1e-3")[i % 3]
        body = f"model:\n  name: {('vit', 'resnet')[i % 2]}_{i % 7}\noptimizer:\n  lr: {lr}\nseed: {i % 5}\nindex: {i}\nv: {version}\n"
        if i == 17:
            body = "model: [unclosed\n"
        if i in (30, 31):  # the same content at two paths
            body = "model:\n  name: twin\n"
        (folder / f"cfg{i:03d}.yaml").write_text(body)


def _snapshot(store: SQLiteStore) -> dict:
    docs = store.find(compile_query(""), FindOptions(kinds=("config", "run", "error"), all_versions=True))
    out = {}
    for d in docs:
        d = dict(d)
        d.pop("indexed_at", None)
        out[d["_id"]] = d
    return out


@pytest.fixture
def counting(monkeypatch):
    """How many updates reached the store with bodies packed by a converter process."""
    seen = {"packed": 0}
    orig = SQLiteStore.apply

    def apply(self, updates):
        updates = list(updates)
        seen["packed"] += sum(1 for up in updates if up.bodies)
        return orig(self, updates)
    monkeypatch.setattr(SQLiteStore, "apply", apply)
    return seen


def test_pooled_scan_equals_serial_scan(tmp_path: Path, counting) -> None:
    root = tmp_path / "sweep"
    _write_sweep(root, 1)
    pooled, serial = SQLiteStore(tmp_path / "pooled.db"), SQLiteStore(tmp_path / "serial.db")
    for version in (1, 2):
        if version == 2:
            _write_sweep(root, 2)  # every file but the broken one and the twins changes
        counting["packed"] = 0
        rep = scan(pooled, [str(root)], workers=2)
        # the converter processes packed every body but the first document's, which makes the dictionary
        assert counting["packed"] == (N - 1 if version == 1 else N)
        scan(serial, [str(root)], workers=1)
        assert rep.converted == N and rep.errors == 1
        assert _snapshot(pooled) == _snapshot(serial)
        for q in ("lr<1e-3", "model=twin", "v=2", "seed=3 model=vit"):
            node = compile_query(q)
            assert pooled.count(node) == serial.count(node)
    twin = pooled.find(compile_query("model=twin"))
    assert len(twin) == 1 and len(twin[0]["paths"]) == 2
    assert pooled.count(compile_query("v=2")) == N - 3
    assert pooled.count(compile_query("v=1"), FindOptions(all_versions=True)) == N - 3
    pooled.close()
    serial.close()


def _write_runs(root: Path, n: int, version: int) -> None:
    """``n`` trainer run folders (config, run.json, metrics, summary, a confusion matrix: 5 files each)."""
    import json
    for i in range(n):
        folder = root / f"s{i // 20}" / f"run{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(f"model:\n  name: m{i % 3}\noptimizer:\n  lr: {i + 1}e-4\nv: {version}\n")
        rows = [{"scope": "epoch", "epoch": e, "val_acc": 0.1 * e + i / 1000, "train_loss": 1 / (e + version)}
                for e in range(1, 6 + i % 4)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / "summary.json").write_text(json.dumps(
            {"metrics": {"val_acc": {"last": rows[-1]["val_acc"], "best": rows[-1]["val_acc"]}}, "epochs": len(rows)}))
        (folder / "run.json").write_text(json.dumps(
            {"format": "ednaquery-run", "run_id": f"r{i:03d}", "status": "completed", "started_at": 1.8e9 + i}))
        (folder / "val_confusion.json").write_text(json.dumps({"matrix": [[i, version], [0, 1]]}))


def test_pooled_scan_of_run_folders_equals_serial_scan(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    n = 45  # 225 files: over the pool threshold, and folders straddle the converters' chunks
    pooled, serial = SQLiteStore(tmp_path / "pooled.db"), SQLiteStore(tmp_path / "serial.db")
    for version in (1, 2):
        _write_runs(root, n, version)
        rep = scan(pooled, [str(root)], workers=2, force=version == 2)
        scan(serial, [str(root)], workers=1, force=version == 2)
        assert rep.converted == 5 * n and rep.errors == 0
        snap = _snapshot(pooled)
        assert snap == _snapshot(serial)
        assert sorted(d["_id"] for d in snap.values() if d["kind"] == "run" and d["current"]) == \
            [f"r{i:03d}" for i in range(n)]
        ids = [f"r{i:03d}" for i in range(n)]
        assert pooled.series(ids) == serial.series(ids)
        assert len(pooled.series(["r007"], ["val_acc"])) == 5 + 7 % 4
    assert pooled.count(compile_query("v=2"), FindOptions(kinds=("run",))) == n
    pooled.close()
    serial.close()
