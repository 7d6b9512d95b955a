"""Bounded caches that let the configs of a sweep share leaves and whole section views (scan speed).

The configs of a sweep repeat most of their values, and the YAML reader hands out one shared
object for a section whose lines repeat (:data:`ednaquery.simple_yaml.SHARED`). What
:mod:`ednaquery.documents` makes from such a value (a leaf, a section's escaped copy, leaves and
canonical text) is kept here and handed out again: it is what documents would make again from
the same input, so documents and ids never depend on these caches. Every cache is emptied when
full, so memory stays bounded.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from ednaquery.simple_yaml import SHARED

__all__ = ["BoundedDict", "SharedLeaves", "has_shared_section", "views_by_section"]


class BoundedDict(dict):
    """A dict emptied when it reaches ``size`` entries: a cache whose memory stays bounded."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> Any:
        """Store ``value`` under ``key`` (emptying the cache first when it is full); returns ``value``."""
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value


class SharedLeaves:
    """The leaves of config values by (joined path, value), one shared object each (never changed).

    The configs of a sweep repeat most of their leaves; one object costs less to make, to send
    to the writing process, and to write. ``make(p, value)`` makes a leaf the first time.
    """

    def __init__(self, make: Callable[[str, Any], dict], size: int = 20000) -> None:
        self.make = make
        self.leaves = BoundedDict(size)  # (p, type, value) -> leaf

    def get(self, p: str, value: Any) -> dict:
        """The leaf of ``value`` at path ``p``: shared for plain scalars, new for anything else."""
        t = type(value)
        if t is str:
            if len(value) > 200:
                return self.make(p, value)
        elif t is float:
            if math.isnan(value) or value == 0:  # NaN: never equal to a key; -0.0 == 0.0 would share one
                return self.make(p, value)
        elif not (t is int or t is bool or value is None):
            return self.make(p, value)
        key = (p, t, value)
        leaf = self.leaves.get(key)
        if leaf is None:
            leaf = self.leaves.put(key, self.make(p, value))
        return leaf


#: (key, id(section)) -> (section, escaped, canonical JSON, leaves, warnings), for top-level sections
#: that load_simple(shared=True) hands out to many configs (see views_by_section)
_SECTIONS: BoundedDict = BoundedDict(4000)


def has_shared_section(config: dict) -> bool:
    """True if a top-level value of ``config`` is a section the YAML reader shares between configs."""
    return bool(SHARED) and any(SHARED.get(id(v)) is v for v in config.values())


def views_by_section(config: dict, walk: Callable, leaves: list[dict], warns: list[str], *,
                     escape: Callable[[Any], str], encode: Callable[[Any], str],
                     max_leaves: int) -> tuple | None:
    """``ednaquery.documents._config_views`` of a top-level mapping, section by section: a section that
    is a block shared by the YAML reader has its escaped copy, leaves and canonical text made once.

    ``walk(value, key, True)`` gives a section's escaped copy and canonical form (adding its leaves
    and warnings), ``escape`` a top-level key's escaped form, ``encode`` canonical JSON text.
    None where ``max_leaves`` is near (the caller walks it all).
    """
    out: dict[str, Any] = {}
    texts: list[tuple[str, str]] = []
    for k, v in config.items():
        ek = escape(k)
        shared = SHARED.get(id(v)) is v
        entry = _SECTIONS.get((k, id(v))) if shared else None
        if entry is not None and entry[0] is v:
            out[ek] = entry[1]
            texts.append((k, entry[2]))
            leaves += entry[3]
            warns += entry[4]
        else:
            n0, w0 = len(leaves), len(warns)
            out[ek], c = walk(v, k, True)
            text = encode(c)
            texts.append((k, text))
            if shared and len(leaves) < max_leaves:  # (at the limit its leaves were cut short)
                _SECTIONS.put((k, id(v)), (v, out[ek], text, leaves[n0:], warns[w0:]))
        if len(leaves) >= max_leaves:
            return None
    texts.sort()
    key_text = json.encoder.encode_basestring  # what json.dumps(..., ensure_ascii=False) does to keys
    return out, leaves, "{" + ",".join(key_text(k) + ":" + text for k, text in texts) + "}", warns
