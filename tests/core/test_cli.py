"""The ``ednaquery`` CLI through click's CliRunner, over the bundled examples in a SQLite store.

The examples (``examples/``) are copied into a temporary folder, indexed through the
library (loaders -> documents -> ``store.apply``), and a few run documents are upserted,
so every command is exercised on realistic configs: formats, exit codes, sorting, limits,
``--best``, id prefixes, diff, keys, stats, errors, history, init, config and plug-ins.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery import cli as cli_mod
from ednaquery.cli import main
from ednaquery.documents import config_id, make_config_document, make_run_document
from ednaquery.store import FileState, PathUpdate, open_store
from tests.support.folders import EXAMPLES, index_folder

REPO = Path(__file__).resolve().parents[2]
HEX64 = re.compile(r"^[0-9a-f]{64}$")

RUNS = [  # (run id, model, val_acc best, val_loss best)
    ("20261122-101500-aa01", "resnet18", 0.91, 0.30),
    ("20261122-101600-aa02", "resnet18", 0.95, 0.20),
    ("20261122-101700-bb01", "convnext_atto", 0.97, 0.25),
    ("20261122-101800-bb02", "convnext_atto", 0.93, 0.10),
]


def run_doc(run_id: str, model: str, acc: float, loss: float, folder: Path) -> dict:
    config = {"model": {"name": model}, "data": {"dataset": "digits", "img_size": 16},
              "optimizer": {"name": "adamw", "lr": 0.001}, "train": {"epochs": 2}}
    return make_run_document(run_id, config=config, config_id=config_id(config), path=str(folder / run_id),
                             status="completed",
                             metrics={"val_acc": {"last": acc - 0.01, "best": acc},
                                      "val_loss": {"last": loss + 0.05, "best": loss}},
                             started_at=1_800_000_000.0, ended_at=1_800_000_060.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A folder holding a copy of examples/ and an index of it (plus four runs) at index.db."""
    base = tmp_path_factory.mktemp("cli")
    shutil.copytree(EXAMPLES, base / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    store = open_store(str(base / "index.db"))
    try:
        index_folder(store, base / "examples")
        store.upsert([run_doc(*r, folder=base / "runs") for r in RUNS])
    finally:
        store.close()
    return base


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No user settings leak in: no EDNAQUERY_* variables, config/data dirs in tmp."""
    for name in list(os.environ):
        if name.startswith("EDNAQUERY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def eq(world, monkeypatch):
    """Run ``ednaquery --store <world index> ARGS...`` from inside the world folder."""
    monkeypatch.chdir(world)
    runner = CliRunner()

    def invoke(*args: str, store: str | None = str(world / "index.db")):
        pre = ["--store", store] if store else []
        return runner.invoke(main, [*pre, *args], catch_exceptions=False)

    return invoke


def n_yaml_json_sweeps() -> int:
    return sum(1 for p in (EXAMPLES / "sweeps").rglob("*") if p.suffix in (".yaml", ".json"))


# ---------------------------------------------------------------- find: formats


def test_find_json_has_the_documented_fields(eq, world):
    r = eq("find", "lr<1e-3", "model=vit", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows and isinstance(rows, list)
    for row in rows:
        assert HEX64.match(row["id"])
        assert row["kind"] == "config"
        assert all(os.path.isabs(p) and p.startswith(str(world)) for p in row["paths"])
        assert "vit" in row["config"]["model"]["name"]
        # one value per matched leaf, under its dotted path, with the original spelling; every row
        # has the same names (null where a row lacks one)
        assert {"optimizer.lr", "model.name"} <= set(row["values"])
        assert list(row["values"]) == list(rows[0]["values"])
        assert row["values"]["model.name"] == row["config"]["model"]["name"]
        assert row["values"]["optimizer.lr"] == row["config"]["optimizer"]["lr"]
    # '1e-4' written in YAML loads as a string, 0.0001 in JSON as a number: the config keeps each as written
    for row in rows:
        path = Path(row["paths"][0])
        written = (json.loads if path.suffix == ".json" else yaml.safe_load)(path.read_text())["optimizer"]["lr"]
        shown = row["config"]["optimizer"]["lr"]
        assert (type(shown), shown) == (type(written), written), path
    assert {type(row["config"]["optimizer"]["lr"]) for row in rows} == {str, float}, "both spellings are covered"


def test_find_json_for_runs_has_status_metrics_and_config_id(eq):
    r = eq("find", "kind=run", "val_acc>0.9", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {row["id"] for row in rows} == {rid for rid, *_ in RUNS}
    for row in rows:
        assert row["status"] == "completed"
        assert HEX64.match(row["config_id"])
        assert set(row["metrics"]) == {"val_acc", "val_loss"}
        # one value per column: val_acc.last and val_acc.best, numbers at full precision, the same
        # names in every row (null where that leaf did not match val_acc>0.9)
        assert list(row["values"]) == ["kind", "val_acc.last", "val_acc.best"] and row["values"]["kind"] == "run"
        numbers = [x for k, x in row["values"].items() if k != "kind" and x is not None]
        assert numbers and all(isinstance(x, float) and x > 0.9 for x in numbers)
    by_id = {row["id"]: {k: v for k, v in row["values"].items() if k != "kind"} for row in rows}
    assert by_id["20261122-101500-aa01"] == {"val_acc.last": None, "val_acc.best": 0.91}  # last=0.90 is not > 0.9
    assert by_id["20261122-101600-aa02"] == {"val_acc.last": 0.94, "val_acc.best": 0.95}


def test_find_ids_prints_one_full_id_per_line(eq):
    r = eq("find", "optimizer=sgd", "--format", "ids")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines and all(HEX64.match(line) for line in lines)
    c = eq("count", "optimizer=sgd")
    assert int(c.stdout) == len(lines)


def test_find_csv_jsonl_yaml(eq):
    r = eq("find", "model=resnet18", "img_size", "--kind", "config", "--format", "csv")
    assert r.exit_code == 0
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["id", "kind", "path", "status", "model.name", "data.img_size"]  # unique dotted names
    assert len(rows) > 2 and all(HEX64.match(row[0]) for row in rows[1:])
    assert all(row[4] == "resnet18" for row in rows[1:])

    jl = eq("find", "model=resnet18", "img_size", "--kind", "config", "--format", "jsonl")
    objs = [json.loads(line) for line in jl.stdout.splitlines()]
    assert len(objs) == len(rows) - 1

    y = eq("find", "model=resnet18", "img_size", "--kind", "config", "--format", "yaml")
    assert [o["id"] for o in yaml.safe_load(y.stdout)] == [o["id"] for o in objs]


def test_find_table_shows_prefix_kind_relative_path_and_matched_values(eq):
    r = eq("find", "model=eva02", "img_size=112")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    header = lines[0].split()
    assert header == ["id", "kind", "path", "model", "img_size"]
    body = lines[1:]
    assert len(body) == 4
    for line in body:
        cells = line.split()
        assert re.fullmatch(r"[0-9a-f]{8,}", cells[0]) and len(cells[0]) < 64
        assert cells[1] == "config"
        assert cells[2].startswith("examples/sweeps/eva02_tiny_patch14_224/")  # relative to the cwd
        assert cells[3] == "eva02_tiny_patch14_224" and cells[4] == "112"


def test_table_shortens_lists_and_labels_several_matches(eq):
    r = eq("find", "img_size=192")
    assert r.exit_code == 0
    assert "[224, 192]" in r.stdout
    # `*lr<1e-4` also matches scheduler.min_lr (plain `lr` is optimizer.lr): the cell says which leaf it is
    r = eq("find", "*lr<1e-4")
    assert "min_lr=1e-6" in r.stdout


# ---------------------------------------------------------------- find: exit status, errors


def test_exit_status_like_grep(eq):
    assert eq("find", "model=resnet18").exit_code == 0
    nothing = eq("find", "model=no_such_model")
    assert nothing.exit_code == 1 and nothing.stdout == ""
    assert eq("count", "model=no_such_model").exit_code == 1
    assert eq("find", "model=no_such_model", "--format", "json").stdout.strip() == "[]"


def test_syntax_error_shows_caret_and_exits_2_without_traceback(eq):
    r = eq("find", "lr<<1e-3")
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0] == "lr<<1e-3"
    assert lines[1] == "   ^"
    assert lines[2].startswith("error: ")
    assert "Traceback" not in r.output
    assert r.stdout == ""


def test_debug_shows_the_traceback(eq):
    r = eq("--debug", "find", "lr<<1e-3")
    assert r.exit_code == 2
    assert "Traceback" in r.stderr


def test_errors_are_one_line(eq, world):
    r = eq("find", "lr", "--sort", "lr<1")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: --sort")
    r = eq("find", "--by", "model")
    assert r.exit_code == 2 and "--best" in r.stderr
    # no index at all: a clear message, exit 2 for find (grep-like), no traceback
    r = eq("find", "lr", store=str(world / "nowhere" / "index.db"))
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "ednaquery init" in r.stderr


# ---------------------------------------------------------------- find: sort, limit, best


def _lrs(stdout: str) -> list[float]:
    # one name per matched path: optimizer.lr, or OPTIMIZER.BASE_LR in the EdnaML config (null elsewhere)
    return [float(next(v for v in row["values"].values() if v is not None)) for row in json.loads(stdout)]


@pytest.mark.parametrize("spelling", [["--sort=-optimizer.lr"], ["--sort", "-optimizer.lr"],
                                      ["--sort", "desc:optimizer.lr"], ["--sort", "optimizer.lr:desc"]])
def test_sort_descending_spellings(eq, spelling):
    r = eq("find", "optimizer.lr", *spelling, "--kind", "config", "--format", "json")
    assert r.exit_code == 0, r.output
    lrs = _lrs(r.stdout)
    assert len(lrs) == n_yaml_json_sweeps() + 2  # + quickstart and the EdnaML BASE_LR
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > lrs[-1]


def test_sort_ascending_and_limit(eq):
    r = eq("find", "optimizer.lr", "--sort", "optimizer.lr", "--limit", "5", "--format", "json")
    lrs = _lrs(r.stdout)
    assert len(lrs) == 5 and lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-4)
    assert eq("find", "--limit", "3", "--format", "ids").stdout.count("\n") == 3


def test_best_per_group(eq):
    r = eq("find", "kind=run", "--best", "val_acc", "--by", "model", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["id"] for row in rows] == ["20261122-101700-bb01", "20261122-101600-aa02"]  # best first
    assert [row["values"]["model.name"] for row in rows] == ["convnext_atto", "resnet18"]
    # loss-like metrics keep the minimum
    r = eq("find", "kind=run", "--best", "val_loss", "--by", "model", "--format", "ids")
    assert r.stdout.split() == ["20261122-101800-bb02", "20261122-101600-aa02"]
    # --max forces the maximum; no --by = the single best
    r = eq("find", "kind=run", "--best", "val_loss", "--max", "--format", "ids")
    assert r.stdout.split() == ["20261122-101500-aa01"]
    table = eq("find", "kind=run", "--best", "val_acc", "--by", "model")
    assert "best=0.97" in table.stdout and table.stdout.splitlines()[0].split()[-2:] == ["model", "val_acc"]


# ---------------------------------------------------------------- show, ids, diff


def _ids(eq, *query: str) -> list[str]:
    return eq("find", *query, "--format", "ids").stdout.split()


def test_show_yaml_json_and_prefixes(eq):
    doc_id = _ids(eq, "model=resnet18", "img_size=16")[0]
    r = eq("show", doc_id[:8])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"# id: {doc_id}\n")
    shown = yaml.safe_load(r.stdout)
    assert shown == yaml.safe_load((EXAMPLES / "quickstart" / "resnet18_digits.yaml").read_text())
    j = json.loads(eq("show", doc_id[:6], "--json").stdout)
    assert j["id"] == doc_id and j["config"]["optimizer"]["lr"] == "1e-3"


def test_show_errors_too_short_unknown_and_ambiguous(eq, world, tmp_path):
    r = eq("show", "abc")
    assert r.exit_code == 2 and "at least 4" in r.stderr
    r = eq("show", "ffffffffffff")
    assert r.exit_code == 1 and "no document" in r.stderr and "Traceback" not in r.output
    r = eq("show", "20261122-10")  # four runs share this prefix
    assert r.exit_code == 1
    assert "ambiguous" in r.stderr
    for rid, *_ in RUNS:
        assert rid[:12] in r.stderr
    assert r.stderr.count("\n") == 1


def test_ambiguous_content_hash_prefix_lists_the_matches(tmp_path, monkeypatch):
    # find two configs whose content ids share 4 hex digits (a few hundred tries)
    seen: dict[str, dict] = {}
    for i in range(5000):
        cfg = {"seed": i}
        prefix = config_id(cfg)[:4]
        if prefix in seen:
            pair = [seen[prefix], cfg]
            break
        seen[prefix] = cfg
    db = tmp_path / "amb.db"
    with open_store(str(db)) as store:
        store.upsert([make_config_document(c, path=str(tmp_path / f"s{c['seed']}.yaml"), format="yaml")
                      for c in pair])
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["--store", str(db), "show", prefix])
    assert r.exit_code == 1
    for cfg in pair:
        assert config_id(cfg)[:12] in r.stderr


def test_show_as_written(tmp_path, monkeypatch):
    effective = {"_BASE_": "base.yaml", "SOLVER": {"BASE_LR": 0.02, "MAX_ITER": 90000}}
    written = {"_BASE_": "base.yaml", "SOLVER": {"MAX_ITER": 90000}}
    doc = make_config_document(effective, path=str(tmp_path / "c.yaml"), format="yaml", as_written=written)
    db = str(tmp_path / "w.db")
    with open_store(db) as store:
        store.upsert([doc])
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["--store", db, "show", doc["_id"][:8]])
    assert yaml.safe_load(r.stdout) == effective and "--as-written" in r.stdout
    r = runner.invoke(main, ["--store", db, "show", doc["_id"][:8], "--as-written"])
    assert yaml.safe_load(r.stdout) == written


def test_diff_shows_only_differing_keys(eq):
    a = _ids(eq, "model=convnext_atto", "img_size=224", "optimizer=lamb")[0]
    b = _ids(eq, "model=convnext_atto", "img_size=224", "optimizer=sgd")[0]
    r = eq("diff", a[:8], b[:8], "--json")
    assert r.exit_code == 1, r.output  # like diff(1): 1 when the documents differ
    rows = {row["key"]: row for row in json.loads(r.stdout)}
    assert rows["optimizer.name"]["old"] == "lamb" and rows["optimizer.name"]["new"] == "sgd"
    assert "model.name" not in rows and "data.img_size" not in rows
    assert "old" not in rows["optimizer.momentum"]  # only sgd has momentum
    table = eq("diff", a[:8], b[:8])
    assert table.exit_code == 1
    assert "optimizer.name" in table.stdout and "lamb" in table.stdout and "model.name" not in table.stdout
    same = eq("diff", a[:8], a)
    assert same.exit_code == 0 and "no differences" in same.stdout


# ---------------------------------------------------------------- keys, stats, errors, history


def test_keys_lists_counts_types_examples(eq):
    r = eq("keys", "lr", "--format", "json")
    assert r.exit_code == 0
    keys = {row["key"]: row for row in json.loads(r.stdout)}
    assert {"optimizer.lr", "OPTIMIZER.BASE_LR", "scheduler.min_lr"} <= set(keys)
    lr = keys["optimizer.lr"]
    assert lr["count"] >= n_yaml_json_sweeps() and set(lr["types"]) == {"num", "str"}
    assert lr["examples"]
    table = eq("keys", "data.*")
    assert "data.img_size" in table.stdout and "optimizer.lr" not in table.stdout


def test_stats(eq):
    r = eq("stats", "--json")
    figures = json.loads(r.stdout)
    assert figures["documents"]["config"]["current"] == n_yaml_json_sweeps() + 2  # + quickstart, ednaml
    assert figures["documents"]["error"]["current"] == 1
    assert figures["documents"]["run"]["current"] == len(RUNS)
    assert "configs" in eq("stats").stdout


def test_errors_lists_the_broken_file(eq):
    r = eq("errors", "--format", "json")
    assert r.exit_code == 0
    items = json.loads(r.stdout)
    broken = [i for i in items if i["kind"] == "error"]
    assert len(broken) == 1 and broken[0]["path"].endswith("broken/bad_indent.yaml")
    assert "line 7" in broken[0]["message"]
    table = eq("errors")
    assert "examples/broken/bad_indent.yaml" in table.stdout and "error" in table.stdout
    # error records stay out of find
    assert "bad_indent" not in eq("find", "--format", "json").stdout


def test_history_lists_versions(tmp_path, monkeypatch):
    path = tmp_path / "exp.yaml"
    db = str(tmp_path / "h.db")
    with open_store(db) as store:
        for lr in (0.1, 0.01):
            doc = make_config_document({"optimizer": {"lr": lr}}, path=str(path), format="yaml")
            store.apply([PathUpdate(str(path), [doc], FileState(1, int(lr * 1e9), 1))])
            time.sleep(0.01)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["--store", db, "history", "exp.yaml", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["config"]["optimizer"]["lr"] for row in rows] == [0.01, 0.1]  # newest first
    table = runner.invoke(main, ["--store", db, "history", "exp.yaml"]).stdout
    assert "current" in table and "old" in table and "optimizer.lr" in table
    r = runner.invoke(main, ["--store", db, "history", "other.yaml"])
    assert r.exit_code == 1 and "no versions" in r.stderr


# ---------------------------------------------------------------- init, config


def test_init_creates_project_and_config_reports_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["init"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / ".ednaquery" / "index.db").is_file()
    cfg = tmp_path / ".ednaquery" / "config.toml"
    assert tomllib.loads(cfg.read_text()) == {}  # every line commented out, still valid TOML
    assert "already initialised" in runner.invoke(main, ["init"]).stdout

    # commands in a subfolder use the project's index and config file
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    cfg.write_text('roots = ["experiments"]\naliases = [["lr", "base_lr"]]\n')
    monkeypatch.setenv("EDNAQUERY_DEBOUNCE", "1.5")
    r = runner.invoke(main, ["config", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["config_file"] == str(cfg.resolve())
    assert data["settings"]["roots"] == [str(tmp_path / "experiments")]
    assert data["sources"]["roots"] == f"config {cfg}"
    assert data["settings"]["debounce"] == 1.5 and data["sources"]["debounce"] == "env EDNAQUERY_DEBOUNCE"
    assert data["sources"]["store"] == "default (nearest .ednaquery/)"
    assert data["settings"]["store"] is None
    table = runner.invoke(main, ["config"]).stdout
    assert str(tmp_path / ".ednaquery" / "index.db") in table
    # `find` in the subfolder reads the (empty) project index: nothing found, not an error
    assert runner.invoke(main, ["find", "lr"]).exit_code == 1


def test_config_masks_the_store_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDNAQUERY_STORE", "mongodb://alice:s3cr3t@db.example.org:27017/eq")
    runner = CliRunner()
    for args in (["config"], ["config", "--json"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 0, r.output
        assert "s3cr3t" not in r.output and "alice:***@db.example.org" in r.output
        assert "env EDNAQUERY_STORE" in r.output


def test_bad_config_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "c.toml"
    bad.write_text("debounse = 1\n")
    r = CliRunner().invoke(main, ["--config", str(bad), "config"])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "'debounce'" in r.stderr


# ---------------------------------------------------------------- MongoDB down


def test_down_mongodb_is_a_quick_one_line_error_without_the_password(tmp_path, monkeypatch):
    pytest.importorskip("ednaquery.store.mongo", reason="the MongoDB store is not in this tree yet")
    monkeypatch.chdir(tmp_path)
    uri = "mongodb://user:secret@127.0.0.1:1/db"
    import pymongo

    clients: list = []

    class Client(pymongo.MongoClient):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(pymongo, "MongoClient", Client)
    r = CliRunner().invoke(main, ["--store", uri, "find", "lr<1e-3"])
    # quick: the driver gives up after settings.store_timeout_ms (3 s), not pymongo's default 30 s
    assert [c.options.server_selection_timeout for c in clients] == [3.0]
    assert r.exit_code == 2
    assert "secret" not in r.output and "Traceback" not in r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "127.0.0.1:1" in r.stderr


DOWN = "mongodb://user:pw%2Fsecret@127.0.0.1:1/db"  # nothing listens on port 1


@pytest.mark.parametrize("args", [["find", "lr"], ["count"], ["show", "abcd1234"],
                                  ["diff", "abcd1234", "abcd5678"], ["keys"], ["stats"], ["errors"],
                                  ["history", "x.yaml"]])
def test_every_command_exits_2_on_an_unreachable_store_in_one_masked_line(args, tmp_path, monkeypatch):
    pytest.importorskip("pymongo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDNAQUERY_STORE_TIMEOUT_MS", "300")
    r = CliRunner().invoke(main, ["--store", DOWN, *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "127.0.0.1:1" in r.stderr
    assert "secret" not in r.output and "Traceback" not in r.output


def test_empty_listings_exit_1_like_nothing_found(eq):
    r = eq("keys", "no_such_key_anywhere")
    assert r.exit_code == 1 and "no keys match" in r.stderr
    r = eq("keys", "no_such_key_anywhere", "--format", "json")
    assert r.exit_code == 1 and json.loads(r.stdout) == []
    assert eq("keys", "lr").exit_code == 0


# ---------------------------------------------------------------- plug-ins, help, import cost


def test_plugins_load_lazily_and_a_broken_one_breaks_nothing(eq, tmp_path, monkeypatch):
    plugin = tmp_path / "eq_plugin_ok.py"
    plugin.write_text(
        "import click\n"
        "from ednaquery.cli import pass_app\n"
        "@click.command(help='Say hello.')\n"
        "@pass_app\n"
        "def hello(app):\n"
        "    click.echo('hello ' + str(app.settings.debounce))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {"hello": EntryPoint("hello", "eq_plugin_ok:hello", cli_mod.PLUGIN_GROUP),
           "boom": EntryPoint("boom", "eq_no_such_module_xyz:cmd", cli_mod.PLUGIN_GROUP),
           "notcmd": EntryPoint("notcmd", "os:getcwd", cli_mod.PLUGIN_GROUP)}
    monkeypatch.setattr(cli_mod, "_plugin_entry_points", lambda: eps)
    assert eq("find", "model=resnet18").exit_code == 0
    r = eq("hello")
    assert r.exit_code == 0 and r.stdout == "hello 0.3\n"
    r = eq("boom", "x", "--flag")
    assert r.exit_code == 1 and "failed to load" in r.stderr and "Traceback" not in r.output
    assert eq("notcmd").exit_code == 1
    help_text = eq("--help").stdout
    assert "hello" in help_text and "boom" in help_text and "unavailable" in help_text


def test_every_command_has_help_with_an_example(eq):
    names = [n for n in main.commands]
    assert {"find", "count", "show", "diff", "keys", "stats", "errors", "history", "init", "config"} <= set(names)
    for name in names:
        r = eq(name, "--help")
        assert r.exit_code == 0
        assert "Example" in r.stdout, name
    assert "ednaquery" in eq("--version").stdout


def test_importing_the_cli_loads_no_heavy_module():
    """``ednaquery --help`` stays fast because the CLI imports no ML stack, driver or renderer up front
    (bench/import_cost.py measures the time)."""
    heavy = ("torch", "torchvision", "timm", "sklearn", "matplotlib", "numpy", "pymongo", "bson", "rich",
             "mongomock", "watchdog", "indexer", "trainer")
    code = f"import sys; import ednaquery.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
