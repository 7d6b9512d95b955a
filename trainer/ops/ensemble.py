"""``trainer ensemble``: combine trained runs into an ensemble run, indexed like any run.

1. :func:`plan_ensemble`: the runs a query finds (the query language of docs/query.md, as
   ``trainer ls``), completed runs of this trainer that are not themselves ensembles, ranked by a metric (``--by``, the
   best-epoch value), the top K kept. Members must agree on class list, image size and channels
   (else :class:`~ednaquery.errors.UsageError`, one line, exit 2) and each needs its ``best.pt``.
2. :func:`evaluate_members`: each member's model is rebuilt from its run folder's ``config.yaml``
   and ``best.pt`` (:func:`load_run_model`) and run over the validation (and, where the dataset has
   one, test) images exactly as the member saw them (:func:`trainer.engine.data.build_data` on its
   own config, its own normalisation); the softmax outputs are kept. Members validated on different
   images (another ``data.val_split``, another fold) are refused.
3. :func:`write_ensemble_run`: a combination of :mod:`trainer.ops.combine` (mean, weighted, vote,
   stacking) is scored and written as a run folder through :class:`trainer.engine.runs.RunWriter`
   (atomic files) and indexed (:class:`trainer.recorder.RunRecorder`): ``members: [run ids]`` and
   ``ensemble: {combine, best_member, val_loss_delta, ...}`` in run.json, the usual metrics (``val_acc``,
   ``val_loss``, ``val_top5``, ``test_*``) plus ``val_acc_gain`` (ensemble minus its best member,
   the member with the highest validation accuracy), ``predictions.npz`` (the members' and
   the ensemble's class probabilities) and ``val_confusion.json`` (for ``trainer plot``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ednaquery.documents import config_id as content_id
from ednaquery.documents import new_run_id, unescape_keys
from ednaquery.errors import UsageError
from ednaquery.metrics import direction, finite_number
from ednaquery.runfolder import RUN_FORMAT
from ednaquery.store.base import Store
from trainer.ops.combine import COMBINES, combine, scores, stack_folds
from trainer.ops.query import find_runs

__all__ = ["COMBINES", "EnsemblePlan", "EnsembleResult", "LoadedModel", "Member", "MemberOutputs",
           "evaluate_members", "load_run_model", "plan_ensemble", "run_ensemble", "write_ensemble_run"]

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.npz"
#: data keys that decide which images a run is validated on (copied into the ensemble's config)
EVAL_DATA_KEYS = ("dataset", "root", "img_size", "channels", "val_split", "fake_samples", "folds", "fold")


# ------------------------------------------------------------------ the plan


@dataclass
class Member:
    """One run of the ensemble, as its run folder describes it."""

    run_id: str
    run_dir: Path
    config: dict[str, Any]  # config.yaml as written
    cfg: Any  # the same, validated: a TrainerConfig
    score: float | None  # the --by metric's best value, from the store
    class_names: list[str] | None

    @property
    def model_name(self) -> str:
        return str(self.cfg.model.name)

    @property
    def data(self) -> dict[str, Any]:
        return self.config.get("data") or {}

    @property
    def img_hw(self) -> tuple[int, int]:
        return self.cfg.img_hw


@dataclass
class EnsemblePlan:
    """What an ensemble command will do: members, combinations, and where it found them."""

    query: list[str]
    members: list[Member]
    combines: list[str]
    by: str
    top: int | None
    folds: int
    skipped: int = 0  # runs the query found that cannot be members (not completed, another tool's, ensembles)

    def describe(self) -> list[str]:
        """The plan as lines (``--dry-run``)."""
        q = " ".join(self.query) or "(all runs)"
        top = f"top {self.top} " if self.top else ""
        lines = [f"members: {len(self.members)} run(s) from {q!r}, {top}by {self.by}"
                 + (f" ({self.skipped} other match(es) skipped: not completed, another tool's, or ensembles)"
                    if self.skipped else "")]
        for m in self.members:
            score = f"{m.score:.4f}" if m.score is not None else "-"
            lines.append(f"  {m.run_id}  {m.model_name}  {self.by} {score}  {m.run_dir}")
        combos = [f"{c} ({self.folds} folds of the validation set)" if c == "stacking" else c for c in self.combines]
        lines.append("combine: " + ", ".join(combos))
        m0 = self.members[0]
        h, w = m0.img_hw
        classes = f"{len(m0.class_names)} classes" if m0.class_names else "classes from best.pt"
        lines.append(f"data: {m0.cfg.data.dataset} validation split (and its test set where the dataset has "
                     f"one), {h}x{w}, channels {m0.cfg.data.channels or 'native'}, {classes}; "
                     f"each member's own data config and normalisation")
        return lines


def _score(doc: dict, by: str) -> float | None:
    m = unescape_keys(doc.get("metrics") or {}).get(by) or {}
    best = finite_number(m.get("best"))
    return best if best is not None else finite_number(m.get("last"))


def _is_ensemble(doc: dict) -> bool:
    return bool((doc.get("info") or {}).get("members"))


def _read_folder(run_id: str, run_dir: Path, score: float | None) -> Member:
    from trainer.engine.config import load_config
    from trainer.engine.runs import load_run
    from trainer.errors import ConfigError

    if not (run_dir / "best.pt").is_file():
        raise UsageError(f"run {run_id} has no best.pt in {run_dir}; it cannot be an ensemble member")
    snap = load_run(run_dir)
    if not snap.config:
        raise UsageError(f"run {run_id} has no config.yaml in {run_dir}")
    try:
        cfg = load_config(snap.config)
    except ConfigError as exc:
        raise ConfigError(f"run {run_id}: {exc}") from None
    names = snap.info.get("class_names")
    return Member(run_id=run_id, run_dir=run_dir, config=snap.config, cfg=cfg, score=score,
                  class_names=[str(n) for n in names] if isinstance(names, list) else None)


def check_compatible(members: list[Member]) -> None:
    """Refuse (one line) members whose class lists, image sizes or channel counts differ."""
    first = members[0]
    for m in members[1:]:
        if m.class_names is not None and first.class_names is not None and m.class_names != first.class_names:
            raise UsageError(f"members disagree on the classes: {first.run_id} has {len(first.class_names)} "
                             f"({_short(first.class_names)}), {m.run_id} has {len(m.class_names)} "
                             f"({_short(m.class_names)})")
        if m.img_hw != first.img_hw:
            raise UsageError(f"members disagree on the input size: {first.run_id} has data.img_size "
                             f"{_hw(first.img_hw)}, {m.run_id} has {_hw(m.img_hw)}")
        a, b = first.cfg.data.channels, m.cfg.data.channels
        if a is not None and b is not None and a != b:  # a dataset's native count is checked once it is loaded
            raise UsageError(f"members disagree on the input channels: {first.run_id} has data.channels {a}, "
                             f"{m.run_id} has {b}")


def _short(names: list[str]) -> str:
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def _hw(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def plan_ensemble(store: Store, query: list[str], *, combines: list[str], by: str = "val_acc",
                  top: int | None = None, folds: int = 5, runs_root: Path | None = None) -> EnsemblePlan:
    """The members a query finds (ranked by ``by``, the top ``top``), checked; nothing is loaded or written."""
    from trainer.ops.launch import find_run_folder

    unknown = [c for c in combines if c not in COMBINES]
    if unknown or not combines:
        raise UsageError(f"--combine: {', '.join(unknown) or 'nothing'}; use one of {', '.join(COMBINES)}")
    if folds < 2:
        raise UsageError("--folds must be 2 or more")
    docs = find_runs(store, query)
    usable = [d for d in docs if d.get("status") == "completed" and d.get("format") == RUN_FORMAT
              and not _is_ensemble(d)]
    skipped = len(docs) - len(usable)
    lower = direction(by) == "min"
    ranked = sorted(usable, key=lambda d: (_score(d, by) is None,
                                           (1 if lower else -1) * (_score(d, by) or 0.0), d["_id"]))
    if top and len(usable) > top and all(_score(d, by) is None for d in usable):
        raise UsageError(f"--by {by}: none of the {len(usable)} runs has this metric, so --top {top} cannot "
                         "rank them; `ednaquery keys 'metrics.*'` lists the metrics")
    chosen = ranked[:top] if top else ranked
    if len(chosen) < 2:
        q = " ".join(query) or "(all runs)"
        raise UsageError(f"an ensemble needs at least 2 completed trainer runs; {q!r} finds {len(chosen)}"
                         + (f" ({skipped} other match(es): not completed, another tool's, or ensembles)"
                            if skipped else ""))
    members = [_read_folder(d["_id"], find_run_folder(store, d["_id"], runs_root), _score(d, by)) for d in chosen]
    check_compatible(members)
    return EnsemblePlan(query=list(query), members=members, combines=list(dict.fromkeys(combines)), by=by,
                        top=top, folds=folds, skipped=skipped)


# ------------------------------------------------------------------ members' predictions


@dataclass
class LoadedModel:
    """A run's model with its best.pt weights, ready for inference, and what it needs to be fed."""

    cfg: Any  # TrainerConfig
    model: Any  # torch.nn.Module, eval mode, on its device
    class_names: list[str]
    inputs: Any  # torch.nn.Module: 0..255 pixels -> the model's input (mean/std or the data.features stack)
    amp_dtype: Any

    def prepare(self, x: Any) -> Any:
        """uint8 images -> the model's input, as the run's Trainer.prepare made it."""
        return self.inputs(x.float())


def load_run_model(run_dir: Path, *, in_chans: int, device: Any) -> LoadedModel:
    """A run's best.pt through :func:`trainer.ops.restore.restore_run` (the one loader of a run's model),
    checked against the ensemble's images (``in_chans``: their channels)."""
    from trainer.engine.loop import resolve_amp
    from trainer.ops.restore import restore_run

    run = restore_run(run_dir, device=device)
    if run.preprocess.channels != in_chans:
        raise UsageError(f"run {run.run_id} was trained on {run.preprocess.channels}-channel images, "
                         f"the ensemble's have {in_chans}")
    return LoadedModel(cfg=run.cfg, model=run.model, class_names=run.class_names,
                       inputs=run.preprocess.input_module().to(device), amp_dtype=resolve_amp(run.cfg.train.amp,
                                                                                             run.device))


def predict_probs(loaded: LoadedModel, loader: Any, device: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """(softmax outputs [N, C], labels [N], digest of the images and labels seen) over a loader."""
    import contextlib

    import torch

    digest = hashlib.sha256()
    probs, labels = [], []
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(0)
    autocast = (torch.autocast(device_type=device.type, dtype=loaded.amp_dtype) if loaded.amp_dtype is not None
                else contextlib.nullcontext())
    with torch.no_grad():
        for x, y in loader:
            digest.update(x.cpu().numpy().tobytes())
            digest.update(y.cpu().numpy().tobytes())
            x = loaded.prepare(x.to(device))
            with autocast:
                out = loaded.model(x)
            probs.append(torch.softmax(out.double(), dim=1).cpu().numpy())
            labels.append(y.cpu().numpy())
    c = len(loaded.class_names)
    return (np.concatenate(probs) if probs else np.zeros((0, c)),
            np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64), digest.hexdigest())


@dataclass
class MemberOutputs:
    """Every member's class probabilities on the shared validation (and test) images."""

    members: list[Member]
    class_names: list[str]
    probs: np.ndarray  # [M, N, C]
    labels: np.ndarray  # [N]
    test_probs: np.ndarray | None = None  # [M, N_test, C]
    test_labels: np.ndarray | None = None
    member_scores: list[dict[str, float]] = field(default_factory=list)  # each member's own val_*/test_*
    img_size: tuple[int, int] = (0, 0)
    channels: int = 0
    device: str = "cpu"
    device_name: str = ""


def _data_for(cfg: Any, cache: dict[str, Any]) -> Any:
    """The member's data bundle, as its run built it (loader workers aside); one per distinct data config."""
    from trainer.engine.config import to_dict
    from trainer.engine.data import build_data

    cfg = replace(cfg, data=replace(cfg.data, workers=0))  # same images and order; no loader processes
    key = json.dumps([to_dict(cfg)["data"], cfg.model.num_classes], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = build_data(cfg)
    return cache[key]


def evaluate_members(plan: EnsemblePlan, *, device: str | None = None,
                     say: Any = None) -> MemberOutputs:
    """Run every member over its validation (and test) images; refuse members that saw other images."""
    from trainer.engine.loop import device_name, resolve_device

    dev = resolve_device(device or "auto")
    cache: dict[str, Any] = {}
    probs, test_probs, member_scores = [], [], []
    labels = test_labels = None
    digest = test_digest = None
    names: list[str] | None = None
    first = plan.members[0]
    bundle = None
    channels: int | None = None
    for m in plan.members:
        bundle = _data_for(m.cfg, cache)
        if channels is None:
            channels = bundle.channels
        elif bundle.channels != channels:
            raise UsageError(f"members disagree on the input channels: {first.run_id} takes {channels}, "
                             f"{m.run_id} takes {bundle.channels}")
        loaded = load_run_model(m.run_dir, in_chans=bundle.channels, device=dev)
        if names is None:
            names = loaded.class_names
        elif loaded.class_names != names:
            raise UsageError(f"members disagree on the classes: {first.run_id}'s best.pt has {len(names)} "
                             f"({_short(names)}), {m.run_id}'s has {len(loaded.class_names)}")
        if list(bundle.class_names) != names:
            raise UsageError(f"run {m.run_id}: best.pt's classes differ from its dataset's "
                             f"({_short(list(bundle.class_names))})")
        p, y, d = predict_probs(loaded, bundle.val_loader, dev)
        if digest is None:
            labels, digest = y, d
        elif d != digest:
            raise UsageError(f"members were validated on different images: {first.run_id} and {m.run_id} "
                             f"(another data.val_split, fold or dataset?)")
        row = scores(p, y)
        probs.append(p)
        test_loader = getattr(bundle, "test_loader", None)
        if test_loader is not None:
            tp, ty, td = predict_probs(loaded, test_loader, dev)
            if test_digest is None:
                test_labels, test_digest = ty, td
            elif td != test_digest:
                raise UsageError(f"members were tested on different images: {first.run_id} and {m.run_id}")
            test_probs.append(tp)
            row.update(scores(tp, ty, prefix="test"))
        member_scores.append(row)
        if say is not None:
            say(f"member {m.run_id}: val_acc {row['val_acc']:.4f}")
    assert names is not None and labels is not None and bundle is not None
    return MemberOutputs(members=plan.members, class_names=names, probs=np.stack(probs), labels=labels,
                         test_probs=np.stack(test_probs) if test_probs else None, test_labels=test_labels,
                         member_scores=member_scores, img_size=tuple(bundle.img_size), channels=bundle.channels,
                         device=str(dev), device_name=device_name(dev))


# ------------------------------------------------------------------ the ensemble run


@dataclass
class EnsembleResult:
    """One ensemble run written and indexed."""

    run_id: str
    run_dir: Path
    combine: str
    metrics: dict[str, float]
    best_member: str
    best_member_val_acc: float
    indexed: bool = True

    @property
    def gain(self) -> float:
        """Validation accuracy over the best member's."""
        return self.metrics["val_acc"] - self.best_member_val_acc


def ensemble_config(plan: EnsemblePlan, method: str) -> dict[str, Any]:
    """The ensemble run's config.yaml: what was combined, how, and the data it was scored on."""
    spec: dict[str, Any] = {"combine": method, "members": [m.run_id for m in plan.members],
                            "query": " ".join(plan.query), "by": plan.by, "top": plan.top}
    if method == "stacking":
        spec["folds"] = plan.folds
    data = plan.members[0].data
    return {"ensemble": spec,
            "model": {"name": "ensemble", "architectures": [m.model_name for m in plan.members]},
            "data": {k: data[k] for k in EVAL_DATA_KEYS if k in data}}


def _save_predictions(path: Path, out: MemberOutputs, probs: np.ndarray, test: np.ndarray | None,
                      fold: np.ndarray | None) -> None:
    from ednaquery.fsutil import atomic_file

    arrays: dict[str, Any] = {"labels": out.labels, "probs": probs, "member_probs": out.probs,
                              "members": np.array([m.run_id for m in out.members]),
                              "class_names": np.array(out.class_names)}
    if test is not None and out.test_probs is not None:
        arrays.update(test_labels=out.test_labels, test_probs=test, member_test_probs=out.test_probs)
    if fold is not None:
        arrays["stack_fold"] = fold
    with atomic_file(path) as fh:
        np.savez_compressed(fh, **arrays)


def _save_confusion(path: Path, out: MemberOutputs, probs: np.ndarray) -> None:
    """val_confusion.json as a trained run has it (``trainer plot`` draws the confusion matrix from it)."""
    from ednaquery.fsutil import write_atomic

    c = len(out.class_names)
    matrix = np.bincount(out.labels * c + probs.argmax(1), minlength=c * c).reshape(c, c)
    write_atomic(path, json.dumps({"class_names": out.class_names, "epoch": 1, "matrix": matrix.tolist()}) + "\n")


def write_ensemble_run(store: Store | None, plan: EnsemblePlan, out: MemberOutputs, method: str, *,
                       runs_root: Path, started_at: float | None = None) -> EnsembleResult:
    """Combine ``out`` by ``method``, score it, write the ensemble run folder and index it."""
    from trainer.engine.runs import RunWriter, environment_info
    from trainer.recorder import RunRecorder

    t0 = started_at or time.time()
    member_acc = [s["val_acc"] for s in out.member_scores]
    try:
        probs, test, details = combine(method, out.probs, labels=out.labels, accuracies=member_acc,
                                       folds=plan.folds, test_probs=out.test_probs)
    except ValueError as exc:
        raise UsageError(f"--combine {method}: {exc}") from None
    metrics = scores(probs, out.labels)
    if test is not None and out.test_labels is not None:
        metrics.update(scores(test, out.test_labels, prefix="test"))
    best = int(np.argmax(member_acc))  # the first of equals
    best_scores = out.member_scores[best]
    # gains are metrics (val_acc_gain: ensemble minus best member); no info key is named like a metric
    # (a `gain: {val_acc: ..}` leaf would answer `val_acc>0.9` queries)
    row: dict[str, Any] = {"scope": "epoch", "epoch": 1, "step": 0, **metrics,
                           "val_acc_gain": metrics["val_acc"] - best_scores["val_acc"]}
    if "test_acc" in metrics and "test_acc" in best_scores:
        row["test_acc_gain"] = metrics["test_acc"] - best_scores["test_acc"]
    info: dict[str, Any] = {"combine": method, "query": " ".join(plan.query), "by": plan.by, "top": plan.top,
                            "member_val_acc": member_acc,
                            "member_val_loss": [s["val_loss"] for s in out.member_scores],
                            "best_member": out.members[best].run_id, "best_member_val_acc": best_scores["val_acc"],
                            "best_member_val_loss": best_scores["val_loss"],
                            "val_loss_delta": metrics["val_loss"] - best_scores["val_loss"]}  # < 0: better
    if "weights" in details:
        info["weights"] = details["weights"]
    if "folds" in details:
        info["folds"] = details["folds"]
    config = ensemble_config(plan, method)
    run_id = new_run_id()
    run_dir = Path(runs_root) / run_id
    recorder = RunRecorder(store, run_dir) if store is not None else None
    writer = RunWriter(run_dir, on_status=(lambda _run: recorder.record()) if recorder is not None else None)
    writer.write_config(config)
    writer.update(run_id=run_id, config_id=content_id(config), status="running", started_at=t0, ended_at=None,
                  members=[m.run_id for m in out.members], ensemble=info, num_classes=len(out.class_names),
                  class_names=out.class_names, val_size=len(out.labels),
                  test_size=len(out.test_labels) if out.test_labels is not None else None,
                  img_size=list(out.img_size), channels=out.channels, device=out.device,
                  device_name=out.device_name, **environment_info())
    _save_predictions(run_dir / PREDICTIONS_FILE, out, probs, test, details.get("fold"))
    _save_confusion(run_dir / "val_confusion.json", out, probs)
    row["time"] = time.time()
    writer.add_metrics(row)
    ended = time.time()
    writer.write_summary({"status": "completed", "total_time_s": ended - t0, "stop_reason": None},
                         best_metric="val_acc")
    writer.update(status="completed", ended_at=ended, total_time_s=ended - t0, epochs_done=1)
    indexed = recorder is not None and recorder.last_error is None
    if recorder is not None and not indexed:
        log.warning("ensemble run %s is not in the store (%s); `ednaquery index %s` adds it later", run_id,
                    recorder.last_error, run_dir)
    return EnsembleResult(run_id=run_id, run_dir=run_dir, combine=method, metrics=metrics,
                          best_member=out.members[best].run_id, best_member_val_acc=best_scores["val_acc"],
                          indexed=indexed)


def check_stacking(plan: EnsemblePlan, labels: np.ndarray) -> None:
    """Refuse stacking (one line) when a class has too few validation images for 2 folds."""
    if "stacking" in plan.combines and stack_folds(labels, plan.folds) < 2:
        raise UsageError("--combine stacking needs at least 2 validation images of every class")


def run_ensemble(store: Store | None, plan: EnsemblePlan, *, runs_root: Path, device: str | None = None,
                 say: Any = None) -> list[EnsembleResult]:
    """Evaluate the plan's members once and write one ensemble run per combination."""
    t0 = time.time()
    out = evaluate_members(plan, device=device, say=say)
    check_stacking(plan, out.labels)
    return [write_ensemble_run(store, plan, out, method, runs_root=runs_root, started_at=t0)
            for method in plan.combines]
