"""Soak: a writer changing files while the daemon is SIGKILLed again and again; then store == disk?

Usage: ``.venv/bin/python bench/soak.py [--seconds 120] [--files 300] [--kill-every 2.0]``

A writer thread creates, rewrites (in place and by rename), renames and deletes YAML files under a
root, as fast as a sweep would. Meanwhile a daemon (``python -m indexer run``, SQLite store) runs on
the root and is SIGKILLed at random moments (on average every ``--kill-every`` seconds) and started
again at once. When the time is up the writer stops, the last daemon stays up, and the store is
compared with the disk until they agree (or 120 s pass). Printed figures:

- events: file operations the writer made; kills: SIGKILLs sent to the daemon
- lost: files on disk with no current document; stale: current documents whose config is not the
  file's content now, or whose file is gone; duplicates: paths holding more than one current document
- settle: seconds from the writer's last change to store == disk
- peak RSS: the largest ``VmHWM`` of any daemon process (sampled before each kill)

Exit status 1 when anything is lost, stale or duplicated after settling.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ednaquery.documents import original_config
from ednaquery.query.ast import MatchAll
from ednaquery.store import open_store
from ednaquery.store.base import FindOptions


class Writer(threading.Thread):
    """Random file operations under ``root`` until stopped; ``events`` counts them."""

    def __init__(self, root: Path, files: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.root, self.files, self.rng = root, files, random.Random(seed)
        self.events = 0
        self.stop = threading.Event()
        self.version = 0

    def _content(self, name: str) -> str:
        self.version += 1
        return yaml.safe_dump({"name": name, "v": self.version, "lr": self.rng.choice([1e-3, 3e-4, 1e-4]),
                               "model": {"name": self.rng.choice(["vit", "resnet18", "convnext"])}})

    def run(self) -> None:
        while not self.stop.is_set():
            sub = self.root / f"d{self.rng.randrange(10)}"
            sub.mkdir(exist_ok=True)
            path = sub / f"f{self.rng.randrange(self.files)}.yaml"
            op = self.rng.random()
            try:
                if op < 0.45:  # write in place (create or modify)
                    path.write_text(self._content(path.name))
                elif op < 0.75:  # editor save: write a temp file, rename over
                    tmp = sub / f".{path.name}.tmp"
                    tmp.write_text(self._content(path.name))
                    os.replace(tmp, path)
                elif op < 0.87:  # rename
                    if path.exists():
                        os.replace(path, sub / f"f{self.rng.randrange(self.files)}.yaml")
                else:  # delete
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                continue
            self.events += 1
            time.sleep(self.rng.uniform(0, 0.004))


class Daemons:
    """The daemon process, restarted after every kill; tracks kills and the largest peak RSS."""

    def __init__(self, root: Path, db: Path, state: Path) -> None:
        self.root, self.db, self.state = root, db, state
        self.proc: subprocess.Popen | None = None
        self.kills = 0
        self.peak_mb = 0.0

    def start(self) -> None:
        env = {**os.environ, "EDNAQUERY_STORE": str(self.db), "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "indexer", "run", "--state-dir", str(self.state),
                                      "--debounce", "0.1", "--", str(self.root)], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sample(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                status = dict(line.split(":", 1) for line in f)
            self.peak_mb = max(self.peak_mb, int(status["VmHWM"].split()[0]) / 1024)
        except (OSError, KeyError, ValueError):
            pass

    def kill(self) -> None:
        assert self.proc is not None
        self.sample()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.sample()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def compare(root: Path, db: Path) -> tuple[int, int, int]:
    """(lost, stale, duplicates) between the files under ``root`` and the store's current documents."""
    disk = {}
    for p in root.rglob("*.yaml"):
        try:
            disk[str(p)] = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError):
            continue
    store = open_store(str(db))
    try:
        docs = store.find(MatchAll(), FindOptions(kinds=("config", "error")))
    finally:
        store.close()
    by_path: dict[str, list[dict]] = {}
    for d in docs:
        for p in d.get("paths") or []:
            by_path.setdefault(p, []).append(d)
    lost = sum(1 for p in disk if p not in by_path)
    stale = sum(1 for p, ds in by_path.items() if p not in disk or original_config(ds[0]) != disk[p])
    dups = sum(1 for ds in by_path.values() if len(ds) > 1)
    return lost, stale, dups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--kill-every", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eq-soak-"))
    root = work / "root"
    root.mkdir()
    daemons = Daemons(Path(os.path.realpath(root)), work / "index.db", work / "state")
    writer = Writer(Path(os.path.realpath(root)), args.files, args.seed)
    rng = random.Random(args.seed + 1)
    try:
        daemons.start()
        writer.start()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(min(rng.expovariate(1 / args.kill_every), max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            daemons.kill()
            daemons.start()
        writer.stop.set()
        writer.join()
        stopped = time.monotonic()
        lost = stale = dups = -1
        while time.monotonic() - stopped < 120:
            daemons.sample()
            lost, stale, dups = compare(root, work / "index.db")
            if lost == stale == dups == 0:
                break
            time.sleep(0.5)
        settle = time.monotonic() - stopped
    finally:
        writer.stop.set()
        daemons.stop()
    print(f"soak {args.seconds:g} s: events {writer.events}, kills {daemons.kills}, lost {lost}, stale {stale}, "
          f"duplicates {dups}, settle {settle:.1f} s, peak RSS {daemons.peak_mb:.0f} MB")
    shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(0 if lost == stale == dups == 0 else 1)


if __name__ == "__main__":
    main()
