"""ednaquery: find ML experiment configs and runs by what they contain.

``ix = ednaquery.connect()`` opens the index the CLI uses here; ``ix.find("lr<1e-3 model=vit")``
returns :class:`Results` of :class:`Record` values (``.to_pandas()`` for a DataFrame) and
``ix.series(runs, "val_acc")`` the logged curves. See docs/python-api.md.

The names load on first use, so that ``import ednaquery.cli`` stays light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ednaquery.api import Index, Record, Results, connect

__all__ = ["Index", "Record", "Results", "connect"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ednaquery import api

        return getattr(api, name)
    raise AttributeError(f"module 'ednaquery' has no attribute {name!r}")
