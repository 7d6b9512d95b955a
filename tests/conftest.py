"""Fixtures shared by every test folder (their helpers live in tests/support)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.wire import start_server, stop


@pytest.fixture(scope="session")
def wire_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An nx-27017 wire-protocol server for the session; the tests skip, with the reason, if it cannot start."""
    proc, uri, why = start_server(tmp_path_factory.mktemp("nx27017"))
    if proc is None:
        pytest.skip(why)
    yield uri
    stop(proc)
