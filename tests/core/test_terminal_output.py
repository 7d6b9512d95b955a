"""Terminal escape injection: control characters from indexed files are escaped in every human-facing
output (``find`` table, ``keys``, ``diff``, ``errors``, ``history``) and kept exactly in json/jsonl/csv."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.cli import main
from ednaquery.documents import make_config_document, make_error_document
from ednaquery.store import FileState, PathUpdate, open_store
from ednaquery.terminal import printable
from tests.support.settings import clean_settings

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's window title
CLEAR = "\x1b[2J"  # clears the screen


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(tmp_path)
    clean_settings(tmp_path, monkeypatch)
    db = str(tmp_path / "index.db")
    store = open_store(db)
    updates, ids = [], []
    for i, name in enumerate(["run" + CLEAR + ".json", "b.json"]):
        path = tmp_path / name
        config = {"model": {"name": "vit" + TITLE + CLEAR + f"\u202e{i}"}, "lr": 0.1 * (i + 1),
                  "evil" + TITLE: 1}
        path.write_text(json.dumps(config))
        st = path.stat()
        doc = make_config_document(config, path=str(path), format="json", size=st.st_size, mtime=st.st_mtime)
        ids.append(doc["_id"])
        updates.append(PathUpdate(str(path), [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino)))
    bad = tmp_path / ("bad" + TITLE + ".yaml")
    bad.write_text("a: [\n")
    st = bad.stat()
    updates.append(PathUpdate(str(bad), [make_error_document(str(bad), "oops" + CLEAR, format="yaml",
                                                             size=st.st_size, mtime=st.st_mtime)],
                              FileState(st.st_size, st.st_mtime_ns, st.st_ino)))
    store.apply(updates)
    store.close()
    return {"db": db, "ids": ids, "tmp": tmp_path}


def run(world: dict, *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(main, ["--store", world["db"], *args])
    assert res.exit_code == code, res.output
    return res.output


def assert_clean(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, repr(text)


def test_printable_escapes_controls_and_direction_overrides() -> None:
    assert printable("a\x1b[2Jb\x07\n\t\x9b\u202ez") == "a\\x1b[2Jb\\x07\\n\\t\\x9b\\u202ez"
    assert printable("vit_base ü 日本") == "vit_base ü 日本"


@pytest.mark.parametrize("args", [
    ("find", "model", "lr"),  # the named keys' columns and the path column
    ("keys",),
    ("errors",),
])
def test_human_outputs_escape_control_characters(world: dict, args: tuple[str, ...]) -> None:
    out = run(world, *args)
    assert_clean(out)
    assert "\\x1b" in out  # shown, escaped, not dropped


def test_diff_and_history_escape_control_characters(world: dict) -> None:
    a, b = world["ids"]
    out = run(world, "diff", a[:8], b[:8], code=1)  # they differ, like diff(1)
    assert_clean(out)
    assert "\\x1b]0;pwned\\x07" in out
    out = run(world, "history", str(world["tmp"] / ("run" + CLEAR + ".json")))
    assert_clean(out)


def test_machine_formats_keep_the_exact_characters(world: dict) -> None:
    records = json.loads(run(world, "find", "model", "--format", "json"))
    names = {r["config"]["model"]["name"] for r in records}
    assert names == {"vit" + TITLE + CLEAR + "\u202e0", "vit" + TITLE + CLEAR + "\u202e1"}
    lines = run(world, "find", "model", "--format", "jsonl").splitlines()
    assert {json.loads(ln)["config"]["model"]["name"] for ln in lines} == names
    rows = list(csv.reader(io.StringIO(run(world, "find", "model", "--format", "csv"))))
    assert {r[4] for r in rows[1:]} == names
    assert any(("run" + CLEAR) in r[2] for r in rows[1:])


def test_indexer_log_lines_escape_control_characters(capsys: pytest.CaptureFixture) -> None:
    import logging

    from indexer.cli import _setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _setup_logging(False, dated=True)
        logging.getLogger("indexer").warning("cannot index %s: %s", "/x/" + TITLE + ".yaml", "bad" + CLEAR)
    finally:
        root.handlers[:], root.level = saved
    err = capsys.readouterr().err
    assert_clean(err)
    assert "/x/\\x1b]0;pwned\\x07.yaml: bad\\x1b[2J" in err


def test_error_and_hint_lines_escape_control_characters(tmp_path):
    """Query text or an id carrying ESC/BEL reaches stderr escaped (\\x1b), in every error line."""
    from click.testing import CliRunner

    from ednaquery.cli import main

    (tmp_path / "c.yaml").write_text("model: resnet18\n")
    db = str(tmp_path / "i.db")
    assert CliRunner().invoke(main, ["--store", db, "index", str(tmp_path / "c.yaml")]).exit_code == 0
    syntax = CliRunner().invoke(main, ["--store", db, "find", "mod\x1ble=vit"])
    assert syntax.exit_code == 2 and "\x1b" not in syntax.output and "\\x1b" in syntax.output
    bad = CliRunner().invoke(main, ["--store", db, "show", "zz\x1b]0;x\x07zz"])
    assert bad.exit_code != 0 and "\x1b" not in bad.output and "\x07" not in bad.output
