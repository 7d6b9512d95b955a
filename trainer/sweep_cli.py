"""``trainer sweep``: grid, random and bayes sweeps, ``--around`` a known run, ``status`` and ``--plot``.

A thin click layer over :mod:`trainer.ops.sweep` (grids), :mod:`trainer.ops.search` (searching
sweeps), :mod:`trainer.ops.around` and :mod:`trainer.ops.sweep_report`; registered on the
``trainer`` group by :mod:`trainer.cli`.
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import click

from ednaquery.clikit import EXIT_NOTHING
from ednaquery.errors import UsageError
from ednaquery.terminal import printable
from trainer.store_cli import _abort_quietly, _check_heartbeat, _Ctx, _sayer, _store_option

__all__ = ["sweep"]

EPILOG = """\b
Examples:
  trainer sweep grid.yaml --dry-run                  # a grid: expand, validate, print
  trainer sweep grid.yaml && trainer worker --until-empty
  trainer sweep search.yaml                          # random/bayes: ask, queue and run trials here
  trainer sweep search.yaml --no-work --parallel 4   # keep 4 trials queued for `trainer worker`s elsewhere
  trainer sweep --around 'model=resnet18 dataset=digits' --keys lr,img_size --factor 2 --n 8
  trainer sweep --around 20261122-221530 --keys lr --dry-run
  trainer sweep status sw-3fa9c2                     # best so far, trials by state, best-so-far curve
  trainer sweep sw-3fa9c2 --plot -o plots/           # optimisation history + param importances (PNG)
\b
A search file (docs/trainer-sweeps.md has them all):
  base: base.yaml                     # config id prefix, config file, or an inline mapping
  method: bayes                       # grid | random | bayes
  metric: val_acc
  goal: max
  budget: {trials: 20}                # and/or {minutes: 30}
  early_stop: asha                    # none | median | asha | hyperband
  axes:
    optimizer.lr: loguniform(1e-5, 1e-2)
    data.img_size: int(16, 64, 16)
    model.name: [resnet18, convnext_atto]
\b
Trials are runs labelled sweep=<id> trial=N: `ednaquery find kind=run sweep=<id> --sort=-val_acc`."""


@click.command(epilog=EPILOG)
@click.argument("args", nargs=-1, metavar="FILE | status ID | ID --plot")
@click.option("--dry-run", is_flag=True, help="Print the plan only; index, queue and run nothing.")
@click.option("--around", "around", metavar="QUERY_OR_RUN", default=None,
              help="Perturb the best run this query finds (or this run id) on --keys; queue it as one sweep.")
@click.option("--keys", default=None, metavar="KEY,...",
              help="--around: the keys to vary (default lr; shorthands as for `trainer launch`, e.g. lr,img_size).")
@click.option("--factor", type=float, default=2.0, show_default=True,
              help="--around: numbers vary between value/FACTOR and value*FACTOR (log-scale).")
@click.option("--n", "n_trials", type=click.IntRange(min=1), default=8, show_default=True,
              help="--around: how many trials.")
@click.option("--metric", default="val_acc", show_default=True, help="--around: the metric that picks the best run.")
@click.option("--early-stop", default="none", show_default=True,
              type=click.Choice(["none", "median", "asha", "hyperband"]), help="--around: prune trials early.")
@click.option("--plot", is_flag=True, help="With a sweep ID: write its optimisation history and param importances.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--plot: the folder for the PNGs (default: here).")
@click.option("--json", "as_json", is_flag=True, help="status: print JSON.")
@click.option("--parallel", type=click.IntRange(min=1), default=None,
              help="Trials queued or running at once (default 1; --around: all).")
@click.option("--no-work", is_flag=True, help="Do not run trials here: `trainer worker`s elsewhere do.")
@click.option("--no-wait", is_flag=True, help="Queue what --parallel and the budget allow, then exit.")
@click.option("--device", default=None, help="Device the workers should use for these jobs.")
@click.option("--runs-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for run folders of the trials run here.")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=2.0, show_default=True,
              help="Seconds between looks at trials run elsewhere.")
@click.option("--heartbeat", type=click.FloatRange(min=0.01), default=30.0, show_default=True,
              help="Seconds between heartbeats while a trial runs here.")
@click.option("--stale-after", type=click.FloatRange(min=0.1), default=300.0, show_default=True,
              help="Re-queue a running trial whose worker has not heart-beaten for this long (a killed sweep).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display for the runs.")
@_store_option
def sweep(args: tuple[str, ...], dry_run: bool, around: str | None, keys: str | None, factor: float, n_trials: int,
          metric: str, early_stop: str, plot: bool, output: Path | None, as_json: bool, parallel: int | None,
          no_work: bool, no_wait: bool, device: str | None, runs_root: Path | None, poll_interval: float,
          heartbeat: float, stale_after: float, quiet: bool, store_uri: str | None) -> None:
    """Sweep a base config: a GRID of values, a random or bayes SEARCH over distributions, or
    --around a known run; `status ID` and `ID --plot` report on a sweep."""
    _check_heartbeat(heartbeat, stale_after)
    if around is not None:
        if args:
            raise UsageError("--around takes no sweep file: give the query or run id to --around alone")
    elif not args:
        raise UsageError("give a sweep file, `status ID`, `ID --plot`, or --around QUERY_OR_RUN")
    app = _Ctx(store_uri)
    try:
        if around is None and args[0] == "status":
            if len(args) != 2:
                raise UsageError("usage: trainer sweep status ID")
            _status(app.store, args[1], as_json)
            return
        if plot:
            if len(args) != 1 or around is not None:
                raise UsageError("usage: trainer sweep ID --plot [-o FOLDER]")
            _plot(app.store, args[0], output or Path("."))
            return
        if len(args) > 1:
            raise UsageError(f"one sweep file at a time (got {len(args)} arguments)")
        opts = {"device": device} if device else None
        if around is not None:
            from trainer.ops.around import around_spec
            from trainer.ops.jobs import open_jobs

            q = open_jobs(app.store)
            try:
                spec, centre = around_spec(app.store, around, keys=keys, factor=factor, n=n_trials, metric=metric,
                                           early_stop=early_stop, queue=q)
            finally:
                q.close()
            _echo(f"around run {centre['_id']} (config {spec.base.config_id[:12]})", err=True)
            _search(app, spec, dry_run=dry_run, parallel=parallel or len(spec.points or []), no_work=no_work,
                    no_wait=no_wait, runs_root=runs_root, poll_interval=poll_interval, heartbeat=heartbeat,
                    stale_after=stale_after, quiet=quiet, job_options=opts)
            return
        path = Path(args[0])
        if not path.is_file():
            raise UsageError(f"{path}: no such sweep file (or give `status ID` / `ID --plot`)")
        from trainer.ops.sweep import read_grid

        grid = read_grid(path)
        if grid.get("method", "grid") == "grid":
            _grid(app, path, dry_run=dry_run, job_options=opts)
            return
        from trainer.ops.search import load_search

        spec = load_search(path, grid, store=app.store, index_base=not dry_run)
        _search(app, spec, dry_run=dry_run, parallel=parallel or 1, no_work=no_work, no_wait=no_wait,
                runs_root=runs_root, poll_interval=poll_interval, heartbeat=heartbeat, stale_after=stale_after,
                quiet=quiet, job_options=opts)
    finally:
        app.close()


def _echo(text: str, *, err: bool = False) -> None:
    """Print a line for people: config values, metric names and paths come from files, so their control
    characters are shown as escapes (:func:`ednaquery.terminal.printable`)."""
    click.echo(printable(text), err=err)


def _grid(app: Any, grid: Path, *, dry_run: bool, job_options: dict | None) -> None:
    """A grid file: expand, index and queue every combination (the worker runs them)."""
    from trainer.ops.jobs import open_jobs
    from trainer.ops.launch import override_strings
    from trainer.ops.sweep import load_plan, submit

    plan = load_plan(grid, store=app.store, index_base=not dry_run)
    job_ids: list[str] = []
    if not dry_run:
        q = open_jobs(app.store)
        try:
            job_ids = [j.id for j in submit(plan, store=app.store, queue=q, options=job_options)]
        finally:
            q.close()
    for i, item in enumerate(plan.items):
        tail = f"  {job_ids[i]}" if job_ids else ""
        _echo(f"{item.config.config_id[:12]}  {' '.join(override_strings(item.overrides))}{tail}")
    dup = f" ({plan.duplicates} duplicate combination(s) skipped)" if plan.duplicates else ""
    verb = "would queue" if dry_run else "queued"
    click.echo(f"{verb} {len(plan.items)} config(s) from base {plan.base.config_id[:12]}{dup}", err=True)


def _describe(spec: Any) -> str:
    budget = " and ".join(x for x in (f"{spec.trials} trials" if spec.trials else "",
                                      f"{spec.minutes:g} minutes" if spec.minutes else "") if x)
    return (f"sweep {spec.sweep_id}: {spec.method}, {spec.metric} {spec.goal}, budget {budget}, "
            f"early stop {spec.early_stop.get('name', 'none')}, base {spec.base.config_id[:12]}")


def _search(app: Any, spec: Any, *, dry_run: bool, parallel: int, no_work: bool, no_wait: bool,
            runs_root: Path | None, poll_interval: float, heartbeat: float, stale_after: float, quiet: bool,
            job_options: dict | None) -> None:
    """A random/bayes/around sweep: print the plan, or drive it (ask, queue, run) to the end."""
    from trainer.ops.jobs import open_jobs
    from trainer.ops.launch import override_strings
    from trainer.ops.search import drive, load_trials, next_params, summary
    from trainer.ops.sweep_report import describe_space, status_lines

    _echo(_describe(spec), err=True)
    for line in describe_space(spec.space):
        _echo(f"  {line}", err=True)
    q = open_jobs(app.store)
    try:
        trials = load_trials(app.store, q, spec.sweep_id, spec.metric, spec.goal)
        if dry_run:
            if trials:
                click.echo(f"{len(trials)} trial(s) already in the store: the sweep would resume", err=True)
            if spec.points is not None:
                shown = spec.points[len(trials):]
            else:
                n0 = len(trials)
                shown = [next_params(spec, trials)[1]] if (spec.trials or 1) > n0 else []
            for i, p in enumerate(shown):
                _echo(f"trial {len(trials) + i}: {' '.join(override_strings(p))}")
            if spec.points is None and shown:
                click.echo("(later trials are asked as results come in)", err=True)
            return
        say = _sayer(quiet)
        run_job = None
        worker_options = None
        if not no_work:
            from trainer.ops.worker import WorkerOptions, launch_runner

            root = app.runs_root(runs_root)
            run_job = launch_runner(app.store, runs_root=root, quiet=quiet, announce=say)
            worker_options = WorkerOptions(heartbeat=heartbeat, stale_after=stale_after, poll_interval=poll_interval)
        stop = threading.Event()
        from trainer.ops.worker import stop_on_signals

        with stop_on_signals(stop), _abort_quietly():
            trials = drive(spec, store=app.store, queue=q, parallel=parallel, run_job=run_job,
                           worker_options=worker_options, stop=stop, say=say, poll_interval=poll_interval,
                           job_options=job_options, wait=not no_wait)
        for line in status_lines(spec.sweep_id, trials, summary(trials, spec.goal), spec.metric):
            _echo(line)
        if stop.is_set():
            click.echo(f"stopped; `trainer sweep` with the same file resumes sweep {spec.sweep_id}", err=True)
            sys.exit(130)
    finally:
        q.close()


def _load_sweep(store: Any, sweep_id: str) -> tuple[dict, list]:
    """The sweep ``sweep_id`` (a prefix will do) as the queue records it, and its trials."""
    from trainer.ops.jobs import open_jobs
    from trainer.ops.search import find_sweep, load_trials

    q = open_jobs(store)
    try:
        block = find_sweep(q, sweep_id)
        return block, load_trials(store, q, block["id"], block["metric"], block["goal"])
    finally:
        q.close()


def _status(store: Any, sweep_id: str, as_json: bool) -> None:
    from trainer.ops.search import summary
    from trainer.ops.sweep_report import status_lines, trial_record

    block, trials = _load_sweep(store, sweep_id)
    s = summary(trials, block["goal"])
    if as_json:
        best = s["best"]
        click.echo(json.dumps({"id": block["id"], "method": block.get("method"), "metric": block["metric"],
                               "goal": block["goal"], "counts": s["counts"],
                               "best": trial_record(best) if best else None, "best_so_far": s["curve"],
                               "trials": [trial_record(t) for t in trials]}, indent=2, default=str))
        return
    _echo(f"sweep {block['id']}: {block.get('method')}, {block['metric']} {block['goal']}, "
          f"early stop {(block.get('early_stop') or {}).get('name', 'none')}")
    for line in status_lines(block["id"], trials, s, block["metric"], detail=True):
        _echo(line)
    if not trials:
        sys.exit(EXIT_NOTHING)


def _plot(store: Any, sweep_id: str, folder: Path) -> None:
    from trainer.ops.sweep_report import plot_sweep

    block, trials = _load_sweep(store, sweep_id)
    for path, note in plot_sweep(block, trials, folder):
        _echo(f"{path}" + (f"  ({note})" if note else ""))
