"""Stores: pick a backend from a URI and open it.

``mongodb://`` / ``mongodb+srv://`` -> :class:`~ednaquery.store.mongo.MongoStore` (pymongo);
``sqlite:///abs/path.db``, a plain file path, or nothing -> the embedded SQLite store.
"""
from __future__ import annotations

import re

from ednaquery.store.base import FileState, FindOptions, KeyStat, PathUpdate, SortKey, Store

__all__ = ["FileState", "FindOptions", "KeyStat", "PathUpdate", "SortKey", "Store", "mask_uri", "open_store"]

_NETLOC = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/?#]*)(.*)$", re.IGNORECASE | re.DOTALL)


def mask_uri(uri: str) -> str:
    """The URI with its password replaced by ``***`` (user kept), safe for logs and output."""
    m = _NETLOC.match(uri)
    if not m or "@" not in m.group(2):
        return uri
    userinfo, host = m.group(2).rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{m.group(1)}{user}{':***' if ':' in userinfo else ''}@{host}{m.group(3)}"


def open_store(uri: str | None = None, *, timeout_ms: int = 5000, create: bool = True) -> Store:
    """Open the store a URI names (None: the embedded default found like git finds ``.git``)."""
    if uri and uri.startswith(("mongodb://", "mongodb+srv://")):
        from ednaquery.store.mongo import MongoStore

        return MongoStore(uri, timeout_ms=timeout_ms)
    from ednaquery.store.sqlite import SQLiteStore, sqlite_path_from_uri

    return SQLiteStore(sqlite_path_from_uri(uri), create=create)
