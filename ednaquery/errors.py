"""Exceptions with one-line messages: what went wrong and what to do.

The CLI prints ``str(exc)`` on one line and exits with ``exit_code`` (the contract is in
:mod:`ednaquery.clikit`); library users catch :class:`EdnaError` to handle everything
ednaquery raises on purpose.
"""
from __future__ import annotations


class EdnaError(Exception):
    """Base class: a user-facing error with a one-line message."""

    exit_code = 1


class UsageError(EdnaError):
    """Bad arguments or settings (exit status 2, like a usage error)."""

    exit_code = 2


class QuerySyntaxError(UsageError):
    """A query that does not parse; ``render()`` shows a caret under the bad token."""

    def __init__(self, message: str, query: str = "", pos: int = 0, length: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.query = query
        self.pos = pos
        self.length = max(1, length)

    def __str__(self) -> str:
        return f"query error at position {self.pos + 1}: {self.message}"

    def render(self) -> str:
        """The query, a caret line under the offending token, and the message."""
        caret = " " * self.pos + "^" * min(self.length, max(1, len(self.query) - self.pos))
        return f"{self.query}\n{caret}\n{self}"


class QueryTimeout(EdnaError):
    """A query that ran past its time limit (``--timeout``) and was stopped (exit status 2)."""

    exit_code = 2


class StoreUnavailable(EdnaError):
    """The store cannot be reached (MongoDB down, database file not writable...); exit status 2."""

    exit_code = 2


class LoadError(EdnaError):
    """A file that cannot be read or parsed; the message names the line and column when known.

    ``detail`` is the message without the path (what an error record stores next to its path).
    """

    def __init__(self, detail: str, *, path: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(f"{path}: {detail}" if path else detail)
        self.detail = detail
        self.path = path
        self.line = line
        self.column = column


class NotFound(EdnaError):
    """No document has that id or id prefix."""


class AmbiguousId(EdnaError):
    """An id prefix matches several documents."""

    def __init__(self, prefix: str, matches: list[str]) -> None:
        shown = ", ".join(m[:24] for m in matches[:10])
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        super().__init__(f"id prefix {prefix!r} is ambiguous: it matches {shown}{more}; type more characters")
        self.prefix = prefix
        self.matches = matches
