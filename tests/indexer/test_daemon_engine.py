"""The Indexer engine with real watchdog observers (inotify and polling), real threads,
a stand-in converter and an in-memory store: what a user does to files ends up in the store."""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from ednaquery.fsutil import write_atomic  # saves like an editor: a temp file beside it, then a rename
from indexer.patterns import DEFAULT_EXCLUDE
from tests.support.clock import HeldClock
from tests.support.indexer import FakeStore, disk_states
from tests.support.wait import wait_until


def started(ix):
    ix.start()
    assert ix.wait_idle(5), ix.status()
    return ix


def test_create_modify_delete(make_indexer, fake_store: FakeStore, root: Path) -> None:
    ix = started(make_indexer(root))
    f = root / "exp" / "config.yaml"
    f.parent.mkdir()
    f.write_text("lr: 0.1\nmodel: resnet\n")
    assert wait_until(lambda: fake_store.config(f) == {"lr": 0.1, "model": "resnet"})
    f.write_text("lr: 0.01\nmodel: resnet\n")
    assert wait_until(lambda: fake_store.config(f) == {"lr": 0.01, "model": "resnet"})
    f.unlink()
    assert wait_until(lambda: str(f) in fake_store.deleted)
    assert fake_store.config(f) is None
    st = ix.status()
    assert st["files_indexed"] >= 2 and st["deleted"] == 1 and st["errors"] == 0
    assert st["last_event"]["path"] == str(f)


def test_editor_save_by_rename_is_one_clean_update(make_indexer, fake_store: FakeStore, root: Path) -> None:
    f = root / "train.yaml"
    f.write_text("epochs: 1\n")
    ix = started(make_indexer(root))
    assert fake_store.config(f) == {"epochs": 1}
    write_atomic(f, "epochs: 2\n")
    assert wait_until(lambda: fake_store.config(f) == {"epochs": 2})
    assert ix.wait_idle(5)
    # the editor's temp file never shows up, and nothing is marked deleted
    assert fake_store.paths() == {str(f)}
    assert fake_store.deleted == set()


def test_move_a_folder(make_indexer, fake_store: FakeStore, root: Path) -> None:
    src = root / "sweep-a"
    (src / "run-1").mkdir(parents=True)
    for i in range(5):
        (src / "run-1" / f"c{i}.yaml").write_text(f"i: {i}\n")
    ix = started(make_indexer(root))
    assert len(fake_store.paths()) == 5
    dest = root / "archive" / "sweep-a"
    dest.parent.mkdir()
    os.rename(src, dest)
    want = {str(dest / "run-1" / f"c{i}.yaml") for i in range(5)}
    assert wait_until(lambda: fake_store.paths() == want), fake_store.paths()
    assert ix.wait_idle(5)
    assert fake_store.deleted == {str(src / "run-1" / f"c{i}.yaml") for i in range(5)}
    assert fake_store.states == disk_states(root)


def test_folder_moved_out_of_the_tree_is_marked_gone(make_indexer, fake_store: FakeStore, root: Path,
                                                     tmp_path: Path) -> None:
    d = root / "old"
    d.mkdir()
    (d / "a.yaml").write_text("a: 1\n")
    (d / "b.yaml").write_text("b: 1\n")
    ix = started(make_indexer(root))
    assert len(fake_store.paths()) == 2
    os.rename(d, tmp_path / "elsewhere")
    assert wait_until(lambda: fake_store.paths() == set())
    assert ix.wait_idle(5)
    assert fake_store.deleted == {str(d / "a.yaml"), str(d / "b.yaml")}


def test_folder_moved_into_the_tree_is_indexed(make_indexer, fake_store: FakeStore, root: Path,
                                               tmp_path: Path) -> None:
    outside = tmp_path / "staging"
    (outside / "r").mkdir(parents=True)
    for i in range(20):
        (outside / "r" / f"{i}.yaml").write_text(f"i: {i}\n")
    started(make_indexer(root))
    os.rename(outside, root / "incoming")
    assert wait_until(lambda: len(fake_store.paths()) == 20)
    assert fake_store.config(root / "incoming" / "r" / "7.yaml") == {"i": 7}


def test_thousand_files_dropped_at_once(make_indexer, fake_store: FakeStore, root: Path) -> None:
    ix = started(make_indexer(root))
    d = root / "grid"
    d.mkdir()
    for i in range(1000):
        (d / f"run-{i:04d}.yaml").write_text(f"seed: {i}\nlr: 0.001\n")
    assert wait_until(lambda: len(fake_store.paths()) == 1000, timeout=60), len(fake_store.paths())
    assert ix.wait_idle(5)
    assert fake_store.config(d / "run-0999.yaml") == {"seed": 999, "lr": 0.001}
    assert len(fake_store.batches) < 200, "written in batches, not one apply per file"
    assert ix.status()["files_indexed"] >= 1000


def test_file_written_in_many_small_chunks_is_indexed_once_with_its_final_content(
        make_indexer, fake_store: FakeStore, root: Path, mode: str) -> None:
    # the writer takes longer than the quiet period; the quiet clock stands still while it writes, so no
    # stall of the writer on a busy machine can end the quiet period half-way (test_addqueue steps through it)
    clock = HeldClock()
    ix = started(make_indexer(root, debounce=0.5, clock=clock))
    f = root / "metrics.json"
    lines = [f'"k{i}": {i}' for i in range(40)]
    clock.hold()
    with open(f, "w") as fh:
        fh.write("{")
        for i, ln in enumerate(lines):
            fh.write(ln + ("," if i < len(lines) - 1 else ""))
            fh.flush()
            time.sleep(0.02)  # events keep coming while the file grows
        fh.write("}")
    clock.release()
    assert wait_until(lambda: fake_store.config(f) is not None)
    assert ix.wait_idle(5)
    assert fake_store.config(f) == {f"k{i}": i for i in range(40)}
    assert len(fake_store.history[str(f)]) == 1, "a half-written file was converted"


def test_broken_file_becomes_an_error_record_and_the_daemon_goes_on(make_indexer, fake_store: FakeStore,
                                                                   root: Path) -> None:
    ix = started(make_indexer(root))
    bad = root / "bad.yaml"
    bad.write_text("a: [1, 2\nb: }\n")
    good = root / "good.yaml"
    good.write_text("ok: true\n")
    assert wait_until(lambda: fake_store.kind(bad) == "error" and fake_store.config(good) == {"ok": True})
    assert wait_until(lambda: ix.status()["errors"] == 1)
    bad.write_text("a: [1, 2]\n")
    assert wait_until(lambda: fake_store.config(bad) == {"a": [1, 2]})
    assert wait_until(lambda: ix.status()["errors"] == 0), "a fixed file is no longer counted"


def test_excluded_and_unwanted_files_are_ignored(make_indexer, fake_store: FakeStore, root: Path) -> None:
    ix = started(make_indexer(root, exclude=[*DEFAULT_EXCLUDE, "scratch"]))
    (root / ".git").mkdir()
    (root / ".git" / "x.json").write_text("{}")
    (root / "notes.txt").write_text("hello")
    (root / "scratch").mkdir()
    (root / "scratch" / "a.yaml").write_text("a: 1\n")
    (root / ".#c.yaml").write_text("lock")
    (root / "c.yaml").write_text("c: 1\n")
    assert wait_until(lambda: fake_store.config(root / "c.yaml") == {"c": 1})
    assert ix.wait_idle(5)
    assert fake_store.paths() == {str(root / "c.yaml")}


def test_store_down_then_up_loses_nothing(make_indexer, fake_store: FakeStore, root: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="indexer")
    keep = root / "keep.yaml"
    keep.write_text("v: 1\n")
    gone = root / "gone.yaml"
    gone.write_text("v: 1\n")
    ix = started(make_indexer(root))
    assert fake_store.paths() == {str(keep), str(gone)}

    fake_store.down = True
    for i in range(30):
        (root / f"new-{i}.yaml").write_text(f"i: {i}\n")
    keep.write_text("v: 2\n")
    gone.unlink()
    assert wait_until(lambda: ix.status()["store_state"] == "down")
    assert wait_until(lambda: fake_store.failed_calls >= 4, timeout=5), "retries with backoff"
    assert ix.status()["queue_depth"] >= 30
    late = root / "late.yaml"
    late.write_text("late: true\n")  # still watching while the store is down
    assert wait_until(lambda: (ix.status()["last_event"] or {}).get("path") == str(late)), ix.status()
    failed = fake_store.failed_calls
    assert wait_until(lambda: fake_store.failed_calls > failed), "still retrying"

    fake_store.down = False
    assert wait_until(lambda: ix.idle(), timeout=10), ix.status()
    assert fake_store.config(keep) == {"v": 2}
    assert fake_store.config(root / "late.yaml") == {"late": True}
    assert str(gone) in fake_store.deleted
    assert fake_store.states == disk_states(root)
    assert ix.status()["store_state"] == "up"
    down_lines = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    up_lines = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(down_lines) == 1 and len(up_lines) == 1, "one line per state change, not per retry"


def test_store_down_at_start_catches_up_when_it_comes_up(make_indexer, fake_store: FakeStore, root: Path) -> None:
    (root / "a.yaml").write_text("a: 1\n")
    fake_store.down = True
    ix = make_indexer(root)
    ix.start()
    assert wait_until(lambda: fake_store.failed_calls >= 2)
    assert wait_until(lambda: ix.status()["store_state"] == "down")
    (root / "b.yaml").write_text("b: 1\n")
    fake_store.down = False
    assert wait_until(ix.idle, timeout=5)
    assert fake_store.states == disk_states(root)


def test_reconcile_on_start_catches_up_on_changes_made_while_stopped(make_indexer, fake_store: FakeStore,
                                                                      root: Path) -> None:
    for n in ("same", "changed", "deleted"):
        (root / f"{n}.yaml").write_text(f"{n}: 1\n")
    ix = started(make_indexer(root))
    ix.stop()
    assert fake_store.closed == 1
    (root / "changed.yaml").write_text("changed: 2\n")
    (root / "deleted.yaml").unlink()
    (root / "added.yaml").write_text("added: 1\n")
    writes_before = sum(fake_store.batches)
    ix2 = started(make_indexer(root))
    assert fake_store.states == disk_states(root)
    assert fake_store.config(root / "changed.yaml") == {"changed": 2}
    assert str(root / "deleted.yaml") in fake_store.deleted
    assert sum(fake_store.batches) - writes_before == 3, "unchanged files are not converted again"
    assert ix2.last_reconcile["changed"] == 2 and ix2.last_reconcile["gone"] == 1


def test_request_reconcile_finds_what_events_missed(make_indexer, fake_store: FakeStore, root: Path) -> None:
    (root / "a.yaml").write_text("a: 1\n")
    ix = started(make_indexer(root))
    with fake_store.lock:  # the store lost a file (or an event was dropped)
        fake_store.docs.clear()
        fake_store.states.clear()
    ix.request_reconcile()
    assert wait_until(lambda: fake_store.config(root / "a.yaml") == {"a": 1})


def test_stop_drains_pending_work_ready_or_not(make_indexer, fake_store: FakeStore, root: Path) -> None:
    ix = started(make_indexer(root, debounce=30))
    for i in range(10):
        (root / f"{i}.yaml").write_text(f"i: {i}\n")
    assert wait_until(lambda: ix.pending() == 10)
    ix.stop()
    assert len(fake_store.paths()) == 10
    assert fake_store.closed == 1


def test_base_file_change_reconverts_its_dependants(make_indexer, fake_store: FakeStore, root: Path) -> None:
    (root / "base.yaml").write_text("lr: 0.1\n")
    child = root / "child.yaml"
    child.write_text("_BASE_: base.yaml\nepochs: 3\n")
    ix = started(make_indexer(root))
    first = len(fake_store.history[str(child)])
    (root / "base.yaml").write_text("lr: 0.2\n")
    assert wait_until(lambda: len(fake_store.history[str(child)]) > first)
    assert ix.wait_idle(5)


def test_missing_root_is_picked_up_once_created(make_indexer, fake_store: FakeStore, root: Path,
                                                tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    later = tmp_path / "later"
    ix = started(make_indexer(root, later))
    assert "does not exist" in ix.status()["roots"][str(later)]
    assert any("does not exist (yet)" in r.getMessage() for r in caplog.records)
    (root / "ok.yaml").write_text("ok: 1\n")  # the other root works meanwhile
    assert wait_until(lambda: fake_store.config(root / "ok.yaml") == {"ok": 1})
    later.mkdir()
    (later / "x.yaml").write_text("x: 1\n")  # written before the watch exists: found by the rescan
    assert wait_until(lambda: fake_store.config(later / "x.yaml") == {"x": 1}, timeout=5)
    assert wait_until(lambda: ix.status()["roots"][str(later)].startswith("watching"))
    (later / "y.yaml").write_text("y: 1\n")
    assert wait_until(lambda: fake_store.config(later / "y.yaml") == {"y": 1})


def test_deleted_root_is_marked_gone_and_watched_again_when_recreated(make_indexer, fake_store: FakeStore,
                                                                      root: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    (root / "sub").mkdir()
    (root / "sub" / "a.yaml").write_text("a: 1\n")
    ix = started(make_indexer(root))
    shutil.rmtree(root)
    assert wait_until(lambda: fake_store.paths() == set(), timeout=5)
    assert wait_until(lambda: "does not exist" in ix.status()["roots"][str(root)], timeout=5)
    assert any("was deleted" in r.getMessage() for r in caplog.records)
    root.mkdir()
    (root / "b.yaml").write_text("b: 1\n")
    assert wait_until(lambda: fake_store.config(root / "b.yaml") == {"b": 1}, timeout=5)
    assert wait_until(lambda: ix.status()["roots"][str(root)].startswith("watching"))
    (root / "c.yaml").write_text("c: 1\n")
    assert wait_until(lambda: fake_store.config(root / "c.yaml") == {"c": 1})


def test_bad_roots_each_get_one_line_and_do_not_stop_the_others(make_indexer, fake_store: FakeStore,
                                                                root: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    a_file = tmp_path / "file.yaml"
    a_file.write_text("x: 1\n")
    ix = started(make_indexer(root, loop, a_file))
    (root / "ok.yaml").write_text("ok: 1\n")
    assert wait_until(lambda: fake_store.config(root / "ok.yaml") == {"ok": 1})
    rounds = ix.monitor.check_rounds
    assert wait_until(lambda: ix.monitor.check_rounds >= rounds + 3), "the bad roots are retried"
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("symlink loop" in m for m in msgs) == 1
    assert sum("is not a folder" in m for m in msgs) == 1
    assert ix.status()["roots"][str(root)].startswith("watching")


def test_real_converter_and_store_base_file_change_updates_the_effective_config(root: Path, tmp_path: Path,
                                                                               mode: str) -> None:
    from ednaquery.store import open_store
    from indexer.daemon import Indexer

    db = str(tmp_path / "index.db")
    (root / "Base-RCNN.yaml").write_text("SOLVER:\n  BASE_LR: 0.02\n  MAX_ITER: 90000\n")
    child = root / "faster_rcnn_R_50_FPN_1x.yaml"
    child.write_text('_BASE_: "Base-RCNN.yaml"\nMODEL:\n  DEPTH: 50\n')
    ix = Indexer(lambda: open_store(db), [str(root)], debounce=0.05, poll=mode == "polling", poll_interval=0.1,
                 reconcile_every=None)
    ix.start()
    assert ix.wait_idle(10)
    reader = open_store(db)  # opened after the daemon created the database
    try:
        def effective_lr() -> float | None:
            docs = reader.history(str(child))
            return docs[0]["config"]["SOLVER"]["BASE_LR"] if docs else None

        assert wait_until(lambda: effective_lr() == 0.02, 10)
        (root / "Base-RCNN.yaml").write_text("SOLVER:\n  BASE_LR: 0.01\n  MAX_ITER: 90000\n")
        assert wait_until(lambda: effective_lr() == 0.01, 10), "the config that inherits was re-indexed"
        assert ix.wait_idle(5)
        assert reader.file_states(str(root)) == disk_states(root)
    finally:
        ix.stop()
        reader.close()


def test_stop_also_finishes_folder_rescans(make_indexer, fake_store: FakeStore, root: Path) -> None:
    (root / "old").mkdir()
    (root / "old" / "a.yaml").write_text("a: 1\n")
    (root / "keep.yaml").write_text("k: 1\n")
    ix = started(make_indexer(root, debounce=30))
    shutil.rmtree(root / "old")
    assert wait_until(lambda: str(root / "old") in ix.queue)
    ix.stop()
    assert fake_store.paths() == {str(root / "keep.yaml")}
    assert fake_store.deleted == {str(root / "old" / "a.yaml")}


def test_a_signal_landing_while_the_main_thread_holds_a_lock_still_drains_and_exits(
        make_indexer, fake_store: FakeStore, root: Path) -> None:
    """serve()'s signal handler takes no lock: SIGTERM arrives while the main loop is inside pending()
    holding a (non-reentrant) lock, as a status write can be; the old handler logged pending() itself and
    hung there for good. Now the loop sees the signal, drains the queued file and returns 0."""
    import signal
    import threading

    ix = make_indexer(root)
    held = threading.Lock()
    real_pending = ix.pending
    sent = []

    def pending_under_lock() -> int:
        with held:
            if not sent and started_serving.is_set():
                sent.append(True)
                os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, in this thread, lock held
                for _ in range(1000):  # bytecodes for the handler to run in while the lock is held
                    pass
            return real_pending()

    started_serving = threading.Event()
    ix.pending = pending_under_lock  # type: ignore[method-assign]
    (root / "a.yaml").write_text("a: 1\n")
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        threading.Timer(0.3, started_serving.set).start()
        status = root.parent / "status.json"
        assert ix.serve(status_path=status, status_every=0.05) == 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert sent, "the test never sent its signal"
    assert fake_store.file_states(str(root)) == disk_states(root)
