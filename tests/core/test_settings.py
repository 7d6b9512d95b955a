"""Settings: flags > environment > config file > defaults, with the source of each value."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ednaquery.errors import UsageError
from ednaquery.settings import Settings, find_config_file, load_settings


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project folder with .ednaquery/config.toml and a subfolder to run from."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "proj" / ".ednaquery").mkdir(parents=True)
    (tmp_path / "proj" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "proj" / ".ednaquery" / "config.toml").write_text(
        'store = "db/index.db"\n'
        'roots = ["experiments", "/abs/sweeps"]\n'
        "debounce = 0.5\n"
        "poll = true\n"
        'aliases = [["lr", "base_lr"]]\n'
        'runs_root = "runs"\n')
    return tmp_path / "proj"


def test_defaults_without_any_source(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    s = load_settings(env={}, cwd=tmp_path)
    assert s.config_path is None and s.store is None and s.roots == []
    assert s.debounce == 0.3 and s.poll is False and s.store_timeout_ms == 3000
    assert s.source("debounce") == "default" and s.source("store") == "default (user data dir)"
    assert s.effective_runs_root() is None


def test_project_config_file_is_found_from_a_subfolder_and_paths_are_project_relative(project):
    s = load_settings(env={}, cwd=project / "deep" / "er")
    cfg = project / ".ednaquery" / "config.toml"
    assert s.config_path == cfg.resolve()
    assert s.store == str(project / "db" / "index.db")
    assert s.roots == [str(project / "experiments"), "/abs/sweeps"]
    assert s.runs_root == str(project / "runs")
    assert s.debounce == 0.5 and s.poll is True
    assert s.aliases == [["lr", "base_lr"]]
    assert ["lr", "learning_rate", "lr0", "base_lr"] in s.alias_groups()
    assert s.source("roots") == f"config {cfg}"


def test_env_beats_file_and_flags_beat_env(project):
    env = {"EDNAQUERY_STORE": "mongodb://u:pw@h/db", "EDNAQUERY_ROOTS": os.pathsep.join(["a", "/b"]),
           "EDNAQUERY_POLL": "0", "EDNAQUERY_DEBOUNCE": "2"}
    s = load_settings(env=env, cwd=project)
    assert s.store == "mongodb://u:pw@h/db" and s.source("store") == "env EDNAQUERY_STORE"
    assert s.roots == [str(project / "a"), "/b"]
    assert s.poll is False and s.debounce == 2.0
    s = load_settings(env=env, cwd=project, store="/x/i.db", debounce=0.1, roots=None)
    assert s.store == "/x/i.db" and s.source("store") == "flag"
    assert s.debounce == 0.1 and s.source("debounce") == "flag"
    assert s.source("roots") == "env EDNAQUERY_ROOTS"  # None flags are "not given"


def test_config_path_from_flag_or_env_beats_discovery(project, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("debounce = 9\n")
    assert load_settings(other, env={}, cwd=project).debounce == 9
    assert load_settings(env={"EDNAQUERY_CONFIG": str(other)}, cwd=project).debounce == 9
    with pytest.raises(UsageError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={}, cwd=project)


def test_user_config_file_when_no_project(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "ednaquery" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("max_file_bytes = 1000\n")
    (tmp_path / "w").mkdir()
    assert find_config_file(tmp_path / "w") == user
    s = load_settings(env={}, cwd=tmp_path / "w")
    assert s.max_file_bytes == 1000 and s.source("max_file_bytes") == f"config {user}"


@pytest.mark.parametrize("text, message", [
    ("debounse = 1\n", "did you mean 'debounce'"),
    ("debounce = 'soon'\n", "must be a number"),
    ("poll = 'maybe'\n", "true or false"),
    ("roots = 3\n", "list of strings"),
    ("aliases = [['a.b', 'c']]\n", "one key segment"),
    ("store = [\n", "not valid TOML"),
])
def test_bad_config_files_are_one_line_usage_errors(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        load_settings(cfg, env={}, cwd=tmp_path)
    assert "\n" not in str(info.value)


def test_bad_env_values_name_the_variable(tmp_path):
    with pytest.raises(UsageError, match="EDNAQUERY_DEBOUNCE"):
        load_settings(env={"EDNAQUERY_DEBOUNCE": "fast"}, cwd=tmp_path)
    with pytest.raises(UsageError, match="unknown setting"):
        load_settings(env={}, cwd=tmp_path, colour=True)


def test_password_is_never_shown(tmp_path):
    s = load_settings(env={"EDNAQUERY_STORE": "mongodb://alice:hunter2@db:27017/eq"}, cwd=tmp_path)
    shown = repr(s) + str(s.display_items()) + str(s.as_dict())
    assert "hunter2" not in shown and "alice:***@db:27017" in shown
    assert s.store.endswith("hunter2@db:27017/eq")  # the real value is kept for connecting


def test_runs_root_defaults_to_the_first_root(tmp_path):
    s = Settings(roots=["/data/exp", "/data/other"])
    assert s.effective_runs_root() == "/data/exp/runs"


def test_default_store_is_the_nearest_project_index_else_the_user_data_dir(project, tmp_path, monkeypatch):
    from ednaquery.settings import default_store_path
    from ednaquery.store.sqlite import sqlite_path_from_uri

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_store_path(project / "deep" / "er") == project / ".ednaquery" / "index.db"
    (tmp_path / "elsewhere").mkdir()
    assert default_store_path(tmp_path / "elsewhere") == tmp_path / "data" / "ednaquery" / "index.db"
    monkeypatch.chdir(project / "deep")
    assert sqlite_path_from_uri(None) == project / ".ednaquery" / "index.db", "the store opens the same file"
