"""Helpers for the indexer daemon tests: an in-memory store, a stand-in converter, test trees.

``FakeStore`` implements the parts of the Store interface the daemon uses (apply,
file_states, dependants, ping, close) and can be switched "down" to raise
StoreUnavailable, like a MongoDB that went away. ``standin_convert`` is a tiny converter
(YAML/JSON -> one config document via the real ``ednaquery.documents`` functions, an
error record for what does not parse), used where the real converter is not needed.
``sqlite_indexer`` starts the real daemon over a SQLite store; ``resnet_kinds`` reads what it made of the
run-folder tests' resnet18 files.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from ednaquery.documents import make_config_document, make_error_document
from ednaquery.errors import StoreUnavailable
from ednaquery.query import compile_query
from ednaquery.store import FindOptions
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.sqlite import SQLiteStore
from indexer.daemon import Indexer

__all__ = ["FakeStore", "disk_states", "resnet_kinds", "sqlite_indexer", "standin_convert"]


def standin_convert(path: Path, *, max_bytes: int) -> list[dict]:
    """One config document for a YAML/JSON file, or an error record (the real converter is not needed)."""
    p = str(path)
    fmt = path.suffix.lstrip(".") or "file"
    try:
        st = os.stat(p)
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return [make_error_document(p, "the file vanished before it could be read", format=fmt)]
    except OSError as exc:
        return [make_error_document(p, f"cannot read: {exc.strerror}", format=fmt)]
    if len(data) > max_bytes:
        return [make_error_document(p, "file too large", format=fmt, size=st.st_size)]
    try:
        text = data.decode()
        cfg = json.loads(text) if fmt == "json" else yaml.load(text, Loader=yaml.CSafeLoader)
    except (ValueError, yaml.YAMLError) as exc:
        return [make_error_document(p, f"cannot parse: {str(exc).splitlines()[0]}", format=fmt,
                                    size=st.st_size, mtime=st.st_mtime)]
    if cfg is None:
        return []
    if not isinstance(cfg, dict):
        cfg = {"value": cfg}
    deps = [os.path.join(os.path.dirname(p), cfg["_BASE_"])] if isinstance(cfg.get("_BASE_"), str) else []
    return [make_config_document(cfg, path=p, format=fmt, size=st.st_size, mtime=st.st_mtime, depends_on=deps)]


class FakeStore:
    """In-memory store with a switch that makes every call raise StoreUnavailable."""

    display_uri = "fake://memory"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.docs: dict[str, list[dict]] = {}
        self.states: dict[str, FileState] = {}
        self.deleted: set[str] = set()
        self.history: dict[str, list[dict]] = {}  # path -> every config written for it
        self.batches: list[int] = []
        self.down = False
        self.closed = 0
        self.opened = 0
        self.failed_calls = 0

    # the factory the Indexer calls (on its worker thread)
    def factory(self) -> FakeStore:
        if self.down:
            self.failed_calls += 1
            raise StoreUnavailable("fake store is down")
        self.opened += 1
        return self

    def _check(self) -> None:
        if self.down:
            self.failed_calls += 1
            raise StoreUnavailable("fake store is down")

    def apply(self, updates: list[PathUpdate]) -> None:
        self._check()
        updates = list(updates)
        with self.lock:
            self.batches.append(len(updates))
            for u in updates:
                if u.state is None and not u.docs:
                    if u.path in self.docs:
                        self.deleted.add(u.path)
                    self.docs.pop(u.path, None)
                    self.states.pop(u.path, None)
                    continue
                self.docs[u.path] = list(u.docs)
                self.deleted.discard(u.path)
                if u.state is None:
                    self.states.pop(u.path, None)
                else:
                    self.states[u.path] = u.state
                for d in u.docs:
                    self.history.setdefault(u.path, []).append(d)

    def file_states(self, root: str | None = None) -> dict[str, FileState]:
        self._check()
        prefix = (root.rstrip(os.sep) + os.sep) if root else ""
        with self.lock:
            return {p: s for p, s in self.states.items() if p.startswith(prefix)}

    def dependants(self, paths: list[str]) -> list[str]:
        self._check()
        want = set(paths)
        with self.lock:
            return sorted(p for p, docs in self.docs.items()
                          if any(want & set(d.get("depends_on") or ()) for d in docs))

    def ping(self) -> None:
        self._check()

    def close(self) -> None:
        self.closed += 1

    # -- test helpers ------------------------------------------------------------------
    def config(self, path: str | Path) -> dict | None:
        with self.lock:
            docs = self.docs.get(str(path))
        if not docs:
            return None
        return docs[0].get("config")

    def kind(self, path: str | Path) -> str | None:
        with self.lock:
            docs = self.docs.get(str(path))
        return docs[0]["kind"] if docs else None

    def paths(self) -> set[str]:
        with self.lock:
            return set(self.docs)


def disk_states(root: str | Path, suffixes: tuple[str, ...] = (".yaml", ".yml", ".json")) -> dict[str, FileState]:
    """What the store should hold for a test tree (only plain config files are used there)."""
    out = {}
    for folder, _dirs, names in os.walk(root):
        for n in names:
            if n.endswith(suffixes):
                p = os.path.join(folder, n)
                st = os.stat(p)
                out[p] = FileState(st.st_size, st.st_mtime_ns, st.st_ino)
    return out



@contextmanager
def sqlite_indexer(root: str | Path, db: str) -> Iterator[tuple[Indexer, SQLiteStore]]:
    """A started Indexer watching ``root`` into the SQLite store ``db``, and a store to read it; both closed after."""
    ix = Indexer(lambda: SQLiteStore(db), [str(root)], debounce=0.05, reconcile_every=None)
    ix.start()
    store = SQLiteStore(db)
    try:
        yield ix, store
    finally:
        store.close()
        ix.stop()


def resnet_kinds(store: SQLiteStore) -> list[tuple[str, list[str]]]:
    """``(kind, paths)`` of the configs and runs whose model is resnet18."""
    docs = store.find(compile_query("model=resnet18"), FindOptions(kinds=("config", "run")))
    return [(d["kind"], d["paths"]) for d in docs]
