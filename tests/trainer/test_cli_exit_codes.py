"""The ``trainer`` store commands keep the exit-status contract (README "Exit status").

0 success, 1 nothing found, 2 usage error, bad input or an unreachable store; every error
is one line on stderr and never shows the store's password.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.store.sqlite import SQLiteStore
from tests.support.settings import clean_settings
from trainer.cli import main

DOWN = "mongodb://user:pw%40secret@127.0.0.1:1/db"  # nothing listens on port 1


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    clean_settings(tmp_path, monkeypatch)
    monkeypatch.setenv("EDNAQUERY_STORE_TIMEOUT_MS", "300")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("args", [
    ["ls"], ["status"], ["jobs"], ["cancel", "job-x"], ["queue", "abcd1234"], ["launch", "abcd1234"],
    ["resume", "abcd1234"], ["worker", "--once"], ["plot", "abcd1234"], ["status", "abcd1234"],
])
@pytest.mark.parametrize("where", ["group", "command"])
def test_an_unreachable_store_exits_2_in_one_line_without_the_password(args, where):
    pytest.importorskip("pymongo")
    argv = ["--store", DOWN, *args] if where == "group" else [*args, "--store", DOWN]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and "127.0.0.1:1" in res.stderr
    assert "secret" not in res.output and "Traceback" not in res.output


def test_nothing_found_exits_1(tmp_path):
    db = str(tmp_path / "index.db")
    SQLiteStore(db).close()
    res = CliRunner().invoke(main, ["--store", db, "ls", "modle=x"])
    assert res.exit_code == 1 and "no runs" in res.stderr
    res = CliRunner().invoke(main, ["--store", db, "ls", "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout) == []
    res = CliRunner().invoke(main, ["--store", db, "jobs"])
    assert res.exit_code == 1 and "no jobs" in res.stderr
    res = CliRunner().invoke(main, ["--store", db, "status"])
    assert res.exit_code == 0 and "running: 0 run(s)" in res.stdout


@pytest.mark.parametrize(("command", "flags"), [(["launch"], []), (["queue"], []), (["cv"], ["--dry-run"]),
                                              (["bag"], ["--dry-run"]), (["tune", "lr"], []),
                                              (["sweep"], ["--dry-run"])])
def test_a_config_or_sweep_file_that_does_not_parse_is_bad_input(tmp_path, command, flags):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {name: [test_resnet\n")
    res = CliRunner().invoke(main, [*command, str(broken), *flags, "--store", str(tmp_path / "index.db")])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(f"error: {broken}: YAML: line 2") and res.stderr.count("\n") == 1, res.stderr


def test_every_trainer_command_has_help_with_an_example():
    runner = CliRunner()
    assert "Example" in runner.invoke(main, ["--help"]).stdout
    for name in main.commands:
        res = runner.invoke(main, [name, "--help"])
        assert res.exit_code == 0 and "Example" in res.stdout, name


@pytest.mark.parametrize("argv, says", [
    (["trainer", "launch"], "error: Missing argument 'TARGET' (see 'trainer launch --help')"),
    (["trainer", "--bogus"], "error: No such option '--bogus' (see 'trainer --help')"),
    (["trainer", "cache", "ls", "--zzz"], "error: No such option '--zzz' (see 'trainer cache ls --help')"),
    (["trainer", "nosuch"], "error: No such command 'nosuch' (see 'trainer --help')"),
    (["ednaquery", "index"], "error: Missing argument 'PATHS...' (see 'ednaquery index --help')"),
    (["ednaquery", "find", "--limit", "many"], "error: Invalid value for '--limit'"),
])
def test_a_usage_error_is_one_line_that_says_where_help_is_and_exits_2(argv, says):
    """Unknown options, missing arguments and bad values: one ``error:`` line (not click's usage block)."""
    exe = Path(sys.executable).with_name(argv[0])  # the console scripts installed beside this Python
    res = subprocess.run([str(exe), *argv[1:]], check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(says), res.stderr
    assert "Usage:" not in res.stderr and res.stdout == ""


def test_a_bare_group_still_shows_its_help():
    res = CliRunner().invoke(main, ["cache"])
    assert "Usage:" in res.output and "ls" in res.output
