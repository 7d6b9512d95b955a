"""The metrics rules (ednaquery.metrics): direction, step columns, last/best summaries, file readers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ednaquery import metrics
from ednaquery.metrics import MetricsSummary, direction, is_step_key, iter_jsonl, read_csv, read_jsonl
from ednaquery.results import lower_is_better

# ---------------------------------------------------------------- the direction rule


@pytest.mark.parametrize("name, expected", [
    # scores: higher is better
    ("val_acc", "max"), ("val/acc", "max"), ("top1", "max"), ("valAccuracy", "max"), ("f1_macro", "max"),
    ("f1", "max"), ("val_f1", "max"), ("precision", "max"), ("recall", "max"), ("val_auc", "max"),
    ("mAP50", "max"), ("bbox/AP75", "max"), ("map", "max"), ("miou", "max"), ("auroc", "max"),
    ("recall@10", "max"), ("r2", "max"), ("val_top5", "max"), ("train_acc", "max"), ("iou", "max"),
    # losses, errors, times: lower is better (checked first)
    ("train_loss", "min"), ("val/loss_epoch", "min"), ("top1_err", "min"), ("rmse", "min"), ("wer", "min"),
    ("val_error", "min"), ("epoch_time_s", "min"), ("latency_ms", "min"), ("step_duration", "min"),
    ("data_wait_frac", "min"), ("acc_loss", "min"),
    # rates: judged by what is counted; a count per time unit is a throughput
    ("images_per_s", "max"), ("samples_per_second", "max"), ("time_per_step", "min"),
    ("loss_per_token", "min"), ("acc_per_class", "max"), ("tokens_per_batch", None),
    # the trainer's task metrics; per-class scores are scores whatever the class is called
    ("val_balanced_acc", "max"), ("val_macro_f1", "max"), ("val_knn_acc", "max"), ("val_mae", "min"),
    ("val_rmse", "min"), ("val_r2", "max"), ("train_loss_focal", "min"), ("val_softmax_std", None),
    ("val_recall_cat", "max"), ("val_precision_Times_New_Roman", "max"), ("test_recall_error", "max"),
    ("val_f1_loss_of_signal", "max"),
    # unknown: no best
    ("lr", None), ("grad_norm", None), ("throughput", None), ("cpu_rss_mb", None), ("peak_gpu_mem_mb", None),
])
def test_direction_rule(name: str, expected: str | None) -> None:
    assert direction(name) == expected
    assert lower_is_better(name) is (expected == "min"), "ednaquery find --best follows the same rule"


@pytest.mark.parametrize("name, is_step", [
    ("epoch", True), ("Step", True), ("global_step", True), ("time", True), ("timestamp", True),
    ("_runtime", True), ("epoch_time_s", False), ("val_acc", False), ("steps_per_s", False),
])
def test_step_columns_are_whole_names(name: str, is_step: bool) -> None:
    assert is_step_key(name) is is_step


# ---------------------------------------------------------------- summaries


def test_summary_last_best_nonfinite_and_steps() -> None:
    s = MetricsSummary()
    for rec in [{"epoch": 0, "loss": 2.0, "acc": 0.5, "lr": 0.1}, {"epoch": 1, "loss": float("nan"), "acc": 0.7},
                {"epoch": 2, "loss": 1.0, "acc": 0.6, "lr": 0.01, "flag": True, "note": "x"}]:
        s.add_record(rec)
    assert s.result() == {"loss": {"last": 1.0, "best": 1.0}, "acc": {"last": 0.6, "best": 0.7},
                          "lr": {"last": 0.01}}
    assert s.last_epoch == 2 and "loss (1)" in s.warnings()[0]


def test_step_columns_never_become_metrics() -> None:
    s = MetricsSummary()
    s.add_record({"epoch": 3, "step": 120, "time": 1.7e9, "epoch_time_s": 12.5, "val_f1": "0.8"})
    assert s.result() == {"epoch_time_s": {"last": 12.5, "best": 12.5}, "val_f1": {"last": 0.8, "best": 0.8}}
    assert (s.last_epoch, s.last_step) == (3, 120)


# ---------------------------------------------------------------- readers


def test_jsonl_torn_last_line_is_quiet_other_bad_lines_are_counted(tmp_path: Path) -> None:
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"epoch": 1, "val_acc": 0.5}\n{"epoch": 2, "val_acc": 0.7}\n{"epoch": 3, "val_a')
    warnings: list[str] = []
    assert [r["epoch"] for r in iter_jsonl(f, warnings)] == [1, 2]
    assert warnings == []

    f.write_text('{"epoch": 1, "val_acc": 0.5}\nnot json\n[1, 2]\n{"epoch": 2, "val_acc": 0.7}\n{"epo')
    summary = MetricsSummary()
    read_jsonl(f, summary, warnings)
    assert summary.result() == {"val_acc": {"last": 0.7, "best": 0.7}}
    assert warnings == ["metrics.jsonl: 2 lines not a JSON object, skipped"]


def test_jsonl_over_the_size_limit_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "metrics.jsonl"
    f.write_text("".join(json.dumps({"epoch": i, "loss": 1.0 / (i + 1)}) + "\n" for i in range(50)))
    warnings: list[str] = []
    assert list(iter_jsonl(f, warnings, max_bytes=100)) == []
    assert len(warnings) == 1 and "over 100; not read" in warnings[0]
    assert len(list(iter_jsonl(f, [], max_bytes=None))) == 50, "None: no limit"

    monkeypatch.setattr(metrics, "MAX_METRICS_BYTES", 50)  # the readers' default limit
    summary, warnings = MetricsSummary(), []
    read_csv(_csv(tmp_path), summary, warnings)
    assert summary.result() == {} and "over 50; not read" in warnings[0]


def test_missing_file_is_a_warning_not_an_error(tmp_path: Path) -> None:
    warnings: list[str] = []
    assert list(iter_jsonl(tmp_path / "nope.jsonl", warnings)) == []
    assert warnings and "nope.jsonl could not be read" in warnings[0]


def _csv(folder: Path) -> Path:
    p = folder / "metrics.csv"
    p.write_text("epoch,step,train_loss,val_acc,lr\n0,10,2.0,,0.1\n0,19,,0.6,\n1,29,1.5,,0.05\n1,39,,0.55,\n")
    return p


def test_csv_sparse_rows(tmp_path: Path) -> None:
    summary, warnings = MetricsSummary(), []
    read_csv(_csv(tmp_path), summary, warnings)
    assert summary.result() == {"train_loss": {"last": 1.5, "best": 1.5}, "val_acc": {"last": 0.55, "best": 0.6},
                                "lr": {"last": 0.05}}
    assert (summary.last_epoch, summary.last_step, warnings) == (1, 39, [])
