"""ednaquery: index and query ML experiment configs and runs; ``start_run`` logs a run from any training loop.

``ix = ednaquery.connect()`` opens the index the CLI uses here; ``ix.find("lr<1e-3 model=vit")``
returns :class:`Results` of :class:`Record` values (``.to_pandas()`` for a DataFrame) and
``ix.series(runs, "val_acc")`` the logged curves. See docs/python-api.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ednaquery.api import Index, Record, Results, connect
    from ednaquery.tracking import start_run

__all__ = ["Index", "Record", "Results", "connect", "start_run"]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``import ednaquery.cli`` must not pay for the library API (PEP 562)."""
    if name == "start_run":
        from ednaquery.tracking import start_run

        return start_run
    if name in __all__:
        from ednaquery import api

        return getattr(api, name)
    raise AttributeError(f"module 'ednaquery' has no attribute {name!r}")
