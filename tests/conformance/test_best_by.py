"""``--best METRIC --by KEY``: scored and grouped in the store (SQL on SQLite, ``$group`` on MongoDB), same answer.

Groups come from the key's own value or its section's ``name`` leaf, case-insensitively, so Hydra's
``model: {name: vit_base_patch16_224, patch_size: 16}`` and MLflow's ``model: vit_base_patch16_224``
are one group. A metric scores by its ``best`` summary (the best epoch), else ``last``.
Expectations are derived by hand from RUNS below.
"""
from __future__ import annotations

import pytest

from ednaquery.documents import make_run_document
from ednaquery.errors import UsageError
from ednaquery.output import Column
from ednaquery.query import expand_aliases, parse
from ednaquery.query.ast import MatchAll
from ednaquery.results import best_in_store, check_group_key
from ednaquery.store import FindOptions, open_store

#: name -> (config, val_acc best, val_loss best)
RUNS = {
    "hydra_vit": ({"model": {"name": "vit_base_patch16_224", "patch_size": 16}}, 0.90, 0.40),
    "mlflow_vit": ({"model": "vit_base_patch16_224"}, 0.93, 0.35),
    "resnet": ({"model": {"name": "resnet50", "depth": 50}}, 0.80, 0.60),
    "resnet_caps": ({"model": {"name": "ResNet50"}, "data": {"dataset": "x", "img_size": 32}}, 0.85, 0.20),
    "nameless": ({"model": {"depth": 18}, "data": {"dataset": "y", "img_size": 64}}, 0.99, 0.90),
}


def _docs() -> tuple[list[dict], dict[str, str]]:
    docs, names = [], {}
    for i, (name, (config, acc, loss)) in enumerate(RUNS.items()):
        doc = make_run_document(f"20260301-10000{i}-ab0{i}", config=config, config_id=None,
                                path=f"/best/{name}", status="completed",
                                metrics={"val_acc": {"last": acc - 0.05, "best": acc},
                                         "val_loss": {"last": loss + 0.1, "best": loss}})
        docs.append(doc)
        names[doc["_id"]] = name
    return docs, names


@pytest.fixture(scope="module", params=["sqlite", "mongomock"])
def store(request, tmp_path_factory):
    if request.param == "sqlite":
        s = open_store(str(tmp_path_factory.mktemp("best") / "b.db"))
    else:
        mongomock = pytest.importorskip("mongomock")
        from ednaquery.store.mongo import MongoStore

        s = MongoStore("mongodb://127.0.0.1:27017/best", client=mongomock.MongoClient())
    s.upsert(_docs()[0])
    yield s
    s.close()


def _col(text: str) -> Column:
    key = expand_aliases(parse(text)).key
    return Column(key, text)


def _best(store, metric: str, by: str | None, query: str = "", minimize: bool | None = None) -> list[str]:
    names = _docs()[1]
    node = expand_aliases(parse(query)) if query else MatchAll()
    docs = best_in_store(store, node, FindOptions(), _col(metric), _col(by) if by else None, minimize)
    return [names[d["_id"]] for d in docs]


def test_best_per_model_joins_a_section_name_and_a_plain_value(store):
    # vit: mlflow 0.93 > hydra 0.90; resnet50: ResNet50 0.85 > resnet50 0.80; no name: nameless 0.99
    assert _best(store, "val_acc", "model") == ["nameless", "mlflow_vit", "resnet_caps"]


def test_loss_like_metrics_keep_the_lowest(store):
    assert _best(store, "val_loss", None) == ["resnet_caps"]
    assert _best(store, "val_loss", "model") == ["resnet_caps", "mlflow_vit", "nameless"]
    assert _best(store, "val_acc", None, minimize=True) == ["resnet"]


def test_best_within_a_query(store):
    assert _best(store, "val_acc", "model", "model=resnet50") == ["resnet_caps"]


def test_the_store_scores_and_labels_runs(store):
    """SQLite from its indexes, MongoDB with $unwind/$sort/$group: the same scores and labels."""
    rows = store.best_rows(MatchAll(), FindOptions(), _col("val_acc").key, _col("model").key, False)
    assert rows is not None
    best = {}
    for _, score, label, _ in rows:
        best[label] = max(best.get(label, 0), score)
    assert best == {"vit_base_patch16_224": 0.93, "resnet50": 0.85, "": 0.99}  # the best epoch's value


def test_by_a_section_without_a_name_says_which_leaf_to_use(store):
    with pytest.raises(UsageError, match=r"--by data names a section .*data\.dataset.*e\.g\. --by data\.dataset"):
        check_group_key(_col("data").key, store.key_paths())
    check_group_key(_col("model").key, store.key_paths())  # model has name leaves: fine


@pytest.mark.wire
def test_best_per_model_through_the_wire_server(wire_uri):
    from ednaquery.store.mongo import MongoStore

    s = MongoStore(wire_uri.rsplit("/", 1)[0] + "/w_best", timeout_ms=3000)
    try:
        s.upsert(_docs()[0])
        assert _best(s, "val_acc", "model") == ["nameless", "mlflow_vit", "resnet_caps"]
        assert _best(s, "val_loss", None) == ["resnet_caps"]
    finally:
        s.client.drop_database("w_best")
        s.close()
