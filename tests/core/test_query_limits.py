"""Hostile regexes and long queries: ``~`` runs in linear time on the embedded store, a query stops at its
time limit with one line and exit 2, and Ctrl-C during a query exits 130 with "interrupted"."""
from __future__ import annotations

from pathlib import Path

import mongomock
import pytest
from click.testing import CliRunner

from ednaquery.cli import main
from ednaquery.documents import make_config_document
from ednaquery.errors import QueryTimeout, UsageError
from ednaquery.query.parser import parse
from ednaquery.store import sqlite as sqlite_mod
from ednaquery.store.base import FileState, PathUpdate
from ednaquery.store.mongo import MongoStore
from ednaquery.store.sqlite import SQLiteStore
from tests.support.settings import clean_settings

EVIL = "a" * 5000 + "!"  # (a+)+$ backtracks ~2^n times on this in a backtracking engine


def _fill(store, tmp_path: Path, n: int) -> None:
    ups = []
    for i in range(n):
        doc = make_config_document({"name": EVIL if i == 0 else f"run-{i}", "lr": i / n},
                                   path=str(tmp_path / f"{i}.yaml"), format="yaml")
        ups.append(PathUpdate(str(tmp_path / f"{i}.yaml"), [doc], FileState(1, i, i)))
    store.apply(ups)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    clean_settings(tmp_path, monkeypatch)
    path = str(tmp_path / "index.db")
    store = SQLiteStore(path)
    _fill(store, tmp_path, 3000)
    store.close()
    return path


def test_a_catastrophic_regex_answers_at_once_on_the_embedded_store(db: str) -> None:
    store = SQLiteStore(db)
    # RE2 runs in time linear in the text; a backtracking engine would take hours on EVIL (the suite would hang)
    assert type(sqlite_mod.compile_regex("(a+)+$")).__module__ == "re2"
    assert store.count(parse("name~(a+)+$")) == 0
    assert store.count(parse("name~(a+)+!$")) == 1
    with pytest.raises(UsageError, match="RE2"):
        store.count(parse(r"name~(a)\1"))  # backreferences need backtracking: a clear error, not a hang
    store.close()


def test_a_query_past_its_time_limit_stops_with_one_line_and_exit_2(db: str) -> None:
    store = SQLiteStore(db)
    store.query_timeout = 1e-9
    with pytest.raises(QueryTimeout):
        store.count(parse("name~run"))
    store.query_timeout = None
    assert store.count(parse("name~run")) == 2999  # the store is fine afterwards
    store.close()
    res = CliRunner().invoke(main, ["--store", db, "count", "name~run", "--timeout", "0.000000001"])
    assert res.exit_code == 2
    assert res.output.startswith("error: the query ran past its") and res.output.count("\n") == 1


def test_ctrl_c_during_a_query_exits_130_interrupted(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = sqlite_mod.compile_regex

    class Slow:
        def __init__(self, rx):
            self.rx = rx

        def search(self, value):
            raise KeyboardInterrupt  # the user's Ctrl-C, arriving while SQLite runs our regex

    monkeypatch.setattr(sqlite_mod, "compile_regex", lambda p: Slow(real(p)))
    res = CliRunner().invoke(main, ["--store", db, "count", "name~run"])
    assert res.exit_code == 130 and res.output.strip() == "interrupted"
    assert "not usable" not in res.output


def test_a_first_query_word_starting_with_a_dash_is_part_of_the_query(db: str) -> None:
    res = CliRunner().invoke(main, ["--store", db, "count", "-lr"])
    assert "No such option" not in res.output and "Usage:" not in res.output
    assert res.exit_code in (0, 1, 2) and len(res.output.strip().splitlines()) <= 3


def test_mongodb_queries_carry_the_time_limit(tmp_path: Path) -> None:
    from pymongo.errors import ExecutionTimeout

    store = MongoStore("mongodb://localhost/edna_limits", client=mongomock.MongoClient())
    _fill(store, tmp_path, 3)
    store.query_timeout = 2.5
    seen = {}
    real = store.docs.count_documents

    def count_documents(flt, **kw):
        seen.update(kw)
        return real(flt, **kw)

    store.docs.count_documents = count_documents
    assert store.count(parse("name~run")) == 2 and seen == {"maxTimeMS": 2500}

    def too_slow(flt, **kw):
        raise ExecutionTimeout("operation exceeded time limit", 50)

    store.docs.count_documents = too_slow
    with pytest.raises(QueryTimeout, match="2.5 s"):
        store.count(parse("name~(a+)+$"))
    store.close()
