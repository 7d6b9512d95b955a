"""``trainer sweep --around QUERY_OR_RUN``: perturb the best run found around its own values.

The centre is the run given (an id prefix) or the best run, by the sweep metric, that the query
finds. Each of ``n`` trials changes only the ``keys`` chosen, all at once, drawn from a fixed
seed (so the same command gives the same trials and resumes the same sweep):

- a float (``lr``, ``weight_decay``) is multiplied by ``factor ** u`` with ``u`` uniform in
  [-1, 1]: log-scale, between value/factor and value*factor; a zero cannot be scaled (error);
- an int (``epochs``, ``batch_size``) the same, rounded, at least 1;
- ``data.img_size`` the same, rounded to a multiple of the model's step, at least one step:
  ``model.patch_size`` when set, else the patch of a name such as ``vit_tiny_patch16_224``,
  else 32 when the size is a multiple of 32 (CNN strides), else 8 when a multiple of 8, else 1;
- anything else (``model.name``, booleans) moves to a neighbour: the values of that key among
  the runs the query found, sorted, and the centre's value with one on each side of it.

The trials are queued as one sweep (``method: around``) like any search sweep's.
"""
from __future__ import annotations

import math
import random
import re
import shlex
from typing import Any

from ednaquery.documents import original_config
from ednaquery.errors import NotFound, UsageError
from ednaquery.store.base import Store
from trainer.ops.launch import ResolvedConfig, config_from_store, record_of_kind
from trainer.ops.prune import trial_value
from trainer.ops.search import SearchSpec, goal_for, parse_early_stop
from trainer.ops.space import config_key

__all__ = ["around_spec", "best_run", "img_step", "perturb"]

DEFAULT_KEYS = "lr"
MAX_POINTS = 1000


def _get(config: dict, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def img_step(config: dict, size: int) -> int:
    """The multiple an image size must stay for the run's model (see the module docstring)."""
    patch = _get(config, "model.patch_size")
    if isinstance(patch, int) and patch > 0:
        return patch
    m = re.search(r"patch(\d+)", str(_get(config, "model.name") or ""))
    if m:
        return int(m.group(1))
    for step in (32, 8):
        if size % step == 0:
            return step
    return 1


def best_run(store: Store, target: str, metric: str, goal: str,
             exclude_sweeps: set[str] | frozenset[str] = frozenset()) -> tuple[dict, list[dict]]:
    """The run ``target`` names (an id prefix) or the best by ``metric`` among those its query finds
    (leaving out the trials of ``exclude_sweeps``), and the runs found (the neighbours of
    categorical values come from them)."""
    from trainer.ops.query import find_runs

    words = shlex.split(target)
    if len(words) == 1 and not re.search(r"[=<>~!]", words[0]):
        doc = record_of_kind(store, words[0], "run", "give a run id or a query", name=target)
        if doc is not None:
            return doc, [doc]
    runs = [d for d in find_runs(store, words) if (d.get("info") or {}).get("sweep") not in exclude_sweeps]
    scored = [(v, d) for d in runs if (v := trial_value(d, metric, goal)) is not None]
    if not scored:
        raise NotFound(f"no run with a {metric} matches {target!r}; `trainer ls {target}` lists what it finds")
    scored.sort(key=lambda p: (p[0], p[1]["_id"]), reverse=goal == "max")
    return scored[0][1], runs


def _centre_config(store: Store, run: dict) -> ResolvedConfig:
    """The run's config as a sweep base: its config document when the store has it, else the run's own."""
    from ednaquery.documents import config_id, make_config_document

    cid = run.get("config_id")
    if cid:
        try:
            return config_from_store(store, cid)
        except NotFound:
            pass
    config = original_config(run) or {}
    if not isinstance(config, dict) or not config:
        raise UsageError(f"run {run['_id']} has no config to perturb")
    doc = make_config_document(config, path=None, format="sweep-base")
    doc["tags"] = ["sweep"]
    return ResolvedConfig(config=config, config_id=config_id(config), doc=doc, derived_from="inline")


def _neighbours(key: str, centre: Any, runs: list[dict]) -> list[Any]:
    seen = {centre}
    for d in runs:
        v = _get(original_config(d) or {}, key)
        if v is not None and not isinstance(v, (dict, list)):
            seen.add(v)
    try:
        ordered = sorted(seen, key=lambda v: (str(type(v)), v))
    except TypeError:
        ordered = sorted(seen, key=str)
    i = ordered.index(centre)
    return ordered[max(0, i - 1):i + 2]


def perturb(config: dict, keys: list[str], *, factor: float, n: int, runs: list[dict],
            seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``n`` param sets around ``config``'s values of ``keys``, and the space they span."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from trainer.engine.config import load_config, to_dict

    full = to_dict(load_config(config))  # keys the config leaves to their defaults have their values
    rng = random.Random(seed)
    makers: dict[str, Any] = {}
    space: dict[str, Any] = {}
    for key in keys:
        v = _get(config, key)
        v = _get(full, key) if v is None else v
        if v is None:
            raise UsageError(f"--keys: the run's config has no {key}")
        if isinstance(v, (bool, str)):
            options = _neighbours(key, v, runs)
            if len(options) < 2:
                raise UsageError(f"--keys: {key}={v} has no neighbour among the runs found; "
                                 "widen the query or leave it out")
            makers[key] = lambda r, o=options: r.choice(o)
            space[key] = CategoricalDistribution(options)
        elif isinstance(v, (int, float)):
            if v == 0:
                raise UsageError(f"--keys: {key} is 0, which no factor changes; leave it out or set it first")
            if v < 0:
                raise UsageError(f"--keys: {key} is negative ({v}); only positive numbers are scaled")
            if key == "data.img_size" and isinstance(v, int):
                step = img_step(config, v)
                makers[key] = lambda r, v=v, s=step: max(s, round(v * factor ** r.uniform(-1, 1) / s) * s)
                lo, hi = max(step, math.floor(v / factor / step) * step), math.ceil(v * factor / step) * step
                space[key] = IntDistribution(lo, hi, step=step)
            elif isinstance(v, int):
                makers[key] = lambda r, v=v: max(1, round(v * factor ** r.uniform(-1, 1)))
                space[key] = IntDistribution(max(1, math.floor(v / factor)), max(1, math.ceil(v * factor)))
            else:
                makers[key] = lambda r, v=v: float(f"{v * factor ** r.uniform(-1, 1):.4g}")
                space[key] = FloatDistribution(v / factor, v * factor, log=True)
        else:
            raise UsageError(f"--keys: {key} holds {type(v).__name__}, not a number or a name")
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    centre = repr({k: _get(config, k) if _get(config, k) is not None else _get(full, k) for k in keys})
    tries = 0
    while len(points) < n and tries < n * 50:
        tries += 1
        p = {k: makers[k](rng) for k in keys}
        for k, d in space.items():  # rounding may step just outside the span: keep it inside
            if isinstance(d, FloatDistribution):
                p[k] = min(max(p[k], d.low), d.high)
        if repr(p) == centre or repr(p) in seen:
            continue
        seen.add(repr(p))
        points.append(p)
    return points, space


def earlier_sweeps(queue: Any, origin: dict[str, Any]) -> set[str]:
    """The ids of ``--around`` sweeps queued by the same command (their trials never move its centre)."""
    return {str(b["id"]) for j in queue.list() if (b := j.options.get("sweep") or {}).get("around") == origin}


def around_spec(store: Store, target: str, *, keys: str | None, factor: float, n: int, metric: str = "val_acc",
                goal: str | None = None, early_stop: Any = None, queue: Any = None) -> tuple[SearchSpec, dict]:
    """The :class:`SearchSpec` of an ``--around`` sweep, and the centre run.

    The same command gives the same sweep, so it resumes: the trials of an earlier sweep queued by
    it (found in ``queue``) are left out when the best run is chosen.
    """
    if factor <= 1:
        raise UsageError("--factor must be above 1 (2 means between half and twice each value)")
    if not 1 <= n <= MAX_POINTS:
        raise UsageError(f"--n must be between 1 and {MAX_POINTS}")
    goal = goal_for(metric, goal, "--around")
    origin = {"target": target, "keys": keys or DEFAULT_KEYS, "factor": factor, "n": n, "metric": metric,
              "goal": goal, "early_stop": early_stop or "none"}
    centre, runs = best_run(store, target, metric, goal, earlier_sweeps(queue, origin) if queue else set())
    base = _centre_config(store, centre)
    chosen = [config_key(k.strip()) for k in (keys or DEFAULT_KEYS).split(",") if k.strip()]
    if not chosen:
        raise UsageError("--keys: name at least one config key, e.g. --keys lr,weight_decay")
    points, space = perturb(base.config, chosen, factor=factor, n=n, runs=runs)
    if not points:
        raise UsageError("--around: no perturbation differs from the run itself; raise --factor or add --keys")
    spec = SearchSpec(base=base, method="around", metric=metric, goal=goal, space=space,
                      early_stop=parse_early_stop(early_stop, "--early-stop"), trials=len(points),
                      name=f"around {centre['_id']}", points=points, origin=origin)
    return spec, centre
