"""Output helpers and result post-processing: id prefixes, matched values, --best, diff."""
from __future__ import annotations

import os

from ednaquery.documents import make_config_document, make_run_document
from ednaquery.output import (
    Column,
    cell_text,
    display_path,
    id_prefixes,
    matched_pairs,
    query_columns,
    structure,
    to_record,
    value_text,
)
from ednaquery.query.aliases import expand_aliases
from ednaquery.query.parser import parse
from ednaquery.results import MISSING, best_per_group, diff_documents, lower_is_better


def test_id_prefixes_are_unique_and_at_least_8_chars():
    ids = ["abcdef0123" + "0" * 54, "abcdef0199" + "0" * 54, "1234567890" + "f" * 54, "20261122-101500-aa01"]
    p = id_prefixes(ids)
    assert p[ids[0]] == "abcdef012" and p[ids[1]] == "abcdef019"  # one past the common part
    assert p[ids[2]] == "12345678"
    assert p[ids[3]] == ids[3]  # run ids are short and readable: shown whole
    assert len(set(p.values())) == len(ids)


def test_display_path_relative_under_cwd(tmp_path):
    assert display_path(str(tmp_path / "a" / "b.yaml"), cwd=str(tmp_path)) == os.path.join("a", "b.yaml")
    assert display_path("/elsewhere/x.yaml", cwd=str(tmp_path)) == "/elsewhere/x.yaml"


def _doc(config: dict) -> dict:
    return make_config_document(config, path="/x/c.yaml", format="yaml")


def _columns(query: str) -> list[Column]:
    return query_columns(expand_aliases(parse(query)))


def test_matched_values_keep_original_spelling_and_narrow_to_the_comparison():
    doc = _doc({"MODEL": {"MODEL_BASE": "ResNet-18", "pretrained": True},
                "OPTIMIZER": [{"BASE_LR": "1e-3"}], "scheduler": {"min_lr": "1e-6"}, "img": [224, 192]})
    (model,) = _columns("model=resnet")
    assert structure(matched_pairs(doc, model)) == "ResNet-18"  # not the pretrained flag
    (lr,) = _columns("lr<1e-2")
    assert structure(matched_pairs(doc, lr)) == {"OPTIMIZER.BASE_LR": "1e-3", "scheduler.min_lr": "1e-6"}
    (lr_small,) = _columns("lr<1e-4")
    assert cell_text(lr_small, matched_pairs(doc, lr_small)) == "min_lr=1e-6"
    (img,) = _columns("img=192")
    assert structure(matched_pairs(doc, img)) == [224, 192]  # a list is shown whole
    assert value_text(list(range(10))) == "[0, 1, 2, 3, … +6]"


def test_a_column_shows_the_leaf_the_key_resolved_to_in_that_document():
    """A trainer config's lr column is its optimizer.lr, never min_lr/warmup_lr; *lr shows every one, labelled."""
    doc = _doc({"optimizer": {"lr": 0.001}, "scheduler": {"min_lr": 0.0, "warmup_lr": 1e-06}})
    (lr,) = _columns("lr")
    assert cell_text(lr, matched_pairs(doc, lr)) == "0.001"
    (star,) = _columns("*lr<1e-4")
    assert cell_text(star, matched_pairs(doc, star)) == "min_lr=0 warmup_lr=1e-06"
    (one,) = _columns("*lr=0.001")
    assert cell_text(one, matched_pairs(doc, one)) == "optimizer.lr=0.001"
    solver = _doc({"SOLVER": {"BASE_LR": 0.0001}})
    assert cell_text(lr, matched_pairs(solver, lr)) == "BASE_LR=0.0001"


def test_record_has_full_id_paths_config_and_values():
    doc = _doc({"optimizer": {"lr": "1e-3"}})
    rec = to_record(doc, _columns("lr"))
    assert rec["id"] == doc["_id"] and rec["paths"] == ["/x/c.yaml"]
    assert rec["config"] == {"optimizer": {"lr": "1e-3"}} and rec["values"] == {"optimizer.lr": "1e-3"}


def _run(rid: str, model: str, acc: float, loss: float) -> dict:
    return make_run_document(rid, config={"model": {"name": model}}, config_id=None, path=f"/runs/{rid}",
                             status="completed", metrics={"val_acc": {"last": acc, "best": acc},
                                                          "val_loss": {"last": loss, "best": loss}})


def test_best_per_group_max_and_min():
    runs = [_run("r1", "a", 0.8, 0.5), _run("r2", "a", 0.9, 0.6), _run("r3", "b", 0.7, 0.2),
            _run("r4", "c", float("nan"), 0.3)]
    (acc,) = _columns("val_acc")
    (by,) = _columns("model")
    assert [d["_id"] for d in best_per_group(runs, acc, by)] == ["r2", "r3"]  # NaN never wins
    (loss,) = _columns("val_loss")
    assert [d["_id"] for d in best_per_group(runs, loss, by)] == ["r3", "r4", "r1"]
    assert [d["_id"] for d in best_per_group(runs, loss, None, minimize=False)] == ["r2"]
    assert lower_is_better("val_loss") and lower_is_better("top1_err") and lower_is_better("epoch_time_s")
    assert not lower_is_better("val_acc") and not lower_is_better("images_per_s")


def test_diff_documents():
    a = _doc({"model": {"name": "resnet18"}, "lr": "1e-3", "img": [224, 224], "seed": 1})
    b = _doc({"model": {"name": "resnet18"}, "lr": 0.001, "img": [224, 192], "seed": 1.0, "amp": True})
    rows = {k: (va, vb) for k, va, vb in diff_documents(a, b)}
    # "1e-3" (YAML 1.1's string) and 0.001 are one number: the one number rule (issue 13)
    assert rows == {"img[1]": (224, 192), "amp": (MISSING, True)}


def test_cli_and_output_agree_on_formats():
    from ednaquery import cli, output

    assert cli.FORMATS == output.FORMATS
