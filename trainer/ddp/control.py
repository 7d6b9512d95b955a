"""The control folder of a DDP run: the files the launching process and the ranks talk through.

The launching process (:mod:`trainer.ddp.launch`) makes a private temporary folder and puts
the launch spec in it; each rank (:mod:`trainer.ddp.entry`) writes ``rank-R.pid`` (so a stop
request can be passed on to it) and, when it fails, ``rank-R.error`` (its one-line error, for
the run's ``error``). A ``stop`` file asks a rank that is not listening yet to stop as soon
as it starts.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ednaquery.fsutil import write_atomic

__all__ = ["STOP_FILE", "error_file", "pid_file", "rank_errors", "rank_pids", "request_stop",
           "stop_requested", "write_error", "write_pid"]

STOP_FILE = "stop"


def pid_file(control: Path, rank: int) -> Path:
    """Where rank ``rank`` writes its process id."""
    return Path(control) / f"rank-{rank}.pid"


def error_file(control: Path, rank: int) -> Path:
    """Where rank ``rank`` writes the one-line error it failed with."""
    return Path(control) / f"rank-{rank}.error"


def write_pid(control: Path, rank: int) -> None:
    """Say this process is rank ``rank``, so the launching process can signal it."""
    write_atomic(pid_file(control, rank), str(os.getpid()))


def write_error(control: Path, rank: int, message: str) -> None:
    """Leave rank ``rank``'s one-line error for the launching process; quiet if the folder is gone."""
    try:
        record = {"rank": rank, "time": time.time(), "message": message}
        write_atomic(error_file(control, rank), json.dumps(record))
    except OSError:  # the control folder is gone: the launcher has already given up on us
        pass


def request_stop(control: Path) -> None:
    """Ask every rank to stop, including one that is not listening for signals yet."""
    (Path(control) / STOP_FILE).touch()


def stop_requested(control: Path) -> bool:
    """True when a stop was requested before this rank was listening."""
    return (Path(control) / STOP_FILE).exists()


def rank_pids(control: Path) -> list[int]:
    """The process ids the ranks have written so far."""
    out = []
    for p in Path(control).glob("rank-*.pid"):
        with contextlib.suppress(OSError, ValueError):
            out.append(int(p.read_text()))
    return out


def rank_errors(control: Path) -> list[dict[str, Any]]:
    """The ranks' error files, first failure first."""
    out = []
    for p in Path(control).glob("rank-*.error"):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(p.read_text()))
    return sorted(out, key=lambda e: e.get("time", 0))
