"""The ``trainer cv``, ``trainer bag`` and ``trainer group`` commands: groups of runs (k-fold, bagging).

A thin click layer over :mod:`trainer.ops.groups`; :func:`register` adds the commands to the
``trainer`` group (called from :func:`trainer.store_cli.register`). The store comes from
``--store``, else ``EDNAQUERY_STORE``, else the config file, else the embedded default.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from ednaquery.clikit import command_app, store_option
from ednaquery.terminal import printable

_store_option = store_option("store_uri")
_runs_root_option = click.option(
    "--runs-root", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder for run folders and the group's folder (default: the runs_root setting, <first root>/runs, "
         "or ./runs).")


def _queue_group(kind: str, target: str, overrides: Sequence[str], size: int, seed: int, dry_run: bool,
                 device: str | None, runs_root: Path | None, store_uri: str | None) -> None:
    """Plan (and unless ``dry_run`` queue) a cv or bag group, printing one line per member."""
    from trainer.ops.groups import plan_bag, plan_cv, submit
    from trainer.ops.jobs import open_jobs
    from trainer.ops.launch import check_device, runs_root_for

    check_device(device)
    app = command_app(store_uri)
    try:
        store = app.open_store(create=True)
        if kind == "cv":
            plan = plan_cv(store, target, list(overrides), folds=size, index=not dry_run)
        else:
            plan = plan_bag(store, target, list(overrides), n=size, seed=seed, index=not dry_run)
        root = runs_root_for(runs_root, app.settings)
        path, job_ids = None, []
        if not dry_run:
            q = open_jobs(store)
            try:
                path, jobs = submit(plan, store=store, queue=q, runs_root=root,
                                    options={"device": device} if device else None)
                job_ids = [j.id for j in jobs]
            finally:
                q.close()
    finally:
        app.close()
    for i, m in enumerate(plan.members):
        tail = f"  {job_ids[i]}" if job_ids else ""
        click.echo(printable(f"{m.config.config_id[:12]}  {plan.describe(m)}{tail}"))
    base = plan.base.config_id[:12]
    if dry_run:
        click.echo(printable(f"would queue {len(plan.members)} run(s) of base {base} as group {plan.group_id} "
                             f"(file {root / plan.group_id / 'group.json'})"), err=True)
    else:
        click.echo(printable(f"queued {len(plan.members)} run(s) of base {base} as group {plan.group_id} -> "
                             f"{path}; run `trainer worker` to start them"), err=True)


@click.command(epilog="""\b
Examples:
  trainer cv 3fa9c2 --folds 5 --dry-run           # print the plan: 5 fold configs, nothing queued
  trainer cv config.yaml --folds 5 epochs=10      # queue 5 runs + a group, then:
  trainer worker --until-empty
  ednaquery find kind=group 'val_acc.mean>0.9'    # the group: mean and std over the folds
\b
Fold i validates on the i-th of K stratified, seed-independent folds of the training set and
trains on the others (data.folds: K, data.fold: i); the dataset's own validation/test split
is never in a fold. The group is <runs root>/<group id>/group.json, indexed as kind=group;
each finished fold updates its mean and std.""")
@click.argument("target")
@click.argument("overrides", nargs=-1)
@click.option("--folds", type=int, default=5, show_default=True, help="Number of folds K (one run each).")
@click.option("--dry-run", is_flag=True, help="Print the plan only; index, write and queue nothing.")
@click.option("--device", default=None, help="Device the workers should use for these runs.")
@_runs_root_option
@_store_option
def cv(target: str, overrides: tuple[str, ...], folds: int, dry_run: bool, device: str | None,
       runs_root: Path | None, store_uri: str | None) -> None:
    """k-fold cross-validation of TARGET (config id prefix or file, with key=value OVERRIDES): queue K runs
    plus a group."""
    _queue_group("cv", target, overrides, folds, 0, dry_run, device, runs_root, store_uri)


@click.command(epilog="""\b
Examples:
  trainer bag 3fa9c2 --n 5 --dry-run              # print the plan: 5 bootstrap configs
  trainer bag config.yaml --n 5 --seed 100        # data.bootstrap: 100..104, queued as a group
  ednaquery find kind=group group.method=bag --best val_acc
\b
Each run trains on a bootstrap sample of the training set (drawn with replacement, same
size, by its data.bootstrap seed) and records its out-of-bag indices in split.json.""")
@click.argument("target")
@click.argument("overrides", nargs=-1)
@click.option("--n", "n", type=int, default=5, show_default=True, help="Number of bootstrap runs.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="First bootstrap seed; the runs use SEED, SEED+1, ...")
@click.option("--dry-run", is_flag=True, help="Print the plan only; index, write and queue nothing.")
@click.option("--device", default=None, help="Device the workers should use for these runs.")
@_runs_root_option
@_store_option
def bag(target: str, overrides: tuple[str, ...], n: int, seed: int, dry_run: bool, device: str | None,
        runs_root: Path | None, store_uri: str | None) -> None:
    """Bagging: queue N runs of TARGET, each on its own bootstrap sample, plus a group."""
    _queue_group("bag", target, overrides, n, seed, dry_run, device, runs_root, store_uri)


@click.command("group", epilog="""\b
Examples:
  trainer group cv-20261204-2215               # a group id prefix: members and mean/std
  trainer group cv-20261204-2215 --refresh     # recompute it from its runs now
  trainer group cv-20261204-2215 --refresh --dry-run   # what the refresh would give; nothing written
  trainer group runs/cv-20261204-221530-3fa9 --json""")
@click.argument("group")
@click.option("--refresh", is_flag=True,
              help="Recompute the members' runs and the mean/std now (workers do it after each member).")
@click.option("--dry-run", is_flag=True, help="With --refresh: show what the refresh gives; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the group file's JSON.")
@_runs_root_option
@_store_option
def group_cmd(group: str, refresh: bool, dry_run: bool, as_json: bool, runs_root: Path | None,
              store_uri: str | None) -> None:
    """Show GROUP (a group id prefix, its folder or group.json): members, runs, mean and std per metric."""
    from ednaquery.groups import read_group
    from trainer.ops.groups import find_group_file, refresh_group
    from trainer.ops.jobs import open_jobs
    from trainer.ops.launch import runs_root_for

    app = command_app(store_uri)
    try:
        store = app.open_store(create=True)
        path = find_group_file(store, group, runs_root_for(runs_root, app.settings))
        if refresh:
            q = open_jobs(store)
            try:
                record = refresh_group(store, path, queue=q, dry_run=dry_run)
            finally:
                q.close()
        else:
            record = read_group(path)
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    _print_group(record, path)


def _print_group(record: dict, path: Path) -> None:
    size = record.get("folds") or record.get("n") or len(record.get("members") or [])
    click.echo(printable(f"group {record['group_id']}  {record.get('method')} x{size}  {record.get('status')}  "
                         f"base {str(record.get('config_id') or '')[:12]}  {path}"))
    for m in record.get("members") or []:
        label = " ".join(f"{k} {m[k]}" for k in ("fold", "bootstrap") if m.get(k) is not None)
        acc = (m.get("metrics") or {}).get("val_acc")
        shown = f"  val_acc {acc:.4f}" if isinstance(acc, (int, float)) else ""
        click.echo(printable(f"  {label:<12} {m.get('status') or 'queued':<11} run {m.get('run_id') or '-'}"
                             f"{shown}"))
    for name, agg in sorted((record.get("metrics") or {}).items()):
        click.echo(printable(f"  {name:>22}: mean {agg['mean']:.6g}  std {agg['std']:.6g}"))


COMMANDS = (cv, bag, group_cmd)


def register(group: click.Group) -> None:
    """Add ``cv``, ``bag`` and ``group`` to the ``trainer`` group."""
    for cmd in COMMANDS:
        group.add_command(cmd)
