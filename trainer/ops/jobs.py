"""The launch queue: jobs kept in the store, claimed atomically by any number of workers.

``trainer queue`` and ``trainer sweep`` enqueue; every ``trainer worker`` (on this machine or
any other that reaches the same store) loops: re-queue stale jobs, claim one, run it while
heart-beating, record how it ended. A claim is one atomic step, so two workers never get the
same job; a worker that dies stops heart-beating and its job goes back to the queue after
``stale_after`` seconds (at most ``max_attempts`` claims, then the job is marked failed).
Every timestamp comes from the queue's ``clock`` (``time.time`` unless one is injected, as
tests do to make staleness deterministic).
Heartbeats and finishes name the worker, so a worker whose job was taken from it learns so
(``heartbeat`` returns False) and stops instead of running it twice.

Backends, reached through the store object:

- SQLite: a ``jobs`` table in the store's database file, on a connection of its own;
  claims are ``BEGIN IMMEDIATE`` + ``UPDATE ... WHERE status='queued' ... RETURNING``.
- MongoDB: a ``jobs`` collection in the store's database; claims are ``find_one_and_update``
  (``status: queued -> running``), which MongoDB applies to one document atomically.

Job states: ``queued -> running -> completed | failed | interrupted``; ``cancelled`` by hand.
A job re-queued after an interrupted or lost run keeps its ``run_id``, so the next worker
resumes that run when it can reach its folder.
"""
from __future__ import annotations

import abc
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ednaquery.errors import EdnaError, NotFound, StoreUnavailable, UsageError
from ednaquery.store.base import Store

JOB_STATUSES = ("queued", "running", "completed", "failed", "interrupted", "cancelled")
FINAL_STATUSES = ("completed", "failed", "interrupted", "cancelled")
DEFAULT_MAX_ATTEMPTS = 3

#: where a queue reads the time (seconds since the epoch); injectable so tests need not sleep
Clock = Callable[[], float]


class JobExists(UsageError):
    """A job with the id asked for is already in the queue (a sweep's trial another process queued first)."""


def new_job_id(now: float | None = None) -> str:
    """A time-sortable unique job id: ``job-20261122-221530-3fa9c2d1``."""
    t = time.time() if now is None else now
    return "job-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) + "-" + secrets.token_hex(4)


@dataclass
class Job:
    """One queued launch: a config id plus overrides, and where it stands."""

    id: str
    config_id: str
    overrides: list[str] = field(default_factory=list)
    status: str = "queued"
    worker: str | None = None
    attempts: int = 0
    created_at: float | None = None
    claimed_at: float | None = None
    heartbeat_at: float | None = None
    finished_at: float | None = None
    run_id: str | None = None
    error: str | None = None
    #: free-form launch options (e.g. ``{"device": "cuda:1"}``)
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobQueue(abc.ABC):
    """The operations every backend offers."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    #: the time every timestamp and staleness cut-off is read from
    clock: Clock = time.time

    @abc.abstractmethod
    def enqueue(self, config_id: str, overrides: Sequence[str] = (), *, options: dict | None = None,
                job_id: str | None = None) -> Job:
        """Add a job (status queued); with ``job_id``, atomically: :class:`JobExists` if that id is taken."""

    @abc.abstractmethod
    def claim(self, worker_id: str) -> Job | None:
        """Atomically take the oldest queued job for ``worker_id`` (None when the queue is empty)."""

    @abc.abstractmethod
    def heartbeat(self, job_id: str, worker_id: str) -> bool:
        """Say the worker is alive; False when the job is no longer this worker's (re-queued, cancelled)."""

    @abc.abstractmethod
    def set_run(self, job_id: str, worker_id: str, run_id: str) -> bool:
        """Record the run a job is running as (so a re-queued job resumes it)."""

    @abc.abstractmethod
    def finish(self, job_id: str, worker_id: str, status: str, *, run_id: str | None = None,
               error: str | None = None) -> bool:
        """End a running job with ``status``; False when the job is not this worker's any more."""

    @abc.abstractmethod
    def requeue(self, job_id: str, worker_id: str, *, run_id: str | None = None, error: str | None = None) -> bool:
        """Give a running job back to the queue (the worker is stopping); False if not this worker's."""

    @abc.abstractmethod
    def requeue_stale(self, timeout_s: float) -> list[str]:
        """Re-queue running jobs whose worker has not heart-beaten for ``timeout_s`` seconds
        (jobs claimed ``max_attempts`` times become failed instead); returns the ids touched."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job (a running one is left alone); False if it was not queued."""

    @abc.abstractmethod
    def get(self, job_id: str) -> Job:
        """The job with this id or unique id prefix (NotFound otherwise)."""

    @abc.abstractmethod
    def list(self, status: str | None = None, limit: int | None = None) -> list[Job]:
        """Jobs, oldest first (optionally of one status)."""

    def close(self) -> None:
        """Release the backend connection (if the queue has its own)."""


def _check_status(status: str) -> None:
    if status not in FINAL_STATUSES:
        raise UsageError(f"job status must be one of {', '.join(FINAL_STATUSES)}, not {status!r}")


# ------------------------------------------------------------------ SQLite

_SQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  config_id TEXT NOT NULL,
  overrides TEXT NOT NULL,
  options TEXT NOT NULL,
  status TEXT NOT NULL,
  worker TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL,
  claimed_at REAL,
  heartbeat_at REAL,
  finished_at REAL,
  run_id TEXT,
  error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at, id);
"""
_COLUMNS = ("id", "config_id", "overrides", "options", "status", "worker", "attempts", "created_at",
            "claimed_at", "heartbeat_at", "finished_at", "run_id", "error")
_SELECT = ", ".join(_COLUMNS)


def _row_job(row: Sequence[Any]) -> Job:
    d = dict(zip(_COLUMNS, row))
    d["overrides"] = json.loads(d["overrides"] or "[]")
    d["options"] = json.loads(d["options"] or "{}")
    return Job(**d)


class SQLiteJobQueue(JobQueue):
    """Jobs in a table of the store's SQLite file, on a connection of this queue's own."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 30000, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 clock: Clock = time.time) -> None:
        self.path = str(path)
        self.max_attempts = max_attempts
        self.clock = clock
        self._lock = threading.RLock()  # one connection, shared by a worker and its heartbeat thread
        try:
            self.db = sqlite3.connect(self.path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            self._tx(lambda: [self.db.execute(s) for s in _SQL_SCHEMA.split(";") if s.strip()])
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open the job queue in {self.path}: {e}") from None

    def _tx(self, fn: Any) -> Any:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction (one writer at a time, all or nothing)."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise StoreUnavailable(f"job queue in {self.path} is busy or read-only: {e}") from None
            try:
                out = fn()
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return out

    def enqueue(self, config_id: str, overrides: Sequence[str] = (), *, options: dict | None = None,
                job_id: str | None = None) -> Job:
        now = self.clock()
        job = Job(id=job_id or new_job_id(now), config_id=config_id, overrides=list(overrides), created_at=now,
                  options=dict(options or {}))
        try:
            self._tx(lambda: self.db.execute(
                "INSERT INTO jobs (id, config_id, overrides, options, status, attempts, created_at) "
                "VALUES (?, ?, ?, ?, 'queued', 0, ?)",
                (job.id, config_id, json.dumps(job.overrides), json.dumps(job.options), now)))
        except sqlite3.IntegrityError:
            raise JobExists(f"job {job.id} is already queued") from None
        return job

    def claim(self, worker_id: str) -> Job | None:
        now = self.clock()

        def run() -> list:
            return self.db.execute(
                f"UPDATE jobs SET status='running', worker=?, claimed_at=?, heartbeat_at=?, "
                f"attempts=attempts+1, error=NULL WHERE id = (SELECT id FROM jobs WHERE status='queued' "
                f"ORDER BY created_at, id LIMIT 1) AND status='queued' RETURNING {_SELECT}",
                (worker_id, now, now)).fetchall()
        rows = self._tx(run)
        return _row_job(rows[0]) if rows else None

    def _owned_update(self, job_id: str, worker_id: str, sets: str, params: Sequence[Any]) -> bool:
        def run() -> int:
            return self.db.execute(f"UPDATE jobs SET {sets} WHERE id=? AND worker=? AND status='running'",
                                   (*params, job_id, worker_id)).rowcount
        return self._tx(run) == 1

    def heartbeat(self, job_id: str, worker_id: str) -> bool:
        return self._owned_update(job_id, worker_id, "heartbeat_at=?", (self.clock(),))

    def set_run(self, job_id: str, worker_id: str, run_id: str) -> bool:
        return self._owned_update(job_id, worker_id, "run_id=?", (run_id,))

    def finish(self, job_id: str, worker_id: str, status: str, *, run_id: str | None = None,
               error: str | None = None) -> bool:
        _check_status(status)
        return self._owned_update(job_id, worker_id, "status=?, finished_at=?, run_id=coalesce(?, run_id), error=?",
                                  (status, self.clock(), run_id, error))

    def requeue(self, job_id: str, worker_id: str, *, run_id: str | None = None, error: str | None = None) -> bool:
        return self._owned_update(job_id, worker_id,
                                  "status='queued', worker=NULL, heartbeat_at=NULL, run_id=coalesce(?, run_id), "
                                  "error=?", (run_id, error))

    def requeue_stale(self, timeout_s: float) -> list[str]:
        cutoff = self.clock() - timeout_s

        def run() -> list[str]:
            stale = self.db.execute("SELECT id, attempts FROM jobs WHERE status='running' AND heartbeat_at < ?",
                                    (cutoff,)).fetchall()
            for job_id, attempts in stale:
                if attempts >= self.max_attempts:
                    why = f"its worker stopped heart-beating {attempts} time(s); not re-queued again"
                    self.db.execute("UPDATE jobs SET status='failed', finished_at=?, error=? WHERE id=?",
                                    (self.clock(), why, job_id))
                else:
                    self.db.execute("UPDATE jobs SET status='queued', worker=NULL, heartbeat_at=NULL, error=? "
                                    "WHERE id=?", ("its worker stopped heart-beating; re-queued", job_id))
            return [s[0] for s in stale]
        return self._tx(run)

    def cancel(self, job_id: str) -> bool:
        job = self.get(job_id)
        return self._tx(lambda: self.db.execute(
            "UPDATE jobs SET status='cancelled', finished_at=? WHERE id=? AND status='queued'",
            (self.clock(), job.id)).rowcount) == 1

    def get(self, job_id: str) -> Job:
        with self._lock:
            rows = self.db.execute(f"SELECT {_SELECT} FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                   (job_id, job_id + "\U0010ffff")).fetchall()
        exact = [r for r in rows if r[0] == job_id]
        if exact:
            return _row_job(exact[0])
        if not rows:
            raise NotFound(f"no job with id {job_id!r}; `trainer jobs` lists them")
        if len(rows) > 1:
            raise UsageError(f"job id prefix {job_id!r} is ambiguous; type more characters")
        return _row_job(rows[0])

    def list(self, status: str | None = None, limit: int | None = None) -> list[Job]:
        sql = f"SELECT {_SELECT} FROM jobs"
        params: list[Any] = []
        if status:
            sql += " WHERE status=?"
            params.append(status)
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return [_row_job(r) for r in self.db.execute(sql, params).fetchall()]

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass


# ------------------------------------------------------------------ MongoDB


class MongoJobQueue(JobQueue):
    """Jobs in the ``jobs`` collection of the store's database; claims are ``find_one_and_update``."""

    def __init__(self, database: Any, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, errors: Any = None,
                 clock: Clock = time.time) -> None:
        self.coll = database["jobs"]
        self.max_attempts = max_attempts
        self.clock = clock
        self._errors = errors  # the store's error translator (a context manager factory), if any
        with self._guard("creating the job index"):
            self.coll.create_index([("status", 1), ("created_at", 1)], name="status_created")

    def _guard(self, what: str) -> Any:
        if self._errors is not None:
            return self._errors(what)
        import contextlib

        return contextlib.nullcontext()

    @staticmethod
    def _job(doc: dict) -> Job:
        d = {k: doc.get(k) for k in _COLUMNS if k != "id"}
        d["overrides"] = list(doc.get("overrides") or [])
        d["options"] = dict(doc.get("options") or {})
        d["attempts"] = int(doc.get("attempts") or 0)
        return Job(id=doc["_id"], **d)

    def enqueue(self, config_id: str, overrides: Sequence[str] = (), *, options: dict | None = None,
                job_id: str | None = None) -> Job:
        from pymongo.errors import DuplicateKeyError

        now = self.clock()
        job = Job(id=job_id or new_job_id(now), config_id=config_id, overrides=list(overrides), created_at=now,
                  options=dict(options or {}))
        doc = job.as_dict()
        doc["_id"] = doc.pop("id")
        with self._guard("queueing a job"):
            try:
                self.coll.insert_one(doc)
            except DuplicateKeyError:
                raise JobExists(f"job {job.id} is already queued") from None
        return job

    def claim(self, worker_id: str) -> Job | None:
        from pymongo import ReturnDocument

        now = self.clock()
        with self._guard("claiming a job"):
            doc = self.coll.find_one_and_update(
                {"status": "queued"},
                {"$set": {"status": "running", "worker": worker_id, "claimed_at": now, "heartbeat_at": now,
                          "error": None}, "$inc": {"attempts": 1}},
                sort=[("created_at", 1), ("_id", 1)], return_document=ReturnDocument.AFTER)
        return self._job(doc) if doc else None

    def _owned_update(self, job_id: str, worker_id: str, sets: dict, what: str) -> bool:
        with self._guard(what):
            res = self.coll.update_one({"_id": job_id, "worker": worker_id, "status": "running"}, {"$set": sets})
        return res.matched_count == 1

    def heartbeat(self, job_id: str, worker_id: str) -> bool:
        return self._owned_update(job_id, worker_id, {"heartbeat_at": self.clock()}, "a job heartbeat")

    def set_run(self, job_id: str, worker_id: str, run_id: str) -> bool:
        return self._owned_update(job_id, worker_id, {"run_id": run_id}, "recording a job's run")

    def finish(self, job_id: str, worker_id: str, status: str, *, run_id: str | None = None,
               error: str | None = None) -> bool:
        _check_status(status)
        sets: dict[str, Any] = {"status": status, "finished_at": self.clock(), "error": error}
        if run_id is not None:
            sets["run_id"] = run_id
        return self._owned_update(job_id, worker_id, sets, "finishing a job")

    def requeue(self, job_id: str, worker_id: str, *, run_id: str | None = None, error: str | None = None) -> bool:
        sets: dict[str, Any] = {"status": "queued", "worker": None, "heartbeat_at": None, "error": error}
        if run_id is not None:
            sets["run_id"] = run_id
        return self._owned_update(job_id, worker_id, sets, "re-queueing a job")

    def requeue_stale(self, timeout_s: float) -> list[str]:
        cutoff = self.clock() - timeout_s
        touched: list[str] = []
        with self._guard("re-queueing stale jobs"):
            for doc in list(self.coll.find({"status": "running", "heartbeat_at": {"$lt": cutoff}})):
                # conditioned on the heartbeat we saw: a worker that beats meanwhile keeps its job
                cond = {"_id": doc["_id"], "status": "running", "heartbeat_at": doc.get("heartbeat_at")}
                if int(doc.get("attempts") or 0) >= self.max_attempts:
                    sets = {"status": "failed", "finished_at": self.clock(),
                            "error": f"its worker stopped heart-beating {doc.get('attempts')} time(s); "
                                     "not re-queued again"}
                else:
                    sets = {"status": "queued", "worker": None, "heartbeat_at": None,
                            "error": "its worker stopped heart-beating; re-queued"}
                if self.coll.update_one(cond, {"$set": sets}).modified_count:
                    touched.append(doc["_id"])
        return touched

    def cancel(self, job_id: str) -> bool:
        job = self.get(job_id)
        with self._guard("cancelling a job"):
            res = self.coll.update_one({"_id": job.id, "status": "queued"},
                                       {"$set": {"status": "cancelled", "finished_at": self.clock()}})
        return res.modified_count == 1

    def get(self, job_id: str) -> Job:
        import re

        with self._guard("reading a job"):
            doc = self.coll.find_one({"_id": job_id})
            if doc is None:
                docs = list(self.coll.find({"_id": {"$regex": "^" + re.escape(job_id)}}).limit(2))
                if not docs:
                    raise NotFound(f"no job with id {job_id!r}; `trainer jobs` lists them")
                if len(docs) > 1:
                    raise UsageError(f"job id prefix {job_id!r} is ambiguous; type more characters")
                doc = docs[0]
        return self._job(doc)

    def list(self, status: str | None = None, limit: int | None = None) -> list[Job]:
        with self._guard("listing jobs"):
            cur = self.coll.find({"status": status} if status else {}).sort([("created_at", 1), ("_id", 1)])
            if limit is not None:
                cur = cur.limit(limit)
            return [self._job(d) for d in cur]


# ------------------------------------------------------------------ choosing the backend


def open_jobs(store: Store, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, clock: Clock = time.time) -> JobQueue:
    """The job queue that lives beside ``store`` (same SQLite file, or same MongoDB database)."""
    home = store.job_home()
    if home.sqlite_path is not None:
        return SQLiteJobQueue(home.sqlite_path, max_attempts=max_attempts, clock=clock)
    if home.mongo_database is not None:
        return MongoJobQueue(home.mongo_database, max_attempts=max_attempts, errors=home.guard, clock=clock)
    raise EdnaError(f"the store {store.display_uri!r} has no job queue; "
                    "use the SQLite or MongoDB store")
