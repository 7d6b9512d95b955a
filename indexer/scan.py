"""One-shot scan (``ednaquery index PATH...``): make the store equal to what is on disk, then exit.

Walks the roots, skips files whose (size, mtime_ns, inode) the store already has, converts
the rest in a small process pool (YAML parsing is CPU-bound and PyYAML holds the GIL),
writes them in batched transactions, re-converts configs whose base files changed (and the
files beside a changed annotations sidecar), and marks files that disappeared as gone. Bad files become error records; the scan goes on.
Past ``STREAM_AFTER`` files waiting to be converted it writes while it walks, and it keeps no list of the
files it converted (only the states of unchanged ones, which a changed base file or sidecar may send back
to the converters), so a first scan's memory does not grow with the tree. The files of one run folder in a
converter's chunk share one read of the folder and one run document.
"""
from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from ednaquery.annotations import is_sidecar
from ednaquery.loaders import DEFAULT_MAX_BYTES
from ednaquery.store.base import FileState, PathUpdate, SeriesRow, Store
from ednaquery.store.bodies import pack_body, slim_for_body
from indexer.convert import convert_path
from indexer.convert.updates import dedupe, gone_updates, path_updates, run_home
from indexer.patterns import PathFilter
from indexer.walk import file_state, unreadable_update, walk

BATCH = 500  # files per store.apply (one transaction)
CHUNK = 64  # files per task sent to a converter process
IN_FLIGHT = 32  # chunks queued or converting per pool process (enough to last through the walk and a batch write)
POOL_MIN = 200  # files worth starting a process pool for
STREAM_AFTER = 20_000  # files waiting to be converted before the scan writes while it walks


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


#: a converted file: its path, its documents, (for the embedded store) their packed bodies, and the
#: metric series of the run it belongs to (``PathUpdate.series``: plain tuples, cheap to send back)
Converted = tuple[str, list[dict], list[bytes], dict[str, list[SeriesRow]]]


def _convert_one(path: str, max_bytes: int, zdict: bytes | None = None, roots: tuple[str, ...] = (),
                 memo: dict | None = None) -> Converted:
    series: dict[str, list[SeriesRow]] = {}
    docs = convert_path(path, max_bytes=max_bytes, is_file=True, roots=roots, series=series,
                        memo=memo)  # files scan() found
    if not zdict:
        return path, docs, [], series
    return path, [slim_for_body(d) for d in docs], [pack_body(d, zdict) for d in docs], series


def _convert_chunk(paths: list[str], max_bytes: int, zdict: bytes | None,
                   roots: tuple[str, ...] = ()) -> list[Converted]:
    # the files of one run folder share its read and its document (convert_path's memo); only the last
    # of them in the chunk sends the run document and series back: the store keeps the last one written
    # at the run folder (dedupe), and the others would write the same. Packing happens after, once each.
    memo: dict = {}
    out = [_convert_one(p, max_bytes, None, roots, memo) for p in paths]
    sent: set[int] = set()
    sent_series: set[str] = set()
    for path, docs, _, series in reversed(out):
        for run_id in [r for r in series if r in sent_series]:
            del series[run_id]
        sent_series.update(series)
        if any(id(d) in sent for d in docs):
            docs[:] = [d for d in docs if id(d) not in sent]
        sent.update(id(d) for d in docs if run_home(d) not in (None, path))
    if not zdict:
        return out
    return [(path, [slim_for_body(d) for d in docs], [pack_body(d, zdict) for d in docs], series)
            for path, docs, _, series in out]


class _Converter:
    """Converts files in order, in ``workers`` processes counting this one.

    Files are added as they are found, so the pool converts while the walk goes on; it starts
    once there are enough files to pay for it (else :meth:`results` converts them here, one by
    one). Only a few chunks are in flight at once, so memory stays flat however many files
    there are. Whenever the next chunk is not back yet, this process converts the last queued
    chunk that no pool process has started: on two cores, one pool process and this one (which
    also writes) keep both busy, where two pool processes and a writer would crowd them.
    Converters also pack the stored bodies once the embedded store has its zlib dictionary
    (``zdict()``), which takes that work off the writing.
    """

    def __init__(self, max_bytes: int, workers: int, zdict: Callable[[], bytes | None],
                 roots: tuple[str, ...] = ()) -> None:
        self.max_bytes, self.workers, self.zdict, self.roots = max_bytes, workers, zdict, roots
        self.pool: ProcessPoolExecutor | None = None
        self.waiting: list[str] = []  # added, not in a chunk yet
        self.backlog: deque[list[str]] = deque()  # chunks not submitted yet
        self.pending: deque[list] = deque()  # [future, chunk, result (when converted here)], in order

    def add(self, path: str) -> None:
        self.waiting.append(path)
        if len(self.waiting) >= CHUNK:
            self.backlog.append(self.waiting)
            self.waiting = []
            self._fill()

    def _fill(self) -> None:
        if self.pool is None:
            if self.workers <= 1 or len(self.backlog) * CHUNK < POOL_MIN:
                return
            self.pool = ProcessPoolExecutor(max_workers=self.workers - 1)
        while self.backlog and len(self.pending) < IN_FLIGHT * (self.workers - 1):
            chunk = self.backlog.popleft()
            self.pending.append([self.pool.submit(_convert_chunk, chunk, self.max_bytes, self.zdict(), self.roots), chunk, None])

    def queued(self) -> int:
        """Files added and not handed back yet."""
        return (len(self.backlog) + len(self.pending)) * CHUNK + len(self.waiting)

    def _take(self) -> list[Converted]:
        """The oldest chunk's results (converting the last unstarted chunk here while the pool works on it)."""
        if self.pool is None:
            return [_convert_one(p, self.max_bytes, None, self.roots) for p in self.backlog.popleft()]
        pending = self.pending
        while True:
            head = pending[0]
            if head[2] is None and not head[0].done():
                spare = next((s for s in reversed(pending) if s[2] is None and s[0].cancel()), None)
                if spare is not None:
                    spare[2] = _convert_chunk(spare[1], self.max_bytes, self.zdict(), self.roots)
                    continue
            pending.popleft()
            self._fill()
            return head[2] if head[2] is not None else head[0].result()

    def drain(self, keep: int) -> Iterator[Converted]:
        """Results of the oldest added files, in order, until no more than ``keep`` files wait (the
        walk goes on adding: what waits is bounded, so memory does not grow with the files found)."""
        while (self.backlog or self.pending) and self.queued() > keep:
            yield from self._take()

    def results(self) -> Iterator[Converted]:
        """The results of every file added and not drained yet, in order; after the last :meth:`add`."""
        if self.waiting:
            self.backlog.append(self.waiting)
            self.waiting = []
        self._fill()
        yield from self.drain(0)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def scan(store: Store, roots: Sequence[str], *, pfilter: PathFilter | None = None, force: bool = False,
         max_bytes: int = DEFAULT_MAX_BYTES, workers: int | None = None,
         progress: Callable[[int, int], None] | None = None) -> ScanReport:
    """Index every wanted file under ``roots`` (files or folders) into ``store``."""
    pfilter = pfilter or PathFilter()
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    report = ScanReport()
    unreadable: list[PathUpdate] = []  # error records for folders the walk cannot list
    inflight: dict[str, FileState] = {}  # added for converting, not written yet
    unchanged: dict[str, FileState] = {}  # found unchanged (a base file or a sidecar beside them may have changed)
    gone: list[str] = []
    folders: set[str] = set()  # folders of changed or removed annotations sidecars
    again: set[str] = set()  # configs that inherit from a changed or removed file
    abs_roots = tuple(os.path.abspath(r) for r in roots)
    conv = _Converter(max_bytes, workers, store.body_dictionary, abs_roots)
    done = converted = 0
    batch: list[PathUpdate] = []
    batch_paths: list[str] = []  # converted files in ``batch`` whose dependants are looked up
    loads = contextlib.ExitStack()  # the store's bulk load, once entered
    loading = False

    def write(results: Iterator[Converted], *, dependants: bool = True) -> None:
        nonlocal done, batch, batch_paths
        for path, docs, bodies, series in results:
            report.count(path, docs)
            batch.extend(path_updates(path, docs, inflight.pop(path), bodies, series=series))
            if dependants:
                batch_paths.append(path)
            if len(batch) >= BATCH:
                flush()

    def flush() -> None:
        nonlocal done, batch, batch_paths
        if batch_paths:  # unchanged files' deps are those of before the scan, whenever they are looked up
            again.update(d for d in store.dependants(batch_paths) if d not in inflight)
        store.apply(dedupe(batch))
        done += len(batch)
        batch, batch_paths = [], []
        if progress:
            progress(done, max(done, converted + len(gone)))

    def convert(path: str, state: FileState) -> None:
        nonlocal done, converted, loading
        if path in inflight:
            return  # found twice (overlapping roots) while in flight
        inflight[path] = state
        converted += 1
        if is_sidecar(path):
            folders.add(os.path.dirname(path))
        if converted == 1 and store.takes_packed_bodies and store.body_dictionary() is None:
            # a new store makes its zlib dictionary from the first document written: write one now,
            # so that the converters can pack every other body
            path, docs, _, series = _convert_one(path, max_bytes, None, abs_roots)
            report.count(path, docs)
            again.update(store.dependants([path]))
            store.apply(path_updates(path, docs, inflight.pop(path), series=series))
            done = 1
            return
        conv.add(path)
        if conv.queued() > STREAM_AFTER:  # a big scan: write as the walk goes on, the store set for a big load
            if not loading:
                loads.enter_context(store.bulk_load(converted))
                loading = True
            write(conv.drain(STREAM_AFTER // 2))

    try:
        with loads:
            for root in roots:
                root = os.path.abspath(root)
                if os.path.isfile(root):
                    state = file_state(os.stat(root))
                    report.seen += 1
                    if force or store.file_states(os.path.dirname(root)).get(root) != state:
                        convert(root, state)
                    else:
                        unchanged[root] = state
                        report.unchanged += 1
                    continue
                if not os.path.isdir(root):
                    raise FileNotFoundError(f"no such file or folder: {root}")
                known = store.file_states(root)  # what the walk finds is taken out: the rest was not found

                def found_file(path: str, state: FileState, known: dict[str, FileState] = known) -> None:
                    report.seen += 1
                    if known.pop(path, None) != state or force:
                        convert(path, state)
                    else:
                        unchanged[path] = state
                        report.unchanged += 1

                found = walk(root, pfilter, on_file=found_file, keep_files=False)
                report.unreadable.update(found.unreadable)
                gone += [p for p in known if not found.hides(p)]
                unreadable += [unreadable_update(f, why) for f, why in found.unreadable.items()
                               if f not in known and f != root]
            if not loading:  # the embedded store indexes a big first scan faster
                loads.enter_context(store.bulk_load(conv.queued() + len(batch)))
            write(conv.results())
            if batch_paths:
                again.update(store.dependants(batch_paths))
                batch_paths = []
            # configs that inherit from a changed or removed file, and files beside a changed
            # annotations sidecar (their tags and notes changed), must be converted again
            again.update(store.dependants(gone))
            folders.update(os.path.dirname(p) for p in gone if is_sidecar(p))
            beside = [p for p in unchanged if folders and os.path.dirname(p) in folders and not is_sidecar(p)]
            for dep in [*sorted(again), *beside]:
                if dep in unchanged:
                    convert(dep, unchanged.pop(dep))
                    report.unchanged -= 1
            write(conv.results(), dependants=False)
            for p in gone:
                batch += gone_updates(p, lambda folder: convert_path(folder, max_bytes=max_bytes, roots=abs_roots))
            batch += unreadable
            report.removed = len(gone)
            store.apply(dedupe(batch))
            done += len(batch)
    finally:
        conv.close()
    total = max(done, converted + len(gone))
    if progress:
        progress(total, total)
    return report
