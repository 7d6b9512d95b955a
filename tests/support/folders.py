"""Index a folder of config files into a store the way the indexer does, without the indexer."""
from __future__ import annotations

from pathlib import Path

from ednaquery.documents import make_config_document, make_error_document
from ednaquery.errors import LoadError
from ednaquery.loaders import format_for, load_file
from ednaquery.store import FileState, PathUpdate

__all__ = ["EXAMPLES", "index_folder"]

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
