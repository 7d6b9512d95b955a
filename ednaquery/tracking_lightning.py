"""A Lightning ``Logger`` that writes our run folder (:mod:`ednaquery.tracking`): ``Trainer(logger=EdnaLogger())``.

Lightning stays optional: importing this module without ``lightning`` (or ``pytorch_lightning``)
installed raises an ImportError that says what to install; nothing else in ednaquery imports it.
"""
from __future__ import annotations

import os
from argparse import Namespace
from typing import Any

try:
    from lightning.pytorch.loggers.logger import Logger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the older package name
    try:
        from pytorch_lightning.loggers.logger import Logger
        from pytorch_lightning.utilities import rank_zero_only
    except ImportError:
        raise ImportError("ednaquery.tracking_lightning needs Lightning: pip install lightning") from None

from ednaquery.tracking import FLUSH_EVERY_S, Run, start_run

__all__ = ["EdnaLogger"]

#: Lightning's ``finalize`` status -> our run status
_STATUS = {"success": "completed", "finished": "completed", "failed": "failed", "interrupted": "interrupted"}


class EdnaLogger(Logger):
    """Logs hyperparameters and metrics of a Lightning run into ``<root>/<run id>`` (rank 0 only)."""

    def __init__(self, root: str | os.PathLike[str] = "runs", name: str | None = None, *,
                 run_id: str | None = None, flush_every: float = FLUSH_EVERY_S) -> None:
        super().__init__()
        self._root = os.fspath(root)
        self._name = name
        self._run_id = run_id
        self._flush_every = flush_every
        self._run: Run | None = None

    @property
    def run(self) -> Run:
        """The run (started on first use)."""
        if self._run is None:
            self._run = start_run(None, root=self._root, name=self._name, run_id=self._run_id,
                                  flush_every=self._flush_every)
            self._run_id = self._run.id
        return self._run

    @property
    def name(self) -> str:
        return self._name or "ednaquery"

    @property
    def version(self) -> str:
        return self.run.id

    @property
    def root_dir(self) -> str:
        return self._root

    @property
    def log_dir(self) -> str:
        return str(self.run.dir)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        merged = dict(self.run.config)
        merged.update(vars(params) if isinstance(params, Namespace) else dict(params or {}))
        self.run.set_config(merged)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        run = self.run
        if run.status != "running":  # fit then test: the run goes on
            run.status = "running"
        run.log(metrics, step=step, epoch=int(epoch) if epoch is not None else None)

    @rank_zero_only
    def save(self) -> None:
        if self._run is not None and self._run.status == "running":
            self._run.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._run is not None:
            self._run.finish(_STATUS.get(status, "failed"))
