"""``trainer launch --gpus N``: one run trained by N processes with DistributedDataParallel.

The launching process (the ``trainer`` command) resolves and indexes the config as for any
launch, then starts N copies of :mod:`trainer.ddp.entry` through torch.distributed's
elastic launcher (:func:`torch.distributed.launcher.api.elastic_launch`, what
``torchrun --standalone --nproc_per_node N -m trainer.ddp.entry SPEC`` runs) and waits:

- **Where.** On GPUs one process per GPU (``cuda:0`` .. ``cuda:N-1`` of what
  ``CUDA_VISIBLE_DEVICES`` shows) with the nccl backend; asking for more GPUs than are
  visible is a one-line error. ``--device cpu`` runs N CPU processes with gloo instead:
  DDP without GPUs, for testing.
- **Signals.** Ctrl-C or SIGTERM here is passed on to every rank as SIGTERM (the ranks
  also take SIGTERM sent to them directly): they agree on the update to stop after, rank 0
  saves ``last.pt`` and the run ends ``interrupted``. A second Ctrl-C is passed on as
  SIGINT and aborts at once.
- **Afterwards.** A run that rank 0 could not finish (a rank killed or crashed, its
  folder left ``running``) is marked ``failed`` (``interrupted`` after a stop request)
  here, with the failing rank's message, and indexed once more. The result is a
  :class:`trainer.engine.runner.RunResult`, as for a single-process run.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ednaquery.errors import UsageError
from ednaquery.store.base import Store
from trainer.ddp.control import rank_errors, rank_pids, request_stop

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 0.2
SHUTDOWN_TIMEOUT_S = 60  # after a failure: how long the other ranks get before SIGKILL
_LAUNCHER_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher")


def plan_backend(device: str | None, nproc: int) -> str:
    """The backend for ``nproc`` processes on ``device`` (``train.device``); UsageError if impossible."""
    if nproc < 2:
        raise UsageError(f"--gpus {nproc}: DDP needs at least 2 processes")
    device = device or "auto"
    if device == "cpu":
        return "gloo"
    if device.startswith("cuda:"):
        raise UsageError(f"--gpus {nproc} with device {device}: DDP gives process K the GPU cuda:K; choose the "
                         f"GPUs with CUDA_VISIBLE_DEVICES and use --device cuda (or auto)")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    if count == 0:
        raise UsageError(f"--gpus {nproc}: no GPU is visible here{shown}; add --device cpu to train with "
                         f"{nproc} CPU processes (gloo) instead")
    if nproc > count:
        raise UsageError(f"--gpus {nproc}: only {count} GPU(s) are visible here{shown}; use --gpus {count} "
                         f"or fewer")
    return "nccl"


def store_uri(store: Store) -> str | None:
    """A URI another process can open the same store with (SQLite file or MongoDB URI)."""
    return store.reopen_uri()


class _Forwarder:
    """Passes stop requests (signals here, or a caller's event) on to every rank."""

    def __init__(self, control: Path, say: Callable[[str], None]) -> None:
        self.control = control
        self.say = say
        self.requests = 0

    def forward(self, sig: int) -> None:
        self.requests += 1
        request_stop(self.control)  # a rank that is not listening yet stops when it starts
        for pid in rank_pids(self.control):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.requests and signum == signal.SIGINT:
            self.say("second Ctrl-C: aborting all processes")
            self.forward(signal.SIGINT)
            return
        if not self.requests:
            self.say(f"{signal.Signals(signum).name}: stopping all processes after the current step "
                     "(Ctrl-C again to abort)")
        self.forward(signal.SIGTERM)

    @contextlib.contextmanager
    def installed(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    @contextlib.contextmanager
    def watching(self, stop: threading.Event | None) -> Iterator[None]:
        """Forward a stop requested through ``stop`` (from another thread)."""
        if stop is None:
            yield
            return
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if stop.wait(0.2):
                    self.forward(signal.SIGTERM)
                    return

        thread = threading.Thread(target=watch, name="ddp-stop-forwarder", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=1)


@contextlib.contextmanager
def _launcher_quiet() -> Iterator[None]:
    """The elastic launcher's own logging and process-wide settings, contained to the launch.

    Its loggers (one per module, each with its own level) would print multi-line failure
    reports; the run's outcome is reported here instead, in one line.
    """
    import torch.distributed.launcher.api  # noqa: F401 - creates the launcher's loggers

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith(_LAUNCHER_LOGGERS)]
    levels = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    env_before = os.environ.get("TORCHELASTIC_SIGNALS_TO_HANDLE")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGQUIT)} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        yield
    finally:
        for lg, level in levels:
            lg.setLevel(level)
        if env_before is None:
            os.environ.pop("TORCHELASTIC_SIGNALS_TO_HANDLE", None)
        else:
            os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = env_before
        for s, h in handlers.items():
            signal.signal(s, h)


def _describe_exit(exitcode: int) -> str:
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {exitcode}"


def _elastic(nproc: int, spec_path: Path, control: Path, run_id: str) -> str | None:
    """Run the ranks to the end; None when all exited 0, else what went wrong (one line)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"ednaquery-{run_id}",
        rdzv_backend="c10d", rdzv_endpoint="localhost:0",  # torchrun --standalone
        max_restarts=0, monitor_interval=MONITOR_INTERVAL_S, start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=str(control / "logs")),
        signals_to_handle="SIGHUP,SIGQUIT",  # SIGTERM/SIGINT: _Forwarder stops the ranks cleanly
        shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    try:
        elastic_launch(config, sys.executable)("-m", "trainer.ddp.entry", str(spec_path))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        return f"rank {rank} {_describe_exit(failure.exitcode)}"
    except SignalException as exc:
        return f"the launcher received {signal.Signals(exc.sigval).name}"
    return None


def _finish_run(run_dir: Path, *, run_id: str, config: dict, config_id: str | None, control: Path,
                launch_error: str | None, stop_requested: bool) -> None:
    """Make the folder tell the truth when rank 0 could not (a rank crashed or was killed)."""
    from trainer.engine.runs import FINAL_STATUSES, RunWriter

    errors = rank_errors(control)
    root = errors[0] if errors else None
    writer = RunWriter(run_dir)
    writer.load_existing()
    status = writer.run.get("status")
    if status not in FINAL_STATUSES:
        if not writer.config_path.exists():
            writer.write_config(config)
        if root is not None:
            error = f"rank {root['rank']}: {root['message']}" if root["rank"] != 0 else root["message"]
        else:
            error = launch_error or "the training processes ended without finishing the run"
        new_status = "interrupted" if stop_requested and root is None else "failed"
        writer.update(run_id=run_id, config_id=config_id, status=new_status, ended_at=time.time(),
                      error=error if new_status == "failed" else None,
                      stop_reason="interrupted" if new_status == "interrupted" else None)
    elif status == "failed" and root is not None and root["rank"] != 0 \
            and root["message"] != writer.run.get("error"):
        writer.update(error=f"rank {root['rank']}: {root['message']}")


def run_ddp(store: Any, config: dict, *, nproc: int, run_dir: Path, run_id: str, config_id: str | None,
            quiet: bool = False, resume: bool = False, stop: threading.Event | None = None,
            handle_signals: bool = True, announce: Callable[[str], None] | None = None,
            uri: str | None = None, store_timeout_ms: int = 5000) -> Any:
    """Train ``config`` (resolved, ``train.device`` set) with ``nproc`` DDP processes into ``run_dir``.

    Returns a :class:`trainer.engine.runner.RunResult` read back from the run folder; raises
    UsageError (before anything starts) when the processes cannot get their devices.
    """
    from trainer.engine.runner import RunResult
    from trainer.engine.runs import load_run
    from trainer.recorder import RunRecorder

    say = announce or (lambda _m: None)
    backend = plan_backend((config.get("train") or {}).get("device"), nproc)
    run_dir = Path(run_dir)
    with tempfile.TemporaryDirectory(prefix="trainer-ddp-") as tmp:
        control = Path(tmp)  # mkdtemp: readable by this user only (the spec may hold a store password)
        spec_path = control / "spec.json"
        spec = {"config": config, "config_id": config_id, "run_id": run_id, "run_dir": str(run_dir.resolve()),
                "device": (config.get("train") or {}).get("device"), "store": uri if uri is not None
                else store_uri(store), "store_timeout_ms": store_timeout_ms, "quiet": quiet, "resume": resume}
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
        say(f"DDP: {nproc} processes ({backend}{', one per GPU' if backend == 'nccl' else ', on the CPU'}), "
            f"data.batch_size {(config.get('data') or {}).get('batch_size')} per process")
        forwarder = _Forwarder(control, say)
        started = time.time()
        with _launcher_quiet(), forwarder.installed(handle_signals), forwarder.watching(stop):
            launch_error = _elastic(nproc, spec_path, control, run_id)
        log.info("DDP run %s: processes ended after %.1fs%s", run_id, time.time() - started,
                 f" ({launch_error})" if launch_error else "")
        run_dir.mkdir(parents=True, exist_ok=True)
        _finish_run(run_dir, run_id=run_id, config=config, config_id=config_id, control=control,
                    launch_error=launch_error, stop_requested=bool(forwarder.requests))
    RunRecorder(store, run_dir).record()
    snap = load_run(run_dir)
    status = snap.status
    error = snap.info.get("error")
    exit_code = {"completed": 0, "interrupted": 130}.get(status, 1)
    files = sorted(run_dir.glob("*.png"))
    return RunResult(run_id=run_id, run_dir=run_dir, status=status, summary=snap.summary, error=error,
                     exit_code=exit_code, stop_reason=snap.info.get("stop_reason"), files=files)
