"""The Python front door: ``ix = ednaquery.connect()``, then ``ix.find(...)``, ``ix.series(...)``.

:class:`Index` answers what the CLI answers, over the same store with the same settings and
aliases (``ednaquery find`` calls it): :meth:`~Index.find` / :meth:`~Index.count` take the
query language of docs/query.md, :meth:`~Index.get` an id or unique prefix, :meth:`~Index.keys`
a key or glob, :meth:`~Index.history` a file path, :meth:`~Index.series` runs and metric names.
Found documents come back as :class:`Record` values (plain Python, keys unescaped) in a
:class:`Results` list, whose :meth:`~Results.to_pandas` gives one row per record and one column
per dotted config key. pandas is optional (``pip install 'ednaquery[frames]'``).

See docs/python-api.md for a notebook session end to end.
"""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, NamedTuple, Self, overload

from ednaquery.documents import doc_note, doc_tags, original_config, parse_number, unescape_key, unescape_keys
from ednaquery.errors import QuerySyntaxError, UsageError
from ednaquery.keys import KeySpec, key_matches
from ednaquery.query.ast import MatchAll, Node
from ednaquery.query.suggest import KINDS as _KINDS
from ednaquery.store.base import FindOptions, KeyStat, SortKey, Store

__all__ = ["FRAMES_EXTRA", "Index", "Record", "Results", "SeriesPoint", "connect", "flat_config", "require_pandas"]

#: the optional dependency group that brings pandas
FRAMES_EXTRA = "frames"
#: the kinds a document can be (``kind=`` of :meth:`Index.find`)
KINDS = _KINDS


def require_pandas() -> Any:
    """The pandas module, or a one-line error naming the extra that installs it."""
    try:
        import pandas
    except ImportError:
        raise UsageError(f"DataFrames need pandas: pip install 'ednaquery[{FRAMES_EXTRA}]'") from None
    return pandas


# ---------------------------------------------------------------- records


@dataclass(frozen=True, eq=False)
class Record:
    """One indexed config, run or error record, as plain Python (keys unescaped).

    ``config`` is the effective config (nested); ``metrics`` ``{name: {"last": x, "best": y}}``
    (runs); ``values`` the values of the leaves the query's keys matched, by name; ``info`` what the
    run recorded beside (host, epochs...); times are seconds since the epoch (``started_at`` /
    ``ended_at`` for runs, ``mtime`` of the file, ``indexed_at``). ``config``, ``metrics``,
    ``info`` and ``values`` are made from the store's document on first use.
    """

    id: str
    kind: str
    paths: list[str]
    status: str | None = None
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    mtime: float | None = None
    indexed_at: float | None = None
    config_id: str | None = None
    format: str | None = None
    current: bool = True
    deleted: bool = False
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    #: the store's document this record was made from (escaped keys; for renderers)
    doc: dict = field(default_factory=dict, repr=False)
    #: the query's key columns (:class:`ednaquery.output.Column`) that ``values`` reports
    columns: Sequence[Any] = field(default=(), repr=False)

    @cached_property
    def config(self) -> dict:
        """The effective config, nested, keys as written."""
        config = original_config(self.doc)
        return config if isinstance(config, dict) else {"value": config}

    @cached_property
    def metrics(self) -> dict[str, dict[str, float]]:
        """``{metric: {"last": x, "best": y}}`` (runs), ``{metric: {"mean": x, "std": y}}`` (groups); empty otherwise."""
        return unescape_keys(self.doc.get("metrics") or {})

    @cached_property
    def info(self) -> dict:
        """What a run recorded beside its config and metrics (host, device, epochs...)."""
        return unescape_keys(self.doc.get("info") or {})

    @cached_property
    def values(self) -> dict[str, Any]:
        """``{name: value}`` of every leaf the query's keys matched, one value per unique name
        (``optimizer.lr``, ``val_acc.last``): what ``find --format json`` gives as ``values``."""
        if not self.columns:
            return {}
        from ednaquery.output import flat_values

        return flat_values(self.doc, self.columns)

    @property
    def path(self) -> str | None:
        """Where it lives: a config's (first) file, a run's folder (``mlflow.db#<run id>`` for a run of
        MLflow's SQLite store); None for a record without one."""
        return self.paths[0] if self.paths else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other.id == self.id and other.doc == self.doc

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_document(cls, doc: dict, columns: Sequence[Any] = ()) -> Record:
        """A record for a store document; ``columns`` (:class:`ednaquery.output.Column`) say what
        ``values`` holds."""
        return cls(
            id=doc["_id"], kind=doc.get("kind") or "config", paths=list(doc.get("paths") or []),
            status=doc.get("status"), tags=doc_tags(doc), note=doc_note(doc),
            started_at=doc.get("started_at"), ended_at=doc.get("ended_at"), mtime=doc.get("mtime"),
            indexed_at=doc.get("indexed_at"), config_id=doc.get("config_id"), format=doc.get("format"),
            current=bool(doc.get("current", True)), deleted=bool(doc.get("deleted", False)),
            warnings=list(doc.get("warnings") or []), error=doc.get("error"), doc=doc, columns=columns)

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain data (config, metrics, info and values included)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("doc", "columns")}
        out.update(path=self.path, config=self.config, metrics=self.metrics, info=self.info, values=self.values)
        return out


def flat_config(config: Any, prefix: str = "", out: dict[str, Any] | None = None, *,
                escaped: bool = True) -> dict[str, Any]:
    """``{dotted.key: value}`` for a nested config; lists are one value (a cell holds the list).

    The one rule for a config's key names outside ``diff``: :meth:`Results.to_pandas` columns and the
    ui's config diff. ``escaped``: the config is as the store keeps it (%-escaped keys are unescaped on
    the way); pass False for one already unescaped (:attr:`Record.config`), whose keys may hold a ``%``."""
    out = {} if out is None else out
    if not isinstance(config, dict):
        out[prefix or "value"] = config
        return out
    if not config and prefix:
        out[prefix] = {}
    for k, v in config.items():
        k = unescape_key(k) if escaped and "%" in k else k
        key = f"{prefix}.{k}" if prefix else k
        if type(v) is dict and v:
            flat_config(v, key, out, escaped=escaped)
        elif type(v) is list:
            out[key] = unescape_keys(v) if escaped else v
        else:
            out[key] = v
    return out


#: columns every frame starts with, in order (config keys, then metrics follow)
FRAME_COLUMNS = ("id", "kind", "path", "status", "config_id", "tags", "note", "started_at", "ended_at",
                 "mtime", "indexed_at")
_TIME_COLUMNS = ("started_at", "ended_at", "mtime", "indexed_at")


def _numeric_column(values: list[Any]) -> list[Any] | None:
    """The column with numeric strings (``"1e-3"``) as numbers, when every value is a number or
    missing and at least one is a numeric string; else None (keep the column as it is)."""
    changed = False
    out = []
    for v in values:
        if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            out.append(v)
            continue
        if isinstance(v, str):
            n = parse_number(v)  # the one number rule: "32" -> 32, "1e-3" -> 0.001
            if n is not None:
                out.append(n)
                changed = True
                continue
        return None
    return out if changed else None


class Results(Sequence[Record]):
    """The records a query found, in order; a list that also turns into a DataFrame."""

    def __init__(self, records: Iterable[Record], *, query: Node | None = None,
                 columns: Sequence[Any] = ()) -> None:
        self._records = list(records)
        #: the parsed query (None for records not found by a query)
        self.query = query
        #: the key columns the query named (:class:`ednaquery.output.Column`), for renderers
        self.columns = list(columns)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> Results: ...

    def __getitem__(self, i: int | slice) -> Record | Results:
        if isinstance(i, slice):
            return Results(self._records[i], query=self.query, columns=self.columns)
        return self._records[i]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __repr__(self) -> str:
        shown = ", ".join(f"{r.kind} {r.id[:12]}" for r in self._records[:5])
        more = f", ... {len(self) - 5} more" if len(self) > 5 else ""
        return f"<Results {len(self)}: {shown}{more}>"

    @property
    def ids(self) -> list[str]:
        """The records' full ids, in order."""
        return [r.id for r in self._records]

    @property
    def documents(self) -> list[dict]:
        """The store documents behind the records (escaped keys), for the CLI's renderers."""
        return [r.doc for r in self._records]

    def to_pandas(self) -> Any:
        """A DataFrame: one row per record; columns ``id, kind, path, status, config_id, tags, note``,
        the times (UTC datetimes), one column per dotted config key (``optimizer.lr``), then
        ``<metric>.last`` / ``<metric>.best`` per metric. Numbers are numbers (numeric strings in
        a config become floats where a column holds only numbers), at full precision.
        A config key that would clash with one of those names is prefixed ``config.``."""
        pd = require_pandas()
        n = len(self._records)
        cols: dict[str, list[Any]] = {name: [None] * n for name in FRAME_COLUMNS}
        config_cols: dict[str, list[Any]] = {}
        metric_cols: dict[str, list[Any]] = {}
        for i, r in enumerate(self._records):
            for name, value in (("id", r.id), ("kind", r.kind), ("path", r.path), ("status", r.status),
                                ("config_id", r.config_id), ("tags", r.tags), ("note", r.note),
                                ("started_at", r.started_at), ("ended_at", r.ended_at), ("mtime", r.mtime),
                                ("indexed_at", r.indexed_at)):
                cols[name][i] = value
            for key, value in flat_config(r.doc.get("config", {})).items():
                col = config_cols.get(key)
                if col is None:
                    col = config_cols[key] = [None] * n
                col[i] = value
            for metric, summary in (r.doc.get("metrics") or {}).items():
                metric = unescape_key(metric) if "%" in metric else metric
                for which, value in (summary or {}).items():
                    name = f"{metric}.{which}"
                    col = metric_cols.get(name)
                    if col is None:
                        col = metric_cols[name] = [None] * n
                    col[i] = value
        for key, values in config_cols.items():
            name = key if key not in cols else f"config.{key}"
            cols[name] = _numeric_column(values) or values
        for name, values in metric_cols.items():
            cols[name if name not in cols else f"metrics.{name}"] = values
        frame = pd.DataFrame(cols)
        for name in _TIME_COLUMNS:
            frame[name] = pd.to_datetime(frame[name].astype("float64"), unit="s", utc=True)
        return frame


class SeriesPoint(NamedTuple):
    """One logged value of a run's metric, as :meth:`Index.series_points` returns it."""

    run: str
    epoch: int | None
    step: int | None
    metric: str
    value: float


# ---------------------------------------------------------------- the index


def parse_key_arg(text: str, what: str, aliases: Sequence[Sequence[str]] | None) -> KeySpec:
    """One key given as an option (``sort``, ``best``, ``by``) as a KeySpec, widened by the alias
    groups unless ``aliases`` is None."""
    from ednaquery.query import parse_key
    from ednaquery.query.aliases import expand_key

    try:
        key = parse_key(text)
    except QuerySyntaxError:
        raise UsageError(f"{what} takes one key, like val_acc or optimizer.lr (got {text!r})") from None
    return key if aliases is None else expand_key(key, aliases)


def parse_sort(text: str, aliases: Sequence[Sequence[str]] | None) -> SortKey:
    """``KEY``, ``-KEY``/``desc:KEY``/``KEY:desc`` (descending), ``+KEY``/``asc:KEY`` -> SortKey."""
    raw = text.strip()
    descending = False
    low = raw.lower()
    if low.startswith(("desc:", "asc:")):
        descending, raw = low.startswith("desc:"), raw.split(":", 1)[1]
    elif low.endswith((":desc", ":asc")):
        descending, raw = low.endswith(":desc"), raw.rsplit(":", 1)[0]
    elif raw.startswith(("-", "+")):
        descending, raw = raw.startswith("-"), raw[1:]
    return SortKey(parse_key_arg(raw, "--sort", aliases), descending)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class Index:
    """Queries over one store, with the alias groups of the settings in force.

    Make one with :func:`connect` (or ``Index(store, settings)``); close it when done (or use
    ``with``). Every method raises :class:`ednaquery.errors.EdnaError` subclasses with one-line
    messages: a query syntax error, an unknown id, a store that cannot be reached. ``store`` may
    also be a function that opens it, called on first use (so that a bad query is reported as
    such even where the store cannot be reached, as the CLI does).
    """

    def __init__(self, store: Store | Callable[[], Store], settings: Any = None, *,
                 aliases: Sequence[Sequence[str]] | None = None, owns_store: bool = True) -> None:
        self._store: Store | None = store if isinstance(store, Store) else None
        self._open: Callable[[], Store] | None = None if isinstance(store, Store) else store
        self.settings = settings
        if aliases is None:
            from ednaquery.query import load_alias_groups

            aliases = settings.alias_groups() if settings is not None else load_alias_groups()
        #: the alias groups queries are widened by (built-ins plus the settings' ``aliases``)
        self.aliases: list[list[str]] = [list(g) for g in aliases]
        self._owns_store = owns_store

    @property
    def store(self) -> Store:
        """The store (opened now if it was given as a function)."""
        if self._store is None:
            assert self._open is not None
            self._store = self._open()
        return self._store

    def __repr__(self) -> str:
        return f"<Index {self.store.display_uri}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store (when this index owns it)."""
        if self._owns_store and self._store is not None:
            self._store.close()

    def reopen(self) -> Index:
        """This index on a store connection of its own (same store, settings and aliases), for a thread whose
        long reads must not hold up this one's queries (the ui's key catalogue); close it when done."""
        store = self.store.reopen()
        return Index(store, self.settings, aliases=self.aliases, owns_store=store is not self.store)

    # ------------------------------------------------------------ queries
    def parse(self, query: str | Sequence[str] | Node | None, *, aliases: bool = True) -> Node:
        """A query (text, CLI-style words, or an already parsed node) as a parsed, alias-widened node."""
        if query is None:
            return MatchAll()
        if not isinstance(query, (str, list, tuple)):
            return query  # a parsed node
        from ednaquery.query import compile_query

        return compile_query(query if isinstance(query, str) else list(query), self.aliases,
                             use_aliases=aliases)

    def key(self, text: str, *, what: str = "key", aliases: bool = True) -> KeySpec:
        """One key (``optimizer.lr``, ``val_acc``) as a KeySpec, alias-widened unless ``aliases=False``."""
        return parse_key_arg(text, what, self.aliases if aliases else None)

    def find(self, query: str | Sequence[str] | Node | None = None, *, sort: str | Sequence[str] | None = None,
             limit: int | None = None, kind: str | Sequence[str] | None = None, best: str | None = None,
             by: str | None = None, minimize: bool | None = None, all_versions: bool = False,
             aliases: bool = True, timeout: float | None = None) -> Results:
        """The documents matching ``query`` (docs/query.md), as :class:`Results`.

        ``sort``: a key or keys, ``-key`` descending. ``kind``: ``config``, ``run`` and/or
        ``error`` (default config and run, unless the query names ``kind``). ``best=METRIC``
        keeps the best document per value of ``by`` (all in one group without it): highest
        METRIC, or lowest for loss-like names (``minimize`` forces it); ordered best first and
        not combinable with ``sort``. ``all_versions`` includes superseded and deleted documents;
        ``aliases=False`` matches keys exactly as written; ``timeout`` stops a query after that
        many seconds (:class:`ednaquery.errors.QueryTimeout`). A sort, best or by key the index
        has never seen is a :class:`UsageError` with a "did you mean".
        """
        from ednaquery.output import Column, key_label, query_columns

        node = self.parse(query, aliases=aliases)
        alias_groups = self.aliases if aliases else None
        if by and not best:
            raise UsageError("--by needs --best METRIC (e.g. --best val_acc --by model)")
        if minimize is not None and not best:
            raise UsageError("--min/--max go with --best METRIC")
        sorts = _as_list(sort)
        if best and sorts:
            raise UsageError("--sort cannot be combined with --best: results are ordered by the metric")
        if limit is not None and limit < 0:
            raise UsageError(f"limit must be 0 or more (got {limit})")
        kinds = self._kinds(kind)
        sort_keys = [parse_sort(s, alias_groups) for s in sorts]
        self.store.query_timeout = timeout or None
        self._check_option_keys([("--sort", sk.key) for sk in sort_keys])
        by_key = None
        if best:
            from ednaquery.results import best_in_store, check_group_key

            metric_key = parse_key_arg(best, "--best", alias_groups)
            by_key = parse_key_arg(by, "--by", alias_groups) if by else None
            paths = self._check_option_keys([("--best", metric_key)] + ([("--by", by_key)] if by_key else []))
            if by_key is not None:
                check_group_key(by_key, paths)
            docs = best_in_store(self.store, node, FindOptions(kinds=kinds, all_versions=all_versions),
                                 Column(metric_key, key_label(metric_key)),
                                 Column(by_key, key_label(by_key)) if by_key else None, minimize)
            if limit is not None:
                docs = docs[:limit]
            extra = ([by_key] if by_key else []) + [metric_key]
        else:
            docs = self.store.find(node, FindOptions(kinds=kinds, all_versions=all_versions, sort=sort_keys,
                                                     limit=limit))
            extra = [sk.key for sk in sort_keys]
        columns = query_columns(node, extra)
        for col in columns:  # the --by column shows the leaf the runs were grouped by
            col.group = bool(best and by_key is not None and col.key == by_key and not col.terms)
        return Results((Record.from_document(d, columns) for d in docs), query=node, columns=columns)

    def _check_option_keys(self, keys: Sequence[tuple[str, KeySpec]]) -> list[tuple[str, ...]]:
        """``--sort``/``--best``/``--by`` on a key the index has never seen: a usage error with a suggestion.
        Returns the store's key paths it read (none when ``keys`` is empty), for further checks."""
        from ednaquery.query.suggest import describe_unknown, known

        paths = self.store.key_paths() if keys else []
        for what, key in keys:
            if paths and not known(key, paths):
                raise UsageError(f"{what}: {describe_unknown(key, paths)}")
        return paths

    def unknown_keys(self, query: str | Sequence[str] | Node | None, *, aliases: bool = True) -> list[str]:
        """One line per key of ``query`` the index has never seen, with a "did you mean" (what the
        CLI prints when nothing matched)."""
        from ednaquery.query.suggest import describe_unknown, unknown_keys

        node = self.parse(query, aliases=aliases)
        paths = self.store.key_paths()
        return [describe_unknown(key, paths) for key in unknown_keys(node, paths)] if paths else []

    def count(self, query: str | Sequence[str] | Node | None = None, *, kind: str | Sequence[str] | None = None,
              all_versions: bool = False, aliases: bool = True, timeout: float | None = None) -> int:
        """How many documents match ``query`` (same options as :meth:`find`)."""
        node = self.parse(query, aliases=aliases)
        self.store.query_timeout = timeout or None
        return self.store.count(node, FindOptions(kinds=self._kinds(kind), all_versions=all_versions))

    @staticmethod
    def _kinds(kind: str | Sequence[str] | None) -> tuple[str, ...] | None:
        kinds = tuple(dict.fromkeys(_as_list(kind)))
        for k in kinds:
            if k not in KINDS:
                raise UsageError(f"unknown kind {k!r}; use one of {', '.join(KINDS)}")
        return kinds or None

    def get(self, id_or_prefix: str) -> Record:
        """The record with this id or unique id prefix (4+ characters)."""
        return Record.from_document(self.store.get(id_or_prefix))

    def keys(self, pattern: str | None = None, *, limit: int | None = None) -> list[KeyStat]:
        """The keys seen in current documents, most common first, with counts, types and examples.

        ``pattern``: a key as in a query (``lr`` also finds its aliases), or a glob over dotted
        paths (``optimizer.*``, any case).
        """
        stats = self.store.key_stats(None)
        if pattern:
            if any(c in pattern for c in "*?["):
                low = pattern.lower()
                stats = [s for s in stats if fnmatch.fnmatchcase(".".join(s.path).lower(), low)]
            else:
                key = self.key(pattern, what="keys")
                stats = [s for s in stats if key_matches(key, tuple(s.path))]
        return stats[:limit] if limit is not None else stats

    def history(self, path: str | os.PathLike[str]) -> Results:
        """Every version of a file the store has seen, newest first (the current one first)."""
        full = os.path.abspath(os.fspath(path))
        return Results(Record.from_document(d) for d in self.store.history(full))

    def stats(self) -> dict:
        """What the store holds: documents by kind and state, keys, files, size (``ednaquery stats``)."""
        return self.store.stats()

    def problems(self, *, warnings: bool = True) -> list[dict[str, Any]]:
        """Files that could not be indexed and, with ``warnings``, documents indexed with warnings: each
        ``{"kind": "error"|"warning", "id", "path", "message"}`` (``ednaquery errors``)."""
        from ednaquery.results import problems

        return problems(self.store, warnings=warnings)

    # ------------------------------------------------------------ tags and notes
    def _document(self, record_or_id: Record | str) -> dict:
        return self.store.get(record_or_id.id if isinstance(record_or_id, Record) else record_or_id)

    def tag(self, record_or_id: Record | str, *changes: str) -> Record:
        """Add (``"+baseline"``) or remove (``"-old"``) the user's tags on a run or config; returns it
        as it is now. Kept in a sidecar file beside it (:mod:`ednaquery.annotations`) and in the store."""
        from ednaquery.annotations import annotate

        doc = self._document(record_or_id)
        new = annotate(self.store, doc, tag_changes=list(changes))
        return Record.from_document(dict(doc, annotations=new))

    def note(self, record_or_id: Record | str, text: str) -> Record:
        """Set the user's note on a run or config (``""`` removes it); returns it as it is now."""
        from ednaquery.annotations import annotate

        doc = self._document(record_or_id)
        new = annotate(self.store, doc, note=text)
        return Record.from_document(dict(doc, annotations=new))

    # ------------------------------------------------------------ series
    def _run_ids(self, runs: Any) -> list[str]:
        if isinstance(runs, (str, Record)):
            runs = [runs]
        ids = []
        for r in runs:
            if isinstance(r, Record):
                ids.append(r.id)
            elif isinstance(r, str):
                ids.append(self.store.get(r)["_id"])
            else:
                raise UsageError(f"runs are records or ids, not {type(r).__name__}")
        return list(dict.fromkeys(ids))

    def series_points(self, runs: Any, metrics: str | Sequence[str] | None = None) -> list[SeriesPoint]:
        """Every stored value of ``metrics`` (all when None; exact names) of ``runs`` (a run, an id or
        prefix, or a list of them, or :class:`Results`), by run, metric, then logging order."""
        ids = self._run_ids(runs)
        wanted = None if metrics is None else _as_list(metrics)
        return [SeriesPoint(run, epoch, step, metric, value)
                for run, metric, step, epoch, value in self.store.series(ids, wanted)]

    def series(self, runs: Any, metrics: str | Sequence[str] | None = None) -> Any:
        """A long DataFrame of metric series: columns ``run, epoch, step, metric, value`` (see
        :meth:`series_points`). Epoch and step are nullable integers (unknown where not logged)."""
        pd = require_pandas()
        points = self.series_points(runs, metrics)
        frame = pd.DataFrame(points, columns=list(SeriesPoint._fields))
        for name in ("epoch", "step"):
            frame[name] = frame[name].astype("Int64")
        frame["value"] = frame["value"].astype("float64")
        return frame


def connect(uri: str | None = None, *, config: str | os.PathLike[str] | None = None) -> Index:
    """Open the index the CLI would use here: the same settings (``--store``/``EDNAQUERY_STORE``,
    the nearest ``.ednaquery/config.toml``...) and the same key aliases.

    ``uri``: a store to use instead (``mongodb://...``, ``sqlite:///path``, a file path);
    ``config``: a settings file to read instead of the one found.
    """
    from ednaquery.settings import load_settings
    from ednaquery.store import open_store

    settings = load_settings(config, store=uri)
    store = open_store(settings.store, timeout_ms=settings.store_timeout_ms, create=False)
    return Index(store, settings)
