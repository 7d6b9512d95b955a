"""Which files the indexer looks at: the default include/exclude globs and the matcher.

One matcher serves the watchdog monitor (is this event's path ours?) and the reconcile
walk (which folders to prune, which files to stat), so both always agree on what is
indexed. Patterns are shell globs matched case-sensitively against path components
relative to a root:

- an *include* pattern matches the tail of the path: ``*.yaml`` the file name,
  ``params/*`` a file directly inside a folder called ``params`` (MLflow);
- an *exclude* pattern matches any run of components anywhere in the path, so ``.git``
  drops the folder and all below it, ``wandb/*/files/media`` drops W&B media folders,
  and ``*.pt`` drops checkpoints.
"""
from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence

#: Files that can hold a config or a run's outputs. Others may import this list.
DEFAULT_INCLUDE: tuple[str, ...] = (
    "*.yaml", "*.yml", "*.json", "*.toml",
    # run outputs (our trainer, Lightning, W&B, generic)
    "metrics.jsonl", "metrics.csv", "summary.json", "run.json", "wandb-summary.json", "meta.yaml",
    # MLflow file store: mlruns/<exp>/<run>/params/<name>, .../metrics/<name>
    "params/*", "metrics/*",
    # W&B >= 0.17 run files, TensorBoard event files, MLflow's SQLite store
    "*.wandb", "events.out.tfevents.*", "mlflow.db",
)

#: Folders and files never indexed: VCS/tool folders, checkpoints and other binaries,
#: W&B media, editor temp/lock/swap files (emacs ``.#x``, ``x~``, vim ``.x.swp`` and its
#: ``4913`` probe file), and ednaquery's own state folder.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "site-packages",
    ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    "*.pt", "*.pth", "*.ckpt", "*.safetensors", "*.bin", "*.npy", "*.npz", "*.pkl",
    "*.png", "*.jpg", "*.jpeg", "*.gif", "*.pdf",
    "wandb/*/files/media",
    ".#*", "*~", ".*.swp", ".*.swo", ".*.swx", "4913",
    ".ednaquery",
)


def _split(pattern: str) -> tuple[str, ...]:
    return tuple(p for p in pattern.strip().strip("/").split("/") if p)


def _one_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


class PathFilter:
    """Decides, from a path relative to a root, whether the indexer wants it."""

    def __init__(self, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None) -> None:
        self.include = tuple(DEFAULT_INCLUDE if include is None else include)
        self.exclude = tuple(DEFAULT_EXCLUDE if exclude is None else exclude)
        inc = [_split(p) for p in self.include if _split(p)]
        exc = [_split(p) for p in self.exclude if _split(p)]
        self._inc_name = _one_regex(p[0] for p in inc if len(p) == 1)
        self._inc_multi = [p for p in inc if len(p) > 1]
        self._exc_name = _one_regex(p[0] for p in exc if len(p) == 1)
        self._exc_multi = [p for p in exc if len(p) > 1]

    # -- building blocks -------------------------------------------------------------
    def _excluded_ending_at(self, parts: Sequence[str], end: int) -> bool:
        """True if an exclude pattern matches a run of components ending at index ``end``."""
        if self._exc_name is not None and self._exc_name.match(parts[end]):
            return True
        for pat in self._exc_multi:
            start = end - len(pat) + 1
            if start >= 0 and all(fnmatch.fnmatchcase(parts[start + i], seg) for i, seg in enumerate(pat)):
                return True
        return False

    def _included_tail(self, parts: Sequence[str]) -> bool:
        if self._inc_name is not None and self._inc_name.match(parts[-1]):
            return True
        for pat in self._inc_multi:
            if len(parts) >= len(pat) and all(
                fnmatch.fnmatchcase(parts[len(parts) - len(pat) + i], seg) for i, seg in enumerate(pat)
            ):
                return True
        return False

    # -- public ----------------------------------------------------------------------
    def prunes_dir(self, rel_parts: Sequence[str]) -> bool:
        """For the walk: is this folder excluded, given that its parents were not?"""
        return bool(rel_parts) and self._excluded_ending_at(rel_parts, len(rel_parts) - 1)

    def wants_file_in_walk(self, rel_parts: Sequence[str]) -> bool:
        """For the walk: is this file wanted, given that its folders were not pruned?"""
        return (
            bool(rel_parts)
            and self._included_tail(rel_parts)
            and not self._excluded_ending_at(rel_parts, len(rel_parts) - 1)
        )

    def excluded(self, rel_parts: Sequence[str]) -> bool:
        """Is this path, or any folder above it, excluded?"""
        return any(self._excluded_ending_at(rel_parts, i) for i in range(len(rel_parts)))

    def wants_file(self, rel_parts: Sequence[str]) -> bool:
        """Full check for a file path from an event."""
        return bool(rel_parts) and self._included_tail(rel_parts) and not self.excluded(rel_parts)

    def wants_dir(self, rel_parts: Sequence[str]) -> bool:
        """Full check for a folder path from an event (the root itself is always wanted)."""
        return not self.excluded(rel_parts)


def rel_parts(root: str, path: str) -> tuple[str, ...] | None:
    """Components of ``path`` below ``root`` (``()`` for the root itself); None if outside it."""
    if path == root:
        return ()
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not path.startswith(prefix):
        return None
    return tuple(p for p in path[len(prefix):].split(os.sep) if p)
