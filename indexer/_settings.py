"""The indexer's settings: flags > environment > config file > defaults.

A thin adapter over :func:`ednaquery.settings.load_settings`, the one place that knows the
environment variables and the config file, so ``ednaquery config`` shows what the daemon
uses. What it adds: ``--include``/``--exclude`` flags *add to* the configured globs (which
default to :data:`indexer.patterns.DEFAULT_INCLUDE`/``DEFAULT_EXCLUDE``), and durations
may be written ``30s``, ``10m``, ``1h`` (a bare number is seconds).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ednaquery.errors import UsageError
from ednaquery.settings import load_settings
from indexer.patterns import DEFAULT_EXCLUDE, DEFAULT_INCLUDE


@dataclass
class IndexerSettings:
    store: str | None = None
    roots: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    poll: bool = False
    debounce: float = 0.3
    reconcile_every: float = 600.0  # seconds; 0 = only at start and on SIGHUP
    max_file_bytes: int = 5 * 1024 * 1024
    store_timeout_ms: int = 3000
    config_path: str | None = None  # the config file that was read


def parse_duration(text: str | float) -> float:
    """``30`` or ``30s`` (seconds), ``10m``, ``1h``, ``0`` -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text))
    if not m:
        raise UsageError(f"bad duration {text!r}: use seconds or a number with s, m or h, e.g. 30s or 10m")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def resolve(*, store: str | None = None, roots: Sequence[str] = (), include: Sequence[str] = (),
            exclude: Sequence[str] = (), poll: bool | None = None, debounce: float | None = None,
            reconcile_every: str | None = None, config_path: str | None = None) -> IndexerSettings:
    """Settings in force: the given flags (None/empty: not given) over everything else.

    ``config_path`` names the config file (``ednaquery --config``); else it is found as usual.
    """
    if debounce is not None and debounce < 0:
        raise UsageError("--debounce must be >= 0 seconds")
    core = load_settings(config_path, store=store, roots=list(roots) or None, poll=poll, debounce=debounce,
                         reconcile_every=parse_duration(reconcile_every) if reconcile_every is not None else None)
    base_inc = list(core.include) if core.include is not None else list(DEFAULT_INCLUDE)
    base_exc = list(core.exclude) if core.exclude is not None else list(DEFAULT_EXCLUDE)
    return IndexerSettings(
        store=core.store,
        roots=list(core.roots),
        include=list(dict.fromkeys([*base_inc, *include])),
        exclude=list(dict.fromkeys([*base_exc, *exclude])),
        poll=core.poll,
        debounce=core.debounce,
        reconcile_every=core.reconcile_every,
        max_file_bytes=core.max_file_bytes,
        store_timeout_ms=core.store_timeout_ms,
        config_path=str(core.config_path) if core.config_path else None,
    )
