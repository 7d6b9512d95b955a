"""Trainer exceptions: one-line messages that say what went wrong and what to do.

They derive from ednaquery's error classes so the CLI prints them the same way
(one line, exit 2 for a bad config, exit 1 for a failed run).
"""
from __future__ import annotations

from ednaquery.errors import EdnaError, UsageError


class ConfigError(UsageError):
    """The trainer config (or an override) is invalid; the message names the key."""


class DataError(EdnaError):
    """A dataset cannot be found or read (missing files, no images in a folder...)."""


class TrainingError(EdnaError):
    """Training failed at run time (diverged, out of memory...)."""
