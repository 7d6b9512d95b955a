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


def test_big_scan_writes_as_it_walks_and_still_follows_base_files(tmp_path: Path, monkeypatch) -> None:
    """Past ``STREAM_AFTER`` waiting files the scan writes while it walks (memory does not grow with the
    tree); the store ends up as a scan that writes at the end leaves it, and a changed base file
    still re-converts the unchanged configs that inherit from it, wherever the walk finds them."""
    import indexer.scan as scan_mod

    root = tmp_path / "tree"
    _write_runs(root / "runs", 30, 1)
    _write_sweep(root / "sweep", 1)
    (root / "base").mkdir()
    (root / "base" / "base.yaml").write_text("optimizer:\n  lr: 0.1\n")
    for i in range(5):  # inheriting configs before and after the base file in walk order
        for sub in ("a", "z"):
            (root / sub).mkdir(exist_ok=True)
            (root / sub / f"child{i}.yaml").write_text(f"_BASE_: ../base/base.yaml\nchild: {i}\n")
    ref = SQLiteStore(tmp_path / "ref.db")
    scan(ref, [str(root)], workers=1)
    monkeypatch.setattr(scan_mod, "STREAM_AFTER", 64)
    monkeypatch.setattr(scan_mod, "BATCH", 50)
    streamed = SQLiteStore(tmp_path / "streamed.db")
    written_when_walked = []
    real_walk = scan_mod.walk

    def walk(*args, **kwargs):
        found = real_walk(*args, **kwargs)
        written_when_walked.append(streamed.count(compile_query(""), FindOptions(kinds=("config", "run", "error"))))
        return found
    monkeypatch.setattr(scan_mod, "walk", walk)
    rep = scan(streamed, [str(root)], workers=2)
    assert rep.converted == 5 * 30 + N + 1 + 10 and rep.errors == 1
    assert written_when_walked[0] > 100  # written while walking
    assert _snapshot(streamed) == _snapshot(ref)
    (root / "base" / "base.yaml").write_text("optimizer:\n  lr: 0.5\n")
    _write_sweep(root / "sweep", 2)  # enough changed files to write while walking again
    for store in (ref, streamed):
        rep = scan(store, [str(root)], workers=2 if store is streamed else 1)
        assert rep.converted == N + 1 + 10 and rep.unchanged == 5 * 30
        children = store.find(compile_query("optimizer.lr=0.5 child"))  # a/ and z/ hold the same 5 configs
        assert len(children) == 5 and all(len(d["paths"]) == 2 for d in children)
    assert _snapshot(streamed) == _snapshot(ref)
    ref.close()
    streamed.close()
