"""``ednaquery index PATH...``: the one-shot scan with a progress bar (plugged into the CLI)."""
from __future__ import annotations

import sys
import time

import click

from ednaquery.clikit import AppCommand, command_app
from ednaquery.errors import EdnaError
from ednaquery.terminal import printable


@click.command("index", cls=AppCommand, epilog="Example: ednaquery index ~/experiments configs/")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--force", is_flag=True, help="Convert every file again, even unchanged ones.")
@click.option("--workers", type=int, default=None, help="Processes converting files, this one included (default: one per CPU, up to 4).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, only the summary line.")
def index(paths: tuple[str, ...], force: bool, workers: int | None, quiet: bool) -> None:
    """Scan files and folders once and index every config and run in them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ednaquery.store import open_store
    from indexer.scan import scan

    settings = command_app().settings
    max_bytes = settings.max_file_bytes
    t0 = time.perf_counter()
    try:
        with open_store(settings.store, timeout_ms=settings.store_timeout_ms) as store:
            if quiet or not sys.stderr.isatty():
                report = scan(store, list(paths), force=force, workers=workers, max_bytes=max_bytes)
            else:
                cols = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
                with Progress(*cols, transient=True) as bar:
                    task = bar.add_task("index", total=None)
                    report = scan(store, list(paths), force=force, workers=workers, max_bytes=max_bytes,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    except FileNotFoundError as e:
        raise click.UsageError(str(e)) from None
    except EdnaError:
        raise
    secs = time.perf_counter() - t0
    rate = report.converted / secs if secs > 0 else 0.0
    click.echo(f"indexed {report.converted} file(s) ({report.unchanged} unchanged, {report.errors} error record(s), "
               f"{report.removed} gone) in {secs:.1f}s, {rate:,.0f} files/s", err=True)
    for folder, why in report.unreadable.items():
        click.echo(printable(f"warning: cannot read {folder}: {why}"), err=True)
    if report.errors or report.unreadable:
        click.echo("see `ednaquery errors` for the files that could not be indexed", err=True)
