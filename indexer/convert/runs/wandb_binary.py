"""Weights & Biases runs as wandb >= 0.17 writes them: ``wandb/<offline->run-<time>-<id>/run-<id>.wandb``.

Since 0.17 (and only, in offline mode, since ~0.19) the ``.wandb`` file holds the whole run:
config, history, summary and the exit code; ``files/`` has little more than
``requirements.txt``. The file is a LevelDB-style log (a 7-byte ``:W&B`` header, then 32 KiB
blocks of chunks ``crc32 | length | type`` holding ``wandb_internal.Record`` protobufs).

It is read here with a small decoder (:mod:`~indexer.convert.runs.protowire`), not with wandb:
wandb 0.31 has no Python reader left (its Go core reads the file), and the indexer image stays
small without wandb or protobuf. The record fields used are stable since 0.17; unknown ones
are skipped. See docs/runs.md for the trade-offs.

- config: the run record's config plus every config record (``_wandb`` left out);
- history rows -> series and last/best (:class:`ednaquery.metrics.MetricsSummary`), the
  summary record -> final values;
- status: the exit record's code (0 completed, 255/130 interrupted, else failed); without one,
  ``running`` while the file was written in the last :data:`RUNNING_FOR` seconds, else
  ``unknown`` (a process killed before it could write its exit);
- the id is W&B's run id. A torn last chunk (a run still writing) is skipped quietly; a bad
  checksum or an undecodable record becomes a warning and the rest is read.

Whatever W&B version wrote the folder, its ``.wandb`` file is what is read: wandb 0.16's
offline runs also keep config, history, summary and exit code only there (``files/`` holds a
``wandb-summary.json`` with nothing but ``_wandb.runtime``). The JSON/YAML files under
``files/`` (:mod:`~indexer.convert.runs.wandb_legacy`) are the fallback, read when the
``.wandb`` file gives no run at all (no run record, config or history: unreadable, or cut
before its first record).
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ednaquery.fsutil import open_regular
from ednaquery.loaders import DEFAULT_MAX_BYTES
from ednaquery.metrics import MAX_METRICS_BYTES, MetricsSummary, as_number, is_step_key
from indexer.convert.runs.base import RunInfo, is_file
from indexer.convert.runs.protowire import ProtoError, f64, fields, signed, sint, text
from indexer.convert.runs.wandb_legacy import FILES as LEGACY_FILES
from indexer.convert.runs.wandb_legacy import WandbRecogniser

__all__ = ["WandbBinaryRecogniser", "WandbRun", "read_wandb_file"]

_FILE = re.compile(r"^run-([A-Za-z0-9_-]+)\.wandb$")
_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32768
#: no exit record and written this recently: the run is still going
RUNNING_FOR = 300.0
#: reading one file stops (with a warning) after this many seconds
MAX_SECONDS = 30.0
_INTERRUPTED = {255, 130, -2, 2}


@dataclass
class WandbRun:
    """What a ``.wandb`` file says."""

    run_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    runtime: float | None = None
    started_at: float | None = None
    warnings: list[str] = field(default_factory=list)


def _chunks(fh: Any, limit: int, out: WandbRun, deadline: float) -> Any:
    """Each whole record's bytes (chunks joined) from the log after its header."""
    pos, parts, bad = len(_HEADER), [], 0
    while True:
        left = BLOCK - pos % BLOCK
        if left < 7:
            fh.read(left)
            pos += left
            continue
        head = fh.read(7)
        if len(head) < 7:
            break  # end of file (or a header still being written)
        crc, length, kind = struct.unpack("<IHB", head)
        if kind == 0 and length == 0:  # zero padding at the end of a block
            fh.read(left - 7)
            pos += left
            continue
        if pos + 7 + length > limit:
            out.warnings.append(f"the file is over {limit:,} bytes; records after that are not read")
            break
        data = fh.read(length)
        if len(data) < length:
            break  # the last record is still being written
        pos += 7 + length
        if zlib.crc32(data, zlib.crc32(bytes([kind]))) != crc:
            bad += 1
            parts = []
            continue
        if kind == 1:
            yield data
        elif kind == 2:
            parts = [data]
        elif kind == 3:
            parts.append(data)
        elif kind == 4:
            parts.append(data)
            yield b"".join(parts)
            parts = []
        if time.monotonic() > deadline:
            out.warnings.append(f"reading took over {MAX_SECONDS:.0f} s; the rest of the file is not read")
            break
    if bad:
        out.warnings.append(f"{bad} record chunk(s) failed their checksum and were skipped")


def _item_key(buf: bytes) -> tuple[list[str], dict[int, Any]]:
    """An item's key (``key`` or the ``nested_key`` path) and its other fields."""
    key: list[str] = []
    nested: list[str] = []
    rest: dict[int, Any] = {}
    for num, _wt, v in fields(buf):
        if num == 1:
            key = [text(v)]
        elif num == 2:
            nested.append(text(v))
        else:
            rest[num] = v
    return nested or key, rest


def _json(v: Any) -> Any:
    try:
        return json.loads(text(v))
    except ValueError:
        return text(v)


def _set(target: dict, path: list[str], value: Any) -> None:
    for k in path[:-1]:
        nxt = target.get(k)
        if not isinstance(nxt, dict):
            nxt = target[k] = {}
        target = nxt
    target[path[-1]] = value


def _drop(target: dict, path: list[str]) -> None:
    for k in path[:-1]:
        target = target.get(k) if isinstance(target.get(k), dict) else {}
    target.pop(path[-1], None)


def _config(buf: bytes, config: dict) -> None:
    for num, _wt, v in fields(buf):
        if num in (1, 2) and isinstance(v, bytes):
            path, rest = _item_key(v)
            if not path:
                continue
            if num == 1:
                _set(config, path, _json(rest.get(16, b"null")))
            else:
                _drop(config, path)


def _history(buf: bytes, summary: MetricsSummary) -> None:
    row: dict[str, Any] = {}
    step = None
    for num, _wt, v in fields(buf):
        if num == 2 and isinstance(v, bytes):
            n = next((x for k, _w, x in fields(v) if k == 1), None)
            step = signed(n) if isinstance(n, int) else None
        elif num == 1 and isinstance(v, bytes):
            path, rest = _item_key(v)
            if not path:
                continue
            if 16 in rest:
                value = _json(rest[16])
            elif 6 in rest:
                value = f64(rest[6])
            elif 5 in rest:
                value = sint(rest[5]) if isinstance(rest[5], int) else None
            else:
                continue  # text, booleans, none
            if isinstance(value, (dict, list, bool)):
                continue  # media, histograms, tables
            row["/".join(path)] = value
    if step is not None and "_step" not in row:
        row["_step"] = step
    summary.add_record(row)


def _run(buf: bytes, out: WandbRun) -> None:
    tags = []
    for num, _wt, v in fields(buf):
        if num == 1:
            out.run_id = text(v)
        elif num in (2, 3, 6, 7, 8, 9, 12, 13) and isinstance(v, bytes) and v:
            name = {2: "entity", 3: "project", 6: "group", 7: "job_type", 8: "name", 9: "notes",
                    12: "sweep_id", 13: "host"}[num]
            out.info[name] = text(v)
        elif num == 10:
            tags.append(text(v))
        elif num == 4 and isinstance(v, bytes):
            _config(v, out.config)
        elif num == 17 and isinstance(v, bytes):
            secs = nanos = 0
            for k, _w, x in fields(v):
                if k == 1 and isinstance(x, int):
                    secs = signed(x)
                elif k == 2 and isinstance(x, int):
                    nanos = signed(x)
            out.started_at = secs + nanos / 1e9
        elif num == 18 and v:
            out.info["resumed"] = True
    if tags:
        out.info["tags"] = tags


def read_wandb_file(path: str | os.PathLike[str], summary: MetricsSummary, *,
                    max_bytes: int = MAX_METRICS_BYTES) -> WandbRun:
    """Decode one ``.wandb`` file: history into ``summary``, the rest into a :class:`WandbRun`."""
    out = WandbRun()
    deadline = time.monotonic() + MAX_SECONDS
    try:
        with open_regular(path) as fh:
            if fh.read(len(_HEADER)) != _HEADER:
                out.warnings.append(f"{Path(path).name} is not a W&B run file (no :W&B header)")
                return out
            undecodable = 0
            for rec in _chunks(fh, max_bytes, out, deadline):
                try:
                    for num, _wt, v in fields(rec):
                        if not isinstance(v, bytes):
                            continue
                        if num == 2:
                            _history(v, summary)
                        elif num == 5:
                            _config(v, out.config)
                        elif num == 3:
                            _config(v, out.summary)  # same item shape: update/remove key -> value_json
                        elif num == 17:
                            _run(v, out)
                        elif num == 18:
                            out.exit_code = 0  # proto3 leaves a 0 exit code out
                            for k, _w, x in fields(v):
                                if k == 1 and isinstance(x, int):
                                    out.exit_code = signed(x)
                                elif k == 2 and isinstance(x, int):
                                    out.runtime = float(signed(x))
                except ProtoError:
                    undecodable += 1
            if undecodable:
                out.warnings.append(f"{undecodable} record(s) could not be decoded and were skipped")
    except OSError as exc:
        out.warnings.append(f"{Path(path).name} could not be read: {exc.strerror or exc}")
    return out


def status_of(run: WandbRun, mtime: float | None) -> str:
    """The trainer's status word for a W&B run (module docstring)."""
    if run.exit_code is not None:
        if run.exit_code == 0:
            return "completed"
        return "interrupted" if run.exit_code in _INTERRUPTED else "failed"
    if mtime is not None and time.time() - mtime < RUNNING_FOR:
        return "running"
    return "unknown"


class WandbBinaryRecogniser:
    name = "wandb_binary"

    @staticmethod
    def _file(folder: Path) -> Path | None:
        try:
            names = sorted(n for n in os.listdir(folder) if _FILE.match(n))
        except OSError:
            return None
        return folder / names[-1] if names else None

    def owner(self, path: Path) -> Path | None:
        if _FILE.match(path.name):
            return path.parent
        if path.parent.name == "files" and self._file(path.parent.parent) is not None:
            return path.parent.parent  # online runs also write files/config.yaml etc.: part of this run
        return None

    def detect(self, folder: Path) -> bool:
        return self._file(folder) is not None

    def members(self, folder: Path) -> list[Path]:
        f = self._file(folder)
        return ([f] if f is not None else []) + [folder / "files" / n for n in LEGACY_FILES]

    def read(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunInfo:
        info = RunInfo(layout=self.name, folder=str(folder), format="wandb-run")
        f = self._file(folder)
        summary = MetricsSummary()
        if f is None or not is_file(f):
            info.warnings.append("the W&B run file is gone")
            return info
        info.touch(f)
        run = read_wandb_file(f, summary, max_bytes=MAX_METRICS_BYTES)
        if run.run_id is None and not run.config and not summary.points and WandbRecogniser().detect(folder):
            legacy = WandbRecogniser().read(folder, max_bytes=max_bytes)  # the fallback (module docstring)
            legacy.warnings[:0] = [*run.warnings, f"{f.name} holds no run record: read files/ instead"]
            return legacy
        info.warnings += run.warnings
        m = _FILE.match(f.name)
        info.run_id = run.run_id or (m.group(1) if m else None)
        info.config = {k: v for k, v in run.config.items() if k != "_wandb"}
        info.info.update(run.info)
        info.info["wandb_id"] = info.run_id
        info.info["offline"] = folder.name.startswith("offline-")
        if run.exit_code is not None:
            info.info["exit_code"] = run.exit_code
        info.started_at = run.started_at
        runtime = run.runtime if run.runtime is not None else as_number(run.summary.get("_runtime"))
        if runtime is not None and info.started_at is not None:
            info.ended_at = info.started_at + runtime
        for k, v in run.summary.items():
            if str(k).startswith("_") or is_step_key(str(k)):
                continue
            if isinstance(v, dict) and ("_type" in v or not any(x in v for x in ("max", "min", "last", "best"))):
                continue  # media, histograms, tables
            summary.set_final(str(k), v)
        if as_number(run.summary.get("_step")) is not None:
            info.info["steps"] = as_number(run.summary.get("_step"))
        info.take_metrics(summary)
        if summary.epoch_count:
            info.info["epochs"] = summary.epoch_count
        info.status = status_of(run, info.mtime)
        return info
