"""Sweeps that search: ``method: random | bayes`` over distributions, Optuna asking, the queue running.

A search sweep file::

    base: base.yaml                  # as for a grid (config id prefix, file, or mapping)
    method: bayes                    # random | bayes (TPE) | grid (see trainer.ops.sweep)
    metric: val_acc                  # what a trial is judged by (its run's best value)
    goal: max                        # max | min (default: the metric's own direction)
    budget: {trials: 20}             # or {minutes: 30} (no new trial after that), or both; 20 = {trials: 20}
    early_stop: asha                 # none | median | asha | hyperband, or {name: asha, reduction_factor: 3}
    seed: 0                          # the sampler's seed (part of the sweep's identity)
    axes:
      optimizer.lr: loguniform(1e-5, 1e-2)
      model.name: [resnet18, convnext_atto]

The study's truth is in the store and its queue, not in a database of its own, so it is the
same on SQLite and MongoDB and across machines. The sweep id is a hash of what defines the
search (base config, method, metric, goal, early stop, seed, axes: not the budget, so a larger
budget extends the same sweep). Trial ``N`` is a derived config (fields ``sweep`` and ``trial``)
and a queued job whose id is ``job-<sweep id>-NNNN``: queueing it is one atomic insert, so two
drivers never queue the same trial and no trial runs twice. Its ``options["sweep"]`` block holds
the trial's params and the sweep's definition, and its run is labelled ``sweep``/``trial``, so
``ednaquery find kind=run sweep=<id> --sort=-val_acc`` ranks the trials.

The driver (:func:`drive`, ``trainer sweep FILE``) rebuilds an in-memory Optuna study from the
trials found (queued and running ones as running, pruned, failed, complete with their values
and per-epoch series), asks for the next trial until the budget is spent, queues it, and by
default runs queued jobs itself like ``trainer worker``. Killed and started again, it finds the
same sweep and carries on; the run it was training is resumed from its checkpoint once its job
is re-queued as stale.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ednaquery.errors import NotFound, UsageError
from ednaquery.store.base import Store
from trainer.errors import ConfigError
from trainer.ops.jobs import Job, JobExists, JobQueue
from trainer.ops.launch import ResolvedConfig, derive, override_strings
from trainer.ops.prune import (
    EARLY_STOP_SETTINGS,
    EARLY_STOPS,
    epoch_values,
    latest_per_trial,
    sweep_runs,
    trial_value,
)
from trainer.ops.sweep import SWEEP_TAG, resolve_base

__all__ = ["METHODS", "SearchSpec", "Trial", "drive", "load_search", "load_trials", "search_spec", "summary"]

log = logging.getLogger(__name__)

METHODS = ("grid", "random", "bayes")
FILE_KEYS = ("base", "axes", "name", "description", "method", "metric", "goal", "budget", "early_stop", "seed")
TRIAL_STATES = ("queued", "running", "complete", "pruned", "failed")


@dataclass
class SearchSpec:
    """A search sweep: what to vary, how to choose, what is better, how much to spend."""

    base: ResolvedConfig
    method: str
    metric: str
    goal: str
    space: dict[str, Any]
    early_stop: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    trials: int | None = None
    minutes: float | None = None
    seed: int = 0
    name: str | None = None
    #: ``around``: the params of each trial, in order (no sampler)
    points: list[dict[str, Any]] | None = None
    #: ``around``: the command's arguments (kept in every trial's block, not part of the id)
    origin: dict[str, Any] | None = None
    source: str | None = None
    sweep_id: str = ""

    def __post_init__(self) -> None:
        if not self.sweep_id:
            self.sweep_id = sweep_id_for(self)

    def block(self, number: int, params: dict[str, Any]) -> dict[str, Any]:
        """The ``options["sweep"]`` of trial ``number``'s job: the trial plus the sweep's definition."""
        from optuna.distributions import distribution_to_json

        return {"id": self.sweep_id, "trial": number, "params": params, "method": self.method,
                "metric": self.metric, "goal": self.goal, "early_stop": self.early_stop, "name": self.name,
                "base": self.base.config_id, "space": {k: distribution_to_json(d) for k, d in self.space.items()},
                **({"around": self.origin} if self.origin is not None else {})}


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def sweep_id_for(spec: SearchSpec) -> str:
    """``sw-`` + a hash of what defines the search (not its budget): the same file gives the same sweep."""
    from optuna.distributions import distribution_to_json

    ident = {"base": spec.base.config_id, "method": spec.method, "metric": spec.metric, "goal": spec.goal,
             "early_stop": spec.early_stop, "seed": spec.seed,
             "space": {k: distribution_to_json(d) for k, d in spec.space.items()}, "points": spec.points}
    return "sw-" + hashlib.sha256(_canonical(ident).encode()).hexdigest()[:10]


def trial_job_id(sweep_id: str, number: int) -> str:
    """The job id of a sweep's trial: fixed, so queueing it twice is refused atomically."""
    return f"job-{sweep_id}-{number:04d}"


# ------------------------------------------------------------------ reading a sweep file


def _budget(value: Any, where: str, method: str) -> tuple[int | None, float | None]:
    if isinstance(value, bool) or value is None:
        raise UsageError(f"{where}: a {method} sweep needs `budget:` ({{trials: N}} and/or {{minutes: M}})")
    if isinstance(value, int):
        value = {"trials": value}
    if not isinstance(value, dict) or not value or set(value) - {"trials", "minutes"}:
        raise UsageError(f"{where}: `budget:` is {{trials: N}}, {{minutes: M}} or both")
    trials, minutes = value.get("trials"), value.get("minutes")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise UsageError(f"{where}: budget.trials must be a whole number >= 1, not {trials!r}")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        raise UsageError(f"{where}: budget.minutes must be a number > 0, not {minutes!r}")
    return trials, (float(minutes) if minutes is not None else None)


def parse_early_stop(value: Any, where: str) -> dict[str, Any]:
    """``early_stop:`` as a name or ``{name: .., setting: ..}`` -> a checked mapping."""
    if value is None or value is False:
        value = "none"
    spec = {"name": value} if isinstance(value, str) else dict(value) if isinstance(value, dict) else None
    if spec is None or spec.get("name") not in EARLY_STOPS:
        raise UsageError(f"{where}: early_stop must be one of {', '.join(EARLY_STOPS)} (or {{name: asha, ...}})")
    allowed = EARLY_STOP_SETTINGS[spec["name"]]
    for k, v in spec.items():
        if k == "name":
            continue
        if k not in allowed:
            raise UsageError(f"{where}: early_stop {spec['name']} has no setting {k!r} "
                             f"(it has {', '.join(allowed) or 'none'})")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise UsageError(f"{where}: early_stop.{k} must be a whole number >= 0")
    return spec


def goal_for(metric: str, goal: Any, where: str) -> str:
    """``max``/``min`` as written, else the metric's own direction (accuracies max, losses min)."""
    from ednaquery.metrics import direction

    if goal is None:
        return direction(metric) or "max"
    if goal not in ("max", "min"):
        raise UsageError(f"{where}: goal must be max or min, not {goal!r}")
    return str(goal)


def _check_ends(base: ResolvedConfig, space: dict[str, Any], where: str) -> None:
    """Each axis at its ends gives a valid config (a bad key or range fails now, in one line)."""
    from optuna.distributions import CategoricalDistribution

    for key, dist in space.items():
        ends = dist.choices if isinstance(dist, CategoricalDistribution) else (dist.low, dist.high)
        for v in ends:
            try:
                derive(base, {key: v})
            except ConfigError as exc:
                raise ConfigError(f"{where}: {key}={v}: {exc}") from None


def search_spec(grid: dict, *, store: Store, base_dir: str | os.PathLike[str] = ".", source: str | None = None,
                index_base: bool = True) -> SearchSpec:
    """A random/bayes sweep file's mapping -> its checked :class:`SearchSpec` (nothing queued)."""
    from trainer.ops.space import parse_space

    where = source or "sweep"
    unknown = sorted(set(grid) - set(FILE_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} in the sweep file (it has {', '.join(FILE_KEYS)})")
    method = grid.get("method", "grid")
    if method not in ("random", "bayes"):
        raise UsageError(f"{where}: method must be one of {', '.join(METHODS)}, not {method!r}")
    metric = str(grid.get("metric") or "val_acc")
    goal = goal_for(metric, grid.get("goal"), where)
    trials, minutes = _budget(grid.get("budget"), where, method)
    early_stop = parse_early_stop(grid.get("early_stop"), where)
    seed = grid.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"{where}: seed must be a whole number")
    space = parse_space(grid.get("axes"), where)
    base = resolve_base(store, grid, Path(base_dir), where, index_base)
    _check_ends(base, space, where)
    return SearchSpec(base=base, method=method, metric=metric, goal=goal, space=space, early_stop=early_stop,
                      trials=trials, minutes=minutes, seed=seed, name=grid.get("name"), source=source)


def load_search(path: str | os.PathLike[str], grid: dict, *, store: Store, index_base: bool = True) -> SearchSpec:
    """The :class:`SearchSpec` of a sweep file already read into ``grid`` (paths relative to its folder)."""
    p = Path(path)
    return search_spec(grid, store=store, base_dir=p.resolve().parent, source=str(p.resolve()),
                       index_base=index_base)


# ------------------------------------------------------------------ the trials in the store


@dataclass
class Trial:
    """One trial as the store and queue tell it."""

    number: int
    params: dict[str, Any]
    job: Job
    state: str  # queued | running | complete | pruned | failed
    run: dict | None = None
    value: float | None = None
    values: dict[int, float] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        return self.run["_id"] if self.run else self.job.run_id

    @property
    def epochs(self) -> int | None:
        """Epochs the trial's run trained (a pruned one: the epoch it stopped at)."""
        return ((self.run or {}).get("info") or {}).get("epochs_done")


def sweep_jobs(queue: JobQueue, sweep_id: str) -> list[Job]:
    """The jobs of a sweep's trials, by trial number (a cancelled one counts as a failed trial)."""
    jobs = [j for j in queue.list() if (j.options.get("sweep") or {}).get("id") == sweep_id]
    return sorted(jobs, key=lambda j: int(j.options["sweep"]["trial"]))


def _state(job: Job, run: dict | None, value: float | None) -> str:
    if job.status in ("queued", "running"):
        return job.status
    if job.status == "completed" and run is not None:
        if run.get("status") == "pruned":
            return "pruned"
        if run.get("status") == "completed" and value is not None:
            return "complete"
    return "failed"


def load_trials(store: Store, queue: JobQueue, sweep_id: str, metric: str, goal: str) -> list[Trial]:
    """Every trial of the sweep with its state, value and per-epoch ``metric`` series."""
    jobs = sweep_jobs(queue, sweep_id)
    runs = latest_per_trial(sweep_runs(store, sweep_id)) if jobs else {}
    series = epoch_values(store.series([d["_id"] for d in runs.values()], [metric])) if runs else {}
    out = []
    for job in jobs:
        block = job.options["sweep"]
        n = int(block["trial"])
        run = runs.get(n)
        value = trial_value(run, metric, goal) if run is not None else None
        state = _state(job, run, value)
        out.append(Trial(number=n, params=dict(block.get("params") or {}), job=job, state=state, run=run,
                         value=value if state == "complete" else None,
                         values=series.get(run["_id"], {}) if run else {}))
    return out


def find_sweep(queue: JobQueue, prefix: str) -> dict[str, Any]:
    """The sweep block (of its first trial) of the sweep whose id starts with ``prefix``."""
    found: dict[str, dict] = {}
    for j in queue.list():
        block = j.options.get("sweep") or {}
        sid = str(block.get("id") or "")
        if sid.startswith(prefix) and sid not in found:
            found[sid] = block
    if not found:
        raise NotFound(f"no sweep {prefix!r} in this store's queue; `trainer jobs` lists the queued trials")
    if len(found) > 1:
        raise UsageError(f"sweep id prefix {prefix!r} is ambiguous ({', '.join(sorted(found))}); type more")
    return next(iter(found.values()))


def space_of(block: dict[str, Any]) -> dict[str, Any]:
    """A sweep block's distributions, back from JSON."""
    from optuna.distributions import json_to_distribution

    return {k: json_to_distribution(v) for k, v in (block.get("space") or {}).items()}


# ------------------------------------------------------------------ the study


def _fits(dist: Any, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def build_study(sweep_id: str, goal: str, space: dict[str, Any], trials: list[Trial], *,
                sampler: Any = None) -> Any:
    """An in-memory Optuna study holding the sweep's trials with the same numbers."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=sweep_id, direction="maximize" if goal == "max" else "minimize",
                                sampler=sampler)
    by_number = {t.number: t for t in trials}
    states = {"queued": TrialState.RUNNING, "running": TrialState.RUNNING, "complete": TrialState.COMPLETE,
              "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}
    for n in range(max(by_number, default=-1) + 1):
        t = by_number.get(n)
        if t is None:
            study.add_trial(create_trial(state=TrialState.FAIL, params={}, distributions={}))
            continue
        params = {k: v for k, v in t.params.items() if k in space and _fits(space[k], v)}
        study.add_trial(create_trial(
            state=states[t.state], params=params, distributions={k: space[k] for k in params},
            value=t.value if t.state == "complete" else None,
            intermediate_values=t.values if t.state != "failed" else None))
    return study


def make_sampler(spec: SearchSpec, number: int) -> Any:
    """The sampler for trial ``number``: seeded per trial, so a rebuilt study never repeats a draw."""
    import optuna

    seed = (spec.seed * 1_000_003 + number * 7919) % (2**32)
    if spec.method == "bayes":
        startup = max(2, min(10, (spec.trials or 40) // 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


def next_params(spec: SearchSpec, trials: list[Trial]) -> tuple[int, dict[str, Any]]:
    """The next trial's number and params (asked of the sampler, or the next ``around`` point)."""
    number = max((t.number for t in trials), default=-1) + 1
    if spec.points is not None:
        return number, dict(spec.points[number])
    study = build_study(spec.sweep_id, spec.goal, spec.space, trials, sampler=make_sampler(spec, number))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask(spec.space)
    return number, dict(trial.params)


def trial_config(spec: SearchSpec, number: int, params: dict[str, Any]) -> ResolvedConfig:
    """Trial ``number``'s derived config (fields ``sweep`` and ``trial``; tags derived, sweep)."""
    try:
        return derive(spec.base, params, tags=[SWEEP_TAG], extra={"sweep": spec.sweep_id, "trial": number})
    except ConfigError as exc:
        raise ConfigError(f"sweep {spec.sweep_id} trial {number}: {' '.join(override_strings(params))}: {exc}") \
            from None


def enqueue_trial(spec: SearchSpec, *, store: Store, queue: JobQueue, number: int, params: dict[str, Any],
                  options: dict | None = None) -> Job | None:
    """Index trial ``number``'s config and queue its job; None when another driver queued it first."""
    resolved = trial_config(spec, number, params)
    docs = [resolved.doc] if resolved.derived_from is not None else []
    if spec.base.derived_from == "inline":
        docs.append(spec.base.doc)
    if docs:
        store.upsert(docs)
    try:
        return queue.enqueue(resolved.config_id, options={**(options or {}), "sweep": spec.block(number, params)},
                             job_id=trial_job_id(spec.sweep_id, number))
    except JobExists:
        return None


def budget_left(spec: SearchSpec, trials: list[Trial], now: float) -> int:
    """How many more trials may be asked for now (0: the budget is spent)."""
    left = 1 << 30
    if spec.points is not None:
        left = len(spec.points) - len(trials)
    if spec.trials is not None:
        left = min(left, spec.trials - len(trials))
    if spec.minutes is not None and trials:
        started = min(t.job.created_at or now for t in trials)
        if now - started >= spec.minutes * 60:
            left = 0
    return max(0, left)


def drive(spec: SearchSpec, *, store: Store, queue: JobQueue, parallel: int = 1,
          run_job: Callable[..., Any] | None = None, worker_options: Any = None,
          stop: threading.Event | None = None, say: Callable[[str], None] | None = None,
          poll_interval: float = 2.0, job_options: dict | None = None, wait: bool = True,
          clock: Callable[[], float] = time.time) -> list[Trial]:
    """Ask, queue and (with ``run_job``) run trials until the budget is spent and every trial has ended.

    ``parallel`` trials are kept queued or running at once (1: each trial is asked knowing all
    earlier results). Without ``run_job`` other processes' ``trainer worker`` run them; with
    ``wait`` False the driver returns once it has queued what it may.
    """
    from trainer.ops.worker import WorkerOptions, run_worker

    stop = stop or threading.Event()
    say = say or (lambda m: log.info("%s", m))
    opts = replace(worker_options or WorkerOptions(), once=True, until_empty=True, max_jobs=1)
    while True:
        trials = load_trials(store, queue, spec.sweep_id, spec.metric, spec.goal)
        active = [t for t in trials if t.state in ("queued", "running")]
        if not stop.is_set() and len(active) < parallel and budget_left(spec, trials, clock()) > 0:
            number, params = next_params(spec, trials)
            job = enqueue_trial(spec, store=store, queue=queue, number=number, params=params, options=job_options)
            if job is not None:
                say(f"sweep {spec.sweep_id} trial {number}: {' '.join(override_strings(params))} ({job.id})")
            continue
        if not active or stop.is_set() or not wait:
            return trials
        if run_job is not None:
            report = run_worker(queue, run_job, options=opts, stop=stop, on_event=say)
            if report.jobs:
                continue
        stop.wait(poll_interval)


# ------------------------------------------------------------------ reporting


def summary(trials: list[Trial], goal: str) -> dict[str, Any]:
    """Counts by state, the best trial so far, and the best-so-far value after each trial (by number)."""
    counts = {s: sum(1 for t in trials if t.state == s) for s in TRIAL_STATES}
    better = (lambda a, b: a > b) if goal == "max" else (lambda a, b: a < b)
    best: Trial | None = None
    curve: list[float | None] = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.value is not None and (best is None or better(t.value, best.value)):
            best = t
        curve.append(best.value if best is not None else None)
    return {"counts": counts, "best": best, "curve": curve}
