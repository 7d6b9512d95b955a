"""The monitor on its own: events to queue work, inotify exhaustion, read-only roots."""
from __future__ import annotations

import errno
import logging
import os
import subprocess
from pathlib import Path

import pytest
from watchdog.observers import Observer

from indexer.daemon import Indexer
from indexer.monitor import Monitor
from indexer.queue import CONVERT, GONE, RESCAN, AddQueue
from tests.support.indexer import FakeStore, standin_convert
from tests.support.wait import wait_until


def drain(q: AddQueue) -> dict[str, int]:
    out: dict[str, int] = {}
    for p, op in q.get_ready(10_000, force=True):
        out[p] = op
    return out


@pytest.mark.parametrize("poll", [False, True])
def test_events_become_queue_work(tmp_path: Path, poll: bool) -> None:
    root = Path(os.path.realpath(tmp_path))
    (root / "d").mkdir()
    (root / "gone.yaml").write_text("a: 1")
    q = AddQueue(quiet=0)
    m = Monitor([str(root)], q, poll=poll, poll_interval=0.1)
    m.start()
    try:
        (root / "new.yaml").write_text("a: 1")
        (root / "gone.yaml").unlink()
        (root / "notes.txt").write_text("not indexed")
        os.rename(root / "d", root / "e")
        assert wait_until(lambda: {str(root / "new.yaml"), str(root / "gone.yaml"), str(root / "e")} <= set(q._items))
        work = drain(q)
        assert work[str(root / "new.yaml")] == CONVERT
        assert work[str(root / "gone.yaml")] == GONE
        assert work[str(root / "e")] == RESCAN
        assert str(root / "notes.txt") not in work
        assert m.states() == {str(root): f"watching ({'polling' if poll else 'inotify'})"}
    finally:
        m.stop()


class NoWatchesLeft(Observer):  # type: ignore[misc,valid-type]
    """A real inotify observer whose kernel has no watches left (as with fs.inotify.max_user_watches)."""

    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_inotify_limit_falls_back_to_polling_with_one_line(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    roots = [Path(os.path.realpath(tmp_path)) / n for n in ("a", "b")]
    for r in roots:
        r.mkdir()
    store = FakeStore()
    ix = Indexer(store.factory, [str(r) for r in roots], convert=standin_convert, debounce=0.05,
                 poll_interval=0.1, observer_factory=NoWatchesLeft, reconcile_every=None)
    ix.start()
    try:
        assert ix.wait_idle(5)
        for r in roots:
            (r / "x.yaml").write_text("x: 1\n")
        assert wait_until(lambda: all(store.config(r / "x.yaml") == {"x": 1} for r in roots))
        assert set(ix.status()["roots"].values()) == {"watching (polling)"}
        lines = [r.getMessage() for r in caplog.records if "inotify watches ran out" in r.getMessage()]
        assert len(lines) == 2 and "polling it every 0.1 s" in lines[0]
    finally:
        ix.stop()


class WatchesRunOutPartWay(Observer):  # type: ignore[misc,valid-type]
    """A real inotify observer on a kernel whose watches ran out after the root's own: as watchdog does
    on some versions and kernels, it watches the root and silently skips every folder below it."""

    def schedule(self, event_handler, path, recursive=False, **kwargs):
        return super().schedule(event_handler, path, recursive=False, **kwargs)


def _tree(root: Path, folders: int) -> Path:
    """``folders`` sub-folders with one config each; returns the last config."""
    for i in range(folders):
        (root / f"run-{i}").mkdir()
        (root / f"run-{i}" / "config.yaml").write_text(f"i: {i}\n")
    return root / f"run-{folders - 1}" / "config.yaml"


def _ran_out_lines(caplog: pytest.LogCaptureFixture, root: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"inotify watches ran out while watching {root} ")]


def test_watches_that_ran_out_part_way_are_found_after_the_walk_and_the_root_is_polled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    root = Path(os.path.realpath(tmp_path)) / "big"
    root.mkdir()
    deep = _tree(root, 5)
    store = FakeStore()
    ix = Indexer(store.factory, [str(root)], convert=standin_convert, debounce=0.05, poll_interval=0.1,
                 observer_factory=WatchesRunOutPartWay, reconcile_every=None)
    ix.start()
    try:
        # the first walk counts 6 folders where inotify watches 1: the root is polled from then on
        assert wait_until(lambda: ix.status()["roots"][str(root)] == "watching (polling)"), ix.status()
        assert wait_until(lambda: len(store.paths()) == 5)
        deep.write_text("i: 40\n")  # a folder inotify never watched
        assert wait_until(lambda: store.config(deep) == {"i": 40}), store.config(deep)
        assert ix.wait_idle(5)
    finally:
        ix.stop()
    assert _ran_out_lines(caplog, root) == [
        (f"inotify watches ran out while watching {root} (1 of 6 folders watched); polling it every 0.1 s "
         "instead (raise fs.inotify.max_user_watches with sysctl to avoid this)")]


def test_a_fully_watched_root_stays_on_inotify(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = Path(os.path.realpath(tmp_path))
    _tree(root, 5)
    m = Monitor([str(root)], AddQueue(quiet=0), poll_interval=0.1)
    m.start()
    try:
        m.check_watches(str(root), 6)
        assert m.states() == {str(root): "watching (inotify)"}
    finally:
        m.stop()
    assert _ran_out_lines(caplog, root) == []


def test_a_tree_that_shrank_since_the_walk_is_not_taken_for_missing_watches(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = Path(os.path.realpath(tmp_path))
    m = Monitor([str(root)], AddQueue(quiet=0), poll_interval=0.1, observer_factory=WatchesRunOutPartWay)
    m.start()
    try:
        m.check_watches(str(root), 6)  # the walk saw 6 folders; they are gone now, and 1 of 1 is watched
        assert m.states() == {str(root): "watching (inotify)"}
    finally:
        m.stop()
    assert _ran_out_lines(caplog, root) == []


def test_inotify_instances_exhausted_on_creation_also_falls_back(tmp_path: Path, caplog) -> None:
    def no_instances():
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    q = AddQueue(quiet=0)
    m = Monitor([str(tmp_path)], q, poll_interval=0.1, observer_factory=no_instances)
    m.start()
    try:
        assert m.states() == {str(tmp_path): "watching (polling)"}
        (tmp_path / "a.json").write_text("{}")
        assert wait_until(lambda: str(tmp_path / "a.json") in q)
    finally:
        m.stop()
    assert any("inotify instances ran out" in r.getMessage() for r in caplog.records)


@pytest.fixture
def read_only_root(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "frozen.yaml").write_text("frozen: true\n")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    ok = subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True, check=False).returncode == 0
    if ok:
        ok = subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], capture_output=True, check=False).returncode == 0
        if not ok:
            subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
    if not ok:
        pytest.skip("cannot make a read-only bind mount here (needs mount privileges)")
    try:
        yield Path(os.path.realpath(mnt))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False)


def test_read_only_root_is_indexed_and_said_so_once(read_only_root: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    other = tmp_path / "other"
    other.mkdir()
    store = FakeStore()
    ix = Indexer(store.factory, [str(read_only_root), str(other)], convert=standin_convert, debounce=0.05,
                 reconcile_every=None)
    ix.start()
    try:
        assert ix.wait_idle(5)
        assert store.config(read_only_root / "frozen.yaml") == {"frozen": True}
        (other / "live.yaml").write_text("live: 1\n")
        assert wait_until(lambda: store.config(other / "live.yaml") == {"live": 1})
    finally:
        ix.stop()
    assert sum("read-only mount" in r.getMessage() for r in caplog.records) == 1
