"""``ednaquery ui``: the comparison workbench in the browser.

A Starlette app (served by uvicorn) over the public API (:func:`ednaquery.connect`), never the
store directly. Every page is a static shell whose script reads the JSON API under ``/api/``,
the same endpoints a script can call. Starlette and uvicorn come with the ``ui`` extra; they load
only when the app is made, so ``ednaquery ui`` without them ends in one line naming the extra.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ednaquery.ui.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ednaquery.ui.app import create_app

        return create_app
    raise AttributeError(f"module 'ednaquery.ui' has no attribute {name!r}")
