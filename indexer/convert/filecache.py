"""A small cache of loaded base/default files, keyed by their stat (path, size, mtime, inode).

Many configs inherit from the same few files (every detectron2 config from a
``Base-*.yaml``, every Hydra primary config from the same groups), so a scan would
otherwise parse each base once per dependant. An entry is used only while the file's
stat is unchanged, so an edited base is always re-read. Callers get their own copy of
the documents; the cache is thread-safe and bounded.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

from ednaquery.loaders import DEFAULT_MAX_BYTES, LoadResult, load_file
from indexer.convert.merge import copy_tree

MAX_ENTRIES = 512

_lock = threading.Lock()
_entries: OrderedDict[tuple, LoadResult] = OrderedDict()


def load_cached(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadResult:
    """Like :func:`ednaquery.loaders.load_file`, from the cache when the file is unchanged.

    Raises :class:`ednaquery.errors.LoadError` (a missing file included).
    """
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns, st.st_ino, max_bytes)
    except OSError:
        key = None
    if key is not None:
        with _lock:
            hit = _entries.get(key)
            if hit is not None:
                _entries.move_to_end(key)
    else:
        hit = None
    if hit is None:
        hit = load_file(path, max_bytes=max_bytes)
        if key is not None:
            with _lock:
                _entries[key] = hit
                while len(_entries) > MAX_ENTRIES:
                    _entries.popitem(last=False)
    return LoadResult(documents=copy_tree(hit.documents), warnings=list(hit.warnings), format=hit.format,
                      directives=dict(hit.directives), size=hit.size, mtime=hit.mtime)


def clear() -> None:
    """Forget every cached file (tests)."""
    with _lock:
        _entries.clear()
