"""Config ids change when their rule does: the one place that says so, for every store backend.

A store remembers the :data:`ednaquery.documents.ID_VERSION` its documents' ids were made
with. Opening one made with an older rule logs one warning and marks every file it knows as
changed, so the next scan (the daemon's start, ``ednaquery index``) reads each file again and
replaces its documents with ones under the new ids: old and new ids never mix silently.
"""
from __future__ import annotations

import logging

from ednaquery.documents import ID_VERSION

log = logging.getLogger("ednaquery.store")

#: the file size a store records for a file whose documents must be made again
STALE_SIZE = -1


def outdated(stored: str | int | None) -> bool:
    """True when a store's recorded id version (None: never recorded) is older than this ednaquery's."""
    try:
        return stored is None or int(stored) < ID_VERSION
    except (TypeError, ValueError):
        return True


def announce(where: str, stored: str | int | None, files: int) -> None:
    """The one warning line a migrating store logs."""
    was = f"v{stored}" if stored is not None else "v1"
    log.warning("the index at %s was made with config ids %s (this ednaquery makes v%d: equal numbers "
                "such as 1e-3 and 0.001 now give one id); re-indexing: its %d file(s) are read again on "
                "the next scan (daemon start or `ednaquery index`)", where, was, ID_VERSION, files)


__all__ = ["STALE_SIZE", "announce", "outdated"]
