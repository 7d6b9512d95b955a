"""Folders indexed for tests: configs written as the indexer would (without it), or a tree scanned by it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ednaquery.documents import make_config_document, make_error_document
from ednaquery.errors import LoadError
from ednaquery.loaders import format_for, load_file
from ednaquery.store import FileState, PathUpdate, open_store
from indexer.scan import scan
from tests.support.settings import clean_settings

__all__ = ["EXAMPLES", "index_folder", "scanned_store"]

#: the bundled example configs
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def index_folder(store, root: Path) -> int:
    """Index every config file under ``root`` the way the indexer does (one PathUpdate per file)."""
    updates = []
    for path in sorted(root.rglob("*")):
        fmt = format_for(path)
        if fmt is None or not path.is_file():
            continue
        st = path.stat()
        try:
            res = load_file(path)
            docs = [make_config_document(d, path=str(path), format=res.format, size=st.st_size,
                                         mtime=st.st_mtime, warnings=res.warnings) for d in res.documents]
        except LoadError as exc:
            docs = [make_error_document(str(path), exc.detail, format=fmt, size=st.st_size, mtime=st.st_mtime)]
        updates.append(PathUpdate(str(path), docs, FileState(st.st_size, st.st_mtime_ns, st.st_ino)))
    store.apply(updates)
    return len(updates)


def scanned_store(tmp_path: Path, monkeypatch: Any, tree: Path) -> str:
    """``tree`` scanned into ``tmp_path/index.db`` the way ``ednaquery index`` does, under
    :func:`~tests.support.settings.clean_settings` and with ``tmp_path`` the working folder; the db path."""
    clean_settings(tmp_path, monkeypatch)
    db = str(tmp_path / "index.db")
    store = open_store(db)
    try:
        scan(store, [str(tree)], workers=0)
    finally:
        store.close()
    monkeypatch.chdir(tmp_path)
    return db
