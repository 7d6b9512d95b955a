"""The reconcile walk: every wanted file under a root with its (size, mtime_ns, inode).

Comparing this with what the store recorded is how the indexer catches up on whatever
happened while it was not running (or events the kernel dropped). The walk uses
``os.scandir`` (one ``stat`` per wanted file), prunes excluded folders, never follows
symlinked folders, not even when asked to walk one (so a link loop cannot hang it, and no file is
indexed under an alias path; watchdog does not follow them either; a symlinked file is a file at its own
path)
and remembers each folder's (device, inode) so a bind-mount cycle cannot either. Folders
it cannot list are reported, not fatal, so the caller keeps what the store knows about
them instead of marking their files deleted. Named pipes, devices and sockets with a config's name
are listed like files, so that converting them gives an error record (they are never opened).
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from ednaquery.documents import make_error_document
from ednaquery.store.base import FileState, PathUpdate
from indexer.patterns import PathFilter, rel_parts


@dataclass
class WalkResult:
    """What a walk found: wanted files and their states, and folders it could not read."""

    files: dict[str, FileState] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # folder -> reason
    folders: int = 0

    def hides(self, path: str) -> bool:
        """True if ``path`` is a folder the walk could not list, or lies in one: whether it is gone is unknown."""
        if not self.unreadable:
            return False
        return path in self.unreadable or path.startswith(tuple(f.rstrip(os.sep) + os.sep for f in self.unreadable))


def file_state(st: os.stat_result) -> FileState:
    return FileState(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


def unreadable_update(folder: str, why: str) -> PathUpdate:
    """An error record at a folder the walk cannot list, so that ``ednaquery errors`` shows it.

    The record goes when a later walk can list the folder (its path is then not a file found).
    """
    try:
        st = os.lstat(folder)
        state, mtime = file_state(st), st.st_mtime
    except OSError:
        state, mtime = FileState(0, 0, 0), None
    doc = make_error_document(folder, f"cannot list this folder ({why}); the files in it are not indexed "
                                      "until it can be read", format="folder", mtime=mtime)
    return PathUpdate(folder, [doc], state)


def walk(top: str, pfilter: PathFilter, *, root: str | None = None,
         should_stop: Callable[[], bool] | None = None,
         on_file: Callable[[str, FileState], None] | None = None, keep_files: bool = True) -> WalkResult:
    """Walk ``top`` (a root, or a folder below ``root``) and return the wanted files in it.

    ``on_file(path, state)`` hears of each file as it is found (a scan converts meanwhile);
    ``keep_files=False`` leaves ``files`` empty, so that memory does not grow with the files found."""
    root = root or top
    result = WalkResult()
    base = rel_parts(root, top)
    if base is None:
        return result
    if base and not pfilter.wants_dir(base):
        return result
    if top != root and os.path.islink(top):
        return result  # a symlinked folder: never followed
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, tuple[str, ...]]] = [(top, base)]
    while stack:
        if should_stop is not None and should_stop():
            break
        folder, parts = stack.pop()
        try:
            st = os.stat(folder, follow_symlinks=folder == top)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            it = os.scandir(folder)
        except FileNotFoundError:
            continue
        except OSError as exc:
            result.unreadable[folder] = exc.strerror or str(exc)
            continue
        result.folders += 1
        with it:
            while True:
                try:
                    entry = next(it)
                except StopIteration:
                    break
                except OSError as exc:  # e.g. EIO half-way through a listing
                    result.unreadable[folder] = exc.strerror or str(exc)
                    break
                sub = (*parts, entry.name)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not pfilter.prunes_dir(sub):
                            stack.append((entry.path, sub))
                        continue
                    if not pfilter.wants_file_in_walk(sub):
                        continue
                    st = entry.stat()  # through a symlinked file
                    if stat.S_ISDIR(st.st_mode):
                        continue  # a symlinked folder: never followed
                    state = file_state(st)
                    if keep_files:
                        result.files[entry.path] = state
                except OSError:  # vanished, dangling link, link loop: not a file we can index
                    continue
                if on_file is not None:
                    on_file(entry.path, state)
    return result
