"""The conformance fixture corpus: small hand-written configs and runs with stable names.

Every expectation in ``cases.py`` is derived by hand from the dicts below and docs/query.md,
so keep them small and change them only together with the cases. Each config becomes a
document at ``/fixtures/<name>.yaml``; runs live at ``/runs/<name>/run.json``; one error
record (``broken``) stands for a file that did not parse.

The configs cover every docs/query.md rule: nested YAML, EdnaML's UPPER_CASE keys with lists of
dicts and YAML-1.1 numeric strings (``BASE_LR: "1e-3"``), every ``lr``-like key
(``lr``, ``learning_rate``, ``learningRate``, ``lr0``, ``max_lr``, ``BASE_LR`` and the
non-matches ``LR_KWARGS``/``lr_scheduler``), lists of numbers, booleans next to 1/0 and
"true", null/{}/[], numeric strings, keys with ``.`` and a leading ``$``, and deep paths.
"""
from __future__ import annotations

import math

from ednaquery.documents import config_id, make_config_document, make_error_document, make_run_document

CONFIGS: dict[str, dict] = {
    # timm-style nested YAML
    "vit_base": {
        "model": {"name": "vit_base_patch16_384", "pretrained": True, "drop_path_rate": 0.1, "num_classes": 1000},
        "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.05},
        "data": {"dataset": "imagenet", "batch_size": 64, "img_size": 384},
        "seed": 42,
        "epochs": 300,
    },
    # flat, model as one string with '-' and '/', seed as a quoted string
    "vit_b16": {
        "model": "ViT-B/16",
        "learning_rate": 0.0003,
        "batch_size": 128,
        "optimizer": "sgd",
        "momentum": 0.9,
        "seed": "42",
        "epochs": 90,
    },
    # 'levit' contains 'vit' but not as a token; lr is a YAML-1.1 numeric string
    "levit": {
        "model": {"name": "levit_128", "pretrained": False},
        "optimizer": {"name": "adam", "lr": "5e-4"},
        "batch_size": 256,
        "seed": 0,
        "epochs": 100,
    },
    # aliases: arch (model), lr0 (lr), wd, bs; an upper-case value
    "convnext": {
        "arch": "convnext_tiny",
        "lr0": 0.01,
        "wd": 0.05,
        "bs": 32,
        "optimizer": "SGD",
        "epochs": 100,
    },
    # backbone (model alias); deep training.learning.lr; warmup_epochs ends with 'epochs'
    "resnet": {
        "backbone": "resnet50",
        "training": {"learning": {"lr": 0.0001, "warmup_epochs": 5}, "epochs": 90, "batch_size": 512},
        "optimizer": {"name": "sgd", "momentum": 0.9, "weight_decay": 0.0001},
    },
    # camelCase keys; lr_scheduler must not match 'lr'
    "eva": {
        "model": {"name": "eva02_tiny_patch14_224"},
        "learningRate": 0.00002,
        "batchSize": 16,
        "weightDecay": 0.01,
        "optimizer": {"name": "lamb", "lr_scheduler": "cosine"},
    },
    # only lr-prefixed keys that 'lr' must NOT match
    "sched_only": {
        "lr_scheduler": "step",
        "LR_KWARGS": {"step_size": 30, "gamma": 0.1},
        "optimizer": {"name": "sgd"},
        "epochs": 30,
    },
    # max_lr matches 'lr'
    "onecycle": {
        "scheduler": {"name": "onecycle", "max_lr": 0.01, "pct_start": 0.3},
        "optimizer": {"name": "adamw"},
    },
    # EdnaML as it writes configs: UPPER_CASE, lists of dicts, BASE_LR as a YAML-1.1 string
    "ednaml": {
        "EXECUTION": {"SEED": 1234, "EPOCHS": 40},
        "MODEL": {
            "BUILDER": "ednaml_model_builder",
            "MODEL_ARCH": "ResnetBase",
            "MODEL_BASE": "resnet18",
            "EMBEDDING_DIMENSIONS": 512,
        },
        "OPTIMIZER": [{"OPTIMIZER_NAME": "Adam", "BASE_LR": "1e-3", "LR_BIAS_FACTOR": 1.0, "WEIGHT_DECAY": 0.0005}],
        "SCHEDULER": [{"LR_SCHEDULER": "StepLR", "LR_KWARGS": {"step_size": 20, "gamma": 0.1}}],
        "LOSS": [{"LOSSES": ["SoftmaxLogitsLoss"], "LAMBDAS": [1.0]}],
        "TRANSFORMATION": {"SHAPE": [200, 200], "BATCH_SIZE": 32},
    },
    # two optimizers: one BASE_LR below 1e-4, one above 1e-3 (ranges are per leaf)
    "ednaml_v2": {
        "EXECUTION": {"SEED": 7, "EPOCHS": 60},
        "MODEL": {"MODEL_ARCH": "MultiBranchResnet", "MODEL_BASE": "resnet50"},
        "OPTIMIZER": [
            {"OPTIMIZER_NAME": "SGD", "BASE_LR": "5e-5"},
            {"OPTIMIZER_NAME": "Adam", "BASE_LR": 0.01},
        ],
        "TRANSFORMATION": {"BATCH_SIZE": 64},
    },
    # ultralytics-style flat config; 'batch' is not 'batch_size', 'lrf' is not 'lr'
    "yolo": {
        "model": "yolov8n.pt",
        "lr0": 0.01,
        "lrf": 0.01,
        "momentum": 0.937,
        "weight_decay": 0.0005,
        "batch": 16,
        "imgsz": 640,
        "amp": True,
        "optimizer": "auto",
    },
    # lists of numbers
    "shapes": {"i_shape": [200, 200], "crop": [100, 300], "mean": [0.485, 0.456, 0.406]},
    # booleans vs numbers vs a string: each must match only its own type
    "flag_true": {"flag": True},
    "flag_one": {"flag": 1},
    "flag_false": {"flag": False},
    "flag_zero": {"flag": 0},
    "flag_str": {"flag": "true"},
    # null, {} and [] exist but match no comparison
    "empties": {"resume": None, "extra": {}, "callbacks": [], "epochs": 10},
    # strings that look like numbers (and one that does not: hex is not Python float syntax)
    "strnums": {"version": "1.10", "code": "007", "color": "0x1F"},
    # negative, infinite, fraction
    "numbers": {"warmup": -2, "clip": math.inf, "ratio": 0.5},
    # keys containing '.' and starting with '$' (escaped in the stored config)
    "dotted_keys": {"weird.key": 5, "$schema": "http://json-schema.org/draft-07/schema#"},
    # the same words as nested segments
    "nested_weird": {"weird": {"key": 6}},
    # model.name below the root; arch (a model alias) nested
    "teacher": {"teacher": {"model": {"name": "convnext_tiny"}}, "student": {"arch": "resnet18"}},
    # lightning-hydra-template style: _target_, _partial_, max_epochs, lr deep under model
    "hydra": {
        "model": {
            "_target_": "src.models.mnist_module.MNISTLitModule",
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.001, "weight_decay": 0.0},
            "net": {"_target_": "src.models.components.simple_dense_net.SimpleDenseNet", "input_size": 784},
        },
        "trainer": {"max_epochs": 10, "accelerator": "gpu"},
    },
    # free-text string values
    "dataset_str": {"dataset": "CIFAR-100", "notes": "Baseline: ViT on CIFAR"},
}

#: runs: (config name, status, metrics)
RUNS: dict[str, tuple[str, str, dict[str, dict[str, float]]]] = {
    "run_vit": ("vit_base", "completed",
                {"val_acc": {"last": 0.91, "best": 0.93}, "train_loss": {"last": 0.35, "best": 0.30}}),
    "run_convnext": ("convnext", "failed",
                     {"val_acc": {"last": 0.12, "best": 0.2}, "train_loss": {"last": 2.3, "best": 2.1}}),
    "run_eva": ("eva", "completed",
                {"val_acc": {"last": 0.94, "best": 0.95}, "train_loss": {"last": 0.25, "best": 0.22}}),
}
RUN_IDS = {
    "run_vit": "20260101-100000-0a01",
    "run_convnext": "20260101-110000-0b02",
    "run_eva": "20260101-120000-0c03",
}
ERRORS = {"broken": "line 3: mapping values are not allowed here"}

CONFIG_NAMES = frozenset(CONFIGS)
RUN_NAMES = frozenset(RUNS)
#: what an unrestricted query can return (error records are kept out by default)
ALL = CONFIG_NAMES | RUN_NAMES


def config_path(name: str) -> str:
    return f"/fixtures/{name}.yaml"


def run_path(name: str) -> str:
    return f"/runs/{name}/run.json"


def build_documents() -> tuple[list[dict], dict[str, str]]:
    """The fixture documents and a map from document id to fixture name."""
    docs: list[dict] = []
    names: dict[str, str] = {}
    for name, cfg in CONFIGS.items():
        doc = make_config_document(cfg, path=config_path(name), format="yaml")
        assert doc["_id"] not in names, f"fixtures {name} and {names.get(doc['_id'])} have the same content"
        docs.append(doc)
        names[doc["_id"]] = name
    for name, (cfg_name, status, metrics) in RUNS.items():
        cfg = CONFIGS[cfg_name]
        doc = make_run_document(RUN_IDS[name], config=cfg, config_id=config_id(cfg), path=run_path(name),
                                status=status, metrics=metrics, started_at=1767261600.0,
                                ended_at=1767265200.0)
        docs.append(doc)
        names[doc["_id"]] = name
    for name, message in ERRORS.items():
        doc = make_error_document(config_path(name), message, format="yaml")
        docs.append(doc)
        names[doc["_id"]] = name
    return docs, names
