"""A click group for the ``trainer`` and ``python -m indexer`` commands: every error is one line.

``ednaquery`` itself has this in :class:`ednaquery.cli.EdnaGroup`; the other two commands had
click's default, a traceback of 80 lines for an exception nobody foresaw. Here an EdnaError
prints ``error: MESSAGE`` and exits with its code, any other exception prints one line naming
it (``--debug`` shows the traceback) and exits 1, and Ctrl-C prints ``interrupted`` and exits 130.
"""
from __future__ import annotations

import re
import traceback
from typing import Any

import click

from ednaquery.errors import EdnaError

__all__ = ["OneLineGroup", "debug_option"]

_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
DEBUG = "ednaquery.debug"


def _line(text: str) -> str:
    first = (text.splitlines() or [""])[0]
    return _URI_PASSWORD.sub(r"\1***@", first)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[DEBUG] = value
    return value


def debug_option(fn: Any) -> Any:
    """``--debug`` on a group: show the traceback of an unexpected error."""
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="Show the traceback of an unexpected error.")(fn)


class OneLineGroup(click.Group):
    """A click group whose errors are one line on stderr (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except EdnaError as exc:
            click.echo(f"error: {_line(str(exc)) or type(exc).__name__}", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - an error nobody foresaw: one line, the traceback on request
            if ctx.meta.get(DEBUG):
                traceback.print_exc()
            click.echo(f"error: an internal error: {type(exc).__name__}: {_line(str(exc))} "
                       "(run with --debug for details)", err=True)
            raise click.exceptions.Exit(1) from None
