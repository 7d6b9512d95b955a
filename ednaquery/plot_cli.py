"""``ednaquery plot METRIC QUERY...``: overlay the curves of the matching runs in one PNG.

A thin click layer over :mod:`ednaquery.plotting`; imports only click and the light core
(matplotlib loads when a plot is drawn).
"""
from __future__ import annotations

import click

from ednaquery.clikit import App, pass_app

__all__ = ["plot"]


@click.command(epilog="""\b
Examples:
  ednaquery plot val_acc model=resnet18 'lr<1e-3' -o resnet_lr.png
  ednaquery plot val_loss tags=baseline --limit 5
\b
One line per run, against epoch (or step); the legend shows the config
values that vary between the runs. Needs matplotlib (the 'train' extra).""")
@click.argument("metric")
@click.argument("query", nargs=-1)
@click.option("-o", "--output", "output", metavar="PNG", default=None,
              help="Where to write the picture (default: METRIC.png here).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Plot at most N runs (newest first).")
@click.option("--no-aliases", is_flag=True, help="Match keys exactly as typed.")
@pass_app
def plot(app: App, metric: str, query: tuple[str, ...], output: str | None, limit: int, no_aliases: bool) -> None:
    """Overlay METRIC's curves of the runs matching QUERY in one PNG."""
    from ednaquery.keys import KeySpec
    from ednaquery.plotting import plot_overlay, require_matplotlib, runs_points
    from ednaquery.query import compile_query
    from ednaquery.store.base import FindOptions, SortKey

    require_matplotlib()
    node = compile_query(list(query), app.settings.alias_groups(), use_aliases=not no_aliases)
    store = app.open_store()
    docs = store.find(node, FindOptions(kinds=("run",), limit=limit, sort=[SortKey(KeySpec(("id",)), descending=True)]))
    if not docs:
        click.echo("no runs match", err=True)
        raise click.exceptions.Exit(1)
    out = output or f"{metric.replace('/', '_')}.png"
    n = plot_overlay(docs, metric, out, points=runs_points(docs, store))
    click.echo(f"{out} ({n} curve{'s' if n != 1 else ''} of {len(docs)} run{'s' if len(docs) != 1 else ''})")
