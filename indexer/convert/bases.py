"""detectron2-style ``_BASE_`` inheritance: a config names the file(s) it extends.

``_BASE_: "../Base-RCNN-FPN.yaml"`` (detectron2, fvcore) or a list of such paths
(``_base_`` as mmengine writes it is accepted too). Each base is loaded, its own bases
first (chains of any depth), the bases merge in order and the file's own keys merge on
top, recursively (a child mapping merges into the base's, anything else replaces it);
the ``_BASE_`` key itself is not part of the effective config, as in detectron2.

Paths are relative to the file that names them; ``~`` expands; ``http(s)://`` bases are
never fetched. A missing or broken base, or a cycle, means the effective config cannot be
known: the caller indexes the file as written, with a warning. Every base path tried is
reported as a dependency, missing ones included, so that creating or fixing a base
re-indexes the files that name it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ednaquery.errors import LoadError
from ednaquery.loaders import DEFAULT_MAX_BYTES
from indexer.convert.filecache import load_cached
from indexer.convert.merge import deep_merge

BASE_KEYS = ("_BASE_", "_base_")


@dataclass
class BaseResolution:
    """The effective config (None if it cannot be known), warnings, and the files it depends on."""

    config: dict | None
    warnings: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)


def has_bases(doc: Any) -> bool:
    """True if a document names base files."""
    return isinstance(doc, dict) and any(k in doc for k in BASE_KEYS)


def _base_paths(doc: dict) -> list[str] | None:
    for key in BASE_KEYS:
        if key in doc:
            raw = doc[key]
            if isinstance(raw, str):
                return [raw]
            if isinstance(raw, list) and all(isinstance(b, str) for b in raw):
                return list(raw)
            return None
    return []


def resolve_bases(doc: dict, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> BaseResolution:
    """Resolve the ``_BASE_`` chain of ``doc``, the content of the file at ``path``."""
    res = BaseResolution(config=None)
    config = _effective(doc, os.path.abspath(path), [os.path.abspath(path)], res, max_bytes)
    res.config = config
    seen: set[str] = set()
    res.depends_on = [d for d in res.depends_on if not (d in seen or seen.add(d))]
    return res


def _effective(doc: dict, path: str, stack: list[str], res: BaseResolution, max_bytes: int) -> dict | None:
    bases = _base_paths(doc)
    if bases is None:
        res.warnings.append(f"{os.path.basename(path)}: _BASE_ must be a path or a list of paths; "
                            "indexed as written")
        return None
    merged: dict = {}
    ok = True
    for name in bases:
        if name.startswith(("http://", "https://")):
            res.warnings.append(f"base {name} is a URL; it is never fetched, so the config is indexed as written")
            ok = False
            continue
        bp = os.path.expanduser(name)
        if not os.path.isabs(bp):
            bp = os.path.join(os.path.dirname(path), bp)
        bp = os.path.normpath(os.path.abspath(bp))
        res.depends_on.append(bp)
        if bp in stack:
            res.warnings.append(f"base {name} makes a cycle ({' -> '.join(os.path.basename(s) for s in stack)}"
                                f" -> {os.path.basename(bp)}); indexed as written")
            ok = False
            continue
        try:
            loaded = load_cached(bp, max_bytes=max_bytes)
        except LoadError as exc:
            res.warnings.append(f"base {name} cannot be used ({exc.detail}); indexed as written")
            ok = False
            continue
        res.warnings.extend(f"base {name}: {w}" for w in loaded.warnings)
        if not loaded.documents or not isinstance(loaded.documents[0], dict):
            res.warnings.append(f"base {name} holds no mapping; indexed as written")
            ok = False
            continue
        base_doc = loaded.documents[0]
        if has_bases(base_doc):
            eff = _effective(base_doc, bp, stack + [bp], res, max_bytes)
            if eff is None:
                ok = False
                continue
        else:
            eff = base_doc
        merged = deep_merge(merged, eff)
    if not ok:
        return None
    own = {k: v for k, v in doc.items() if k not in BASE_KEYS}
    return deep_merge(merged, own)
