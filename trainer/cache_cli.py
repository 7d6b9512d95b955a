"""``trainer cache ls|rm``: the prepared image caches (see docs/trainer-data.md)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ednaquery.clikit import echo_error
from ednaquery.terminal import printable

DIR_HELP = ("Cache folder (default: $EDNAQUERY_TRAINER_CACHE, else $XDG_CACHE_HOME/ednaquery/trainer, "
            "i.e. ~/.cache/ednaquery/trainer; a config's data.cache_dir overrides it for that run).")


def _dir(cache_dir: Path | None) -> Path:
    from trainer.engine.cache import default_cache_dir

    return cache_dir or default_cache_dir()


@click.group(epilog="""\b
Examples:
  trainer cache ls
  trainer cache rm 3fa9c2d1e0b4
  trainer cache rm --all""")
def cache() -> None:
    """List or remove the prepared image caches (image folders decoded once, memory-mapped)."""


@cache.command("ls", epilog="""\b
Examples:
  trainer cache ls
  trainer cache ls --json | jq '.[].bytes'
  trainer cache ls --dir /scratch/trainer-cache""")
@click.option("--dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(cache_dir: Path | None, as_json: bool) -> None:
    """List the caches, least recently used first (the first to be evicted)."""
    from trainer.engine.cache import list_caches

    folder = _dir(cache_dir)
    entries = list_caches(folder)
    if as_json:
        click.echo(json.dumps([{"key": e.key, "path": str(e.path), "images": e.images, "bytes": e.bytes,
                                "stored_size": e.short_side, "last_used": e.last_used, "folder": e.root}
                               for e in entries], indent=2))
        return
    if not entries:
        click.echo(printable(f"no prepared caches in {folder}"))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("key", "images", "size", "stored", "last used", "image folder", box=None)
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used)) if e.last_used else "-"
        table.add_row(e.key, str(e.images), f"{e.bytes / 2**20:.1f} MB", f"{e.short_side}px", used,
                      printable(e.root))
    Console().print(table)
    click.echo(printable(f"{len(entries)} cache(s), {sum(e.bytes for e in entries) / 2**30:.2f} GB in {folder}"))


@cache.command("rm", epilog="""\b
Examples:
  trainer cache rm 3fa9c2d1e0b4          # one cache (any unique prefix of its key)
  trainer cache rm --all                 # every cache not in use
  trainer cache rm --all --dir /scratch/trainer-cache""")
@click.argument("keys", nargs=-1)
@click.option("--all", "remove_all", is_flag=True, help="Remove every cache that no run is using.")
@click.option("--dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DIR_HELP)
def rm(keys: tuple[str, ...], remove_all: bool, cache_dir: Path | None) -> None:
    """Remove caches by KEY (or a unique prefix); a cache in use by a run is left alone."""
    from trainer.engine.cache import list_caches, remove_cache

    if bool(keys) == remove_all:
        raise click.UsageError("give one or more KEYs, or --all")
    folder = _dir(cache_dir)
    entries = list_caches(folder)
    if remove_all:
        chosen = [e.key for e in entries]
    else:
        chosen = []
        for k in keys:
            hits = [e.key for e in entries if e.key.startswith(k)]
            if len(hits) != 1:
                raise click.UsageError(f"{k!r} matches {len(hits)} caches in {folder}; `trainer cache ls` lists them")
            chosen.append(hits[0])
    failed = 0
    for key in chosen:
        if remove_cache(folder, key):
            click.echo(f"removed {key}")
        else:
            failed += 1
            echo_error(f"{key} is in use by a run (or being built); not removed")
    if failed:
        raise SystemExit(1)
