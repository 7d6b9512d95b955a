"""Peak RSS of the indexer daemon on the worst-case files, one at a time and four at once.

Usage: ``.venv/bin/python bench/daemon_memory.py [--target-mb 200]``

Each case starts a daemon (``python -m indexer run``, the process ``daemon start`` runs) on an empty
root with its own SQLite store, drops the case's files into the root, waits until the store has a
document for each, and reads the daemon's peak RSS (``VmHWM``). The files are those that took the
daemon to 300-800 MB before per-file bounds: one 4.9 MB YAML mapping of 309k keys, 99k YAML sections,
a JSON list of 2.57M numbers; and the biggest files still parsed and indexed under the bounds (a YAML
mapping of 59k keys, a JSON object of 99k keys). Prints one line per case and exits 1 if any peak is
over the target.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_case(root: Path, name: str) -> Path:
    """Write one worst-case file into ``root`` (atomically: the daemon sees it whole)."""
    tmp = root.parent / ("." + name)
    with open(tmp, "w") as f:
        if name == "keys309k.yaml":
            f.writelines(f"k{i:06d}: {i}\n" for i in range(309_000))
        elif name == "sections99k.yaml":
            f.writelines(f"s{i:05d}:\n  lr: {i}\n  bs: 3\n" for i in range(99_000))
        elif name == "list2570k.json":
            f.write('{"losses": [' + ",".join("1" for _ in range(2_570_000)) + "]}")
        elif name == "keys59k.yaml":
            f.writelines(f"k{i:06d}: {i}\n" for i in range(59_000))
        elif name == "keys99k.json":
            f.write("{" + ",".join(f'"key_{i:06d}": {i}' for i in range(99_000)) + "}")
        else:
            raise ValueError(name)
    path = root / name
    os.replace(tmp, path)
    return path


def indexed(db: Path, paths: list[Path]) -> bool:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            have = {r[0] for r in con.execute("SELECT path FROM files")}
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return all(str(p) in have for p in paths)


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return int(status["VmHWM"].split()[0]) / 1024


def run_case(names: list[str], work: Path) -> tuple[float, float, float]:
    """(peak RSS MB when idle, peak RSS MB after indexing ``names``, seconds to index them)."""
    case = work / "-".join(n.split(".")[0] for n in names)
    root = case / "root"
    root.mkdir(parents=True)
    db = case / "index.db"
    env = {**os.environ, "EDNAQUERY_STORE": str(db), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "indexer", "run", "--state-dir", str(case / "state"),
                             "--debounce", "0.1", "--", str(root)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        idle = peak_mb(proc.pid)
        t0 = time.monotonic()
        paths = [write_case(root, n) for n in names]
        while not indexed(db, paths):
            if time.monotonic() - t0 > 300 or proc.poll() is not None:
                raise SystemExit(f"case {names}: not indexed within 300 s (daemon exit {proc.poll()})")
            time.sleep(0.2)
        return idle, peak_mb(proc.pid), time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


CASES = [
    ["keys309k.yaml"], ["sections99k.yaml"], ["list2570k.json"], ["keys59k.yaml"], ["keys99k.json"],
    ["keys309k.yaml", "sections99k.yaml", "list2570k.json", "keys99k.json"],
    ["keys59k.yaml", "keys99k.json", "list2570k.json", "sections99k.yaml"],
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-mb", type=float, default=200.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eq-daemon-mem-"))
    over = []
    try:
        for names in CASES:
            idle, peak, secs = run_case(names, work)
            print(f"{' + '.join(names):70s} peak RSS {peak:6.1f} MB (idle {idle:.1f} MB), indexed in {secs:.1f} s")
            if peak > args.target_mb:
                over.append(names)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"target: peak RSS <= {args.target_mb:.0f} MB: {'met' if not over else f'missed in {len(over)} case(s)'}")
    raise SystemExit(1 if over else 0)


if __name__ == "__main__":
    main()
