"""A clock that moves only when a test says so: deadlines, timeouts and staleness without sleeping."""
from __future__ import annotations

import threading
import time

__all__ = ["FakeClock", "HeldClock"]


class FakeClock:
    """Callable like ``time.time``/``time.monotonic``; its time changes only by :meth:`advance` or ``now =``."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    @property
    def now(self) -> float:
        """The time this clock shows."""
        return self()

    @now.setter
    def now(self, value: float) -> None:
        with self._lock:
            self._now = float(value)

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += seconds
            return self._now


class HeldClock:
    """Follows ``time.monotonic`` except while held: then it stands still, and resumes from where it stopped."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._held_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._held_at if self._held_at is not None else time.monotonic() - self._offset

    def hold(self) -> None:
        """Stop the clock (no deadline can pass until :meth:`release`)."""
        with self._lock:
            if self._held_at is None:
                self._held_at = time.monotonic() - self._offset

    def release(self) -> None:
        """Let the clock run again, from the time it was held at."""
        with self._lock:
            if self._held_at is not None:
                self._offset = time.monotonic() - self._held_at
                self._held_at = None
