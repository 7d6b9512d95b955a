"""The indexer's settings: flags > environment > config file > defaults.

A thin adapter over :func:`ednaquery.settings.load_settings`, the one place that knows the
settings' fields (:class:`ednaquery.settings.Settings`, which :func:`resolve` returns), the
environment variables and the config file, so ``ednaquery config`` shows what the daemon
uses. What it adds: ``--include``/``--exclude`` flags *add to* the configured globs (which
default to :data:`indexer.patterns.DEFAULT_INCLUDE`/``DEFAULT_EXCLUDE``), and durations
may be written ``30s``, ``10m``, ``1h`` (a bare number is seconds).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from ednaquery.errors import UsageError
from ednaquery.settings import Settings, load_settings
from indexer.patterns import DEFAULT_EXCLUDE, DEFAULT_INCLUDE


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
            reconcile_every: str | None = None, config_path: str | None = None) -> Settings:
    """Settings in force: the given flags (None/empty: not given) over everything else.

    ``config_path`` names the config file (``ednaquery --config``); else it is found as usual.
    ``include``/``exclude`` of the result are never None: the configured globs (else the
    built-in ones) followed by the flags' globs.
    """
    if debounce is not None and debounce < 0:
        raise UsageError("--debounce must be >= 0 seconds")
    s = load_settings(config_path, store=store, roots=list(roots) or None, poll=poll, debounce=debounce,
                      reconcile_every=parse_duration(reconcile_every) if reconcile_every is not None else None)
    base_inc = list(s.include) if s.include is not None else list(DEFAULT_INCLUDE)
    base_exc = list(s.exclude) if s.exclude is not None else list(DEFAULT_EXCLUDE)
    s.include = list(dict.fromkeys([*base_inc, *include]))
    s.exclude = list(dict.fromkeys([*base_exc, *exclude]))
    return s
