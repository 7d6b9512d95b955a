"""Tags and notes on runs and configs, kept beside them on disk so the filesystem stays the source of truth.

Where: one small JSON sidecar per folder, ``<folder>/.ednaquery-annotations.json``::

    {"version": 1, "entries": {".": {"tags": ["baseline"], "note": "lr too high"},
                               "resnet18.yaml": {"tags": ["old"]}}}

A run's annotation is the entry ``"."`` of the sidecar in its run folder (a run of an MLflow db,
``mlflow.db#<run id>``, the entry of that name beside the db); a config file's is the entry named
by its file name in the sidecar of its folder. The sidecar is written atomically
(:func:`ednaquery.fsutil.write_atomic`); the indexer reads it into each document as
``annotations`` (:func:`read_annotation`), so tags and notes survive a re-index from scratch, and
the daemon re-converts a folder's files when its sidecar changes. The sidecar itself is never
indexed as a config. ``ednaquery tag`` and ``ednaquery note`` also update the store at once
(:func:`annotate`), so ``find tags=baseline`` answers without waiting for the daemon.

In queries, ``tags`` (the document's own tags and the user's) and ``note`` are reserved fields:
``tags=baseline``, ``note~dropout`` (docs/query.md).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ednaquery.errors import UsageError
from ednaquery.fsutil import open_regular, write_atomic

__all__ = ["SIDECAR", "Annotation", "annotate", "apply_tag_changes", "is_sidecar", "read_annotation", "run_folder",
           "sidecar_location", "update_annotation", "write_annotation"]

SIDECAR = ".ednaquery-annotations.json"
RUN_ENTRY = "."
MAX_NOTE = 20_000
#: a tag: up to 64 characters, no space, comma or control/direction character, not starting with + or -
_TAG = re.compile(r"^[^\s,+\-\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
                  r"[^\s,\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]{0,63}$")

Annotation = dict[str, Any]  # {"tags": [str, ...], "note": str}; keys absent when empty

log = logging.getLogger(__name__)


def is_sidecar(path: str | os.PathLike[str]) -> bool:
    """True for an annotations sidecar (which is never indexed as a config)."""
    return os.path.basename(os.fspath(path)) == SIDECAR


def sidecar_location(path: str, *, is_run: bool) -> tuple[str, str]:
    """``(sidecar file, entry name)`` holding the annotation of a run folder or a config file.

    A run that is no folder of its own (a run of an MLflow db, ``/x/mlflow.db#<run id>``) is an
    entry named like a file, ``mlflow.db#<run id>``, in the sidecar beside the db.
    """
    path = os.path.abspath(path)
    if is_run and "#" not in os.path.basename(path):
        return os.path.join(path, SIDECAR), RUN_ENTRY
    return os.path.join(os.path.dirname(path), SIDECAR), os.path.basename(path)


def _read_entries(sidecar: str) -> dict[str, Any]:
    """The entries of a sidecar ({} when absent or unreadable: a broken sidecar never stops indexing)."""
    try:
        with open_regular(sidecar, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable annotations %s: %s", sidecar, exc)
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def clean(entry: Any) -> Annotation:
    """An annotation with only valid parts: sorted unique string tags, a string note; {} when empty."""
    if not isinstance(entry, dict):
        return {}
    out: Annotation = {}
    tags = entry.get("tags")
    if isinstance(tags, list):
        kept = sorted({t for t in tags if isinstance(t, str) and _TAG.match(t)})  # hand edits obey the rule too
        if kept:
            out["tags"] = kept
    note = entry.get("note")
    if isinstance(note, str) and note.strip():
        out["note"] = note
    return out


def read_annotation(path: str, *, is_run: bool) -> Annotation:
    """The annotation of a run folder or config file from its sidecar ({} when it has none)."""
    sidecar, name = sidecar_location(path, is_run=is_run)
    return clean(_read_entries(sidecar).get(name))


@contextlib.contextmanager
def _folder_lock(folder: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (flock on the directory itself: no lock file is left behind),
    so that two ``ednaquery tag`` at once never lose one another's change. No-op where flock is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise UsageError(f"cannot open {folder}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_annotation(path: str, change: Callable[[Annotation], Annotation], *, is_run: bool) -> Annotation:
    """Read, change and write back the annotation of a run folder or config file in its sidecar,
    atomically and under the folder's lock; returns the new annotation.

    An empty annotation removes the entry, and the sidecar once it has no entries left.
    """
    sidecar, name = sidecar_location(path, is_run=is_run)
    with _folder_lock(os.path.dirname(sidecar)):
        entries = dict(_read_entries(sidecar))
        ann = clean(change(clean(entries.get(name))))
        if ann:
            entries[name] = ann
        else:
            entries.pop(name, None)
        try:
            if entries:
                text = json.dumps({"version": 1, "entries": entries}, indent=2, ensure_ascii=False, sort_keys=True)
                write_atomic(sidecar, text + "\n")
            elif os.path.exists(sidecar):
                os.unlink(sidecar)
        except OSError as exc:
            raise UsageError(f"cannot write {sidecar}: {exc.strerror or exc}") from None
    return ann


def write_annotation(path: str, annotation: Annotation, *, is_run: bool) -> Annotation:
    """Set the annotation of a run folder or config file in its sidecar (see :func:`update_annotation`)."""
    return update_annotation(path, lambda _: annotation, is_run=is_run)


def apply_tag_changes(tags: Sequence[str], changes: Sequence[str]) -> list[str]:
    """``tags`` after ``+name`` / ``name`` (add) and ``-name`` (remove) changes, sorted."""
    out = set(tags)
    for change in changes:
        op, name = (change[0], change[1:]) if change[:1] in ("+", "-") else ("+", change)
        if not _TAG.match(name):
            raise UsageError(f"bad tag {change!r}: a tag is 1-64 characters without spaces or commas, "
                             "and does not start with + or - (write +NAME to add, -NAME to remove)")
        if op == "+":
            out.add(name)
        else:
            out.discard(name)
    return sorted(out)


def run_folder(paths: Sequence[str]) -> str:
    """A run's folder from its document's paths: the folder itself (as the trainer records it), or the
    folder that holds every member file the indexer recorded (``metrics.jsonl``, MLflow's ``params/lr``...)."""
    folders = [p for p in paths if "#" in os.path.basename(p) or os.path.isdir(p)]  # db runs: /x/mlflow.db#id
    if folders:
        return folders[0]
    return os.path.commonpath([os.path.dirname(p) for p in paths])


def _targets(doc: dict) -> list[tuple[str, bool]]:
    """``(path, is_run)`` of every place on disk the document lives (all the files of a config)."""
    kind = doc.get("kind")
    if kind not in ("run", "config", "group"):
        raise UsageError(f"{doc['_id'][:12]} is an {kind} record; only runs, configs and groups take tags and notes")
    paths = doc.get("paths") or []
    if not paths:
        raise UsageError(f"{doc['_id'][:12]} is no longer on disk (deleted or an old version); "
                         "tag the current version")
    if kind == "run":
        return [(run_folder(paths), True)]
    return [(p, False) for p in paths]


def annotate(store: Any, doc: dict, *, tag_changes: Sequence[str] | None = None,
             note: str | None = None) -> Annotation:
    """Change a document's user tags (``+name``/``-name``, see :func:`apply_tag_changes`) and/or set its
    note ("" removes it): in the sidecar of each of its paths (the source of truth, read afresh, so a
    hand edit the store has not seen yet is kept), then in the store. Returns the new annotation."""
    if tag_changes is not None:
        apply_tag_changes([], tag_changes)  # a bad tag is an error before anything is written
    if note is not None and len(note) > MAX_NOTE:
        raise UsageError(f"a note holds at most {MAX_NOTE} characters (got {len(note)})")
    targets = _targets(doc)

    def change(current: Annotation) -> Annotation:
        new = dict(current)
        if tag_changes is not None:
            new["tags"] = apply_tag_changes(current.get("tags") or [], tag_changes)
        if note is not None:
            new["note"] = note
        return new

    results = [update_annotation(path, change, is_run=is_run) for path, is_run in targets]
    store.set_annotations(doc["_id"], results[0])
    return results[0]
