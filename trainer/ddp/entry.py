"""One process of a DDP run: ``python -m trainer.ddp.entry SPEC.json``.

:mod:`trainer.ddp.launch` starts N of these through torch.distributed's elastic launcher
(what ``torchrun --standalone --nproc_per_node N`` runs), which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address. ``SPEC.json`` lies in a private
temporary folder (the *control folder*) the launching process made; it holds the resolved
config, the run id and folder, the config id, the store URI and whether to resume.

Each process:

1. takes SIGTERM/SIGINT as a stop request at once and writes ``rank-R.pid`` into the
   control folder (:mod:`trainer.ddp.control`), so the launching process can pass Ctrl-C
   and SIGTERM on to it;
2. joins the process group (:func:`trainer.engine.distributed.init_from_env`: nccl on
   ``cuda:LOCAL_RANK``, gloo on the CPU);
3. runs :func:`trainer.engine.runner.run_training` with its :class:`DistContext`; rank 0 writes the
   run folder and indexes the run as it goes (:class:`trainer.recorder.RunRecorder`);
4. exits 0 when the run completed or was interrupted, and 1 when it failed, after writing
   ``rank-R.error`` (its one-line error): a failed rank makes the launcher stop the others.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.ddp.control import stop_requested, write_error, write_pid

log = logging.getLogger("trainer.ddp")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _open_recorder(spec: dict[str, Any], run_dir: Path, quiet: bool) -> tuple[Any, Any]:
    """(store, RunRecorder) for rank 0; (None, None) when the store cannot be opened (the
    launching process indexes the finished run anyway)."""
    from ednaquery.store import open_store
    from trainer.recorder import RunRecorder

    try:
        store = open_store(spec.get("store"), timeout_ms=int(spec.get("store_timeout_ms", 5000)))
    except Exception as exc:  # noqa: BLE001 - indexing must never stop a training run
        log.warning("rank 0 cannot open the store (%s); the run is indexed when it ends", exc)
        return None, None
    return store, RunRecorder(store, run_dir, announce=None if quiet else _say)


def run(spec: dict[str, Any], control: Path) -> int:
    """Train this rank's part of the run ``spec`` describes; the process exit status."""
    from ednaquery.errors import EdnaError
    from trainer.engine.distributed import env_rank, init_from_env, shutdown
    from trainer.engine.runner import run_training

    where = env_rank()
    rank = where[0] if where else 0
    stop = threading.Event()

    def early_stop(_signum: int, _frame: Any) -> None:  # until run_training installs its own handler
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, early_stop)
    write_pid(control, rank)
    if stop_requested(control):  # stopped before this process was listening
        stop.set()
    ctx = None
    store = None
    try:
        ctx = init_from_env(spec.get("device") or "auto")
        run_dir = Path(spec["run_dir"])
        quiet = bool(spec.get("quiet"))
        recorder = None
        if ctx.is_main:
            store, recorder = _open_recorder(spec, run_dir, quiet)
        else:  # rank 0 speaks for the run; another rank's failure reaches run.json through its error file
            logging.getLogger("trainer").setLevel(logging.CRITICAL)
        result = run_training(spec["config"], run_dir, on_status=recorder, quiet=quiet,
                              run_id=spec["run_id"], config_id=spec.get("config_id"),
                              resume_from=run_dir if spec.get("resume") else None, stop=stop,
                              handle_signals=True, dist=ctx)
        if recorder is not None:
            recorder.record()
    except EdnaError as exc:
        write_error(control, rank, str(exc))
        _say(f"error: rank {rank}: {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        message = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        write_error(control, rank, message)
        _say(f"error: rank {rank}: {message}")
        return 1
    finally:
        if store is not None:
            store.close()
        if ctx is not None:
            shutdown(ctx)
    if result.status == "failed":
        write_error(control, rank, result.error or "failed")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trainer.ddp.entry SPEC.json``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        _say("usage: python -m trainer.ddp.entry SPEC.json (started by `trainer launch --gpus N`)")
        return 2
    spec_path = Path(args[0])
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError) as exc:
        _say(f"error: cannot read the launch spec {spec_path}: {exc}")
        return 2
    return run(spec, spec_path.parent)


if __name__ == "__main__":
    sys.exit(main())
