"""What ``trainer sweep status`` and ``trainer sweep ID --plot`` show of a searching sweep.

Status: trials by state, the best so far (value, run, params) and the best-so-far value after
each trial. Plot: ``sweep-<id>-history.png`` (every trial's value by trial number, pruned ones
marked, and the best-so-far line) and ``sweep-<id>-importance.png`` (each param's importance by
Optuna's fANOVA evaluator on the complete trials).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.ops.launch import override_strings
from trainer.ops.search import Trial, build_study, space_of

__all__ = ["describe_space", "plot_sweep", "status_lines", "trial_record"]


def describe_space(space: dict[str, Any]) -> list[str]:
    """One line per axis: ``optimizer.lr: loguniform(1e-05, 0.01)``."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    lines = []
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            text = f"choice({list(d.choices)})"
        elif isinstance(d, IntDistribution):
            text = f"{'logint' if d.log else 'int'}({d.low}, {d.high}" + (f", {d.step})" if d.step != 1 else ")")
        else:
            text = f"{'loguniform' if d.log else 'uniform'}({d.low:g}, {d.high:g}" + \
                (f", {d.step:g})" if d.step else ")")
        lines.append(f"{key}: {text}")
    return lines


def trial_record(t: Trial) -> dict[str, Any]:
    """One trial for scripts (``trainer sweep status --json``)."""
    return {"trial": t.number, "state": t.state, "value": t.value, "run_id": t.run_id, "job_id": t.job.id,
            "epochs": t.epochs, "params": t.params}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def status_lines(sweep_id: str, trials: list[Trial], s: dict[str, Any], metric: str, *,
                 detail: bool = False) -> list[str]:
    """The status report as lines (counts, best, best-so-far curve; ``detail``: one line per trial)."""
    c = s["counts"]
    lines = [(f"trials: {len(trials)} ({c['complete']} done, {c['running']} running, {c['queued']} queued, "
             f"{c['pruned']} pruned, {c['failed']} failed)")]
    best = s["best"]
    if best is not None:
        lines.append(f"best: trial {best.number} {metric} {best.value:.4f} run {best.run_id}  "
                     f"{' '.join(override_strings(best.params))}")
    else:
        lines.append("best: none yet")
    if s["curve"]:
        lines.append("best so far: " + " ".join(_fmt(v) for v in s["curve"]))
    if detail:
        for t in trials:
            stopped = f" at epoch {t.epochs}" if t.state == "pruned" and t.epochs is not None else ""
            lines.append(f"  #{t.number:<3} {t.state:<8}{stopped:<12} {_fmt(t.value):>7}  {t.run_id or '':<22} "
                         f"{' '.join(override_strings(t.params))}")
    lines.append(f"ranked: ednaquery find kind=run sweep={sweep_id} --sort=-{metric}")
    return lines


def plot_sweep(block: dict[str, Any], trials: list[Trial], folder: Path) -> list[tuple[Path, str]]:
    """Write the history and importance PNGs into ``folder``; returns ``(path, note)`` per file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainer.ops.search import summary

    folder.mkdir(parents=True, exist_ok=True)
    sid, metric, goal = block["id"], block["metric"], block["goal"]
    out: list[tuple[Path, str]] = []
    s = summary(trials, goal)
    fig, ax = plt.subplots(figsize=(7, 4))
    done = [t for t in trials if t.value is not None]
    ax.scatter([t.number for t in done], [t.value for t in done], label="complete", zorder=3)
    pruned = [t for t in trials if t.state == "pruned" and t.values]
    if pruned:
        last = [t.values[max(t.values)] for t in pruned]
        ax.scatter([t.number for t in pruned], last, marker="x", color="grey", label="pruned (last value)")
    ax.step(range(len(s["curve"])), [float("nan") if v is None else v for v in s["curve"]], where="post",
            color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"sweep {sid}: optimisation history ({block.get('method')})")
    ax.legend(loc="best")
    fig.tight_layout()
    history = folder / f"sweep-{sid}-history.png"
    fig.savefig(history, dpi=100)
    plt.close(fig)
    out.append((history, f"{len(done)} complete trial(s)"))

    importance = folder / f"sweep-{sid}-importance.png"
    note = ""
    try:
        import optuna

        study = build_study(sid, goal, space_of(block), trials)
        scores = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError) as exc:
        scores, note = {}, f"no importances: {str(exc).splitlines()[0]}"
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.4 * max(1, len(scores))))
    names = list(scores)[::-1]
    ax.barh(names, [scores[n] for n in names])
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title(f"sweep {sid}: param importances" + ("" if scores else " (too few complete trials)"))
    fig.tight_layout()
    fig.savefig(importance, dpi=100)
    plt.close(fig)
    out.append((importance, note or ", ".join(f"{k} {v:.2f}" for k, v in scores.items())))
    return out
