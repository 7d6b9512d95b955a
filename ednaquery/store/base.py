"""The store interface every backend implements, and the value types it speaks.

A store is an index of files on disk: ``apply`` says what a file path now holds,
``find``/``count`` answer a parsed query (``ednaquery.query.ast``), ``get`` resolves
ids and unique prefixes. Beside the documents, a store keeps each run's metric series
(every logged value, :class:`ednaquery.metrics.Point`) in a table/collection of its own,
never in the run document: ``PathUpdate.series`` and :meth:`Store.replace_series` write
them, :meth:`Store.series` reads them. Backends: :mod:`ednaquery.store.sqlite` (embedded default)
and :mod:`ednaquery.store.mongo` (pymongo).
"""
from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from ednaquery.keys import KeySpec
from ednaquery.query.ast import And, Compare, Exists, Node, Not, Or, Range, keys_of

if TYPE_CHECKING:
    from ednaquery.metrics import Point

DEFAULT_KINDS = ("config", "run")

#: one value of a run's metric series as stored: ``(metric, step, epoch, value)``, the fields of
#: :class:`ednaquery.metrics.Point` as a plain tuple (small to send between processes)
SeriesRow = tuple[str, "int | None", "int | None", float]
#: one value read back: ``(run_id, metric, step, epoch, value)``
StoredPoint = tuple[str, str, "int | None", "int | None", float]


def series_rows(points: Iterable[Point]) -> list[SeriesRow]:
    """Points as the rows a store takes (``PathUpdate.series``, :meth:`Store.replace_series`): plain
    tuples of a :class:`~ednaquery.metrics.Point`'s fields, which cost a tenth of named tuples to
    send between processes (the one-shot scan's converters)."""
    return list(map(tuple, points))


@dataclass(frozen=True, slots=True)
class FileState:
    """What the reconcile walk compares: a file changed if any of these differ."""

    size: int
    mtime_ns: int
    inode: int


@dataclass
class PathUpdate:
    """A file path now holds ``docs`` (``state`` None and no docs: the file is gone).

    ``bodies`` optionally carries each new document's stored body, prepared by a converter
    process (:func:`ednaquery.store.bodies.pack_body`); a store that cannot use one ignores it.
    ``series`` maps the id of each run document read from the run folder just now to its whole
    metric series (:data:`SeriesRow` values in logging order): it replaces what the store held for
    that run, so the series stays in step with the folder as it grows. A run not named keeps its
    series; a run document that becomes ``deleted`` loses it.
    """

    path: str
    docs: list[dict]
    state: FileState | None
    bodies: Sequence[bytes | None] = ()
    series: dict[str, Sequence[SeriesRow]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobHome:
    """Where a job queue beside a store lives: the same SQLite file, or the same MongoDB database.

    Both unset: the backend keeps no jobs. ``guard(what)`` turns the database's errors during
    ``what`` into one-line ednaquery errors, as the store does for its own work.
    """

    sqlite_path: str | None = None
    mongo_database: Any = None
    guard: Callable[[str], AbstractContextManager[None]] | None = None


@dataclass(frozen=True)
class SortKey:
    """Sort by the values of ``key`` (ascending: smallest matching value; descending: largest)."""

    key: KeySpec
    descending: bool = False


@dataclass
class FindOptions:
    """Everything ``find``/``count`` take beside the query."""

    kinds: Sequence[str] | None = None  # None: config+run, or any kind when the query names `kind`
    all_versions: bool = False  # include superseded and deleted documents
    sort: Sequence[SortKey] = ()
    limit: int | None = None
    offset: int = 0


@dataclass
class KeyStat:
    """One row of ``ednaquery keys``: a leaf path, how many documents have it, types, examples."""

    path: tuple[str, ...]
    count: int
    types: dict[str, int] = field(default_factory=dict)
    examples: list[Any] = field(default_factory=list)


def effective_kinds(node: Node, kinds: Sequence[str] | None) -> Sequence[str] | None:
    """The kind filter to apply: explicit kinds, none when the query names ``kind`` itself, else config+run."""
    if kinds:
        return tuple(kinds)
    if any(k.reserved_field() == "kind" for k in keys_of(node)):
        return None
    return DEFAULT_KINDS


def uses_only(node: Node, types: tuple[type, ...]) -> bool:
    """True if every term in the tree is one of ``types`` (for backend capability checks)."""
    if isinstance(node, (And, Or)):
        return all(uses_only(i, types) for i in node.items)
    if isinstance(node, Not):
        return uses_only(node.item, types)
    return isinstance(node, types) or not isinstance(node, (Compare, Range, Exists))


class Store(abc.ABC):
    """What every backend provides. All methods raise ``StoreUnavailable`` when the backend is down."""

    #: the URI with any password masked, safe to print
    display_uri: str = ""
    #: seconds one find/count may run before it stops with QueryTimeout; None: no limit
    query_timeout: float | None = None

    @abc.abstractmethod
    def apply(self, updates: Iterable[PathUpdate]) -> None:
        """Set what each path holds, in one transaction/bulk write per batch.

        Documents new to the store are inserted; a document already there gains the path.
        A document that no longer lives at the path loses it (kept in ``past_paths``); one left
        with no path is no longer current, and ``deleted`` when its file is gone.
        """

    @abc.abstractmethod
    def upsert(self, docs: Iterable[dict]) -> None:
        """Insert or replace documents by id, keeping (merging) the paths already recorded."""

    @abc.abstractmethod
    def get(self, id_or_prefix: str) -> dict:
        """The document with this id or unique id prefix (4+ chars); NotFound / AmbiguousId otherwise."""

    @abc.abstractmethod
    def find(self, node: Node, options: FindOptions | None = None) -> list[dict]:
        """Documents matching a parsed query, sorted and limited as asked."""

    @abc.abstractmethod
    def count(self, node: Node, options: FindOptions | None = None) -> int:
        """How many documents match (sort/limit ignored)."""

    @abc.abstractmethod
    def key_stats(self, pattern: str | None = None, sample: int = 3) -> list[KeyStat]:
        """Every leaf path seen in current documents, with counts, types and a few example values."""

    def best_rows(self, node: Node, options: FindOptions, metric: KeySpec, by: KeySpec | None,
                  minimize: bool) -> list[tuple[str, float, str, str]] | None:
        """For ``--best``: ``(id, score, group label, order)`` for at least the best-scoring matching documents of
        each group (ties included), computed in the store; None where the backend cannot (the caller then
        scores the found documents in Python).

        The label comes from the ``by`` leaves that :func:`ednaquery.keys.group_leaf` accepts.
        """
        return None

    def key_paths(self) -> list[tuple[str, ...]]:
        """Every distinct leaf path the store has seen (the key catalogue): for "did you mean" hints."""
        return [k.path for k in self.key_stats(sample=0)]

    def reopen(self) -> Store:
        """The same store on a connection of its own, for a thread whose long reads must not wait on this
        one's; this store itself (the default) where one connection serves several threads at once."""
        return self

    @abc.abstractmethod
    def stats(self) -> dict:
        """Totals for ``ednaquery stats``: documents by kind, current/deleted, errors, size."""

    @abc.abstractmethod
    def file_states(self, root: str | None = None) -> dict[str, FileState]:
        """The recorded state of every indexed file (under ``root``), for the reconcile walk."""

    @abc.abstractmethod
    def history(self, path: str) -> list[dict]:
        """Every document a path has held, newest first (``ednaquery history``)."""

    @abc.abstractmethod
    def dependants(self, paths: Sequence[str]) -> list[str]:
        """Paths of current documents whose ``depends_on`` names any of ``paths`` (base-file changes)."""

    @abc.abstractmethod
    def errors(self) -> list[dict]:
        """The current error records (files that could not be read or parsed), by id."""

    @abc.abstractmethod
    def replace_series(self, series: dict[str, Sequence[SeriesRow]]) -> None:
        """Set each run id's whole metric series (an empty sequence clears it), atomically per call.

        For writers that :meth:`upsert` run documents (the trainer); :meth:`apply` does the same
        with ``PathUpdate.series``. Rows are kept in the order given (logging order).
        """

    @abc.abstractmethod
    def series(self, run_ids: Sequence[str], metrics: Sequence[str] | None = None) -> list[StoredPoint]:
        """The stored series values of these runs (full ids), of ``metrics`` only when given (exact
        names), ordered by run (as given), metric name, then logging order."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    # ------------------------------------------------ capabilities (defaults: the backend has none)

    #: True if ``apply`` uses ``PathUpdate.bodies`` packed with :meth:`body_dictionary`
    takes_packed_bodies: bool = False

    def body_dictionary(self) -> bytes | None:
        """The zlib dictionary converter processes pack bodies with (see ``PathUpdate.bodies``);
        None until the store has one, and always where ``takes_packed_bodies`` is False."""
        return None

    def bulk_load(self, expected: int) -> AbstractContextManager[None]:
        """Around writing ``expected`` documents at once (a big first scan): a backend may prepare
        for it and finish at the end. Default: nothing to do."""
        return contextlib.nullcontext()

    def reopen_uri(self) -> str | None:
        """A URI another process (a DDP rank) can open this same store with; None where there is none."""
        return None

    def job_home(self) -> JobHome:
        """Where the job queue beside this store lives (an empty :class:`JobHome`: the backend has none)."""
        return JobHome()

    def set_annotations(self, doc_id: str, annotations: dict[str, Any]) -> None:
        """Replace a document's user tags and note (``{"tags": [...], "note": "..."}``, {} for none) and
        the ``tags``/``note`` leaves queries see (:mod:`ednaquery.annotations` writes the sidecar first)."""
        raise NotImplementedError(f"{type(self).__name__} cannot store tags and notes")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
