"""The ``ednaquery`` command line: a thin click layer over the library.

Commands: find, count, show, diff, keys, stats, errors, history, init, config, tag, note, plot; more come
from installed plug-ins through the ``ednaquery.commands`` entry point group (the indexer
adds ``index``, ``watch`` and ``daemon``), loaded only when asked for, so a broken plug-in
never breaks ``find``. Plug-in commands get the :class:`App` as ``ctx.obj`` (settings and
the store, opened on demand); use :data:`pass_app`.

Errors are one line on stderr (``error: ...``; a query syntax error shows the query with a
caret under the bad token) and never a traceback unless ``--debug``; exit status follows
the contract in :mod:`ednaquery.clikit` (0 found, 1 nothing found, 2 usage error, bad input
or store unreachable). This module imports only click and the light core at import time:
rich, the stores and pymongo load when a command needs them, and torch never.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from ednaquery.annotate_cli import note, tag
from ednaquery.clikit import (
    EXIT_DIFFERENT,
    EXIT_NOTHING,
    App,
    AppGroup,
    exit_like_grep,
    pass_app,
    store_option,
)
from ednaquery.errors import EdnaError
from ednaquery.plot_cli import plot
from ednaquery.query.suggest import KINDS
from ednaquery.terminal import printable

__all__ = ["PLUGIN_GROUP", "App", "main", "pass_app"]

PLUGIN_GROUP = "ednaquery.commands"
DEFAULT_QUERY_TIMEOUT = 60.0  # seconds a find/count may run from the command line (--timeout)

log = logging.getLogger("ednaquery")


# ---------------------------------------------------------------- the group


def _plugin_entry_points() -> dict[str, Any]:
    """Installed plug-in commands by name (entry points are read, not loaded)."""
    try:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}
    except Exception:  # broken metadata must not break the CLI
        log.debug("cannot read entry points", exc_info=True)
        return {}


def _broken_command(name: str, target: str, exc: BaseException) -> click.Command:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def run() -> None:
        raise EdnaError(f"the {name!r} command ({target}) failed to load: {reason}; "
                        "reinstall ednaquery with its extras (pip install -e '.[train,dev]')")

    return click.Command(name, callback=run, help=f"(unavailable: {reason})",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


class EdnaGroup(AppGroup):
    """The ``ednaquery`` group: an :class:`AppGroup` that also loads plug-in commands lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        builtin = super().list_commands(ctx)
        extra = [n for n in _plugin_entry_points() if n not in self.commands]
        return builtin + sorted(extra)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        ep = _plugin_entry_points().get(cmd_name)
        if ep is None:
            return None
        try:
            obj = ep.load()
        except Exception as exc:
            log.debug("plug-in %s failed to load", cmd_name, exc_info=True)
            return _broken_command(cmd_name, ep.value, exc)
        if not isinstance(obj, click.Command):
            return _broken_command(cmd_name, ep.value, TypeError(f"{ep.value} is not a click command"))
        return obj


@click.group(cls=EdnaGroup, epilog="""\b
Examples:
  ednaquery init && ednaquery index examples/
  ednaquery find 'lr<1e-3' model=vit --sort=-lr
  ednaquery --store mongodb://host/db count kind=run""")
@store_option()
@click.option("--config", "config", metavar="PATH", default=None,
              help="Config file to read (env EDNAQUERY_CONFIG; default: the nearest .ednaquery/config.toml, "
                   "else ~/.config/ednaquery/config.toml).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="ednaquery", prog_name="ednaquery", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, store: str | None, config: str | None, debug: bool) -> None:
    """Find ML experiment configs and runs by what they contain.

    The query language is short: `lr<1e-3 model=vit` finds every config or run whose learning
    rate (optimizer.lr, BASE_LR, learning_rate...) is below 1e-3 and whose model name has the
    token vit. Terms: key=value, key!=value, key<value (also lt/le/gt/ge spelled lr:lt:1e-3),
    key~regex, key (exists), !key (absent), and/or/not, parentheses; `ednaquery COMMAND --help`
    has examples.
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = App(store=store, config=config, debug=debug)


main.add_command(tag)
main.add_command(note)
main.add_command(plot)


# ---------------------------------------------------------------- shared helpers


#: the output formats of ``find`` (the same as :data:`ednaquery.output.FORMATS`; kept here so that
#: building the commands imports nothing heavy)
FORMATS = ("table", "json", "jsonl", "yaml", "csv", "ids")


def _format_option(default: str = "table", choices: Sequence[str] | None = None) -> Any:
    return click.option("--format", "fmt", type=click.Choice(list(choices or FORMATS)), default=default,
                        show_default=True, help="Output format (json/jsonl/yaml/csv/ids for scripts).")


def _console(err: bool = False) -> Any:
    from ednaquery.output import make_console

    return make_console(sys.stderr if err else sys.stdout)


def _out() -> Any:
    return sys.stdout


def _plain(*cells: str) -> list[Any]:
    """Table cells shown literally: no rich markup (values may contain '[...]'), control characters escaped."""
    from rich.text import Text

    return [Text(printable(c)) for c in cells]


def _relpath(path: str | None) -> str:
    from ednaquery.output import display_path

    return display_path(path) if path else ""


def _time_text(t: float | None) -> str:
    if t is None:
        return ""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


# ---------------------------------------------------------------- find / count

_FIND_EPILOG = """\b
Examples:
  ednaquery find 'lr<1e-3' model=vit            # quote < and > for the shell
  ednaquery find lr:lt:1e-3 model=vit           # ... or spell them out
  ednaquery find kind=run 'val_acc>0.9' --sort=-val_acc --limit 5
  ednaquery find kind=run --best val_acc --by model
  ednaquery find kind=group 'val_acc.mean>0.9' --best val_acc   # k-fold / bagging groups by mean
  ednaquery find img_size=224 --format json | jq '.[].paths'
  ednaquery find kind=run --columns model,optimizer.lr,val_acc --format csv
\b
Sorting: --sort KEY ascending; --sort=-KEY, --sort -KEY, --sort desc:KEY or
--sort KEY:desc descending (write --sort=-KEY when in doubt). Repeat --sort
for ties. --best METRIC keeps the highest METRIC (the lowest for loss-like
names such as val_loss; --min/--max force it) per value of --by KEY.
\b
Exit status: 0 something found, 1 nothing found, 2 error (like grep)."""


def _timeout_option(fn: Any) -> Any:
    return click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_QUERY_TIMEOUT, show_default=True,
                        metavar="SECONDS", help="Stop the query after this long (exit status 2); 0: no limit.")(fn)


def _hint_unknown_keys(ix: Any, node: Any, quiet: bool) -> None:
    """After nothing matched: one stderr line per query key the index does not have ("did you mean")."""
    if not quiet:
        for line in ix.unknown_keys(node):
            click.echo(printable(line), err=True)


#: find/count: a first word like -lr or -1 is part of the query, not an unknown option
_QUERY_WORDS = {"ignore_unknown_options": True}


@main.command(epilog=_FIND_EPILOG, context_settings=_QUERY_WORDS)
@click.argument("query", nargs=-1)
@_format_option()
@click.option("--sort", "sort", multiple=True, metavar="KEY", help="Sort by KEY; -KEY for descending (repeatable).")
@click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N", help="Show at most N results.")
@click.option("--kind", multiple=True, type=click.Choice(list(KINDS)),
              help="Only documents of this kind (repeatable; default config and run).")
@click.option("--all-versions", is_flag=True, help="Include old versions of edited files and deleted files.")
@click.option("--no-aliases", is_flag=True, help="Match keys exactly as typed (lr does not find learning_rate).")
@click.option("--best", metavar="METRIC", help="Keep the best document per --by group by METRIC.")
@click.option("--by", metavar="KEY", help="Group for --best by the matched value of KEY.")
@click.option("--min/--max", "minimize", default=None,
              help="For --best: lower (or higher) METRIC is better (default: lower for loss-like names).")
@click.option("--as-written", is_flag=True, help="In json/yaml output, give each config as its file writes it.")
@click.option("--quiet", "-q", is_flag=True, help="No hint on stderr when nothing matches (unknown keys).")
@_timeout_option
@click.option("--columns", "columns_arg", metavar="KEY,...", default=None,
              help="Show these keys (comma-separated, e.g. optimizer.lr,val_acc,tags) instead of those the "
                   "query names.")
@pass_app
@click.pass_context
def find(ctx: click.Context, app: App, query: tuple[str, ...], fmt: str, sort: tuple[str, ...],
         limit: int | None, kind: tuple[str, ...], all_versions: bool, no_aliases: bool, best: str | None,
         by: str | None, minimize: bool | None, as_written: bool, quiet: bool, timeout: float,
         columns_arg: str | None) -> None:
    """Find configs and runs matching QUERY (see `ednaquery --help` for the language)."""
    exit_like_grep(ctx)
    from ednaquery.output import chosen_columns, render

    ix = app.index()
    found = ix.find(list(query), sort=list(sort), limit=limit, kind=list(kind), best=best, by=by,
                    minimize=minimize, all_versions=all_versions, aliases=not no_aliases, timeout=timeout)
    docs, columns = found.documents, found.columns
    if columns_arg is not None:
        columns = chosen_columns(columns_arg, lambda t: ix.key(t, what="--columns", aliases=not no_aliases), columns)
    if docs or fmt != "table":
        render(docs, columns, fmt, out=_out(), console=_console() if fmt == "table" else None,
               as_written=as_written)
    if not docs:
        _hint_unknown_keys(ix, found.query, quiet)
        if fmt == "table" and not quiet:
            click.echo("no documents match", err=True)
        ctx.exit(EXIT_NOTHING)


@main.command(epilog="""\b
Examples:
  ednaquery count kind=run status=completed
  ednaquery count 'lr<1e-3' --kind config
\b
Exit status: 0 when the count is above 0, 1 when it is 0, 2 on error.""", context_settings=_QUERY_WORDS)
@click.argument("query", nargs=-1)
@click.option("--kind", multiple=True, type=click.Choice(list(KINDS)),
              help="Only documents of this kind (repeatable; default config and run).")
@click.option("--all-versions", is_flag=True, help="Include old versions and deleted files.")
@click.option("--no-aliases", is_flag=True, help="Match keys exactly as typed.")
@click.option("--quiet", "-q", is_flag=True, help="No hint on stderr when nothing matches (unknown keys).")
@_timeout_option
@pass_app
@click.pass_context
def count(ctx: click.Context, app: App, query: tuple[str, ...], kind: tuple[str, ...], all_versions: bool,
          no_aliases: bool, quiet: bool, timeout: float) -> None:
    """Print how many documents match QUERY."""
    exit_like_grep(ctx)
    ix = app.index()
    node = ix.parse(list(query), aliases=not no_aliases)
    n = ix.count(node, kind=list(kind), all_versions=all_versions, timeout=timeout)
    click.echo(str(n))
    if n == 0:
        _hint_unknown_keys(ix, node, quiet)
        ctx.exit(EXIT_NOTHING)


# ---------------------------------------------------------------- show / diff


def _config_yaml(doc: dict, as_written: bool) -> str:
    from ednaquery.documents import original_config
    from ednaquery.output import dumps_yaml, scalar_text

    lines = [f"# id: {doc['_id']}", f"# kind: {doc.get('kind')}"]
    for p in doc.get("paths") or []:
        lines.append(f"# path: {p}")
    for p in doc.get("past_paths") or []:
        lines.append(f"# was at: {p}")
    if not doc.get("current", True):
        lines.append("# state: " + ("deleted" if doc.get("deleted") else "old version"))
    if doc.get("kind") in ("run", "group"):
        lines.append(f"# status: {doc.get('status')}")
        if doc.get("config_id"):
            label = "base config" if doc.get("kind") == "group" else "config"
            lines.append(f"# {label}: {doc['config_id']}")
        for name, summary in (doc.get("metrics") or {}).items():
            parts = " ".join(f"{k}={scalar_text(v)}" for k, v in (summary or {}).items())
            lines.append(f"# metric {name}: {parts}")
    for m in doc.get("members") or []:  # a group's runs
        label = " ".join(f"{k}={m[k]}" for k in ("fold", "bootstrap") if m.get(k) is not None)
        lines.append(f"# member {label}: run {m.get('run_id') or '-'} {m.get('status') or 'queued'}".rstrip())
    if doc.get("derived_from"):
        lines.append(f"# derived from: {doc['derived_from']} with {' '.join(doc.get('overrides') or [])}".rstrip())
    if as_written and "as_written" not in doc:
        lines.append("# (the file's own text is the same as the effective config)")
    elif "as_written" in doc and not as_written:
        lines.append("# (effective config; --as-written shows the file's own text)")
    for w in doc.get("warnings") or []:
        lines.append(f"# warning: {w}")
    if doc.get("kind") == "error":
        lines.append(f"# error: {doc.get('error')}")
        return "\n".join(lines) + "\n"
    config = original_config(doc, as_written=as_written)
    return "\n".join(lines) + "\n" + dumps_yaml(config)


@main.command(epilog="""\b
Examples:
  ednaquery show 3fa9c2d1            # any unique prefix of 4+ characters
  ednaquery show 3fa9c2d1 --json | jq .config.optimizer
  ednaquery show 3fa9c2d1 --as-written""")
@click.argument("doc_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON (config, paths, metrics...).")
@click.option("--as-written", is_flag=True, help="The config as its file writes it (before inheritance).")
@pass_app
def show(app: App, doc_id: str, as_json: bool, as_written: bool) -> None:
    """Show the config (or run) with this id as YAML."""
    from ednaquery.output import dumps_json, to_record

    doc = app.index().get(doc_id).doc
    if as_json:
        click.echo(dumps_json(to_record(doc, as_written=as_written)))
        return
    text = _config_yaml(doc, as_written)
    console = _console()
    if console.is_terminal:
        from rich.syntax import Syntax

        console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default", word_wrap=True))
    else:
        _out().write(text)


@main.command(epilog="""\b
Examples:
  ednaquery diff 3fa9c2d1 77b0e4aa
  ednaquery diff 3fa9c2d1 77b0e4aa --json
\b
Exit status: 0 no differences, 1 differences, 2 error (like diff).""")
@click.argument("old_id", metavar="ID")
@click.argument("new_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print [{key, old, new}] as JSON.")
@click.option("--as-written", is_flag=True, help="Compare the configs as their files write them.")
@pass_app
def diff(app: App, old_id: str, new_id: str, as_json: bool, as_written: bool) -> None:
    """Show the keys whose values differ between two configs or runs (exit 1 when some do, like diff)."""
    from ednaquery.output import dumps_json
    from ednaquery.results import MISSING, diff_documents

    ix = app.index()
    a, b = ix.get(old_id).doc, ix.get(new_id).doc
    rows = diff_documents(a, b, as_written=as_written)
    if as_json:
        click.echo(dumps_json([{"key": k, **({"old": va} if va is not MISSING else {}),
                                **({"new": vb} if vb is not MISSING else {})} for k, va, vb in rows]))
    elif not rows:
        click.echo(f"no differences between {a['_id'][:12]} and {b['_id'][:12]}")
    else:
        _diff_table(a, b, rows)
    if rows:
        raise click.exceptions.Exit(EXIT_DIFFERENT)


def _diff_table(a: dict, b: dict, rows: list) -> None:
    """The differing keys as a table: key, old value, new value (absent ones dimmed)."""
    from rich.table import Table
    from rich.text import Text

    from ednaquery.output import dumps_json, id_prefixes, scalar_text
    from ednaquery.results import MISSING

    names = id_prefixes([a["_id"], b["_id"]])

    def cell(v: Any, style: str) -> Text:
        if v is MISSING:
            return Text("(absent)", style="dim")
        return Text(printable(scalar_text(v) if not isinstance(v, (dict, list)) else dumps_json(v, indent=None)),
                    style=style)

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("key", style="bold", overflow="fold")
    table.add_column(f"old {names[a['_id']]}", overflow="fold")
    table.add_column(f"new {names[b['_id']]}", overflow="fold")
    for key, va, vb in rows:
        table.add_row(Text(printable(key)), cell(va, "red"), cell(vb, "green"))
    _console().print(table)


# ---------------------------------------------------------------- keys / stats / errors / history


@main.command(epilog="""\b
Examples:
  ednaquery keys              # every key, most common first
  ednaquery keys lr           # keys the term `lr` matches (aliases included)
  ednaquery keys 'optimizer.*'""")
@click.argument("pattern", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="Show at most N keys.")
@_format_option(choices=("table", "json"))
@pass_app
def keys(app: App, pattern: str | None, limit: int | None, fmt: str) -> None:
    """List the keys seen in indexed documents, with counts, types and example values.

    PATTERN is a key as in a query (lr, optimizer.lr) or a glob over dotted paths.
    """
    from ednaquery.output import dumps_json, scalar_text

    stats = app.index().keys(pattern, limit=limit)
    if fmt == "json":
        click.echo(dumps_json([{"key": ".".join(s.path), "count": s.count, "types": s.types,
                                "examples": s.examples} for s in stats]))
        if not stats:
            raise click.exceptions.Exit(EXIT_NOTHING)
        return
    if not stats:
        click.echo("no keys" + (f" match {pattern!r}" if pattern else " (nothing indexed yet)"), err=True)
        raise click.exceptions.Exit(EXIT_NOTHING)
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("key", style="cyan", overflow="fold")
    table.add_column("count", justify="right")
    table.add_column("types")
    table.add_column("examples", overflow="fold")
    for s in stats:
        types = ", ".join(f"{t} {n}" if len(s.types) > 1 else t for t, n in s.types.items())
        examples = ", ".join(scalar_text(e) for e in s.examples)
        table.add_row(*_plain(".".join(s.path), str(s.count), types, examples))
    _console().print(table)


@main.command(epilog="""\b
Examples:
  ednaquery stats
  ednaquery stats --json""")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_app
def stats(app: App, as_json: bool) -> None:
    """Show what the store holds: documents by kind and state, keys, files, size."""
    from ednaquery.output import dumps_json

    figures = app.index().stats()
    if as_json:
        click.echo(dumps_json(figures))
        return
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in figures.items():
        if name == "documents" and isinstance(value, dict):
            for kind, states in sorted(value.items()):
                text = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
                table.add_row(f"{kind}s", text)
        elif name == "size_bytes" and isinstance(value, (int, float)):
            table.add_row("size", f"{value / 1e6:.1f} MB")
        else:
            table.add_row(name.replace("_", " "), str(value))
    _console().print(table)


@main.command(epilog="""\b
Examples:
  ednaquery errors
  ednaquery errors --no-warnings --format json""")
@click.option("--warnings/--no-warnings", default=True, show_default=True,
              help="Also list documents indexed with warnings (unresolved bases, unsafe YAML tags...).")
@_format_option(choices=("table", "json"))
@pass_app
def errors(app: App, warnings: bool, fmt: str) -> None:
    """List files that could not be indexed, and documents indexed with warnings."""
    from ednaquery.output import dumps_json

    items = app.index().problems(warnings=warnings)
    if fmt == "json":
        click.echo(dumps_json(items))
        if not items:
            raise click.exceptions.Exit(EXIT_NOTHING)
        return
    if not items:
        click.echo("no errors" + (" or warnings" if warnings else ""), err=True)
        raise click.exceptions.Exit(EXIT_NOTHING)
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("path", style="green", overflow="fold")
    table.add_column("", no_wrap=True)
    table.add_column("message", overflow="fold")
    for item in items:
        style = "red" if item["kind"] == "error" else "yellow"
        path, message = _plain(_relpath(item["path"]) or item["id"], item["message"])
        table.add_row(path, f"[{style}]{item['kind']}[/]", message)
    _console().print(table)


@main.command(epilog="""\b
Examples:
  ednaquery history examples/quickstart/resnet18_digits.yaml
  ednaquery history sweep.yaml --format json""")
@click.argument("path", type=click.Path())
@_format_option(choices=("table", "json", "ids"))
@pass_app
def history(app: App, path: str, fmt: str) -> None:
    """List the versions of a file the store has seen, newest first."""
    from ednaquery.errors import NotFound
    from ednaquery.output import dumps_json, id_prefixes, to_record
    from ednaquery.results import diff_documents

    full = os.path.abspath(path)
    docs = app.index().history(full).documents
    if not docs:
        raise NotFound(f"no versions of {path} are indexed; index its folder with `ednaquery index`")
    if fmt == "ids":
        click.echo("\n".join(d["_id"] for d in docs))
        return
    if fmt == "json":
        click.echo(dumps_json([to_record(d) for d in docs]))
        return
    from rich.table import Table

    names = id_prefixes(d["_id"] for d in docs)
    table = Table(box=None, header_style="bold", pad_edge=False, title=_plain(_relpath(full))[0],
                  title_justify="left")
    for col in ("id", "state", "indexed", "file mtime", "changes"):
        table.add_column(col)
    for i, doc in enumerate(docs):
        live = full in (doc.get("paths") or [])
        state = "current" if live else ("deleted" if doc.get("deleted") else "old")
        older = docs[i + 1] if i + 1 < len(docs) else None
        changes = ""
        if older is not None:
            rows = diff_documents(older, doc)
            changes = ", ".join(k for k, _, _ in rows[:4]) + (f" +{len(rows) - 4}" if len(rows) > 4 else "")
        table.add_row(*_plain(names[doc["_id"]], state, _time_text(doc.get("indexed_at")),
                              _time_text(doc.get("mtime")), changes))
    _console().print(table)


# ---------------------------------------------------------------- init / config

CONFIG_TEMPLATE = """\
# ednaquery project settings (TOML). Precedence: command-line flags > environment
# variables (EDNAQUERY_STORE, EDNAQUERY_ROOTS, ...) > this file > defaults.
# `ednaquery config` shows what is in force and where each value comes from.
# Relative paths here are relative to the folder that holds .ednaquery/.

# Where the index lives. Default: .ednaquery/index.db next to this file (embedded SQLite).
# A team shares a MongoDB instead:
# store = "mongodb://user:password@mongo.example.org:27017/ednaquery?authSource=admin"

# Folders the indexer watches (`ednaquery watch` / `ednaquery daemon start` with no folder).
# roots = ["experiments", "sweeps"]

# Extra key aliases: a query for any member also finds the others.
# Built in: [lr, learning_rate, lr0], [bs, batch_size], [wd, weight_decay],
#           [model, arch, architecture, backbone].
# aliases = [["lr", "base_lr"], ["epochs", "max_epochs"]]

# Indexer file selection (globs); unset = the indexer's built-in lists.
# include = ["*.yaml", "*.yml", "*.json", "*.toml"]
# exclude = [".git", "__pycache__", "*.pt"]

# poll = false             # poll instead of inotify (NFS)
# debounce = 0.3           # seconds of quiet before a changed file is indexed
# reconcile_every = 600    # seconds between full re-walks of the roots
# max_file_bytes = 5242880 # larger files become error records

# Trainer: where run folders go (default: <first root>/runs) and CPU threads.
# runs_root = "experiments/runs"
# cpu_threads = 1

# Seconds-scale timeout for reaching MongoDB from the CLI (milliseconds).
# store_timeout_ms = 3000
"""

_GITIGNORE = "# the index and the daemon's state are local; config.toml may be committed\nindex.db*\n*.log\n*.pid\n"


@main.command(epilog="""\b
Examples:
  cd ~/experiments && ednaquery init && ednaquery index .""")
@pass_app
def init(app: App) -> None:
    """Create .ednaquery/ here: an embedded index (index.db) and a commented config.toml.

    Commands run in this folder or below it then use this index, like git finds .git.
    Running it again keeps what is there.
    """
    from ednaquery.fsutil import write_atomic
    from ednaquery.settings import CONFIG_DIR_NAME, CONFIG_FILE_NAME
    from ednaquery.store.sqlite import SQLiteStore

    folder = os.path.join(os.getcwd(), CONFIG_DIR_NAME)
    existed = os.path.isdir(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise EdnaError(f"cannot create {folder}: {e.strerror or e}") from None
    made = []
    db_path = os.path.join(folder, "index.db")
    if not os.path.exists(db_path):
        made.append("index.db")
    SQLiteStore(db_path, create=True).close()
    for name, text in ((CONFIG_FILE_NAME, CONFIG_TEMPLATE), (".gitignore", _GITIGNORE)):
        target = os.path.join(folder, name)
        if not os.path.exists(target):
            write_atomic(target, text, mode=0o600)
            made.append(name)
    if existed and not made:
        click.echo(f"{folder} is already initialised; nothing changed")
    else:
        click.echo(f"initialised {folder} ({', '.join(made)})")
        click.echo("next: ednaquery index <folder>   then   ednaquery find <query>")
    s = app.settings
    if s.store and s.source("store") != "default":
        from ednaquery.masking import mask_uri

        click.echo(f"note: the store in force is {mask_uri(s.store)} (from {s.source('store')}), "
                   "not this folder's index.db", err=True)


@main.command("config", epilog="""\b
Examples:
  ednaquery config
  EDNAQUERY_STORE=mongodb://db/ednaquery ednaquery config --json""")
@click.option("--json", "as_json", is_flag=True, help="Print settings and sources as JSON.")
@pass_app
def config_cmd(app: App, as_json: bool) -> None:
    """Show the settings in force and where each one comes from (flag, env, config file, default)."""
    from ednaquery.output import dumps_json

    s = app.settings
    if as_json:
        click.echo(dumps_json({"config_file": str(s.config_path) if s.config_path else None,
                               "settings": s.as_dict(),
                               "sources": {name: s.source(name) for name, _, _ in s.display_items()}}))
        return
    from rich.table import Table

    console = _console()
    console.print(*_plain(f"config file: {s.config_path or '(none found)'}"), highlight=False)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("setting", style="cyan")
    table.add_column("value", overflow="fold")
    table.add_column("source", style="dim", overflow="fold")
    for name, value, source in s.display_items():
        table.add_row(*_plain(name, value, source))
    console.print(table)


# ---------------------------------------------------------------- ui


@main.command("ui", epilog="""\b
Examples:
  ednaquery ui                      # http://127.0.0.1:8765/
  ednaquery ui --port 0             # any free port (the URL is printed)
  ednaquery ui --host 0.0.0.0       # reachable from other machines: prints a warning""")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free one).")
@pass_app
def ui_cmd(app: App, host: str, port: int) -> None:
    """Open the comparison workbench in the browser: search, run pages, curves, compare view.

    Needs the 'ui' extra (pip install -e '.[ui]'). It reads the index through the same API as
    `ednaquery find`; it writes nothing but tags and notes, and serves only indexed run folders.
    """
    import ednaquery
    from ednaquery.ui.serve import serve

    index = ednaquery.connect(app.store_flag, config=app.config_flag)
    try:
        serve(index, host, port, store_uri=index.settings.store,
              say=lambda line: click.echo(app.redact(line), err=True))
    finally:
        index.close()


if __name__ == "__main__":  # pragma: no cover
    main()
