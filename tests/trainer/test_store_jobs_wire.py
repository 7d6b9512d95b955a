"""The MongoDB job queue through real pymongo (find_one_and_update over TCP), two workers at once.

Runs against the nx-27017 wire-protocol server on 127.0.0.1 (no mongod can be installed
here); skipped, with the reason, only when that server cannot start.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from ednaquery.store.mongo import MongoStore
from tests.support.clock import FakeClock
from tests.support.wire import with_database
from trainer.ops.jobs import MongoJobQueue, open_jobs
from trainer.ops.worker import Outcome, WorkerOptions, run_worker

pytestmark = pytest.mark.wire


@pytest.fixture
def mongo_uri(wire_uri):
    """The session's nx-27017 server, in a database of this file's own."""
    return with_database(wire_uri, "jobs_wire")


def test_two_pymongo_workers_run_every_job_exactly_once(mongo_uri):
    stores = [MongoStore(mongo_uri, timeout_ms=3000) for _ in range(3)]
    queues = [open_jobs(s) for s in stores]
    assert isinstance(queues[0], MongoJobQueue)
    ids = {queues[0].enqueue(f"cfg{i}").id for i in range(4)}
    log: list = []
    lock = threading.Lock()
    running: set = set()

    def run_job(job, stop, started):
        with lock:
            assert job.id not in running
            running.add(job.id)
        started(f"run-{job.id}")
        time.sleep(0.05)
        with lock:
            running.discard(job.id)
            log.append(job.id)
        return Outcome("completed", f"run-{job.id}")

    threads = [threading.Thread(target=run_worker, args=(queues[i + 1], run_job),
                                kwargs={"worker_id": f"w{i}", "options": WorkerOptions(until_empty=True,
                                                                                        heartbeat=0.05)})
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert Counter(log) == Counter({i: 1 for i in ids})
    assert {j.status for j in queues[0].list()} == {"completed"}
    # a stale job goes back to the queue over the wire too (time passes on a fake clock)
    clock = FakeClock()
    ghost, alive = open_jobs(stores[1], clock=clock), open_jobs(stores[2], clock=clock)
    job = ghost.enqueue("late")
    assert ghost.claim("ghost").id == job.id
    clock.advance(59)
    assert alive.requeue_stale(60) == []
    clock.advance(2)
    assert alive.requeue_stale(60) == [job.id]
    assert alive.claim("alive").attempts == 2
    for s in stores:
        s.close()
