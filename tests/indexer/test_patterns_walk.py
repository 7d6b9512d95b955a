"""Include/exclude globs and the reconcile walk."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.patterns import DEFAULT_EXCLUDE, DEFAULT_INCLUDE, PathFilter, rel_parts
from indexer.walk import walk


def parts(p: str) -> tuple[str, ...]:
    return tuple(p.split("/"))


@pytest.mark.parametrize("path", [
    "config.yaml", "a/b/c.yml", "x.json", "pyproject.toml",
    "runs/r1/metrics.jsonl", "lightning_logs/version_0/metrics.csv", "lightning_logs/version_0/hparams.yaml",
    "out/summary.json", "wandb/run-20240101_000000-abc/files/wandb-summary.json",
    "wandb/run-20240101_000000-abc/files/config.yaml",
    "mlruns/0/4f2a/params/lr", "mlruns/0/4f2a/metrics/val_loss", "mlruns/0/4f2a/meta.yaml",
    "outputs/2024-01-01/12-00-00/.hydra/config.yaml",
])
def test_default_include_takes_configs_and_run_outputs(path: str) -> None:
    assert PathFilter().wants_file(parts(path))


@pytest.mark.parametrize("path", [
    "notes.txt", "train.py", "model.pt", "ckpt/last.ckpt",
    ".git/config.yaml", "src/.git/x.json", "pkg/__pycache__/x.json", "web/node_modules/a/package.json",
    "wandb/run-1/files/media/table/t.table.json",
    ".#config.yaml", "config.yaml~", ".config.yaml.swp", "4913",
    ".ednaquery/state.json", "mlruns/0/4f2a/metrics/plot.png",
])
def test_default_exclude_drops_vcs_checkpoints_media_and_editor_temp_files(path: str) -> None:
    assert not PathFilter().wants_file(parts(path))


def test_custom_globs_replace_defaults() -> None:
    f = PathFilter(include=["*.cfg", "conf/*"], exclude=["scratch"])
    assert f.wants_file(parts("a/x.cfg")) and f.wants_file(parts("conf/whatever"))
    assert not f.wants_file(parts("a/x.yaml"))
    assert not f.wants_file(parts("scratch/x.cfg"))
    assert "*.yaml" in DEFAULT_INCLUDE and ".git" in DEFAULT_EXCLUDE


def test_rel_parts() -> None:
    assert rel_parts("/r", "/r/a/b.yaml") == ("a", "b.yaml")
    assert rel_parts("/r", "/r") == ()
    assert rel_parts("/r", "/rx/a.yaml") is None


def test_walk_finds_wanted_files_with_their_state(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.yaml").write_text("x: 1")
    (tmp_path / "top.json").write_text("{}")
    (tmp_path / "skip.txt").write_text("no")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("x: 1")
    (tmp_path / "node_modules" / "p").mkdir(parents=True)
    (tmp_path / "node_modules" / "p" / "package.json").write_text("{}")
    res = walk(str(tmp_path), PathFilter())
    assert set(res.files) == {str(tmp_path / "a" / "b" / "c.yaml"), str(tmp_path / "top.json")}
    st = os.stat(tmp_path / "top.json")
    s = res.files[str(tmp_path / "top.json")]
    assert (s.size, s.mtime_ns, s.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert res.unreadable == {}


def test_walk_survives_symlink_loops_and_dangling_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.yaml").write_text("x: 1")
    os.symlink(str(tmp_path), tmp_path / "d" / "loop")  # d/loop -> root: a cycle
    os.symlink("self-loop.yaml", tmp_path / "self-loop.yaml")  # a link to itself
    os.symlink(str(tmp_path / "nowhere.yaml"), tmp_path / "dangling.yaml")
    os.symlink(str(tmp_path / "d" / "x.yaml"), tmp_path / "link.yaml")  # a link to a file: indexed
    res = walk(str(tmp_path), PathFilter())
    assert set(res.files) == {str(tmp_path / "d" / "x.yaml"), str(tmp_path / "link.yaml")}


def test_walk_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    res = walk(str(tmp_path / "nope"), PathFilter())
    assert res.files == {} and res.unreadable == {}
