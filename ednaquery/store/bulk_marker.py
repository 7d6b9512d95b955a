"""Is the writer that left a ``bulk_load`` marker in a SQLite store still running?

A bulk load (:meth:`ednaquery.store.sqlite.SQLiteStore.bulk_load`) drops the leaf indexes and
leaves a ``host:pid:start`` marker; a process that opens the store reads it to decide whether
to leave the indexes to that writer or build them again itself.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["LOADING_HERE", "bulk_loader_alive", "bulk_marker", "start_time"]


def start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), or "" where unknown:
    with the pid it names one process, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def bulk_marker() -> str:
    """The ``bulk_load`` marker this process leaves in the store: ``host:pid:start``."""
    return f"{socket.gethostname()}:{os.getpid()}:{start_time(os.getpid())}"


#: the stores this process is bulk-loading right now (resolved paths)
LOADING_HERE: set[str] = set()


def bulk_loader_alive(marker: str, path: Path) -> bool:
    """True while the process that left this ``bulk_load`` marker (``host:pid:start``) still runs.

    That writer dropped the leaf indexes on purpose and builds them at its end, so a reader that
    opens the store meanwhile leaves them alone; a writer killed there leaves its marker behind,
    and the next open builds the indexes again.
    """
    host, pid, start = (marker.split(":") + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():  # this process (or one with its pid before a restart)
        return str(path.resolve()) in LOADING_HERE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or start_time(int(pid)) in ("", start)
