"""Trainer tests: prepared image caches go to a temporary folder, never the user's ~/.cache."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _trainer_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDNAQUERY_TRAINER_CACHE", str(tmp_path_factory.mktemp("trainer-cache")))
