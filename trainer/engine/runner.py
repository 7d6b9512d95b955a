"""Run one training job end to end: config in, run folder out.

:func:`run_training` is the engine's single entry point for every front end (the
``trainer train`` command, ``trainer launch``, queue workers, sweeps)::

    from trainer.engine.runner import run_training
    result = run_training(cfg, Path("runs/r1"), on_epoch=index_it, quiet=True)
    result.status        # completed | failed | interrupted
    result.summary       # {"metrics": {"val_acc": {"last": .., "best": ..}, ...}, ...}

It writes the run folder (see :mod:`trainer.engine.runs`), picks the device (the GPU where
there is one, saying so when it uses the CPU), seeds everything, builds data, model,
optimizer and schedule, trains, and draws the pictures. SIGTERM or Ctrl-C stops after
the current optimizer update with a checkpoint and status ``interrupted`` (a second
Ctrl-C aborts at once); any error ends the run as ``failed`` with the message in
run.json. Callbacks receive a :class:`trainer.engine.runs.RunSnapshot`, which holds what a
store document needs, so the caller can index the run as it goes.

Under DDP (``dist``: one call per process, see :mod:`trainer.ddp.entry`) every rank runs
this same function on its device and shard; rank 0 alone writes the run folder and calls
the callbacks, the other ranks keep the same bookkeeping in memory (:class:`RankWriter`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ednaquery.documents import new_run_id
from ednaquery.errors import EdnaError
from ednaquery.fsutil import write_atomic
from trainer.engine.config import TrainerConfig, default_keys, load_config, to_dict
from trainer.engine.folds import write_split
from trainer.engine.runs import (
    RunSnapshot,
    RunWriter,
    environment_info,
    snapshot,
    summarize,
)

if TYPE_CHECKING:
    from trainer.engine.distributed import DistContext

log = logging.getLogger(__name__)

Callback = Callable[[RunSnapshot], None]
#: an ``on_epoch`` callback; a truthy answer (a status word such as ``pruned``) ends the run after that epoch
EpochCallback = Callable[[RunSnapshot], "str | None"]


@dataclass
class RunResult:
    """How a run ended."""

    run_id: str
    run_dir: Path
    status: str  # completed | failed | interrupted | pruned (what an on_epoch stop request said)
    summary: dict[str, Any]
    error: str | None = None
    exit_code: int = 0
    stop_reason: str | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Last and best of each metric."""
        return self.summary.get("metrics", {})


class RankWriter(RunWriter):
    """The run folder's bookkeeping without the folder: DDP ranks other than 0 write nothing."""

    def __init__(self, run_dir: Path) -> None:  # no super().__init__(): it would create the folder
        self.dir = Path(run_dir)
        self.on_status = None
        self.run: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []
        self._log_handler = None

    def write_config(self, resolved: dict[str, Any]) -> None:
        return None

    def update(self, **fields: Any) -> dict[str, Any]:
        self.run.update(fields)
        return self.run

    def _write_metrics(self) -> None:
        return None

    def write_summary(self, extra: dict[str, Any], *, best_metric: str) -> dict[str, Any]:
        summary = summarize(self.rows, best_metric=best_metric)
        summary.update(extra)
        return summary

    def attach_log(self, logger_name: str = "trainer") -> None:
        return None


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, enabled: bool = True,
                    message: str = "stopping after the current step and saving a checkpoint") -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop``; a second SIGINT raises KeyboardInterrupt (abort now). Main thread only."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        log.warning("%s received: %s", signal.Signals(signum).name, message)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, EdnaError):
        return str(exc)
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return "out of GPU memory: lower data.batch_size or data.img_size, or use a smaller model"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, MemoryError):
        return "out of memory: lower data.batch_size or data.img_size, or use a smaller model"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _save_artefacts(trainer: Any, run_dir: Path) -> None:
    """val_confusion.json and holdout.npz: what the pictures are drawn from."""
    data = trainer.data
    if trainer.last_eval is not None and trainer.last_eval.confusion is not None:
        write_atomic(run_dir / "val_confusion.json", json.dumps({
            "class_names": list(data.class_names), "epoch": trainer.epochs_done,
            "matrix": trainer.last_eval.confusion.tolist()}) + "\n")
    if len(data.holdout_labels) and trainer.task == "classification":
        preds = trainer.predict(data.holdout_images)
        tmp = run_dir / ".holdout.npz.tmp"
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=data.holdout_images.numpy(), labels=data.holdout_labels.numpy(),
                                preds=preds.numpy(), class_names=np.array(data.class_names))
        tmp.replace(run_dir / "holdout.npz")


def _ddp_info(dist: DistContext, cfg: TrainerConfig) -> dict[str, Any]:
    """run.json's process fields: world size, DDP backend (null alone), global batch (batch_size per process).

    Written for every attempt, so a DDP run resumed in one process says so (and the other way round).
    """
    return {"world_size": dist.world_size, "ddp_backend": dist.backend if dist.enabled else None,
            "global_batch_size": cfg.data.batch_size * dist.world_size}


def run_training(cfg: TrainerConfig | dict, run_dir: Path, *, on_epoch: EpochCallback | None = None,
                 on_status: Callback | None = None, resume_from: Path | None = None, quiet: bool = False,
                 run_id: str | None = None, config_id: str | None = None,
                 stop: threading.Event | None = None, handle_signals: bool = True,
                 plots: bool = True, on_step: Callable[[int], None] | None = None,
                 dist: DistContext | None = None, labels: dict[str, Any] | None = None) -> RunResult:
    """Train ``cfg`` into ``run_dir``; never raises for a failed run (see ``RunResult.status``).

    ``resume_from`` is a checkpoint (``last.pt``) or a run folder holding one; resuming in the
    same folder continues the same run (same run id, metrics after the checkpoint dropped).
    ``stop`` lets a caller request a clean stop from another thread; ``handle_signals`` turns
    SIGTERM/SIGINT into such a request (main thread only). ``on_epoch``/``on_status`` get a
    :class:`RunSnapshot` after every epoch / every run.json change; an ``on_epoch`` that answers a
    status word (``pruned``) ends the run after that epoch with that status. ``labels`` are extra
    run.json fields (``{"sweep": id, "trial": 3}``: searchable as ``sweep=id``). ``on_step(step)`` runs after
    every optimizer update (cheap: for heartbeats). ``dist`` is this process's place in a DDP
    group (:func:`trainer.engine.distributed.init_from_env`); ranks other than 0 write nothing and
    call no callbacks.
    """
    import torch

    from trainer.engine.data import build_data
    from trainer.engine.distributed import SINGLE
    from trainer.engine.heads import model_for
    from trainer.engine.loop import (
        Trainer,
        configure_device,
        device_name,
        load_checkpoint,
        resolve_device,
        seed_everything,
    )
    from trainer.engine.model import check_forward, param_count
    from trainer.engine.plots import plot_run
    from trainer.engine.progress import make_progress, rank_say
    from trainer.engine.stats import inference_stats

    run_dir = Path(run_dir)
    t0 = time.time()
    dist = dist or SINGLE
    main = dist.is_main
    writer = RunWriter(run_dir) if main else RankWriter(run_dir)
    checkpoint: Path | None = None
    if resume_from is not None:
        checkpoint = Path(resume_from)
        if checkpoint.is_dir():
            checkpoint = checkpoint / "last.pt"
        if checkpoint.parent.resolve() == run_dir.resolve():
            writer.load_existing()
    run_id = run_id or writer.run.get("run_id") or new_run_id(t0)
    config_id = config_id if config_id is not None else writer.run.get("config_id")
    stop = stop or threading.Event()
    progress = make_progress(quiet or not main)
    resolved: dict[str, Any] = {}
    status, error, exit_code, stop_reason = "failed", None, 1, None
    trainer: Any = None
    summary: dict[str, Any] = {}
    best_metric = "val_acc"
    previous_time = float(writer.run.get("total_time_s") or 0.0)
    last_row: dict[str, Any] | None = None

    def emit(callback: Callable[[RunSnapshot], Any] | None) -> Any:
        if callback is not None and main:
            return callback(snapshot(writer.run, run_dir, resolved, summary, last_row))
        return None

    writer.on_status = lambda _run: emit(on_status)
    writer.attach_log()
    try:
        with stop_on_signals(stop, handle_signals):
            cfg = load_config(cfg)
            resolved = to_dict(cfg)
            best_metric = cfg.train.best_metric
            writer.write_config(resolved)
            attempts = int(writer.run.get("attempts", 0)) + 1
            writer.update(run_id=run_id, config_id=config_id, status="running",
                          started_at=writer.run.get("started_at") or t0, ended_at=None, error=None,
                          attempts=attempts, resumed_from=str(checkpoint) if checkpoint else None,
                          default_keys=default_keys(resolved), **(labels or {}),
                          **(environment_info() if main else {}))
            if cfg.train.threads > 0:
                torch.set_num_threads(cfg.train.threads)
            if cfg.train.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
            device = dist.device if dist.enabled and dist.device is not None else resolve_device(cfg.train.device)
            if device.type == "cpu":
                why = "no GPU found" if not torch.cuda.is_available() else "train.device is cpu"
                threads = f"{torch.get_num_threads()} thread(s)"
                if dist.enabled:
                    threads = f"{dist.world_size} processes ({dist.backend}), {threads} each"
                progress.print(f"using CPU ({why}; {threads})")
                log.info("using CPU (%s; %s)", why, threads)
            configure_device(cfg, device)
            seed_everything(cfg.train.seed + dist.rank)  # DDP: own dropout/mixup streams; weights come from rank 0
            # an image folder's first use builds its prepared cache: whichever rank builds it says how it goes
            say = progress.say if main else None if quiet else rank_say(dist.rank)
            data = build_data(cfg, device=device, rank=dist.rank, world_size=dist.world_size, say=say)
            if main and data.split is not None:  # k-fold / bootstrap: which images it trained and validated on
                write_split(run_dir, data.split)
            model, in_chans, mean_std = model_for(cfg, data)  # in_chans: data.features' stack's
            check_forward(model, in_chans=in_chans, img_size=data.img_size, name=cfg.model.name)
            trainer = Trainer(cfg, data, model, device=device, run_dir=run_dir, stop=stop, progress=progress,
                              mean_std=mean_std, dist=dist)
            if checkpoint is not None:
                trainer.load_state_dict(load_checkpoint(checkpoint))
                writer.truncate_metrics(epochs_done=trainer.epochs_done, step=trainer.step)
                log.info("resumed from %s at epoch %d, step %d", checkpoint, trainer.epochs_done, trainer.step)
            writer.update(device=str(device), device_name=device_name(device), param_count=param_count(model),
                          num_classes=data.num_classes, class_names=data.class_names,
                          train_size=data.train_size, val_size=data.val_size,
                          steps_per_epoch=data.steps_per_epoch, workers=data.workers,
                          data_on_device=data.on_device,
                          amp=str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None,
                          channels_last=trainer.channels_last, threads=torch.get_num_threads(),
                          **_ddp_info(dist, cfg))
            log.info("run %s: %s on %s, %d parameters, %d train / %d val images", run_id, cfg.model.name,
                     cfg.data.dataset, param_count(model), data.train_size, data.val_size)

            def epoch_done(row: dict[str, Any]) -> Any:
                nonlocal summary, last_row
                writer.add_metrics(row)
                last_row = row
                summary = writer.write_summary({"status": "running"}, best_metric=best_metric)
                writer.update(epochs_done=row["epoch"], step=row["step"])
                return emit(on_epoch)

            with progress:
                result = trainer.fit(on_epoch=epoch_done, on_step_row=writer.add_metrics, on_step=on_step)
            status, stop_reason, exit_code = result.status, result.stop_reason, 0
            if status == "interrupted":
                exit_code = 130
            if main:
                _save_artefacts(trainer, run_dir)
                if status == "completed":  # latency_ms, flops... on the run's device (trainer.engine.stats)
                    writer.update(**inference_stats(trainer))
    except KeyboardInterrupt:
        status, stop_reason, exit_code = "interrupted", "aborted", 130
        error = "aborted by a second Ctrl-C; the last checkpoint is from before it"
    except BaseException as exc:
        status, error = "failed", _describe_failure(exc)
        exit_code = getattr(exc, "exit_code", 1) if isinstance(exc, EdnaError) else 1
        if isinstance(exc, EdnaError):
            log.error("run failed: %s", error)
        else:
            log.exception("run failed: %s", error)
        if isinstance(exc, SystemExit):
            raise
    finally:
        ended = time.time()
        total = previous_time + (ended - t0)
        files: list[Path] = []
        if plots and resolved and main:
            try:
                files = plot_run(run_dir)
            except Exception as exc:  # noqa: BLE001 - pictures must never fail a run
                log.warning("could not draw the plots: %s", _describe_failure(exc))
        summary = writer.write_summary({"status": status, "total_time_s": total, "stop_reason": stop_reason},
                                       best_metric=best_metric)
        writer.update(status=status, ended_at=ended, error=error, stop_reason=stop_reason, total_time_s=total)
        if status == "failed":
            progress.print(f"[red]run failed:[/red] {error}")
        writer.detach_log()
    return RunResult(run_id=run_id, run_dir=run_dir, status=status, summary=summary, error=error,
                     exit_code=exit_code, stop_reason=stop_reason, files=files)
