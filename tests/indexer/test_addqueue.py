"""AddQueue: coalescing, debounce, ordering, thread safety, bounded memory."""
from __future__ import annotations

import threading
import tracemalloc

from indexer.queue import CONVERT, DEPENDANT, GONE, RESCAN, AddQueue
from tests.support.clock import FakeClock
from tests.support.wait import wait_until


def test_many_events_for_one_path_become_one_item_with_the_latest_op() -> None:
    q = AddQueue(quiet=0)
    for _ in range(50):
        q.add("/r/a.yaml", CONVERT)
    q.add("/r/a.yaml", GONE)
    q.add("/r/b.yaml", GONE)
    q.add("/r/b.yaml", CONVERT)  # deleted then recreated: convert it
    assert q.pending() == 2
    assert sorted(q.get_ready(10)) == [("/r/a.yaml", GONE), ("/r/b.yaml", CONVERT)]
    assert q.pending() == 0


def test_folder_rescan_is_never_downgraded_and_dependant_never_overrides_an_event() -> None:
    q = AddQueue(quiet=0)
    q.add("/r/d", RESCAN)
    q.add("/r/d", CONVERT)
    q.add("/r/x.yaml", CONVERT)
    q.add("/r/x.yaml", DEPENDANT, now=True)
    q.add("/r/y.yaml", DEPENDANT, now=True)
    q.add("/r/y.yaml", CONVERT)
    assert dict(q.get_ready(10)) == {"/r/d": RESCAN, "/r/x.yaml": CONVERT, "/r/y.yaml": CONVERT}


def test_move_is_gone_source_plus_convert_destination() -> None:
    q = AddQueue(quiet=0)
    q.add("/r/new.yaml", CONVERT)
    q.moved("/r/new.yaml", "/r/final.yaml")
    assert dict(q.get_ready(10)) == {"/r/new.yaml": GONE, "/r/final.yaml": CONVERT}


def test_a_path_is_ready_only_after_a_quiet_period_without_events() -> None:
    clock = FakeClock(1000.0)
    q = AddQueue(quiet=0.15, clock=clock)
    for _ in range(20):  # a writer appending every 20 ms for 0.4 s
        last_write = clock.now
        q.add("/r/metrics.jsonl", CONVERT)
        assert q.get_ready(10) == []
        clock.advance(0.02)
    clock.now = last_write + 0.149
    assert q.get_ready(10) == []
    clock.now = last_write + 0.15
    assert q.get_ready(10) == [("/r/metrics.jsonl", CONVERT)]


def test_debounce_is_per_path() -> None:
    clock = FakeClock(1000.0)
    q = AddQueue(quiet=0.1, clock=clock)
    q.add("/r/quiet.yaml", CONVERT)
    for _ in range(13):  # another file written every 20 ms for 0.25 s
        q.add("/r/busy.yaml", CONVERT)
        clock.advance(0.02)
    assert q.get_ready(10) == [("/r/quiet.yaml", CONVERT)]
    assert q.pending() == 1


def test_walk_work_is_ready_at_once_but_does_not_cut_short_a_pending_debounce() -> None:
    q = AddQueue(quiet=5)
    q.add("/r/being-written.yaml", CONVERT)
    q.add("/r/found-by-walk.yaml", CONVERT, now=True)
    q.add("/r/being-written.yaml", CONVERT, now=True)
    assert q.get_ready(10) == [("/r/found-by-walk.yaml", CONVERT)]
    assert q.get_ready(10, force=True) == [("/r/being-written.yaml", CONVERT)]


def test_get_ready_respects_max_items_and_order() -> None:
    q = AddQueue(quiet=0)
    for i in range(10):
        q.add(f"/r/{i}.yaml")
    assert [p for p, _ in q.get_ready(4)] == [f"/r/{i}.yaml" for i in range(4)]
    assert len(q.get_ready(100)) == 6


def test_requeue_keeps_newer_pending_work() -> None:
    q = AddQueue(quiet=0)
    q.add("/r/a.yaml", GONE)
    q.requeue([("/r/a.yaml", CONVERT), ("/r/b.yaml", CONVERT)])
    assert dict(q.get_ready(10)) == {"/r/a.yaml": GONE, "/r/b.yaml": CONVERT}


def test_wait_ready_says_ready_only_once_the_quiet_period_is_over() -> None:
    clock = FakeClock(1000.0)
    q = AddQueue(quiet=0.1, clock=clock)
    assert not q.wait_ready(timeout=0)
    q.add("/r/a.yaml")
    assert not q.wait_ready(timeout=0)
    clock.advance(0.1)
    assert q.wait_ready(timeout=0)
    assert q.get_ready(1) == [("/r/a.yaml", CONVERT)]


def _waiter(q: AddQueue, timeout: float | None) -> tuple[threading.Thread, list[bool]]:
    """``q.wait_ready(timeout)`` on a thread of its own; its answer lands in the returned list."""
    answer: list[bool] = []
    t = threading.Thread(target=lambda: answer.append(q.wait_ready(timeout)), daemon=True)
    t.start()
    return t, answer


def test_a_waiter_on_an_empty_queue_wakes_when_work_arrives() -> None:
    q = AddQueue(quiet=0.05)
    t, answer = _waiter(q, None)  # no timeout: only the new work can end the wait
    q.add("/r/a.yaml")
    t.join(30)
    assert answer == [True]
    assert q.get_ready(1) == [("/r/a.yaml", CONVERT)]


def test_wait_ready_times_out_and_wake_releases_it() -> None:
    q = AddQueue(quiet=3600)
    q.add("/r/a.yaml")
    assert not q.wait_ready(timeout=0.05)  # nothing ready before the timeout (the path waits an hour)
    t, answer = _waiter(q, None)
    assert wait_until(lambda: (q.wake(), not t.is_alive())[1], timeout=30), "wake() did not release the waiter"
    assert answer == [False] and q.pending() == 1


def test_full_queue_drops_new_paths_and_says_so() -> None:
    q = AddQueue(quiet=0, max_pending=3)
    for i in range(5):
        q.add(f"/r/{i}.yaml")
    assert q.pending() == 3 and q.overflowed
    assert q.add("/r/0.yaml", GONE)  # a pending path still takes new work
    assert q.take_overflow() and not q.overflowed


def test_concurrent_producers_and_a_consumer_lose_nothing() -> None:
    q = AddQueue(quiet=0.01)
    paths = [f"/r/run-{i}/config.yaml" for i in range(500)]
    taken: list[str] = []
    done = threading.Event()

    def produce(seed: int) -> None:
        for n in range(4000):
            q.add(paths[(n * 7 + seed) % len(paths)])

    def consume() -> None:
        while not (done.is_set() and q.pending() == 0):
            q.wait_ready(0.05)
            taken.extend(p for p, _ in q.get_ready(64))

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(s,)) for s in range(4)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    done.set()
    consumer.join(timeout=10)
    assert set(taken) == set(paths)
    assert len(taken) < 16000  # coalesced, not one conversion per event


def test_memory_per_pending_path_is_small() -> None:
    n = 20_000
    q = AddQueue()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            q.add(f"/home/user/experiments/sweep-2026-11-{i % 28:02d}/resnet50-img224-adamw/run-{i:07d}/config.yaml")
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 100k pending paths must stay within a few tens of MB (bench/queue_memory.py prints the figure)
    assert used / n * 100_000 < 40e6
