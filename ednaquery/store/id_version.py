"""Config ids change when their rule does: the one place that says so, for every store backend.

A store remembers the :data:`ednaquery.documents.ID_VERSION` its documents' ids were made
with. Opening one made with an older rule logs one warning and marks every file it knows as
changed, so the next scan (the daemon's start, ``ednaquery index``) reads each file again and
replaces its documents with ones under the new ids. Configs with no file (derived by overrides,
inline sweep bases) are re-keyed in the store at once (:func:`rekeyed`), the old id kept as a
past version: old and new ids never mix silently.
"""
from __future__ import annotations

import logging
from typing import Any

from ednaquery.documents import ID_VERSION, make_config_document, original_config

log = logging.getLogger("ednaquery.store")

#: the file size a store records for a file whose documents must be made again
STALE_SIZE = -1
#: what older versions wrote as a derived config's warning (it is in ``derived_from`` now)
_LEGACY_WARNINGS = ("derived from ", "inline base of sweep ")
#: fields of a stored document that :func:`ednaquery.documents.make_config_document` makes afresh
_MADE = frozenset({"_id", "config", "as_written", "leaves", "warnings", "indexed_at", "paths", "past_paths",
                   "current", "deleted"})


def rekeyed(doc: dict) -> dict | None:
    """The document a path-less config becomes under this id rule (new id; the extra fields and
    tags kept; an old version's "derived from" warning dropped), or None when nothing changes.

    A config kept without some of its values (over the size limit) cannot be hashed again: None.
    """
    if doc.get("kind") != "config" or doc.get("paths") or not doc.get("current", True):
        return None
    warnings = [w for w in doc.get("warnings") or [] if not w.startswith(_LEGACY_WARNINGS)]
    if any(w.startswith("the config is ") and " over the " in w for w in warnings):
        return None
    new = make_config_document(original_config(doc), path=None, format=doc.get("format") or "derived")
    new["warnings"] = list(dict.fromkeys(warnings + new["warnings"]))
    if new["_id"] == doc["_id"] and new["warnings"] == list(doc.get("warnings") or []):
        return None
    extra: dict[str, Any] = {k: v for k, v in doc.items() if k not in _MADE and k not in new}
    new.update(extra)
    new["tags"] = list(doc.get("tags") or [])
    new["depends_on"] = list(doc.get("depends_on") or [])
    return new


def outdated(stored: str | int | None) -> bool:
    """True when a store's recorded id version (None: never recorded) is older than this ednaquery's."""
    try:
        return stored is None or int(stored) < ID_VERSION
    except (TypeError, ValueError):
        return True


def announce(where: str, stored: str | int | None, files: int, rekeyed_docs: int = 0) -> None:
    """The one warning line a migrating store logs."""
    was = f"v{stored}" if stored is not None else "v1"
    log.warning("the index at %s was made with config ids %s (this ednaquery makes v%d: equal numbers "
                "such as 1e-3 and 0.001 now give one id); re-indexing: its %d file(s) are read again on "
                "the next scan (daemon start or `ednaquery index`), %d config(s) without a file got their "
                "new id now", where, was, ID_VERSION, files, rekeyed_docs)


__all__ = ["STALE_SIZE", "announce", "outdated", "rekeyed"]
