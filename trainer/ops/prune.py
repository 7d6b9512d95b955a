"""Early stopping for a sweep's trials: after each epoch, Optuna's pruner decides from the store.

A worker that runs a trial (a job whose options carry a ``sweep`` block, see
:mod:`trainer.ops.search`) labels its run with ``sweep`` and ``trial`` and, when the sweep has
``early_stop``, asks after every epoch: the sibling trials' runs are found in the store by
``sweep=<id>``, their per-epoch ``metric`` series read back, and an in-memory Optuna study is
rebuilt from them (trial numbers as in the sweep, so Hyperband's brackets agree on every
machine). The pruner's verdict on this trial ends the run with status ``pruned`` (its
``run.epochs_done`` is the epoch it stopped at). Nothing is kept outside the store, so workers on
several machines prune against the same evidence.

Successive halving records each trial's value at each rung as it passes; those records are
rebuilt from the series the same way (the value at the first epoch at or past each rung's
step), which holds because every trial is asked after every epoch.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ednaquery.store.base import Store

__all__ = ["EARLY_STOPS", "TrialPruner", "make_pruner", "trial_hooks"]

log = logging.getLogger(__name__)

EARLY_STOPS = ("none", "median", "asha", "hyperband")
#: each early stop's settings and their defaults (the sweep file may set them: {name: asha, reduction_factor: 3})
EARLY_STOP_SETTINGS: dict[str, dict[str, Any]] = {
    "none": {},
    "median": {"startup_trials": 2, "warmup_epochs": 1},
    "asha": {"min_resource": 1, "reduction_factor": 2},
    "hyperband": {"min_resource": 1, "max_resource": None, "reduction_factor": 3},
}


def make_pruner(early_stop: dict[str, Any], *, max_epochs: int | None = None) -> Any:
    """The Optuna pruner an ``early_stop`` block names (None for ``none``)."""
    import optuna

    name = early_stop.get("name", "none")
    opts = {**EARLY_STOP_SETTINGS.get(name, {}), **{k: v for k, v in early_stop.items() if k != "name"}}
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(opts["startup_trials"]),
                                           n_warmup_steps=int(opts["warmup_epochs"]))
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=int(opts["min_resource"]),
                                                      reduction_factor=int(opts["reduction_factor"]))
    if name == "hyperband":
        top = opts["max_resource"] or max_epochs
        return optuna.pruners.HyperbandPruner(min_resource=int(opts["min_resource"]),
                                              max_resource=int(top) if top else "auto",
                                              reduction_factor=int(opts["reduction_factor"]))
    return None


def _halving_for(pruner: Any, study: Any, trial: Any) -> Any:
    """The successive-halving pruner that judges ``trial`` (Hyperband: its bracket's), or None."""
    import optuna

    if isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner):
        return pruner
    if isinstance(pruner, optuna.pruners.HyperbandPruner):
        # Optuna keeps the brackets private; they are built from the settings alone when max_resource is set
        if not pruner._pruners:
            pruner._try_initialization(study)
        if pruner._pruners:
            return pruner._pruners[pruner._get_bracket_id(study, trial)]
    return None


def rung_records(halving: Any, values: dict[int, float], before: int | None = None) -> dict[str, float]:
    """The ``completed_rung_N`` records successive halving would have left on a trial asked after
    every epoch of ``values`` (epochs before ``before`` only)."""
    out: dict[str, float] = {}
    steps = sorted(s for s in values if before is None or s < before)
    rung = 0
    low = halving._min_resource or 1
    while True:
        promotion = low * halving._reduction_factor ** (halving._min_early_stopping_rate + rung)
        reached = [s for s in steps if s >= promotion]
        if not reached:
            return out
        value = values[reached[0]]
        out[f"completed_rung_{rung}"] = value
        if isinstance(value, float) and math.isnan(value):
            return out
        rung += 1


def epoch_values(points: list[tuple]) -> dict[str, dict[int, float]]:
    """``store.series`` points -> ``{run id: {epoch: value}}`` (epoch rows only)."""
    out: dict[str, dict[int, float]] = {}
    for run_id, _metric, _step, epoch, value in points:
        if epoch is not None:
            out.setdefault(run_id, {})[int(epoch)] = float(value)
    return out


def sweep_runs(store: Store, sweep_id: str) -> list[dict]:
    """The run documents labelled with this sweep (``sweep=<id>``), any status."""
    from trainer.ops.query import find_runs

    return find_runs(store, [f"sweep={sweep_id}"])


def latest_per_trial(runs: list[dict]) -> dict[int, dict]:
    """``{trial number: its latest run document}`` (a trial run again keeps its newest run)."""
    out: dict[int, dict] = {}
    for doc in sorted(runs, key=lambda d: d["_id"]):
        n = (doc.get("info") or {}).get("trial")
        if isinstance(n, int):
            out[n] = doc
    return out


class TrialPruner:
    """The ``on_epoch`` callback of one trial: answers ``pruned`` when the sweep's pruner says so."""

    def __init__(self, store: Store, sweep: dict[str, Any]) -> None:
        self.store = store
        self.sweep = sweep
        self.metric = str(sweep.get("metric") or "val_acc")
        self.goal = str(sweep.get("goal") or "max")
        self.number = int(sweep["trial"])
        self.values: dict[int, float] = {}

    def __call__(self, snap: Any) -> str | None:
        row = getattr(snap, "row", None) or {}
        value = row.get(self.metric)
        if value is None or row.get("epoch") is None:
            return None
        epoch = int(row["epoch"])
        self.values[epoch] = float(value)
        max_epochs = int(((getattr(snap, "config", None) or {}).get("train") or {}).get("epochs") or 0) or None
        if max_epochs is not None and epoch >= max_epochs:
            return None  # the last epoch: nothing left to save
        try:
            pruned = self.decide(snap.run_id, epoch, max_epochs)
        except Exception as exc:  # noqa: BLE001 - a pruner that cannot decide must not fail the run
            log.warning("sweep %s trial %d: no pruning decision at epoch %d: %s", self.sweep.get("id"),
                        self.number, epoch, exc)
            return None
        if pruned:
            log.info("sweep %s trial %d pruned after epoch %d (%s %.4g)", self.sweep.get("id"), self.number,
                     epoch, self.metric, value)
            return "pruned"
        return None

    def decide(self, run_id: str, epoch: int, max_epochs: int | None) -> bool:
        """Rebuild the study from the store and ask the pruner about this trial at ``epoch``."""
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = make_pruner(dict(self.sweep.get("early_stop") or {}), max_epochs=max_epochs)
        if pruner is None:
            return False
        runs = {n: d for n, d in latest_per_trial(sweep_runs(self.store, str(self.sweep["id"]))).items()
                if n != self.number}
        series = epoch_values(self.store.series([d["_id"] for d in runs.values()], [self.metric]))
        mine = dict(series.get(run_id, {}))
        study = optuna.create_study(study_name=str(self.sweep["id"]), pruner=pruner,
                                    direction="maximize" if self.goal == "max" else "minimize")
        own = {e: v for e, v in {**mine, **self.values}.items() if e <= epoch}

        def rungs(number: int, values: dict[int, float], before: int | None = None) -> dict[str, float]:
            halving = _halving_for(pruner, study, SimpleNamespace(number=number))
            return rung_records(halving, values, before) if halving is not None else {}

        for n in range(max([self.number, *runs]) + 1):
            doc = runs.get(n)
            if n == self.number:
                study.add_trial(create_trial(state=TrialState.RUNNING, params={}, distributions={},
                                             intermediate_values=own, system_attrs=rungs(n, own, epoch)))
                continue
            if doc is None:
                study.add_trial(create_trial(state=TrialState.FAIL, params={}, distributions={}))
                continue
            iv = series.get(doc["_id"], {})
            state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
                     "failed": TrialState.FAIL}.get(doc.get("status"), TrialState.RUNNING)
            value = trial_value(doc, self.metric, self.goal) if state == TrialState.COMPLETE else None
            if state == TrialState.COMPLETE and value is None:
                state = TrialState.FAIL
            if state == TrialState.FAIL:
                iv = {}
            study.add_trial(create_trial(state=state, params={}, distributions={}, value=value,
                                         intermediate_values=iv, system_attrs=rungs(n, iv)))
        me = study.get_trials(deepcopy=False)[self.number]
        return bool(pruner.prune(study, me))


def trial_value(doc: dict, metric: str, goal: str) -> float | None:
    """A finished trial's objective: its run's best ``metric`` (toward ``goal``), else the last value."""
    from ednaquery.documents import unescape_keys
    from ednaquery.metrics import direction

    m = (unescape_keys(doc.get("metrics") or {})).get(metric) or {}
    if "best" in m and direction(metric) in (None, goal):
        return float(m["best"])
    return float(m["last"]) if "last" in m else None


def trial_hooks(store: Store, sweep: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                                    Callable[[Any], str | None] | None]:
    """A job's sweep block -> (the run's labels, its pruning callback or None)."""
    if not sweep or "id" not in sweep or "trial" not in sweep:
        return None, None
    labels = {"sweep": str(sweep["id"]), "trial": int(sweep["trial"])}
    name = (sweep.get("early_stop") or {}).get("name", "none")
    return labels, (TrialPruner(store, sweep) if name != "none" else None)
