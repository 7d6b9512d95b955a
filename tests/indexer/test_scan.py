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
