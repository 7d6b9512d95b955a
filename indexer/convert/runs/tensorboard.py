"""TensorBoard event files: a folder with ``events.out.tfevents.*`` (Lightning's default logger).

An event file is a TFRecord stream (``uint64 length | uint32 crc | data | uint32 crc``) of
``tensorflow.Event`` protobufs; scalars are summary values with ``simple_value`` (PyTorch's
``SummaryWriter``, Lightning) or a scalar tensor under the ``scalars`` plugin (TF 2's
``tf.summary.scalar``). They are decoded here without tensorflow or tensorboard
(:mod:`~indexer.convert.runs.protowire`); images, histograms, text and hparams are skipped.

Every scalar becomes a series point (at the event's step) and feeds last/best
(:class:`ednaquery.metrics.MetricsSummary`); a scalar tagged ``epoch`` (Lightning logs one at
each step) gives the epoch of the other values at that step, and is not a metric. The
folder's config is Lightning's ``hparams.yaml`` when there is one. The run's timing is the
first and last event's wall time; TensorBoard records no status (``unknown``). Several event
files in one folder (a resumed run) are read in name order. A torn last record (a writer still
writing) is skipped quietly; a corrupt length stops that file's reading with a warning.
"""
from __future__ import annotations

import math
import os
import struct
import time
from pathlib import Path

from ednaquery.fsutil import open_regular
from ednaquery.loaders import DEFAULT_MAX_BYTES
from ednaquery.metrics import MAX_METRICS_BYTES, MetricsSummary
from indexer.convert.runs.base import RunInfo, is_file, load_run_config
from indexer.convert.runs.protowire import ProtoError, f32, f64, fields, packed_floats, signed, text

__all__ = ["TensorboardRecogniser", "read_event_file"]

PREFIX = "events.out.tfevents."
#: one record bigger than this is not a scalar event: the file is read no further
MAX_RECORD = 64 * 1024 * 1024
#: reading one folder stops (with a warning) after this many seconds
MAX_SECONDS = 30.0


def _scalar(value: bytes) -> tuple[str, float] | None:
    """``(tag, value)`` of a ``Summary.Value`` that holds a scalar, else None."""
    tag = None
    simple = tensor = None
    plugin = ""
    for num, wt, v in fields(value):
        if num == 1:
            tag = text(v)
        elif num == 2:
            simple = f32(v)
        elif num == 8 and isinstance(v, bytes):
            tensor = v
        elif num == 9 and isinstance(v, bytes):  # metadata.plugin_data.plugin_name
            for k, _w, pd in fields(v):
                if k == 1 and isinstance(pd, bytes):
                    for k2, _w2, name in fields(pd):
                        if k2 == 1:
                            plugin = text(name)
        del wt
    if tag is None:
        return None
    if simple is not None:
        return tag, simple
    if tensor is not None and plugin in ("scalars", ""):
        x = _tensor_scalar(tensor)
        return (tag, x) if x is not None else None
    return None


def _tensor_scalar(buf: bytes) -> float | None:
    dtype, content, vals = 0, None, []
    for num, wt, v in fields(buf):
        if num == 1 and isinstance(v, int):
            dtype = v
        elif num == 4 and isinstance(v, bytes):
            content = v
        elif num == 5:
            vals += packed_floats(v, wt, "f")
        elif num == 6:
            vals += packed_floats(v, wt, "d")
        elif num in (7, 10) and isinstance(v, int):
            vals.append(float(signed(v)))
    if len(vals) == 1:
        return vals[0]
    if content is not None:
        if dtype == 1 and len(content) == 4:
            return f32(content)
        if dtype == 2 and len(content) == 8:
            return f64(content)
    return None


def read_event_file(path: str | os.PathLike[str], rows: list[tuple[int | None, float, str, float]],
                    warnings: list[str], *, limit: int = MAX_METRICS_BYTES, deadline: float | None = None) -> None:
    """Append ``(step, wall_time, tag, value)`` for every scalar in one event file to ``rows``."""
    name = Path(path).name
    bad = 0
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                warnings.append(f"{name} is over {limit:,} bytes; not read")
                return
            while True:
                head = fh.read(12)
                if len(head) < 12:
                    break
                (length,) = struct.unpack("<Q", head[:8])
                if length > MAX_RECORD:
                    warnings.append(f"{name}: a record claims {length:,} bytes; the rest is not read (corrupt?)")
                    break
                data = fh.read(length)
                tail = fh.read(4)
                if len(data) < length or len(tail) < 4:
                    break  # the last record is still being written
                try:
                    step, wall, summary = None, 0.0, None
                    for num, _wt, v in fields(data):
                        if num == 1:
                            wall = f64(v)
                        elif num == 2 and isinstance(v, int):
                            step = signed(v)
                        elif num == 5 and isinstance(v, bytes):
                            summary = v
                    if summary is not None:
                        for num, _wt, v in fields(summary):
                            if num == 1 and isinstance(v, bytes):
                                got = _scalar(v)
                                if got is not None:
                                    rows.append((step, wall, got[0], got[1]))
                except ProtoError:
                    bad += 1
                if deadline is not None and time.monotonic() > deadline:
                    warnings.append(f"reading took over {MAX_SECONDS:.0f} s; the rest of {name} is not read")
                    break
    except OSError as exc:
        warnings.append(f"{name} could not be read: {exc.strerror or exc}")
    if bad:
        warnings.append(f"{name}: {bad} event(s) could not be decoded and were skipped")


def event_files(folder: Path) -> list[Path]:
    """The folder's event files, in name order (their names start with the writer's start time)."""
    try:
        return [folder / n for n in sorted(os.listdir(folder)) if n.startswith(PREFIX)]
    except OSError:
        return []


class TensorboardRecogniser:
    name = "tensorboard"

    def owner(self, path: Path) -> Path | None:
        if path.name.startswith(PREFIX):
            return path.parent
        if path.name == "hparams.yaml" and event_files(path.parent):
            return path.parent
        return None

    def detect(self, folder: Path) -> bool:
        return bool(event_files(folder))

    def members(self, folder: Path) -> list[Path]:
        return [*event_files(folder), folder / "hparams.yaml"]

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder), format="tensorboard-run")
        if is_file(folder / "hparams.yaml"):
            load_run_config(folder / "hparams.yaml", info, max_bytes=max_bytes)
            info.format = "lightning-run"
            info.info["version"] = folder.name
            info.info["name"] = folder.parent.name
        rows: list[tuple[int | None, float, str, float]] = []
        deadline = time.monotonic() + MAX_SECONDS
        for f in event_files(folder):
            info.touch(f)
            read_event_file(f, rows, info.warnings, deadline=deadline)
        epochs = {step: value for step, _w, tag, value in rows if tag == "epoch"}
        summary = MetricsSummary()
        walls = [w for _s, w, _t, _v in rows if w]
        for step, _wall, tag, value in rows:
            if tag == "epoch":
                if not math.isnan(value):
                    summary.epoch_values.add(value)
                    summary.last_epoch = value
                continue
            if tag == "hp_metric" and value == -1.0:
                continue  # Lightning's placeholder before any hp_metric is logged
            summary.add(tag, value, step=step, epoch=epochs.get(step))
            if step is not None:
                summary.last_step = float(step)
        info.take_metrics(summary)
        if summary.epoch_count:
            info.info["epochs"] = summary.epoch_count
        if summary.last_step is not None:
            info.info["steps"] = summary.last_step
        if walls:
            info.started_at, info.ended_at = min(walls), max(walls)
        return info
