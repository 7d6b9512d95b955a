"""A second conformance corpus and table: how a short key resolves per document (docs/query.md, "Keys").

The configs are shaped like the ones the rule was revised for: our trainer's resolved config
(``optimizer.lr`` next to ``scheduler.min_lr``/``warmup_lr``), detectron2 and EdnaML (``BASE_LR``
only), Hydra (``model.optimizer.lr`` with ``model.scheduler.min_lr``), a scheduler-only config, an
exact ``lr: null``, an alias as the exact key, and runs (metrics next to config leaves). Every
expectation is derived by hand below from the dicts and the rule, never by running the code.

What ``lr`` (with aliases) resolves to, per document:
trainer 1e-3 | trainer_low 5e-5 | detectron2 1e-4 (BASE_LR, fallback) | ednaml "1e-3" (BASE_LR,
fallback) | hydra 0.002 | sched_only {0.01, 1e-6} (max_lr, min_lr: fallback) | lr_null null |
alias_exact 3e-4 (learning_rate) | nolr nothing | run_trainer 1e-3 | run_low 5e-5.
"""
from __future__ import annotations

from ednaquery.documents import config_id, make_config_document, make_run_document

from .cases import Case, SortCase, c

_SCHED = {"name": "cosine", "min_lr": 0.0, "warmup_lr": 1e-06, "warmup_epochs": 5}

CONFIGS: dict[str, dict] = {
    "trainer": {
        "model": {"name": "vit_small_patch16_224", "pretrained": True},
        "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.05},
        "scheduler": _SCHED,
        "data": {"batch_size": 128},
        "epochs": 100,
    },
    "trainer_low": {
        "model": {"name": "convnext_tiny", "pretrained": True},
        "optimizer": {"name": "adamw", "lr": 5e-05, "weight_decay": 0.05},
        "scheduler": _SCHED,
        "data": {"batch_size": 128},
        "epochs": 100,
    },
    "detectron2": {
        "MODEL": {"META_ARCHITECTURE": "GeneralizedRCNN", "BACKBONE": {"NAME": "build_resnet_fpn_backbone"}},
        "SOLVER": {"BASE_LR": 0.0001, "WARMUP_FACTOR": 0.001, "MAX_ITER": 90000, "IMS_PER_BATCH": 16},
    },
    "ednaml": {
        "MODEL": {"MODEL_BASE": "resnet18"},
        "OPTIMIZER": [{"OPTIMIZER_NAME": "Adam", "BASE_LR": "1e-3"}],
        "SCHEDULER": [{"LR_SCHEDULER": "StepLR", "LR_KWARGS": {"step_size": 20}}],
    },
    "hydra": {
        "model": {
            "net": {"_target_": "src.models.Net"},
            "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.002},
            "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "min_lr": 1e-07},
        },
    },
    "sched_only": {"scheduler": {"name": "onecycle", "max_lr": 0.01, "min_lr": 1e-06}, "optimizer": {"name": "sgd"}},
    "lr_null": {"optimizer": {"lr": None}, "scheduler": {"min_lr": 1e-06}},
    "alias_exact": {"learning_rate": 0.0003, "scheduler": {"warmup_lr": 1e-06}},
    "nolr": {"model": "resnet50", "epochs": 10},
}

#: runs: (config name, metrics)
RUNS: dict[str, tuple[str, dict[str, dict[str, float]]]] = {
    "run_trainer": ("trainer", {"val_acc": {"last": 0.91, "best": 0.93}}),
    "run_low": ("trainer_low", {"val_acc": {"last": 0.80, "best": 0.92}}),
}
ALL = frozenset(CONFIGS) | frozenset(RUNS)


def build_documents() -> tuple[list[dict], dict[str, str]]:
    """The corpus's documents and a map from document id to name."""
    docs: list[dict] = []
    names: dict[str, str] = {}
    for name, cfg in CONFIGS.items():
        doc = make_config_document(cfg, path=f"/tiers/{name}.yaml", format="yaml")
        docs.append(doc)
        names[doc["_id"]] = name
    for i, (name, (cfg_name, metrics)) in enumerate(RUNS.items()):
        cfg = CONFIGS[cfg_name]
        doc = make_run_document(f"20260201-10000{i}-0a0{i}", config=cfg, config_id=config_id(cfg),
                                path=f"/tiers/runs/{name}/run.json", status="completed", metrics=metrics,
                                started_at=1767261600.0, ended_at=1767265200.0)
        docs.append(doc)
        names[doc["_id"]] = name
    return docs, names


CASES: list[Case] = [
    # existence and absence see either tier
    Case("lr", ALL - {"nolr"}),
    c("!lr", "nolr"),
    Case("*lr", ALL - {"nolr"}),
    c("!*lr", "nolr"),
    # the headline: min_lr/warmup_lr never stand in for an exact lr (trainer, hydra, lr_null, alias_exact)
    c("lr<1e-4", "trainer_low", "sched_only", "run_low"),
    c("lr<=1e-4", "trainer_low", "sched_only", "run_low", "detectron2"),
    # *lr asks for every suffix match: min_lr 0, warmup_lr 1e-6, min_lr 1e-7 count again
    c("*lr<1e-4", "trainer", "trainer_low", "hydra", "sched_only", "lr_null", "alias_exact", "run_trainer", "run_low"),
    c("1e-5<lr<1e-3", "trainer_low", "detectron2", "alias_exact", "run_low"),
    c("lr=0.001", "trainer", "ednaml", "run_trainer"),
    # has lr and no resolved leaf is 1e-3 (lr_null's null is its lr; nolr has none)
    c("lr!=0.001", "trainer_low", "detectron2", "hydra", "sched_only", "lr_null", "alias_exact", "run_low"),
    c("lr=null", "lr_null"),
    # only EdnaML's "1e-3" is a string leaf
    c("lr~^1e", "ednaml"),
    c("lr!~^1e", "trainer", "trainer_low", "detectron2", "hydra", "sched_only", "lr_null", "alias_exact",
      "run_trainer", "run_low"),
    # aliases: learning_rate is alias_exact's exact lr; without them its warmup_lr is the fallback
    c("lr>1e-4", "trainer", "ednaml", "hydra", "sched_only", "alias_exact", "run_trainer"),
    c("lr>1e-4", "trainer", "ednaml", "hydra", "sched_only", "run_trainer", aliases=False),
    c("learning_rate<1e-3", "alias_exact", "trainer_low", "detectron2", "sched_only", "run_low"),
    # dotted keys: earlier segments by suffix, the last by the two tiers
    c("optimizer.lr<1e-4", "trainer_low", "run_low"),
    c("optimizer.lr=0.001", "trainer", "ednaml", "run_trainer"),
    c("scheduler.lr<1e-5", "trainer", "trainer_low", "hydra", "sched_only", "lr_null", "alias_exact",
      "run_trainer", "run_low"),
    c("base_lr<1e-3", "detectron2"),
    c("min_lr=0", "trainer", "trainer_low", "run_trainer", "run_low"),
    # inside the exact segment MODEL
    c("model=resnet18", "ednaml"),
    # runs: a metric compares last and best; .last only the last epoch
    c("val_acc>0.9", "run_trainer", "run_low"),
    c("val_acc.last>0.9", "run_trainer"),
    c("lr<1e-4 val_acc>0.9", "run_low"),
    c("kind=run lr<1e-3", "run_low"),
]

#: sorting by a key uses the leaves it resolves to (lr_null has no number: it sorts last)
SORT_CASES: list[SortCase] = [
    SortCase("kind=config min_lr", ("lr",), None, ("sched_only", "trainer_low", "trainer", "hydra", "lr_null")),
    SortCase("kind=config min_lr", ("-lr",), None, ("sched_only", "hydra", "trainer", "trainer_low", "lr_null")),
]
