"""Log a run from any training loop into our run-folder format, so ednaquery indexes it like a trainer run.

::

    with ednaquery.start_run(config=cfg, root="runs", name="baseline") as run:
        for epoch in range(epochs):
            ...
            run.log({"train_loss": loss, "val_acc": acc}, step=step, epoch=epoch)

The run folder is ``<root>/<run id>`` and holds what :mod:`ednaquery.runfolder` reads (see
docs/trainer-runs.md): ``config.yaml``, ``run.json`` (``format: ednaquery-run``, status, times,
``name``), ``metrics.jsonl`` (one row per ``log`` call) and ``summary.json`` (last and best of
every metric, by the one rule of :mod:`ednaquery.metrics`). ``config.yaml``, ``run.json`` and
``summary.json`` are replaced atomically (:mod:`ednaquery.fsutil`); ``metrics.jsonl`` grows by
whole lines, each flush one ``write`` (a reader skips a torn last line).

``log`` only appends the row to a buffer (about a microsecond); a background thread writes the
buffer every ``flush_every`` seconds, and the run's end writes the rest. The status is
``completed`` when the ``with`` block ends, ``failed`` (with the error) on an exception and
``interrupted`` on Ctrl-C; without ``with``, call :meth:`Run.finish` (or the process's exit does).
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import logging
import math
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from ednaquery.documents import config_id as content_id
from ednaquery.documents import new_run_id
from ednaquery.fsutil import write_atomic, write_json_atomic
from ednaquery.metrics import direction, is_step_key
from ednaquery.runfolder import CONFIG_FILE, IDENTITY_FIELDS, METRICS_FILE, RUN_FILE, RUN_FORMAT, SUMMARY_FILE

__all__ = ["FLUSH_EVERY_S", "Run", "start_run"]

log = logging.getLogger(__name__)

#: seconds between background writes of the buffered rows
FLUSH_EVERY_S = 2.0
RUN_FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    """Config data as YAML/JSON can hold it (other objects become their text)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return str(value)


def _number(value: Any) -> float | int | None:
    """A logged value as a JSON number (tensors and NumPy scalars too); None for NaN/inf and non-numbers."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _json_line(record: dict[str, Any]) -> bytes:
    """One JSONL line (orjson: a few times faster than json, and the flush runs beside training)."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # an integer over 64 bits
        return (json.dumps(record, default=str) + "\n").encode("utf-8")


class _Summary:
    """Last and best of every metric over the rows, by :func:`ednaquery.metrics.direction` (the one
    rule; :class:`ednaquery.metrics.MetricsSummary` gives the same last/best, at several times the cost
    of this loop, which runs beside training)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self._skip: dict[str, bool] = {"scope": True}

    def add(self, records: list[dict[str, Any]]) -> None:
        last, low, high, skip = self.last, self.low, self.high, self._skip
        for record in records:
            for k, v in record.items():
                s = skip.get(k)
                if s is None:
                    s = skip[k] = is_step_key(k)
                if s or v is None or type(v) is str:
                    continue
                last[k] = v
                if k not in low or v < low[k]:
                    low[k] = v
                if k not in high or v > high[k]:
                    high[k] = v

    def result(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, x in self.last.items():
            d = direction(name)
            out[name] = {"last": x} if d is None else {"last": x, "best": self.low[name] if d == "min"
                                                       else self.high[name]}
        return out


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` (whole lines) to ``path``, all or nothing; readers skip a torn last line meanwhile.

    A write that fails part-way (a full disk) is cut back off the file, so the caller can keep
    the rows and a retry writes each of them once, with no torn line between.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size  # the one writer of this file: its end stays put until we write
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            if len(view) < len(data):
                os.ftruncate(fd, start)  # frees space, so it works on a full disk too
            raise
    finally:
        os.close(fd)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Run:
    """One run being logged; made by :func:`start_run`. ``log`` from any thread."""

    def __init__(self, folder: Path, *, run_id: str, config: dict, name: str | None,
                 flush_every: float = FLUSH_EVERY_S) -> None:
        self.id = run_id
        self.dir = folder
        self.name = name
        self.config = config
        self.status = "running"
        self._info: dict[str, Any] = {}
        self._pending: list[tuple[float, Mapping[str, Any], Any, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._summary = _Summary()
        self._epochs: set[Any] = set()
        self._last_step: Any = None
        self._rows = 0
        self._started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_every = flush_every
        self._run: dict[str, Any] = {}

    # -- the hot path ------------------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], *, step: int | None = None, epoch: int | None = None) -> None:
        """Record metric values (numbers; tensors are read at the next flush) at ``step``/``epoch``.

        Cheap: the row is only buffered; the background thread and the run's end write it.
        """
        row = (time.time(), dict(metrics), step, epoch)  # a copy: callers often reuse their dict
        with self._lock:
            self._pending.append(row)

    def set_info(self, **fields: Any) -> None:
        """Extra facts for run.json (queryable as ``run.KEY``), written at the next flush."""
        taken = sorted(set(fields) & IDENTITY_FIELDS)
        if taken:
            raise ValueError(f"run.json's {taken[0]!r} is the run's own field; choose another name")
        with self._lock:
            self._info.update({k: _plain(v) for k, v in fields.items()})

    def set_config(self, config: Any) -> None:
        """Replace the run's config (config.yaml and ``config_id``), e.g. hyperparameters known late."""
        plain = _plain(config) if config is not None else {}
        if not isinstance(plain, dict):
            raise TypeError(f"config must be a mapping, a dataclass or an argparse.Namespace, not "
                            f"{type(config).__name__}")
        with self._write_lock:
            self.config = plain
            self._write_config()
            self._run["config_id"] = content_id(plain) if plain else None
            self._write_run()

    # -- writing -----------------------------------------------------------------------
    def _write_config(self) -> None:
        import yaml

        write_atomic(self.dir / CONFIG_FILE, yaml.safe_dump(self.config, sort_keys=False, default_flow_style=None))

    def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._run = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, "run_id": self.id,
                     "config_id": content_id(self.config) if self.config else None, "name": self.name,
                     "status": "running", "started_at": self._started, "ended_at": None, "error": None,
                     "writer": "ednaquery.tracking", "host": socket.gethostname(), "pid": os.getpid(),
                     "python": platform.python_version(), "platform": platform.platform()}
        self._write_run()
        (self.dir / METRICS_FILE).touch()
        self._thread = threading.Thread(target=self._flusher, name=f"ednaquery-run-{self.id}", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    def _flusher(self) -> None:
        said = False
        while not self._stop.wait(self._flush_every):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - a full disk: the rows stay buffered, the next flush retries
                if not said:
                    log.warning("run %s: cannot write to %s yet (%s); the rows stay buffered", self.id, self.dir,
                                exc)
                    said = True

    def _write_run(self) -> None:
        self._run["updated_at"] = time.time()
        write_json_atomic(self.dir / RUN_FILE, self._run, default=str)

    def flush(self) -> None:
        """Write the buffered rows (metrics.jsonl, summary.json) now; on a write error they stay buffered."""
        with self._write_lock:
            with self._lock:
                rows, self._pending = self._pending, []
                info, self._info = self._info, {}
            try:
                if info:
                    self._run.update(info)
                    self._write_run()
                if rows:
                    records = [self._record(*row) for row in rows]
                    _append(self.dir / METRICS_FILE, b"".join(map(_json_line, records)))
            except BaseException:
                with self._lock:
                    self._pending[:0] = rows
                    self._info = {**info, **self._info}
                raise
            if not rows:
                return
            self._summary.add(records)
            for record in records:
                if record.get("epoch") is not None:
                    self._epochs.add(record["epoch"])
                if record.get("step") is not None:
                    self._last_step = record["step"]
            self._rows += len(rows)
            self._write_summary(fsync=False)  # the run's end writes it durably

    @staticmethod
    def _record(t: float, metrics: Mapping[str, Any], step: Any, epoch: Any) -> dict[str, Any]:
        """One metrics.jsonl row: scope, epoch, step, the metrics as numbers, time."""
        record: dict[str, Any] = {"scope": "epoch" if step is None and epoch is not None else "step"}
        if epoch is not None:
            record["epoch"] = epoch
        if step is not None:
            record["step"] = step
        for k, v in metrics.items():
            if str(k) not in record:
                record[str(k)] = _number(v)
        record.setdefault("time", round(t, 3))
        return record

    def _write_summary(self, *, fsync: bool = True) -> None:
        summary = {"metrics": self._summary.result(), "epochs": len(self._epochs), "step": self._last_step,
                   "rows": self._rows, "status": self.status,
                   "total_time_s": round((self._run.get("ended_at") or time.time()) - self._started, 3)}
        write_json_atomic(self.dir / SUMMARY_FILE, summary, default=str, fsync=fsync)

    # -- the end -----------------------------------------------------------------------
    def finish(self, status: str = "completed", error: str | None = None) -> None:
        """End the run: write what is buffered, then its status (``completed``, ``failed``, ``interrupted``)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        atexit.unregister(self._at_exit)
        self.status = status
        self.flush()
        self._run.update(status=status, ended_at=time.time(), error=error)
        self._write_summary()
        self._write_run()

    def _at_exit(self) -> None:
        """The process ends with the run still open: an uncaught error fails it, Ctrl-C interrupts it."""
        if self.status != "running":
            return
        last = getattr(sys, "last_value", None)  # set when an uncaught exception was printed
        if isinstance(last, KeyboardInterrupt):
            self.finish("interrupted", "interrupted (Ctrl-C)")
        elif isinstance(last, BaseException):
            self.finish("failed", _one_line(last))
        else:
            self.finish("completed")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.finish("completed")
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("interrupted", "interrupted (Ctrl-C)")
        else:
            self.finish("failed", _one_line(exc))

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r}, dir={str(self.dir)!r})"


def start_run(config: Any = None, *, root: str | os.PathLike[str] = "runs", name: str | None = None,
              run_id: str | None = None, flush_every: float = FLUSH_EVERY_S) -> Run:
    """Start a run in ``<root>/<run id>`` and return it (use it as a context manager).

    ``config`` is a mapping, a dataclass or an ``argparse.Namespace`` (written as config.yaml;
    its content id is the run's ``config_id``); ``name`` is a label stored in run.json
    (``run.name`` in queries). Point the indexer daemon at ``root`` and the run is found as it goes.
    """
    rid = run_id or new_run_id()
    run = Run(Path(os.path.abspath(root)) / rid, run_id=rid, config=_plain(config) if config is not None else {},
              name=name, flush_every=flush_every)
    if not isinstance(run.config, dict):
        raise TypeError(f"config must be a mapping, a dataclass or an argparse.Namespace, not "
                        f"{type(config).__name__}")
    run._start()
    return run
