"""Stores: pick a backend from a URI and open it.

``mongodb://`` / ``mongodb+srv://`` -> :class:`~ednaquery.store.mongo.MongoStore` (pymongo);
``sqlite:///abs/path.db``, a plain file path, or nothing -> the embedded SQLite store.
"""
from __future__ import annotations

from ednaquery.store.base import (
    FileState,
    FindOptions,
    KeyStat,
    PathUpdate,
    SeriesRow,
    SortKey,
    Store,
    StoredPoint,
    series_rows,
)

__all__ = ["FileState", "FindOptions", "KeyStat", "PathUpdate", "SeriesRow", "SortKey", "Store", "StoredPoint",
           "open_store", "series_rows"]


def open_store(uri: str | None = None, *, timeout_ms: int = 5000, create: bool = True) -> Store:
    """Open the store a URI names (None: the embedded default found like git finds ``.git``)."""
    if uri and uri.startswith(("mongodb://", "mongodb+srv://")):
        from ednaquery.store.mongo import MongoStore

        return MongoStore(uri, timeout_ms=timeout_ms)
    from ednaquery.store.sqlite import SQLiteStore, sqlite_path_from_uri

    return SQLiteStore(sqlite_path_from_uri(uri), create=create)
