"""Atomic writes (ednaquery.fsutil): a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ednaquery.fsutil import atomic_file, write_atomic, write_json_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    f = tmp_path / "run.json"
    write_json_atomic(f, {"status": "running"})
    with pytest.raises(TypeError):
        write_json_atomic(f, {"status": object()})
    with pytest.raises(RuntimeError), atomic_file(f) as fh:
        fh.write(b'{"status": "half')
        raise RuntimeError("killed mid-write")
    assert json.loads(f.read_text()) == {"status": "running"}
    assert os.listdir(tmp_path) == ["run.json"]


def test_text_default_and_private_mode(tmp_path: Path) -> None:
    f = tmp_path / "status.json"
    write_json_atomic(f, {"path": Path("/x")}, default=str, mode=0o600, fsync=False)
    assert json.loads(f.read_text()) == {"path": "/x"}
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    write_atomic(tmp_path / "note.txt", "é\n")
    assert (tmp_path / "note.txt").read_bytes() == "é\n".encode()
