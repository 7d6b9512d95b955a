"""Server times of `ednaquery ui`: the search page (50 rows) and a 20-run overlay, p50/p95 in ms.

Measured in-process through the ASGI test client (routing, the Index call, JSON encoding; no
network), over an open :class:`ednaquery.Index`. bench/ui_latency.py builds the 10k-run store
and calls :func:`server_times`; each figure is ``(name, value, unit, target, note)``.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

#: the queries the search page is timed on (each with limit=50, as the page asks)
SEARCHES = ("", "kind=run", "lr<1e-3", "model=vit val_acc>0.5", "optimizer.name=adamw data.img_size>=128")
#: target of the issue for both pages
TARGET_MS = "<= 300"


def _p(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _timed(client: Any, url: str, reps: int) -> list[float]:
    client.get(url)  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        resp = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, (url, resp.status_code, resp.text[:200])
    return out


def server_times(ix: Any, run_ids: Sequence[str], reps: int = 20) -> list[tuple[str, float, str, str, str]]:
    """The figures: search page p50/p95 over :data:`SEARCHES`, 20-run overlay p50/p95 (series, and the
    whole compare page: records + series + diff)."""
    from urllib.parse import urlencode

    from starlette.testclient import TestClient

    from ednaquery.ui import create_app

    client = TestClient(create_app(ix), base_url="http://127.0.0.1")
    search: list[float] = []
    for q in SEARCHES:
        page = _timed(client, "/", reps)
        api = _timed(client, "/api/find?" + urlencode({"q": q, "limit": 50}), reps)
        search += [a + b for a, b in zip(page, api)]
    step = max(1, len(run_ids) // 20)
    ids = ",".join(list(run_ids)[::step][:20])
    series = _timed(client, "/api/series?" + urlencode({"ids": ids, "metric": "val_acc"}), reps)
    runs = _timed(client, "/api/runs?" + urlencode({"ids": ids}), reps)
    diff = _timed(client, "/api/diff?" + urlencode({"ids": ids}), reps)
    whole = [a + b + c for a, b, c in zip(series, runs, diff)]
    keys = _timed(client, "/api/keys?prefix=opt", reps)
    t = time.perf_counter()
    ix.keys(None)
    catalogue_ms = (time.perf_counter() - t) * 1000
    n = f"{len(SEARCHES)} queries x {reps}"
    return [
        ("ui search page, 50 rows: p50", statistics.median(search), "ms", "", n),
        ("ui search page, 50 rows: p95", _p(search, 0.95), "ms", TARGET_MS, n),
        ("ui 20-run overlay (series): p50", statistics.median(series), "ms", "", f"{reps} reps"),
        ("ui 20-run overlay (series): p95", _p(series, 0.95), "ms", TARGET_MS, f"{reps} reps"),
        ("ui 20-run compare page (runs+series+diff): p95", _p(whole, 0.95), "ms", "", f"{reps} reps"),
        ("ui key autocomplete: p95", _p(keys, 0.95), "ms", "", f"{reps} reps (catalogue read in the background)"),
        ("ui key catalogue read (background, at most every 10 s)", catalogue_ms, "ms", "", ""),
    ]
