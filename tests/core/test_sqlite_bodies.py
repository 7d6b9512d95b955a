"""The embedded store's packed bodies: whatever a document holds comes back the same (orjson
writes them, json.dumps where orjson would change a value: NaN, infinities, huge integers)."""
from __future__ import annotations

import math
from pathlib import Path

from ednaquery.store.bodies import body_json, pack_body
from ednaquery.store.sqlite import SQLiteStore


def test_bodies_keep_nan_infinities_big_integers_and_odd_strings(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "index.db")
    try:
        config = {"loss": float("nan"), "best": float("-inf"), "n": None, "big": 2**70, "s": "caf\u00e9 \x00",
                  "lone": "\ud800", "lr": 1e-05, "nested": [{"x": float("inf")}, None]}
        store.upsert([{"_id": "a" * 64, "kind": "config", "paths": [], "config": config, "leaves": []}])
        got = store.get("a" * 64)["config"]
        assert math.isnan(got["loss"]) and got["best"] == float("-inf") and got["nested"][0]["x"] == float("inf")
        assert got["big"] == 2**70 and got["lone"] == "\ud800" and got["s"] == "caf\u00e9 \x00"
        assert got["lr"] == 1e-05 and got["n"] is None and got["nested"][1] is None
        # a body with nulls but no NaN takes the fast path and reads back the same
        plain = {"_id": "b" * 64, "config": {"a": None, "b": [1.5, None]}, "leaves": [{"p": "a"}]}
        assert b"leaves" not in body_json(plain) and store._unpack(pack_body(plain, store._zd()))["config"] == plain["config"]
    finally:
        store.close()
