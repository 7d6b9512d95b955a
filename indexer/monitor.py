"""Monitor: one watchdog observer per root, feeding file events into the AddQueue.

Each root gets its own observer (inotify on Linux, or polling with ``poll=True`` for NFS
and other filesystems without inotify), so one root's trouble never stops the others:

- inotify watches or instances run out (``ENOSPC``/``EMFILE``): one log line, and that
  root falls back to polling;
- a root that does not exist yet, is deleted, cannot be read, is a symlink loop or not a
  folder: one log line per change of state, and a background check retries every
  ``retry_interval`` seconds; once the root is there it is watched and rescanned;
- a root on a read-only mount is watched as usual, with one line saying so.

Events become queue work: a file created/modified/closed-after-write -> convert, deleted
-> gone, moved -> gone(src) + convert(dest); a folder created/deleted/moved -> rescan of
that folder (its files compared with the store), which covers files written before the
new folder's watch existed and folders moved out of the tree.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from indexer.patterns import DEFAULT_EXCLUDE, DEFAULT_INCLUDE, PathFilter, rel_parts
from indexer.queue import CONVERT, GONE, OP_NAMES, RESCAN, AddQueue

__all__ = ["DEFAULT_EXCLUDE", "DEFAULT_INCLUDE", "Monitor", "RootWatch"]

log = logging.getLogger("indexer.monitor")

#: the events we act on (also narrows the inotify mask: no open/close-nowrite noise
#: from our own reads)
EVENT_TYPES = [
    FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]
_LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)


class RootWatch:
    """What the monitor knows about one root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.state = "starting"  # watching | missing | unreadable | error
        self.mode = ""  # inotify | polling
        self.reason = ""
        self.observer: BaseObserver | None = None
        self.ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder watched
        self.deleted = False  # set from the event thread when the root itself is deleted
        self.force_poll = False

    def describe(self) -> str:
        if self.state == "watching":
            return f"watching ({self.mode})"
        return f"{self.state}: {self.reason}" if self.reason else self.state


class _Handler:
    """Turns watchdog events under one root into queue work (runs on the observer thread)."""

    def __init__(self, monitor: Monitor, watch: RootWatch) -> None:
        self.monitor = monitor
        self.watch = watch

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._dispatch(event)
        except Exception:  # never let one odd event kill the observer thread
            log.exception("error handling %r", event)

    def _dispatch(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        if isinstance(event, (FileMovedEvent, DirMovedEvent)):
            dest = os.fsdecode(event.dest_path)
            if event.is_directory:
                self._dir(src)
                self._dir(dest)
            else:
                self._file(src, GONE)
                self._file(dest, CONVERT)
        elif isinstance(event, DirDeletedEvent):
            if src == self.watch.root:
                self.watch.deleted = True
                self.monitor.queue.add(src, RESCAN, now=True)
                self.monitor.poke()
            else:
                self._dir(src)
        elif isinstance(event, DirCreatedEvent):
            self._dir(src)
        elif isinstance(event, FileDeletedEvent):
            self._file(src, GONE)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileAttribEvent)):
            self._file(src, CONVERT)

    def _file(self, path: str, op: int) -> None:
        if not path:
            return
        parts = rel_parts(self.watch.root, path)
        if parts and self.monitor.filter.wants_file(parts):
            self.monitor.record(path, op)

    def _dir(self, path: str) -> None:
        if not path:
            return
        parts = rel_parts(self.watch.root, path)
        if parts is not None and self.monitor.filter.wants_dir(parts):
            self.monitor.record(path, RESCAN)


class Monitor:
    """Watches roots and feeds an :class:`AddQueue`; survives trouble with any one root."""

    def __init__(self, roots: Sequence[str], queue: AddQueue, pfilter: PathFilter | None = None, *,
                 poll: bool = False, poll_interval: float = 2.0, retry_interval: float = 5.0,
                 observer_factory: Callable[[], BaseObserver] | None = None) -> None:
        self.queue = queue
        self.filter = pfilter or PathFilter()
        self.poll = poll
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self._observer_factory = observer_factory or Observer
        self.watches: dict[str, RootWatch] = {r: RootWatch(r) for r in roots}
        self.events = 0
        self.last_event: tuple[str, str, float] | None = None  # (path, what, unix time)
        self.check_rounds = 0  # times the root checker has looked at every root
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- events -----------------------------------------------------------------------
    def record(self, path: str, op: int) -> None:
        """Queue work for a path an event named (called from observer threads)."""
        self.queue.add(path, op)
        self.events += 1
        self.last_event = (path, OP_NAMES[op], time.time())

    def poke(self) -> None:
        """Ask the root checker to look at the roots now."""
        self._poke.set()

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start watching every root that can be watched; retry the others in the background."""
        for w in self.watches.values():
            self._start_root(w, first=True)
        self._thread = threading.Thread(target=self._check_loop, name="ednaquery-roots", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop every observer (no more events) and the root checker."""
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for w in self.watches.values():
                self._stop_observer(w)

    def states(self) -> dict[str, str]:
        """Each root and what the monitor is doing with it, e.g. ``watching (inotify)``."""
        return {r: w.describe() for r, w in self.watches.items()}

    # -- per root ---------------------------------------------------------------------
    def _set_state(self, w: RootWatch, state: str, reason: str = "", mode: str = "",
                   level: int = logging.WARNING, message: str = "") -> None:
        """Change a root's state, logging one line only when the state or reason changes."""
        if (w.state, w.reason, w.mode) == (state, reason, mode):
            return
        w.state, w.reason, w.mode = state, reason, mode
        if message:
            log.log(level, message)

    def _check_root(self, w: RootWatch) -> os.stat_result | None:
        root = w.root
        try:
            st = os.stat(root)
        except FileNotFoundError:
            self._set_state(w, "missing", "does not exist", message=(
                f"root {root} does not exist (yet); it will be watched once it is created "
                f"(checking every {self.retry_interval:g} s)"))
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._set_state(w, "error", "symlink loop", message=(
                    f"root {root} is a symlink loop; fix the link (other roots are not affected)"))
            elif exc.errno in (errno.EACCES, errno.EPERM):
                self._set_state(w, "unreadable", "permission denied", message=(
                    f"cannot access root {root}: permission denied; give this user access "
                    f"(retrying every {self.retry_interval:g} s)"))
            else:
                self._set_state(w, "error", exc.strerror or str(exc), message=(
                    f"cannot access root {root}: {exc.strerror or exc} (retrying every {self.retry_interval:g} s)"))
            return None
        if not os.path.isdir(root):
            self._set_state(w, "error", "not a folder", message=(
                f"root {root} is not a folder; give a folder to watch (other roots are not affected)"))
            return None
        try:
            with os.scandir(root):
                pass
        except OSError as exc:
            self._set_state(w, "unreadable", exc.strerror or str(exc), message=(
                f"cannot read root {root}: {exc.strerror or exc}; give this user read access "
                f"(retrying every {self.retry_interval:g} s)"))
            return None
        return st

    def _start_root(self, w: RootWatch, *, first: bool = False) -> None:
        st = self._check_root(w)
        if st is None:
            return
        was_down = not first
        observer, mode = self._make_observer(w)
        if observer is None:
            return
        w.observer = observer
        w.ident = (st.st_dev, st.st_ino)
        w.deleted = False
        readonly = _is_read_only(w.root)
        note = " (read-only mount: nothing there is expected to change)" if readonly else ""
        if not note and (w.force_poll or (first and mode == "inotify")):
            # the usual case, or a fallback to polling that was already announced
            w.state, w.mode, w.reason = "watching", mode, ""
            log.debug("watching %s (%s)", w.root, mode)
        else:
            self._set_state(w, "watching", "", mode, level=logging.INFO,
                            message=f"watching root {w.root} ({mode}){note}")
        if was_down:
            # it appeared (again): compare everything below it with the store
            self.queue.add(w.root, RESCAN, now=True)

    def _make_observer(self, w: RootWatch) -> tuple[BaseObserver | None, str]:
        if not (self.poll or w.force_poll):
            observer = None
            try:
                observer = self._observer_factory()
                observer.schedule(_Handler(self, w), w.root, recursive=True, event_filter=EVENT_TYPES)
                observer.start()
                return observer, "inotify"
            except OSError as exc:
                _stop_quietly(observer)
                if exc.errno in _LIMIT_ERRNOS:
                    w.force_poll = True
                    what = "watches" if exc.errno == errno.ENOSPC else "instances"
                    log.warning(
                        "inotify %s ran out while watching %s; polling it every %g s instead "
                        "(raise fs.inotify.max_user_%s with sysctl to avoid this)",
                        what, w.root, self.poll_interval, "watches" if what == "watches" else "instances")
                else:
                    self._set_state(w, "error", exc.strerror or str(exc), message=(
                        f"cannot watch root {w.root}: {exc.strerror or exc} "
                        f"(retrying every {self.retry_interval:g} s)"))
                    return None, ""
        observer = None
        try:
            observer = PollingObserverVFS(os.lstat, self._listdir_for(w.root), polling_interval=self.poll_interval)
            observer.schedule(_Handler(self, w), w.root, recursive=True, event_filter=EVENT_TYPES)
            observer.start()
            return observer, "polling"
        except OSError as exc:
            _stop_quietly(observer)
            self._set_state(w, "error", exc.strerror or str(exc), message=(
                f"cannot poll root {w.root}: {exc.strerror or exc} (retrying every {self.retry_interval:g} s)"))
            return None, ""

    def _listdir_for(self, root: str) -> Callable[[str | None], Iterator[os.DirEntry[Any]]]:
        """A scandir for the polling snapshot that skips excluded folders and unwanted files."""
        pfilter = self.filter

        def listdir(path: str | None) -> Iterator[os.DirEntry[Any]]:
            with os.scandir(path) as it:
                entries = list(it)
            for e in entries:
                parts = rel_parts(root, e.path)
                if parts is None:
                    continue
                try:
                    if e.is_dir(follow_symlinks=False):
                        if not pfilter.prunes_dir(parts):
                            yield e
                    elif pfilter.wants_file_in_walk(parts):
                        yield e
                except OSError:
                    continue

        return listdir

    def _stop_observer(self, w: RootWatch) -> None:
        if w.observer is not None:
            _stop_quietly(w.observer)
            w.observer = None

    # -- inotify watches that silently ran out ------------------------------------------
    def check_watches(self, root: str, folders: int) -> None:
        """After a walk found ``folders`` folders under ``root``: if inotify watches fewer,
        the kernel's watch limit was hit part-way (watchdog skips sub-folders it cannot
        watch without saying so), so fall back to polling for that root, with one line."""
        w = self.watches.get(root)
        if w is None or w.state != "watching" or w.mode != "inotify" or w.observer is None:
            return
        watched = _inotify_watch_count(w.observer)
        if watched is None or watched >= folders:
            return
        folders = _count_folders(root)  # the tree may have shrunk since the walk: count again
        watched = _inotify_watch_count(w.observer)
        if watched is None or watched >= folders:
            return
        with self._lock:
            log.warning(
                "inotify watches ran out while watching %s (%d of %d folders watched); polling it every %g s "
                "instead (raise fs.inotify.max_user_watches with sysctl to avoid this)",
                root, watched, folders, self.poll_interval)
            self._stop_observer(w)
            w.force_poll = True
            w.state = "starting"
            self._start_root(w)

    # -- the root checker -------------------------------------------------------------
    def _check_loop(self) -> None:
        while not self._stop.is_set():
            self._poke.wait(self.retry_interval)
            self._poke.clear()
            if self._stop.is_set():
                break
            with self._lock:
                for w in self.watches.values():
                    try:
                        self._check_once(w)
                    except Exception:
                        log.exception("error checking root %s", w.root)
                self.check_rounds += 1

    def _check_once(self, w: RootWatch) -> None:
        if self._stop.is_set():
            return
        if w.state != "watching":
            self._start_root(w)
            return
        lost = w.deleted
        reason = "was deleted"
        try:
            st = os.stat(w.root)
            if (st.st_dev, st.st_ino) != w.ident:
                lost, reason = True, "was replaced"
        except OSError:
            lost = True
        if not lost and w.observer is not None and not w.observer.is_alive():
            lost, reason = True, "observer stopped"
        if not lost:
            return
        self._stop_observer(w)
        self.queue.add(w.root, RESCAN, now=True)  # compare its files with the store (gone, or new)
        if os.path.isdir(w.root):
            what = "stopped being watched" if reason == "observer stopped" else "was replaced"
            log.warning("root %s %s; watching it again (%s)", w.root, what, w.mode)
        else:
            self._set_state(w, "missing", "does not exist", message=(
                f"root {w.root} was deleted; its files are marked deleted, and it will be watched "
                f"again once it is created (checking every {self.retry_interval:g} s)"))
        self._start_root(w)


def _inotify_watch_count(observer: BaseObserver) -> int | None:
    """How many folders an inotify observer really watches (None: cannot tell)."""
    try:
        total = 0
        for emitter in list(observer.emitters):
            group = getattr(emitter, "_inotify", None)
            if group is None:
                return None
            total += len(group._active_callbacks_by_path)
    except Exception:  # noqa: BLE001 - watchdog internals changed: skip the check
        return None
    return total


def _count_folders(root: str) -> int:
    """Folders under root, itself included, as watchdog's recursive watch sees them."""
    return 1 + sum(len(dirs) for _, dirs, _ in os.walk(root, followlinks=False))


def _stop_quietly(observer: BaseObserver | None) -> None:
    if observer is None:
        return
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
    except Exception:  # a half-started observer may not stop cleanly; nothing to do about it
        log.debug("error stopping observer", exc_info=True)


def _is_read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
