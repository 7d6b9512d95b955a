"""``ednaquery tag`` and ``ednaquery note``: the user's tags and notes on runs and configs.

A thin click layer over :meth:`ednaquery.api.Index.tag` / :meth:`~ednaquery.api.Index.note`
(:mod:`ednaquery.annotations`: sidecar files beside the runs and configs, and the store updated at once). Imports only click and the light core.
"""
from __future__ import annotations

import click

from ednaquery.clikit import App, pass_app
from ednaquery.errors import UsageError
from ednaquery.terminal import printable

__all__ = ["note", "tag"]


def _short(doc: dict) -> str:
    from ednaquery.output import id_prefixes

    return id_prefixes([doc["_id"]])[doc["_id"]]


@click.command(context_settings={"ignore_unknown_options": True}, epilog="""\b
Examples:
  ednaquery tag 20261122-221530-3fa9 +baseline -old
  ednaquery tag 3fa9c2d1 +sweep2 +keep
  ednaquery tag 3fa9c2d1                  # print its tags
  ednaquery find tags=baseline
\b
Tags are kept in .ednaquery-annotations.json beside the run or config (the
filesystem is the source of truth: they survive a re-index from scratch).""")
@click.argument("doc_id", metavar="ID")
@click.argument("changes", nargs=-1, metavar="[+TAG|-TAG]...")
@pass_app
def tag(app: App, doc_id: str, changes: tuple[str, ...]) -> None:
    """Add (+TAG) or remove (-TAG) tags on a run or config; with no change, print its tags."""
    ix = app.index()
    rec = ix.get(doc_id)
    if not changes:
        click.echo(printable(" ".join(rec.tags)) if rec.tags else f"{_short(rec.doc)} has no tags")
        return
    shown = ix.tag(rec, *changes).tags
    click.echo(f"{_short(rec.doc)}: {printable(' '.join(shown)) if shown else '(no tags)'}")


@click.command(epilog="""\b
Examples:
  ednaquery note 20261122-221530-3fa9 "lr too high: diverged after epoch 3"
  ednaquery note 3fa9c2d1 --edit           # write it in $EDITOR
  ednaquery note 3fa9c2d1                  # print it
  ednaquery note 3fa9c2d1 --clear
  ednaquery find 'note~diverged'
\b
Notes are kept in .ednaquery-annotations.json beside the run or config.""")
@click.argument("doc_id", metavar="ID")
@click.argument("text", required=False)
@click.option("--edit", is_flag=True, help="Write the note in $EDITOR (starting from the current one).")
@click.option("--clear", is_flag=True, help="Remove the note.")
@pass_app
def note(app: App, doc_id: str, text: str | None, edit: bool, clear: bool) -> None:
    """Set the note of a run or config (TEXT, or --edit in $EDITOR); with neither, print it."""
    if sum((text is not None, edit, clear)) > 1:
        raise UsageError("give the note as TEXT, or --edit, or --clear (one of them)")
    ix = app.index()
    rec = ix.get(doc_id)
    doc = rec.doc
    current = rec.note or ""
    if text is None and not edit and not clear:
        if not current:
            click.echo(f"{_short(doc)} has no note", err=True)
            raise click.exceptions.Exit(1)
        click.echo("\n".join(printable(line) for line in current.split("\n")))  # its own line breaks stay
        return
    if edit:
        edited = click.edit(current, extension=".txt", require_save=False)
        text = current if edited is None else edited.rstrip("\n")
    new = ix.note(rec, "" if clear else text)
    click.echo(f"{_short(doc)}: " + ("note saved" if new.note else "note removed"))
