"""Index a run folder while it trains: the one bridge from the engine's files to the store.

Every time the engine rewrites ``run.json`` (start, each epoch, the end) the run document is
rebuilt from the folder's files by :func:`ednaquery.runfolder.read_run_folder` and upserted, with
its metric series (the store's series table): the same functions the indexer uses, so a run
indexed by both is one document with one series. A store that is
down does not stop a run: the failure is logged and the next update tries again. Both
:mod:`trainer.ops.launch` (one process) and :mod:`trainer.ddp` (rank 0, and the launching
process once the ranks are done) record through :class:`RunRecorder`.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ednaquery.errors import EdnaError
from ednaquery.runfolder import document_from, read_run_folder
from ednaquery.store.base import Store, series_rows

__all__ = ["RunRecorder"]

log = logging.getLogger(__name__)


class RunRecorder:
    """Upserts a run folder's document whenever the engine reports progress; never raises."""

    def __init__(self, store: Store, run_dir: Path, *, announce: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.run_dir = Path(run_dir)
        self.announce = announce
        self.last_error: str | None = None
        self.writes = 0
        self._device_said = False
        self._lock = threading.Lock()

    def __call__(self, snap: Any = None) -> None:
        self._say_device(snap)
        self.record()

    def _say_device(self, snap: Any) -> None:
        info = getattr(snap, "info", None) or {}
        if self._device_said or not info.get("device_name") or self.announce is None:
            return
        self._device_said = True
        device = str(info.get("device") or "")
        if device.startswith("cuda"):  # the engine itself says when it uses the CPU
            self.announce(f"using GPU {info['device_name']} ({device})")

    def record(self) -> bool:
        """Rebuild the document and series from the folder and write them; False (and a warning) if that failed."""
        with self._lock:
            try:
                rf = read_run_folder(self.run_dir)
                doc = document_from(rf)
                self.store.upsert([doc])
                self.store.replace_series({doc["_id"]: series_rows(rf.series)})
            except (EdnaError, OSError) as exc:
                if str(exc) != self.last_error:
                    log.warning("could not index run %s: %s (the run goes on; its folder has everything)",
                                self.run_dir.name, exc)
                self.last_error = str(exc)
                return False
            except Exception as exc:  # noqa: BLE001 - indexing must never kill a training run
                log.warning("could not index run %s: %s: %s", self.run_dir.name, type(exc).__name__, exc)
                self.last_error = str(exc)
                return False
            self.last_error = None
            self.writes += 1
            return True
