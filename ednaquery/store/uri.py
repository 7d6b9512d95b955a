"""Store URIs shown to people: the password masked, so a URI is safe in logs and output.

Its own module so that a backend (:mod:`ednaquery.store.mongo`) can use it without importing
the package that picks the backends (:mod:`ednaquery.store`), which would be an import cycle.
"""
from __future__ import annotations

import re

__all__ = ["mask_uri"]

_NETLOC = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/?#]*)(.*)$", re.IGNORECASE | re.DOTALL)


def mask_uri(uri: str) -> str:
    """The URI with its password replaced by ``***`` (user kept), safe for logs and output."""
    m = _NETLOC.match(uri)
    if not m or "@" not in m.group(2):
        return uri
    userinfo, host = m.group(2).rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{m.group(1)}{user}{':***' if ':' in userinfo else ''}@{host}{m.group(3)}"
