"""``trainer tune``: a learning-rate range test and a batch-size finder for a config.

**Learning rate** (:func:`lr_range_test`, Leslie Smith's range test as fastai does it): train
a fresh model for ``steps`` updates while the learning rate grows exponentially from
``start_lr`` to ``end_lr``; record each batch's loss and an exponentially smoothed, bias-corrected
copy (``beta`` 0.98); stop early once the smoothed loss exceeds ``diverge`` times its minimum.
The suggestion (``rule``):

- ``steepest`` (default): the lr where the smoothed loss falls fastest against log(lr), looked
  for between the first tenth of the sweep and the loss minimum (the start is noise, past the
  minimum the loss only rises);
- ``min10``: a tenth of the lr at the smoothed loss minimum (the rule of thumb: the minimum is
  already too hot).

**Batch size** (:func:`search_batch_size`): double from ``start`` until a size does not fit
(or ``max_batch`` is reached), then binary-search between the last fit and the first failure.
A size fits when a few full training steps (forward, backward, optimizer update) run at it
without running out of memory (:class:`TrainStepProbe`, on the config's device); the answer
is the largest fit less ``margin`` (10%), rounded down to a multiple of 8, because memory
fragments and evaluation, checkpoints or a second process need room too (when ``max_batch``
fits, no limit was seen and the answer is ``max_batch`` itself). Images/s are
measured at every size that fits. The probe is injectable, so tests fake the memory limit.
"""
from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ednaquery.errors import UsageError

__all__ = ["BatchFinding", "BatchTrial", "LrFinding", "TrainStepProbe", "is_out_of_memory", "lr_range_test",
           "search_batch_size", "suggest_lr"]

RULES = ("steepest", "min10")


# ------------------------------------------------------------------ learning rate


@dataclass
class LrFinding:
    """The range test's curve and its suggestion."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None
    rule: str
    min_loss_lr: float | None
    diverged: bool


def suggest_lr(lrs: list[float], smoothed: list[float], rule: str = "steepest") -> tuple[float | None, float | None]:
    """(suggested lr, lr at the smoothed loss minimum) for a range test's curve (module docstring)."""
    if rule not in RULES:
        raise UsageError(f"--rule: {rule!r} is not one of {', '.join(RULES)}")
    y = np.array(smoothed, dtype=float)
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return None, None
    i_min = int(np.nanargmin(np.where(ok, y, np.nan)))
    min_lr = lrs[i_min]
    if rule == "min10":
        return min_lr / 10.0, min_lr
    skip = max(1, len(lrs) // 10)
    if i_min - skip < 2:  # the loss only rose: no falling part to pick from
        return None, min_lr
    x = np.log10(np.array(lrs[:i_min + 1], dtype=float))
    slope = np.gradient(y[:i_min + 1], x)
    i = skip + int(np.argmin(slope[skip:i_min + 1]))
    return lrs[i], min_lr


def _fresh_trainer(cfg: Any, dev: torch.device, **data_kw: Any) -> Any:
    """Data, a fresh model and a :class:`trainer.engine.loop.Trainer` built as ``run_training`` builds them."""
    from trainer.engine.data import build_data
    from trainer.engine.heads import model_for
    from trainer.engine.loop import Trainer, configure_device, seed_everything

    configure_device(cfg, dev)  # as training runs: same kernels, same memory
    seed_everything(cfg.train.seed)
    data = build_data(cfg, **data_kw)
    model, _, mean_std = model_for(cfg, data)
    return Trainer(cfg, data, model, device=dev, mean_std=mean_std)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # layer decay scales groups (timm)


def lr_range_test(cfg: Any, *, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
                  beta: float = 0.98, diverge: float = 4.0, rule: str = "steepest",
                  device: str | None = None) -> LrFinding:
    """Run the range test for ``cfg`` (a TrainerConfig) on a fresh model; nothing is written."""
    from trainer.engine.loop import resolve_device

    if not 0 < start_lr < end_lr:
        raise UsageError("--start-lr must be above 0 and below --end-lr")
    if steps < 5:
        raise UsageError("--steps must be 5 or more")
    if rule not in RULES:
        raise UsageError(f"--rule: {rule!r} is not one of {', '.join(RULES)}")
    dev = resolve_device(device or cfg.train.device)
    trainer = _fresh_trainer(cfg, dev, device=dev)
    data = trainer.data
    opt = trainer.optimizer
    factor = (end_lr / start_lr) ** (1.0 / (steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, diverged = 0.0, math.inf, False
    trainer.net.train()
    epoch = 0
    while len(lrs) < steps and not diverged:
        data.train_sampler.set_epoch(epoch)
        epoch += 1
        for x, y in data.train_loader:
            lr = start_lr * factor ** len(lrs)
            _set_lr(opt, lr)
            x, y = trainer.prepare(x), y.to(dev, non_blocking=True)
            target = y
            if trainer.mixup is not None and y.shape[0] % 2 == 0:
                x, target = trainer.mixup(x, y)
            with trainer.autocast():
                out = trainer.net(x)
            loss = trainer.criterion(out, target)
            opt.zero_grad(set_to_none=True)
            trainer.scaler.scale(loss).backward()
            trainer.scaler.step(opt)
            trainer.scaler.update()
            value = float(loss.detach())
            lrs.append(lr)
            losses.append(value)
            avg = beta * avg + (1 - beta) * value
            s = avg / (1 - beta ** len(lrs))
            smoothed.append(s)
            if not math.isfinite(s) or (len(lrs) > 5 and s > diverge * best):
                diverged = True
                break
            best = min(best, s)
            if len(lrs) >= steps:
                break
    suggestion, min_lr = suggest_lr(lrs, smoothed, rule)
    return LrFinding(lrs, losses, smoothed, suggestion, rule, min_lr, diverged)


# ------------------------------------------------------------------ batch size


@dataclass
class BatchTrial:
    """One size tried: did it fit, how fast, how much device memory (CUDA)."""

    batch_size: int
    fits: bool
    images_per_s: float | None = None
    peak_mem_mb: float | None = None
    error: str | None = None


@dataclass
class BatchFinding:
    """Every size tried (in order), the largest that fit and the answer (with the margin)."""

    trials: list[BatchTrial]
    largest_fit: int
    suggestion: int
    margin: float
    hit_max: bool
    first_failure: int | None = None
    notes: list[str] = field(default_factory=list)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device or host allocation failure (what the batch-size finder looks for)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _with_margin(largest: int, margin: float, multiple: int) -> int:
    b = math.floor(largest * (1.0 - margin))
    if b >= multiple:
        b -= b % multiple
    return max(1, min(b, largest))


def search_batch_size(probe: Callable[[int], BatchTrial], *, start: int = 2, max_batch: int = 4096,
                      margin: float = 0.1, multiple: int = 8, say: Callable[[BatchTrial], None] | None = None
                      ) -> BatchFinding:
    """Doubling then binary search with ``probe(batch) -> BatchTrial`` (module docstring)."""
    if start < 1 or max_batch < start:
        raise UsageError("--start must be 1 or more and at most --max")
    if not 0 <= margin < 1:
        raise UsageError("--margin must be at least 0 and below 1")
    trials: list[BatchTrial] = []

    def attempt(b: int) -> bool:
        t = probe(b)
        trials.append(t)
        if say is not None:
            say(t)
        return t.fits

    good, bad = 0, None
    b = start
    while True:
        if attempt(b):
            good = b
            if b >= max_batch:
                break
            b = min(b * 2, max_batch)
        else:
            bad = b
            break
    if good == 0:
        raise UsageError(f"even a batch of {start} does not fit on this device "
                         f"({trials[-1].error or 'out of memory'}); use a smaller model or data.img_size")
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            if attempt(mid):
                good = mid
            else:
                bad = mid
    answer = good if bad is None else _with_margin(good, margin, multiple)  # at --max: no limit seen, no margin
    return BatchFinding(trials, good, answer, margin, bad is None, bad)


class TrainStepProbe:
    """Tries a batch size with real training steps on random images of the config's shape (targets drawn
    from the training set's, so regression and embedding configs work too).

    One model and optimizer serve every trial; after a failure the gradients and the
    allocator's cache are freed before the next size.
    """

    def __init__(self, cfg: Any, *, device: str | None = None, steps: int = 3) -> None:
        from trainer.engine.loop import resolve_device

        self.cfg, self.steps = cfg, max(1, steps)
        self.device = resolve_device(device or cfg.train.device)
        # the data only for its shapes and targets: kept on the host (device_type), batches are random images
        self.trainer = _fresh_trainer(cfg, self.device, device_type=self.device.type)
        data = self.trainer.data
        self.channels, self.hw, self.labels = data.channels, data.img_size, data.train_labels

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        t = self.trainer
        with t.autocast():
            out = t.net(t.prepare(x))
        loss = t.criterion(out, y)
        t.scaler.scale(loss).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
        t.optimizer.zero_grad(set_to_none=True)

    def _free(self) -> None:
        self.trainer.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __call__(self, batch: int) -> BatchTrial:
        from trainer.engine.stats import synchronize

        g = torch.Generator().manual_seed(batch)
        cuda = self.device.type == "cuda"
        try:
            x = torch.randint(0, 256, (batch, self.channels, *self.hw), dtype=torch.uint8, generator=g)
            y = self.labels[torch.randint(0, len(self.labels), (batch,), generator=g)].to(self.device)  # any task
            if cuda:
                torch.cuda.reset_peak_memory_stats(self.device)
            self.trainer.net.train()
            self._step(x, y)  # warm-up: allocations, cuDNN's choice of kernels
            synchronize(self.device)
            t0 = time.perf_counter()
            for _ in range(self.steps):
                self._step(x, y)
            synchronize(self.device)
            elapsed = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if cuda else None
            return BatchTrial(batch, True, batch * self.steps / elapsed if elapsed > 0 else None, peak)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            return BatchTrial(batch, False, error=(str(exc).splitlines() or [type(exc).__name__])[0][:200])
        finally:
            self._free()
