"""Sweep efficiency: bayes + ASHA against random search and a grid, on the same budget of epochs.

Every method tunes the learning rate (log-uniform in [1e-4, 1e-1]; the grid: ``--trials``
log-spaced values) and the weight decay (uniform in [0, 0.1]; the grid: its default 0) of a
tiny model on digits. The grid and random search train ``--trials`` trials of ``--epochs``
epochs each; that total is the budget. Bayes (TPE) with ASHA pruning asks trial after trial,
each pruned trial costing only the epochs it trained, until the budget is spent. All of it goes
through ``trainer sweep``'s own machinery (:mod:`trainer.ops.search`, the queue, the worker, the
store), one SQLite store per method and seed.

Printed per seed and as means over ``--seeds`` seeds: each method's best val_acc within the
budget, and for bayes + ASHA the epochs it needed to reach the grid's best val_acc divided by the
grid's epochs (``match ratio``: 0.5 means it matched the grid with half the epochs; "-" when it
did not match it within the budget, counted as 1.0 in the mean).

    .venv/bin/python bench/sweep_efficiency.py                      # 3 seeds, 8 trials x 4 epochs (a few minutes)
    .venv/bin/python bench/sweep_efficiency.py --smoke              # seconds: does it run at all
    .venv/bin/python bench/sweep_efficiency.py --seeds 5 --steps 20 --img-size 32
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ednaquery.store.sqlite import SQLiteStore
from trainer.ops.jobs import open_jobs
from trainer.ops.search import drive, search_spec
from trainer.ops.sweep import expand, submit
from trainer.ops.worker import WorkerOptions, launch_runner, run_worker


def base_config(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {"model": {"name": args.model},
            "data": {"dataset": "digits", "img_size": args.img_size, "batch_size": 32},
            "optimizer": {"name": "adamw", "lr": 1e-3}, "scheduler": {"name": "cosine"},
            "train": {"epochs": args.epochs, "seed": seed, "device": "cpu", "max_steps_per_epoch": args.steps,
                      "threads": args.threads}}


def _curve(trials: list[Any]) -> list[tuple[int, float]]:
    """(epochs spent so far, best val_acc so far) after each trial, in trial order."""
    spent, best, out = 0, 0.0, []
    for t in sorted(trials, key=lambda t: t.number):
        spent += int(t.epochs or 0)
        values = list(t.values.values())
        if t.value is not None:
            best = max(best, t.value)
        elif values:  # a pruned trial still found what it found
            best = max(best, max(values))
        out.append((spent, best))
    return out


def run_search(args: argparse.Namespace, seed: int, method: str, folder: Path, budget_epochs: int) -> list:
    store = SQLiteStore(folder / "index.db")
    queue = open_jobs(store)
    runner = launch_runner(store, runs_root=folder / "runs", quiet=True)
    sweep = {"base": base_config(args, seed), "method": "bayes" if method == "bayes+asha" else "random",
             "budget": {"trials": 1}, "seed": seed, "early_stop": "asha" if method == "bayes+asha" else "none",
             "axes": {"lr": "loguniform(1e-4, 1e-1)", "weight_decay": "uniform(0, 0.1)"}}
    spec = search_spec(sweep, store=store, source=f"bench-{method}")
    trials: list = []
    while not trials or _curve(trials)[-1][0] < budget_epochs:
        spec.trials = len(trials) + 1  # the budget is not part of the sweep's identity: the same sweep grows
        trials = drive(spec, store=store, queue=queue, run_job=runner, poll_interval=0.05)
        if len(trials) > budget_epochs:  # every trial trains at least one epoch
            break
    queue.close()
    store.close()
    return trials


def run_grid(args: argparse.Namespace, seed: int, folder: Path) -> list:
    store = SQLiteStore(folder / "index.db")
    queue = open_jobs(store)
    n = args.trials
    lrs = [float(f"{1e-4 * 1000 ** (i / max(1, n - 1)):.3g}") for i in range(n)]
    plan = expand({"base": base_config(args, seed), "axes": {"optimizer.lr": lrs}}, store=store)
    submit(plan, store=store, queue=queue)
    run_worker(queue, launch_runner(store, runs_root=folder / "runs", quiet=True),
               options=WorkerOptions(until_empty=True, poll_interval=0.05))
    from ednaquery.query.parser import parse
    from ednaquery.store.base import FindOptions

    runs = sorted(store.find(parse(["kind=run"]), FindOptions(kinds=("run",))), key=lambda d: d["_id"])
    out = [(int((d.get("info") or {}).get("epochs_done") or 0),
            float(((d.get("metrics") or {}).get("val_acc") or {}).get("best") or 0.0)) for d in runs]
    queue.close()
    store.close()
    spent, best, curve = 0, 0.0, []
    for epochs, acc in out:
        spent += epochs
        best = max(best, acc)
        curve.append((spent, best))
    return curve


def best_within(curve: list[tuple[int, float]], budget: int) -> float:
    return max((b for e, b in curve if e <= budget), default=0.0)


def epochs_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((e for e, b in curve if b >= target - 1e-9), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=8, help="grid and random trials (the budget is trials x epochs)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12, help="train.max_steps_per_epoch")
    ap.add_argument("--img-size", type=int, default=16)
    ap.add_argument("--model", default="test_resnet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="1 seed, 3 trials of 2 epochs of 2 steps: seconds")
    args = ap.parse_args()
    if args.smoke:
        args.seeds, args.trials, args.epochs, args.steps, args.img_size = 1, 3, 2, 2, 8
    logging.disable(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    budget = args.trials * args.epochs
    print(f"budget: {budget} epochs per method and seed ({args.trials} trials x {args.epochs} epochs; "
          f"{args.model}, digits {args.img_size}px, {args.steps} steps/epoch)")
    rows: dict[str, list[float]] = {"grid": [], "random": [], "bayes+asha": []}
    ratios: list[float] = []
    t0 = time.time()
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
            grid = run_grid(args, seed, Path(tmp) / "grid")
            curves = {"grid": grid}
            for method in ("random", "bayes+asha"):
                trials = run_search(args, seed, method, Path(tmp) / method, budget)
                curves[method] = _curve(trials)
            n_bayes = len(trials)
        for m, c in curves.items():
            rows[m].append(best_within(c, budget))
        target = best_within(grid, budget)
        reached = epochs_to_reach(curves["bayes+asha"], target)
        ratio = reached / budget if reached is not None and reached <= budget else None
        ratios.append(ratio if ratio is not None else 1.0)
        print(f"seed {seed}: best val_acc grid {rows['grid'][-1]:.4f}  random {rows['random'][-1]:.4f}  "
              f"bayes+asha {rows['bayes+asha'][-1]:.4f} ({n_bayes} trials)  match ratio "
              f"{'-' if ratio is None else f'{ratio:.2f}'}  [{time.time() - t0:.0f}s]", flush=True)
    print(f"mean over {args.seeds} seed(s): " + "  ".join(f"{m} {statistics.mean(v):.4f}" for m, v in rows.items()))
    print(f"epochs bayes+asha needed to match grid's best / grid's epochs: mean {statistics.mean(ratios):.2f} "
          f"(target <= 0.5; 1.0 counts a seed where it did not match within the budget)")


if __name__ == "__main__":
    main()
