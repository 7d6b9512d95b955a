"""ednaquery: index and query ML experiment configs and runs; ``start_run`` logs a run from any training loop."""
from __future__ import annotations

from typing import Any

__all__ = ["start_run"]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``import ednaquery.cli`` must not pay for the logging API (PEP 562)."""
    if name == "start_run":
        from ednaquery.tracking import start_run

        return start_run
    raise AttributeError(f"module 'ednaquery' has no attribute {name!r}")
