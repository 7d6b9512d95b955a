"""AddQueue: what the indexer still has to look at, coalesced per path and debounced.

Watchdog reports every write, rename and delete; an editor's save-by-rename or a
trainer appending to ``metrics.jsonl`` produces dozens of events for one file. The queue
keeps one entry per path, holding *what to do* (convert it, it is gone, or rescan a folder)
and *when it is ready*: a path is ready once no event arrived for it for the quiet period,
so a file being written is converted once, after its last write.

Memory is one ordered-dict entry per pending path: the path string, a float deadline and a
small int. Entries stay in deadline order for free, since every event's deadline is
``now + quiet`` (appended at the end) and work the reconcile walk finds is ready at once
(inserted at the front); taking ready work only ever looks at the front. Past
``max_pending`` paths new paths are dropped and :attr:`overflowed` is set, so the daemon
can run a reconcile walk instead of growing without bound.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: (re)convert this path: it was created, written, or is the destination of a move
CONVERT = 1
#: this path is gone: deleted, or the source of a move
GONE = 2
#: a folder appeared, vanished or moved: compare everything below it with the store
RESCAN = 3
#: re-convert because a file this one depends on changed (its own dependants are not
#: followed again, so a cycle of ``_BASE_`` files cannot loop forever)
DEPENDANT = 4

#: how ``daemon status`` names each kind of work in "last event"
OP_NAMES = {CONVERT: "changed", GONE: "deleted", RESCAN: "folder changed", DEPENDANT: "base changed"}


def _merge(old: int, new: int) -> int:
    """A later event wins, except that a folder rescan is never downgraded and a
    dependant re-conversion never replaces work an event asked for."""
    if RESCAN in (old, new):
        return RESCAN
    return old if new == DEPENDANT else new


class AddQueue:
    """Thread-safe, per-path coalescing, debounced work queue.

    ``clock`` gives the time in seconds that deadlines are measured in (``time.monotonic``;
    tests pass a fake one to step through a quiet period without waiting for it).
    """

    def __init__(self, quiet: float = 0.3, max_pending: int = 1_000_000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if quiet < 0:
            raise ValueError("quiet period must be >= 0")
        self.quiet = float(quiet)
        self.max_pending = int(max_pending)
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._cond = threading.Condition(threading.Lock())
        self._overflowed = False
        self._closed = False
        self._wakes = 0

    # -- adding -----------------------------------------------------------------------
    def add(self, path: str, op: int = CONVERT, *, now: bool = False) -> bool:
        """Queue ``op`` for ``path``.

        An event (``now=False``) makes the path ready ``quiet`` seconds from now, pushing
        back any pending deadline. Work found by a walk (``now=True``) is ready at once,
        unless the path is already waiting for events to settle, whose deadline it keeps.
        Returns False if the path was dropped because the queue is full.
        """
        with self._cond:
            items = self._items
            old = items.get(path)
            if old is None and len(items) >= self.max_pending:
                self._overflowed = True
                return False
            t = self._clock()
            if now:
                if old is not None:
                    items[path] = (old[0], _merge(old[1], op))
                    return True
                items[path] = (t, op)
                items.move_to_end(path, last=False)
                self._cond.notify_all()
                return True
            was_empty = not items
            if old is not None:
                op = _merge(old[1], op)
                del items[path]
            items[path] = (t + self.quiet, op)
            if was_empty:
                self._cond.notify_all()
            return True

    def moved(self, src: str, dest: str) -> None:
        """A file moved: the source is gone, the destination is (re)converted."""
        self.add(src, GONE)
        self.add(dest, CONVERT)

    def requeue(self, items: list[tuple[str, int]]) -> None:
        """Put back work that could not be finished, ready at once; newer pending work for a path wins."""
        with self._cond:
            t = self._clock()
            for path, op in reversed(items):
                if path not in self._items:
                    self._items[path] = (t, op)
                    self._items.move_to_end(path, last=False)
            self._cond.notify_all()

    # -- taking -----------------------------------------------------------------------
    def get_ready(self, max_items: int = 256, *, force: bool = False) -> list[tuple[str, int]]:
        """Take up to ``max_items`` ready paths, oldest first (``force``: ready or not)."""
        out: list[tuple[str, int]] = []
        with self._cond:
            items = self._items
            t = self._clock()
            while items and len(out) < max_items:
                path = next(iter(items))
                deadline, op = items[path]
                if deadline > t and not force:
                    break
                del items[path]
                out.append((path, op))
        return out

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until some path is ready (True), or ``timeout`` passes, :meth:`wake` is called
        or the queue closes (False)."""
        end = None if timeout is None else self._clock() + timeout
        with self._cond:
            wakes = self._wakes
            while not self._closed and self._wakes == wakes:
                t = self._clock()
                wait = None if end is None else end - t
                if self._items:
                    first = self._items[next(iter(self._items))][0]
                    if first <= t:
                        return True
                    wait = first - t if wait is None else min(wait, first - t)
                if wait is not None and wait <= 0:
                    return False
                self._cond.wait(wait)
            return False

    # -- state ------------------------------------------------------------------------
    def pending(self) -> int:
        """How many paths wait (ready or not)."""
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, path: object) -> bool:
        return path in self._items

    @property
    def overflowed(self) -> bool:
        """True if paths were dropped because the queue was full (a reconcile walk will find them)."""
        return self._overflowed

    def take_overflow(self) -> bool:
        """Return and clear the overflow flag."""
        with self._cond:
            flag, self._overflowed = self._overflowed, False
            return flag

    def close(self) -> None:
        """Wake every waiter; :meth:`wait_ready` returns False from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake waiters without closing (e.g. to make a worker look at a new request)."""
        with self._cond:
            self._wakes += 1
            self._cond.notify_all()
