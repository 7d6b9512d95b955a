"""Tags and notes (issue 12, item 6): sidecar files beside runs and configs, the store updated at once,
searchable as tags=... and note~..., shown in tables, and kept through a re-index from scratch."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import mongomock
import pytest
from click.testing import CliRunner

from ednaquery.annotations import SIDECAR, apply_tag_changes, read_annotation, write_annotation
from ednaquery.cli import main
from ednaquery.errors import UsageError
from ednaquery.query.parser import parse
from ednaquery.store import open_store
from ednaquery.store.base import FindOptions
from ednaquery.store.mongo import MongoStore
from indexer.scan import scan
from tests.support.folders import scanned_store

RUN_ID = "20261122-221530-3fa9"


def make_tree(root: Path) -> tuple[Path, Path]:
    """A config file and a trainer run folder under ``root``."""
    cfg = root / "configs" / "resnet18.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("model: {name: resnet18}\noptimizer: {name: sgd, lr: 0.1}\n")
    run = root / "runs" / RUN_ID
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: {name: vit_tiny}\noptimizer: {name: adamw, lr: 1e-3}\n")
    (run / "run.json").write_text(json.dumps({"format": "ednaquery-run", "run_id": RUN_ID, "status": "completed",
                                              "started_at": 1795386930.0, "ended_at": 1795389330.0}))
    (run / "metrics.jsonl").write_text('{"scope": "epoch", "epoch": 0, "val_acc": 0.5}\n'
                                       '{"scope": "epoch", "epoch": 1, "val_acc": 0.8}\n')
    (run / "summary.json").write_text(json.dumps({"metrics": {"val_acc": {"last": 0.8, "best": 0.8}}, "epochs": 2}))
    return cfg, run


@pytest.fixture
def world(tmp_path, monkeypatch):
    cfg, run = make_tree(tmp_path / "exp")
    db = scanned_store(tmp_path, monkeypatch, tmp_path / "exp")

    def eq(*args: str):
        return CliRunner().invoke(main, ["--store", db, *args], catch_exceptions=False)

    cfg_id = json.loads(eq("find", "model=resnet18", "--kind", "config", "--format", "json").stdout)[0]["id"]
    return {"eq": eq, "db": db, "cfg": cfg, "run": run, "cfg_id": cfg_id, "root": tmp_path / "exp"}


def _ids(eq, *query: str) -> set[str]:
    return set(eq("find", *query, "--format", "ids").stdout.split())


def test_tag_add_remove_is_searchable_at_once_and_kept_in_a_sidecar(world):
    eq = world["eq"]
    r = eq("tag", RUN_ID[:15], "+baseline", "+old")
    assert r.exit_code == 0, r.output
    assert _ids(eq, "tags=baseline") == {RUN_ID}
    r = eq("tag", RUN_ID, "-old", "+keep")  # -old is a tag change, not an option
    assert r.exit_code == 0, r.output
    assert _ids(eq, "tags=old") == set() and _ids(eq, "tags=keep") == {RUN_ID}
    sidecar = json.loads((world["run"] / SIDECAR).read_text())
    assert sidecar["entries"]["."] == {"tags": ["baseline", "keep"]}
    assert eq("tag", RUN_ID).stdout.split() == ["baseline", "keep"]
    assert _ids(eq, "val_acc>0.7", "model=vit_tiny") == {RUN_ID}  # the run's other leaves are kept
    # configs too, keyed by file name in the sidecar of their folder
    assert eq("tag", world["cfg_id"][:8], "+baseline").exit_code == 0
    assert _ids(eq, "tags=baseline") == {RUN_ID, world["cfg_id"]}
    cfg_side = json.loads((world["cfg"].parent / SIDECAR).read_text())
    assert cfg_side["entries"]["resnet18.yaml"] == {"tags": ["baseline"]}
    rec = json.loads(eq("show", RUN_ID, "--json").stdout)
    assert rec["tags"] == ["baseline", "keep"] and rec["note"] is None


def test_note_set_search_edit_clear(world, tmp_path):
    eq = world["eq"]
    assert eq("note", RUN_ID, "more dropout needed: overfits after epoch 3").exit_code == 0
    assert _ids(eq, "note~dropout") == {RUN_ID}
    assert eq("note", RUN_ID).stdout.strip() == "more dropout needed: overfits after epoch 3"
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'w').write('rewritten in the editor\\n')\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    os.environ["EDITOR"] = f"{sys.executable} {editor}"
    try:
        r = eq("note", RUN_ID, "--edit")
    finally:
        del os.environ["EDITOR"]
    assert r.exit_code == 0, r.output
    assert eq("note", RUN_ID).stdout.strip() == "rewritten in the editor"
    assert _ids(eq, "note~dropout") == set() and _ids(eq, "note~editor") == {RUN_ID}
    assert eq("note", RUN_ID, "--clear").exit_code == 0
    assert eq("note", RUN_ID).exit_code == 1 and not (world["run"] / SIDECAR).exists()
    bad = eq("note", RUN_ID, "x", "--clear")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")


def test_tables_show_tags_and_notes(world):
    eq = world["eq"]
    eq("tag", RUN_ID, "+baseline")
    eq("note", RUN_ID, "first line\nsecond line")
    out = eq("find", "kind=run").stdout
    header = out.splitlines()[0].split()
    assert header[-2:] == ["tags", "note"]
    assert "baseline" in out and "first line …" in out and "second line" not in out


def test_annotations_survive_a_reindex_from_scratch(world, tmp_path):
    eq = world["eq"]
    eq("tag", RUN_ID, "+baseline")
    eq("tag", world["cfg_id"], "+reviewed")
    eq("note", world["cfg_id"], "the reference config")
    fresh = tmp_path / "fresh.db"
    store = open_store(str(fresh))
    try:
        scan(store, [str(world["root"])], workers=0)
        assert {d["_id"] for d in store.find(parse("tags=baseline"))} == {RUN_ID}
        assert {d["_id"] for d in store.find(parse("tags=reviewed"))} == {world["cfg_id"]}
        assert {d["_id"] for d in store.find(parse("note~reference"))} == {world["cfg_id"]}
        # the sidecar itself is never a document (nor one of a document's paths)
        every = store.find(parse(""), FindOptions(kinds=("config", "run", "error")))
        assert not any(SIDECAR in p for d in every for p in d.get("paths") or [])
    finally:
        store.close()


def test_a_hand_edited_sidecar_is_read_at_the_next_scan(world):
    write_annotation(str(world["cfg"]), {"tags": ["by-hand"]}, is_run=False)
    write_annotation(str(world["run"]), {"tags": ["by-hand"]}, is_run=True)
    store = open_store(world["db"])
    try:
        scan(store, [str(world["root"])], workers=0)  # only the sidecars changed on disk
        assert {d["_id"] for d in store.find(parse("tags=by-hand"))} == {world["cfg_id"], RUN_ID}
    finally:
        store.close()


def test_errors_are_one_line(world):
    eq = world["eq"]
    for args in (["tag", RUN_ID, "+has space"], ["tag", RUN_ID, "+"], ["tag", "zzzzzzzz", "+x"]):
        r = eq(*args)
        assert r.exit_code != 0 and r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1, args


def test_tag_changes_and_sidecar_round_trip(tmp_path):
    assert apply_tag_changes(["a", "b"], ["+c", "-a", "d"]) == ["b", "c", "d"]
    with pytest.raises(UsageError):
        apply_tag_changes([], ["+a,b"])
    f = tmp_path / "c.yaml"
    write_annotation(str(f), {"tags": ["x", "x", "y"], "note": "n"}, is_run=False)
    assert read_annotation(str(f), is_run=False) == {"tags": ["x", "y"], "note": "n"}
    (tmp_path / SIDECAR).write_text("{not json")
    assert read_annotation(str(f), is_run=False) == {}  # a broken sidecar never stops indexing


def test_mongo_store_sets_annotations(tmp_path):
    from ednaquery.documents import make_config_document
    from ednaquery.store.base import FileState, PathUpdate

    store = MongoStore("mongodb://localhost/edna_test", client=mongomock.MongoClient())
    try:
        doc = make_config_document({"model": "vit", "lr": 0.1}, path=str(tmp_path / "a.yaml"), format="yaml")
        store.apply([PathUpdate(str(tmp_path / "a.yaml"), [doc], FileState(1, 1, 1))])
        store.set_annotations(doc["_id"], {"tags": ["baseline"], "note": "dropout next"})
        assert [d["_id"] for d in store.find(parse("tags=baseline note~dropout"))] == [doc["_id"]]
        assert [d["_id"] for d in store.find(parse("lr>0.05"))] == [doc["_id"]]  # config leaves kept
        store.set_annotations(doc["_id"], {})
        assert store.find(parse("tags=baseline")) == [] and "annotations" not in store.get(doc["_id"])
    finally:
        store.close()


def test_the_trainers_own_run_document_keeps_the_annotations(world):
    from ednaquery.runfolder import run_document

    world["eq"]("tag", RUN_ID, "+baseline")
    doc = run_document(world["run"])  # what the trainer upserts at every epoch
    assert doc["annotations"] == {"tags": ["baseline"]}
    store = open_store(world["db"])
    try:
        store.upsert([doc])
        assert {d["_id"] for d in store.find(parse("tags=baseline"))} == {RUN_ID}
    finally:
        store.close()


def test_tagging_keeps_a_hand_edit_the_store_has_not_seen(world):
    write_annotation(str(world["run"]), {"tags": ["by-hand"], "note": "kept"}, is_run=True)  # no re-index
    assert world["eq"]("tag", RUN_ID, "+more").exit_code == 0
    assert read_annotation(str(world["run"]), is_run=True) == {"tags": ["by-hand", "more"], "note": "kept"}
    assert _ids(world["eq"], "tags=by-hand", "note~kept") == {RUN_ID}


def test_concurrent_updates_of_one_sidecar_lose_nothing(tmp_path):
    import threading

    from ednaquery.annotations import update_annotation

    files = [str(tmp_path / f"c{i}.yaml") for i in range(8)]

    def work(path: str) -> None:
        for n in range(10):
            update_annotation(path, lambda a, n=n: {"tags": sorted({*(a.get("tags") or []), f"t{n}"})},
                              is_run=False)

    threads = [threading.Thread(target=work, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = json.loads((tmp_path / SIDECAR).read_text())["entries"]
    assert {name: len(e["tags"]) for name, e in entries.items()} == {f"c{i}.yaml": 10 for i in range(8)}


def test_a_run_of_an_mlflow_db_is_an_entry_beside_the_db(tmp_path):
    from ednaquery.annotations import sidecar_location

    db_run = str(tmp_path / "mlflow.db") + "#3fa9"
    (tmp_path / "mlflow.db").write_bytes(b"SQLite format 3\x00")
    assert sidecar_location(db_run, is_run=True) == (str(tmp_path / SIDECAR), "mlflow.db#3fa9")
    write_annotation(db_run, {"tags": ["baseline"]}, is_run=True)
    assert read_annotation(db_run, is_run=True) == {"tags": ["baseline"]}
    assert read_annotation(str(tmp_path / "mlflow.db"), is_run=True) == {}  # no warning, no entry


def test_tags_with_control_or_direction_characters_are_refused_and_dropped_from_hand_edits(tmp_path):
    """A tag cannot carry a terminal escape (ESC, BEL) or a right-to-left override, typed or hand-edited."""
    import json

    import pytest as _pytest

    from ednaquery.annotations import SIDECAR, apply_tag_changes, read_annotation
    from ednaquery.errors import UsageError

    for bad in ("\x1b]0;pwned\x07", "\u202eabc", "a\x9bb"):
        with _pytest.raises(UsageError):
            apply_tag_changes([], ["+" + bad])
    assert apply_tag_changes([], ["+ok-tag"]) == ["ok-tag"]
    run = tmp_path / "run1"
    run.mkdir()
    (run / SIDECAR).write_text(json.dumps({"entries": {".": {"tags": ["good", "\x1b[2Jbad", "\u202eevil"]}}}))
    assert read_annotation(str(run), is_run=True)["tags"] == ["good"]
