"""``trainer cv`` and ``trainer bag``: a base config as K fold runs or N bootstrap runs, queued as one group.

- ``cv``: K derived configs, ``data.folds: K`` and ``data.fold: 0..K-1`` (stratified,
  seed-independent folds of the training set: :mod:`trainer.engine.folds`);
- ``bag``: N derived configs, ``data.bootstrap: SEED..SEED+N-1`` (each a bootstrap sample
  of the training set).

:func:`submit` indexes the member configs (tags ``derived`` and ``cv``/``bag``), writes the group
file ``<runs root>/<group id>/group.json`` (:mod:`ednaquery.groups`; the filesystem is the source
of truth, the store indexes it as a ``kind=group`` document) and queues one job per member, each
carrying the group in its options (``group``, ``group_file``).

**Who keeps the aggregate up to date**: the worker. After each member job (completed or
not), :func:`after_member` calls :func:`refresh_group`, which, under a lock on the group
folder, finds each member's run, reads its status and metrics from the store, rewrites
``group.json`` (mean and std of the completed runs' metrics) and indexes it. ``trainer group ID
--refresh`` does the same by hand (e.g. after re-running a failed fold with ``trainer launch``,
or for members run by workers on machines that cannot reach the group file).

A member's run is the run its job ran (recorded when the job finished), or the newest run of
the member's config started after the group was created (a fold re-launched by hand); a
completed run is preferred over a newer failed one.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ednaquery.errors import EdnaError, NotFound, UsageError
from ednaquery.groups import (
    GROUP_FILE,
    aggregate,
    group_document,
    group_status,
    member_value,
    read_group,
    write_group,
)
from ednaquery.store.base import FileState, PathUpdate, Store
from trainer.errors import ConfigError
from trainer.ops.launch import ResolvedConfig, derive, override_strings, prepare, record_of_kind
from trainer.ops.query import find_runs

log = logging.getLogger(__name__)

METHODS = ("cv", "bag")
#: the most members one group may have (a typo in --folds/--n can explode a queue)
MAX_MEMBERS = 100
LOCK_FILE = ".group.lock"


def new_group_id(method: str, now: float | None = None) -> str:
    """A time-sortable unique group id: ``cv-20261204-221530-3fa9`` (``bag-...`` for bagging)."""
    t = time.time() if now is None else now
    return f"{method}-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) + "-" + secrets.token_hex(2)


@dataclass
class Member:
    """One run of a group: its overrides of the base, its config, and its label (fold or bootstrap seed)."""

    overrides: dict[str, Any]
    config: ResolvedConfig
    label: dict[str, int]


@dataclass
class GroupPlan:
    """A group expanded against its base config."""

    method: str
    base: ResolvedConfig
    group_id: str
    size: int
    members: list[Member] = field(default_factory=list)

    def describe(self, member: Member) -> str:
        """``fold 2`` / ``bootstrap 7`` for a member."""
        return " ".join(f"{k} {v}" for k, v in member.label.items())


def _check_size(n: int, what: str, low: int) -> None:
    if n < low:
        raise UsageError(f"{what} must be at least {low}, got {n}")
    if n > MAX_MEMBERS:
        raise UsageError(f"{what} {n} is over the limit of {MAX_MEMBERS} runs in one group")


def _members(base: ResolvedConfig, method: str, points: list[dict[str, Any]], gid: str) -> list[Member]:
    out = []
    for point in points:
        try:
            resolved = derive(base, point, tags=[method], extra={"group": gid})
        except ConfigError as exc:
            raise ConfigError(f"{method}: {' '.join(override_strings(point))}: {exc}") from None
        label = {k.rsplit(".", 1)[-1]: v for k, v in point.items() if k != "data.folds"}
        out.append(Member(overrides=point, config=resolved, label=label))
    return out


def plan_cv(store: Store, target: str, overrides: Sequence[str] = (), *, folds: int = 5,
            index: bool = True) -> GroupPlan:
    """The K fold runs of ``target`` (a config id prefix or file) with ``overrides``; nothing is queued."""
    _check_size(folds, "--folds", 2)
    base = prepare(store, target, overrides, index=index)
    gid = new_group_id("cv")
    points = [{"data.folds": folds, "data.fold": i} for i in range(folds)]
    return GroupPlan("cv", base, gid, folds, _members(base, "cv", points, gid))


def plan_bag(store: Store, target: str, overrides: Sequence[str] = (), *, n: int = 5, seed: int = 0,
             index: bool = True) -> GroupPlan:
    """N bootstrap runs of ``target`` (seeds ``seed..seed+n-1``); nothing is queued."""
    _check_size(n, "--n", 1)
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    base = prepare(store, target, overrides, index=index)
    gid = new_group_id("bag")
    points = [{"data.bootstrap": seed + i} for i in range(n)]
    return GroupPlan("bag", base, gid, n, _members(base, "bag", points, gid))


def group_path(runs_root: str | os.PathLike[str], group_id: str) -> Path:
    """``<runs root>/<group id>/group.json``."""
    return Path(os.path.abspath(runs_root)) / group_id / GROUP_FILE


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the group folder (two workers finishing members at once take turns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def index_group(store: Store, path: Path) -> dict:
    """Index ``group.json`` now (as the indexer would) and return its document."""
    doc = group_document(path)
    st = os.stat(path)
    store.apply([PathUpdate(str(path), [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino))])
    return doc


def submit(plan: GroupPlan, *, store: Store, queue: Any, runs_root: str | os.PathLike[str],
           options: dict | None = None) -> tuple[Path, list[Any]]:
    """Index the members' configs, write the group file, queue one job per member; returns (file, jobs)."""
    store.upsert([m.config.doc for m in plan.members if m.config.derived_from is not None])
    path = group_path(runs_root, plan.group_id)
    record = {"group_id": plan.group_id, "method": plan.method, ("folds" if plan.method == "cv" else "n"): plan.size,
              "config_id": plan.base.config_id, "config": plan.base.config, "created_at": time.time(),
              "members": [{"config_id": m.config.config_id, **m.label, "job_id": None, "run_id": None,
                           "status": "queued", "metrics": {}} for m in plan.members]}
    with _locked(path):  # written before any job exists: a worker that finishes one finds the file
        write_group(path, record)
    jobs = []
    for m in plan.members:
        jobs.append(queue.enqueue(m.config.config_id, options={**(options or {}), "group": plan.group_id,
                                                               "group_file": str(path)}))
    with _locked(path):
        record = read_group(path)
        for row, job in zip(record["members"], jobs):
            row["job_id"] = job.id
        record["updated_at"] = time.time()
        write_group(path, record)
    index_group(store, path)
    return path, jobs


# ------------------------------------------------------------------ keeping the aggregate up to date


def _runs_of(store: Store, config_id: str, since: float | None) -> list[dict]:
    """The runs of a config in the store started at or after ``since``, newest first."""
    docs = find_runs(store, [f'config_id="{config_id}"'])
    return [d for d in docs if d.get("config_id") == config_id
            and (since is None or (d.get("started_at") or 0) >= since - 1.0)]


def _member_run(store: Store, row: dict, since: float | None) -> dict | None:
    """The run that stands for a member: its recorded run, or a newer completed one of its config."""
    candidates: list[dict] = []
    if row.get("run_id"):
        try:
            candidates.append(store.get(str(row["run_id"])))
        except (NotFound, UsageError):
            pass
    with contextlib.suppress(EdnaError):
        candidates += [d for d in _runs_of(store, str(row.get("config_id")), since)
                       if d["_id"] != row.get("run_id")]
    if not candidates:
        return None
    done = [d for d in candidates if d.get("status") == "completed"]
    pool = done or candidates
    return max(pool, key=lambda d: str(d["_id"]))  # run ids sort by start time


def _update_members(store: Store, record: dict, finished: dict | None, queue: Any) -> None:
    """Each member's run, status and metric values, from the store (and the job queue), in place."""
    since = record.get("created_at")
    for row in record["members"]:
        if finished and row.get("job_id") and row["job_id"] == finished.get("job_id"):
            row["run_id"] = finished.get("run_id") or row.get("run_id")
            if not row["run_id"]:
                row["status"] = finished.get("status") or row.get("status")
        job = None
        if queue is not None and row.get("job_id"):
            with contextlib.suppress(EdnaError):
                job = queue.get(row["job_id"])
                row["run_id"] = row.get("run_id") or job.run_id
        run = _member_run(store, row, since)
        if run is not None:
            row["run_id"] = run["_id"]
            row["status"] = run.get("status") or "unknown"
            row["metrics"] = {name: x for name, summary in (run.get("metrics") or {}).items()
                              if (x := member_value(summary)) is not None}
        elif job is not None:
            row["status"] = job.status


def refresh_group(store: Store, path: str | os.PathLike[str], *, finished: dict | None = None,
                  queue: Any = None, dry_run: bool = False) -> dict:
    """Recompute a group from its members' runs and rewrite (and index) its file; returns the record.

    ``finished`` (``{"job_id", "run_id", "status"}``) is the member job that just ended (the worker
    knows its run even when the store does not); ``queue`` lets members without a run take their
    job's state (queued, running, failed before any run, cancelled). ``dry_run``: return the
    recomputed record (status, mean and std included) and write nothing.
    """
    p = Path(os.path.abspath(path))
    if dry_run:
        record = read_group(p)
        _update_members(store, record, finished, queue)
        members = record["members"]
        return dict(record, status=group_status(members), metrics=aggregate(members))
    with _locked(p):
        record = read_group(p)
        _update_members(store, record, finished, queue)
        record["updated_at"] = time.time()
        write_group(p, record)
    index_group(store, p)
    return read_group(p)


def find_group_file(store: Store | None, group: str, runs_root: str | os.PathLike[str] | None = None) -> Path:
    """The ``group.json`` of a group named by id (prefix, through the store), by its file or folder."""
    given = Path(group)
    for candidate in (given, given / GROUP_FILE):
        if candidate.is_file() and candidate.name == GROUP_FILE:
            return Path(os.path.abspath(candidate))
    if runs_root is not None and group_path(runs_root, group).is_file():
        return group_path(runs_root, group)
    if store is not None:
        doc = record_of_kind(store, group, "group", "`ednaquery find kind=group` lists groups")
        if doc is not None:
            for p in doc.get("paths") or []:
                if os.path.isfile(p):
                    return Path(p)
            raise UsageError(f"group {doc['_id']}'s file is not on this machine (last seen at "
                             f"{(doc.get('paths') or ['?'])[0]})")
    raise NotFound(f"no group {group!r}: give a group id from `ednaquery find kind=group` or its group.json")


def after_member(run_job: Callable[..., Any], store: Store, *, runs_root: str | os.PathLike[str]
                 ) -> Callable[..., Any]:
    """Wrap a worker's job runner: after a job that belongs to a group, refresh that group.

    The group file comes from the job's options (``group_file``), else ``<runs root>/<group>``;
    a worker that reaches neither (another machine) leaves the group to ``trainer group ID --refresh``.
    """
    def run(job: Any, stop: Any, started: Callable[[str], None]) -> Any:
        run_id: list[str] = []

        def note(rid: str) -> None:
            run_id.append(rid)
            started(rid)

        try:
            outcome = run_job(job, stop, note)
        except Exception:  # a bad member (its config no longer valid, a crash): the group says it failed
            _refresh_after(store, job, "failed", run_id[-1] if run_id else None, stop, runs_root)
            raise
        _refresh_after(store, job, outcome.status, outcome.run_id or (run_id[-1] if run_id else None), stop,
                       runs_root)
        return outcome

    return run


def _refresh_after(store: Store, job: Any, status: str, run_id: str | None, stop: Any,
                   runs_root: str | os.PathLike[str]) -> None:
    """:func:`refresh_group` for the group of ``job`` (if any) once it ended; never raises."""
    gid = (job.options or {}).get("group")
    if not gid or stop.is_set():  # a stopping worker re-queues the job: the group is refreshed when it ends
        return
    path = Path(job.options.get("group_file") or group_path(runs_root, gid))
    if not path.is_file():
        path = group_path(runs_root, gid)
    if not path.is_file():
        log.info("group %s's file is not on this machine; `trainer group %s --refresh` where it is", gid, gid)
        return
    try:
        refresh_group(store, path, finished={"job_id": job.id, "status": status, "run_id": run_id})
    except (EdnaError, OSError) as exc:
        log.warning("group %s not refreshed after job %s: %s; `trainer group %s --refresh` does it later",
                    gid, job.id, exc, gid)
