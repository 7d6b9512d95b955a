"""MLflow's SQLite store (``mlflow.db``, MLflow 3's default): one run document per MLflow run.

Read with the standard library's ``sqlite3``, opened read-only (``mode=ro``: never a write,
never a lock held past the read), with no mlflow dependency. For each run in ``runs``:
params (strings, as MLflow keeps them; the document layer types numeric ones), tags (into
``info.tags``; ``mlflow.runName`` is the name), the metric history (``metrics``: every value at
its step -> series and last/best, :class:`ednaquery.metrics.MetricsSummary`), status
(``FINISHED`` completed, ``FAILED`` failed, ``KILLED`` interrupted, ``RUNNING``,
``SCHEDULED`` queued), start/end times and the experiment's name.

A run's path is the db file plus its run id (``/x/mlflow.db#<run_id>``); its id is MLflow's
run id (the same run read from a file store has the same id). A file that is not an MLflow
store (no ``runs``/``experiments`` tables) gives no runs; a locked, torn or corrupt database
gives one error message; reading stops after :data:`MAX_SECONDS` or :data:`MAX_METRIC_ROWS`
metric rows with a warning on the runs it cut.
"""
from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

from ednaquery.fsutil import check_regular, open_regular
from ednaquery.metrics import MetricsSummary
from indexer.convert.runs.base import RunInfo, normalise_status

__all__ = ["DB_NAMES", "MlflowDbError", "is_mlflow_db", "read_mlflow_db", "run_path"]

DB_NAMES = ("mlflow.db",)
MAX_SECONDS = 60.0
MAX_METRIC_ROWS = 20_000_000
#: reads of a database MLflow holds locked (each waits up to 2 s for the lock)
LOCKED_TRIES = 3
_SQLITE_MAGIC = b"SQLite format 3\x00"


class MlflowDbError(Exception):
    """The database could not be read (locked, corrupt, not SQLite)."""


def run_path(db: str | os.PathLike[str], run_id: str) -> str:
    """The path a run of an MLflow db is indexed under: the db file plus the run id."""
    return f"{os.path.abspath(db)}#{run_id}"


def is_mlflow_db(path: Path) -> bool:
    """True for a file named like MLflow's default store that starts like an SQLite database."""
    if path.name not in DB_NAMES:
        return False
    try:
        with open_regular(path) as fh:
            return fh.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def _connect(path: Path) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=2.0, check_same_thread=False)
    deadline = time.monotonic() + MAX_SECONDS
    db.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    return db


def read_mlflow_db(path: str | os.PathLike[str]) -> list[RunInfo]:
    """One :class:`RunInfo` per MLflow run in the database (none if it is not an MLflow store)."""
    p = Path(os.path.abspath(path))
    try:  # sqlite3 would open a named pipe called mlflow.db and wait on it for good
        check_regular(p, os.stat(p).st_mode)
    except OSError as exc:
        raise MlflowDbError(f"cannot open the MLflow database: {exc.strerror or exc}") from exc
    for attempt in range(LOCKED_TRIES):
        try:
            db = _connect(p)
        except sqlite3.Error as exc:
            raise MlflowDbError(f"cannot open the MLflow database: {exc}") from exc
        try:
            return _read(db, p)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) and attempt + 1 < LOCKED_TRIES:
                time.sleep(0.2)  # MLflow is writing: read again in a moment
                continue
            why = "reading took too long" if "interrupt" in str(exc) else str(exc)
            raise MlflowDbError(f"cannot read the MLflow database: {why}") from exc
        except sqlite3.DatabaseError as exc:
            raise MlflowDbError(f"the MLflow database is damaged: {exc}") from exc
        finally:
            db.close()
    raise MlflowDbError("the MLflow database stayed locked")  # not reached: the last try raises


def _read(db: sqlite3.Connection, path: Path) -> list[RunInfo]:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"runs", "experiments", "params", "metrics"} <= tables:
        return []
    mtime = None
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        pass
    experiments = {str(r[0]): r[1] for r in db.execute("SELECT experiment_id, name FROM experiments")}
    runs: dict[str, RunInfo] = {}
    for rid, name, status, start, end, stage, exp, user, art in db.execute(
            "SELECT run_uuid, name, status, start_time, end_time, lifecycle_stage, experiment_id, user_id, "
            "artifact_uri FROM runs ORDER BY start_time, run_uuid"):
        info = RunInfo(layout="mlflow_sqlite", folder=run_path(path, rid), format="mlflow-run", run_id=str(rid))
        info.status = normalise_status(status)
        info.started_at = start / 1000.0 if isinstance(start, (int, float)) else None
        info.ended_at = end / 1000.0 if isinstance(end, (int, float)) else None
        info.mtime = mtime
        for key, value in (("run_name", name), ("experiment_id", exp), ("lifecycle_stage", stage),
                           ("user_id", user), ("artifact_uri", art)):
            if value not in (None, ""):
                info.info[key] = value
        if experiments.get(str(exp)):
            info.info["experiment"] = experiments[str(exp)]
        info.info["store"] = str(path)
        runs[str(rid)] = info
    for key, value, rid in db.execute("SELECT key, value, run_uuid FROM params ORDER BY run_uuid, key"):
        if str(rid) in runs:
            runs[str(rid)].config[str(key)] = str(value).strip()
    if "tags" in tables:
        for key, value, rid in db.execute("SELECT key, value, run_uuid FROM tags ORDER BY run_uuid, key"):
            info = runs.get(str(rid))
            if info is not None:
                info.info.setdefault("tags", {})[str(key)] = "" if value is None else str(value)
                if key == "mlflow.runName" and value:
                    info.info.setdefault("run_name", str(value))
    summaries: dict[str, MetricsSummary] = {}
    rows = 0
    cut: set[str] = set()
    for key, value, step, is_nan, rid in db.execute(
            "SELECT key, value, step, is_nan, run_uuid FROM metrics ORDER BY run_uuid, key, step, timestamp"):
        rid = str(rid)
        if rid not in runs:
            continue
        rows += 1
        if rows > MAX_METRIC_ROWS:
            cut.add(rid)
            break
        s = summaries.setdefault(rid, MetricsSummary())
        s.add(str(key), float("nan") if is_nan else value, step=step)
        if step is not None:
            s.last_step = float(step) if s.last_step is None else max(s.last_step, float(step))
    for rid, info in runs.items():
        s = summaries.get(rid)
        if s is not None:
            info.take_metrics(s)
            if s.last_step is not None:
                info.info["steps"] = s.last_step
        if rid in cut:
            info.warnings.append(f"the database holds over {MAX_METRIC_ROWS:,} metric values; the rest are not read")
    return list(runs.values())
