"""Indexer settings precedence and the CLI's usage errors."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.errors import UsageError
from indexer import cli
from indexer._settings import parse_duration, resolve
from indexer.patterns import DEFAULT_EXCLUDE, DEFAULT_INCLUDE


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in ("EDNAQUERY_STORE", "EDNAQUERY_ROOTS", "EDNAQUERY_POLL", "EDNAQUERY_DEBOUNCE",
              "EDNAQUERY_RECONCILE_EVERY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("EDNAQUERY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no user config file
    monkeypatch.delenv("EDNAQUERY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = resolve()
    assert s.include == list(DEFAULT_INCLUDE) and s.exclude == list(DEFAULT_EXCLUDE)
    assert (s.poll, s.debounce, s.reconcile_every, s.roots) == (False, 0.3, 600.0, [])


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDNAQUERY_STORE", "mongodb://db:27017/x")
    monkeypatch.setenv("EDNAQUERY_ROOTS", os.pathsep.join(["/a", "/b"]))
    monkeypatch.setenv("EDNAQUERY_POLL", "1")
    monkeypatch.setenv("EDNAQUERY_DEBOUNCE", "2")
    s = resolve()
    assert (s.store, s.roots, s.poll, s.debounce) == ("mongodb://db:27017/x", ["/a", "/b"], True, 2.0)
    s = resolve(store="/tmp/i.db", roots=["/c"], poll=False, debounce=0.5, reconcile_every="30s",
                include=["*.cfg"], exclude=["scratch"])
    assert (s.store, s.roots, s.poll, s.debounce, s.reconcile_every) == ("/tmp/i.db", ["/c"], False, 0.5, 30.0)
    assert s.include[-1] == "*.cfg" and "*.yaml" in s.include
    assert s.exclude[-1] == "scratch" and ".git" in s.exclude


def test_config_file_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".ednaquery").mkdir()
    (tmp_path / ".ednaquery" / "config.toml").write_text(
        'include = ["*.cfg"]\ndebounce = 1.5\nroots = ["experiments"]\n')
    monkeypatch.chdir(tmp_path)
    s = resolve(include=["*.ini"])
    assert s.include == ["*.cfg", "*.ini"], "a configured list replaces the defaults; flags add to it"
    assert s.debounce == 1.5 and s.roots == [str(tmp_path / "experiments")]
    monkeypatch.setenv("EDNAQUERY_DEBOUNCE", "2")
    assert resolve().debounce == 2.0
    assert resolve(debounce=0.5).debounce == 0.5


def test_bad_environment_values_are_one_line_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDNAQUERY_POLL", "maybe")
    with pytest.raises(UsageError, match="EDNAQUERY_POLL"):
        resolve()


def test_parse_duration() -> None:
    assert parse_duration("10m") == 600 and parse_duration("30s") == 30 and parse_duration("1h") == 3600
    assert parse_duration("45") == 45
    assert parse_duration("0") == 0
    with pytest.raises(UsageError):
        parse_duration("soon")


def test_watch_without_roots_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli.watch, [])
    assert res.exit_code == 2 and "give at least one folder" in res.output


def test_bad_duration_flag_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli.watch, ["--reconcile-every", "often", str(tmp_path)])
    assert res.exit_code == 2 and "bad duration" in res.output and "Traceback" not in res.output


def test_stop_and_status_when_nothing_runs() -> None:
    res = CliRunner().invoke(cli.daemon, ["stop"])
    assert res.exit_code == 0 and "no indexer is running" in res.output
    res = CliRunner().invoke(cli.daemon, ["status", "--json"])
    assert res.exit_code == 3 and res.output.strip() == "[]"


def test_index_on_an_unreachable_store_exits_2_in_one_masked_line(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    pytest.importorskip("pymongo")
    from ednaquery.cli import main as ednaquery_main
    from indexer.index_cli import index

    down = "mongodb://user:pw%40secret@127.0.0.1:1/db"  # nothing listens on port 1
    monkeypatch.setenv("EDNAQUERY_STORE_TIMEOUT_MS", "300")
    (tmp_path / "a.yaml").write_text("lr: 0.1\n")
    results = [CliRunner().invoke(ednaquery_main, ["--store", down, "index", str(tmp_path)])]
    monkeypatch.setenv("EDNAQUERY_STORE", down)
    results.append(CliRunner().invoke(index, [str(tmp_path)]))  # the command alone, store from the env
    for res in results:
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
        assert "127.0.0.1:1" in res.stderr and "secret" not in res.output and "Traceback" not in res.output


def test_indexer_commands_have_help_with_an_example() -> None:
    from indexer.index_cli import index

    runner = CliRunner()
    for cmd, args in ((index, []), (cli.watch, []), (cli.daemon, []), (cli.daemon, ["start"]),
                      (cli.daemon, ["stop"]), (cli.daemon, ["status"])):
        res = runner.invoke(cmd, [*args, "--help"])
        assert res.exit_code == 0 and "Example" in res.output, (cmd.name, args)
