"""The training loop: epochs of updates and evaluations, checkpoints, resume, early stopping.

:class:`Trainer` owns the model, optimizer, schedule and mixed-precision state for one
run. ``fit()`` trains epoch by epoch and after each one evaluates (every
``train.eval_every`` epochs), steps the schedule, reports a metrics row, keeps
``best.pt`` and ``last.pt`` and checks early stopping. A stop request (SIGTERM,
Ctrl-C, or the caller's event) is honoured after the current optimizer update: the
loop saves a checkpoint that records where inside the epoch it stopped, so a resumed
run continues from exactly there. On CPU with a fixed seed the continuation is
bit-exact: batch order and per-image augmentation are functions of (seed, epoch,
batch), and the RNG states (dropout, mixup) travel in the checkpoint.

Speed: batches arrive as uint8 and are normalised on the device; bf16 autocast and
channels-last are on by default with CUDA; losses and accuracies are summed on the
device and read back only when the progress bar refreshes, so the GPU is not synced
every step.

DDP (several processes, see :mod:`trainer.engine.distributed`): the model is wrapped in
``DistributedDataParallel`` for training, while evaluation, predictions and checkpoints
use the bare model (``self.model``, what ``DDP.module`` holds), so a checkpoint loads with
or without DDP. Every decision that changes the control flow (stop now, diverged, best
epoch, early stopping) is taken from values all ranks share: epoch statistics and
validation metrics are all-reduced, stop requests are voted on after every update.
Only rank 0 writes files.
"""
from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ednaquery.fsutil import atomic_file
from trainer.engine.config import TrainerConfig, to_dict
from trainer.engine.data import DataBundle, class_weights, normalization
from trainer.engine.distributed import SINGLE, DistContext, PendingVote
from trainer.engine.evalmetrics import ClassificationExtras, evaluate_task, val_outputs
from trainer.engine.features import build_features
from trainer.engine.losses import TermTally, build_objective
from trainer.engine.optim import (
    build_optimizer,
    build_schedule,
    clip_gradients,
    metric_mode,
    needs_create_graph,
)
from trainer.engine.progress import NullProgress
from trainer.engine.stats import DeviceMonitor, LoaderWait, cpu_rss_mb, synchronize
from trainer.errors import TrainingError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ednaquery-trainer-checkpoint"
CHECKPOINT_VERSION = 1
PROGRESS_EVERY_S = 0.5
DIVERGENCE_CHECK_UPDATES = 50  # DDP: how often the ranks compare notes on a non-finite loss


# ------------------------------------------------------------------ device and precision


def configure_device(cfg: TrainerConfig, device: torch.device) -> None:
    """How a run uses a GPU, and so how the finders measure one: cuDNN picks its fastest kernels for the
    fixed input sizes and float32 matmuls use TF32, unless ``train.deterministic``."""
    if device.type == "cuda" and not cfg.train.deterministic:
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> the first GPU if there is one, else the CPU; ``cuda:N`` checked against what exists."""
    from trainer.errors import ConfigError

    if spec == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device: {spec} asked for, but no GPU is visible here; use auto or cpu")
    dev = torch.device(spec if ":" in spec else "cuda:0")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"train.device: {spec}, but only {torch.cuda.device_count()} GPU(s) are visible")
    return dev


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model, or the CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "cpu"


def resolve_amp(spec: bool | str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` = bf16 on CUDA, none on CPU; ``true`` = bf16; ``fp16`` = float16."""
    if spec is False:
        return None
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if spec == "fp16":
        return torch.float16
    return torch.bfloat16  # True or "bf16"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG's state, as plain data and tensors (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------ results


@dataclass
class FitResult:
    """How ``fit()`` ended."""

    status: str  # completed | interrupted | what an on_epoch stop request said (e.g. pruned)
    stop_reason: str | None
    epochs_done: int
    steps: int
    best: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    """One pass over the validation set."""

    metrics: dict[str, float]
    confusion: np.ndarray | None  # None for regression and embedding


class Trainer:
    """Everything that trains one run (model, optimizer, schedule, precision, checkpoints)."""

    def __init__(self, cfg: TrainerConfig, data: DataBundle, model: torch.nn.Module, *, device: torch.device,
                 run_dir: Path | None = None, stop: threading.Event | None = None,
                 progress: NullProgress | None = None,
                 mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
                 dist: DistContext | None = None) -> None:
        self.cfg, self.data, self.device = cfg, data, device
        self.dist = dist or SINGLE
        self.run_dir = Path(run_dir) if run_dir else None
        self.stop = stop or threading.Event()
        self.progress = progress or NullProgress()
        t = cfg.train
        self.channels_last = t.channels_last if t.channels_last is not None else device.type == "cuda"
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(device=device, memory_format=self.memory_format)
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # broadcasts rank 0's weights now; afterwards gradients are averaged over the ranks
            self.ddp = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda"
                                               else None)
        trained = self.ddp if self.ddp is not None else self.model
        self.net = torch.compile(trained) if t.compile else trained  # the training forward
        if self.ddp is None:
            self.eval_net = self.net
        else:  # DDP's forward is for training steps; evaluation runs the bare model on each rank's shard
            self.eval_net = torch.compile(self.model) if t.compile else self.model
        self.amp_dtype = resolve_amp(t.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.optimizer = build_optimizer(self.model, cfg.optimizer)
        self.create_graph = needs_create_graph(cfg.optimizer)
        self.accum = cfg.optimizer.accumulate_steps
        self.updates_per_epoch = math.ceil(data.steps_per_epoch / self.accum)
        self.schedule = build_schedule(self.optimizer, cfg.scheduler, epochs=t.epochs,
                                       steps_per_epoch=self.updates_per_epoch, base_lr=cfg.optimizer.lr)
        raw_mean, raw_std = mean_std or (cfg.data.mean, cfg.data.std)  # the pretrained config's, or data.mean/std
        mean, std = normalization(raw_mean, raw_std, data.channels)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255.0
        # data.features (features.py): the stack replaces the plain mean/std normalisation in prepare()
        self.features = build_features(cfg.data.features, (raw_mean, raw_std), device)
        # what a prediction needs to feed the model as training did (saved in every checkpoint; trainer.ops.restore)
        self.preprocess: dict[str, Any] = {"img_size": list(data.img_size), "channels": data.channels,
                                           "mean": list(mean), "std": list(std)}
        if cfg.data.features is not None:
            self.preprocess.update(features=list(cfg.data.features),
                                   feature_mean=list(raw_mean) if raw_mean else None,
                                   feature_std=list(raw_std) if raw_std else None)
        if data.eval_crop_pct is not None:  # prepared pipeline: predictions crop as validation did
            self.preprocess["crop_pct"] = data.eval_crop_pct
        weights = class_weights(cfg.loss.class_weights, data.train_labels,
                                cfg.model.num_classes or data.num_classes)
        self.loss_weights = weights.to(device) if weights is not None else None
        self.mixup = data.mixup
        self.num_classes = cfg.model.num_classes or data.num_classes
        # task: the loss (trainer.engine.losses) and what evaluation adds (trainer.engine.evalmetrics)
        self.task = cfg.task
        self.objective = build_objective(cfg, weight=self.loss_weights, num_classes=self.num_classes,
                                         mixup=self.mixup is not None, device=device)
        self.train_terms = TermTally()
        # progress through training
        self.epochs_done = 0
        self.step = 0
        self.batch_in_epoch = 0
        self.partial: dict[str, float] | None = None
        self.best: dict[str, Any] = {}
        self.early_bad = 0
        self.early_best: float | None = None
        self.last_eval: EvalResult | None = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    # -------------------------------------------------------------- helpers

    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch on the host -> normalised float batch (or data.features stack) on the device."""
        # one conversion into the model's layout (a channels-last uint8 batch from the prepared loader
        # becomes NCHW floats on the CPU, or stays channels-last on a GPU)
        x = x.to(self.device, non_blocking=True).to(dtype=torch.float32, memory_format=self.memory_format)
        x = self.features(x) if self.features is not None else x.sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=self.memory_format) if self.channels_last else x

    def criterion(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The configured loss (trainer.engine.losses; ce: class weights, smoothing unless mixup applied it)."""
        return self.objective(logits, target, self.train_terms)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -------------------------------------------------------------- one epoch

    def train_epoch(self, epoch: int, on_step_row: Callable[[dict[str, Any]], None] | None = None,
                    on_step: Callable[[int], None] | None = None) -> tuple[dict[str, Any], bool]:
        """Train epoch ``epoch`` (0-based) from ``self.batch_in_epoch``; returns (stats, finished)."""
        sampler = self.data.train_sampler
        total = sampler.batches_per_epoch()
        sampler.set_epoch(epoch, start_batch=self.batch_in_epoch)
        loader = self.data.train_loader
        if loader.generator is not None:
            loader.generator.manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
        self.net.train()
        p = self.partial or {"loss_sum": 0.0, "correct": 0.0, "seen": 0.0, "acc_seen": 0.0, "wait_s": 0.0,
                             "time_s": 0.0, "lr": self.lr()}
        dev = self.device
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.float64)
        seen = acc_seen = 0
        wait = LoaderWait(dev)  # run statistics: the time the device waited for the loader
        batch = self.batch_in_epoch
        log_every = self.cfg.train.log_every_steps
        self.progress.start_epoch(epoch + 1, self.cfg.train.epochs, total, batch)
        last_shown = time.perf_counter()
        finished = True
        vote: PendingVote | None = None
        start = time.perf_counter()
        it = iter(loader)
        while True:
            t0 = wait.begin()
            try:
                x, y = next(it)
            except StopIteration:
                break
            wait.got_batch(t0)
            n = y.shape[0]
            x = self.prepare(x)
            y = y.to(dev, non_blocking=True)
            target = y
            mixed = self.mixup is not None and n % 2 == 0
            if mixed:
                x, target = self.mixup(x, y)
            window_start = (batch // self.accum) * self.accum
            window = min(self.accum, total - window_start)
            syncs = (batch + 1) % self.accum == 0 or batch + 1 == total
            with self._grad_sync(syncs):  # DDP: average gradients only on the update's last micro-batch
                with self.autocast():
                    out = self.net(x)
                loss = self.criterion(out, target)
                self.scaler.scale(loss / window).backward(create_graph=self.create_graph)
            batch += 1
            loss_sum += loss.detach().double() * n
            seen += n
            if not mixed and self.task == "classification":
                correct += (out.detach().argmax(1) == y).sum().double()
                acc_seen += n
            if batch % self.accum == 0 or batch == total:
                self._update()
                if on_step is not None:
                    on_step(self.step)
                if log_every and self.step % log_every == 0 and on_step_row is not None:
                    on_step_row({"scope": "step", "epoch": epoch + 1, "step": self.step,
                                 "train_loss": float(loss.detach()), "lr": self.lr(), "time": time.time()})
                if self.ddp is None:
                    if self.stop.is_set() and batch < total:
                        finished = False
                        break
                else:
                    stop_now, vote = self._vote_on_update(vote, loss_sum, epoch)
                    if stop_now and batch < total:
                        finished = False
                        break
            now = time.perf_counter()
            if now - last_shown >= PROGRESS_EVERY_S or batch == total:  # the only place that syncs the GPU
                last_shown = now
                elapsed = p["time_s"] + now - start
                s = p["seen"] + seen
                running = float(loss_sum)
                if not math.isfinite(running) and self.ddp is None:  # DDP ranks decide together (_vote_on_update)
                    raise _diverged(running, epoch)
                # this process's numbers (with DDP: rank 0's shard; images/s estimated for all ranks)
                self.progress.update(
                    batch, loss=(p["loss_sum"] + running) / max(1, s),
                    acc=(p["correct"] + float(correct)) / (p["acc_seen"] + acc_seen) if acc_seen else None,
                    ips=s * self.dist.world_size / elapsed if elapsed > 0 else None)
            wait.step_queued()
        if vote is not None:
            vote.result()  # every rank waits for its last vote: the next collective starts from a clean slate
        synchronize(dev)
        elapsed = time.perf_counter() - start
        # all ranks together: sums of losses and counts, the slowest rank's times
        cur = self.dist.reduce_stats({"loss_sum": float(loss_sum), "correct": float(correct), "seen": seen,
                                      "acc_seen": acc_seen, "wait_s": wait.total_s(), "time_s": elapsed},
                                     maximum=("wait_s", "time_s"))
        if self.ddp is not None and not math.isfinite(cur["loss_sum"]):
            raise _diverged(cur["loss_sum"], epoch)
        stats = {k: p[k] + cur[k] for k in ("loss_sum", "correct", "seen", "acc_seen", "wait_s", "time_s")}
        stats["lr"] = p["lr"]
        self.batch_in_epoch = 0 if finished else batch
        self.partial = None if finished else stats
        return stats, finished

    def _grad_sync(self, syncs: bool) -> Any:
        """DDP's ``no_sync()`` for micro-batches that do not end an update (gradient accumulation)."""
        if self.ddp is None or syncs:
            return nullcontext()
        return self.ddp.no_sync()

    def _vote_on_update(self, pending: PendingVote | None, loss_sum: torch.Tensor, epoch: int
                        ) -> tuple[bool, PendingVote]:
        """DDP, after each update: read the last vote (stop? diverged?) and start the next one.

        Every rank reads the same result at the same update, so all stop at the same batch
        (SIGTERM may reach one rank, or reach them at different moments).
        """
        stop_now = diverged = False
        if pending is not None:
            stop_now, diverged = pending.result()
        if diverged:
            raise _diverged(float("nan"), epoch)
        check = self.step % DIVERGENCE_CHECK_UPDATES == 0
        local_bad = check and not math.isfinite(float(loss_sum))  # syncs the GPU: only every N updates
        return stop_now, self.dist.vote_async(self.stop.is_set(), local_bad)

    def _update(self) -> None:
        if self.cfg.optimizer.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            clip_gradients(self.model, self.cfg.optimizer)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.schedule.after_update(self.step)

    # -------------------------------------------------------------- evaluation

    @torch.no_grad()
    def evaluate(self) -> EvalResult:
        """Loss, top-1 and (with more than 5 classes) top-5 accuracy and the confusion matrix on val.

        Plus balanced accuracy, macro-F1, per-class recall/precision and the softmax spread; regression
        and embedding runs log their own metrics instead (all in :mod:`trainer.engine.evalmetrics`).

        With DDP each rank evaluates its shard with rank 0's weights and buffers, and the sums
        are all-reduced: the metrics are those of the whole validation set, on every rank.
        """
        self.dist.broadcast_buffers(self.model)
        self.eval_net.eval()
        if self.task != "classification":  # regression, embedding: trainer.engine.evalmetrics
            result = EvalResult(evaluate_task(self), None)
            self.eval_net.train()
            self.last_eval = result
            return result
        extras = ClassificationExtras(self.num_classes, self.device, self.objective)
        c = self.num_classes
        dev = self.device
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        top1 = torch.zeros((), device=dev, dtype=torch.float64)
        top5 = torch.zeros((), device=dev, dtype=torch.float64)
        confusion = torch.zeros(c * c, device=dev, dtype=torch.long)
        seen = 0
        for out, y in val_outputs(self):
            extras.add(out, y)
            loss_sum += F.cross_entropy(out, y, reduction="sum").double()
            pred = out.argmax(1)
            top1 += (pred == y).sum().double()
            if c > 5:
                top5 += (out.topk(5, dim=1).indices == y[:, None]).any(1).sum().double()
            confusion += torch.bincount(y * c + pred, minlength=c * c)
            seen += y.shape[0]
        self.eval_net.train()
        if self.dist.enabled:
            sums = self.dist.sum_(torch.stack([loss_sum, top1, top5, torch.tensor(float(seen), device=dev,
                                                                                    dtype=torch.float64)]))
            loss_sum, top1, top5, seen = sums[0], sums[1], sums[2], int(sums[3].item())
            self.dist.sum_(confusion)
        metrics = {"val_loss": float(loss_sum) / max(1, seen), "val_acc": float(top1) / max(1, seen)}
        if c > 5:
            metrics["val_top5"] = float(top5) / max(1, seen)
        matrix = confusion.view(c, c).cpu().numpy()
        metrics.update(extras.result(matrix, list(self.data.class_names), self.cfg.train.per_class_metrics,
                                     self.dist))
        result = EvalResult(metrics, matrix)
        self.last_eval = result
        return result

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class of each uint8 image in ``images`` (eval mode)."""
        self.eval_net.eval()
        with self.autocast():
            out = self.eval_net(self.prepare(images))
        self.eval_net.train()
        return out.float().argmax(1).cpu()

    # -------------------------------------------------------------- the epochs

    def _improved(self, value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
        if best is None:
            return True
        return value > best + min_delta if mode == "max" else value < best - min_delta

    def fit(self, *, on_epoch: Callable[[dict[str, Any]], Any] | None = None,
            on_step_row: Callable[[dict[str, Any]], None] | None = None,
            on_step: Callable[[int], None] | None = None) -> FitResult:
        """Train from where the trainer stands to ``train.epochs``; see the module docstring.

        ``on_epoch(row)`` gets each epoch's metrics; a truthy answer (a status word such as ``pruned``)
        ends the run after that epoch with a checkpoint; ``on_step_row(row)`` the every-N-steps rows;
        ``on_step(step)`` runs after every optimizer update (heartbeats, tests).
        """
        # run statistics: each epoch's wall clock runs from the previous epoch's row to this one's, so
        # epoch_time_s adds up to the wall time and images_per_s agrees with it (trainer.engine.stats)
        monitor = DeviceMonitor(self.device).start()
        try:
            return self._fit(monitor, on_epoch, on_step_row, on_step)
        finally:
            monitor.stop()

    def _fit(self, monitor: DeviceMonitor, on_epoch: Callable[[dict[str, Any]], Any] | None,
             on_step_row: Callable[[dict[str, Any]], None] | None, on_step: Callable[[int], None] | None
             ) -> FitResult:
        t = self.cfg.train
        es = t.early_stopping
        best_mode = metric_mode(t.best_metric)
        clock = time.perf_counter()
        while self.epochs_done < t.epochs:
            epoch = self.epochs_done
            carried = float(self.partial["time_s"]) if self.partial else 0.0  # resumed mid-epoch
            stats, finished = self.train_epoch(epoch, on_step_row, on_step)
            if not finished:
                self.save_checkpoint("last.pt")
                log.info("stopped in epoch %d after %d batches; checkpoint saved", epoch + 1, self.batch_in_epoch)
                return FitResult("interrupted", "interrupted", self.epochs_done, self.step, dict(self.best))
            self.epochs_done = epoch + 1
            row: dict[str, Any] = {"scope": "epoch", "epoch": self.epochs_done, "step": self.step,
                                   "train_loss": stats["loss_sum"] / max(1, stats["seen"])}
            if stats["acc_seen"]:
                row["train_acc"] = stats["correct"] / stats["acc_seen"]
            row.update(self.train_terms.means("train_loss_", self.dist))  # loss.terms, each alone
            last = self.epochs_done == t.epochs
            eval_start = time.perf_counter()
            if self.epochs_done % t.eval_every == 0 or last:
                row.update(self.evaluate().metrics)
            train_time = stats["time_s"]
            row.update({"lr": stats["lr"], "train_time_s": train_time, "eval_time_s": time.perf_counter() - eval_start,
                        "train_images_per_s": stats["seen"] / train_time if train_time > 0 else None,
                        "data_wait_frac": stats["wait_s"] / train_time if train_time > 0 else None,
                        "cpu_rss_mb": cpu_rss_mb(), **monitor.window()})
            if self.device.type == "cuda":
                row["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            row["time"] = time.time()
            self.schedule.after_epoch(self.epochs_done, row, self.optimizer)
            # best.pt
            value = row.get(t.best_metric)
            if value is not None and self._improved(value, self.best.get("value"), best_mode):
                self.best = {"metric": t.best_metric, "value": value, "epoch": self.epochs_done}
                self.save_best()
            # early stopping
            stop_early = False
            if es.patience is not None and row.get(es.metric) is not None:
                mode = metric_mode(es.metric)
                if self._improved(row[es.metric], self.early_best, mode, es.min_delta):
                    self.early_best, self.early_bad = row[es.metric], 0
                else:
                    self.early_bad += 1
                    stop_early = self.early_bad >= es.patience
            # the epoch's wall clock stops here, best.pt written: the next epoch's starts (see fit)
            now = time.perf_counter()
            wall, clock = now - clock + carried, now
            row.update({"epoch_time_s": wall, "images_per_s": stats["seen"] / wall if wall > 0 else None})
            log.info("epoch %d/%d %s", self.epochs_done, t.epochs,
                     " ".join(f"{k}={v:.4g}" for k, v in row.items()
                              if isinstance(v, float) and k not in ("time",)))
            # a callback may end the run here: its truthy answer is the run's final status (e.g. "pruned")
            request = on_epoch(row) if on_epoch is not None else None
            self.progress.end_epoch(row)
            # with DDP: every rank decides the same
            stopping, requested = self.dist.vote(self.stop.is_set(), bool(request))
            every = t.checkpoint_every
            if (every and self.epochs_done % every == 0) or last or stop_early or stopping or requested:
                self.save_checkpoint("last.pt")
            if requested and not last:
                word = str(request or "stopped")
                log.info("stopped after epoch %d: %s", self.epochs_done, word)
                return FitResult(word, word, self.epochs_done, self.step, dict(self.best))
            if stop_early:
                log.info("early stopping: %s did not improve for %d evaluations", es.metric, es.patience)
                return FitResult("completed", "early_stopping", self.epochs_done, self.step, dict(self.best))
            if stopping and not last:
                return FitResult("interrupted", "interrupted", self.epochs_done, self.step, dict(self.best))
        return FitResult("completed", None, self.epochs_done, self.step, dict(self.best))

    # -------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The full training state: resume continues exactly from it.

        With DDP this is a collective (every rank's RNG state is gathered into ``rng_ranks``
        on rank 0); ``model`` is the bare model's state, without DDP's ``module.`` prefix.
        """
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epochs_done": self.epochs_done,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "partial": self.partial,
            "best": self.best,
            "early_stopping": {"bad": self.early_bad, "best": self.early_best},
            "rng": rng_state(),
            "config": to_dict(self.cfg),
            "world_size": self.dist.world_size,
            "class_names": list(self.data.class_names),
            "preprocess": dict(self.preprocess),
        }
        if self.dist.enabled:
            state["rng_ranks"] = self.dist.gather(rng_state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (RNG states last, so nothing after consumes them)."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError("not a trainer checkpoint (no format marker)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.epochs_done = int(state["epochs_done"])
        self.step = int(state["step"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.partial = state.get("partial")
        self.best = dict(state.get("best") or {})
        es = state.get("early_stopping") or {}
        self.early_bad, self.early_best = int(es.get("bad", 0)), es.get("best")
        set_rng_state(state["rng"])
        if self.dist.rank > 0:  # each rank its own stream: its saved one, or a fresh one from the seed
            ranks = state.get("rng_ranks") or []
            if len(ranks) == self.dist.world_size:
                set_rng_state(ranks[self.dist.rank])
            else:
                seed_everything(self.cfg.train.seed + 7919 * self.dist.rank + self.step)

    def _save(self, obj: dict[str, Any], name: str) -> Path:
        if self.run_dir is None:
            raise TrainingError("no run folder to write checkpoints to")
        path = self.run_dir / name
        with atomic_file(path) as fh:
            torch.save(obj, fh)
        return path

    def save_checkpoint(self, name: str = "last.pt") -> Path | None:
        """Write the full state (atomically) into the run folder (DDP: every rank calls, rank 0 writes)."""
        state = self.state_dict()
        return self._save(state, name) if self.dist.is_main else None

    def save_best(self) -> Path | None:
        """Write best.pt: the weights and which metric made them best (rank 0 only)."""
        if not self.dist.is_main:
            return None
        return self._save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": "best",
                           "model": self.model.state_dict(), "best": dict(self.best),
                           "config": to_dict(self.cfg), "class_names": list(self.data.class_names),
                           "preprocess": dict(self.preprocess)},
                          "best.pt")


def _diverged(loss: float, epoch: int) -> TrainingError:
    return TrainingError(f"training diverged: the loss is {loss} in epoch {epoch + 1}; "
                         f"lower optimizer.lr or set optimizer.clip_grad")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain data only: ``weights_only=True``)."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"checkpoint {path} not found") from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise TrainingError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
