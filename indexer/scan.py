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
    """Convert files in ``workers`` processes, this one included, when there are enough files to
    pay for a pool.

    Results come back in order, chunk by chunk, while the caller writes the previous ones; only
    a few chunks are in flight at once, so memory stays flat however many files there are.
    Whenever the next chunk is not back yet, this process converts the last queued chunk that
    no pool process has started: on two cores, one pool process and this one (which also writes)
    keep both busy, where two pool processes and a writer would crowd them.
    Converters also pack the stored bodies once the embedded store has its zlib dictionary
    (``zdict()``), which takes that work off the writing.
    """
    if workers <= 1 or len(paths) < 200:
        yield from (_convert_one(p, max_bytes) for p in paths)
        return
    chunks = iter([list(paths[i:i + CHUNK]) for i in range(0, len(paths), CHUNK)])
    with ProcessPoolExecutor(max_workers=workers - 1) as pool:
        pending: deque[list] = deque()  # [future, chunk, result (when converted here)], in order

        def fill() -> None:
            while len(pending) < IN_FLIGHT * (workers - 1):
                chunk = next(chunks, None)
                if chunk is None:
                    return
                pending.append([pool.submit(_convert_chunk, chunk, max_bytes, zdict()), chunk, None])

        fill()
        while pending:
            head = pending[0]
            if head[2] is None and not head[0].done():
                spare = next((s for s in reversed(pending) if s[2] is None and s[0].cancel()), None)
                if spare is not None:
                    spare[2] = _convert_chunk(spare[1], max_bytes, zdict())
                    continue
            pending.popleft()
            fill()
            yield from head[2] if head[2] is not None else head[0].result()


def scan(store: Store, roots: Sequence[str], *, pfilter: PathFilter | None = None, force: bool = False,
         max_bytes: int = 5_000_000, workers: int | None = None,
         progress: Callable[[int, int], None] | None = None) -> ScanReport:
    """Index every wanted file under ``roots`` (files or folders) into ``store``."""
    pfilter = pfilter or PathFilter()
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
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
