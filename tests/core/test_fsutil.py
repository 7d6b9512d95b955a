"""ednaquery.fsutil: atomic writes (the old file or the new one, never half) and reads that refuse pipes."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ednaquery.fsutil import (
    NotRegularFile,
    atomic_file,
    head_has_marker,
    open_regular,
    write_atomic,
    write_json_atomic,
)


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


def test_open_regular_reads_a_file_and_refuses_a_pipe_a_device_and_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "metrics.jsonl"
    f.write_text("a\nb\n")
    with open_regular(f, "r", encoding="utf-8") as fh:
        assert fh.read() == "a\nb\n"
    (tmp_path / "link").symlink_to(f)  # a symlinked file is read through
    with open_regular(tmp_path / "link") as fh:
        assert fh.read() == b"a\nb\n"
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotRegularFile, match="named pipe") as exc:
        open_regular(tmp_path / "pipe")  # no writer: a plain open() would wait for good
    assert isinstance(exc.value, OSError) and exc.value.filename == str(tmp_path / "pipe")
    with pytest.raises(NotRegularFile, match="character device"):
        open_regular("/dev/zero")
    with pytest.raises(IsADirectoryError):
        open_regular(tmp_path)
    with pytest.raises(ValueError):
        open_regular(f, "w")


def test_head_has_marker_finds_a_format_marker_near_the_top_only_in_a_regular_file(tmp_path: Path) -> None:
    f = tmp_path / "run.json"
    f.write_text('{"format": "ednaquery-run", "format_version": 1}')
    assert head_has_marker(f, "ednaquery-run")
    assert not head_has_marker(f, "ednaquery-group") and not head_has_marker(f, "ednaquery")  # the whole string
    f.write_text('{"notes": "' + "x" * 5000 + '", "format": "ednaquery-run"}')
    assert not head_has_marker(f, "ednaquery-run")  # past the first 4 KB: not looked at
    os.mkfifo(tmp_path / "pipe")
    assert not head_has_marker(tmp_path / "pipe", "ednaquery-run")  # refused, not waited on
    assert not head_has_marker(tmp_path / "missing.json", "ednaquery-run")
