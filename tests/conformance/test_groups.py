"""``kind=group`` documents (k-fold / bagging groups of runs) on every backend: find, count, get, ``--best``.

A group document is made from a ``group.json`` (:mod:`ednaquery.groups`): its metrics are
``metrics.<name>.mean``/``.std`` over the member runs, so ``'val_acc.mean>0.9'`` compares means, and
``--best val_acc`` scores a group by its mean, never by its std. Expectations are derived by hand
from GROUPS below.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from ednaquery.api import Index
from ednaquery.documents import make_run_document
from ednaquery.errors import UsageError
from ednaquery.groups import group_document, is_group_file, write_group
from ednaquery.store import open_store
from tests.support.settings import clean_settings

#: name -> (model, method, [(val_acc, val_loss) per member run])
GROUPS = {
    # mean acc 0.92, low spread; mean loss 0.30 with a tiny std (a std-picker would choose it for val_loss)
    "steady": ("resnet18", "cv", [(0.91, 0.30), (0.92, 0.29), (0.93, 0.31)]),
    # mean acc 0.86 with a large spread: its best member (0.99) beats steady's, its mean does not
    "spread": ("resnet18", "cv", [(0.99, 0.05), (0.73, 0.35), (0.86, 0.20)]),
    # another model, mean acc 0.95; one member still running (not in the mean)
    "vit": ("vit_tiny", "bag", [(0.94, 0.25), (0.96, 0.27), (None, None)]),
}


def _run_id(g: int, m: int) -> str:
    return f"20261204-2200{g}{m}-aa{g}{m}"


def _write(root: Path) -> dict[str, str]:
    """group.json files under ``root`` (and the ids by name)."""
    ids = {}
    for g, (name, (model, method, members)) in enumerate(GROUPS.items()):
        gid = f"{method}-20261204-22000{g}-{name}"
        rows = []
        for m, (acc, loss) in enumerate(members):
            row = {"config_id": f"c{g}{m}" * 8, "job_id": f"job-{g}{m}", "fold": m, "run_id": _run_id(g, m),
                   "status": "running" if acc is None else "completed",
                   "metrics": {} if acc is None else {"val_acc": acc, "val_loss": loss}}
            rows.append(row)
        write_group(root / gid / "group.json", {"group_id": gid, "method": method, "folds": len(members),
                                                 "config_id": f"base{g}" * 8, "created_at": 1796420000.0 + g,
                                                 "config": {"model": {"name": model}, "data": {"img_size": 16}},
                                                 "members": rows})
        ids[name] = gid
    return ids


@pytest.fixture(scope="module", params=["sqlite", "mongomock"])
def index(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("groups")
    ids = _write(root)
    if request.param == "sqlite":
        s = open_store(str(root / "g.db"))
    else:
        mongomock = pytest.importorskip("mongomock")
        from ednaquery.store.mongo import MongoStore

        s = MongoStore("mongodb://127.0.0.1:27017/groups", client=mongomock.MongoClient())
    docs = [group_document(root / gid / "group.json") for gid in ids.values()]
    run = make_run_document(_run_id(0, 0), config={"model": {"name": "resnet18"}}, config_id=None,
                            path="/runs/r0", status="completed", metrics={"val_acc": {"last": 0.91, "best": 0.91}})
    s.upsert([*docs, run])
    ix = Index(s, owns_store=False)
    yield ix, {v: k for k, v in ids.items()}
    s.close()


def _names(found, names) -> list[str]:
    return [names[r.id] for r in found]


def test_group_file_is_recognised_and_its_metrics_are_the_mean_and_std_of_its_runs(tmp_path):
    ids = _write(tmp_path)
    path = tmp_path / ids["spread"] / "group.json"
    assert is_group_file(path) and not is_group_file(tmp_path / "other.json")
    doc = group_document(path)
    accs = [a for a, _ in GROUPS["spread"][2]]
    assert doc["kind"] == "group" and doc["status"] == "completed"
    assert doc["metrics"]["val_acc"]["mean"] == pytest.approx(statistics.fmean(accs))
    assert doc["metrics"]["val_acc"]["std"] == pytest.approx(statistics.stdev(accs))
    vit = group_document(tmp_path / ids["vit"] / "group.json")
    assert vit["status"] == "running" and vit["metrics"]["val_acc"]["mean"] == pytest.approx(0.95)
    assert vit["info"]["completed"] == 2 and vit["info"]["size"] == 3


def test_find_groups_by_mean(index):
    ix, names = index
    assert sorted(_names(ix.find(["kind=group", "val_acc.mean>0.9"]), names)) == ["steady", "vit"]
    assert _names(ix.find(["kind=group", "val_acc.mean<0.9"]), names) == ["spread"]
    assert sorted(_names(ix.find(["val_acc.std>0.1"], kind="group"), names)) == ["spread"]
    assert ix.count("kind=group") == 3 and ix.count("", kind="group") == 3
    assert sorted(_names(ix.find("kind=group model=resnet18"), names)) == ["spread", "steady"]
    assert _names(ix.find("kind=group group.method=bag"), names) == ["vit"]
    assert _names(ix.find("kind=group status=running"), names) == ["vit"]


def test_groups_link_to_their_runs(index):
    ix, names = index
    assert sorted(_names(ix.find(f"kind=group group.runs={_run_id(1, 2)}"), names)) == ["spread"]
    rec = ix.get(next(k for k, v in names.items() if v == "steady")[:-2])
    assert rec.kind == "group"


def test_groups_are_not_in_the_default_answer(index):
    ix, _ = index
    assert [r.kind for r in ix.find("model=resnet18")] == ["run"]
    assert ix.count("kind=group or kind=run") == 4


def test_best_across_groups_compares_means(index):
    ix, names = index
    # spread's best member (0.99) and std would win on anything but the mean
    assert _names(ix.find("kind=group", best="val_acc"), names) == ["vit"]
    assert _names(ix.find("kind=group", best="val_acc", by="model"), names) == ["vit", "steady"]
    # lower is better for losses: the lowest mean (spread 0.20), not the smallest std (steady 0.01)
    assert _names(ix.find("kind=group", best="val_loss"), names) == ["spread"]


def test_an_unknown_kind_names_group(index):
    ix, _ = index
    with pytest.raises(UsageError, match="the kinds are config, run, error, group; did you mean 'group'"):
        ix.find("kind=gruop")


def test_cli_lists_and_shows_groups(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ednaquery.cli import main

    clean_settings(tmp_path, monkeypatch)
    ids = _write(tmp_path)
    store = open_store(str(tmp_path / "g.db"))
    store.upsert([group_document(tmp_path / gid / "group.json") for gid in ids.values()])
    store.close()
    db = ["--store", str(tmp_path / "g.db")]
    found = CliRunner().invoke(main, [*db, "find", "--kind", "group", "val_acc.mean>0.9", "--format", "ids"])
    assert found.exit_code == 0, found.output
    assert sorted(found.output.split()) == sorted([ids["steady"], ids["vit"]])
    shown = CliRunner().invoke(main, [*db, "show", ids["vit"]])
    assert shown.exit_code == 0, shown.output
    assert "# kind: group" in shown.output and "# status: running" in shown.output
    assert f"# member fold=2: run {_run_id(2, 2)} running" in shown.output
