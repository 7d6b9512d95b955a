"""Files of an indexed run folder, and nothing else: the one guard the file routes go through.

A request names a run (by id) and a path relative to its folder. ``..`` segments, absolute
paths, and anything whose real path (symlinks resolved) leaves the folder are refused with
:class:`FileRefused`, which the routes answer with 404.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ednaquery.annotations import run_folder as annotation_run_folder

__all__ = ["IMAGE_TYPES", "FileRefused", "RunFile", "list_files", "resolve", "run_folder"]

#: images shown inline on the run page (confusion matrix, prediction grid, curves)
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}
#: at most this many entries in a run folder's file list
MAX_LISTED = 500


class FileRefused(Exception):
    """The path is not a readable file inside the run folder."""


@dataclass(frozen=True)
class RunFile:
    """One file of a run folder: path relative to the folder, size in bytes, whether it is an image."""

    path: str
    size: int
    image: bool


def run_folder(kind: str | None, paths: list[str] | None) -> str | None:
    """The real path of an indexed run's folder (:func:`ednaquery.annotations.run_folder`); None for
    anything else: a config's folder is not the config's to show (it may be a home folder), and an
    MLflow-db run (``mlflow.db#id``) has no folder of its own."""
    if kind != "run" or not paths:
        return None
    folder = annotation_run_folder(paths)
    return os.path.realpath(folder) if os.path.isdir(folder) else None


def resolve(folder: str, relative: str) -> str:
    """The real path of ``relative`` inside ``folder``; :class:`FileRefused` when it is not a file there."""
    if not relative or "\x00" in relative or relative.startswith(("/", "\\")) or os.path.isabs(relative):
        raise FileRefused(relative)
    parts = relative.replace("\\", "/").split("/")
    if any(p in ("..", "") for p in parts):
        raise FileRefused(relative)
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, real]) != root or real == root or not os.path.isfile(real):
        raise FileRefused(relative)
    return real


def list_files(folder: str, limit: int = MAX_LISTED) -> list[RunFile]:
    """Files under ``folder`` (symlinks that leave it are left out), sorted, at most ``limit``."""
    root = os.path.realpath(folder)
    out: list[RunFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            try:
                real = resolve(root, rel)
                size = os.path.getsize(real)
            except (FileRefused, OSError):
                continue
            out.append(RunFile(rel, size, os.path.splitext(name)[1].lower() in IMAGE_TYPES))
            if len(out) >= limit:
                return out
    return out
