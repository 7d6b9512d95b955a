"""Tasks, heads, losses and metrics (issue 16 section 2): classification extras, regression, embeddings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from sklearn import metrics as skm

from ednaquery.cli import main as eq_main
from tests.support.configs import tiny_config, with_sections
from tests.support.folders import scanned_store
from trainer.engine.config import load_config
from trainer.engine.data import build_data
from trainer.engine.evalmetrics import classification_metrics, knn_accuracy
from trainer.engine.heads import build_task_model
from trainer.engine.loop import Trainer
from trainer.engine.losses import focal_loss
from trainer.engine.runner import run_training
from trainer.engine.runs import read_metrics
from trainer.errors import ConfigError, DataError


def tiny(**over) -> dict:
    """test_resnet on a quarter of digits at 16 px: about a second an epoch on one CPU thread."""
    return with_sections(tiny_config(data={"batch_size": 32, "fraction": 0.25}, train={"epochs": 2}), **over)


# ---------------------------------------------------------------- losses


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(64, 7, generator=g) * 3, torch.randint(0, 7, (64,), generator=g)
    w = torch.rand(7, generator=g) + 0.2
    soft = torch.softmax(torch.randn(64, 7, generator=g), 1)
    for kwargs in ({}, {"weight": w}, {"label_smoothing": 0.1}, {"weight": w, "label_smoothing": 0.1}):
        assert torch.allclose(focal_loss(logits, y, gamma=0.0, **kwargs), F.cross_entropy(logits, y, **kwargs),
                              atol=1e-6), kwargs
    assert torch.allclose(focal_loss(logits, soft, gamma=0.0, weight=w), F.cross_entropy(logits, soft, weight=w),
                          atol=1e-6)
    # gamma > 0 down-weights easy examples: below CE, and alpha scales it
    focal = focal_loss(logits, y, gamma=2.0)
    assert focal < F.cross_entropy(logits, y)
    assert torch.allclose(focal_loss(logits, y, gamma=2.0, alpha=0.25), 0.25 * focal)
    assert torch.allclose(focal_loss(logits, y, gamma=0.0, alpha=w), F.cross_entropy(logits, y, weight=w))


# ---------------------------------------------------------------- classification metrics


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.RandomState(3)
    y_true = rng.randint(0, 5, 300)
    y_true[y_true == 4] = 3  # class 4 never occurs as a label...
    y_pred = np.where(rng.rand(300) < 0.6, y_true, rng.randint(0, 5, 300))
    y_pred[y_pred == 2] = 1  # ...and class 2 is never predicted
    cm = skm.confusion_matrix(y_true, y_pred, labels=range(6))  # class 5: neither
    names = ["cat", "dog", "Times New Roman", "a/b", "e", "ghost"]
    out = classification_metrics(cm, names, per_class_max=10)
    assert out["val_balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert out["val_macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    labels = sorted(set(y_true) | set(y_pred))
    recall = skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    precision = skm.precision_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    keys = {0: "cat", 1: "dog", 2: "Times_New_Roman", 3: "a_b", 4: "e"}
    for i, label in enumerate(labels):
        assert out[f"val_recall_{keys[label]}"] == pytest.approx(recall[i])
        assert out[f"val_precision_{keys[label]}"] == pytest.approx(precision[i])
    assert "val_recall_ghost" not in out  # neither a label nor a prediction: no value to report
    # past the cap only the summaries stay (a 1000-class dataset does not make 2000 keys)
    assert set(classification_metrics(cm, names, per_class_max=5)) == {"val_balanced_acc", "val_macro_f1"}


def test_knn_accuracy_leaves_each_point_out() -> None:
    z = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99], [0.98, 0.05]])
    assert knn_accuracy(z, torch.tensor([0, 0, 1, 1, 0]), k=1) == 1.0
    assert knn_accuracy(z, torch.tensor([0, 0, 1, 0, 1]), k=1) == 0.0  # every nearest neighbour disagrees


def test_a_classification_run_logs_the_extra_metrics_searchably(tmp_path: Path, monkeypatch) -> None:
    cfg = tiny(loss={"terms": [{"name": "ce", "weight": 1.0}, {"name": "focal", "weight": 0.5}]},
               train={"epochs": 1, "max_steps_per_epoch": 6, "device": "cpu"})
    result = run_training(cfg, tmp_path / "runs" / "r1", quiet=True, plots=False)
    assert result.status == "completed", result.error
    row = read_metrics(tmp_path / "runs" / "r1" / "metrics.jsonl")[-1]
    for key in ("val_balanced_acc", "val_macro_f1", "val_softmax_std", "train_loss_ce", "train_loss_focal",
                "val_loss_ce", "val_loss_focal", "val_recall_3", "val_precision_9"):
        assert key in row, key
    assert row["train_loss"] == pytest.approx(row["train_loss_ce"] + 0.5 * row["train_loss_focal"], rel=1e-6)
    assert row["val_loss"] == pytest.approx(row["val_loss_ce"], rel=1e-6)
    assert 0.0 < row["val_softmax_std"] < 0.5
    assert result.metrics["val_macro_f1"]["best"] == row["val_macro_f1"]

    db = scanned_store(tmp_path, monkeypatch, tmp_path / "runs")
    found = CliRunner().invoke(eq_main, ["--store", db, "find", "kind=run", "val_macro_f1>=0",
                                         "val_recall_3>=0", "--format", "json"], catch_exceptions=False)
    assert found.exit_code == 0, found.output
    assert len(json.loads(found.stdout)) == 1


# ---------------------------------------------------------------- regression


def test_regression_on_a_synthetic_target_learns() -> None:
    cfg = tiny(task="regression", data={"dataset": "synthetic_regression", "channels": 1, "fake_samples": 512,
                                        "fraction": 1.0},
               head={"hidden": [32], "norm": "batch", "activation": "sigmoid"},
               train={"epochs": 4, "device": "cpu"})
    r = _fit(cfg)
    assert r["best_metric"] == "val_r2" and r["loss"] == "mse"
    assert r["rows"][-1]["val_r2"] > 0.8
    assert r["rows"][-1]["val_mae"] < 0.15 and r["rows"][-1]["val_rmse"] >= r["rows"][-1]["val_mae"]
    assert "val_acc" not in r["rows"][-1] and "train_acc" not in r["rows"][-1]


def _fit(raw: dict, *, before: bool = False) -> dict:
    """Train ``raw`` in memory (no run folder); the epoch rows, and the metrics before training if asked."""
    torch.manual_seed(0)
    cfg = load_config(raw)
    data = build_data(cfg)
    model = build_task_model(cfg, num_classes=data.num_classes, in_chans=data.channels, img_size=data.img_size)
    trainer = Trainer(cfg, data, model, device=torch.device("cpu"))
    start = trainer.evaluate().metrics if before else None
    rows: list[dict] = []
    trainer.save_best = lambda: None  # no run folder
    trainer.save_checkpoint = lambda name="last.pt": None
    trainer.fit(on_epoch=rows.append)
    return {"rows": rows, "start": start, "best_metric": cfg.train.best_metric, "loss": cfg.loss.name,
            "model": model}


def test_regression_heads_bound_their_outputs() -> None:
    for activation, rng in (("sigmoid", [2.0, 5.0]), ("clamp", [-1.0, 1.0])):
        cfg = load_config(tiny(task="regression", data={"dataset": "synthetic_regression"},
                               head={"hidden": [16, 8], "norm": "layer", "activation": activation, "range": rng,
                                     "pool": "max"}))
        model = build_task_model(cfg, num_classes=2, in_chans=3, img_size=(16, 16)).eval()
        with torch.no_grad():
            out = model(torch.randn(6, 3, 16, 16) * 50)
        assert out.shape == (6, 2)
        assert rng[0] <= float(out.min()) and float(out.max()) <= rng[1]
        assert model.backbone.global_pool.pool_type == "max"


def test_regression_targets_from_a_csv_beside_the_images(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = ["path,brightness,half"]
    for i in range(40):
        v = i / 39
        Image.fromarray(np.full((8, 8, 3), int(v * 255), np.uint8)).save(folder / f"{i}.png")
        lines.append(f"{i}.png,{v},{v / 2}")
    (tmp_path / "imgs.csv").write_text("\n".join(lines) + "\n")
    cfg = load_config(tiny(task="regression", data={"dataset": f"imagefolder:{folder}", "img_size": 8,
                                                    "batch_size": 8, "fraction": 0.5}))
    data = build_data(cfg)
    assert data.class_names == ["brightness", "half"] and data.num_classes == 2
    assert (data.train_size, data.val_size) == (16, 8)  # val 20% of 40, then half of the 32 left
    x, y = next(iter(data.val_loader))
    assert y.dtype == torch.float32 and y.shape[1] == 2
    assert torch.allclose(y[:, 1], y[:, 0] / 2)
    assert torch.allclose(x.float().mean((1, 2, 3)) / 255, y[:, 0], atol=0.01)  # each image got its own row

    (tmp_path / "imgs.csv").write_text("path,brightness\n0.png,bright\n")
    with pytest.raises(DataError, match=r"imgs.csv:2: targets must be numbers"):
        build_data(cfg)
    (tmp_path / "imgs.csv").unlink()
    with pytest.raises(DataError, match="no targets CSV"):
        build_data(cfg)


# ---------------------------------------------------------------- embeddings


@pytest.mark.parametrize("loss", ["triplet", "contrastive", "supcon"])
def test_metric_learning_improves_knn_accuracy(loss: str) -> None:
    r = _fit(tiny(task="embedding", loss={"name": loss}, head={"embed_dim": 32},
                  train={"epochs": 3, "device": "cpu"}), before=True)
    assert r["best_metric"] == "val_knn_acc" and r["loss"] == loss
    assert r["rows"][-1]["val_knn_acc"] > r["start"]["val_knn_acc"] + 0.05
    z = r["model"].eval()(torch.randn(4, 1, 16, 16))
    assert z.shape == (4, 32) and torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)


# ---------------------------------------------------------------- the schema


@pytest.mark.parametrize("over, message", [
    ({"task": "regresion"}, ("task: 'regresion' is not one of classification, regression, embedding; "
                             "did you mean 'regression'?")),
    ({"loss": {"name": "mse"}}, "loss.name: 'mse' is not a classification loss; use one of ce, focal"),
    ({"loss": {"terms": [{"name": "focall"}]}}, "did you mean 'focal'?"),
    ({"loss": {"gama": 1}}, "did you mean 'loss.gamma'?"),
    ({"head": {"norm": "btach"}}, "did you mean 'batch'?"),
    ({"head": {"hiden": [3]}}, "did you mean 'head.hidden'?"),
    ({"head": {"activation": "sigmoid"}}, "head.activation: sigmoid bounds regression outputs"),
    ({"task": "regression"}, "regression needs numeric targets"),
    ({"task": "regression", "data": {"dataset": "synthetic_regression"}, "train": {"best_metric": "val_acc"}},
     "train.best_metric: 'val_acc' is not one of"),
    ({"task": "embedding", "data": {"augment": {"mixup": True}}}, "only for classification"),
    ({"task": "regression", "data": {"dataset": "synthetic_regression", "sampler": "balanced"}},
     "data.sampler: balanced balances classes; regression has none"),
    ({"data": {"targets": "t.csv"}}, "data.targets: a targets CSV is for task: regression"),
])
def test_config_errors_are_one_line_and_name_the_key(over: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tiny(**over))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_best_metric_accepts_the_new_metrics() -> None:
    for task, metric, data in (("regression", "val_mae", {"dataset": "synthetic_regression"}),
                               ("embedding", "val_knn_acc", {}), ("classification", "val_macro_f1", {})):
        cfg = load_config(tiny(task=task, data=data, train={"best_metric": metric}))
        assert cfg.train.best_metric == metric
    cfg = load_config(tiny(loss={"terms": [{"name": "ce"}, {"name": "focal"}]},
                           train={"best_metric": "val_loss_focal"}))
    assert cfg.train.best_metric == "val_loss_focal"


# ---------------------------------------------------------------- DDP: the metrics of the whole validation set

_RANK_SCRIPT = """
import json, sys
from pathlib import Path
from trainer.engine.distributed import init_from_env, shutdown
from trainer.engine.runner import run_training
ctx = init_from_env("cpu")
for name, cfg in json.loads(sys.argv[1]).items():
    r = run_training(cfg, Path(sys.argv[2]) / name, dist=ctx, quiet=True, plots=False, handle_signals=False)
    assert r.status == "completed", r.error
shutdown(ctx)
"""


@pytest.mark.slow
def test_two_processes_log_the_knn_accuracy_of_the_whole_validation_set(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    from trainer.engine.loop import load_checkpoint
    from trainer.engine.model import model_mean_std

    configs = {  # evaluate_task's two DDP paths: summed loss sums, embeddings gathered on rank 0
        "embedding": tiny(task="embedding", loss={"terms": [{"name": "triplet"}, {"name": "supcon"}]},
                          train={"epochs": 1, "max_steps_per_epoch": 3, "device": "cpu"}),
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        procs.append(subprocess.Popen([sys.executable, str(script), json.dumps(configs), str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for name, raw in configs.items():
        logged = read_metrics(tmp_path / name / "metrics.jsonl")[-1]
        cfg = load_config(raw)
        data = build_data(cfg)
        model = build_task_model(cfg, num_classes=data.num_classes, in_chans=data.channels, img_size=data.img_size)
        trainer = Trainer(cfg, data, model, device=torch.device("cpu"), mean_std=model_mean_std(model))
        trainer.model.load_state_dict(load_checkpoint(tmp_path / name / "last.pt")["model"])
        alone = trainer.evaluate().metrics
        assert logged["val_knn_acc"] == pytest.approx(alone["val_knn_acc"])
        # in-batch losses depend on which images share a batch (each rank batches its own shard): counted once
        assert {"val_loss", "val_loss_triplet", "val_loss_supcon"} <= set(logged)
        assert logged["val_loss"] == pytest.approx(logged["val_loss_triplet"] + logged["val_loss_supcon"])
