"""What the three command groups share (``ednaquery``, the indexer's commands, ``trainer``).

:class:`App` (settings and the store, opened on first use), the ``--store`` option, the one
error printer (:func:`print_error`: one line on stderr, passwords always masked) and the
click classes that route every error through it (:class:`AppGroup`, :class:`AppCommand`).

Exit status, the same for every command (README "Exit status"): 0 success or something
found; 1 nothing found (``diff``: the documents differ, like diff(1); ``trainer``: the run
failed); 2 usage error, bad input, or the store cannot be reached. ``find`` and ``count``
exit 2 on every error, like grep (:func:`exit_like_grep`). Ctrl-C exits 130, a closed
pipe 141. This module imports only click and the light core: it is loaded by every command.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from ednaquery.errors import EdnaError, QuerySyntaxError, StoreUnavailable
from ednaquery.masking import redact
from ednaquery.terminal import printable

__all__ = [
    "EXIT_DIFFERENT", "EXIT_ERROR", "EXIT_NOTHING", "EXIT_OK", "App", "AppCommand", "AppGroup", "command_app",
    "echo_error", "exit_code", "exit_like_grep", "pass_app", "print_error", "store_option",
]

EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2
EXIT_DIFFERENT = 1  # diff: the documents differ, like diff(1)
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141
STORE_ENV = "EDNAQUERY_STORE"
_GREP_EXIT = "ednaquery.grep_exit"

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("ednaquery")


class App:
    """What every command needs: settings (loaded on first use) and the store (opened on first use)."""

    def __init__(self, store: str | None = None, config: str | None = None, debug: bool = False) -> None:
        self.store_flag = store
        self.config_flag = config
        self.debug = debug
        self._settings: Any = None
        self._store: Any = None

    @property
    def settings(self) -> Any:
        """The :class:`ednaquery.settings.Settings` in force (flags > env > config file > defaults)."""
        if self._settings is None:
            self._settings = self.load_settings()
        return self._settings

    def load_settings(self, **flags: Any) -> Any:
        """Settings with extra command flags on top (plug-ins pass their own, e.g. ``roots=...``)."""
        from ednaquery.settings import load_settings

        return load_settings(self.config_flag, store=self.store_flag, **flags)

    def open_store(self, *, create: bool = False) -> Any:
        """The store the settings name (short server-selection timeout for MongoDB)."""
        if self._store is None:
            from ednaquery.store import open_store

            s = self.settings
            self._store = open_store(s.store, timeout_ms=s.store_timeout_ms, create=create)
        return self._store

    def index(self) -> Any:
        """The library's :class:`ednaquery.api.Index` over this command's store, settings and aliases, so
        that the CLI and a notebook answer through the same code; the store opens on first use (after
        the query parsed, so a bad query is reported as such even when the store is down)."""
        from ednaquery.api import Index

        return Index(self.open_store, self.settings, owns_store=False)

    def use_store(self, uri: str) -> None:
        """Point at another store (a command's own ``--store`` over the group's); settings load again."""
        self.close()
        self.store_flag, self._settings = uri, None

    def close(self) -> None:
        """Close the store if it was opened (safe to call twice)."""
        if self._store is not None:
            try:
                self._store.close()
            finally:
                self._store = None

    def store_uris(self) -> list[str]:
        """Every store URI this command may have used (flag, environment, settings), for masking."""
        uris = [self.store_flag, os.environ.get(STORE_ENV)]
        if self._settings is not None:
            uris.append(self._settings.store)
        return [u for u in uris if u]

    def redact(self, text: str) -> str:
        """``text`` with the password of any store URI in play replaced by ``***``."""
        return redact(text, self.store_uris())


pass_app = click.make_pass_decorator(App, ensure=True)


def store_option(dest: str = "store") -> Callable[[F], F]:
    """The ``--store URI`` option, spelled and explained the same way by every command."""
    return click.option(
        "--store", dest, metavar="URI", default=None,
        help=f"Store: mongodb://..., sqlite:///abs/path/index.db or a file path (env {STORE_ENV}; "
             "default: the config file's, else the nearest .ednaquery/index.db).")


def command_app(store: str | None = None) -> App:
    """The running command's :class:`App` (made by its group), with the command's own ``--store`` on top."""
    ctx = click.get_current_context()
    app = ctx.find_object(App)
    if app is None:
        app = ctx.find_root().ensure_object(App)
    if store and store != app.store_flag:
        app.use_store(store)
    return app


def exit_like_grep(ctx: click.Context) -> None:
    """Make every error of this command exit 2 (``find``, ``count``: 0 found, 1 nothing, 2 error)."""
    ctx.meta[_GREP_EXIT] = True


def _is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, StoreUnavailable):
        return True
    if "pymongo" not in sys.modules:  # then the error cannot be one of pymongo's
        return False
    from pymongo.errors import ConnectionFailure

    return isinstance(exc, ConnectionFailure)


def exit_code(exc: BaseException) -> int:
    """The exit status for an error: the error's own code, 2 for an unreachable store, 1 for a bug."""
    if _is_unreachable(exc):
        return EXIT_ERROR
    return exc.exit_code if isinstance(exc, EdnaError) else 1


def _uris_in_play(ctx: click.Context | None) -> list[str]:
    """Store URIs the failing command knew of: its App's, the environment's, any URI-like option value."""
    uris = [os.environ.get(STORE_ENV) or ""]
    c = ctx
    while c is not None:
        if isinstance(c.obj, App):
            uris += c.obj.store_uris()
        uris += [v for v in (c.params or {}).values() if isinstance(v, str) and "://" in v]
        c = c.parent
    return [u for u in dict.fromkeys(uris) if u]


def _echo_masked(text: str, ctx: click.Context | None) -> None:
    """Print an error on stderr: passwords masked, control characters in it (from indexed keys, values
    and paths) escaped line by line, so a query error's caret line keeps its place."""
    masked = redact(text, _uris_in_play(ctx or click.get_current_context(silent=True)))
    click.echo("\n".join(printable(line) for line in masked.split("\n")), err=True)


def echo_error(message: str, ctx: click.Context | None = None) -> None:
    """Print ``error: message`` on stderr with the password of every store URI in play masked."""
    _echo_masked("error: " + message, ctx)


def print_error(exc: BaseException, ctx: click.Context | None = None) -> int:
    """Print ``exc`` as one ``error: ...`` line on stderr (passwords masked); return its exit status."""
    if isinstance(exc, QuerySyntaxError) and exc.query:
        lines = exc.render().split("\n")  # the query, a caret line under the bad token, the message
        lines[-1] = "error: " + lines[-1]
        _echo_masked("\n".join(lines), ctx)
    elif isinstance(exc, EdnaError):
        echo_error((str(exc).splitlines() or [type(exc).__name__])[0], ctx)
    else:
        first = (str(exc).splitlines() or [""])[0]
        source = type(exc).__module__.split(".")[0]
        what = "the MongoDB server" if source in ("pymongo", "bson") else "an internal error"
        echo_error(f"{what}: {type(exc).__name__}: {first} (run with --debug for details)", ctx)
    if ctx is not None and ctx.meta.get(_GREP_EXIT):
        return EXIT_ERROR
    return exit_code(exc)


def _silence_stdout() -> None:
    """After a closed pipe (``ednaquery find | head``), stop Python complaining at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@contextlib.contextmanager
def _usage_in_one_line() -> Iterator[None]:
    """A usage error (unknown option, missing argument, bad value) inside becomes one line that says where
    help is, instead of click's usage block, and exit 2; a bare group still shows its help."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        echo_error(exc.format_message().rstrip(".") + where, exc.ctx)
        raise click.exceptions.Exit(exc.exit_code) from None


class _Guarded:
    """Mix-in for click commands: every error becomes :func:`print_error`'s line and exit status."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with _usage_in_one_line():
            return super().make_context(info_name, args, parent, **extra)  # type: ignore[misc]

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _usage_in_one_line():  # a subcommand's: unknown name, option or argument
                return super().invoke(ctx)  # type: ignore[misc]
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:  # noqa: BLE001 -- every error becomes one line (a traceback with --debug)
            app = ctx.find_object(App)
            if app is not None and app.debug:
                traceback.print_exc()
            raise click.exceptions.Exit(print_error(exc, ctx)) from None
        finally:
            if isinstance(ctx.obj, App) and (ctx.parent is None or ctx.parent.obj is not ctx.obj):
                try:
                    ctx.obj.close()
                except Exception:
                    log.debug("closing the store failed", exc_info=True)


class AppCommand(_Guarded, click.Command):
    """A click command whose errors print as one masked line and exit by the contract."""


class AppGroup(_Guarded, click.Group):
    """A click group whose commands' errors print as one masked line and exit by the contract."""
