"""Waiting on a condition (with a generous limit) instead of sleeping for a guessed time."""
from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_until"]


def wait_until(pred: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """True as soon as ``pred()`` is true; False if it is still false after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())
