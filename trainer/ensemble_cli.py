"""``trainer ensemble``: the click layer over :mod:`trainer.ops.ensemble` (registered by :mod:`trainer.store_cli`)."""
from __future__ import annotations

from pathlib import Path

import click

from ednaquery.clikit import command_app, store_option
from ednaquery.terminal import printable
from trainer.store_cli import _sayer

__all__ = ["ensemble"]


@click.command(epilog="""\b
Examples:
  trainer ensemble dataset=digits --top 5 --dry-run
  trainer ensemble dataset=digits --top 5 --combine mean
  trainer ensemble sweep=3fa9c2 --top 3 --by val_loss --combine weighted --combine stacking
  ednaquery find kind=run 'members=20261204-221530-3fa9'      # the ensembles it is part of
  ednaquery find kind=run ensemble.combine --best val_acc_gain   # the ensemble that gained most
\b
QUERY is the query language of `ednaquery find` (docs/query.md); completed runs that are
not ensembles are the candidates. Each --combine writes one ensemble run (kind=run,
members: [...], metrics val_acc, val_loss, val_top5, val_acc_gain over the best member).
Members must share class list, data.img_size and channels, and their validation images.
\b
Exit status: 0 written, 1 a member failed to load, 2 bad input (nothing written).""")
@click.argument("query", nargs=-1)
@click.option("--top", type=click.IntRange(min=2), default=None, metavar="K",
              help="Keep the K best runs by --by (default: every run the query finds).")
@click.option("--by", default="val_acc", show_default=True, metavar="METRIC",
              help="Rank runs by this metric's best epoch (lower is better for loss-like names).")
@click.option("--combine", "combines", multiple=True, default=("mean",), show_default=True,
              type=click.Choice(["mean", "weighted", "vote", "stacking"]),
              help="mean: mean softmax; weighted: weights from validation accuracy; vote: majority vote; "
                   "stacking: logistic regression on out-of-fold predictions. Repeat for several runs.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Stacking: folds of the validation set (each scored by a meta-learner fitted on the others).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N for the members' inference (default: auto).")
@click.option("--runs-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the ensemble run folders (default: the runs_root setting, <first root>/runs, "
                   "or ./runs); also where to look for member folders the store does not know.")
@click.option("--dry-run", is_flag=True, help="Print the plan (members, combinations, data); load and write nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@store_option("store_uri")
def ensemble(query: tuple[str, ...], top: int | None, by: str, combines: tuple[str, ...], folds: int,
             device: str | None, runs_root: Path | None, dry_run: bool, quiet: bool, store_uri: str | None) -> None:
    """Combine the best checkpoints of the runs QUERY finds into ensemble runs, scored and indexed."""
    from trainer.ops.ensemble import plan_ensemble, run_ensemble
    from trainer.ops.launch import check_device, runs_root_for

    check_device(device)
    app = command_app(store_uri)
    try:
        store = app.open_store(create=True)
        root = runs_root_for(runs_root, app.settings)
        plan = plan_ensemble(store, list(query), combines=list(combines), by=by, top=top, folds=folds,
                             runs_root=root)
        if dry_run:
            for line in plan.describe():
                click.echo(printable(line))
            click.echo(f"would write {len(plan.combines)} ensemble run(s) under {printable(str(root))}", err=True)
            return
        results = run_ensemble(store, plan, runs_root=root, device=device, say=_sayer(quiet))
    finally:
        app.close()
    for r in results:
        click.echo(printable(f"ensemble {r.run_id} {r.combine} of {len(plan.members)}: val_acc "
                             f"{r.metrics['val_acc']:.4f} (best member {r.best_member} {r.best_member_val_acc:.4f}, "
                             f"gain {r.gain:+.4f}) -> {r.run_dir}"))
