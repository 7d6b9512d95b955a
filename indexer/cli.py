"""Command line for the indexer: ``watch`` (foreground) and ``daemon start|stop|status``.

A thin layer over :class:`indexer.daemon.Indexer` and :mod:`indexer.lifecycle`. The
``watch`` and ``daemon`` command objects are plugged into the ``ednaquery`` command through
the ``ednaquery.commands`` entry point group; ``python -m indexer`` runs them too, plus
the hidden ``run`` command that ``daemon start`` executes in the background.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ednaquery.clikit import AppCommand, AppGroup, store_option
from ednaquery.settings import Settings
from ednaquery.terminal import printable
from indexer import lifecycle
from indexer._settings import resolve

F = TypeVar("F", bound=Callable[..., Any])


def _options(fn: F) -> F:
    """The settings flags shared by watch, daemon start and run."""
    opts = [
        store_option(),
        click.option("--include", multiple=True, metavar="GLOB",
                     help="Also index files matching GLOB (repeatable; added to the defaults)."),
        click.option("--exclude", multiple=True, metavar="GLOB",
                     help="Also skip files/folders matching GLOB (repeatable; added to the defaults)."),
        click.option("--poll/--no-poll", default=None,
                     help="Poll instead of inotify (NFS and other network filesystems; env EDNAQUERY_POLL)."),
        click.option("--debounce", type=float, default=None, metavar="SECONDS",
                     help="Quiet period before a changed file is indexed (default 0.3; env EDNAQUERY_DEBOUNCE)."),
        click.option("--reconcile-every", default=None, metavar="DURATION",
                     help="Walk the roots this often to catch missed changes: 10m (default), 30s, 1h; "
                          "0 = only at start and on SIGHUP (env EDNAQUERY_RECONCILE_EVERY, seconds)."),
        click.option("-v", "--verbose", is_flag=True, help="Log every file."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _settings(roots: Sequence[str], store: str | None, include: Sequence[str], exclude: Sequence[str],
              poll: bool | None, debounce: float | None, reconcile_every: str | None,
              config: str | None = None) -> Settings:
    from indexer.daemon import canonical_root

    # under `ednaquery`, the group's --store/--config apply unless this command's own flags say otherwise
    app = click.get_current_context().find_root().obj
    store = store or getattr(app, "store_flag", None)
    config = config or getattr(app, "config_flag", None)
    s = resolve(store=store, roots=roots, include=include, exclude=exclude, poll=poll, debounce=debounce,
                reconcile_every=reconcile_every, config_path=config)
    if not s.roots:
        raise click.UsageError("give at least one folder to watch (or set EDNAQUERY_ROOTS)")
    s.roots = list(dict.fromkeys(canonical_root(r) for r in s.roots))
    return s


def _make_indexer(s: Settings) -> Any:
    from indexer.daemon import Indexer

    uri, timeout_ms = s.store, s.store_timeout_ms

    def store_factory() -> Any:
        from ednaquery.store import open_store

        return open_store(uri, timeout_ms=timeout_ms)

    return Indexer(store_factory, s.roots, include=s.include, exclude=s.exclude, poll=s.poll,
                   debounce=s.debounce, reconcile_every=s.reconcile_every or None, max_bytes=s.max_file_bytes)


class _PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped: paths in them come from anyone who can write a file."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def _setup_logging(verbose: bool, *, dated: bool) -> None:
    fmt = "%(asctime)s %(levelname)s %(message)s" if dated else "%(asctime)s %(message)s"
    datefmt = "%Y-%m-%d %H:%M:%S" if dated else "%H:%M:%S"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter(fmt, datefmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("indexer", "ednaquery"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def _serve(s: Settings, folder: Path) -> int:
    files = lifecycle.DaemonFiles(folder, s.roots)
    indexer = _make_indexer(s)
    with lifecycle.PidFile(files):
        return indexer.serve(status_path=files.status)


# -- watch ---------------------------------------------------------------------------------
@click.command("watch", cls=AppCommand, epilog="""\b
Examples:
  ednaquery watch ~/experiments ~/sweeps
  ednaquery watch --poll /mnt/nfs/experiments      # network filesystems: poll instead of inotify""")
@_options
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False, readable=False))
def watch(roots: tuple[str, ...], store: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
          poll: bool | None, debounce: float | None, reconcile_every: str | None, verbose: bool) -> None:
    """Watch ROOTS and keep the store up to date, in the foreground (Ctrl-C to stop).

    Changes made while nothing was watching are caught up first. Logs go to the terminal.
    """
    s = _settings(roots, store, include, exclude, poll, debounce, reconcile_every)
    _setup_logging(verbose or bool(getattr(click.get_current_context().find_root().obj, "debug", False)),
                   dated=False)
    click.echo(f"watching {', '.join(s.roots)} (Ctrl-C to stop)", err=True)
    raise click.exceptions.Exit(_serve(s, lifecycle.state_dir()))


# -- daemon ----------------------------------------------------------------------------------
@click.group("daemon", cls=AppGroup, epilog="""\b
Examples:
  ednaquery daemon start ~/experiments
  ednaquery daemon status
  ednaquery daemon stop""")
def daemon() -> None:
    """Run the indexer in the background: start, stop, status."""


@daemon.command("start", epilog="""\b
Examples:
  ednaquery daemon start ~/experiments ~/sweeps
  ednaquery --store mongodb://db.example.org/ednaquery daemon start ~/experiments""")
@_options
@click.option("--timeout", type=float, default=20.0, show_default=True, help="Seconds to wait for it to start.")
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False, readable=False))
def daemon_start(roots: tuple[str, ...], store: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
                 poll: bool | None, debounce: float | None, reconcile_every: str | None, verbose: bool,
                 timeout: float) -> None:
    """Start the indexer in the background on ROOTS; returns once it runs."""
    s = _settings(roots, store, include, exclude, poll, debounce, reconcile_every)
    args: list[str] = []
    # the store URI may hold a password: it goes to the child in its environment (readable by this user
    # only, /proc/PID/environ), never in its argv (/proc/PID/cmdline is readable by every local user)
    secret_env = {"EDNAQUERY_STORE": s.store} if s.store else {}
    if s.config_path:
        args += ["--config", str(s.config_path)]
    for g in include:
        args += ["--include", g]
    for g in exclude:
        args += ["--exclude", g]
    args += ["--poll" if s.poll else "--no-poll", "--debounce", repr(s.debounce),
             "--reconcile-every", f"{s.reconcile_every:g}s"]
    if verbose:
        args.append("--verbose")
    info = lifecycle.start_background(s.roots, args, timeout=timeout, env=secret_env)
    click.echo(f"indexer started (pid {info.pid}) on {', '.join(s.roots)}; log: {info.files.log}")


@daemon.command("stop", epilog="""\b
Examples:
  ednaquery daemon stop                    # the only running indexer
  ednaquery daemon stop ~/experiments      # the one watching this folder
  ednaquery daemon stop --all""")
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False, readable=False))
@click.option("--all", "all_", is_flag=True, help="Stop every running indexer.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for it to finish pending work and exit.")
def daemon_stop(roots: tuple[str, ...], all_: bool, timeout: float) -> None:
    """Stop the background indexer (on ROOTS, or the only one): it finishes pending work first."""
    from indexer.daemon import canonical_root

    chosen = lifecycle.select_daemons(None, [canonical_root(r) for r in roots], all_)
    if not chosen:
        click.echo("no indexer is running")
        return
    for info in chosen:
        lifecycle.stop_daemon(info, timeout)
        click.echo(f"stopped indexer pid {info.pid} ({', '.join(info.files.roots)})")


def _ago(t: float | None, now: float) -> str:
    if not t:
        return "never"
    return f"{_duration(now - t)} ago"


def _duration(sec: float) -> str:
    sec = max(0, int(sec))
    if sec < 60:
        return f"{sec}s"
    if sec < 3600:
        return f"{sec // 60}m {sec % 60:02d}s"
    if sec < 86400:
        return f"{sec // 3600}h {sec % 3600 // 60:02d}m"
    return f"{sec // 86400}d {sec % 86400 // 3600:02d}h"


def _render_status(info: lifecycle.DaemonInfo, now: float) -> list[tuple[str, str]]:
    st = info.status or {}
    rows = [("pid", str(info.pid))]
    roots = st.get("roots") or {r: "" for r in info.files.roots}
    for i, (root, what) in enumerate(roots.items()):
        rows.append(("roots" if i == 0 else "", f"{root}  [{what}]" if what else root))
    if not st:
        rows.append(("state", "starting (no status yet)"))
        return rows
    store_state = st.get("store_state", "?")
    rows += [
        ("state", st.get("state", "?")),
        ("store", f"{st.get('store') or '?'}  [{store_state}]"),
        ("uptime", _duration(now - st["started_at"]) if st.get("started_at") else "?"),
        ("queue depth", str(st.get("queue_depth", "?"))),
        ("files indexed", str(st.get("files_indexed", "?"))),
        ("errors", str(st.get("errors", "?"))),
        ("deleted", str(st.get("deleted", "?"))),
    ]
    ev = st.get("last_event")
    rows.append(("last event", f"{ev['what']} {ev['path']} ({_ago(ev['at'], now)})" if ev else "none yet"))
    rec = st.get("last_reconcile")
    if rec:
        walked = (f"{_ago(rec['at'], now)}: {rec['files']} files, {rec['changed']} to index, "
                  f"{rec['gone']} gone, {rec['duration_s']:.2f} s")
        rows.append(("last walk", walked))
    age = now - float(st.get("updated_at") or now)
    if age > 10:
        rows.append(("note", f"status is {_duration(age)} old: the indexer may be busy or stuck"))
    rows.append(("log", str(info.files.log)))
    return rows


@daemon.command("status", epilog="""\b
Examples:
  ednaquery daemon status
  ednaquery daemon status --json | jq '.[].queue_depth'""")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def daemon_status(as_json: bool) -> None:
    """Show each running indexer: pid, roots, uptime, queue depth, files indexed, errors, last event.

    Exit status 3 when no indexer is running.
    """
    from rich.console import Console
    from rich.text import Text

    running = [d for d in lifecycle.list_daemons() if d.running]
    if as_json:
        click.echo(json.dumps([{"pid": d.pid, "roots": d.files.roots, "log": str(d.files.log), **(d.status or {})}
                               for d in running], indent=1))
    elif not running:
        click.echo("no indexer is running")
    else:
        console = Console(highlight=False)
        now = time.time()
        for i, d in enumerate(running):
            if i:
                console.print()
            for k, v in _render_status(d, now):
                console.print(Text.assemble((f"{k:<14}", "bold"), printable(v)), soft_wrap=True)
    if not running:
        raise click.exceptions.Exit(3)


# -- the background process ------------------------------------------------------------------
@click.command("run", cls=AppCommand, hidden=True)
@_options
@click.option("--state-dir", type=click.Path(file_okay=False), default=None)
@click.option("--config", type=click.Path(dir_okay=False), default=None)
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False, readable=False))
def run(roots: tuple[str, ...], store: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
        poll: bool | None, debounce: float | None, reconcile_every: str | None, verbose: bool,
        state_dir: str | None, config: str | None) -> None:
    """Run the indexer in this process with file-style logs (what `daemon start` executes)."""
    s = _settings(roots, store, include, exclude, poll, debounce, reconcile_every, config)
    _setup_logging(verbose, dated=True)
    folder = Path(state_dir) if state_dir else lifecycle.state_dir()
    raise click.exceptions.Exit(_serve(s, folder))


@click.group("indexer", cls=AppGroup, epilog="""\b
Examples:
  python -m indexer watch ~/experiments
  python -m indexer daemon status""")
def main() -> None:
    """The ednaquery indexer (also available as `ednaquery watch` and `ednaquery daemon`)."""


main.add_command(watch)
main.add_command(daemon)
main.add_command(run)

__all__ = ["daemon", "main", "run", "watch"]
