"""The launch queue and its workers: atomic claims, heartbeats, stale re-queueing, SIGTERM.

Jobs run through a stub (no training), so these tests take a second or two. SQLite queues
get one connection per worker (as separate processes would); the MongoDB queue runs on
mongomock here, and on real pymongo in test_store_jobs_wire.py. Staleness is driven by a
fake clock (tests.support.clock), never by sleeping, so a loaded machine cannot flip a result.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import mongomock
import pytest

from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore
from tests.support.clock import FakeClock
from tests.support.wait import wait_until
from trainer.ops.jobs import MongoJobQueue, SQLiteJobQueue, open_jobs
from trainer.ops.worker import Outcome, WorkerOptions, run_worker, stop_on_signals


@pytest.fixture
def clock() -> FakeClock:
    """The time every queue made with ``clock=clock`` reads; it moves only when the test advances it."""
    return FakeClock()


@pytest.fixture(params=["sqlite", "mongomock"])
def make_queue(request, tmp_path: Path):
    """A factory of queues on one backend: each call is another worker's own handle."""
    made = []
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "index.db")
    else:
        store = MongoStore("mongodb://localhost/jobs_test", client=mongomock.MongoClient())

    def make(**kw):
        q = open_jobs(store, **kw)
        made.append(q)
        return q

    make.backend = request.param
    yield make
    for q in made:
        q.close()
    store.close()


def test_open_jobs_picks_the_backend_of_the_store(make_queue):
    q = make_queue()
    assert isinstance(q, SQLiteJobQueue if make_queue.backend == "sqlite" else MongoJobQueue)


def test_claims_are_oldest_first_and_never_shared(make_queue):
    q, a, b = make_queue(), make_queue(), make_queue()
    ids = [q.enqueue(f"cfg{i}", [f"epochs={i}"]).id for i in range(3)]
    ja, jb = a.claim("A"), b.claim("B")
    assert (ja.id, jb.id) == (ids[0], ids[1])
    assert ja.status == "running" and ja.worker == "A" and ja.attempts == 1 and ja.overrides == ["epochs=0"]
    jc = a.claim("A")
    assert jc.id == ids[2]
    assert b.claim("B") is None  # queue empty
    assert a.finish(ja.id, "A", "completed", run_id="r1")
    assert not b.finish(ja.id, "B", "completed")  # not B's job
    states = {j.id: (j.status, j.run_id) for j in q.list()}
    assert states[ids[0]] == ("completed", "r1") and states[ids[1]] == ("running", None)


def test_stale_job_is_requeued_and_its_old_worker_is_refused(make_queue, clock):
    q = make_queue(max_attempts=2, clock=clock)
    job = q.enqueue("cfg")
    assert q.claim("dead").id == job.id
    clock.advance(59)
    assert q.requeue_stale(60) == []  # heartbeat younger than the limit: left alone
    clock.advance(2)
    assert q.requeue_stale(60) == [job.id]
    again = q.claim("alive")
    assert again.id == job.id and again.attempts == 2 and again.worker == "alive"
    assert not q.heartbeat(job.id, "dead")  # the dead worker woke up: it must stop
    assert not q.finish(job.id, "dead", "completed")
    clock.advance(59)
    assert q.heartbeat(job.id, "alive")
    clock.advance(59)
    assert q.requeue_stale(60) == []  # 118 s since the claim, but 59 s since the last heartbeat
    clock.advance(2)
    assert q.requeue_stale(60) == [job.id]  # second silent worker: max_attempts reached
    failed = q.get(job.id[:12])
    assert failed.status == "failed" and "heart-beating" in failed.error


def test_requeue_keeps_the_run_for_resume_and_cancel_only_touches_queued(make_queue):
    q = make_queue()
    j1, j2 = q.enqueue("cfg1"), q.enqueue("cfg2")
    q.claim("w")
    assert q.set_run(j1.id, "w", "run-1")
    assert q.requeue(j1.id, "w", error="worker stopped")
    back = q.get(j1.id)
    assert (back.status, back.run_id, back.worker) == ("queued", "run-1", None)
    assert q.cancel(j2.id) and q.get(j2.id).status == "cancelled"
    assert q.claim("w").id == j1.id
    assert not q.cancel(j1.id)  # running: not cancelled


def _stub(log: list, running: set, lock: threading.Lock, seconds: float = 0.05):
    def run_job(job, stop, started):
        with lock:
            assert job.id not in running, f"{job.id} runs twice at once"
            running.add(job.id)
        started(f"run-{job.id}")
        time.sleep(seconds)
        with lock:
            running.discard(job.id)
            log.append((job.id, threading.current_thread().name))
        return Outcome("completed", f"run-{job.id}")
    return run_job


def test_two_workers_run_every_job_exactly_once(tmp_path):
    store = SQLiteStore(tmp_path / "index.db")
    queues = [open_jobs(store) for _ in range(3)]
    ids = {queues[0].enqueue(f"cfg{i}").id for i in range(3)}
    log: list = []
    running: set = set()
    lock = threading.Lock()
    reports = {}

    def work(i):
        reports[i] = run_worker(queues[i + 1], _stub(log, running, lock), worker_id=f"w{i}",
                                options=WorkerOptions(until_empty=True, heartbeat=0.02, poll_interval=0.01))

    threads = [threading.Thread(target=work, args=(i,), name=f"w{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    counts = Counter(job_id for job_id, _ in log)
    assert set(counts) == ids and set(counts.values()) == {1}
    assert sum(len(r.jobs) for r in reports.values()) == 3
    assert {j.status for j in queues[0].list()} == {"completed"}
    assert {j.run_id for j in queues[0].list()} == {f"run-{i}" for i in ids}
    for q in queues:
        q.close()
    store.close()


def test_worker_requeues_a_dead_workers_job_and_runs_it(make_queue, clock):
    q = make_queue(clock=clock)
    job = q.enqueue("cfg")
    q.claim("ghost")  # claimed, then the worker died: no heartbeat ever again
    clock.advance(301)
    log: list = []
    report = run_worker(make_queue(clock=clock), _stub(log, set(), threading.Lock()), worker_id="alive",
                        options=WorkerOptions(until_empty=True, stale_after=300, heartbeat=0.02))
    assert [j for j, _ in log] == [job.id]
    assert report.jobs == [(job.id, "completed")]
    done = q.get(job.id)
    assert done.status == "completed" and done.worker == "alive" and done.attempts == 2


def test_heartbeats_keep_a_long_job_from_being_requeued(make_queue, clock):
    q = make_queue(clock=clock)
    job = q.enqueue("cfg")
    watcher = make_queue(clock=clock)  # another worker, looking for stale jobs as time passes
    requeued: list = []
    beaten: list = []

    def long_job(j, stop, started):  # 0.8 s of the clock, in 0.1 s steps: 3x stale_after
        started("run-1")
        for _ in range(8):
            now = clock.advance(0.1)
            beaten.append(wait_until(lambda now=now: q.get(j.id).heartbeat_at == now, timeout=30))
            requeued.extend(watcher.requeue_stale(0.25))
        return Outcome("completed", "run-1")

    report = run_worker(make_queue(clock=clock), long_job, worker_id="slow", clock=clock,
                        options=WorkerOptions(once=True, heartbeat=0.05, stale_after=0.25))
    assert beaten == [True] * 8  # the worker beat at every step of the clock
    assert requeued == []
    assert report.jobs == [(job.id, "completed")]
    # the same 0.8 s without a heartbeat: the job is stale
    silent = q.enqueue("cfg2")
    q.claim("silent")
    clock.advance(0.8)
    assert watcher.requeue_stale(0.25) == [silent.id]


def test_a_worker_whose_job_was_taken_stops_it_and_leaves_it_alone(make_queue):
    q = make_queue()
    job = q.enqueue("cfg")
    seen_stop = threading.Event()

    def run_job(j, stop, started):
        started("run-1")
        q.requeue_stale(-10)  # everyone else thinks this worker is dead (cutoff in the future)
        if stop.wait(5):
            seen_stop.set()
        return Outcome("interrupted", "run-1")

    report = run_worker(make_queue(), run_job, worker_id="w", options=WorkerOptions(once=True, heartbeat=0.02))
    assert seen_stop.is_set()
    assert report.jobs == [(job.id, "lost")]
    back = q.get(job.id)
    assert back.status == "queued" and back.worker is None  # free for another worker, not finished by w


def test_a_failing_job_is_recorded_and_the_worker_goes_on(make_queue):
    from trainer.errors import ConfigError

    q = make_queue()
    bad, good = q.enqueue("bad"), q.enqueue("good")

    def run_job(job, stop, started):
        if job.config_id == "bad":
            raise ConfigError("not a trainer config: missing model.name")
        return Outcome("completed", "r")

    report = run_worker(make_queue(), run_job, worker_id="w", options=WorkerOptions(until_empty=True))
    assert report.jobs == [(bad.id, "failed"), (good.id, "completed")]
    assert "missing model.name" in q.get(bad.id).error


def test_sigterm_stops_the_run_and_requeues_the_job_with_its_run(tmp_path):
    store = SQLiteStore(tmp_path / "index.db")
    q = open_jobs(store)
    job = q.enqueue("cfg")
    got_stop = threading.Event()

    def run_job(j, stop, started):
        started("run-7")
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        if stop.wait(10):
            got_stop.set()
        return Outcome("interrupted", "run-7")

    stop = threading.Event()
    with stop_on_signals(stop):
        report = run_worker(open_jobs(store), run_job, worker_id="w", stop=stop,
                            options=WorkerOptions(heartbeat=0.02, poll_interval=0.01))
    assert got_stop.is_set() and report.stopped
    assert report.jobs == [(job.id, "requeued")]
    back = q.get(job.id)
    assert (back.status, back.run_id) == ("queued", "run-7")
    q.close()
    store.close()


def test_a_store_without_a_job_queue_is_a_clear_error() -> None:
    from ednaquery.errors import EdnaError
    from ednaquery.store.base import JobHome

    store = MongoStore("mongodb://localhost/jobs_test", client=mongomock.MongoClient())
    store.job_home = lambda: JobHome()  # a backend that keeps no jobs
    with pytest.raises(EdnaError, match="has no job queue; use the SQLite or MongoDB store"):
        open_jobs(store)
