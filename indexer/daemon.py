"""The indexer engine: reconcile walk, worker loop, store outages, drain on stop.

``Indexer`` ties the pieces together: the :class:`~indexer.monitor.Monitor` puts file
events into the :class:`~indexer.queue.AddQueue`; one worker thread owns the store (an
SQLite connection belongs to the thread that opened it), takes ready paths in batches,
converts them and writes each batch with one ``store.apply``.

Never miss, never lose:

- on start, every ``reconcile_every`` seconds, on ``SIGHUP`` and after the queue
  overflowed, the worker walks the roots and compares each file's (size, mtime_ns,
  inode) with ``store.file_states(root)``: what changed is queued, what vanished is
  marked gone. Whatever happened while no daemon ran is caught up on this way;
- a file's state is taken *before* it is read, so a write racing the conversion leaves a
  state that differs from the disk and the next walk converts it again;
- when the store is unreachable (``StoreUnavailable``) the batch in hand is kept and
  retried with exponential backoff (capped), while events keep collecting in the queue;
  one log line when the store goes down, one when it is back;
- ``stop()`` stops watching, then converts and writes everything still queued (ready or
  not) before closing the store. If the store stays down while stopping, what is left is
  reported in one line: the next start's walk finds it, since the store never recorded it.

:meth:`Indexer.serve` is the process around it: signals, pidfile, status file.
"""
from __future__ import annotations

import functools
import logging
import os
import random
import select
import signal
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ednaquery.annotations import is_sidecar
from ednaquery.errors import EdnaError, StoreUnavailable
from ednaquery.loaders import DEFAULT_MAX_BYTES
from ednaquery.store.base import FileState, PathUpdate, Store
from indexer.convert.updates import gone_updates, path_updates
from indexer.monitor import Monitor
from indexer.patterns import PathFilter, rel_parts
from indexer.queue import CONVERT, DEPENDANT, GONE, RESCAN, AddQueue
from indexer.walk import file_state, unreadable_update, walk

log = logging.getLogger("indexer")
#: bytes of files converted before what they gave is written: bounds the documents held in memory at once
IN_FLIGHT_BYTES = 8_000_000

Converter = Callable[..., list[dict]]


def canonical_root(root: str | os.PathLike[str]) -> str:
    """The absolute, symlink-resolved form of a root, as events and the walk report paths."""
    return os.path.realpath(os.path.expanduser(os.fspath(root)))


def _default_converter() -> Converter:
    try:
        from indexer.convert import convert_path
    except ImportError as exc:  # pragma: no cover - only before the converter lands
        raise EdnaError(f"the file converter is not available ({exc}); reinstall ednaquery") from exc
    return convert_path


def _error_doc(path: str, message: str, st: os.stat_result | None) -> dict:
    from ednaquery.documents import make_error_document

    return make_error_document(path, message, format=Path(path).suffix.lstrip(".") or "file",
                               size=st.st_size if st else None, mtime=st.st_mtime if st else None)


class Indexer:
    """Keeps a store equal to the wanted files under some roots."""

    def __init__(self, store_factory: Callable[[], Store], roots: Sequence[str | os.PathLike[str]], *,
                 convert: Converter | None = None, include: Sequence[str] | None = None,
                 exclude: Sequence[str] | None = None, poll: bool = False, poll_interval: float = 2.0,
                 debounce: float = 0.3, reconcile_every: float | None = 600.0, batch_size: int = 256,
                 batch_linger: float = 0.05, max_bytes: int = DEFAULT_MAX_BYTES, retry_interval: float = 5.0, backoff_cap: float = 30.0,
                 drain_timeout: float = 15.0, max_pending: int = 1_000_000, watch: bool = True,
                 observer_factory: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not roots:
            raise EdnaError("no folders to watch: give at least one root")
        self.roots = list(dict.fromkeys(canonical_root(r) for r in roots))
        self.store_factory = store_factory
        self.convert = convert or functools.partial(_default_converter(), roots=tuple(self.roots))
        #: the built-in converter also hands over runs' metric series (``PathUpdate.series``)
        self._with_series = convert is None
        self.filter = PathFilter(include, exclude)
        # a poller reports a file still being written once per interval: wait longer than that
        quiet = max(debounce, 1.5 * poll_interval) if poll else debounce
        # ``clock`` is what quiet periods are measured in (tests hold it still instead of racing it)
        self.queue = AddQueue(quiet, max_pending=max_pending, clock=clock)
        self.monitor = Monitor(self.roots, self.queue, self.filter, poll=poll, poll_interval=poll_interval,
                               retry_interval=retry_interval, observer_factory=observer_factory)
        self.watching = watch
        self.reconcile_every = reconcile_every
        self.batch_size = batch_size
        self.batch_linger = batch_linger
        self.max_bytes = max_bytes
        self.backoff_cap = backoff_cap
        self.drain_timeout = drain_timeout

        self.store: Store | None = None
        self.store_state = "connecting"  # connecting | up | down | closed
        self.store_uri = ""
        self.started_at: float | None = None
        self.files_indexed = 0  # conversions written (a file changed twice counts twice)
        self.deleted = 0
        self.store_errors = 0  # updates the store refused (logged, dropped)
        self._error_paths: set[str] = set()  # files whose last conversion was an error record
        self.last_reconcile: dict[str, Any] | None = None
        self._held: list[PathUpdate] = []  # converted, not yet written (store down)
        self._uncounted: set[int] = set()  # ids of held updates of run folders (not files)
        self._held_rescans: list[str] = []
        self._held_follow: list[str] = []  # held paths whose dependants are re-converted once written
        self._failures = 0
        self._reconcile_wanted = threading.Event()
        self._reconciled_once = threading.Event()
        self._stopping = threading.Event()
        self._abort = threading.Event()
        self._busy = False
        self._next_reconcile = float("inf")
        self._unreadable_seen: set[str] = set()
        self._last_bug = ""
        self._worker: threading.Thread | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    # -- public API -------------------------------------------------------------------
    def start(self) -> None:
        """Start watching and the worker; the worker opens the store and reconciles first."""
        self.started_at = time.time()
        self._reconcile_wanted.set()
        if self.watching:
            self.monitor.start()
        self._worker = threading.Thread(target=self._work, name="ednaquery-indexer", daemon=True)
        self._worker.start()

    def stop(self, *, drain: bool = True) -> None:
        """Stop watching, write what is still queued (``drain``), close the store. Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        if self.watching:
            self.monitor.stop()
        if not drain:
            self._abort.set()
        self._stopping.set()
        self.queue.wake()
        if self._worker is not None:
            self._worker.join()

    def abort(self) -> None:
        """Make a running drain give up at once (second Ctrl-C)."""
        self._abort.set()
        self.queue.wake()

    def request_reconcile(self) -> None:
        """Walk the roots soon (SIGHUP does this)."""
        self._reconcile_wanted.set()
        self.queue.wake()

    def pending(self) -> int:
        """Paths still to convert or write (queued, in hand, or held while the store is down)."""
        return self.queue.pending() + len(self._held) + len(self._held_rescans)

    def idle(self) -> bool:
        """True when the first reconcile is done and nothing is queued or in hand."""
        return (self._reconciled_once.is_set() and not self._reconcile_wanted.is_set()
                and not self._busy and self.pending() == 0)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until :meth:`idle` (True) or ``timeout`` seconds pass (False)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.idle():
                return True
            time.sleep(0.02)
        return self.idle()

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot: pid, roots, state, uptime, queue depth, counts, last event."""
        now = time.time()
        last = self.monitor.last_event
        return {
            "pid": os.getpid(),
            "state": "stopping" if self._stopping.is_set() else ("running" if self.started_at else "created"),
            "roots": self.monitor.states() if self.watching else {r: "not watched" for r in self.roots},
            "store": self.store_uri,
            "store_state": self.store_state,
            "started_at": self.started_at,
            "uptime_s": round(now - self.started_at, 1) if self.started_at else 0.0,
            "queue_depth": self.pending(),
            "files_indexed": self.files_indexed,
            "errors": self.errors,
            "deleted": self.deleted,
            "events": self.monitor.events,
            "last_event": {"path": last[0], "what": last[1], "at": last[2]} if last else None,
            "last_reconcile": self.last_reconcile,
            "updated_at": now,
        }

    def run_once(self, timeout: float | None = None) -> dict[str, Any]:
        """One-shot scan without watching: reconcile every root, write everything, stop."""
        self.watching = False
        self.start()
        end = None if timeout is None else time.monotonic() + timeout
        while not self.idle() and (end is None or time.monotonic() < end):
            if self._worker is not None and not self._worker.is_alive():
                break
            time.sleep(0.05)
        self.stop()
        return self.status()

    # -- the worker -------------------------------------------------------------------
    def _work(self) -> None:
        try:
            while not self._stopping.is_set():
                if self.store is None and not self._open_store():
                    self._backoff_wait()
                    continue
                try:
                    self._step()
                except StoreUnavailable as exc:
                    self._store_down(exc)
                    self._backoff_wait()
                except Exception as exc:  # a bug: say it once, keep the pending work, retry later
                    self._failures += 1
                    if str(exc) != self._last_bug:
                        self._last_bug = str(exc)
                        log.exception("indexer error (retrying with backoff)")
                    self._backoff_wait()
            self._drain()
        except Exception:  # a bug: say so loudly, leave the rest to the next start's walk
            log.exception("indexer worker failed; stop and restart the indexer (the next start catches up)")
        finally:
            self._close_store()

    def _step(self) -> None:
        if self._held or self._held_rescans:
            self._write_held()
            self._store_up()
        if self.reconcile_every and time.monotonic() >= self._next_reconcile:
            self._reconcile_wanted.set()
        if self.queue.overflowed and self.queue.pending() == 0 and self.queue.take_overflow():
            log.warning("the queue overflowed (%d paths); walking the roots to catch up", self.queue.max_pending)
            self._reconcile_wanted.set()
        if self._reconcile_wanted.is_set():
            self._reconcile()
            self._store_up()
            return
        if not self.queue.wait_ready(0.5):
            return
        if self.batch_linger and self.queue.pending() > 1:
            # more is on its way (a burst of files): gather it into one write
            self._stopping.wait(self.batch_linger)
        self._busy = True  # before taking: idle() must never see an empty queue with work in hand
        try:
            batch = self.queue.get_ready(self.batch_size)
            if batch:
                self._process(batch)
        finally:
            self._busy = False

    def _open_store(self) -> bool:
        try:
            self.store = self.store_factory()
        except StoreUnavailable as exc:
            self._store_down(exc)
            return False
        first = not self.store_uri
        self.store_uri = self.store.display_uri or type(self.store).__name__
        if first:
            log.info("store: %s", self.store_uri)
        self._store_up()
        return True

    def _close_store(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
                log.debug("error closing the store: %s", exc)
            self.store = None
        self.store_state = "closed"

    def _store_down(self, exc: Exception) -> None:
        self._failures += 1
        if self.store_state != "down":
            self.store_state = "down"
            log.warning("store unavailable (%s); keeping %d pending changes and retrying", exc, self.pending())

    def _store_up(self) -> None:
        if self.store_state != "up":
            if self.store_state == "down":
                log.info("store is reachable again; catching up on %d pending changes", self.pending())
            self.store_state = "up"
        self._failures = 0

    def _backoff_wait(self) -> None:
        delay = min(self.backoff_cap, 0.25 * 2 ** min(self._failures, 16)) * random.uniform(0.8, 1.0)
        self._stopping.wait(delay)

    # -- converting and writing ---------------------------------------------------------
    def _process(self, batch: list[tuple[str, int]]) -> None:
        """Convert a batch (in this thread) and write it with one store.apply, or one per
        :data:`IN_FLIGHT_BYTES` of files converted (the documents of big files wait in memory)."""
        updates: list[PathUpdate] = []
        follow: list[str] = []
        size = 0
        for i, (path, op) in enumerate(batch):
            if op == RESCAN:
                self._held_rescans.append(path)
                continue
            upd = self._update_for(path)
            if not upd:
                continue
            updates.append(upd[0])
            for extra in upd[1:]:  # run folders: written, not counted as files
                self._uncounted.add(id(extra))
                updates.append(extra)
            if op != DEPENDANT:
                follow.append(path)
            size += upd[0].state.size if upd[0].state is not None else 0
            if size >= IN_FLIGHT_BYTES and i + 1 < len(batch):
                self._held.extend(updates)
                self._held_follow.extend(follow)
                updates, follow, size = [], [], 0
                try:
                    self._write_held()
                except StoreUnavailable:
                    for rest_path, rest_op in batch[i + 1:]:  # not converted yet: back in the queue
                        self.queue.add(rest_path, rest_op, now=True)
                    raise
        self._held.extend(updates)
        self._held_follow.extend(follow)
        self._write_held()

    def _write_held(self) -> None:
        store = self.store
        assert store is not None
        if self._held:
            self._apply(store, self._held)
            self._count(self._held)
            follow, self._held, self._held_follow = self._held_follow, [], []
            self._queue_dependants(store, follow)
        while self._held_rescans:
            self._rescan(store, self._held_rescans[0])
            self._held_rescans.pop(0)

    def _update_for(self, path: str) -> list[PathUpdate]:
        """What ``path`` holds now: converted documents with the file's state, or gone (a run's
        document goes to its run folder: :mod:`indexer.convert.updates`)."""
        series: dict[str, Any] = {}  # the runs' metric series the converter hands over (PathUpdate.series)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            updates = gone_updates(path, lambda folder: self._convert_quietly(folder, series))
            updates[0].series.update(series)  # a run that lost a file is read again: its series too
            return updates
        except OSError as exc:
            st = None
            log.debug("cannot stat %s: %s", path, exc)
        if st is not None and stat.S_ISDIR(st.st_mode):
            # a folder now stands where a file was (a pipe or device: converting it gives an error record)
            self.queue.add(path, RESCAN, now=True)
            runs = [d for d in self._convert_quietly(path, series) if d.get("kind") == "run"]  # a run folder keeps its run
            return [PathUpdate(path, runs, None, series=series)]
        try:
            docs = self._converted(path, series, st)
        except Exception as exc:  # the converter should never raise; if it does, record it
            log.debug("converter failed on %s", path, exc_info=True)
            docs = [_error_doc(path, f"internal error while converting: {exc}", st)]
        return path_updates(path, docs, file_state(st) if st is not None else None, settle_members=True,
                            series=series)

    def _converted(self, path: str, series: dict[str, Any], st: os.stat_result | None = None) -> list[dict]:
        """``self.convert`` of ``path``; the built-in converter also hands the runs' series to ``series``
        and takes the caller's ``st`` of the path (so it need not stat the file again)."""
        if self._with_series:
            return list(self.convert(Path(path), max_bytes=self.max_bytes, series=series, stat=st))
        return list(self.convert(Path(path), max_bytes=self.max_bytes))

    def _convert_quietly(self, folder: str, series: dict[str, Any]) -> list[dict]:
        try:
            return self._converted(folder, series)
        except Exception:
            log.debug("converter failed on %s", folder, exc_info=True)
            return []

    def _apply(self, store: Store, updates: list[PathUpdate]) -> None:
        try:
            store.apply(updates)
            self._store_up()
            return
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad document: isolate it below
            log.warning("writing a batch of %d files failed (%s); writing them one by one", len(updates), exc)
        for upd in list(updates):
            try:
                store.apply([upd])
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - drop this file's update, keep the daemon alive
                log.error("cannot store %s: %s", upd.path, exc)
                self.store_errors += 1
                updates.remove(upd)

    def _count(self, updates: list[PathUpdate]) -> None:
        indexed = deleted = errors = 0
        for upd in updates:
            if id(upd) in self._uncounted:
                continue  # a run folder: counted with the file that yielded it
            if upd.state is None and not upd.docs:
                deleted += 1
                self._error_paths.discard(upd.path)
                continue
            bad = [d for d in upd.docs if d.get("kind") == "error"]
            if bad:
                errors += 1
                if upd.path not in self._error_paths:
                    self._error_paths.add(upd.path)
                    log.warning("cannot index %s: %s", upd.path, bad[0].get("error", "error"))
            else:
                indexed += 1
                self._error_paths.discard(upd.path)
        self._uncounted.clear()
        self.files_indexed += indexed
        self.deleted += deleted
        if updates:
            log.info("indexed %d file%s, %d error%s, %d deleted (queue %d)", indexed, "" if indexed == 1 else "s",
                     errors, "" if errors == 1 else "s", deleted, self.queue.pending())

    @property
    def errors(self) -> int:
        """Files whose latest conversion (by this process) gave an error record, plus store refusals."""
        return len(self._error_paths) + self.store_errors

    def _queue_dependants(self, store: Store, paths: list[str]) -> None:
        if not paths:
            return
        try:
            deps = store.dependants(paths)
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - optional: a backend without it still indexes
            log.debug("cannot look up dependants: %s", exc)
            return
        deps = list(deps) + self._annotated_siblings(store, [p for p in paths if is_sidecar(p)])
        changed = set(paths)
        for dep in deps:
            if dep not in changed:
                self.queue.add(dep, DEPENDANT, now=True)

    def _annotated_siblings(self, store: Store, sidecars: list[str]) -> list[str]:
        """The indexed files beside each changed annotations sidecar: re-converted to read the new tags/notes."""
        out: list[str] = []
        for sidecar in sidecars:
            folder = os.path.dirname(sidecar)
            try:
                known = store.file_states(folder)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - annotations catch up at the next reconcile
                log.debug("cannot list the files beside %s: %s", sidecar, exc)
                continue
            out += sorted(p for p in known if os.path.dirname(p) == folder and not is_sidecar(p))
        return out

    # -- reconcile ----------------------------------------------------------------------
    def _reconcile(self) -> None:
        store = self.store
        assert store is not None
        t0 = time.monotonic()
        changed = gone = files = 0
        for root in self.roots:
            if self._stopping.is_set():
                return
            c, g, f = self._compare(store, root, root, self._stopping.is_set)
            changed, gone, files = changed + c, gone + g, files + f
        took = time.monotonic() - t0
        self.last_reconcile = {"at": time.time(), "duration_s": round(took, 3), "files": files,
                               "changed": changed, "gone": gone}
        first = not self._reconciled_once.is_set()
        self._reconcile_wanted.clear()
        self._reconciled_once.set()
        if self.reconcile_every:
            self._next_reconcile = time.monotonic() + self.reconcile_every
        level = logging.INFO if (first or changed or gone) else logging.DEBUG
        log.log(level, "reconciled %d files under %d root%s in %.2f s: %d to index, %d gone", files,
                len(self.roots), "" if len(self.roots) == 1 else "s", took, changed, gone)

    def _root_of(self, path: str) -> str | None:
        for root in self.roots:
            if rel_parts(root, path) is not None:
                return root
        return None

    def _rescan(self, store: Store, folder: str) -> None:
        """A folder appeared, vanished or moved: compare what is below it with the store."""
        root = self._root_of(folder)
        if root is None:
            return
        if os.path.isfile(folder):
            parts = rel_parts(root, folder)
            if parts and self.filter.wants_file(parts):
                self.queue.add(folder, CONVERT, now=True)
        self._compare(store, root, folder)

    def _compare(self, store: Store, root: str, top: str,
                 stop: Callable[[], bool] | None = None) -> tuple[int, int, int]:
        """Queue what differs between the disk and the store below ``top``: (changed, gone, files).

        ``stop`` cuts a long walk short (a full reconcile when the daemon stops); a folder
        rescan in the final drain runs to the end.
        """
        stop = stop or self._abort.is_set
        if top == root and os.path.lexists(root) and not os.path.isdir(root):
            return 0, 0, 0  # not a folder / broken: the monitor says so; leave the store alone
        result = walk(top, self.filter, root=root, should_stop=stop)
        if stop():
            return 0, 0, len(result.files)  # a cut-short walk proves nothing gone; the next start walks again
        if top in result.unreadable:
            return 0, 0, 0  # cannot read it: keep what the store knows
        if top == root and self.watching:
            self.monitor.check_watches(root, result.folders)
        for folder, why in result.unreadable.items():
            if folder not in self._unreadable_seen:
                self._unreadable_seen.add(folder)
                log.warning("cannot read folder %s: %s; its indexed files are kept as they are", folder, why)
        stored = store.file_states(top)
        self._store_up()
        records = [unreadable_update(f, why) for f, why in result.unreadable.items() if f not in stored]
        if records:  # `ednaquery errors` lists them; the warning above is in the log only
            self._apply(store, records)
        changed = gone = 0
        for path, st in result.files.items():
            if stored.get(path) != st:
                self.queue.add(path, CONVERT, now=True)
                changed += 1
        for path in stored:
            if path in result.files or result.hides(path) or rel_parts(top, path) is None:
                continue
            self.queue.add(path, GONE, now=True)
            gone += 1
        return changed, gone, len(result.files)

    # -- stopping -----------------------------------------------------------------------
    def _drain(self) -> None:
        """After stop(): convert and write everything still queued, ready or not."""
        end = time.monotonic() + self.drain_timeout
        while not self._abort.is_set():
            try:
                if self.store is None and not self._open_store():
                    raise StoreUnavailable("cannot open the store")
                if self._held or self._held_rescans:
                    self._write_held()
                self._busy = True
                try:
                    batch = self.queue.get_ready(self.batch_size, force=True)
                    if batch:
                        self._process(batch)
                finally:
                    self._busy = False
                if not batch:
                    break
            except StoreUnavailable as exc:
                self._store_down(exc)
                if time.monotonic() >= end:
                    break
                self._abort.wait(min(1.0, max(0.0, end - time.monotonic())))
        left = self.pending()
        if left:
            log.warning("stopping with %d changes not written (store %s); the next start's walk will index them",
                        left, self.store_state)

    # -- the process --------------------------------------------------------------------
    def serve(self, *, status_path: str | os.PathLike[str] | None = None, status_every: float = 2.0,
              install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT: watch, index, write the status file; drain and return 0."""
        from indexer.lifecycle import remove_quietly, write_status

        # A signal handler runs in the main thread between any two bytecodes, possibly while that thread
        # holds a lock (the queue's, inside status()): so it only writes the signal number to a pipe, and
        # this loop does the logging and the locking. A second SIGTERM/SIGINT aborts the drain from a
        # thread of its own (the main thread is then inside stop(), joining the worker).
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        hits = [0]

        def on_signal(signum: int, _frame: object) -> None:
            if signum != signal.SIGHUP:
                hits[0] += 1
                if hits[0] > 1:
                    threading.Thread(target=self.abort, name="ednaquery-abort", daemon=True).start()
                    return
            try:
                os.write(wake_w, bytes([signum]))
            except OSError:  # pipe full: a wake-up is already pending
                pass

        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, on_signal)
        self.start()
        log.info("indexer started (pid %d): %d root%s", os.getpid(), len(self.roots),
                 "" if len(self.roots) == 1 else "s")
        try:
            if status_path:
                write_status(status_path, self.status())
            stopping = False
            while not stopping:
                ready, _, _ = select.select([wake_r], [], [], status_every)
                for signum in (os.read(wake_r, 64) if ready else b""):
                    if signum == signal.SIGHUP:
                        log.info("SIGHUP received: walking the roots")
                        self.request_reconcile()
                    elif not stopping:
                        stopping = True
                        log.info("%s received: finishing %d pending changes, then exiting (again to skip that)",
                                 signal.Signals(signum).name, self.pending())
                if self._worker is not None and not self._worker.is_alive():
                    break
                if status_path and not stopping:
                    write_status(status_path, self.status())
        finally:
            if status_path:
                write_status(status_path, self.status())
            self.stop()
            os.close(wake_r)
            os.close(wake_w)
            if status_path:
                remove_quietly(status_path)
        log.info("indexer stopped: %d files indexed, %d errors, %d deleted", self.files_indexed, self.errors,
                 self.deleted)
        return 0


__all__ = ["FileState", "Indexer", "canonical_root"]
