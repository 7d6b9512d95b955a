"""Helpers and fixtures shared by test files: one home each, imported as ``tests.support.<module>``.

- :mod:`tests.support.wait`: wait for a condition instead of sleeping;
- :mod:`tests.support.clock`: a fake clock that moves only when a test advances it, and one a test can hold still;
- :mod:`tests.support.indexer`: an in-memory store, a stand-in converter and tree helpers for the daemon tests;
- :mod:`tests.support.wire`: the nx-27017 MongoDB wire-protocol server (the ``wire_uri`` fixture is in
  tests/conftest.py);
- :mod:`tests.support.mongo_filters`: walking compiled MongoDB filters;
- :mod:`tests.support.settings`: no ``EDNAQUERY_*`` variable or config file in play (``clean_settings``);
- :mod:`tests.support.configs`: the tiny test_resnet-on-digits trainer config (``tiny_config``).
"""
from __future__ import annotations

__all__: list[str] = []
