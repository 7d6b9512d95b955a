"""The MongoDB store (pymongo): a team's shared index, the same interface as the embedded store.

Collections in the URI's database (default ``ednaquery``):

- ``docs``: one document per config/run/error, as :mod:`ednaquery.documents` builds it, plus
  the reserved-field leaves (``id``, ``kind``, ``path``...) appended to ``leaves`` and three
  internal fields (``_rev`` for optimistic concurrency, ``path0``/``nopath`` for the default
  result order). Reads never return ``leaves`` or the internal fields.
- ``keycat``: every distinct leaf path once (``{_id: path}``); queries resolve keys against it
  in Python (:class:`~ednaquery.store.catalog.PathCatalog`), then ask ``p $in [...]``.
- ``files``: ``{_id: path, size, mtime_ns, inode, ids}`` for the indexer's reconcile walk.
- ``series``: runs' metric series, never in the run document: one document per run, metric and
  bucket of up to :data:`SERIES_BUCKET` values in logging order (``{run, metric, g, b, step (the
  bucket's first), steps: [...], epochs: [...], values: [...]}``), indexed on ``(run, metric,
  step)``. A run's series is replaced whenever its folder is read again (the new generation ``g``
  is written before the old one is deleted; readers take the newest), and deleted with the run.

Writes are read-modify-write per batch with ``bulk_write(ordered=False)``: each replacement is
conditioned on the ``_rev`` that was read, so a concurrent writer turns it into a duplicate-key
error, which is retried on fresh data. A document that cannot be written is logged and reported
in one line after the rest of the batch has been written. Errors from pymongo become one-line
:class:`~ednaquery.errors.StoreUnavailable` / :class:`~ednaquery.errors.EdnaError` messages that
never contain the URI's password. A ``mongomock.MongoClient`` can be injected for tests.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from ednaquery.documents import ID_VERSION, PATH_SEP, reserved_leaves
from ednaquery.errors import AmbiguousId, EdnaError, NotFound, QueryTimeout, StoreUnavailable, UsageError
from ednaquery.keys import (
    RESERVED_FIELDS,
    RESERVED_PREFIX,
    KeySpec,
    is_reserved_path,
    key_matches,
)
from ednaquery.masking import mask_uri, redact
from ednaquery.query.ast import Node
from ednaquery.store import id_version
from ednaquery.store.base import (
    FileState,
    FindOptions,
    JobHome,
    KeyStat,
    PathUpdate,
    SeriesRow,
    Store,
    StoredPoint,
)
from ednaquery.store.catalog import PathCatalog, Tiers
from ednaquery.store.mongo_compile import (
    DEFAULT_ORDER,
    NOTHING,
    best_pipeline,
    escape_regex,
    find_filter,
    needs_sort_pipeline,
    sort_pipeline,
)

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "ednaquery"
BATCH = 500  # path updates (or documents) per read-modify-write round
MAX_RETRIES = 5  # rounds for documents another writer changed under us
CATALOG_TTL_S = 30.0  # re-read the key catalog at least this often
_INTERNAL = ("leaves", "_rev", "path0", "nopath")  # stored, never returned


def _projection() -> dict:
    """A fresh projection dict each call (mongomock mutates the one it is given)."""
    return {name: 0 for name in _INTERNAL}

_DUPLICATE_KEY = 11000
_ID_LEAF = RESERVED_PREFIX + "id"
_AUTH_CODES = {13, 18}  # Unauthorized, AuthenticationFailed

#: (name, keys) of every index ``ensure_indexes`` creates on ``docs``
INDEXES: list[tuple[str, list[tuple[str, int]]]] = [
    ("leaves_p_n", [("leaves.p", 1), ("leaves.n", 1)]),
    ("leaves_p_s", [("leaves.p", 1), ("leaves.s", 1)]),
    ("leaves_p_w", [("leaves.p", 1), ("leaves.w", 1)]),
    ("leaves_p_t", [("leaves.p", 1), ("leaves.t", 1)]),
    ("kind_current", [("kind", 1), ("current", 1)]),
    ("paths", [("paths", 1)]),
    ("past_paths", [("past_paths", 1)]),
    ("depends_on", [("depends_on", 1)]),
]

#: the index of the ``series`` collection
SERIES_INDEX = ("run_metric_step", [("run", 1), ("metric", 1), ("step", 1)])
#: series values per ``series`` document
SERIES_BUCKET = 1000

_DB_IN_URI = re.compile(r"^mongodb(?:\+srv)?://[^/?#]*/([^?#]*)", re.IGNORECASE)


def database_name(uri: str) -> str:
    """The database a URI names (``mongodb://host/NAME?...``), or ``ednaquery``."""
    m = _DB_IN_URI.match(uri)
    name = unquote(m.group(1)) if m else ""
    return name or DEFAULT_DATABASE


# ------------------------------------------------------------------ bulk writes
# An op is ("replace", filter, doc) [upsert], ("update", filter, update) [upsert] or ("delete", filter).
Op = tuple


def _is_mongomock(coll: Any) -> bool:
    return type(coll).__module__.split(".")[0] == "mongomock"


def _to_pymongo(op: Op) -> Any:
    from pymongo import DeleteOne, ReplaceOne, UpdateOne

    if op[0] == "replace":
        return ReplaceOne(op[1], op[2], upsert=True)
    if op[0] == "update":
        return UpdateOne(op[1], op[2], upsert=True)
    return DeleteOne(op[1])


def _one_by_one(coll: Any, ops: Sequence[Op]) -> list[tuple[int, int | None, str]]:
    """Run ops one at a time, collecting per-op errors like a BulkWriteError would."""
    from bson.errors import InvalidDocument
    from pymongo.errors import ConnectionFailure, OperationFailure

    errors = []
    for i, op in enumerate(ops):
        try:
            if op[0] == "replace":
                coll.replace_one(op[1], op[2], upsert=True)
            elif op[0] == "update":
                coll.update_one(op[1], op[2], upsert=True)
            else:
                coll.delete_one(op[1])
        except ConnectionFailure:
            raise
        except OperationFailure as e:
            errors.append((i, e.code, _first_line(str(e.details.get("errmsg") if e.details else e))))
        except (InvalidDocument, ValueError, TypeError, OverflowError) as e:
            errors.append((i, None, _first_line(str(e))))
    return errors


def bulk(coll: Any, ops: Sequence[Op]) -> list[tuple[int, int | None, str]]:
    """``bulk_write(ordered=False)``; returns ``(op index, error code, message)`` per failed op.

    A document pymongo cannot even encode (``InvalidDocument``) fails the whole request before
    anything is sent, so that batch is replayed one op at a time to isolate it. mongomock's
    ``bulk_write`` does not accept pymongo 4.x operations, so with it ops run one by one.
    """
    if not ops:
        return []
    if _is_mongomock(coll):
        return _one_by_one(coll, ops)
    from bson.errors import InvalidDocument
    from pymongo.errors import BulkWriteError

    try:
        coll.bulk_write([_to_pymongo(op) for op in ops], ordered=False)
        return []
    except BulkWriteError as e:
        details = e.details or {}
        for wce in details.get("writeConcernErrors") or []:
            log.warning("MongoDB write concern error: %s", _first_line(str(wce.get("errmsg", wce))))
        return [(w.get("index", -1), w.get("code"), _first_line(str(w.get("errmsg", ""))))
                for w in details.get("writeErrors") or []]
    except (InvalidDocument, ValueError, OverflowError):
        return _one_by_one(coll, ops)


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i: i + n]


# ------------------------------------------------------------------ document state transitions


def _merge(old: dict | None, doc: dict, path: str | None) -> dict:
    """``doc``'s content with the paths (and tags) the store already knows; current again."""
    new = dict(doc)
    paths = list(old.get("paths") or []) if old else []
    past = list(old.get("past_paths") or []) if old else []
    for p in [*(doc.get("paths") or []), *([path] if path else [])]:
        if p not in paths:
            paths.append(p)
    new["paths"] = paths
    new["past_paths"] = [p for p in past if p not in paths]
    if old and old.get("tags"):
        new["tags"] = sorted(set(old["tags"]) | set(doc.get("tags") or []))
    new["current"] = True
    new["deleted"] = False
    return new


def _drop(old: dict | None, path: str, gone: bool) -> dict | None:
    """``old`` no longer at ``path`` (kept in past_paths); not current once it has no path."""
    if old is None or path not in (old.get("paths") or []):
        return None
    new = dict(old)
    new["paths"] = [p for p in old.get("paths") or [] if p != path]
    past = list(old.get("past_paths") or [])
    if path not in past:
        past.append(path)
    new["past_paths"] = past
    if not new["paths"]:
        new["current"] = False
        new["deleted"] = gone
    return new


def _replay(old: dict | None, steps: list[tuple]) -> dict | None:
    """Apply a document's planned steps (``("put", doc, path)`` / ``("drop", path, gone)``) in order."""
    cur, changed = old, False
    for step in steps:
        nxt = _merge(cur, step[1], step[2]) if step[0] == "put" else _drop(cur, step[1], step[2])
        if nxt is not None:
            cur, changed = nxt, True
    return cur if changed else None


def stored_form(doc: dict, rev: int) -> dict:
    """The document as kept in ``docs``: config leaves + reserved leaves, revision, default-order fields."""
    out = {k: v for k, v in doc.items() if k not in _INTERNAL}
    leaves = [lf for lf in doc.get("leaves") or [] if not lf["p"].startswith(RESERVED_PREFIX)]
    reserved = [lf for lf in reserved_leaves(out) if lf["p"] != _ID_LEAF]  # `id` is answered by _id
    first = (out.get("paths") or out.get("past_paths") or [None])[0]
    out["path0"] = first
    out["nopath"] = 0 if first is not None else 1
    out["leaves"] = leaves + reserved
    out["_rev"] = rev
    return out


def _key_spec(pattern: str) -> KeySpec:
    from ednaquery.query.parser import parse_key  # lazy: only `keys PATTERN` needs it

    return parse_key(pattern)


def _example(leaf_id: dict) -> Any:
    if leaf_id.get("s") is not None:
        return leaf_id["s"]
    if leaf_id.get("n") is not None:
        return float(leaf_id["n"])
    if leaf_id.get("t") == "bool":
        return "true" if leaf_id.get("b") else "false"
    return None


class MongoStore(Store):
    """Store backed by MongoDB (or an injected pymongo-compatible client such as mongomock)."""

    def __init__(self, uri: str, timeout_ms: int = 5000, *, client: Any = None,
                 database: str | None = None) -> None:
        self.uri = uri
        self.display_uri = mask_uri(uri)
        self._owns_client = client is None
        if client is None:
            from pymongo import MongoClient
            from pymongo.errors import ConfigurationError, PyMongoError

            try:
                client = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                     retryWrites=True, appname="ednaquery")
            except ConfigurationError as e:
                reason = _first_line(self._scrub(str(e)))
                if "dns" in reason.lower():  # mongodb+srv:// resolves its hosts right away
                    raise StoreUnavailable(f"cannot reach MongoDB at {self.display_uri}: {reason}; "
                                           "is the host name right?") from None
                raise UsageError(f"invalid MongoDB URI {self.display_uri}: {reason}") from None
            except (PyMongoError, ValueError, TypeError) as e:
                raise UsageError(f"cannot use MongoDB URI {self.display_uri}: {self._scrub(str(e))}") from None
        self.client = client
        self.db = client[database or database_name(uri)]
        self.docs = self.db["docs"]
        self.files = self.db["files"]
        self.keycat = self.db["keycat"]
        self.series_coll = self.db["series"]
        self._lock = threading.RLock()
        self._catalog = PathCatalog()
        for name in RESERVED_FIELDS:
            self._catalog.add(RESERVED_PREFIX + name)
        self._catalog_at: float | None = None
        self._known_keys: set[str] = set()
        self._indexes: list[str] | None = None

    # ------------------------------------------------------------ errors
    def _scrub(self, text: str) -> str:
        """Remove the password (raw and URL-decoded) and the full URI from a message."""
        return redact(text, [self.uri])

    def _reason(self, exc: BaseException) -> str:
        text = str(exc).split(", Timeout:")[0]
        text = re.sub(r"\s*\(configured timeouts:[^)]*\)", "", text)
        text = re.sub(r"^[\w.\-\[\]:]+:\d+: ", "", text)
        text = re.sub(r"\[Errno -?\d+\]\s*", "", text)
        text = _first_line(self._scrub(text), 160).rstrip(". ")
        return (text[:1].lower() + text[1:]) if text else type(exc).__name__

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn pymongo errors into one-line ednaquery errors (no traceback chain, no password)."""
        from pymongo.errors import (
            ConfigurationError,
            ConnectionFailure,
            ExecutionTimeout,
            OperationFailure,
            PyMongoError,
            ServerSelectionTimeoutError,
        )

        try:
            yield
        except EdnaError:
            raise
        except ServerSelectionTimeoutError as e:
            err = StoreUnavailable(f"cannot reach MongoDB at {self.display_uri}: {self._reason(e)}; is it running?")
        except ConnectionFailure as e:  # AutoReconnect, NetworkTimeout...
            err = StoreUnavailable(f"lost the connection to MongoDB at {self.display_uri} during {what}: "
                                   f"{self._reason(e)}; is it running?")
        except ExecutionTimeout:
            err = QueryTimeout(f"the query ran past its {self.query_timeout or 0:g} s limit and MongoDB stopped it; "
                               "narrow it or raise --timeout")
        except OperationFailure as e:
            msg = (e.details or {}).get("errmsg") or str(e)
            low = msg.lower()
            if e.code in _AUTH_CODES or "authenticat" in low or "not authorized" in low:
                err = StoreUnavailable(f"MongoDB at {self.display_uri} refused access ({what}): "
                                       f"{self._reason(Exception(msg))}; check the user, password and "
                                       "authSource in the URI, and the user's roles")
            else:
                err = EdnaError(f"MongoDB error during {what} at {self.display_uri}: {self._reason(Exception(msg))}")
        except ConfigurationError as e:
            err = UsageError(f"MongoDB URI {self.display_uri}: {self._reason(e)}")
        except PyMongoError as e:
            err = EdnaError(f"MongoDB error during {what} at {self.display_uri}: {self._reason(e)}")
        else:
            return
        raise err from None

    # ------------------------------------------------------------ indexes
    def ensure_indexes(self) -> list[str]:
        """Create the indexes (idempotent) and return their names, as listed in the docs."""
        from pymongo import IndexModel
        from pymongo.errors import OperationFailure

        models = [IndexModel(keys, name=name) for name, keys in INDEXES]
        with self._errors("index creation"):
            try:
                self.docs.create_indexes(models)
                self.series_coll.create_indexes([IndexModel(SERIES_INDEX[1], name=SERIES_INDEX[0])])
            except OperationFailure as e:
                if e.code in _AUTH_CODES:
                    log.info("no permission to create indexes on %s; using those that exist", self.display_uri)
                elif e.code in (85, 86):  # same keys under another name / same name, other keys
                    log.warning("an index on %s conflicts with ednaquery's: %s", self.display_uri,
                                self._reason(e))
                else:
                    raise
        self._indexes = [name for name, _ in INDEXES]
        return list(self._indexes)

    def _ready(self) -> None:
        if self._indexes is None:
            with self._lock:
                if self._indexes is None:
                    self.ensure_indexes()
                    self._migrate_ids()

    def _migrate_ids(self) -> None:
        """A store whose ids an older rule made: say so once, and mark every file for re-reading
        (:mod:`ednaquery.store.id_version`). A user who may not write leaves it to one who may."""
        from pymongo.errors import DuplicateKeyError, OperationFailure

        meta = self.db["meta"]
        with self._errors("checking the config id version"):
            row = meta.find_one({"_id": "ids"})
            stored = row.get("v") if row else None
            if not id_version.outdated(stored):
                return
            try:
                fresh = row is None and self.files.find_one({}, {"_id": 1}) is None \
                    and self.docs.find_one({}, {"_id": 1}) is None
                files = 0 if fresh else \
                    self.files.update_many({}, {"$set": {"size": id_version.STALE_SIZE}}).modified_count
                if row is None:
                    try:
                        meta.insert_one({"_id": "ids", "v": ID_VERSION})
                        won = True
                    except DuplicateKeyError:  # another process migrated first
                        won = False
                else:
                    won = meta.update_one({"_id": "ids", "v": stored},
                                          {"$set": {"v": ID_VERSION}}).modified_count == 1
            except OperationFailure as e:
                if e.code not in _AUTH_CODES:
                    raise
                log.info("cannot mark %s for re-indexing (read-only user)", self.display_uri)
                return
            if not won:
                return
            moved = self._rekey_pathless()
            if files or moved or self.docs.find_one({}, {"_id": 1}) is not None:
                id_version.announce(self.display_uri, stored, files, moved)

    def _rekey_pathless(self) -> int:
        """Give each current config without a file its id under this rule; the old id stays as a past version."""
        olds = list(self.docs.find({"kind": "config", "current": True, "nopath": 1}, _projection()))
        moved = 0
        for old in olds:
            new = id_version.rekeyed(old)
            if new is None:
                continue
            held = None if new["_id"] == old["_id"] else self.docs.find_one({"_id": new["_id"]}, {"current": 1})
            if held is None or not held.get("current", True):  # never overwrite a live config
                self.upsert([new])
            if new["_id"] != old["_id"]:
                self.docs.update_one({"_id": old["_id"]}, {"$set": {"current": False}})
            moved += 1
        return moved

    # ------------------------------------------------------------ key catalog
    def _load_catalog(self) -> None:
        with self._errors("reading the key catalog"):
            paths = [d["_id"] for d in self.keycat.find({}, {"_id": 1})]
        with self._lock:
            self._catalog.update((p, p) for p in paths)
            self._known_keys.update(paths)
            self._catalog_at = time.monotonic()

    def _resolver(self) -> Callable[[KeySpec], Tiers]:
        """A key resolver for one query: a key that resolves to nothing re-reads the catalog once."""
        if self._catalog_at is None or time.monotonic() - self._catalog_at > CATALOG_TTL_S:
            self._load_catalog()
        reloaded = False

        def resolve(key: KeySpec) -> Tiers:
            nonlocal reloaded
            with self._lock:
                hit = self._catalog.resolve(key)
            if not hit and not reloaded:
                reloaded = True
                self._load_catalog()
                with self._lock:
                    hit = self._catalog.resolve(key)
            return hit

        return resolve

    def _record_keys(self, docs: Iterable[dict]) -> None:
        new = sorted({lf["p"] for d in docs for lf in d.get("leaves") or []} - self._known_keys)
        if not new:
            return
        errors = bulk(self.keycat, [("replace", {"_id": p}, {"_id": p}) for p in new])
        bad = {i for i, code, _ in errors if code != _DUPLICATE_KEY}
        for i, _, msg in errors:
            if i in bad:
                log.warning("could not record key path %r: %s", new[i], msg)
        ok = [p for i, p in enumerate(new) if i not in bad]
        with self._lock:
            self._known_keys.update(ok)
            self._catalog.update((p, p) for p in ok)

    # ------------------------------------------------------------ writes
    def apply(self, updates: Iterable[PathUpdate]) -> None:
        updates = list(updates)
        if not updates:
            return
        self._ready()
        failed: list[tuple[str, str]] = []
        for batch in _chunks(updates, BATCH):
            failed += self._apply_batch(batch)
        self._raise_failed(failed)

    def upsert(self, docs: Iterable[dict]) -> None:
        docs = list(docs)
        if not docs:
            return
        self._ready()
        failed: list[tuple[str, str]] = []
        for batch in _chunks(docs, BATCH):
            with self._errors("writing documents"):
                ids = list({d["_id"] for d in batch})
                state = {d["_id"]: d for d in self.docs.find({"_id": {"$in": ids}})}
            plan: dict[str, list[tuple]] = {}
            for doc in batch:
                plan.setdefault(doc["_id"], []).append(("put", doc, None))
            failed += self._commit(state, plan, {})
        self._raise_failed(failed)

    def set_annotations(self, doc_id: str, annotations: dict[str, Any]) -> None:
        self._ready()
        for _ in range(MAX_RETRIES):
            with self._errors("writing tags and notes"):
                old = self.docs.find_one({"_id": doc_id})
            if old is None:
                raise NotFound(f"no document with id {doc_id!r}; `ednaquery find` lists ids")
            new = {k: v for k, v in old.items() if k != "annotations"}
            if annotations:
                new["annotations"] = annotations
            stored = stored_form(new, int(old.get("_rev") or 0) + 1)
            with self._errors("writing tags and notes"):
                self._record_keys([stored])
                done = self.docs.replace_one({"_id": doc_id, "_rev": old.get("_rev")}, stored).matched_count
            if done:
                return
        raise EdnaError(f"document {doc_id} kept changing under {MAX_RETRIES} concurrent writes; try again")

    def _apply_batch(self, batch: Sequence[PathUpdate]) -> list[tuple[str, str]]:
        norm = [(os.path.abspath(u.path), u) for u in batch]
        paths = list({p for p, _ in norm})
        ids = list({d["_id"] for _, u in norm for d in u.docs})
        with self._errors("writing documents"):
            # two single-index lookups (not one $or): what the documents are, and who holds the paths
            original = {d["_id"]: d for d in self.docs.find({"_id": {"$in": ids}})} if ids else {}
            for d in self.docs.find({"paths": {"$in": paths}}):
                original.setdefault(d["_id"], d)
        state: dict[str, dict | None] = dict(original)
        holders: dict[str, set[str]] = {}  # path -> ids that may hold it (checked against state)
        for doc_id, d in original.items():
            for p in d.get("paths") or []:
                holders.setdefault(p, set()).add(doc_id)
        plan: dict[str, list[tuple]] = {}
        touched: dict[str, set[str]] = {}  # doc id -> paths whose update involves it
        for path, up in norm:
            keep = {d["_id"] for d in up.docs}
            gone = up.state is None
            for doc in up.docs:
                step = ("put", dict(doc, paths=[path]), path)
                plan.setdefault(doc["_id"], []).append(step)
                state[doc["_id"]] = _merge(state.get(doc["_id"]), step[1], path)
                touched.setdefault(doc["_id"], set()).add(path)
                for p in state[doc["_id"]]["paths"]:
                    holders.setdefault(p, set()).add(doc["_id"])
            for doc_id in sorted(holders.get(path, set()) - keep):
                cur = state.get(doc_id)
                if cur is None or path not in (cur.get("paths") or []):
                    continue
                plan.setdefault(doc_id, []).append(("drop", path, gone))
                state[doc_id] = _drop(cur, path, gone)
                touched.setdefault(doc_id, set()).add(path)
        files: dict[str, tuple] = {}
        for path, up in norm:
            if up.state is None:
                files[path] = ("delete", {"_id": path})
            else:
                files[path] = ("replace", {"_id": path},
                               {"_id": path, "size": up.state.size, "mtime_ns": up.state.mtime_ns,
                                "inode": up.state.inode, "ids": [d["_id"] for d in up.docs]})
        failed = self._commit(original, plan, files, touched)
        bad = {doc_id for doc_id, _ in failed}
        series: dict[str, Sequence[SeriesRow]] = {}
        for _, up in norm:
            series.update(up.series)
        for doc_id, d in state.items():  # runs whose documents this batch marked deleted lose their series
            if d is not None and doc_id in plan and d.get("deleted") and d.get("kind") == "run":
                series[doc_id] = ()
        series = {k: v for k, v in series.items() if k not in bad}
        if series:
            self.replace_series(series)
        return failed

    def replace_series(self, series: dict[str, Sequence[SeriesRow]]) -> None:
        if not series:
            return
        self._ready()
        stamp = time.time_ns()  # this write's generation: readers take the newest of a run's metric
        buckets = []
        for run_id, rows in series.items():
            by_metric: dict[str, list[SeriesRow]] = {}
            for row in rows:
                by_metric.setdefault(row[0], []).append(row)
            for metric, mrows in by_metric.items():
                for b, i in enumerate(range(0, len(mrows), SERIES_BUCKET)):
                    part = mrows[i:i + SERIES_BUCKET]
                    buckets.append({"run": run_id, "metric": metric, "g": stamp, "b": b, "step": part[0][1],
                                    "steps": [r[1] for r in part], "epochs": [r[2] for r in part],
                                    "values": [r[3] for r in part]})
        with self._errors("writing metric series"):  # new first, then the old: a reader never sees none
            if buckets:
                self.series_coll.insert_many(buckets, ordered=False)
            self.series_coll.delete_many({"run": {"$in": list(series)}, "g": {"$ne": stamp}})

    def series(self, run_ids: Sequence[str], metrics: Sequence[str] | None = None) -> list[StoredPoint]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return []
        self._ready()
        flt: dict[str, Any] = {"run": {"$in": ids}}
        if metrics is not None:
            flt["metric"] = {"$in": list(metrics)}
        with self._errors("reading metric series"):
            buckets = list(self.series_coll.find(flt, {"_id": 0}))
        newest: dict[tuple[str, str], int] = {}  # during a replacement both generations are there
        for d in buckets:
            key = (d["run"], d["metric"])
            newest[key] = max(newest.get(key, d["g"]), d["g"])
        buckets = [d for d in buckets if d["g"] == newest[(d["run"], d["metric"])]]
        order = {run_id: i for i, run_id in enumerate(ids)}
        buckets.sort(key=lambda d: (order[d["run"]], d["metric"], d["b"]))
        return [(d["run"], d["metric"], step, epoch, value)
                for d in buckets for step, epoch, value in zip(d["steps"], d["epochs"], d["values"])]

    def _commit(self, original: dict[str, dict], plan: dict[str, list[tuple]], files: dict[str, tuple],
                touched: dict[str, set[str]] | None = None) -> list[tuple[str, str]]:
        """Write every planned document (retrying concurrent changes), then the file states."""
        pending = {doc_id: original.get(doc_id) for doc_id in plan}
        failed: list[tuple[str, str]] = []
        for attempt in range(MAX_RETRIES):
            ops: list[Op] = []
            op_ids: list[str] = []
            new_docs: list[dict] = []
            for doc_id, old in pending.items():
                new = _replay(old, plan[doc_id])
                if new is None:
                    continue
                rev = int(old.get("_rev") or 0) if old else 0
                stored = stored_form(new, rev + 1)
                flt = {"_id": doc_id, "_rev": old.get("_rev") if old else 0}
                ops.append(("replace", flt, stored))
                op_ids.append(doc_id)
                new_docs.append(stored)
            with self._errors("writing documents"):
                self._record_keys(new_docs)
                errors = bulk(self.docs, ops)
            conflicts = []
            for i, code, msg in errors:
                if code == _DUPLICATE_KEY:
                    conflicts.append(op_ids[i])
                else:
                    log.warning("could not write document %s to %s: %s", op_ids[i], self.display_uri, msg)
                    failed.append((op_ids[i], msg))
            if not conflicts:
                break
            log.debug("retrying %d documents changed by another writer (round %d)", len(conflicts), attempt + 1)
            with self._errors("writing documents"):
                fresh = {d["_id"]: d for d in self.docs.find({"_id": {"$in": conflicts}})}
            pending = {doc_id: fresh.get(doc_id) for doc_id in conflicts}
        else:
            for doc_id in conflicts:
                msg = f"kept changing under {MAX_RETRIES} concurrent writes"
                log.warning("could not write document %s: %s", doc_id, msg)
                failed.append((doc_id, msg))
        bad_ids = {doc_id for doc_id, _ in failed}
        # a path whose documents were not all written keeps its old state, so the reconcile walk redoes it
        bad_paths = {p for doc_id in bad_ids for p in (touched or {}).get(doc_id, ())}
        file_ops = [op for path, op in files.items() if path not in bad_paths]
        with self._errors("recording file states"):
            for i, code, msg in bulk(self.files, file_ops):
                log.warning("could not record the state of %s: %s", file_ops[i][1]["_id"], msg)
        return failed

    def _raise_failed(self, failed: list[tuple[str, str]]) -> None:
        if failed:
            doc_id, msg = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise EdnaError(f"{len(failed)} document(s) could not be written to {self.display_uri}; "
                            f"the rest were written: {doc_id[:12]}: {msg}{more}")

    # ------------------------------------------------------------ reads
    def _filter(self, node: Node, options: FindOptions) -> dict:
        return find_filter(node, options, self._resolver())

    def _time_limit(self) -> dict[str, int]:
        """``maxTimeMS`` for a read: the server stops a query (a PCRE regex too) past ``query_timeout``."""
        return {"maxTimeMS": max(1, int(self.query_timeout * 1000))} if self.query_timeout else {}

    def count(self, node: Node, options: FindOptions | None = None) -> int:
        self._ready()
        flt = self._filter(node, options or FindOptions())
        if flt == NOTHING:
            return 0
        with self._errors("count"):
            return int(self.docs.count_documents(flt, **self._time_limit()))

    def find(self, node: Node, options: FindOptions | None = None) -> list[dict]:
        options = options or FindOptions()
        self._ready()
        resolve = self._resolver()
        flt = find_filter(node, options, resolve)
        if flt == NOTHING or options.limit == 0:
            return []
        with self._errors("find"):
            if needs_sort_pipeline(options.sort, resolve):
                pipeline = sort_pipeline(flt, options.sort, resolve, options.offset, options.limit)
                ids = [d["_id"] for d in self.docs.aggregate(pipeline, **self._time_limit())]
                by_id = {d["_id"]: d for d in self.docs.find({"_id": {"$in": ids}}, _projection())}
                return [by_id[i] for i in ids if i in by_id]
            cursor = self.docs.find(flt, _projection()).sort(DEFAULT_ORDER)
            if limit_ms := self._time_limit().get("maxTimeMS"):
                cursor = cursor.max_time_ms(limit_ms)
            if options.offset:
                cursor = cursor.skip(int(options.offset))
            if options.limit is not None:
                cursor = cursor.limit(int(options.limit))
            return list(cursor)

    def best_rows(self, node: Node, options: FindOptions, metric: KeySpec, by: KeySpec | None,
                  minimize: bool) -> list[tuple[str, float, str, str]]:
        self._ready()
        resolve = self._resolver()
        flt = find_filter(node, options, resolve)
        tiers = resolve(metric)
        if flt == NOTHING or not tiers:
            return []
        group = resolve(by) if by is not None else None
        with self._lock:
            ranks, group_paths = self._catalog.best_handles(tiers, by, group)
        with self._errors("best"):
            rows = list(self.docs.aggregate(best_pipeline(flt, tiers, ranks, group, group_paths, minimize),
                                            **self._time_limit()))
        out = []
        for r in rows:
            labels = [lf["s"] if lf.get("s") is not None else f"{lf['n']:.15g}"
                      for lf in r.get("g") or [] if lf.get("s") is not None or lf.get("n") is not None]
            order = "~" + r["_id"] if r.get("nopath") else (r.get("path0") or "")
            out.append((r["_id"], r["v"], min(labels) if labels else "", order))
        return out

    def get(self, id_or_prefix: str) -> dict:
        prefix = id_or_prefix.strip()
        if len(prefix) < 4:
            raise UsageError(f"id prefix {prefix!r} is too short: give at least 4 characters")
        self._ready()
        with self._errors("get"):
            doc = self.docs.find_one({"_id": prefix}, _projection())
            if doc is not None:
                return doc
            rows = list(self.docs.find({"_id": {"$regex": "^" + escape_regex(prefix)}}, {"_id": 1, "current": 1})
                        .sort([("current", -1), ("_id", 1)]).limit(11))
            if len(rows) == 1:
                doc = self.docs.find_one({"_id": rows[0]["_id"]}, _projection())
        if not rows or (len(rows) == 1 and doc is None):
            raise NotFound(f"no document with id {prefix!r}; `ednaquery find` lists ids")
        if len(rows) > 1:
            raise AmbiguousId(prefix, [r["_id"] for r in rows])
        return doc

    def key_paths(self) -> list[tuple[str, ...]]:
        self._ready()
        self._load_catalog()
        with self._lock:
            return self._catalog.key_paths()

    def key_stats(self, pattern: str | None = None, sample: int = 3) -> list[KeyStat]:
        self._ready()
        match: dict[str, Any] = {"current": True, "$nor": [{"kind": "error"}]}
        leaf_match: list[dict] = []
        if pattern:
            spec = _key_spec(pattern)
            self._load_catalog()
            paths = [p for p in self._catalog.paths()
                     if not p.startswith(RESERVED_PREFIX) and key_matches(spec, tuple(p.split(PATH_SEP)))]
            if not paths:
                return []
            match["leaves.p"] = {"$in": paths}
            leaf_match = [{"$match": {"leaves.p": {"$in": paths}}}]
        counts = [
            {"$match": match}, {"$project": {"leaves.p": 1, "leaves.t": 1}}, {"$unwind": "$leaves"}, *leaf_match,
            {"$group": {"_id": {"p": "$leaves.p", "d": "$_id"}, "ts": {"$addToSet": "$leaves.t"}}},
            {"$unwind": {"path": "$ts", "includeArrayIndex": "i"}},
            {"$group": {"_id": {"p": "$_id.p", "t": "$ts"}, "c": {"$sum": 1},
                        "docs": {"$sum": {"$cond": [{"$eq": ["$i", 0]}, 1, 0]}}}},
        ]
        examples = [
            {"$match": match}, {"$project": {"leaves": 1}}, {"$unwind": "$leaves"}, *leaf_match,
            {"$group": {"_id": {"p": "$leaves.p", "t": "$leaves.t", "s": "$leaves.s", "n": "$leaves.n",
                                "b": "$leaves.b"}, "c": {"$sum": 1}}},
            {"$sort": {"c": -1, "_id.p": 1, "_id.s": 1, "_id.n": 1}},
        ]
        stats: dict[str, KeyStat] = {}
        with self._errors("key statistics"):
            for row in self.docs.aggregate(counts):
                p = row["_id"]["p"]
                path = tuple(p.split(PATH_SEP))
                if is_reserved_path(path):
                    continue
                st = stats.setdefault(p, KeyStat(path=path, count=0))
                st.count += int(row["docs"])
                t = row["_id"].get("t")
                st.types[t] = st.types.get(t, 0) + int(row["c"])
            for row in self.docs.aggregate(examples):
                st = stats.get(row["_id"]["p"])
                if st is None or len(st.examples) >= sample:
                    continue
                ex = _example(row["_id"])
                if ex is not None and ex not in st.examples:
                    st.examples.append(ex)
        return sorted(stats.values(), key=lambda s: (-s.count, s.path))

    def stats(self) -> dict:
        self._ready()
        out: dict[str, Any] = {"store": self.display_uri}
        with self._errors("stats"):
            groups = self.docs.aggregate([{"$group": {"_id": {"k": "$kind", "c": "$current", "d": "$deleted"},
                                                      "n": {"$sum": 1}}}])
            for row in groups:
                g = row["_id"]
                state = "current" if g.get("c") else ("deleted" if g.get("d") else "superseded")
                kinds = out.setdefault("documents", {}).setdefault(g.get("k"), {})
                kinds[state] = kinds.get(state, 0) + int(row["n"])
            total = list(self.docs.aggregate([{"$group": {"_id": None, "n": {"$sum": {"$size": {"$ifNull": ["$leaves", []]}}}}}]))
            out["leaves"] = int(total[0]["n"]) if total else 0
            out["distinct_keys"] = int(self.keycat.count_documents({}))
            out["files"] = int(self.files.count_documents({}))
            try:
                db = self.db.command("dbStats")
                out["size_bytes"] = int(db.get("storageSize", 0)) + int(db.get("indexSize", 0))
            except Exception as e:  # noqa: BLE001 - optional figure (mongomock, restricted users)
                log.debug("no dbStats from %s: %s", self.display_uri, self._reason(e))
        return out

    def file_states(self, root: str | None = None) -> dict[str, FileState]:
        self._ready()
        flt: dict[str, Any] = {}
        if root:
            r = os.path.abspath(root).rstrip(os.sep) + os.sep
            flt = {"_id": {"$regex": "^" + escape_regex(r)}}
        with self._errors("reading file states"):
            return {d["_id"]: FileState(d.get("size"), d.get("mtime_ns"), d.get("inode"))
                    for d in self.files.find(flt)}

    def history(self, path: str) -> list[dict]:
        self._ready()
        path = os.path.abspath(path)
        with self._errors("history"):
            docs = list(self.docs.find({"$or": [{"paths": {"$in": [path]}}, {"past_paths": {"$in": [path]}}]}, _projection()))
        docs.sort(key=lambda d: (path not in (d.get("paths") or []), -(d.get("indexed_at") or 0.0)))
        return docs

    def dependants(self, paths: Sequence[str]) -> list[str]:
        if not paths:
            return []
        self._ready()
        deps = [os.path.abspath(p) for p in paths]
        with self._errors("finding dependants"):
            rows = self.docs.find({"depends_on": {"$in": deps}}, {"paths": 1})
            return sorted({p for d in rows for p in d.get("paths") or []})

    def errors(self) -> list[dict]:
        """Current error records (files that could not be parsed), by id."""
        self._ready()
        with self._errors("reading errors"):
            return list(self.docs.find({"kind": "error", "current": True}, _projection()).sort("_id", 1))

    def reopen_uri(self) -> str | None:
        return self.uri

    def job_home(self) -> JobHome:
        return JobHome(mongo_database=self.db, guard=self._errors)

    def ping(self) -> None:
        with self._errors("ping"):
            self.client.admin.command("ping")

    def close(self) -> None:
        if self._owns_client:
            try:
                self.client.close()
            except Exception as e:  # noqa: BLE001 - closing must not raise
                log.debug("closing the MongoDB client failed: %s", self._reason(e))
