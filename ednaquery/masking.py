"""Passwords out of URIs and messages: the one place that knows where a URI keeps its secrets.

A store URI may carry a password in its user info (``mongodb://user:pass@host``) and in query
options named ``...password`` (``tlsCertificateKeyFilePassword=...``). :func:`mask_uri` makes a
URI safe to print; :func:`redact` makes any text safe to print, given the URIs in play.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["MASK", "mask_uri", "redact", "uri_passwords"]

#: what a password is replaced by
MASK = "***"

# scheme://netloc rest  (netloc: everything up to the first / ? or #)
_URI = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/?#]*)(.*)$", re.IGNORECASE | re.DOTALL)
# a query option whose name ends in "password", and its value
_PASSWORD_OPTION = re.compile(r"([?&;][^=&;#]*password=)([^&;#]*)", re.IGNORECASE)
# a URI written inside some text: scheme://user:password@ (a password stops at whitespace, quotes, / or @)
_URI_IN_TEXT = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/?#@'\"]*:)([^\s@/'\"]+)(@)", re.IGNORECASE)


def _parts(uri: str) -> tuple[str, str | None, str | None, str, str] | None:
    """``(scheme, user, password, hosts, rest)`` of a URI with a user part, else None."""
    m = _URI.match(uri)
    if not m or "@" not in m.group(2):
        return None
    userinfo, hosts = m.group(2).rsplit("@", 1)  # the last @: an unencoded @ in a password stays in it
    user, sep, password = userinfo.partition(":")
    return m.group(1), user, password if sep else None, hosts, m.group(3)


def uri_passwords(uri: str | None) -> list[str]:
    """Every secret a URI holds, as written and percent-decoded (empty for none), longest first."""
    if not uri or "://" not in uri:
        return []
    found: list[str] = []
    parts = _parts(uri)
    if parts is not None and parts[2]:
        found.append(parts[2])
    found += [m.group(2) for m in _PASSWORD_OPTION.finditer(uri) if m.group(2)]
    secrets = {s for raw in found for s in (raw, unquote(raw)) if s}
    return sorted(secrets, key=lambda s: (-len(s), s))


def mask_uri(uri: str) -> str:
    """The URI with its password (and ``...password=`` options) replaced by ``***``; user and hosts kept."""
    parts = _parts(uri)
    if parts is not None:
        scheme, user, password, hosts, rest = parts
        uri = f"{scheme}{user}{':' + MASK if password is not None else ''}@{hosts}{rest}"
    return _PASSWORD_OPTION.sub(lambda m: m.group(1) + MASK, uri)


def redact(text: str, uris: Iterable[str | None] = ()) -> str:
    """``text`` with the passwords of ``uris``, and of any URI written in it, replaced by ``***``."""
    known = [u for u in dict.fromkeys(uris) if u]
    for uri in known:
        text = text.replace(uri, mask_uri(uri))
    for secret in sorted({s for u in known for s in uri_passwords(u)}, key=lambda s: (-len(s), s)):
        text = text.replace(secret, MASK)
    text = _URI_IN_TEXT.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _PASSWORD_OPTION.sub(lambda m: m.group(1) + MASK, text)
