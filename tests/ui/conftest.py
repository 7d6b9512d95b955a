"""The ui tests' shared sweep: six trainer run folders indexed into a SQLite store by `ednaquery index`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.cli import main
from tests.support.run_sweep import add_secret_outside, write_sweep


@dataclass
class Sweep:
    root: Path
    db: str
    ids: list[str]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """Run folders under root/runs (lr 1e-4..1e-2), indexed; a symlink in the first leads out of it."""
    root = tmp_path_factory.mktemp("uisweep")
    ids = write_sweep(root)
    add_secret_outside(root, root / "runs" / ids[0])
    db = str(root / "index.db")
    result = CliRunner().invoke(main, ["--store", db, "index", str(root / "runs")])
    assert result.exit_code == 0, result.output
    return Sweep(root, db, ids)
