"""``trainer sweep grid.yaml``: a base config times a grid of values -> derived configs, indexed and queued.

A grid file::

    base: 3fa9c2            # a config id prefix, a config file (relative to this file), or a mapping
    axes:
      model.name: [resnet18, convnext_atto]
      optimizer.lr: [1e-3, 3e-4]
      data.img_size: [16, 32]

expands to the cartesian product of the axes (8 configs here, in the order the axes are
written, the last axis varying fastest). Each combination is applied to the base like
``trainer launch`` overrides (shorthands such as ``lr`` and ``epochs`` work), validated,
indexed as a derived config (tags ``derived`` and ``sweep``, ``derived_from`` the base id)
and queued for ``trainer worker``. Combinations that give the same config are one config.
Numbers written like ``1e-3`` (a string to YAML 1.1) are taken as numbers, as on the
``trainer launch`` command line, so a sweep point and the same launch share a config id.
``--dry-run`` expands and validates only: nothing is indexed or queued.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ednaquery.documents import parse_number
from ednaquery.errors import UsageError
from ednaquery.store.base import Store
from trainer.errors import ConfigError
from trainer.ops.launch import (
    ResolvedConfig,
    derive,
    override_strings,
    read_user_file,
    resolve_target,
    validate,
)
from trainer.ops.space import is_distribution

#: refuse grids larger than this (a typo in an axis can explode a product)
MAX_COMBINATIONS = 10_000
SWEEP_TAG = "sweep"


@dataclass
class SweepItem:
    """One point of the grid."""

    overrides: dict[str, Any]
    config: ResolvedConfig


@dataclass
class SweepPlan:
    """A grid expanded against its base."""

    base: ResolvedConfig
    axes: list[tuple[str, list[Any]]]
    items: list[SweepItem] = field(default_factory=list)
    #: combinations that repeat an earlier config (same content id)
    duplicates: int = 0
    source: str | None = None

    @property
    def config_ids(self) -> list[str]:
        return [i.config.config_id for i in self.items]


def read_grid(path: str | os.PathLike[str]) -> dict:
    """Load a grid file (YAML/JSON/TOML) and check its shape."""
    loaded = read_user_file(path)
    grid = loaded.documents[0] if loaded.documents else None
    if not isinstance(grid, dict):
        raise UsageError(f"{path}: a sweep file is a mapping with `base:` and `axes:`")
    return grid


def _axes(grid: dict, where: str) -> list[tuple[str, list[Any]]]:
    searching = sorted(set(grid) & {"metric", "goal", "budget", "early_stop", "seed"})
    if searching:
        raise UsageError(f"{where}: {searching[0]!r} is for search sweeps: add `method: random` or `method: bayes`")
    if grid.get("method", "grid") != "grid":
        raise UsageError(f"{where}: method must be grid, random or bayes, not {grid.get('method')!r}")
    unknown = sorted(set(grid) - {"base", "axes", "name", "description", "method"})
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} in the sweep file (it has base, axes, name, "
                         "description, method)")
    axes = grid.get("axes")
    if not isinstance(axes, dict) or not axes:
        raise UsageError(f"{where}: `axes:` must map config keys to lists of values, e.g. optimizer.lr: [1e-3, 3e-4]")
    out: list[tuple[str, list[Any]]] = []
    for key, values in axes.items():
        values = values if isinstance(values, list) else [values]
        # YAML 1.1 reads 1e-3 as a string: take it as the number (the one number rule, as the
        # loader and `trainer launch lr=1e-3` do)
        values = [n if isinstance(v, str) and (n := parse_number(v)) is not None else v for v in values]
        if not values:
            raise UsageError(f"{where}: axis {key!r} has no values")
        if any(is_distribution(v) for v in values):
            raise UsageError(f"{where}: axis {key!r} is a distribution; a grid takes lists of values "
                             "(use method: random or bayes to sample it)")
        out.append((str(key), values))
    return out


def resolve_base(store: Store, grid: dict, base_dir: Path, where: str, index: bool) -> ResolvedConfig:
    """The sweep's ``base:``: a config id prefix, a config file (relative to the sweep file) or a mapping."""
    base = grid.get("base")
    if base is None:
        raise UsageError(f"{where}: `base:` is missing (a config id, a config file, or a config mapping)")
    if isinstance(base, dict):
        from ednaquery.documents import config_id, make_config_document

        validate(base, f"{where}: base")
        doc = make_config_document(base, path=None, format="sweep-base")
        doc["tags"] = [SWEEP_TAG]
        doc["sweep"] = str(where)  # the sweep file whose inline base this is (not a warning)
        return ResolvedConfig(config=base, config_id=config_id(base), doc=doc, derived_from="inline")
    target = str(base)
    candidate = base_dir / target
    if not os.path.isabs(target) and candidate.is_file():
        target = str(candidate)
    return resolve_target(store, target, index=index)


def expand(grid: dict, *, store: Store, base_dir: str | os.PathLike[str] = ".", source: str | None = None,
           index_base: bool = True) -> SweepPlan:
    """The plan for a grid: every combination applied to the base and validated. Nothing is
    written, except that a base given as a file is indexed (as ``trainer launch FILE`` does)
    unless ``index_base`` is False."""
    where = source or "sweep"
    axes = _axes(grid, where)
    total = 1
    for _, values in axes:
        total *= len(values)
    if total > MAX_COMBINATIONS:
        raise UsageError(f"{where}: the grid has {total:,} combinations, over the limit of {MAX_COMBINATIONS:,}")
    base = resolve_base(store, grid, Path(base_dir), where, index_base)
    plan = SweepPlan(base=base, axes=axes, source=source)
    seen: set[str] = set()
    keys = [k for k, _ in axes]
    extra = {"sweep": source} if source else {}
    for combo in itertools.product(*(v for _, v in axes)):
        overrides = dict(zip(keys, combo))
        try:
            resolved = derive(base, overrides, tags=[SWEEP_TAG], extra=extra)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {' '.join(override_strings(overrides))}: {exc}") from None
        if resolved.config_id in seen:
            plan.duplicates += 1
            continue
        seen.add(resolved.config_id)
        plan.items.append(SweepItem(overrides=overrides, config=resolved))
    return plan


def submit(plan: SweepPlan, *, store: Store, queue: Any, options: dict | None = None) -> list[Any]:
    """Index every config of the plan (and an inline base) and queue one job per config."""
    docs = {}
    if plan.base.derived_from == "inline":
        docs[plan.base.config_id] = plan.base.doc
    for item in plan.items:
        if item.config.derived_from is not None:
            docs.setdefault(item.config.config_id, item.config.doc)
    store.upsert(list(docs.values()))
    return [queue.enqueue(i.config.config_id, options=options) for i in plan.items]


def load_plan(path: str | os.PathLike[str], *, store: Store, index_base: bool = True) -> SweepPlan:
    """Read and expand a grid file (paths in it are relative to its folder)."""
    p = Path(path)
    return expand(read_grid(p), store=store, base_dir=p.resolve().parent, source=str(p.resolve()),
                  index_base=index_base)
