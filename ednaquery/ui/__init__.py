"""``ednaquery ui``: the comparison workbench in the browser.

A Starlette app (served by uvicorn) over the public API (:func:`ednaquery.connect`), never the
store directly. Every page is a static shell whose script reads the JSON API under ``/api/``,
the same endpoints a script can call. Starlette and uvicorn come with the ``ui`` extra.
"""
from __future__ import annotations

from ednaquery.ui.app import create_app

__all__ = ["create_app"]
