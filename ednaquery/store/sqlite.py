"""The embedded default store: one SQLite file (WAL), one writer and many readers at once.

Schema: ``docs`` holds each document once (zlib-compressed JSON body, without leaves);
``leaves`` holds one row per leaf, clustered by document, with the value views the query
needs and three partial covering indexes ``(pid, n)``, ``(pid, sid)``, ``(pid, t)``;
``paths`` is the leaf-path catalog and ``strs`` dictionary-encodes string values and their
tokens; ``series`` holds every run's metric values, one row per logged value, indexed on
``(rid, metric, step)`` (schema v3; a v2 file gains the table when opened, see
:meth:`SQLiteStore._migrate`). Writes are transactions, so a killed writer never leaves a half-written document.

Two query plans (``sql_compile``): ``count`` and sorted or unlimited finds build the match
set from the leaf indexes (INTERSECT/UNION/EXCEPT of row ids); ``find --limit`` first walks
``docs`` in path order testing each document with per-document probes, which fills a page of
a broad query after a few documents, and falls back to the match set past a step budget.
"""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ednaquery.documents import ID_VERSION, PATH_SEP, reserved_leaves, value_tokens
from ednaquery.errors import AmbiguousId, NotFound, QueryTimeout, StoreUnavailable, UsageError
from ednaquery.keys import RESERVED_PREFIX, KeySpec, is_reserved_path, key_matches
from ednaquery.query.ast import Compare, Node, terms_of
from ednaquery.regex import RegexError
from ednaquery.regex import compile_regex as _compile_regex
from ednaquery.settings import default_store_path
from ednaquery.store import id_version
from ednaquery.store.base import (
    FileState,
    FindOptions,
    JobHome,
    KeyStat,
    PathUpdate,
    SeriesRow,
    SortKey,
    Store,
    StoredPoint,
    effective_kinds,
)
from ednaquery.store.bodies import body_json, pack_body, unpack_body
from ednaquery.store.bulk_marker import LOADING_HERE, bulk_loader_alive, bulk_marker
from ednaquery.store.catalog import PathCatalog, Tiers
from ednaquery.store.sql_compile import (
    T_EMPTY,
    T_FALSE,
    T_NULL,
    T_NUM,
    T_STR,
    T_TRUE,
    best_rows_sql,
    compile_probe,
    compile_sql,
    leaf_filter,
    too_large,
    yields_distinct,
)

SCHEMA_VERSION = 3
#: :meth:`SQLiteStore.bulk_load` drops and rebuilds these for at least this many new documents
_BULK_INDEXES = ("leaves_num", "leaves_str", "leaves_typ")
BULK_MIN_DOCS = 2000
#: ``find`` pages up to this many rows by walking documents in order (see ``_page_by_probe``)
PROBE_MAX_ROWS = 1000
#: ... for at most this many thousand SQLite VM steps (about 15 ms here) before building the match set
PROBE_BUDGET = 500
_CACHE_SIZE = -65536  # KiB of page cache per connection
_MMAP_SIZE = 1 << 30  # bytes of the file read through a memory map
_TYPE_CODE = {"null": T_NULL, "num": T_NUM, "str": T_STR, "empty": T_EMPTY}
_CODE_TYPE = {T_NULL: "null", T_FALSE: "bool", T_TRUE: "bool", T_NUM: "num", T_STR: "str", T_EMPTY: "empty"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS docs (
  rid INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  current INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  indexed_at REAL,
  path0 TEXT,
  body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS docs_kind ON docs(kind, current);
CREATE INDEX IF NOT EXISTS docs_current ON docs(current);
CREATE INDEX IF NOT EXISTS docs_order ON docs(coalesce(path0, '~' || id));
CREATE TABLE IF NOT EXISTS paths (pid INTEGER PRIMARY KEY, p TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS strs (sid INTEGER PRIMARY KEY, s TEXT NOT NULL UNIQUE, w TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leaves (
  rid INTEGER NOT NULL,
  i INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  t INTEGER NOT NULL,
  n REAL,
  sid INTEGER,
  PRIMARY KEY (rid, i)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leaves_num ON leaves(pid, n) WHERE n IS NOT NULL;
CREATE INDEX IF NOT EXISTS leaves_str ON leaves(pid, sid) WHERE sid IS NOT NULL;
CREATE INDEX IF NOT EXISTS leaves_typ ON leaves(pid, t) WHERE (t < 3 OR t = 5);
CREATE TABLE IF NOT EXISTS doc_paths (
  path TEXT NOT NULL, rid INTEGER NOT NULL, live INTEGER NOT NULL, PRIMARY KEY (path, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_paths_rid ON doc_paths(rid);
CREATE TABLE IF NOT EXISTS deps (dep TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (dep, rid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
  rid INTEGER NOT NULL, metric TEXT NOT NULL, step INTEGER, epoch INTEGER, value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS series_run ON series(rid, metric, step);
"""
#: the statements that take a v2 file to v3 (the series table)
_SERIES_SQL = [stmt for stmt in _SCHEMA.split(";") if "series" in stmt]

def compile_regex(pattern: str) -> Any:
    """``pattern`` as ``~`` runs it here (RE2, linear time: see :mod:`ednaquery.regex`); UsageError if it cannot."""
    try:
        return _compile_regex(pattern)
    except RegexError as e:
        raise UsageError(f"regular expression {pattern!r} cannot run: {e}") from None


def check_regexes(node: Node) -> None:
    """Compile every ``~``/``!~`` pattern of a query now, so a bad one is a clear error, not a failed query."""
    for term in terms_of(node):
        if isinstance(term, Compare) and term.op in ("~", "!~"):
            for v in term.values:
                compile_regex(str(v.value))


#: Ctrl-C seen inside a callback SQLite made (it cannot raise through SQLite): the query stops at the next
#: progress check and KeyboardInterrupt is raised again once SQLite has returned
_SIGINT = threading.Event()
_PROGRESS_EVERY = 10000  # SQLite VM steps between two checks of the time limit and Ctrl-C


def _regexp(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    try:
        return compile_regex(pattern).search(value) is not None
    except KeyboardInterrupt:
        _SIGINT.set()
        return False


def sqlite_path_from_uri(uri: str | None) -> Path:
    """The database file a URI names: ``sqlite:///abs/path.db``, a plain path, or (None) the default
    (:func:`ednaquery.settings.default_store_path`)."""
    if not uri:
        return default_store_path()
    if uri.startswith("sqlite://"):
        rest = uri[len("sqlite://"):]
        if not rest.startswith("/"):
            raise UsageError(f"sqlite URI must name an absolute path, like sqlite:///abs/path/index.db (got {uri!r})")
        return Path(rest)
    if "://" in uri:
        raise UsageError(f"unknown store URI scheme in {uri!r}; use mongodb://..., sqlite:///path, or a file path")
    return Path(uri).expanduser()


_ORDER = "coalesce(d.path0, '~' || d.id)"  # by path; documents without a file last, by id
_LEAF_CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)  # 128 rows: 768 variables, under old SQLite's 999
_LEAF_INSERT = {k: "INSERT INTO leaves(rid, i, pid, t, n, sid) VALUES " + ",".join(["(?,?,?,?,?,?)"] * k)
                for k in _LEAF_CHUNKS}
#: each index's CREATE statement, by name (made on open when missing; see bulk_load)
_INDEX_SQL = {m.group(1): stmt for stmt in _SCHEMA.split(";")
              if (m := re.search(r"CREATE INDEX IF NOT EXISTS (\w+)", stmt))}
_SERIES_INSERT = {k: "INSERT INTO series(rid, metric, step, epoch, value) VALUES " + ",".join(["(?,?,?,?,?)"] * k)
                  for k in _LEAF_CHUNKS}
_COLUMN_FIELDS = ("id", "path")  # reserved fields kept in docs.id / doc_paths instead of leaves
_COLUMN_LEAVES = {RESERVED_PREFIX + f for f in _COLUMN_FIELDS}


def _tokens_text(text: str | None) -> str:
    return " " + " ".join(value_tokens(text or "")) + " "


class SQLiteStore(Store):
    """The embedded store. Safe for one writer and many reader processes (WAL, busy timeout)."""

    takes_packed_bodies = True

    def __init__(self, path: str | os.PathLike, *, create: bool = True, busy_timeout_ms: int = 30000) -> None:
        self.path = Path(path)
        self.display_uri = f"sqlite://{self.path}" if self.path.is_absolute() else str(self.path)
        if not self.path.exists() and not create:
            raise StoreUnavailable(f"no index at {self.path}; run `ednaquery init` or `ednaquery index PATH` first")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=busy_timeout_ms / 1000, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            self.db.create_function("ednaquery_regexp", 2, _regexp, deterministic=True)
            self.db.create_function("ednaquery_tokens", 1, _tokens_text, deterministic=True)
            deadline = time.monotonic() + busy_timeout_ms / 1000
            while True:  # a new file opened by several processes at once: switching to WAL can be BUSY
                try:
                    self.db.execute("PRAGMA journal_mode=WAL")
                    self.db.execute("PRAGMA synchronous=NORMAL")
                    self.db.execute(f"PRAGMA cache_size={_CACHE_SIZE}")
                    self.db.execute(f"PRAGMA mmap_size={_MMAP_SIZE}")  # cold CLI reads straight from the page cache
                    self._init_schema()
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        except sqlite3.DatabaseError as e:
            raise StoreUnavailable(f"cannot open the index at {self.path}: {e}") from None
        except OSError as e:
            raise StoreUnavailable(f"cannot create the index at {self.path}: {e.strerror or e}") from None
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._deadline: float | None = None
        self._guarding = False
        self._catalog = PathCatalog()
        self._catalog_max = 0
        self._str_cache: dict[str, int] = {}
        self._pid_cache: dict[str, int] = {}
        self._zdict: bytes | None = None
        self._marked: bool | None = None  # every body has body_json's JSON_MARK rule (meta 'bodies')
        self.probe_budget = PROBE_BUDGET  # 0: always build the match set
        self._leaf_rows: list = []  # (rid, i, pid, t, n, sid) values not inserted yet, flat (see _flush_leaves)
        self._absent: set[str] | None = None  # during a batch: its ids that are not in the store
        self._maybe_live: set[str] | None = None  # during a batch: paths that may hold live documents
        self._migrate_ids()

    # ------------------------------------------------------------ schema
    def _init_schema(self) -> None:
        cur = self.db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")
        if cur.fetchone():
            row = self.db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
            if row and int(row[0]) == 2:
                self._migrate()
            elif row and int(row[0]) != SCHEMA_VERSION:
                raise StoreUnavailable(f"index {self.path} has schema v{row[0]}, this ednaquery needs "
                                       f"v{SCHEMA_VERSION}; delete it and run `ednaquery index` again")
            have = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
            marker = self.db.execute("SELECT v FROM meta WHERE k='bulk_load'").fetchone()
            loading = marker is not None and bulk_loader_alive(marker[0], self.path)
            for name, stmt in _INDEX_SQL.items():  # indexes added since the file was made, or left dropped
                if name not in have and not (loading and name in _BULK_INDEXES):
                    self.db.execute(stmt)
            if marker is not None and not loading:
                self.db.execute("DELETE FROM meta WHERE k='bulk_load'")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('bodies', 'marked')")  # see unpack_body
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('ids', ?)", (str(ID_VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        """v2 -> v3: add the series table. The recorded states of runs' files are forgotten, so the
        next scan (or the daemon's reconcile walk) reads those runs again and fills their series."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self.db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()[0] == "2":  # not done meanwhile
                for stmt in _SERIES_SQL:
                    self.db.execute(stmt)
                self.db.execute("DELETE FROM files WHERE path IN (SELECT p.path FROM doc_paths p "
                                "JOIN docs d ON d.rid=p.rid WHERE d.kind='run' AND p.live=1)")
                self.db.execute("UPDATE meta SET v=? WHERE k='schema'", (str(SCHEMA_VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _migrate_ids(self) -> None:
        """A store whose ids an older rule made: say so once, mark every file for re-reading and
        re-key the configs that have no file (:mod:`ednaquery.store.id_version`)."""
        row = self.db.execute("SELECT v FROM meta WHERE k='ids'").fetchone()
        if not id_version.outdated(row[0] if row else None):
            return
        try:
            with self._lock, self._transaction():
                row = self.db.execute("SELECT v FROM meta WHERE k='ids'").fetchone()
                if not id_version.outdated(row[0] if row else None):
                    return  # another process migrated first
                files = self.db.execute("UPDATE files SET size = ?", (id_version.STALE_SIZE,)).rowcount
                moved = self._rekey_pathless()
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('ids', ?)", (str(ID_VERSION),))
                if files or moved or self.db.execute("SELECT 1 FROM docs LIMIT 1").fetchone():
                    id_version.announce(str(self.path), row[0] if row else None, files, moved)
        except StoreUnavailable:  # read-only: a writer migrates it
            return

    def _rekey_pathless(self) -> int:
        """Give each current config without a file its id under this rule; the old id stays as a past version."""
        olds = [self._unpack(r[0]) for r in self.db.execute(
            "SELECT body FROM docs WHERE kind='config' AND current=1 AND path0 IS NULL")]
        changes = [(old, new) for old in olds if (new := id_version.rekeyed(old)) is not None]
        if not changes:
            return 0
        with self._batch([new["_id"] for _, new in changes]):
            for old, new in changes:
                held = None if new["_id"] == old["_id"] else self._load(new["_id"])
                if held is None or not held.get("current", True):  # never overwrite a live config
                    self._write_doc(self._merge_into_existing(new, None))
                if new["_id"] != old["_id"]:
                    retired = dict(old, current=False)
                    self.db.execute("UPDATE docs SET current=0, body=? WHERE id=?",
                                    (self._pack(retired), old["_id"]))
        return len(changes)

    def ensure_indexes(self) -> list[str]:
        """Index names (created with the schema); listed for docs and tests."""
        return [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")]

    # ------------------------------------------------------------ write path
    def _pid(self, p: str) -> int:
        pid = self._pid_cache.get(p)
        if pid is not None:
            return pid
        cur = self.db.execute("INSERT INTO paths(p) VALUES (?) ON CONFLICT(p) DO NOTHING RETURNING pid", (p,))
        row = cur.fetchone()
        if row is None:
            row = self.db.execute("SELECT pid FROM paths WHERE p=?", (p,)).fetchone()
        self._pid_cache[p] = row[0]
        return row[0]

    def _sid(self, s: str, w: str) -> int:
        sid = self._str_cache.get(s)
        if sid is not None:
            return sid
        row = self.db.execute("INSERT INTO strs(s, w) VALUES (?, ?) ON CONFLICT(s) DO NOTHING RETURNING sid",
                              (s, w)).fetchone()
        if row is None:  # already there (written by another process, or before this cache)
            row = self.db.execute("SELECT sid FROM strs WHERE s=?", (s,)).fetchone()
        sid = row[0]
        if len(self._str_cache) > 200_000:
            self._str_cache.clear()
        self._str_cache[s] = sid
        return sid

    def _write_doc(self, doc: dict, body: bytes | None = None) -> int:
        """Insert or replace one document and its leaves; returns its rid. Inside :meth:`_batch`,
        which inserts the leaf rows buffered here before its transaction commits.

        ``body``: ``pack_body(doc, ...)`` made elsewhere with this store's dictionary."""
        doc_id = doc["_id"]
        absent = self._absent  # ids that apply()/upsert() found missing: no lookup, nothing to delete
        row = None if absent is not None and doc_id in absent else \
            self.db.execute("SELECT rid FROM docs WHERE id=?", (doc_id,)).fetchone()
        first = (doc.get("paths") or doc.get("past_paths") or [None])[0]
        cols = (doc["kind"], 1 if doc.get("current", True) else 0, 1 if doc.get("deleted") else 0,
                doc.get("indexed_at"), first, body or self._pack(doc))
        if row:
            rid = row[0]
            self.db.execute("UPDATE docs SET kind=?, current=?, deleted=?, indexed_at=?, path0=?, body=? WHERE rid=?",
                            (*cols, rid))
            self._flush_leaves()  # it may have been written earlier in this batch
            self.db.execute("DELETE FROM leaves WHERE rid=?", (rid,))
            self.db.execute("DELETE FROM deps WHERE rid=?", (rid,))
        else:  # a new rid (documents are never deleted, so no rows refer to it yet)
            rid = self.db.execute("INSERT INTO docs(id, kind, current, deleted, indexed_at, path0, body) VALUES (?,?,?,?,?,?,?)",
                                  (doc_id, *cols)).lastrowid
            if absent is not None:
                absent.discard(doc_id)
        values = self._leaf_rows  # (rid, i, pid, t, n, sid) of every leaf, flat, after any buffered before
        pids, strs = self._pid_cache, self._str_cache
        reserved = reserved_leaves(doc, skip=_COLUMN_FIELDS)
        for i, leaf in enumerate([*doc.get("leaves", []), *reserved]):
            p = leaf["p"]
            pid = pids.get(p)
            if pid is None:
                pid = self._pid(p)
            t = leaf["t"]
            if t == "str":
                s = leaf["s"]
                sid = strs.get(s)
                if sid is None:
                    sid = self._sid(s, leaf["w"])
                values += (rid, i, pid, T_STR, leaf.get("n"), sid)
            else:
                code = (T_TRUE if leaf["b"] else T_FALSE) if t == "bool" else _TYPE_CODE[t]
                values += (rid, i, pid, code, leaf.get("n"), None)
        if row:
            self.db.execute("DELETE FROM doc_paths WHERE rid=?", (rid,))
        if self._maybe_live is not None:
            self._maybe_live.update(doc.get("paths", []))
        self.db.executemany("INSERT OR REPLACE INTO doc_paths VALUES (?,?,1)", [(p, rid) for p in doc.get("paths", [])])
        if doc.get("past_paths"):
            self.db.executemany("INSERT OR IGNORE INTO doc_paths VALUES (?,?,0)",
                                [(p, rid) for p in doc["past_paths"] if p not in doc.get("paths", [])])
        if doc.get("depends_on"):
            self.db.executemany("INSERT OR IGNORE INTO deps VALUES (?,?)", [(d, rid) for d in doc["depends_on"]])
        return rid

    def _flush_leaves(self) -> None:
        """Insert the buffered leaf rows: many rows per INSERT (chunks of 128, 64, ... 1 rows, a few
        distinct statements) across the documents of a batch is much cheaper than a few per document."""
        values, self._leaf_rows = self._leaf_rows, []
        j, left = 0, len(values) // 6
        for k in _LEAF_CHUNKS:
            while left >= k:
                self.db.execute(_LEAF_INSERT[k], values[j:j + 6 * k])
                j += 6 * k
                left -= k

    def _load(self, doc_id: str) -> dict | None:
        row = self.db.execute("SELECT body FROM docs WHERE id=?", (doc_id,)).fetchone()
        return self._unpack(row[0]) if row else None

    def _merge_into_existing(self, doc: dict, path: str | None) -> dict:
        """The document to write: ``doc``'s content with the paths the store already knows."""
        old = None if self._absent is not None and doc["_id"] in self._absent else self._load(doc["_id"])
        new = dict(doc)
        paths = list(old.get("paths", [])) if old else []
        past = list(old.get("past_paths", [])) if old else []
        for p in doc.get("paths", []):
            if p not in paths:
                paths.append(p)
        if path and path not in paths:
            paths.append(path)
        new["paths"] = paths
        new["past_paths"] = [p for p in past if p not in paths]
        if old and old.get("tags"):
            new["tags"] = sorted(set(old["tags"]) | set(doc.get("tags", [])))
        new["current"] = True
        new["deleted"] = False
        return new

    # ------------------------------------------------------------ bodies
    def _zd(self) -> bytes:
        """The zlib preset dictionary of this database (made from its first documents, kept in meta)."""
        if not self._zdict:  # cached only once set: another process may write the first document
            row = self.db.execute("SELECT v FROM meta WHERE k='zdict'").fetchone()
            self._zdict = row[0].encode() if row else None
        return self._zdict or b""

    def _pack(self, doc: dict) -> bytes:
        zd = self._zd()
        if not zd:  # first document: its body seeds the dictionary that makes small bodies compress well
            body = body_json(doc)
            zd = self._zdict = body[:32768].decode("utf-8", "ignore").encode()
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('zdict', ?)", (zd.decode(),))
        return pack_body(doc, zd)

    def body_dictionary(self) -> bytes | None:
        """The zlib dictionary bodies are packed with (None until the first document is written),
        for converter processes that pack bodies themselves (see ``PathUpdate.bodies``)."""
        with self._lock:
            return self._zd() or None

    def _unpack(self, blob: bytes) -> dict:
        if self._marked is None:
            row = self.db.execute("SELECT v FROM meta WHERE k='bodies'").fetchone()
            self._marked = row is not None and row[0] == "marked"
        return unpack_body(blob, self._zd(), marked=self._marked)

    def _transaction(self):
        return _Tx(self)

    def _rows_in(self, sql: str, values: Sequence) -> Iterator[tuple]:
        """The rows of ``sql`` whose ``IN ({})`` takes ``values``, asked 500 at a time (old SQLite
        allows 999 variables)."""
        for i in range(0, len(values), 500):
            part = values[i:i + 500]
            yield from self.db.execute(sql.format(",".join("?" * len(part))), part)

    @contextlib.contextmanager
    def _batch(self, ids: Iterable[str], paths: Iterable[str] = ()) -> Iterator[None]:
        """Around writing a batch (inside its transaction): its ids and paths are looked up at once,
        so that writing a new document needs no lookups and a new file no search for what it held
        before; its leaf rows are buffered and inserted at the end (see :meth:`_flush_leaves`)."""
        self._absent = set(ids)
        found = self._rows_in("SELECT id FROM docs WHERE id IN ({})", list(self._absent))
        self._absent.difference_update(r[0] for r in found)
        self._maybe_live = {r[0] for r in self._rows_in(
            "SELECT DISTINCT path FROM doc_paths WHERE live=1 AND path IN ({})", list(dict.fromkeys(paths)))}
        try:
            yield
            self._flush_leaves()
        finally:
            self._absent = self._maybe_live = None
            self._leaf_rows = []  # flushed already, unless the batch failed (and rolls back)

    def apply(self, updates: Iterable[PathUpdate]) -> None:
        updates = list(updates)
        if not updates:
            return
        with self._lock, self._transaction():
            paths = [os.path.abspath(up.path) for up in updates]
            with self._batch((d["_id"] for up in updates for d in up.docs), paths):
                self._apply(updates, paths)

    def _apply(self, updates: list[PathUpdate], paths: list[str]) -> None:
        series: dict[str, Sequence[SeriesRow]] = {}  # the last read of each run in the batch wins
        gone: set[str] = set()  # run documents deleted by this batch
        new = set(self._absent or ())  # documents not in the store before this batch: no series to delete
        for up, path in zip(updates, paths):
            for run_id, rows in up.series.items():
                series[run_id] = rows
                gone.discard(run_id)
            keep = {d["_id"] for d in up.docs}
            # a path that held nothing live (at the start of the batch or since) holds only these docs after
            search = self._maybe_live is None or path in self._maybe_live
            for j, doc in enumerate(up.docs):
                body = up.bodies[j] if j < len(up.bodies) else None
                # a prepared body is the document as converted: when it is new at its own path, nothing
                # is merged into it and it is written as is; otherwise it is made whole again and merged
                if body is not None and self._absent is not None and doc["_id"] in self._absent \
                        and doc.get("paths") == [path] and doc.get("past_paths") == [] \
                        and doc.get("current") is True and doc.get("deleted") is False:
                    self._write_doc(doc, body)
                    continue
                if body is not None:
                    doc = dict(self._unpack(body), leaves=doc.get("leaves", []))  # see slim_for_body
                self._write_doc(self._merge_into_existing(dict(doc, paths=[path]), path))
            # documents that no longer live at this path lose it
            rows = self.db.execute("SELECT d.id FROM doc_paths p JOIN docs d ON d.rid=p.rid "
                                   "WHERE p.path=? AND p.live=1", (path,)).fetchall() if search else []
            for (doc_id,) in rows:
                if doc_id in keep:
                    continue
                old = self._load(doc_id)
                if old is None:
                    continue
                old["paths"] = [p for p in old.get("paths", []) if p != path]
                if path not in old.get("past_paths", []):
                    old.setdefault("past_paths", []).append(path)
                if not old["paths"]:
                    old["current"] = False
                    old["deleted"] = up.state is None
                    if old["deleted"] and old.get("kind") == "run":
                        gone.add(doc_id)
                        series.pop(doc_id, None)
                old["leaves"] = self._leaves_of(doc_id)
                self._write_doc(old)
            if up.state is None:
                self.db.execute("DELETE FROM files WHERE path=?", (path,))
            else:
                self.db.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?)",
                                (path, up.state.size, up.state.mtime_ns, up.state.inode))
        if series or gone:
            self._write_series({**dict.fromkeys(gone, ()), **series}, new)

    def _write_series(self, series: dict[str, Sequence[SeriesRow]], new: Collection[str] = ()) -> None:
        """Replace the series of each run id (inside a transaction); ids not in ``docs`` are skipped, and
        runs in ``new`` (first written by this transaction) have nothing to delete."""
        rids = dict(self._rows_in("SELECT id, rid FROM docs WHERE id IN ({})", list(series)))
        for run_id, rows in series.items():
            rid = rids.get(run_id)
            if rid is None:
                continue
            if run_id not in new:
                self.db.execute("DELETE FROM series WHERE rid=?", (rid,))
            # many rows per INSERT (as for leaves): much cheaper than one statement per row
            flat = [x for row in rows for x in (rid, *row)]
            j, left = 0, len(rows)
            for k in _LEAF_CHUNKS:
                while left >= k:
                    self.db.execute(_SERIES_INSERT[k], flat[j:j + 5 * k])
                    j += 5 * k
                    left -= k

    def replace_series(self, series: dict[str, Sequence[SeriesRow]]) -> None:
        if not series:
            return
        with self._lock, self._transaction():
            self._write_series(series)

    def series(self, run_ids: Sequence[str], metrics: Sequence[str] | None = None) -> list[StoredPoint]:
        def run() -> list[StoredPoint]:
            sql = "SELECT metric, step, epoch, value FROM series WHERE rid=?"
            names: list[str] = []
            if metrics is not None:
                names = list(dict.fromkeys(metrics))
                if not names:
                    return []
                sql += f" AND metric IN ({','.join('?' * len(names))})"
            ids = list(dict.fromkeys(run_ids))
            by_id = dict(self._rows_in("SELECT id, rid FROM docs WHERE id IN ({})", ids))
            out: list[StoredPoint] = []
            for run_id in ids:  # one index range per run, in the order asked
                rid = by_id.get(run_id)
                if rid is not None:
                    rows = self.db.execute(sql + " ORDER BY metric, rowid", [rid, *names]).fetchall()
                    out += [(run_id, *row) for row in rows]
            return out
        return self._guard(run)

    def set_annotations(self, doc_id: str, annotations: dict[str, Any]) -> None:
        with self._lock, self._transaction(), self._batch([doc_id]):
            doc = self._load(doc_id)
            if doc is None:
                raise NotFound(f"no document with id {doc_id!r}; `ednaquery find` lists ids")
            doc.pop("annotations", None)
            if annotations:
                doc["annotations"] = annotations
            doc["leaves"] = self._leaves_of(doc_id)
            self._write_doc(doc)

    def _leaves_of(self, doc_id: str) -> list[dict]:
        """Rebuild a stored document's config leaves (reserved ones are regenerated on write)."""
        self._flush_leaves()
        rows = self.db.execute(
            "SELECT p.p, l.t, l.n, s.s, s.w FROM leaves l JOIN docs d ON d.rid=l.rid JOIN paths p ON p.pid=l.pid "
            "LEFT JOIN strs s ON s.sid=l.sid WHERE d.id=? ORDER BY l.i", (doc_id,)).fetchall()
        out = []
        for p, t, n, s, w in rows:
            if is_reserved_path(tuple(p.split(PATH_SEP))):
                continue
            leaf: dict[str, Any] = {"p": p, "t": _CODE_TYPE[t]}
            if t in (T_TRUE, T_FALSE):
                leaf["b"] = t == T_TRUE
            if n is not None:
                leaf["n"] = float(n)
            if s is not None:
                leaf["s"], leaf["w"] = s, w
            out.append(leaf)
        return out

    def upsert(self, docs: Iterable[dict]) -> None:
        docs = list(docs)
        if not docs:
            return
        with self._lock, self._transaction(), self._batch(d["_id"] for d in docs):
            for doc in docs:
                self._write_doc(self._merge_into_existing(doc, None))

    @contextlib.contextmanager
    def bulk_load(self, expected: int) -> Iterator[None]:
        """Around writing ``expected`` documents at once (a first scan of a big folder).

        When that is many compared with what the store holds, the leaf value indexes are
        dropped and built again at the end (also after an error): sorting once is several
        times faster than updating them leaf by leaf. Every batch is still its own
        transaction, and queries still answer meanwhile, only slower; if the writer is
        killed, the next open of the store builds the missing indexes again.
        """
        stored = self._guard(lambda: self.db.execute("SELECT max(rid) FROM docs").fetchone()[0]) or 0
        if expected < BULK_MIN_DOCS or expected * 2 < stored:
            yield
            return
        with self._lock, self._transaction():
            for name in _BULK_INDEXES:
                self.db.execute(f"DROP INDEX IF EXISTS {name}")
            # readers opening the store meanwhile leave the indexes to us (see bulk_marker.bulk_loader_alive)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('bulk_load', ?)", (bulk_marker(),))
        here = str(self.path.resolve())
        LOADING_HERE.add(here)
        # pages read through the memory map count in the writer's RSS (up to the whole file while the
        # indexes are built): read them into the bounded page cache instead while loading
        with self._lock:
            self.db.execute("PRAGMA mmap_size=0")
        try:
            try:
                yield
            except BaseException:
                with contextlib.suppress(Exception):  # the error that stopped the load is the one to see
                    self._create_bulk_indexes()
                raise
            finally:
                LOADING_HERE.discard(here)
            self._create_bulk_indexes()
        finally:
            with self._lock, contextlib.suppress(Exception):
                self.db.execute(f"PRAGMA mmap_size={_MMAP_SIZE}")

    def _create_bulk_indexes(self) -> None:
        # SQLite sorts an index's entries in memory-sized runs, in worker threads when allowed,
        # and merges them: smaller runs on two threads build these about 25% faster here
        with self._lock, self._transaction():
            self.db.execute(f"PRAGMA threads={min(4, os.cpu_count() or 1)}")
            self.db.execute("PRAGMA cache_size=-4096")
            try:
                for name in _BULK_INDEXES:
                    self.db.execute(_INDEX_SQL[name])
            finally:
                self.db.execute(f"PRAGMA cache_size={_CACHE_SIZE}")
                self.db.execute("PRAGMA threads=0")
            self.db.execute("DELETE FROM meta WHERE k='bulk_load'")

    # ------------------------------------------------------------ read path
    def _refresh_catalog(self) -> None:
        rows = self.db.execute("SELECT pid, p FROM paths WHERE pid > ?", (self._catalog_max,)).fetchall()
        for pid, p in rows:
            self._catalog.add(p, pid)
            self._catalog_max = max(self._catalog_max, pid)

    def _resolve(self, key: KeySpec) -> Tiers:
        return self._catalog.resolve(key)

    def _select(self, node: Node, options: FindOptions, *, distinct: bool) -> tuple[str, list]:
        """SQL for the set of matching, visible ``rid`` values (query set EXCEPT hidden documents).

        The hidden set (other kinds, past versions) is only subtracted when the store holds any:
        both are a few index seeks to check, while subtracting costs a sort of every match.
        ``distinct`` asks for each ``rid`` once (``count``); ``find`` reads the set with IN.
        """
        self._refresh_catalog()
        sql, params = compile_sql(node, self._resolve)
        hidden, hparams = [], []
        kinds = effective_kinds(node, options.kinds)
        other = [k for k in self._stored_kinds() if k not in kinds] if kinds else []
        if other:
            hidden.append(f"SELECT rid FROM docs WHERE kind IN ({','.join('?' * len(other))})")
            hparams += other
        if not options.all_versions and self.db.execute("SELECT 1 FROM docs WHERE current = 0 LIMIT 1").fetchone():
            hidden.append("SELECT rid FROM docs WHERE current = 0")
        if hidden:
            sql = f"SELECT * FROM ({sql}) EXCEPT SELECT * FROM ({' UNION '.join(hidden)})"
            params = params + hparams
        elif distinct and not yields_distinct(node):
            sql = f"SELECT DISTINCT rid FROM ({sql})"
        return sql, params

    def _stored_kinds(self) -> list[str]:
        """The distinct kinds in the store, by a loose scan of the docs_kind index (a seek per kind)."""
        return [r[0] for r in self.db.execute(
            "WITH RECURSIVE k(kind) AS (SELECT min(kind) FROM docs UNION ALL "
            "SELECT (SELECT min(kind) FROM docs WHERE kind > k.kind) FROM k WHERE k.kind IS NOT NULL) "
            "SELECT kind FROM k WHERE kind IS NOT NULL")]

    def _guard(self, fn, *args):
        """Run a query: within ``query_timeout`` (QueryTimeout past it), Ctrl-C stopping it as
        KeyboardInterrupt, and SQLite failures as StoreUnavailable."""
        with self._lock:
            if self._guarding:  # inside another guarded call: its limits apply
                return fn(*args)
            self._guarding = True
            self._deadline = time.monotonic() + self.query_timeout if self.query_timeout else None
            _SIGINT.clear()
            self.db.set_progress_handler(self._must_stop, _PROGRESS_EVERY)
            try:
                result = fn(*args)
            except sqlite3.OperationalError as e:
                self._raise_stop()
                if (err := too_large(e)) is not None:
                    raise err from None
                raise StoreUnavailable(f"index {self.path} is not usable: {e}") from None
            finally:
                self.db.set_progress_handler(None, 0)
                self._guarding = False
                self._deadline = None
            self._raise_stop(timed_out=False)
            return result

    def _must_stop(self) -> bool:
        """SQLite's progress handler: stop past the deadline or after Ctrl-C."""
        try:
            return _SIGINT.is_set() or (self._deadline is not None and time.monotonic() > self._deadline)
        except KeyboardInterrupt:
            _SIGINT.set()
            return True

    def _raise_stop(self, timed_out: bool = True) -> None:
        if _SIGINT.is_set():
            _SIGINT.clear()
            raise KeyboardInterrupt
        if timed_out and self._deadline is not None and time.monotonic() > self._deadline:
            raise QueryTimeout(f"the query ran past its {self.query_timeout:g} s limit and was stopped; "
                               "narrow it or raise --timeout") from None

    def count(self, node: Node, options: FindOptions | None = None) -> int:
        check_regexes(node)

        def run() -> int:
            sql, params = self._select(node, options or FindOptions(), distinct=True)
            return self.db.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
        return self._guard(run)

    def find(self, node: Node, options: FindOptions | None = None) -> list[dict]:
        options = options or FindOptions()
        check_regexes(node)

        def run() -> list[bytes]:
            rids = self._page_by_probe(node, options)
            if rids is None:
                where, params = self._select(node, options, distinct=False)
                order, oparams = self._order_by(options.sort)
                # ids first (a sort of small rows), then the bodies of just that page
                sql = f"SELECT d.rid FROM docs d WHERE d.rid IN ({where}) ORDER BY {order}"
                params = params + oparams
                if options.limit is not None or options.offset:
                    sql += " LIMIT ? OFFSET ?"
                    params += [options.limit if options.limit is not None else -1, options.offset]
                rids = [r[0] for r in self.db.execute(sql, params)]
            bodies = dict(self._rows_in("SELECT rid, body FROM docs WHERE rid IN ({})", rids))
            return [bodies[r] for r in rids]
        return [self._unpack(b) for b in self._guard(run)]

    def _page_by_probe(self, node: Node, options: FindOptions) -> list[int] | None:
        """A page in path order by walking ``docs_order`` and testing each document, or None.

        Broad queries fill a page after a few documents, where building their whole match set
        would sort up to every row. The walk gets a fixed budget of SQLite VM steps; over it (a
        selective query) it gives up, and the caller builds the set instead.
        """
        if (options.sort or options.limit is None or options.limit + options.offset > PROBE_MAX_ROWS
                or self.probe_budget <= 0):
            return None
        self._refresh_catalog()
        expr, params = compile_probe(node, self._resolve, "d")
        conds = [f"({expr})"]
        kinds = effective_kinds(node, options.kinds)
        if kinds:
            conds.append(f"+d.kind IN ({','.join('?' * len(kinds))})")
            params = params + list(kinds)
        if not options.all_versions:
            conds.append("+d.current = 1")  # "+": walk docs_order, not docs_current
        sql = f"SELECT d.rid FROM docs d WHERE {' AND '.join(conds)} ORDER BY {_ORDER} LIMIT ? OFFSET ?"
        steps = [0]

        def over_budget() -> bool:
            steps[0] += 1
            return steps[0] > self.probe_budget or self._must_stop()

        self.db.set_progress_handler(over_budget, 1000)
        try:
            return [r[0] for r in self.db.execute(sql, params + [options.limit, options.offset])]
        except sqlite3.OperationalError as e:
            if "interrupted" not in str(e) and too_large(e) is None:
                raise
            self._raise_stop()  # Ctrl-C or the time limit, not the budget
            return None  # over budget, or too big to test per document: the match-set plan decides
        finally:
            self.db.set_progress_handler(self._must_stop, _PROGRESS_EVERY)

    def _order_by(self, sort: Sequence[SortKey]) -> tuple[str, list]:
        parts: list[str] = []
        params: list = []
        for sk in sort:
            field = sk.key.reserved_field()
            if field in ("id", "path"):
                parts.append(("d.id" if field == "id" else "d.path0") + (" DESC" if sk.descending else " ASC"))
                continue
            tiers = self._resolve(sk.key)
            if not tiers:
                continue
            agg = "max" if sk.descending else "min"
            on, on_params = leaf_filter(tiers)
            num = f"(SELECT {agg}(l.n) FROM leaves l WHERE l.rid=d.rid AND {on})"
            txt = (f"(SELECT {agg}(s.s) FROM leaves l JOIN strs s ON s.sid=l.sid "
                   f"WHERE l.rid=d.rid AND {on})")
            direction = "DESC" if sk.descending else "ASC"
            parts += [f"{num} IS NULL", f"{num} {direction}", f"{txt} IS NULL", f"{txt} {direction}"]
            params += on_params * 4
        parts.append(_ORDER)  # served by the docs_order index when no key sort comes first
        return ", ".join(parts), params

    def get(self, id_or_prefix: str) -> dict:
        prefix = id_or_prefix.strip()
        if len(prefix) < 4:
            raise UsageError(f"id prefix {prefix!r} is too short: give at least 4 characters")
        def run() -> list:
            exact = self.db.execute("SELECT body FROM docs WHERE id=?", (prefix,)).fetchone()
            if exact:
                return [exact]
            hi = prefix + "\U0010ffff"
            return self.db.execute("SELECT body FROM docs WHERE id >= ? AND id < ? ORDER BY current DESC, id LIMIT 11",
                                   (prefix, hi)).fetchall()
        rows = self._guard(run)
        if not rows:
            raise NotFound(f"no document with id {prefix!r}; `ednaquery find` lists ids")
        docs = [self._unpack(r[0]) for r in rows]
        if len(docs) > 1:
            raise AmbiguousId(prefix, [d["_id"] for d in docs])
        return docs[0]

    def best_rows(self, node: Node, options: FindOptions, metric: KeySpec, by: KeySpec | None,
                  minimize: bool) -> list[tuple[str, float, str, str]]:
        def run() -> list[tuple[str, float, str, str]]:
            match = self._select(node, options, distinct=False)
            tiers = self._resolve(metric)
            if not tiers:
                return []
            group = self._resolve(by) if by is not None else None
            ranks, group_pids = self._catalog.best_handles(tiers, by, group)
            sql, params = best_rows_sql(match, tiers, ranks, group, group_pids, minimize)
            return [tuple(r) for r in self.db.execute(sql, params)]
        return self._guard(run)

    def key_paths(self) -> list[tuple[str, ...]]:
        with self._lock:
            self._refresh_catalog()
            return self._catalog.key_paths()

    def reopen(self) -> SQLiteStore:
        """A second connection to the same file: this one runs one query at a time (its lock), while WAL
        lets two connections read at once."""
        return SQLiteStore(self.path, create=False, busy_timeout_ms=self._busy_timeout_ms)

    def key_stats(self, pattern: str | None = None, sample: int = 3) -> list[KeyStat]:
        self._refresh_catalog()
        spec = None
        if pattern:
            from ednaquery.query.parser import parse_key

            spec = parse_key(pattern)

        def run() -> list[KeyStat]:
            rows = self.db.execute(
                "SELECT l.pid, l.t, count(DISTINCT l.rid) FROM leaves l JOIN docs d ON d.rid=l.rid "
                "WHERE d.current=1 AND d.kind!='error' GROUP BY l.pid, l.t").fetchall()
            byp: dict[int, KeyStat] = {}
            pmap = dict(self.db.execute("SELECT pid, p FROM paths").fetchall())
            docs_per_pid: dict[int, int] = dict(self.db.execute(
                "SELECT l.pid, count(DISTINCT l.rid) FROM leaves l JOIN docs d ON d.rid=l.rid "
                "WHERE d.current=1 AND d.kind!='error' GROUP BY l.pid").fetchall())
            for pid, t, c in rows:
                path = tuple(pmap[pid].split(PATH_SEP))
                if is_reserved_path(path) or (spec is not None and not key_matches(spec, path)):
                    continue
                st = byp.setdefault(pid, KeyStat(path=path, count=docs_per_pid.get(pid, 0)))
                st.types[_CODE_TYPE[t]] = st.types.get(_CODE_TYPE[t], 0) + c
            for pid, st in byp.items():
                ex = self.db.execute(
                    "SELECT DISTINCT coalesce(s.s, l.n, CASE l.t WHEN 2 THEN 'true' WHEN 1 THEN 'false' END) "
                    "FROM leaves l LEFT JOIN strs s ON s.sid=l.sid WHERE l.pid=? LIMIT ?", (pid, sample)).fetchall()
                st.examples = [e[0] for e in ex if e[0] is not None]
            return sorted(byp.values(), key=lambda s: (-s.count, s.path))
        return self._guard(run)

    def stats(self) -> dict:
        def run() -> dict:
            out: dict[str, Any] = {"store": self.display_uri}
            for kind, current, deleted, c in self.db.execute(
                    "SELECT kind, current, deleted, count(*) FROM docs GROUP BY kind, current, deleted"):
                state = "current" if current else ("deleted" if deleted else "superseded")
                out.setdefault("documents", {}).setdefault(kind, {})[state] = c
            out["leaves"] = self.db.execute("SELECT count(*) FROM leaves").fetchone()[0]
            out["distinct_keys"] = self.db.execute("SELECT count(*) FROM paths").fetchone()[0]
            out["files"] = self.db.execute("SELECT count(*) FROM files").fetchone()[0]
            try:
                out["size_bytes"] = sum(os.path.getsize(str(self.path) + s) for s in ("", "-wal")
                                        if os.path.exists(str(self.path) + s))
            except OSError:
                pass
            return out
        return self._guard(run)

    def file_states(self, root: str | None = None) -> dict[str, FileState]:
        def run() -> dict[str, FileState]:
            if root:
                r = os.path.abspath(root).rstrip(os.sep) + os.sep
                rows = self.db.execute("SELECT * FROM files WHERE path >= ? AND path < ?", (r, r + "\U0010ffff"))
            else:
                rows = self.db.execute("SELECT * FROM files")
            return {p: FileState(s, m, i) for p, s, m, i in rows}
        return self._guard(run)

    def history(self, path: str) -> list[dict]:
        path = os.path.abspath(path)
        rows = self._guard(lambda: self.db.execute(
            "SELECT d.body FROM doc_paths p JOIN docs d ON d.rid=p.rid WHERE p.path=? "
            "ORDER BY p.live DESC, d.indexed_at DESC", (path,)).fetchall())
        return [self._unpack(r[0]) for r in rows]

    def dependants(self, paths: Sequence[str]) -> list[str]:
        def run() -> set[str]:
            out: set[str] = set()
            if self.db.execute("SELECT 1 FROM deps LIMIT 1").fetchone() is None:
                return out  # no document depends on any file (a first scan): nothing to look up
            out.update(r[0] for r in self._rows_in(
                "SELECT dp.path FROM deps x JOIN doc_paths dp ON dp.rid=x.rid AND dp.live=1 WHERE x.dep IN ({})",
                [os.path.abspath(p) for p in paths]))
            return out
        return sorted(self._guard(run))

    def errors(self) -> list[dict]:
        rows = self._guard(lambda: self.db.execute(
            "SELECT body FROM docs WHERE kind='error' AND current=1 ORDER BY id").fetchall())
        return [self._unpack(r[0]) for r in rows]

    def ping(self) -> None:
        self._guard(lambda: self.db.execute("SELECT 1").fetchone())

    def reopen_uri(self) -> str | None:
        return str(self.path.resolve())

    def job_home(self) -> JobHome:
        return JobHome(sqlite_path=str(self.path))

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ROLLBACK on error): one writer at a time, atomically."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(f"index {self.store.path} is busy or read-only: {e}") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.store.db.execute("COMMIT")
        else:
            self.store.db.execute("ROLLBACK")
            self.store._str_cache.clear()
            self.store._pid_cache.clear()
            self.store._zdict = None
