"""Safe file access: atomic writes, and reads that never hang on a named pipe or a device.

Writes: a reader sees the old version of a file or the new one, never half of one.

The one home of the pattern (temp file in the same folder, flush, fsync, ``os.replace``)
for every writer in the project: the trainer's run folders and checkpoints, the indexer
daemon's status file, ``ednaquery init``. Readers (the indexer, ``trainer status``, the
daemon's ``status`` command) may look at any moment.

Reads: :func:`open_regular` is the one way a reader opens a file found in a watched tree; a
named pipe called ``mlflow.db`` or ``events.out.tfevents.1`` is refused instead of blocking
the indexer for good.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = ["NotRegularFile", "atomic_file", "check_regular", "head_has_marker", "open_regular",
           "special_file_kind", "write_atomic", "write_json_atomic"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, mode: int = 0o666, fsync: bool = True) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` whole when the ``with`` block ends without an error.

    ``mode`` is the new file's permission bits before the umask (``0o600``: private).
    ``fsync`` makes the content durable before the rename (skip it for throw-away status files).
    On an error the temp file is removed and ``path`` is untouched.
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # honours the umask, unlike mkstemp
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o666,
                 fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) atomically (:func:`atomic_file`)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path, mode=mode, fsync=fsync) as fh:
        fh.write(payload)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int = 2,
                      default: Callable[[Any], Any] | None = None, mode: int = 0o666, fsync: bool = True) -> None:
    """Replace ``path`` with ``obj`` as indented JSON plus a newline, atomically (:func:`atomic_file`).

    ``default`` converts values JSON has no type for (``str``: write them as text); without it
    such a value raises ``TypeError`` and ``path`` is left as it was.
    """
    write_atomic(path, json.dumps(obj, indent=indent, default=default) + "\n", mode=mode, fsync=fsync)


class NotRegularFile(OSError):
    """A path that is a named pipe, socket or device where a regular file was expected."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", os.fspath(path))
        self.kind = kind


def special_file_kind(mode: int) -> str | None:
    """What a path that is neither a regular file nor a folder is (``a named pipe``), else None."""
    for test, what in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return None


def check_regular(path: str | os.PathLike[str], mode: int) -> None:
    """Raise :class:`NotRegularFile` (or ``IsADirectoryError``) unless ``mode`` is a regular file's."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", os.fspath(path))
    raise NotRegularFile(path, special_file_kind(mode) or "an unknown kind of file")


def open_regular(path: str | os.PathLike[str], mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open a regular file for reading, as ``open(path, mode, **kwargs)`` would; refuse anything else.

    A named pipe, socket or device raises :class:`NotRegularFile` (an ``OSError``) without being
    opened: opening a FIFO blocks until a writer comes, opening a device can act (a tape
    rewinds). The open itself is non-blocking in case the path is swapped for one in between;
    the returned file blocks as usual.
    """
    if any(c in mode for c in "wax+"):
        raise ValueError(f"open_regular is for reading; mode {mode!r}")
    check_regular(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        check_regular(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, mode, **kwargs)  # owns fd from here, closing it on its own failure


def head_has_marker(path: str | os.PathLike[str], marker: str, *, size: int = 4096) -> bool:
    """True if the regular file ``path`` holds the JSON string ``"marker"`` in its first ``size`` bytes.

    The cheap test of a format marker (``run.json``'s, ``group.json``'s) before a file is parsed;
    False for what cannot be read or is not a regular file.
    """
    try:
        with open_regular(path) as fh:
            head = fh.read(size)
    except OSError:
        return False
    return b'"' + marker.encode() + b'"' in head
