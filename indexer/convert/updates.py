"""Converted documents -> store updates: a run lives at its run folder, not at the files in it.

The store keeps each document at the paths whose conversion yielded it. A run document is
yielded by every file of its run folder, but its path is the folder (or ``mlflow.db#<run id>``):
:func:`path_updates` puts it there, and leaves the file itself holding only its own documents
(none, for a file of a run folder). When a file vanishes, :func:`gone_updates` reads its run
folder again (a run whose folder is gone, or is no run folder any more, loses its document; one
that lost a file is re-read).
The one-shot scan and the daemon both go through here.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from ednaquery.store.base import FileState, PathUpdate
from indexer.convert.runs import RECOGNISERS, TOOL_SUBFOLDERS, recognise_folder
from indexer.walk import file_state

__all__ = ["dedupe", "gone_updates", "path_updates", "run_home"]

#: how far above a vanished file its run folder may be (``run/.hydra/config.yaml``: 2)
_UP = 2


def run_home(doc: dict) -> str | None:
    """The run folder a run document lives at (None for other documents)."""
    paths = doc.get("paths") or []
    return paths[0] if doc.get("kind") == "run" and paths else None


def path_updates(path: str, docs: list[dict], state: FileState | None, bodies: Sequence[bytes | None] = (),
                 *, settle_members: bool = False, series: dict | None = None) -> list[PathUpdate]:
    """The store updates for one converted file (see the module docstring).

    ``settle_members``: also record the run folder's other config-like files as holding nothing
    (the daemon: a config file converted before its folder became a run is no config after all).
    ``series``: the runs' metric series the converter handed over (``PathUpdate.series``, run id ->
    rows); they ride on the file's own update (a store takes series per batch, whatever the path).
    """
    path = os.path.abspath(path)
    own: list[dict] = []
    own_bodies: list[bytes | None] = []
    moved: list[PathUpdate] = []
    for i, doc in enumerate(docs):
        body = bodies[i] if i < len(bodies) else None
        home = run_home(doc)
        if home is not None and home != path:
            moved.append(PathUpdate(home, [doc], None, [body] if bodies else ()))
            if settle_members:
                moved += _settle(home, path)
        else:
            own.append(doc)
            own_bodies.append(body)
    extra = {"series": series} if series else {}
    return [PathUpdate(path, own, state, own_bodies if bodies else (), **extra), *moved]


def _settle(folder: str, done: str) -> list[PathUpdate]:
    return [PathUpdate(p, [], file_state(st)) for p, st in _config_files(folder, done)]


def _config_files(folder: str, done: str = "") -> list[tuple[str, os.stat_result]]:
    """The config-like files of a (once or future) run folder and its tool sub-folders, but ``done``."""
    out = []
    for sub in ("", *TOOL_SUBFOLDERS):
        d = os.path.join(folder, sub) if sub else folder
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            if p == done or not n.endswith((".yaml", ".yml", ".json", ".toml")):
                continue
            try:
                st = os.stat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((p, st))
    return out


def gone_updates(path: str, convert: Callable[[str], list[dict]]) -> list[PathUpdate]:
    """The updates for a vanished file: it holds nothing, and the folders above it that held a run
    hold what a fresh read of them gives (nothing, once the run folder is gone or is no run any more).

    ``convert`` reads a folder or a file. A folder that cannot be read, or is still a run folder
    by its layout, keeps its run: a read error never deletes a live run.
    """
    path = os.path.abspath(path)
    out = [PathUpdate(path, [], None)]
    folder = path
    for _ in range(_UP):
        folder = os.path.dirname(folder)
        if not os.path.isdir(folder):
            out.append(PathUpdate(folder, [], None))  # the run folder itself is gone
            continue
        docs = [d for d in convert(folder) if run_home(d) == folder]
        if docs:  # still a run, one file short
            out.append(PathUpdate(folder, docs, None))
        elif _made_run(path, folder) and _no_run(folder):  # its run files are gone, the folder stays: the run leaves the store,
            out.append(PathUpdate(folder, [], None))  # and the configs left in it are configs again
            for p, st in _config_files(folder):
                out += path_updates(p, convert(p), file_state(st))
    return out


def _made_run(path: str, folder: str) -> bool:
    """True if ``path`` is a file some run layout reads in ``folder``, or lay in a tool's sub-folder
    of it (gone, an MLflow metric is no member any more): its loss can end a run there."""
    p, f = Path(path), Path(folder)
    if p.parent.parent == f and p.parent.name in TOOL_SUBFOLDERS:
        return True
    for rec in RECOGNISERS:
        try:
            if p in rec.members(f):
                return True
        except OSError:
            continue
    return False


def _no_run(folder: str) -> bool:
    """True if ``folder`` can be read and is no run folder of any layout (a read error proves nothing)."""
    try:
        os.listdir(folder)
    except OSError:
        return False
    return recognise_folder(folder) is None


def dedupe(updates: list[PathUpdate]) -> list[PathUpdate]:
    """``updates`` with only the last of several stateless (run folder, gone) updates of one path."""
    last = {u.path: i for i, u in enumerate(updates) if u.state is None}
    return [u for i, u in enumerate(updates) if u.state is not None or last[u.path] == i]
