"""File or folder -> documents: the converter's single entry point, :func:`convert_path`.

- A config file (``.yaml``/``.yml``/``.json``/``.toml``) gives one config document per
  YAML document in it (none for an empty file). For a single-document file the indexed
  ``config`` is the *effective* config (``_BASE_``, Hydra defaults and interpolation
  resolved, :mod:`indexer.convert.inherit`), with the file as written kept as
  ``as_written`` and the files it depends on as ``depends_on``.
- A file that belongs to a run folder (:mod:`indexer.convert.runs`) gives that run's
  document, whose path is the *folder*, and nothing else: files in a run folder (its config,
  our trainer's ``val_confusion.json``, Hydra's ``.hydra/*``) are never config documents of
  their own. A run folder itself gives its run document. MLflow's experiment ``meta.yaml``
  gives nothing.
- A ``group.json`` of ours (a k-fold or bagging group of runs, :mod:`ednaquery.groups`) gives its
  ``kind=group`` document, whose path is the file.
- MLflow's SQLite store (``mlflow.db``) gives one run document per MLflow run, each with the
  path ``<db>#<run_id>`` (or one error record if the database cannot be read).
- A run with no id of its own gets one from its folder's path relative to the watched root
  it is under (``roots``), so that the id survives moving the tree.
- A run's metric series (every logged value) are not in its document: a caller that passes
  ``series={}`` gets them there, by run document id, for the store's series table.
- A file that cannot be read or parsed gives one error record (path, message with line
  and column, mtime). Other files (unknown extensions, stray ``.jsonl``) give nothing.
- Every run and config document carries the user's tags and note from the annotations
  sidecar beside it (:mod:`ednaquery.annotations`) as ``annotations``. The sidecar itself
  gives no document (the daemon and the scan re-convert the files beside it when it changes).

It never raises for bad input: even an unexpected failure becomes an error record (and
a logged traceback), so that one strange file cannot stop the indexer.
"""
from __future__ import annotations

import logging
import os
import stat as stat_mod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ednaquery.annotations import is_sidecar, read_annotation
from ednaquery.documents import config_id, make_config_document, make_error_document, make_run_document
from ednaquery.errors import LoadError
from ednaquery.fsutil import special_file_kind
from ednaquery.groups import group_document, is_group_file
from ednaquery.loaders import DEFAULT_MAX_BYTES, format_for, load_file
from ednaquery.runfolder import document_from
from ednaquery.store.base import SeriesRow, series_rows
from indexer.convert.inherit import resolve
from indexer.convert.runs import (
    Recogniser,
    RunInfo,
    derived_run_id,
    read_run,
    recognise_folder,
    run_folder_of,
)
from indexer.convert.runs.mlflow_sqlite import MlflowDbError, is_mlflow_db, read_mlflow_db

log = logging.getLogger(__name__)

#: formats indexed as config files (``.jsonl`` is only read as part of a run)
CONFIG_FORMATS = ("yaml", "json", "toml")


def convert_path(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
                 stat: os.stat_result | None = None, is_file: bool = False,
                 roots: Sequence[str] = (), series: dict[str, list[SeriesRow]] | None = None,
                 memo: dict | None = None) -> list[dict]:
    """The documents for one path (file or run folder); never raises for bad input.

    ``stat`` is the caller's ``os.stat`` of the path, if it has one (used for the size and
    mtime of error records when the file cannot be opened); ``is_file``: the caller found a
    file there (a walk), so no ``stat`` is needed to tell it from a run folder; ``roots``: the
    watched folders (ids of runs that have none of their own are relative to them); ``series``:
    a dict that receives the metric series of the runs read (run id -> rows, ``PathUpdate.series``);
    ``memo``: a dict a caller converting many files at once (the scan's chunks) keeps between calls, so that
    the files of one unchanged run folder share one read and one document (the same object, not a copy),
    and the files of one folder one look at whether it is a run folder.
    """
    p = Path(os.path.abspath(os.fspath(path)))
    try:
        if is_sidecar(p):  # never a document itself; the files beside it are converted again
            return []
        is_dir = False if is_file else stat_mod.S_ISDIR(stat.st_mode) if stat is not None else p.is_dir()
        if is_dir:
            rec = recognise_folder(p)
            return [_run_document(read_run(rec, p, max_bytes=max_bytes), roots, series)] if rec is not None else []
        odd = _special_kind(p, stat)
        if odd:  # before any reader opens it: a named pipe would block it for good
            return [_error(p, f"not a regular file ({odd}); it is not indexed", format_for(p) or "unknown", stat)]
        if is_mlflow_db(p):
            try:
                return [_run_document(info, roots, series) for info in read_mlflow_db(p)]
            except MlflowDbError as exc:
                return [_error(p, str(exc), "mlflow", stat)]
        if is_group_file(p):  # a group of runs (k-fold, bagging): one kind=group document
            try:
                return [group_document(p, max_bytes=max_bytes)]
            except LoadError as exc:
                return [_error(p, exc.detail, "json", stat)]
        owned = run_folder_of(p, None if memo is None else memo.setdefault("folders", {}))
        if owned is not None:
            rec, folder = owned
            if rec is None:
                return []  # a tool's bookkeeping file (MLflow's experiment meta.yaml)
            if memo is None:
                return [_run_document(read_run(rec, folder, max_bytes=max_bytes), roots, series)]
            return [_shared_run_document(rec, folder, max_bytes, roots, series, memo)]
        fmt = format_for(p)
        if fmt not in CONFIG_FORMATS:
            return []
        return convert_config_file(p, fmt, max_bytes=max_bytes, stat=stat)
    except Exception as exc:  # a converter bug must not stop the daemon
        log.exception("internal error converting %s", p)
        return [_error(p, f"internal error while converting ({type(exc).__name__}: {exc}); "
                          "please report it", format_for(p) or "unknown", stat)]


def convert_config_file(path: Path, fmt: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                        stat: os.stat_result | None = None) -> list[dict]:
    """Config documents (or one error record) for a config file."""
    try:
        # shared: what is loaded is only read (resolve() and make_config_document() copy as they change)
        loaded = load_file(path, max_bytes=max_bytes, format=fmt, shared=True)
    except LoadError as exc:
        return [_error(path, exc.detail, fmt, stat)]
    docs: list[dict] = []
    single = len(loaded.documents) == 1
    for doc in loaded.documents:
        warnings = list(loaded.warnings)
        config, depends = doc, []
        if single:
            res = resolve(doc, str(path), loaded.directives, max_bytes=max_bytes,
                          may_interpolate=loaded.may_interpolate)
            config, depends = res.config, res.depends_on
            warnings += res.warnings
        docs.append(make_config_document(config, path=str(path), format=loaded.format, size=loaded.size,
                                         mtime=loaded.mtime, as_written=doc, warnings=warnings,
                                         depends_on=depends))
    return [with_annotation(d) for d in _unique(docs)]


def root_of(path: str, roots: Sequence[str]) -> str | None:
    """The innermost of ``roots`` that holds ``path``, or None."""
    best = None
    for r in roots:
        top = os.path.abspath(r)
        if (path == top or path.startswith(top.rstrip(os.sep) + os.sep)) and (best is None or len(top) > len(best)):
            best = top
    return best


def _run_document(info: RunInfo, roots: Sequence[str], series: dict[str, list[SeriesRow]] | None) -> dict:
    """:func:`run_info_document`, handing the run's series to ``series`` (when given) by its id."""
    doc = run_info_document(info, roots)
    if series is not None:
        series[doc["_id"]] = series_rows(info.series)
    return doc


def _shared_run_document(rec: Recogniser, folder: Path, max_bytes: int, roots: Sequence[str],
                          series: dict[str, list[SeriesRow]] | None, memo: dict) -> dict:
    """:func:`_run_document` of the run in ``folder``, read once per ``memo`` (a caller's few files at once:
    a run file that changes meanwhile was stat-ed before, so the next scan sees it changed and reads it again)."""
    key = (rec.name, str(folder), tuple(roots), max_bytes)
    hit = memo.get(key)
    if hit is None:
        rows: dict[str, list[SeriesRow]] = {}
        hit = memo[key] = (_run_document(read_run(rec, folder, max_bytes=max_bytes), roots, rows), rows)
    if series is not None:
        series.update(hit[1])
    return hit[0]


def run_info_document(info: RunInfo, roots: Sequence[str] = ()) -> dict:
    """The run document for a :class:`RunInfo` (its path is the run folder)."""
    if info.trainer_run is not None:  # exactly the document the trainer itself upserts
        return document_from(info.trainer_run)
    config = info.config if isinstance(info.config, dict) else {"value": info.config}
    cid = info.config_id or (config_id(config) if config or info.config_path else None)
    return with_annotation(make_run_document(
        info.run_id or derived_run_id(info.folder, None, root_of(info.folder, roots)), config=config, config_id=cid, path=info.folder,
        status=info.status, metrics=info.metrics, info=info.info, started_at=info.started_at,
        ended_at=info.ended_at, format=info.format, warnings=info.warnings, mtime=info.mtime))


def with_annotation(doc: dict) -> dict:
    """``doc`` (a run or config document) with the user's tags and note from its sidecar, if it has one
    (a trainer run's document, :func:`ednaquery.runfolder.document_from`, reads its own)."""
    if doc.get("paths"):
        ann = read_annotation(doc["paths"][0], is_run=doc.get("kind") == "run")
        if ann:
            doc["annotations"] = ann
    return doc


def _special_kind(path: Path, st: os.stat_result | None) -> str | None:
    """What ``path`` is if it is a named pipe, socket or device (None otherwise, or if it is gone)."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            return None
    return special_file_kind(st.st_mode)


def _error(path: Path, message: str, fmt: str, stat: os.stat_result | None) -> dict:
    size = mtime = None
    st: Any = stat
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            st = None
    if st is not None:
        size, mtime = st.st_size, st.st_mtime
    return make_error_document(str(path), message, format=fmt, size=size, mtime=mtime)


def _unique(docs: list[dict]) -> list[dict]:
    seen: set[str] = set()
    out = []
    for d in docs:
        if d["_id"] not in seen:
            seen.add(d["_id"])
            out.append(d)
    return out
