"""One-shot scan (``ednaquery index PATH...``): make the store equal to what is on disk, then exit.

Walks the roots, skips files whose (size, mtime_ns, inode) the store already has, converts
the rest in a small process pool (YAML parsing is CPU-bound and PyYAML holds the GIL),
writes them in batched transactions, re-converts configs whose base files changed, and
marks files that disappeared as gone. Bad files become error records; the scan goes on.
"""
from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from ednaquery.store.base import FileState, PathUpdate, Store
from ednaquery.store.sqlite import pack_body, slim_for_body
from indexer.convert import convert_path
from indexer.patterns import PathFilter
from indexer.walk import walk

BATCH = 500  # files per store.apply (one transaction)
CHUNK = 64  # files per task sent to a converter process
IN_FLIGHT = 16  # chunks queued or converting per process (enough to last through one batch write)


@dataclass
class ScanReport:
    """What a scan did, for the summary line and for tests."""

    seen: int = 0
    converted: int = 0
    unchanged: int = 0
    errors: int = 0
    removed: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)
    error_paths: list[str] = field(default_factory=list)

    def count(self, path: str, docs: list[dict]) -> None:
        """Count one converted file (an error record among its documents makes it an error)."""
        self.converted += 1
        if any(d.get("kind") == "error" for d in docs):
            self.errors += 1
            self.error_paths.append(path)


def _convert_one(path: str, max_bytes: int, zdict: bytes | None = None) -> tuple[str, list[dict], list[bytes]]:
    docs = convert_path(path, max_bytes=max_bytes)
    if not zdict:
        return path, docs, []
    return path, [slim_for_body(d) for d in docs], [pack_body(d, zdict) for d in docs]


def _convert_chunk(paths: list[str], max_bytes: int, zdict: bytes | None) -> list[tuple[str, list[dict], list[bytes]]]:
    return [_convert_one(p, max_bytes, zdict) for p in paths]


def _convert_many(paths: Sequence[str], max_bytes: int, workers: int,
                  zdict: Callable[[], bytes | None]) -> Iterable[tuple[str, list[dict], list[bytes]]]:
    """Convert files, in a process pool when there are enough of them to pay for one.

    Results come back in order, chunk by chunk, while the caller writes the previous ones;
    only a few chunks are in flight at once, so memory stays flat however many files there are.
    Pool workers also pack the stored bodies once the embedded store has its zlib dictionary
    (``zdict()``), which takes that work off the single writing process.
    """
    if workers <= 1 or len(paths) < 200:
        yield from (_convert_one(p, max_bytes) for p in paths)
        return
    chunks = [list(paths[i:i + CHUNK]) for i in range(0, len(paths), CHUNK)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(_convert_chunk, chunk, max_bytes, zdict()))
            if len(pending) >= IN_FLIGHT * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def scan(store: Store, roots: Sequence[str], *, pfilter: PathFilter | None = None, force: bool = False,
         max_bytes: int = 5_000_000, workers: int | None = None,
         progress: Callable[[int, int], None] | None = None) -> ScanReport:
    """Index every wanted file under ``roots`` (files or folders) into ``store``."""
    pfilter = pfilter or PathFilter()
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    report = ScanReport()
    todo: list[str] = []
    states: dict[str, FileState] = {}
    gone: list[str] = []
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isfile(root):
            st = os.stat(root)
            states[root] = FileState(st.st_size, st.st_mtime_ns, st.st_ino)
            known = store.file_states(os.path.dirname(root)).get(root)
            if force or known != states[root]:
                todo.append(root)
            else:
                report.unchanged += 1
            continue
        if not os.path.isdir(root):
            raise FileNotFoundError(f"no such file or folder: {root}")
        found = walk(root, pfilter)
        report.unreadable.update(found.unreadable)
        known = store.file_states(root)
        for path, state in found.files.items():
            states[path] = state
            if force or known.get(path) != state:
                todo.append(path)
            else:
                report.unchanged += 1
        gone += [p for p in known if p not in found.files
                 and not any(p.startswith(u.rstrip(os.sep) + os.sep) for u in found.unreadable)]
    report.seen = len(states)
    # configs that inherit from a changed or removed file must be converted again
    for dep in store.dependants(todo + gone):
        if dep in states and dep not in todo:
            todo.append(dep)
            report.unchanged -= 1
    total = len(todo) + len(gone)
    done = 0
    batch: list[PathUpdate] = []
    bulk = getattr(store, "bulk_load", None)  # the embedded store indexes a big first scan faster
    body_dictionary = getattr(store, "body_dictionary", None)

    def zdict() -> bytes | None:
        return body_dictionary() if body_dictionary is not None else None

    with bulk(len(todo)) if bulk is not None else contextlib.nullcontext():
        first: list[str] = []
        if body_dictionary is not None and todo and zdict() is None:
            # a new store makes its zlib dictionary from the first document written: write one now,
            # so that the converter processes can pack every other body
            first = todo[:1]
            path, docs, _ = _convert_one(first[0], max_bytes)
            report.count(path, docs)
            store.apply([PathUpdate(path, docs, states[path])])
            done = 1
        for path, docs, bodies in _convert_many(todo[len(first):], max_bytes, workers, zdict):
            report.count(path, docs)
            batch.append(PathUpdate(path, docs, states[path], bodies))
            if len(batch) >= BATCH:
                store.apply(batch)
                done += len(batch)
                batch = []
                if progress:
                    progress(done, total)
        batch += [PathUpdate(p, [], None) for p in gone]
        report.removed = len(gone)
        store.apply(batch)
    if progress:
        progress(total, total)
    return report
