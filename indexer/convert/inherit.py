"""The effective config of a file: inheritance and interpolation resolved, dependencies recorded.

Real configs are not self-contained. In this order:

1. detectron2 ``_BASE_`` files (:mod:`indexer.convert.bases`);
2. Hydra ``defaults:`` lists (:mod:`indexer.convert.hydra`);
3. OmegaConf ``${...}`` interpolation (:mod:`indexer.convert.interpolate`), over the whole
   composition, so that ``${paths.data_dir}`` in ``data/mnist.yaml`` resolves when the
   primary config selects ``paths``.

(YAML anchors and merge keys are resolved by the loader already.) What cannot be resolved
is left as the file writes it, with a warning; a base that cannot be loaded means the
file is indexed as written. Every file the result depends on, found or not, is listed in
``depends_on`` (absolute paths) so that the indexer can re-convert the dependants of a
base when the base changes or appears: see :func:`dependants_of`.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ednaquery.loaders import DEFAULT_MAX_BYTES
from indexer.convert import hydra
from indexer.convert.bases import has_bases, resolve_bases
from indexer.convert.interpolate import has_interpolation, resolve_interpolations
from indexer.convert.merge import get_at


@dataclass
class Resolution:
    """A file's effective config, what happened on the way, and what it depends on."""

    config: Any
    warnings: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)


def resolve(doc: Any, path: str, directives: Mapping[str, str] | None = None, *,
            max_bytes: int = DEFAULT_MAX_BYTES, may_interpolate: bool = True) -> Resolution:
    """The effective config of ``doc``, the (first) document of the file at ``path``.

    ``may_interpolate=False`` (the file's text holds no ``${``) skips the search for
    interpolations unless bases or defaults brought in other files."""
    res = Resolution(config=doc)
    if not isinstance(doc, dict):
        return res
    config: Any = doc
    if has_bases(doc):
        b = resolve_bases(doc, path, max_bytes=max_bytes)
        res.warnings += b.warnings
        res.depends_on += b.depends_on
        if b.config is None:
            return res  # as written (the warning says why)
        config = b.config
    package = ""
    if hydra.has_defaults_list(config):
        c = hydra.compose(config, path, dict(directives or {}), max_bytes=max_bytes)
        if c is not None:
            res.warnings += c.warnings
            res.depends_on += c.depends_on
            config, package = c.tree, c.package
    if (may_interpolate or config is not doc) and has_interpolation(config):
        config, warns = resolve_interpolations(config)
        res.warnings += warns
    if package:
        top = package.split(".")[0]
        outside = sorted(k for k in config if k != top) if isinstance(config, dict) else []
        if outside:
            res.warnings.append(f"defaults place keys outside this file's package '{package}' "
                                f"({', '.join(outside[:5])}); they are not shown")
        own = get_at(config, package)
        config = own if own is not None else {}
    res.config = config
    seen: set[str] = {os.path.abspath(path)}
    res.depends_on = [d for d in res.depends_on if not (d in seen or seen.add(d))]
    return res


def dependants_of(path: str, documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """Paths of the documents that depend on ``path`` (to re-convert when it changes).

    ``documents`` are indexed documents (anything with ``paths`` and ``depends_on``), e.g.
    a store query ``{"depends_on": abspath}``'s results. Sorted, without duplicates.
    """
    target = os.path.normpath(os.path.abspath(path))
    out: set[str] = set()
    for doc in documents:
        if target in (doc.get("depends_on") or ()):
            out.update(doc.get("paths") or ())
    out.discard(target)
    return sorted(out)
