"""``trainer`` and ``python -m indexer``: an exception nobody foresaw is one line (``trainer --debug`` shows
the traceback), Ctrl-C is ``interrupted`` and exit 130, as in ``ednaquery``."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer import cli as indexer_cli
from trainer import cli as trainer_cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text("model: {name: resnet18}\n")
    return p


def _boom(*_a, **_k):
    raise RuntimeError("the driver fell over\n  at line 2 of a long story mongodb://u:S3cret@h/db")


def test_an_unforeseen_trainer_error_is_one_line(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_cli, "load_with_overrides", _boom)
    res = CliRunner().invoke(trainer_cli.main, ["check", str(config)])
    assert res.exit_code == 1
    assert res.output == ("error: an internal error: RuntimeError: the driver fell over "
                          "(run with --debug for details)\n")
    res = CliRunner().invoke(trainer_cli.main, ["--debug", "check", str(config)])
    assert res.exit_code == 1 and "Traceback" in res.output and "S3cret" not in res.output.splitlines()[-1]


def test_ctrl_c_in_the_trainer_exits_130(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_cli, "load_with_overrides", interrupted)
    res = CliRunner().invoke(trainer_cli.main, ["check", str(config)])
    assert res.exit_code == 130 and res.output == "interrupted\n"


def test_an_unforeseen_indexer_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDNAQUERY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(indexer_cli.lifecycle, "list_daemons", _boom)
    res = CliRunner().invoke(indexer_cli.main, ["daemon", "status"])
    assert res.exit_code == 1 and len(res.output.splitlines()) == 1
    assert res.output.startswith("error: an internal error: RuntimeError: the driver fell over")
