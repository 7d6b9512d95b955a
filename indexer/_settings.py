"""The indexer's settings: flags > environment > config file > defaults.

A thin adapter: ``ednaquery.settings.load_settings`` is the one place that knows the
config file; until it exists (or for keys it lacks) the environment is read here:
``EDNAQUERY_STORE``, ``EDNAQUERY_ROOTS`` (os.pathsep-separated), ``EDNAQUERY_POLL``,
``EDNAQUERY_DEBOUNCE``, ``EDNAQUERY_RECONCILE_EVERY``. ``--include``/``--exclude`` add to the
configured globs (which default to :data:`indexer.patterns.DEFAULT_INCLUDE`/``EXCLUDE``).
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ednaquery.errors import UsageError
from indexer.patterns import DEFAULT_EXCLUDE, DEFAULT_INCLUDE

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass
class IndexerSettings:
    store: str | None = None
    roots: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    poll: bool = False
    debounce: float = 0.3
    reconcile_every: float = 600.0  # seconds; 0 = only at start and on SIGHUP


def parse_duration(text: str | float, *, default_unit: str = "m") -> float:
    """``10`` (minutes by default), ``30s``, ``10m``, ``1h``, ``0`` -> seconds."""
    if isinstance(text, (int, float)):
        return float(text) * {"s": 1, "m": 60, "h": 3600}[default_unit]
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text))
    if not m:
        raise UsageError(f"bad duration {text!r}: use a number with s, m or h, e.g. 30s or 10m")
    unit = m.group(2) or default_unit
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit]


def _env_bool(name: str) -> bool | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise UsageError(f"{name}={raw!r} is not a yes/no value; use 1 or 0")


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number (seconds)") from None


def _base() -> IndexerSettings:
    """Config file and defaults (via ednaquery.settings when it exists), then environment."""
    s = IndexerSettings()
    try:
        from ednaquery.settings import load_settings
    except ImportError:
        load_settings = None
    if load_settings is not None:
        core = load_settings()
        for name in ("store", "roots", "include", "exclude", "poll", "debounce", "reconcile_every"):
            value = getattr(core, name, None)
            if value is not None:
                setattr(s, name, list(value) if isinstance(value, (list, tuple)) else value)
        return s
    # no core settings module: read the environment ourselves
    s.store = os.environ.get("EDNAQUERY_STORE") or None
    roots = os.environ.get("EDNAQUERY_ROOTS")
    if roots:
        s.roots = [r for r in roots.split(os.pathsep) if r]
    poll = _env_bool("EDNAQUERY_POLL")
    if poll is not None:
        s.poll = poll
    debounce = _env_float("EDNAQUERY_DEBOUNCE")
    if debounce is not None:
        s.debounce = debounce
    every = os.environ.get("EDNAQUERY_RECONCILE_EVERY")
    if every:
        s.reconcile_every = parse_duration(every)
    return s


def resolve(*, store: str | None = None, roots: Sequence[str] = (), include: Sequence[str] = (),
            exclude: Sequence[str] = (), poll: bool | None = None, debounce: float | None = None,
            reconcile_every: str | None = None) -> IndexerSettings:
    """Settings in force: the given flags (None/empty: not given) over everything else."""
    s = _base()
    if store:
        s.store = store
    if roots:
        s.roots = list(roots)
    s.include = list(dict.fromkeys([*s.include, *include]))
    s.exclude = list(dict.fromkeys([*s.exclude, *exclude]))
    if poll is not None:
        s.poll = poll
    if debounce is not None:
        s.debounce = debounce
    if reconcile_every is not None:
        s.reconcile_every = parse_duration(reconcile_every)
    if s.debounce < 0:
        raise UsageError("--debounce must be >= 0 seconds")
    return s
