"""The daemon's process bookkeeping: state dir, pidfile lock, status file, start/stop.

Each set of roots has its own files in the state dir (``$EDNAQUERY_STATE_DIR`` or
``~/.local/share/ednaquery/daemon/``), named by a hash of the roots:
``<key>.pid`` (pid on the first line, the roots below), ``<key>.status.json`` (rewritten
atomically every ~2 s) and ``<key>.log``.

"Running" means *holding an flock on the pidfile*, not "a process with that pid exists":
the kernel drops the lock when the process dies however it dies (SIGKILL included), so a
pidfile left behind is recognised as stale even if its pid was reused, and cleaned up.
A second start on the same roots cannot get the lock and is refused with the running
pid; a start whose roots overlap a running daemon's roots is refused too.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ednaquery.errors import EdnaError, UsageError
from ednaquery.fsutil import write_json_atomic
from ednaquery.settings import user_data_dir

log = logging.getLogger("indexer")

#: at start, a log file past this size is moved to ``<name>.log.1`` (one old log is kept)
LOG_ROTATE_BYTES = 10 * 1024 * 1024


class AlreadyRunning(EdnaError):
    """An indexer already runs on these roots (or overlapping ones)."""

    def __init__(self, pid: int | None, roots: Sequence[str]) -> None:
        who = f"pid {pid}" if pid else "starting"
        super().__init__(f"an indexer is already running on {', '.join(roots)} ({who}); "
                         f"stop it first with `ednaquery daemon stop`")
        self.pid = pid
        self.roots = list(roots)


def state_dir() -> Path:
    """Where pidfiles, status files and logs live."""
    env = os.environ.get("EDNAQUERY_STATE_DIR")
    if env:
        return Path(env).expanduser()
    return user_data_dir() / "daemon"


def write_status(path: str | os.PathLike[str], status: dict[str, Any]) -> None:
    """Replace the daemon's status file atomically: private (it names the store), not fsynced
    (it is rewritten every few seconds and means nothing after a crash)."""
    write_json_atomic(path, status, indent=1, default=str, mode=0o600, fsync=False)


def remove_quietly(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def roots_key(roots: Sequence[str]) -> str:
    """A short stable name for a set of (canonical) roots."""
    return hashlib.sha256("\0".join(sorted(set(roots))).encode()).hexdigest()[:12]


def overlaps(a: str, b: str) -> bool:
    """True if one root is the other or lies inside it."""
    a, b = a.rstrip(os.sep) or os.sep, b.rstrip(os.sep) or os.sep
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep) or b.startswith(a.rstrip(os.sep) + os.sep)


@dataclass
class DaemonFiles:
    """The files of the daemon for one set of roots."""

    folder: Path
    roots: list[str]
    key: str = ""

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.key = self.key or roots_key(self.roots)

    @property
    def pidfile(self) -> Path:
        return self.folder / f"{self.key}.pid"

    @property
    def status(self) -> Path:
        return self.folder / f"{self.key}.status.json"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"


def _read_pidfile(path: Path) -> tuple[int | None, list[str]]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None, []
    try:
        pid = int(lines[0]) if lines else None
    except ValueError:
        pid = None
    return pid, [ln for ln in lines[1:] if ln]


def _lock_holder(path: Path) -> tuple[bool, int | None, list[str]]:
    """(running, pid, roots) for a pidfile: running if some process holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False, None, []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            running = False
        except BlockingIOError:
            running = True
        pid, roots = _read_pidfile(path)
        return running, pid, roots
    finally:
        os.close(fd)


#: how long a start waits for a pidfile lock that someone holds: a status check or a stale-pidfile
#: cleanup holds it for a moment, a running indexer for good
LOCK_PATIENCE_S = 1.0


def _lock_exclusive(fd: int) -> bool:
    """Take the exclusive lock on ``fd``; False if it stays held for :data:`LOCK_PATIENCE_S`."""
    deadline = time.monotonic() + LOCK_PATIENCE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _remove_if_stale(path: Path) -> bool:
    """Remove a pidfile nobody holds (under our own lock, so a starting daemon notices)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.unlink(path)
                return True
        return False
    finally:
        os.close(fd)


class PidFile:
    """The lock that makes one daemon per set of roots; held for the process's lifetime."""

    def __init__(self, files: DaemonFiles) -> None:
        self.files = files
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunning`; clean up a stale pidfile."""
        files = self.files
        try:
            files.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdnaError(f"cannot create the state folder {files.folder}: {exc.strerror}; "
                            f"set EDNAQUERY_STATE_DIR to a writable folder") from exc
        check_overlap(files)
        for _ in range(10):
            fd = os.open(files.pidfile, os.O_RDWR | os.O_CREAT, 0o644)
            if not _lock_exclusive(fd):
                os.close(fd)
                pid, _ = _read_pidfile(files.pidfile)
                raise AlreadyRunning(pid, files.roots) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(files.pidfile).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # someone removed it between our open and lock: take a fresh one
                os.close(fd)
                continue
            old_pid, _ = _read_pidfile(files.pidfile)
            if old_pid and old_pid != os.getpid():
                log.info("removed a stale pidfile of pid %d (it was not running)", old_pid)
            os.ftruncate(fd, 0)
            os.write(fd, ("\n".join([str(os.getpid()), *files.roots]) + "\n").encode())
            os.fsync(fd)
            self.fd = fd
            return
        raise EdnaError(f"cannot lock {files.pidfile}; try again")

    def release(self) -> None:
        """Remove the pidfile and drop the lock."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if os.fstat(self.fd).st_ino == os.stat(self.files.pidfile).st_ino:
                os.unlink(self.files.pidfile)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class DaemonInfo:
    """One daemon found in the state dir."""

    files: DaemonFiles
    pid: int | None
    running: bool
    status: dict[str, Any] | None = field(default=None)


def list_daemons(folder: Path | None = None, *, clean: bool = True) -> list[DaemonInfo]:
    """Every daemon with a pidfile in the state dir; stale ones are removed (``clean``)."""
    folder = Path(folder) if folder else state_dir()
    out: list[DaemonInfo] = []
    if not folder.is_dir():
        return out
    for pidfile in sorted(folder.glob("*.pid")):
        running, pid, roots = _lock_holder(pidfile)
        files = DaemonFiles(folder, roots, key=pidfile.stem)
        if not running:
            if clean and _remove_if_stale(pidfile):
                remove_quietly(files.status)
                log.info("removed a stale pidfile of pid %s (it was not running)", pid)
            out.append(DaemonInfo(files, pid, False))
            continue
        status = None
        with contextlib.suppress(OSError, ValueError):
            status = json.loads(files.status.read_text())
        out.append(DaemonInfo(files, pid, True, status))
    return out


def check_overlap(files: DaemonFiles) -> None:
    """Refuse roots that overlap those of another running daemon."""
    for info in list_daemons(files.folder, clean=False):
        if not info.running or info.files.key == files.key:
            continue
        shared = [r for r in files.roots if any(overlaps(r, o) for o in info.files.roots)]
        if shared:
            raise AlreadyRunning(info.pid, shared)


def start_background(roots: Sequence[str], args: Sequence[str], *, folder: Path | None = None,
                     timeout: float = 20.0, program: Sequence[str] | None = None,
                     env: Mapping[str, str] | None = None) -> DaemonInfo:
    """Start ``python -m indexer run ARGS ROOTS`` detached; return once its pidfile is there.

    ``program`` replaces ``[python, -m, indexer]`` (another interpreter, a wrapper script). ``env`` is
    added to the child's environment: the way to hand it a secret (a store URI with a password), which
    in ARGS would be readable by every local user in ``/proc/PID/cmdline``.
    """
    folder = Path(folder) if folder else state_dir()
    files = DaemonFiles(folder, list(roots))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdnaError(f"cannot create the state folder {folder}: {exc.strerror}; "
                        f"set EDNAQUERY_STATE_DIR to a writable folder") from exc
    running, pid, _ = _lock_holder(files.pidfile)
    if running:
        raise AlreadyRunning(pid, files.roots)
    check_overlap(files)
    prog = list(program) if program else [sys.executable, "-m", "indexer"]
    cmd = [*prog, "run", "--state-dir", str(folder), *args, "--", *roots]
    with contextlib.suppress(OSError):
        if files.log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(files.log, files.log.with_name(files.log.name + ".1"))
    with open(files.log, "ab") as logf:
        offset = logf.tell()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                env={**os.environ, **env} if env else None)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        running, pid, _ = _lock_holder(files.pidfile)
        if running and pid == proc.pid:
            return DaemonInfo(files, pid, True)
        if proc.poll() is not None:
            raise EdnaError(f"the indexer did not start: {_log_tail(files.log, offset)} (log: {files.log})")
        time.sleep(0.05)
    raise EdnaError(f"the indexer (pid {proc.pid}) did not start within {timeout:g} s; see {files.log}")


def _log_tail(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "it exited without output"


def select_daemons(folder: Path | None, roots: Sequence[str], all_: bool = False) -> list[DaemonInfo]:
    """The running daemons a stop/status command means: these roots, all, or the only one."""
    running = [d for d in list_daemons(folder) if d.running]
    if roots:
        key = roots_key(roots)
        chosen = [d for d in running if d.files.key == key
                  or any(overlaps(r, o) for r in roots for o in d.files.roots)]
        if not chosen:
            raise EdnaError(f"no indexer is running on {', '.join(roots)}")
        return chosen
    if all_ or len(running) <= 1:
        return running
    listing = "; ".join(f"pid {d.pid}: {', '.join(d.files.roots)}" for d in running)
    raise UsageError(f"{len(running)} indexers are running ({listing}); name the roots or use --all")


def stop_daemon(info: DaemonInfo, timeout: float = 60.0) -> None:
    """Send SIGTERM and wait until the daemon has drained and released its pidfile."""
    if info.pid is None:
        raise EdnaError(f"cannot read the pid in {info.files.pidfile}")
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise EdnaError(f"not allowed to stop pid {info.pid} (another user's process?)") from exc
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        running, pid, _ = _lock_holder(info.files.pidfile)
        if not running or pid != info.pid:
            return
        time.sleep(0.05)
    raise EdnaError(f"the indexer (pid {info.pid}) did not stop within {timeout:g} s; it may still be "
                    f"writing; `kill -9 {info.pid}` forces it (the next start catches up)")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True
