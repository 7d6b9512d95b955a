"""Optimizer names -> timm optimizers, and each schedule's shape and stepping interval."""
from __future__ import annotations

import itertools

import pytest
import torch

from trainer.engine.config import OptimizerConfig, SchedulerConfig
from trainer.engine.optim import build_optimizer, build_schedule, list_optimizers, lr_curve
from trainer.errors import ConfigError


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))


def test_sgd_is_plain_momentum_sgd_unless_nesterov_is_asked() -> None:
    opt = build_optimizer(model(), OptimizerConfig(name="sgd", lr=0.1))
    assert type(opt) is torch.optim.SGD
    assert all(g["nesterov"] is False and g["momentum"] == 0.9 for g in opt.param_groups)
    opt = build_optimizer(model(), OptimizerConfig(name="sgd", lr=0.1, nesterov=True, momentum=0.8))
    assert all(g["nesterov"] is True and g["momentum"] == 0.8 for g in opt.param_groups)


def test_adamw_gets_lr_betas_and_no_decay_on_biases_and_norms() -> None:
    opt = build_optimizer(model(), OptimizerConfig(name="adamw", lr=3e-4, weight_decay=0.05, betas=[0.8, 0.95]))
    assert type(opt) is torch.optim.AdamW
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 0.05]
    assert all(g["lr"] == 3e-4 and g["betas"] == (0.8, 0.95) for g in opt.param_groups)


@pytest.mark.parametrize("name", ["lamb", "adopt", "lion", "adam", "rmsprop"])
def test_other_timm_optimizers_build(name: str) -> None:
    opt = build_optimizer(model(), OptimizerConfig(name=name, lr=1e-3))
    assert opt.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize("name, fragment", [
    ("soap", "SOAP is not available in timm"),
    ("shampoo", "Shampoo is not available in timm"),
    ("kron", "excluded"),
    ("adamww", "did you mean"),
])
def test_optimizer_errors(name: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_optimizer(model(), OptimizerConfig(name=name))
    assert fragment in str(exc.value)


def test_list_optimizers_leaves_out_what_cannot_run_here() -> None:
    names = [n for n, _ in list_optimizers()]
    assert {"sgd", "adamw", "lamb", "adopt", "lion"} <= set(names)
    assert not [n for n in names if n.startswith("kron")]
    assert "soap" not in names
    descriptions = dict(list_optimizers())
    assert "Nesterov only" in descriptions["sgd"]


def curve(name: str, epochs: int = 6, steps: int = 4, **kw) -> list[list[float]]:
    return lr_curve(SchedulerConfig(name=name, **kw), epochs=epochs, steps_per_epoch=steps, lr=0.1)


def flat(c: list[list[float]]) -> list[float]:
    return [v for epoch in c for v in epoch]


def test_step_schedules_change_lr_only_between_epochs() -> None:
    c = curve("step", decay_epochs=2)
    assert all(len(set(epoch)) == 1 for epoch in c)  # per epoch
    assert [e[0] for e in c] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    c = curve("multistep", epochs=8, milestones=[3, 6])
    assert [e[0] for e in c] == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 2)
    c = curve("exponential", decay_rate=0.5)
    assert [e[0] for e in c] == pytest.approx([0.1 * 0.5 ** i for i in range(6)])


def test_cosine_decays_every_step_with_linear_warmup() -> None:
    c = curve("cosine", epochs=10, steps=5, warmup_epochs=2, warmup_lr=0.0, min_lr=0.001)
    lrs = flat(c)
    warm = lrs[:10]
    assert warm == sorted(warm) and warm[0] < 0.01
    rest = lrs[10:]
    assert all(a > b for a, b in itertools.pairwise(rest))  # strictly decreasing, per step
    assert max(lrs) == pytest.approx(0.1, rel=1e-3) and rest[-1] >= 0.001


def test_cosine_restarts_go_back_up() -> None:
    c = curve("cosine_restarts", epochs=9, steps=3, cycle_epochs=3)
    starts = [e[0] for e in c]
    assert starts[0] == starts[3] == starts[6] == pytest.approx(0.1)
    assert starts[2] < starts[1] < starts[0]


def test_linear_decays_linearly() -> None:
    lrs = flat(curve("linear", epochs=5, steps=4))
    diffs = [a - b for a, b in itertools.pairwise(lrs)]
    assert all(d == pytest.approx(diffs[0], rel=1e-6) for d in diffs)
    assert lrs[0] == pytest.approx(0.1)


def test_cyclic_oscillates_between_bounds_per_step() -> None:
    lrs = flat(curve("cyclic", epochs=4, steps=4, cycle_epochs=2, min_lr=0.01))
    assert min(lrs) == pytest.approx(0.01) and max(lrs) == pytest.approx(0.1)
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1 and lrs[-1] < max(lrs)


def test_onecycle_peaks_at_pct_start_and_ends_low() -> None:
    lrs = flat(curve("onecycle", epochs=5, steps=4, pct_start=0.25))
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert abs(peak - 0.25 * len(lrs)) <= 1
    assert lrs[0] < 0.01 and lrs[-1] < 0.001


def test_plateau_cuts_lr_when_the_metric_stalls() -> None:
    flat_loss = [{"val_loss": 1.0}] * 6
    c = lr_curve(SchedulerConfig(name="plateau", patience=1, metric="val_loss"), epochs=6, steps_per_epoch=2,
                 lr=0.1, metrics=flat_loss)
    starts = [e[0] for e in c]
    assert starts[0] == starts[1] == 0.1 and starts[-1] < 0.1
    improving = [{"val_acc": 0.1 * i} for i in range(6)]
    c = lr_curve(SchedulerConfig(name="plateau", patience=1, metric="val_acc"), epochs=6, steps_per_epoch=2,
                 lr=0.1, metrics=improving)
    assert all(e[0] == 0.1 for e in c)  # accuracy rising: mode max, no cut


@pytest.mark.parametrize("name, interval", [
    ("cosine", "step"), ("cosine_restarts", "step"), ("linear", "step"), ("cyclic", "step"), ("onecycle", "step"),
    ("step", "epoch"), ("multistep", "epoch"), ("exponential", "epoch"), ("plateau", "epoch"),
    ("constant", "epoch"), ("none", "epoch"),
])
def test_auto_interval(name: str, interval: str) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert build_schedule(opt, SchedulerConfig(name=name), epochs=4, steps_per_epoch=3, base_lr=0.1).interval \
        == interval


def test_cosine_per_epoch_when_asked() -> None:
    c = curve("cosine", interval="epoch")
    assert all(len(set(e)) == 1 for e in c) and c[1][0] < c[0][0]


def test_schedule_state_round_trips() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_schedule(opt, SchedulerConfig(name="onecycle"), epochs=3, steps_per_epoch=5, base_lr=0.1)
    for step in range(1, 8):
        opt.step()
        sched.after_update(step)
    state = sched.state_dict()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched2 = build_schedule(opt2, SchedulerConfig(name="onecycle"), epochs=3, steps_per_epoch=5, base_lr=0.1)
    sched2.load_state_dict(state)
    opt2.load_state_dict(opt.state_dict())
    for step in range(8, 15):
        opt.step()
        sched.after_update(step)
        opt2.step()
        sched2.after_update(step)
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
