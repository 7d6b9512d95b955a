"""Memory and speed of the indexer's AddQueue with 100k (or more) pending paths.

Run by hand: ``.venv/bin/python bench/queue_memory.py [N]``. Paths look like a real sweep
tree (``/home/user/experiments/sweep-.../run-.../config.yaml``, ~90 characters). Prints
the memory tracemalloc attributes to the queue (path strings included), bytes per path,
and the time to add, re-touch (coalesce) and drain them.
"""
from __future__ import annotations

import sys
import time
import tracemalloc

from indexer.queue import CONVERT, GONE, AddQueue


def paths(n: int) -> list[str]:
    return [
        f"/home/user/experiments/sweep-2026-11-{i % 28 + 1:02d}/resnet50-img224-adamw/"
        f"run-{i:07d}/{'config.yaml' if i % 3 else 'metrics.jsonl'}"
        for i in range(n)
    ]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    q = AddQueue(quiet=0.3)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    # build the strings inside the traced window: the queue owns them in the daemon too
    t0 = time.perf_counter()
    for p in paths(n):
        q.add(p, CONVERT)
    t_add = time.perf_counter() - t0
    cur, peak = tracemalloc.get_traced_memory()
    used = cur - base
    # coalescing: touch every path again (no growth expected)
    t0 = time.perf_counter()
    for p in paths(n):
        q.add(p, GONE)
    t_touch = time.perf_counter() - t0
    cur2, peak2 = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    drained = 0
    while True:
        batch = q.get_ready(1000, force=True)
        if not batch:
            break
        drained += len(batch)
    t_drain = time.perf_counter() - t0
    print(f"pending paths          : {n:,}")
    print(f"queue memory           : {used / 1e6:.1f} MB ({used / n:.0f} bytes/path, path strings included)")
    print(f"after re-touching all  : {(cur2 - base) / 1e6:.1f} MB (peak {(max(peak, peak2) - base) / 1e6:.1f} MB)")
    print(f"add                    : {n / t_add:,.0f} paths/s")
    print(f"coalesce (re-add)      : {n / t_touch:,.0f} events/s")
    print(f"drain (get_ready 1000) : {drained / t_drain:,.0f} paths/s ({drained:,} taken)")


if __name__ == "__main__":
    main()
