"""Ensemble gain: an ensemble of 5 tiny members on digits against its best single member.

For each repeat, 5 members are trained (``trainer.ops.launch.launch``, into a throw-away store)
that differ by seed and, where the trainer has it, by bootstrap sample (``data.bootstrap``;
``--vary seed`` forces seeds only). Then ``trainer ensemble`` combines them four ways (mean,
weighted, vote, stacking: :mod:`trainer.ops.ensemble`, the members evaluated once) and the
bench prints, per method, the validation accuracy and the gain over the best member (the member
with the highest validation accuracy), as means over the repeats. Stacking's score is out of
fold (each validation image scored by a meta-learner fitted on the other folds).

    .venv/bin/python bench/ensemble_gain.py --smoke            # a minute on one core: it runs
    .venv/bin/python bench/ensemble_gain.py                    # 3 repeats, test_resnet 16px, 2x40 steps
    .venv/bin/python bench/ensemble_gain.py --model resnet18 --img-size 32 --epochs 5 --steps 0 --json gain.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

METHODS = ("mean", "weighted", "vote", "stacking")


def member_config(args: argparse.Namespace) -> dict:
    return {"model": {"name": args.model},
            "data": {"dataset": "digits", "img_size": args.img_size, "batch_size": args.batch_size,
                     "fraction": args.fraction},
            "optimizer": {"name": "adamw", "lr": args.lr}, "scheduler": {"name": "cosine"},
            "train": {"epochs": args.epochs, "seed": 0, "device": args.device, "threads": args.threads,
                      "max_steps_per_epoch": args.steps or None}}


def has_bootstrap() -> bool:
    """Whether this trainer has ``data.bootstrap`` (a bootstrap sample of the training set)."""
    from trainer.engine.config import DataConfig

    return "bootstrap" in DataConfig.__dataclass_fields__


def one_repeat(args: argparse.Namespace, repeat: int, vary: str, folder: Path) -> dict:
    """Train the members, combine them every way; the members' and the ensembles' validation accuracy."""
    from ednaquery.store.sqlite import SQLiteStore
    from trainer.ops.ensemble import plan_ensemble, run_ensemble
    from trainer.ops.launch import launch

    cfg_path = folder / "member.yaml"
    cfg_path.write_text(yaml.safe_dump(member_config(args), sort_keys=False))
    store = SQLiteStore(folder / "index.db")
    try:
        for i in range(args.members):
            seed = 1000 * repeat + i
            overrides = [f"train.seed={seed}"] + ([f"data.bootstrap={seed}"] if vary == "bootstrap" else [])
            t = time.perf_counter()
            result = launch(str(cfg_path), overrides, store=store, runs_root=folder / "runs", quiet=True,
                            handle_signals=False)
            if result.status != "completed":
                raise SystemExit(f"member {i} {result.status}: {result.error}")
            acc = result.metrics.get("val_acc", {}).get("best")
            print(f"  repeat {repeat} member {i}: val_acc {acc:.4f} ({time.perf_counter() - t:.1f}s)", file=sys.stderr)
        plan = plan_ensemble(store, [], combines=list(METHODS), top=args.members, folds=args.folds,
                             runs_root=folder / "runs")
        results = run_ensemble(store, plan, runs_root=folder / "ensembles", device=args.device)
    finally:
        store.close()
    best = results[0].best_member_val_acc
    out = {"best_member": best, "methods": {r.combine: r.metrics["val_acc"] for r in results}}
    print(f"  repeat {repeat}: best member {best:.4f}; "
          + ", ".join(f"{m} {a:.4f} ({a - best:+.4f})" for m, a in out["methods"].items()), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="One repeat of very short members: checks that it runs.")
    p.add_argument("--repeats", type=int, default=3, help="Independent sets of members (default 3).")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--vary", choices=("auto", "seed", "bootstrap"), default="auto",
                   help="How members differ (auto: bootstrap samples where the trainer has data.bootstrap).")
    p.add_argument("--model", default="test_resnet")
    p.add_argument("--img-size", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=40, help="Max steps per epoch (0: whole epochs).")
    p.add_argument("--fraction", type=float, default=1.0, help="Fraction of digits' training split.")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--folds", type=int, default=5, help="Stacking's folds of the validation set.")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", dest="json_out", default=None, help="Also write the figures here.")
    args = p.parse_args(argv)
    if args.smoke:
        args.repeats, args.epochs, args.steps = 1, 1, 10
    vary = args.vary
    if vary == "auto":
        vary = "bootstrap" if has_bootstrap() else "seed"
    elif vary == "bootstrap" and not has_bootstrap():
        p.error("--vary bootstrap: this trainer has no data.bootstrap")
    os.environ.setdefault("EDNAQUERY_CONFIG", os.devnull)  # no user settings: a private store per repeat
    print(f"{args.repeats} repeat(s) of {args.members} {args.model} members at {args.img_size}px, "
          f"{args.epochs} epoch(s) x {args.steps or 'all'} steps, differing by {vary}", file=sys.stderr)
    rows = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="ensemble-gain-") as tmp:
            rows.append(one_repeat(args, r, vary, Path(tmp)))
    best = [row["best_member"] for row in rows]
    print(f"\nensemble of {args.members} vs its best member, digits validation accuracy, "
          f"mean over {len(rows)} repeat(s):\n")
    print("| combine | val_acc | gain over best member |")
    print("|---|---|---|")
    print(f"| best member | {statistics.mean(best):.4f} | |")
    summary = {}
    for m in METHODS:
        accs = [row["methods"][m] for row in rows]
        gains = [a - b for a, b in zip(accs, best)]
        summary[m] = {"val_acc": statistics.mean(accs), "gain": statistics.mean(gains), "gains": gains}
        print(f"| {m} | {statistics.mean(accs):.4f} | {statistics.mean(gains):+.4f} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"args": vars(args), "vary": vary, "repeats": rows,
                                                   "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
