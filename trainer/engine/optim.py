"""Optimizers (timm's create_optimizer_v2) and learning-rate schedules, each stepped correctly.

Optimizers: any name that timm's registry knows and this machine can run (see
:func:`list_optimizers`), with these decisions made explicit:

- ``sgd`` is plain momentum SGD (timm's ``sgd`` adds Nesterov; ours only when
  ``optimizer.nesterov: true``).
- ``kron`` and its variants are refused: kron exhausted 24 GB of memory on resnet18.
- SOAP and Shampoo are not in timm; asking for them says so.
- optimizers that need apex or bitsandbytes are listed only when those are installed.

Schedules: a :class:`Schedule` wraps either a timm scheduler (stateless functions of
the epoch or update count) or a torch one, and knows whether it advances after each
optimizer update (``interval == "step"``) or after each epoch. The mapping:

========================  =============================================================
``step``/``multistep``    timm step / multistep, milestones as torch means them (per epoch)
``exponential``           timm step with ``decay_epochs=1`` (per epoch)
``cosine``                timm cosine; warmup first, then decay to min_lr (per step)
``cosine_restarts``       timm cosine, ``cycle_limit > 1``, ``cycle_decay=1`` (per step)
``linear``                timm poly with power 1 (per step)
``cyclic``                torch CyclicLR (per step)
``onecycle``              torch OneCycleLR (per step)
``plateau``               torch ReduceLROnPlateau on a named metric (after evaluations)
``constant``/``none``     timm constant (warmup only) / untouched lr
========================  =============================================================
"""
from __future__ import annotations

import difflib
import importlib.util
import math
from typing import Any

import torch

from ednaquery.metrics import direction
from trainer.engine.config import OptimizerConfig, SchedulerConfig
from trainer.errors import ConfigError

NOT_IN_TIMM = {"soap": "SOAP", "shampoo": "Shampoo", "distributed_shampoo": "Shampoo"}
EXCLUDED = {"kron": "kron exhausted 24 GB of memory on resnet18 here"}
PER_STEP_BY_DEFAULT = ("cosine", "cosine_restarts", "linear", "cyclic", "onecycle")


# ------------------------------------------------------------------ optimizers


def _registry() -> Any:
    from timm.optim._optim_factory import default_registry

    return default_registry


def _runnable(info: Any) -> bool:
    cls = info.opt_class
    if isinstance(cls, str):  # "apex.optimizers.FusedAdam", "bitsandbytes.optim.Adam"
        return importlib.util.find_spec(cls.split(".")[0]) is not None
    return True


def _excluded(name: str) -> str | None:
    for prefix, why in EXCLUDED.items():
        if name.startswith(prefix):
            return why
    return None


def list_optimizers() -> list[tuple[str, str]]:
    """(name, description) of every optimizer a config may name, in name order."""
    import timm.optim

    reg = _registry()
    out = []
    for name, desc in timm.optim.list_optimizers(with_description=True):
        if _excluded(name) or not _runnable(reg.get_optimizer_info(name)):
            continue
        if name == "sgd":
            desc = "torch.optim.SGD with momentum (Nesterov only with optimizer.nesterov: true)"
        out.append((name, desc))
    return out


def _resolve_name(cfg: OptimizerConfig) -> str:
    """The timm registry name for ``cfg.name`` (errors name the alternatives)."""
    name = cfg.name.strip().lower()
    lookahead = name.startswith("lookahead_")
    base = name[len("lookahead_"):] if lookahead else name
    if base in NOT_IN_TIMM:
        import timm

        raise ConfigError(f"optimizer.name: {NOT_IN_TIMM[base]} is not available in timm {timm.__version__}; "
                          f"pick one of `trainer optimizers` (e.g. adamw, lamb, adopt)")
    why = _excluded(base)
    if why:
        raise ConfigError(f"optimizer.name: {base} is excluded ({why}); pick another from `trainer optimizers`")
    names = [n for n, _ in list_optimizers()]
    if base not in names:
        close = difflib.get_close_matches(base, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `trainer optimizers`"
        raise ConfigError(f"optimizer.name: unknown optimizer {cfg.name!r}{hint}")
    if base == "sgd":
        base = "nesterov" if cfg.nesterov else "momentum"
    return ("lookahead_" + base) if lookahead else base


def _can_fuse(opt: str, model: torch.nn.Module, kwargs: dict[str, Any]) -> bool:
    """torch's Adam/AdamW/SGD on CUDA parameters, with no foreach/fused choice made by the config."""
    if opt.startswith("lookahead_") or "fused" in kwargs or "foreach" in kwargs:
        return False
    cls = _registry().get_optimizer_info(opt).opt_class
    if cls not in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
        return False
    params = list(model.parameters())
    return bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)


def needs_create_graph(cfg: OptimizerConfig) -> bool:
    """Second-order optimizers (adahessian) need ``backward(create_graph=True)``."""
    name = _resolve_name(cfg).split("_")[-1]
    return bool(getattr(_registry().get_optimizer_info(name), "second_order", False))


def build_optimizer(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer for ``model`` as ``cfg`` describes it."""
    from timm.optim import create_optimizer_v2

    opt = _resolve_name(cfg)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if _can_fuse(opt, model, kwargs):
        kwargs["fused"] = True  # one CUDA kernel for the whole update, as hand-tuned loops do
    if cfg.betas is not None:
        kwargs["betas"] = tuple(cfg.betas)
    if cfg.eps is not None:
        kwargs["eps"] = cfg.eps
    try:
        return create_optimizer_v2(model, opt=opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                   momentum=cfg.momentum, filter_bias_and_bn=cfg.filter_bias_and_bn,
                                   layer_decay=cfg.layer_decay, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"optimizer: {cfg.name} rejects its arguments: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise ConfigError(f"optimizer: {str(exc).splitlines()[0]}") from None


def clip_gradients(model: torch.nn.Module, cfg: OptimizerConfig) -> None:
    """Clip gradients in place as ``optimizer.clip_grad``/``clip_mode`` say (no-op when off)."""
    if cfg.clip_grad is None:
        return
    from timm.utils import dispatch_clip_grad

    dispatch_clip_grad(model.parameters(), value=cfg.clip_grad, mode=cfg.clip_mode)


# ------------------------------------------------------------------ schedules


def metric_mode(metric: str, mode: str = "auto") -> str:
    """``mode`` unless "auto"; then :func:`ednaquery.metrics.direction` (accuracies max, losses min), else min."""
    if mode != "auto":
        return mode
    return direction(metric) or "min"


class Schedule:
    """A learning-rate schedule with one calling convention for the loop.

    The loop calls :meth:`after_update` after every optimizer update (with the total
    number of updates so far) and :meth:`after_epoch` after every epoch (with the
    number of completed epochs and that epoch's metrics); the schedule acts on the
    one its ``interval`` says.
    """

    def __init__(self, name: str, interval: str, impl: Any = None, *, kind: str = "none",
                 metric: str | None = None, warmup: tuple[int, float, list[float]] | None = None,
                 total_steps: int | None = None) -> None:
        self.name, self.interval, self.impl, self.kind = name, interval, impl, kind
        self.metric, self.warmup, self.total_steps = metric, warmup, total_steps
        self._torch_steps = 0

    def _torch_step(self) -> None:
        if self.total_steps is not None and self._torch_steps >= self.total_steps - 1:
            return  # OneCycleLR raises past its last step; hold the final lr instead
        self.impl.step()
        self._torch_steps += 1

    def after_update(self, num_updates: int) -> None:
        """Call after every optimizer update; ``num_updates`` counts all updates so far."""
        if self.interval != "step" or self.impl is None:
            return
        if self.kind == "timm":
            self.impl.step_update(num_updates)
        elif self.kind == "torch":
            self._torch_step()

    def after_epoch(self, epochs_done: int, metrics: dict[str, float], optimizer: torch.optim.Optimizer) -> None:
        """Call after every epoch, with the epoch's metrics (the plateau schedule needs its metric)."""
        if self.impl is None:
            return
        if self.kind == "plateau":
            warm_epochs, warm_lr, base = self.warmup or (0, 0.0, [])
            if epochs_done < warm_epochs:
                for g, b in zip(optimizer.param_groups, base):
                    g["lr"] = warm_lr + (b - warm_lr) * epochs_done / warm_epochs
                return
            if epochs_done == warm_epochs and warm_epochs:
                for g, b in zip(optimizer.param_groups, base):
                    g["lr"] = b
            value = metrics.get(self.metric or "")
            if value is not None and math.isfinite(value):
                self.impl.step(value)
            return
        if self.interval != "epoch":
            return
        if self.kind == "timm":
            self.impl.step(epochs_done)
        elif self.kind == "torch":
            self._torch_step()

    def state_dict(self) -> dict[str, Any]:
        """State for checkpoints."""
        return {"impl": self.impl.state_dict() if self.impl is not None else None,
                "torch_steps": self._torch_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if self.impl is not None and state.get("impl") is not None:
            self.impl.load_state_dict(state["impl"])
        self._torch_steps = state.get("torch_steps", 0)


def build_schedule(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, *, epochs: int,
                   steps_per_epoch: int, base_lr: float) -> Schedule:
    """The schedule ``cfg`` names, for ``epochs`` epochs of ``steps_per_epoch`` optimizer updates."""
    from timm.scheduler import create_scheduler_v2

    name = cfg.name
    interval = cfg.interval
    if interval == "auto":
        interval = "step" if name in PER_STEP_BY_DEFAULT else "epoch"
    per_step = interval == "step"
    steps_per_epoch = max(1, steps_per_epoch)
    units = epochs * steps_per_epoch if per_step else epochs  # schedule length in its own units
    per_unit = steps_per_epoch if per_step else 1

    if name == "none":
        return Schedule(name, "epoch")

    if name == "plateau":
        mode = metric_mode(cfg.metric, cfg.mode)
        impl = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=cfg.decay_rate or 0.1, patience=cfg.patience,
            threshold=cfg.threshold, min_lr=cfg.min_lr)
        base = [g["lr"] for g in optimizer.param_groups]
        warmup = (cfg.warmup_epochs, cfg.warmup_lr, base) if cfg.warmup_epochs else None
        if warmup:
            for g in optimizer.param_groups:
                g["lr"] = cfg.warmup_lr
        return Schedule(name, "epoch", impl, kind="plateau", metric=cfg.metric, warmup=warmup)

    if name in ("cyclic", "onecycle"):
        max_lr = cfg.max_lr or base_lr
        if cfg.warmup_epochs:
            raise ConfigError(f"scheduler.warmup_epochs: {name} has its own ramp-up; leave warmup_epochs at 0")
        if name == "cyclic":
            cycle = cfg.cycle_epochs or max(1, epochs // 3)
            if cfg.min_lr >= max_lr:
                raise ConfigError(f"scheduler.min_lr: cyclic needs min_lr < max_lr ({cfg.min_lr} >= {max_lr})")
            impl = torch.optim.lr_scheduler.CyclicLR(
                optimizer, base_lr=cfg.min_lr, max_lr=max_lr, step_size_up=max(1, cycle * per_unit // 2),
                mode=cfg.cyclic_mode, cycle_momentum=False)
            return Schedule(name, interval, impl, kind="torch")
        impl = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=max(2, units), pct_start=cfg.pct_start,
            anneal_strategy="cos", cycle_momentum=False)
        return Schedule(name, interval, impl, kind="torch", total_steps=max(2, units))

    if cfg.warmup_epochs and cfg.warmup_epochs >= epochs and name != "constant":
        raise ConfigError(f"scheduler.warmup_epochs: {cfg.warmup_epochs} leaves no epoch of the {epochs} "
                          f"to schedule; use fewer warmup epochs")
    common: dict[str, Any] = {
        "warmup_lr": cfg.warmup_lr, "warmup_epochs": cfg.warmup_epochs, "min_lr": cfg.min_lr,
        "step_on_epochs": not per_step, "updates_per_epoch": steps_per_epoch if per_step else 0}
    # decaying schedules start after the warmup (which reaches the full lr) and end with the last epoch
    after_warmup = {"warmup_prefix": True, "num_epochs": max(1, epochs - cfg.warmup_epochs)}
    if name == "cosine":
        args = {"sched": "cosine", **after_warmup}
    elif name == "cosine_restarts":
        cycle = cfg.cycle_epochs or max(1, (epochs - cfg.warmup_epochs) // 3)
        limit = cfg.cycle_limit
        if limit is None:
            limit, covered, length = 0, 0.0, float(cycle)
            while covered < epochs - cfg.warmup_epochs:
                covered += length
                length *= cfg.cycle_mul
                limit += 1
        args = {"sched": "cosine", "warmup_prefix": True, "num_epochs": cycle, "cycle_mul": cfg.cycle_mul,
                "cycle_decay": 1.0, "cycle_limit": max(2, limit)}
    elif name == "linear":
        args = {"sched": "poly", "decay_rate": 1.0, **after_warmup}
    elif name == "step":
        args = {"sched": "step", "num_epochs": epochs, "decay_epochs": cfg.decay_epochs or max(1, epochs // 3),
                "decay_rate": cfg.decay_rate or 0.1}
    elif name == "multistep":
        from timm.scheduler import MultiStepLRScheduler

        milestones = cfg.milestones or sorted({max(1, epochs // 2), max(1, epochs * 3 // 4)})
        # torch's meaning: the lr drops when `milestone` epochs are done. timm's MultiStepLRScheduler
        # drops at t + 1 >= d, hence d = milestone * units + 1 (built directly: the factory scales d).
        impl = MultiStepLRScheduler(
            optimizer, decay_t=[m * per_unit + 1 for m in milestones], decay_rate=cfg.decay_rate or 0.1,
            warmup_t=cfg.warmup_epochs * per_unit, warmup_lr_init=cfg.warmup_lr, t_in_epochs=not per_step)
        return Schedule(name, interval, impl, kind="timm")
    elif name == "exponential":
        args = {"sched": "step", "num_epochs": epochs, "decay_epochs": 1, "decay_rate": cfg.decay_rate or 0.9}
    elif name == "constant":
        args = {"sched": "constant", "num_epochs": epochs}
    else:
        raise ConfigError(f"scheduler.name: unknown schedule {name!r}")
    impl, _ = create_scheduler_v2(optimizer, **{**common, **args})
    return Schedule(name, interval, impl, kind="timm")


def lr_curve(cfg: SchedulerConfig, *, epochs: int, steps_per_epoch: int, lr: float = 0.1,
             metrics: list[dict[str, float]] | None = None) -> list[list[float]]:
    """The lr at every optimizer update, grouped by epoch, for a schedule (no model needed).

    Handy to inspect or test a schedule: ``lr_curve(cfg, epochs=10, steps_per_epoch=5)``.
    ``metrics`` feeds the plateau schedule one metrics mapping per epoch.
    """
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr, momentum=0.0)
    sched = build_schedule(opt, cfg, epochs=epochs, steps_per_epoch=steps_per_epoch, base_lr=lr)
    out, updates = [], 0
    for epoch in range(epochs):
        lrs = []
        for _ in range(steps_per_epoch):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            updates += 1
            sched.after_update(updates)
        out.append(lrs)
        sched.after_epoch(epoch + 1, (metrics or [{}] * epochs)[epoch] if metrics else {}, opt)
    return out
