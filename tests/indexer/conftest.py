"""Fixtures for the indexer daemon tests: a fake store, an Indexer on a tmp root (inotify or polling)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.daemon import Indexer
from tests.support.indexer import FakeStore, standin_convert


@pytest.fixture
def fake_store() -> FakeStore:
    return FakeStore()


@pytest.fixture(params=["inotify", "polling"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return Path(os.path.realpath(r))


@pytest.fixture
def make_indexer(fake_store: FakeStore, mode: str) -> Iterator:
    made: list[Indexer] = []

    def make(*roots: Path, **kw: object) -> Indexer:
        opts: dict = {"convert": standin_convert, "debounce": 0.05, "poll": mode == "polling",
                      "poll_interval": 0.1, "retry_interval": 0.2, "backoff_cap": 0.2, "reconcile_every": None}
        opts.update(kw)
        ix = Indexer(opts.pop("store_factory", fake_store.factory), [str(r) for r in roots], **opts)
        made.append(ix)
        return ix

    yield make
    for ix in made:
        ix.stop(drain=False)
