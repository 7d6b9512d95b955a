"""Atomic file writes: a reader sees the old version of a file or the new one, never half of one.

The one home of the pattern (temp file in the same folder, flush, fsync, ``os.replace``)
for every writer in the project: the trainer's run folders and checkpoints, the indexer
daemon's status file, ``ednaquery init``. Readers (the indexer, ``trainer status``, the
daemon's ``status`` command) may look at any moment.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = ["atomic_file", "write_atomic", "write_json_atomic"]


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
