"""The store-facing ``trainer`` commands: launch, queue, worker, jobs, cancel, ls, status, resume, plot.

A thin click layer over :mod:`trainer.ops.launch`, :mod:`trainer.ops.jobs` and :mod:`trainer.ops.worker`
(``trainer sweep`` is in :mod:`trainer.sweep_cli`). :func:`register` attaches the commands to the engine's
``trainer`` group (which has a ``--store`` of its own); every command also takes ``--store`` itself.
The store comes from ``--store``, else ``EDNAQUERY_STORE``, else the config file, else the
embedded default (see ``ednaquery config``). Torch is imported only by commands that train.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from ednaquery.clikit import EXIT_ERROR, EXIT_NOTHING, command_app, echo_error, store_option
from ednaquery.errors import UsageError
from ednaquery.terminal import printable
from trainer.ops.query import find_runs

# ------------------------------------------------------------------ plumbing


def _err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _out_console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _cells(*texts: str) -> list[Any]:
    """Table cells shown literally: no rich markup, control characters escaped."""
    from rich.text import Text

    return [Text(printable(t)) for t in texts]


_store_option = store_option("store_uri")


class _Ctx:
    """The command's :class:`~ednaquery.clikit.App` (settings, store, masked errors) plus the runs folder."""

    def __init__(self, store_uri: str | None) -> None:
        self.app = command_app(store_uri)
        self.settings = self.app.settings

    @property
    def store(self) -> Any:
        return self.app.open_store(create=True)

    def runs_root(self, flag: Path | None) -> Path:
        from trainer.ops.launch import runs_root_for

        return runs_root_for(flag, self.settings)

    def close(self) -> None:
        self.app.close()


def _checked_device(gpus: int | None, device: str | None) -> str | None:
    """Validate ``--gpus``/``--device`` (one-line errors) and return the device to use (``--gpus 0``: CPU)."""
    from trainer.ops.launch import check_device, check_gpus

    check_gpus(gpus)
    check_device(device)
    return "cpu" if gpus == 0 and device is None else device


def _sayer(quiet: bool) -> Callable[[str], None]:
    """Progress lines on stderr, or nothing with ``--quiet``."""
    if quiet:
        return lambda m: None
    err = _err_console()
    return lambda m: err.print(printable(m), markup=False)


def _check_heartbeat(heartbeat: float, stale_after: float) -> None:
    """Refuse a heartbeat no shorter than --stale-after: a live worker's job would be taken from it."""
    if heartbeat >= stale_after:
        raise UsageError(f"--heartbeat ({heartbeat:g}s) must be shorter than --stale-after ({stale_after:g}s)")


@contextlib.contextmanager
def _abort_quietly() -> Iterator[None]:
    """A second Ctrl-C outside a run: exit 130 without a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("aborted", err=True)
        sys.exit(130)


def _split_targets(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``ID... key=value...`` -> (targets, overrides)."""
    targets = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    return targets, overrides


def _fmt_time(t: float | None) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(t)) if t else ""


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _metric(doc: dict, name: str) -> str:
    m = (doc.get("metrics") or {}).get(name) or {}
    if "last" not in m:
        return ""
    best = m.get("best")
    return f"{m['last']:.4f}" + (f" (best {best:.4f})" if best is not None and best != m["last"] else "")


def _model(doc: dict) -> str:
    from ednaquery.documents import original_config

    cfg = original_config(doc)
    model = cfg.get("model") if isinstance(cfg, dict) else None
    return str(model.get("name", "")) if isinstance(model, dict) else str(model or "")


def _duration_s(doc: dict) -> float | None:
    """Training time in seconds (a resumed run's gap is not in it); a running run's time so far."""
    started, ended = doc.get("started_at"), doc.get("ended_at")
    total = (doc.get("info") or {}).get("total_time_s")
    if doc.get("status") == "running" and started:
        return time.time() - started
    if isinstance(total, (int, float)):
        return float(total)
    return (ended - started) if started and ended else None


def _run_row(doc: dict) -> dict[str, Any]:
    """One run as text cells (tables, ``trainer status``)."""
    return {"id": doc["_id"], "status": doc.get("status"), "config": (doc.get("config_id") or "")[:12],
            "model": _model(doc), "val_acc": _metric(doc, "val_acc"), "started": _fmt_time(doc.get("started_at")),
            "duration": _fmt_duration(_duration_s(doc)), "path": (doc.get("paths") or [""])[0]}


def run_record(doc: dict, columns: Sequence[Any] = (), names: Sequence[str] | None = None) -> dict[str, Any]:
    """One run for scripts (``trainer ls --json``): numbers as numbers, ISO 8601 times, seconds.

    ``values`` holds the ``--columns`` values under unique names (see :func:`ednaquery.output.flat_values`),
    the same names in every row of one answer when ``names`` is given.
    """
    from ednaquery.output import flat_values, iso_time

    acc = (doc.get("metrics") or {}).get("val_acc") or {}
    flat = flat_values(doc, columns) if columns else {}
    return {"id": doc["_id"], "status": doc.get("status"), "config_id": doc.get("config_id"),
            "model": _model(doc), "val_acc.last": acc.get("last"), "val_acc.best": acc.get("best"),
            "started": iso_time(doc.get("started_at")), "ended": iso_time(doc.get("ended_at")),
            "duration_s": _duration_s(doc), "path": (doc.get("paths") or [None])[0],
            "values": flat if names is None else {n: flat.get(n) for n in names}}


def _print_result(result: Any, say: Callable[[str], None]) -> None:
    acc = result.metrics.get("val_acc", {})
    shown = f" val_acc {acc['last']:.4f} (best {acc.get('best', acc['last']):.4f})" if acc else ""
    say(f"run {result.run_id} {result.status}{shown} -> {result.run_dir}")


def _exit_for(result: Any) -> None:
    if result.status == "failed":
        echo_error(f"run {result.run_id} failed: {result.error}")
        sys.exit(result.exit_code or 1)
    if result.status != "completed":
        sys.exit(result.exit_code or 1)


# ------------------------------------------------------------------ launch / resume


@click.command(epilog="""\b
Examples:
  trainer launch 3fa9c2                              # a config id prefix from `ednaquery find`
  trainer launch 3fa9c2 optimizer.lr=3e-4 epochs=5   # overrides: a derived config is indexed and run
  trainer launch path/to/config.yaml                 # a file: indexed, then run
  trainer launch 3fa9c2 --gpus 2                     # DDP: one process per GPU (torchrun)
  trainer launch 3fa9c2 --gpus 2 --device cpu        # DDP on 2 CPU processes (gloo), for testing""")
@click.argument("target")
@click.argument("overrides", nargs=-1)
@click.option("--runs-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for run folders (default: the runs_root setting, <first root>/runs, or ./runs).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N for this run (default: the config's).")
@click.option("--gpus", type=int, default=None,
              help="0: the CPU; N > 1: DistributedDataParallel with N processes, one per GPU "
                   "(with --device cpu: N CPU processes, gloo). data.batch_size is per process.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@_store_option
def launch(target: str, overrides: tuple[str, ...], runs_root: Path | None, device: str | None, gpus: int | None,
           quiet: bool, store_uri: str | None) -> None:
    """Train the config TARGET (id prefix or file) with optional key=value OVERRIDES; index the run."""
    from trainer.ops.launch import prepare, run_config

    device = _checked_device(gpus, device)
    app = _Ctx(store_uri)
    say = _sayer(quiet)
    try:
        resolved = prepare(app.store, target, list(overrides))
        if resolved.derived_from:
            say(f"config {resolved.config_id[:12]} (derived from {resolved.derived_from[:12]}: "
                f"{' '.join(overrides)})")
        else:
            say(f"config {resolved.config_id[:12]}")
        result = run_config(app.store, resolved, runs_root=app.runs_root(runs_root), quiet=quiet, device=device,
                            announce=say, on_start=lambda rid, d: say(f"run {rid} -> {d}"), gpus=gpus)
    finally:
        app.close()
    _print_result(result, _sayer(False))  # the result line is printed even with --quiet
    _exit_for(result)


@click.command(epilog="""\b
Examples:
  trainer resume 20261122-221530              # a run id prefix (`trainer ls` lists them)
  trainer resume runs/20261122-221530-3fa9 --gpus 2""")
@click.argument("run")
@click.option("--runs-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to look for the run folder when the store does not know it.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the run's config).")
@click.option("--gpus", type=int, default=None,
              help="N > 1: continue with N DDP processes (with --device cpu: N CPU processes).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@_store_option
def resume(run: str, runs_root: Path | None, device: str | None, gpus: int | None, quiet: bool,
           store_uri: str | None) -> None:
    """Continue RUN (a run id prefix or run folder) from its last checkpoint (with or without DDP)."""
    from trainer.ops.launch import resume as resume_run

    device = _checked_device(gpus, device)
    app = _Ctx(store_uri)
    say = _sayer(quiet)
    try:
        result = resume_run(run, store=app.store, runs_root=app.runs_root(runs_root), quiet=quiet, device=device,
                            announce=say, gpus=gpus)
    finally:
        app.close()
    _print_result(result, _sayer(False))  # the result line is printed even with --quiet
    _exit_for(result)


# ------------------------------------------------------------------ queue, worker, jobs


@click.command(epilog="""\b
Examples:
  trainer queue 3fa9c2 5be01d                 # two launches
  trainer queue 3fa9c2 optimizer.lr=3e-4      # a derived config, indexed now, queued
  trainer worker                              # on any machine that reaches the same store""")
@click.argument("targets", nargs=-1, required=True)
@click.option("--device", default=None, help="Device the worker should use for these jobs (default: its own).")
@_store_option
def queue(targets: tuple[str, ...], device: str | None, store_uri: str | None) -> None:
    """Queue launches of config TARGETS (ids or files), with optional key=value overrides for all."""
    from trainer.ops.jobs import open_jobs
    from trainer.ops.launch import prepare

    ids, overrides = _split_targets(targets)
    if not ids:
        raise UsageError("give at least one config id or config file to queue")
    app = _Ctx(store_uri)
    try:
        resolved = [prepare(app.store, t, overrides) for t in ids]  # all validated before any is queued
        jobs = open_jobs(app.store)
        try:
            for r in resolved:
                job = jobs.enqueue(r.config_id, options={"device": device} if device else None)
                click.echo(f"{job.id}  config {r.config_id[:12]}")
        finally:
            jobs.close()
    finally:
        app.close()
    click.echo(f"queued {len(resolved)} job(s); run `trainer worker` to start them", err=True)


@click.command(epilog="""\b
Examples:
  trainer worker                              # run queued launches until stopped
  trainer worker --until-empty --device cuda:1""")
@click.option("--once", is_flag=True, help="Run at most one job, then exit.")
@click.option("--until-empty", is_flag=True, help="Exit when the queue is empty instead of waiting.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Exit after this many jobs.")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=5.0, show_default=True,
              help="Seconds between looks at an empty queue.")
@click.option("--heartbeat", type=click.FloatRange(min=0.01), default=30.0, show_default=True,
              help="Seconds between heartbeats while a job runs.")
@click.option("--stale-after", type=click.FloatRange(min=0.1), default=300.0, show_default=True,
              help="Re-queue a running job whose worker has not heart-beaten for this long.")
@click.option("--runs-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for run folders (default: the runs_root setting, <first root>/runs, or ./runs).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N for every run of this worker.")
@click.option("--worker-id", default=None, help="Name of this worker in the queue (default: host:pid:xxxx).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display for the runs.")
@_store_option
def worker(once: bool, until_empty: bool, max_jobs: int | None, poll_interval: float, heartbeat: float,
           stale_after: float, runs_root: Path | None, device: str | None, worker_id: str | None, quiet: bool,
           store_uri: str | None) -> None:
    """Claim queued launches from the store and run them; SIGTERM re-queues the current one and exits."""
    from trainer.ops.jobs import open_jobs
    from trainer.ops.worker import (
        WorkerOptions,
        default_worker_id,
        launch_runner,
        run_worker,
        stop_on_signals,
    )

    _check_heartbeat(heartbeat, stale_after)
    app = _Ctx(store_uri)
    err = _err_console()

    def say(msg: str) -> None:
        err.print(printable(f"[{time.strftime('%H:%M:%S')}] {msg}"), markup=False)

    wid = worker_id or default_worker_id()
    stop = threading.Event()
    jobs = open_jobs(app.store)
    root = app.runs_root(runs_root)
    say(f"worker {wid} on {app.store.display_uri}, runs in {root}")
    try:
        with stop_on_signals(stop), _abort_quietly():
            report = run_worker(jobs, launch_runner(app.store, runs_root=root, quiet=quiet, device=device,
                                                    announce=say),
                                worker_id=wid, stop=stop, on_event=say,
                                options=WorkerOptions(poll_interval=poll_interval, heartbeat=heartbeat,
                                                      stale_after=stale_after, once=once, until_empty=until_empty,
                                                      max_jobs=max_jobs))
    finally:
        jobs.close()
        app.close()
    say(f"worker {wid} exits after {len(report.jobs)} job(s)" + (" (stopped)" if report.stopped else ""))
    if report.stopped:
        sys.exit(143)


@click.command(name="jobs", epilog="""\b
Examples:
  trainer jobs
  trainer jobs --status failed --json""")
@click.option("--status", type=click.Choice(["queued", "running", "completed", "failed", "interrupted",
                                             "cancelled"]), default=None, help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most N jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_store_option
def jobs_cmd(status: str | None, limit: int | None, as_json: bool, store_uri: str | None) -> None:
    """List the launch queue (oldest first)."""
    from trainer.ops.jobs import open_jobs

    app = _Ctx(store_uri)
    try:
        q = open_jobs(app.store)
        try:
            items = q.list(status=status, limit=limit)
        finally:
            q.close()
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps([j.as_dict() for j in items], indent=2))
        if not items:
            sys.exit(EXIT_NOTHING)
        return
    if not items:
        click.echo("no jobs", err=True)
        sys.exit(EXIT_NOTHING)
    from rich.table import Table

    table = Table(box=None)
    table.add_column("job", no_wrap=True, min_width=max(len(j.id) for j in items))
    table.add_column("status", no_wrap=True)
    table.add_column("config", no_wrap=True, min_width=12)
    for name in ("overrides", "worker", "run", "queued", "note"):
        table.add_column(name)
    for j in items:
        table.add_row(*_cells(j.id, j.status, j.config_id[:12], " ".join(j.overrides), j.worker or "",
                              j.run_id or "", _fmt_time(j.created_at), j.error or ""))
    _out_console().print(table)


@click.command(epilog="Example: trainer cancel job-20261122-221530-3fa9c2d1")
@click.argument("job_ids", nargs=-1, required=True)
@_store_option
def cancel(job_ids: tuple[str, ...], store_uri: str | None) -> None:
    """Cancel queued jobs (running ones are stopped by stopping their worker)."""
    from trainer.ops.jobs import open_jobs

    app = _Ctx(store_uri)
    failed = 0
    try:
        q = open_jobs(app.store)
        try:
            for jid in job_ids:
                job = q.get(jid)
                if q.cancel(job.id):
                    click.echo(f"cancelled {job.id}")
                else:
                    failed += 1
                    echo_error(f"job {job.id} is {job.status}, not queued; not cancelled")
        finally:
            q.close()
    finally:
        app.close()
    if failed:
        sys.exit(EXIT_ERROR)  # a job that is not queued: bad input


# ------------------------------------------------------------------ ls / status


@click.command(name="ls", epilog="""\b
Examples:
  trainer ls
  trainer ls model=resnet18 'val_acc>0.9' --status completed
  trainer ls --columns optimizer.lr,epochs,val_loss
  trainer ls --json | jq '.[] | {id, acc: .["val_acc.best"]}'
\b
Exit status: 0 runs listed, 1 none match, 2 error.""")
@click.argument("query", nargs=-1)
@click.option("--status", type=click.Choice(["queued", "running", "completed", "failed", "interrupted", "pruned"]),
              default=None, help="Only runs in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show at most N runs.")
@click.option("--columns", "columns_arg", metavar="KEY,...", default=None,
              help="Also show these keys (comma-separated, e.g. optimizer.lr,val_loss,tags).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON rows (numbers as numbers, ISO 8601 times, duration_s in seconds).")
@_store_option
def ls_cmd(query: tuple[str, ...], status: str | None, limit: int, columns_arg: str | None, as_json: bool,
           store_uri: str | None) -> None:
    """List runs from the store, newest first (QUERY narrows them, e.g. model=resnet18 val_acc>0.9)."""
    app = _Ctx(store_uri)
    try:
        columns: list[Any] = []
        if columns_arg is not None:
            from ednaquery.output import chosen_columns
            from ednaquery.query import parse_key
            from ednaquery.query.aliases import expand_key

            groups = app.settings.alias_groups()
            columns = chosen_columns(columns_arg, lambda t: expand_key(parse_key(t), groups))
        docs = find_runs(app.store, query, status=status, limit=limit)
    finally:
        app.close()
    if as_json:
        from ednaquery.output import dumps_json, flat_values, value_names

        names = value_names(flat_values(d, columns) for d in docs) if columns else []
        click.echo(dumps_json([run_record(d, columns, names) for d in docs]))
        if not docs:
            sys.exit(EXIT_NOTHING)
        return
    if not docs:
        click.echo("no runs", err=True)
        sys.exit(EXIT_NOTHING)
    _ls_table(docs, columns)


def _ls_table(docs: Sequence[dict], columns: Sequence[Any]) -> None:
    """The ``trainer ls`` table, one line per run, fitted to the terminal (never wrapped)."""
    from rich.table import Table
    from rich.text import Text

    from ednaquery.documents import document_pairs
    from ednaquery.output import cell_text, fit_width, make_console, matched_pairs
    from ednaquery.tablefit import FitColumn, fit_table

    names = ["run", "status", "config", "model", "val_acc", "started", "duration"] + [c.label for c in columns]
    header = [printable(h) for h in names]
    rows = []
    for d in docs:
        r = _run_row(d)
        pairs = document_pairs(d) if columns else []
        cells = [r["id"], r["status"] or "", r["config"], r["model"], r["val_acc"], r["started"],
                 r["duration"]] + [cell_text(c, matched_pairs(d, c, pairs)) for c in columns]
        rows.append([printable(c) for c in cells])  # escaped before fitting: widths count what is shown
    specs = [FitColumn(floor=max(len(r[0]) for r in rows), soft=None), FitColumn(floor=6, soft=None),
             FitColumn(floor=8), FitColumn(floor=8), FitColumn(floor=6, soft=None), FitColumn(floor=11, soft=None),
             FitColumn(floor=5, soft=None)] + [FitColumn(floor=6)] * len(columns)
    console = make_console()
    # too narrow for them all: config, started, duration, then status go before a chosen column
    header, rows, widths, _ = fit_table(header, rows, specs, fit_width(console), droppable=(2, 5, 6, 1))
    table = Table(box=None, pad_edge=False, show_edge=False)
    for name, w in zip(header, widths):
        table.add_column(name, no_wrap=True, overflow="ellipsis", min_width=w, max_width=w)
    for row in rows:
        table.add_row(*(Text(c) for c in row))
    console.print(table, crop=False)


@click.command(epilog="""\b
Examples:
  trainer status
  trainer status 20261122-221530 --json""")
@click.argument("run", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_store_option
def status(run: str | None, as_json: bool, store_uri: str | None) -> None:
    """Running runs and the queue; with RUN (an id prefix), that run in detail."""
    app = _Ctx(store_uri)
    try:
        if run:
            doc = app.store.get(run)
            if doc.get("kind") != "run":
                raise UsageError(f"{run!r} is a {doc.get('kind')}, not a run; `trainer ls` lists runs")
            _show_run(doc, as_json)
            return
        running = find_runs(app.store, status="running", limit=100)
        recent = find_runs(app.store, limit=5)
        from trainer.ops.jobs import open_jobs

        q = open_jobs(app.store)
        try:
            counts: dict[str, int] = {}
            for j in q.list():
                counts[j.status] = counts.get(j.status, 0) + 1
        finally:
            q.close()
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps({"running": [run_record(d) for d in running],
                               "recent": [run_record(d) for d in recent], "jobs": counts}, indent=2))
        return
    out = _out_console()
    out.print(f"running: {len(running)} run(s)", markup=False)
    for d in running:
        r = _run_row(d)
        out.print(printable(f"  {r['id']}  {r['model']}  epoch {((d.get('info') or {}).get('epochs_done') or 0)}"
                  f"  val_acc {r['val_acc'] or '-'}  {r['duration']}"), markup=False)
    out.print("jobs: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"), markup=False)
    if recent:
        out.print("latest runs:", markup=False)
        for d in recent:
            r = _run_row(d)
            out.print(printable(f"  {r['id']}  {r['status']:<11} {r['model']}  val_acc {r['val_acc'] or '-'}"), markup=False)


def _show_run(doc: dict, as_json: bool) -> None:
    info = doc.get("info") or {}
    if as_json:
        from ednaquery.documents import unescape_keys

        click.echo(json.dumps({"id": doc["_id"], "status": doc.get("status"), "config_id": doc.get("config_id"),
                               "paths": doc.get("paths"), "metrics": doc.get("metrics"),
                               "info": unescape_keys(info), "started_at": doc.get("started_at"),
                               "ended_at": doc.get("ended_at")}, indent=2, default=str))
        return
    r = _run_row(doc)
    out = _out_console()
    for label, value in (("run", r["id"]), ("status", r["status"]), ("config", doc.get("config_id") or ""),
                         ("model", r["model"]), ("folder", r["path"]), ("device", info.get("device_name", "")),
                         ("started", r["started"]), ("duration", r["duration"]),
                         ("epochs", info.get("epochs_done", info.get("epochs", ""))), ("error", info.get("error"))):
        if value not in (None, ""):
            out.print(printable(f"{label:>9}: {value}"), markup=False)
    for name, m in sorted((doc.get("metrics") or {}).items()):
        best = f"  best {m['best']:.6g}" if "best" in m else ""
        out.print(printable(f"{name:>22}: last {m.get('last', float('nan')):.6g}{best}"), markup=False)


@click.command("plot", epilog="""\b
Examples:
  trainer plot 20261122-221530-3fa9            # curves.png etc. in its folder
  trainer plot runs/20261122-221530-3fa9
  trainer plot 20261122-2215 20261122-2216 20261122-2217 --metric val_loss -o cmp.png
\b
With several runs: one picture overlaying METRIC (default val_acc) of them all, the
legend showing the config values that vary between them.""")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--metric", default="val_acc", show_default=True, help="With several runs: the metric to overlay.")
@click.option("-o", "--output", "output", metavar="PNG", default=None,
              help="With several runs: where to write the picture (default: compare-METRIC.png here).")
@_store_option
def plot(runs: tuple[str, ...], metric: str, output: str | None, store_uri: str | None) -> None:
    """Draw curves.png, confusion_matrix.png and predictions.png for RUN (a run id prefix or its folder);
    with several RUNs, overlay their METRIC curves in one picture."""
    from trainer.ops.launch import find_run_folder

    folders: list[Path] = []
    c = None
    try:
        for run in runs:
            if os.path.isdir(run):
                folders.append(Path(run))
                continue
            c = c or _Ctx(store_uri)
            folders.append(find_run_folder(c.store, run))
    finally:
        if c is not None:
            c.close()
    if len(folders) == 1:
        from trainer.engine.plots import plot_run

        files = plot_run(folders[0])
        if not files:
            raise click.UsageError(f"{folders[0]} has no metrics to plot (is it a run folder?)")
        for f in files:
            click.echo(str(f))
        return
    from ednaquery.plotting import plot_overlay
    from ednaquery.runfolder import run_document

    docs = [run_document(f) for f in folders]
    out = output or f"compare-{metric.replace('/', '_')}.png"
    n = plot_overlay(docs, metric, out)
    click.echo(f"{out} ({n} curves)")


# ------------------------------------------------------------------ registration

COMMANDS = (launch, resume, queue, worker, jobs_cmd, cancel, ls_cmd, status, plot)


def register(group: click.Group) -> None:
    """Add the store commands to the ``trainer`` group (whose ``--store`` applies to them all)."""
    for cmd in COMMANDS:
        if cmd.name not in group.commands or cmd is plot:  # plot by run id replaces the folder-only one
            group.add_command(cmd)
