"""``trainer worker``: claim queued launches from the store and run them, one at a time.

The loop: re-queue jobs whose worker went silent, claim the oldest queued job, run it while a
background thread heart-beats, record how it ended; sleep ``poll_interval`` when the queue is
empty. Any number of workers may share a store (see :mod:`trainer.ops.jobs`).

Stopping: SIGTERM or Ctrl-C (or the caller's ``stop`` event) stops the current run after its
current step with a checkpoint (the engine's clean stop), puts the job back in the queue with
its run id, and exits; the next worker to claim it resumes that run from ``last.pt`` when it
can reach the run folder. A worker that finds its job taken away (its heartbeat was refused:
it was presumed dead and the job re-queued) stops that run and leaves the job alone, so a job
never runs twice at once.

The function that runs a job is injectable (``run_job``), which keeps the loop testable
without training anything; :func:`launch_runner` is the real one. So is the clock that spaces
heartbeats (``clock``, ``time.monotonic`` by default), so tests can make time pass without sleeping.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ednaquery.errors import EdnaError, StoreUnavailable
from trainer.ops.jobs import Clock, Job, JobQueue

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How running one job ended."""

    status: str  # completed | failed | interrupted | pruned (the job then ends completed)
    run_id: str | None = None
    error: str | None = None


#: runs one job; must honour ``stop`` (a clean stop with a checkpoint) and report the run id early
RunJob = Callable[[Job, threading.Event, Callable[[str], None]], Outcome]


@dataclass
class WorkerOptions:
    """How a worker loops."""

    poll_interval: float = 5.0
    heartbeat: float = 30.0
    stale_after: float = 300.0
    once: bool = False  # run at most one job, then exit
    until_empty: bool = False  # exit when the queue is empty instead of waiting
    max_jobs: int | None = None


@dataclass
class WorkerReport:
    """What a worker did: ``(job id, how it ended)`` per job it claimed."""

    worker_id: str
    jobs: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False


def default_worker_id() -> str:
    """``host:pid:xxxx`` (unique per worker process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"


def stop_on_signals(stop: threading.Event) -> contextlib.AbstractContextManager[None]:
    """SIGTERM/SIGINT set ``stop`` (the run checkpoints and its job is re-queued); a second SIGINT aborts."""
    from trainer.engine.runner import stop_on_signals as _stop_on_signals

    return _stop_on_signals(stop, message="stopping the current run with a checkpoint and re-queueing its job")


class _Heart(threading.Thread):
    """Heart-beats a claimed job; stops the run when the worker stops or the job is taken away."""

    def __init__(self, queue: JobQueue, job: Job, worker_id: str, every: float, stop: threading.Event,
                 job_stop: threading.Event, clock: Clock = time.monotonic) -> None:
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.queue, self.job, self.worker_id, self.every = queue, job, worker_id, every
        self.clock = clock
        self.last = clock()  # the claim just beat; read before the job starts, so no time passes unseen
        self.stop, self.job_stop = stop, job_stop
        self.done = threading.Event()
        self.lost = False

    def run(self) -> None:
        tick = min(0.25, self.every)
        while not self.done.wait(tick):
            if self.stop.is_set():
                self.job_stop.set()
            if self.clock() - self.last < self.every:
                continue
            self.last = self.clock()
            try:
                if not self.queue.heartbeat(self.job.id, self.worker_id):
                    log.warning("job %s is no longer this worker's (presumed dead and re-queued); stopping its run",
                                self.job.id)
                    self.lost = True
                    self.job_stop.set()
                    return
            except EdnaError as exc:
                log.warning("heartbeat for job %s failed: %s; retrying", self.job.id, exc)


def _settle(queue: JobQueue, job: Job, worker_id: str, outcome: Outcome, stopping: bool) -> str:
    """Record how a job ended; returns the word for the report."""
    if outcome.status == "interrupted" and stopping:
        queue.requeue(job.id, worker_id, run_id=outcome.run_id, error="worker stopped; re-queued to resume")
        return "requeued"
    # a pruned run did what its sweep asked of it: its job is done
    status = "completed" if outcome.status == "pruned" else outcome.status
    status = status if status in ("completed", "failed", "interrupted") else "failed"
    if not queue.finish(job.id, worker_id, status, run_id=outcome.run_id, error=outcome.error):
        log.warning("job %s was taken from this worker before it finished; its result is in run %s",
                    job.id, outcome.run_id)
        return "lost"
    return "pruned" if outcome.status == "pruned" else status


def run_one(queue: JobQueue, job: Job, run_job: RunJob, *, worker_id: str, heartbeat: float,
            stop: threading.Event, clock: Clock = time.monotonic) -> str:
    """Run one claimed job with a heartbeat thread; returns how it ended (completed, failed, requeued...)."""
    job_stop = threading.Event()
    if stop.is_set():
        job_stop.set()
    heart = _Heart(queue, job, worker_id, heartbeat, stop, job_stop, clock)
    heart.start()

    def started(run_id: str) -> None:
        try:
            queue.set_run(job.id, worker_id, run_id)
        except EdnaError as exc:
            log.warning("could not record run %s on job %s: %s", run_id, job.id, exc)

    try:
        try:
            outcome = run_job(job, job_stop, started)
        except EdnaError as exc:  # a bad job (unknown config, invalid overrides): it fails, the worker goes on
            outcome = Outcome("failed", None, str(exc))
        except Exception as exc:  # one broken job must not kill the worker
            log.exception("job %s crashed", job.id)
            outcome = Outcome("failed", None, f"{type(exc).__name__}: {exc}")
    finally:
        heart.done.set()
        heart.join()
    if heart.lost:
        return "lost"
    return _settle(queue, job, worker_id, outcome, stop.is_set())


def run_worker(queue: JobQueue, run_job: RunJob, *, worker_id: str | None = None,
               options: WorkerOptions | None = None, stop: threading.Event | None = None,
               on_event: Callable[[str], None] | None = None, clock: Clock = time.monotonic) -> WorkerReport:
    """Loop: re-queue stale jobs, claim, run, record, until stopped; ``clock`` spaces the heartbeats."""
    opts = options or WorkerOptions()
    stop = stop or threading.Event()
    report = WorkerReport(worker_id or default_worker_id())
    say = on_event or (lambda msg: log.info("%s", msg))
    while not stop.is_set():
        try:
            for job_id in queue.requeue_stale(opts.stale_after):
                say(f"re-queued job {job_id}: its worker stopped heart-beating")
            job = queue.claim(report.worker_id)
        except StoreUnavailable as exc:
            say(f"store unavailable: {exc}; retrying in {opts.poll_interval:g}s")
            stop.wait(opts.poll_interval)
            continue
        if job is None:
            if opts.once or opts.until_empty:
                break
            stop.wait(opts.poll_interval)
            continue
        shown = f" {' '.join(job.overrides)}" if job.overrides else ""
        say(f"job {job.id}: config {job.config_id[:12]}{shown}")
        ended = run_one(queue, job, run_job, worker_id=report.worker_id, heartbeat=opts.heartbeat, stop=stop,
                        clock=clock)
        report.jobs.append((job.id, ended))
        say(f"job {job.id}: {ended}")
        if opts.once or (opts.max_jobs is not None and len(report.jobs) >= opts.max_jobs):
            break
    report.stopped = stop.is_set()
    return report


def launch_runner(store: Any, *, runs_root: Path, quiet: bool = True, device: str | None = None,
                  announce: Callable[[str], None] | None = None) -> RunJob:
    """The real job runner: resume the job's run when it has one on this machine, else launch afresh.

    A sweep's trial (``job.options["sweep"]``) runs labelled with its sweep id and trial number,
    and its sweep's pruner may stop it after any epoch (see :mod:`trainer.ops.prune`).
    """
    from trainer.ops import launch as launching
    from trainer.ops.prune import trial_hooks

    def run_job(job: Job, stop: threading.Event, started: Callable[[str], None]) -> Outcome:
        device_for_job = job.options.get("device") or device
        labels, on_epoch = trial_hooks(store, job.options.get("sweep"))
        if job.run_id:
            try:
                folder = launching.find_run_folder(store, job.run_id, runs_root)
            except EdnaError:
                folder = None
            if folder is not None and (folder / "last.pt").is_file():
                started(job.run_id)
                res = launching.resume(job.run_id, store=store, runs_root=runs_root, quiet=quiet,
                                       device=device_for_job, stop=stop, handle_signals=False, announce=announce,
                                       on_epoch=on_epoch)
                return Outcome(res.status, res.run_id, res.error)
        resolved = launching.prepare(store, job.config_id, job.overrides)
        res = launching.run_config(store, resolved, runs_root=runs_root, quiet=quiet, device=device_for_job,
                                   stop=stop, handle_signals=False, announce=announce,
                                   on_start=lambda run_id, _dir: started(run_id), labels=labels, on_epoch=on_epoch)
        return Outcome(res.status, res.run_id, res.error)

    from trainer.ops.groups import after_member

    return after_member(run_job, store, runs_root=runs_root)  # a k-fold/bagging member refreshes its group
