"""The trainer's config schema (version 1): dataclasses, defaults, validation, overrides.

A config is a plain mapping (parsed YAML/JSON). :func:`load_config` checks it
against the schema below and returns a :class:`TrainerConfig` with every default
filled in; :func:`to_dict` turns that back into the fully resolved mapping that a
run folder's ``config.yaml`` holds. Errors are one line and name the key:
unknown keys suggest the nearest valid one, type errors name the value and the
expected type, and a config written for another tool is told apart from a
trainer config with a typo ("not a trainer config: missing model.name").

Five lines are enough to train::

    model: {name: resnet18}
    data: {dataset: digits, img_size: 32, batch_size: 64}
    optimizer: {name: adamw, lr: 1e-3}
    scheduler: {name: cosine}
    train: {epochs: 2, device: auto}

This module imports neither torch nor timm, so validating a config is instant.
The schema is documented key by key in docs/trainer-config.md.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from ednaquery.documents import parse_number
from trainer.errors import ConfigError

SCHEMA_VERSION = 1

SCHEDULERS = ("none", "constant", "step", "multistep", "exponential", "cosine", "cosine_restarts",
              "cyclic", "onecycle", "linear", "plateau")
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5")
BUILTIN_DATASETS = ("digits", "fashion_mnist", "fake", "synthetic_regression")

# Tasks (``task:``): what the model predicts, which losses fit it, what evaluation logs, what decides best.pt.
TASKS = ("classification", "regression", "embedding")
TASK_LOSSES = {"classification": ("ce", "focal"), "regression": ("mse", "l1", "huber"),
               "embedding": ("contrastive", "triplet", "supcon")}
DEFAULT_LOSS = {"classification": "ce", "regression": "mse", "embedding": "supcon"}
TASK_METRICS = {
    "classification": (*EPOCH_METRICS, "val_balanced_acc", "val_macro_f1", "val_softmax_std"),
    "regression": ("train_loss", "val_loss", "val_mae", "val_rmse", "val_r2"),
    "embedding": ("train_loss", "val_loss", "val_knn_acc"),
}
DEFAULT_BEST_METRIC = {"classification": "val_acc", "regression": "val_r2", "embedding": "val_knn_acc"}
HEAD_NORMS = ("none", "batch", "layer")
HEAD_POOLS = ("avg", "max", "token")
HEAD_ACTIVATIONS = ("none", "sigmoid", "clamp")

# Augmentations by name: each maps to its parameters and their defaults; ``p`` is the
# probability that the augmentation is applied to an image (or, for mixup/cutmix, a batch).
AUGMENTATIONS: dict[str, dict[str, Any]] = {
    "random_resized_crop": {"p": 1.0, "scale": [0.08, 1.0], "ratio": [0.75, 1.3333]},
    "hflip": {"p": 0.5},
    "vflip": {"p": 0.5},
    "color_jitter": {"p": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
    "brightness": {"p": 0.5, "brightness": 0.3},
    "contrast": {"p": 0.5, "contrast": 0.3},
    "hue_saturation": {"p": 0.5, "hue": 0.05, "saturation": 0.3},
    "gamma": {"p": 0.5, "gamma": [0.8, 1.25]},
    "rgb_shift": {"p": 0.5, "shift": 20},
    "channel_shuffle": {"p": 0.1},
    "blur": {"p": 0.2, "sigma": [0.1, 2.0], "kernel_size": 3},
    "jpeg": {"p": 0.2, "quality": [50, 95]},
    "noise": {"p": 0.2, "std": 0.05},
    "random_erase": {"p": 0.25, "scale": [0.02, 0.33]},
    "mixup": {"p": 1.0, "alpha": 0.8},
    "cutmix": {"p": 1.0, "alpha": 1.0},
    "clahe": {"p": 0.5, "clip_limit": [1.0, 4.0], "tile_grid": 8},
    "median_blur": {"p": 0.2, "kernel_size": 3},
}
RGB_ONLY_AUGMENTATIONS = ("hue_saturation", "rgb_shift", "channel_shuffle")
BATCH_AUGMENTATIONS = ("mixup", "cutmix")
# data.sampler: how training batches draw their classes (trainer.engine.sampling)
SAMPLERS = ("none", "balanced", "sqrt", "weights")
# data.features: input feature -> channels it adds to the stack (trainer.engine.features)
FEATURES: dict[str, int] = {"rgb": 3, "gray": 1, "sobel": 1, "sobel_xy": 2, "fft": 1, "wavelet": 4,
                            "scalespace": 3}

# Short override names: ``epochs=5`` means ``train.epochs=5``.
SHORTHANDS = {
    "epochs": "train.epochs",
    "seed": "train.seed",
    "device": "train.device",
    "lr": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay",
    "img_size": "data.img_size",
    "batch_size": "data.batch_size",
    "dataset": "data.dataset",
    "fraction": "data.fraction",
    "workers": "data.workers",
}
# ``model=convnext_atto`` (a scalar for a whole section) means ``model.name=convnext_atto``.
NAMED_SECTIONS = ("model", "optimizer", "scheduler")


@dataclass
class ModelConfig:
    """``model:`` which timm model to build."""

    name: str = ""
    pretrained: str | bool | None = None
    num_classes: int | None = None
    patch_size: int | None = None
    drop_rate: float = 0.0
    drop_path_rate: float | None = None
    global_pool: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImbalanceConfig:
    """``data.imbalance:`` a reproducibly imbalanced training subset (validation untouched)."""

    ratio: float | None = None
    classes: list[int | str] | None = None
    seed: int = 0


@dataclass
class DataConfig:
    """``data:`` dataset, image size, batching and augmentation."""

    dataset: str = "digits"
    root: str | None = None
    img_size: int | list[int] = 32
    channels: int | None = None
    batch_size: int = 64
    eval_batch_size: int | None = None
    workers: int | None = None
    pin_memory: bool | None = None
    fraction: float = 1.0
    val_split: float = 0.2
    fake_samples: int = 1024
    mean: list[float] | None = None
    std: list[float] | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    sampler: str = "none"
    sampler_weights: list[float] | None = None
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    features: list[str] | None = None
    folds: int | None = None
    fold: int | None = None
    bootstrap: int | None = None
    targets: str | None = None
    # --- the prepared pipeline for image folders (trainer.engine.prepared; docs/trainer-data.md)
    pipeline: str = "prepared"
    crop_resize: str = "auto"
    stored_size: int | None = None
    crop_pct: float = 0.875
    cache_dir: str | None = None
    cache_max_gb: float | None = None


@dataclass
class OptimizerConfig:
    """``optimizer:`` any optimizer of timm.optim.create_optimizer_v2, plus clipping and accumulation."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] | None = None
    eps: float | None = None
    layer_decay: float | None = None
    filter_bias_and_bn: bool = True
    clip_grad: float | None = None
    clip_mode: str = "norm"
    accumulate_steps: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SchedulerConfig:
    """``scheduler:`` learning-rate schedule."""

    name: str = "cosine"
    interval: str = "auto"
    warmup_epochs: int = 0
    warmup_lr: float = 1e-6
    min_lr: float = 0.0
    decay_epochs: int | None = None
    decay_rate: float | None = None
    milestones: list[int] | None = None
    cycle_epochs: int | None = None
    cycle_mul: float = 1.0
    cycle_limit: int | None = None
    max_lr: float | None = None
    cyclic_mode: str = "triangular"
    pct_start: float = 0.3
    metric: str = "val_loss"
    mode: str = "auto"
    patience: int = 5
    threshold: float = 1e-4


@dataclass
class LossTermConfig:
    """One entry of ``loss.terms``: a loss by name and its weight in the sum."""

    name: str = ""
    weight: float = 1.0


@dataclass
class LossConfig:
    """``loss:`` which loss (or weighted sum of losses) and its parameters."""

    name: str = "ce"
    label_smoothing: float = 0.0
    class_weights: list[float] | str | None = None
    gamma: float = 2.0
    alpha: float | list[float] | None = None
    huber_delta: float = 1.0
    margin: float | None = None
    temperature: float = 0.1
    terms: list[LossTermConfig] = field(default_factory=list)


@dataclass
class HeadConfig:
    """``head:`` what sits on the backbone's pooled features (MLP, norm, output activation, embedding size)."""

    hidden: list[int] = field(default_factory=list)
    norm: str = "none"
    pool: str | None = None
    activation: str = "none"
    range: list[float] | None = None
    embed_dim: int = 128


@dataclass
class EarlyStoppingConfig:
    """``train.early_stopping:`` stop when a metric stops improving."""

    patience: int | None = None
    metric: str = "val_loss"
    min_delta: float = 0.0


@dataclass
class TrainConfig:
    """``train:`` the loop: epochs, device, precision, checkpoints."""

    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    amp: bool | str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    deterministic: bool = False
    eval_every: int = 1
    checkpoint_every: int = 1
    best_metric: str = "val_acc"
    log_every_steps: int = 0
    max_steps_per_epoch: int | None = None
    per_class_metrics: int = 20
    knn_k: int = 5
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)


@dataclass
class TrainerConfig:
    """A whole trainer config."""

    version: int = SCHEMA_VERSION
    name: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    task: str = "classification"
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def img_hw(self) -> tuple[int, int]:
        """The image size as (height, width)."""
        s = self.data.img_size
        return (s, s) if isinstance(s, int) else (s[0], s[1])


_METRICS = ", ".join(EPOCH_METRICS)
DOCS: dict[str, str] = {
    "version": "schema version (1)",
    "name": "free-form name of the experiment",
    "description": "free-form description",
    "tags": "free-form tags",
    "task": "classification | regression | embedding: what the model predicts (class scores, numbers, "
            "an L2-normalised embedding)",
    "model.name": "timm model name (required), e.g. resnet18, convnext_atto, vit_tiny_patch16_224",
    "model.pretrained": "path to a local weights file (.pth/.safetensors/.bin); there is no model hub here",
    "model.num_classes": "number of classes; null = taken from the dataset",
    "model.patch_size": "ViT-like models: patch size override (e.g. 4 or 8 for 32px images)",
    "model.drop_rate": "dropout before the classifier",
    "model.drop_path_rate": "stochastic depth rate; null = the model's default",
    "model.global_pool": "head pooling (avg, max, token...); null = the model's default",
    "model.kwargs": "extra keyword arguments for timm.create_model",
    "head.hidden": "widths of hidden layers between the pooled features and the output, e.g. [512, 256] "
                   "(Linear, norm, ReLU, dropout model.drop_rate each); [] = the output layer alone",
    "head.norm": "none | batch | layer: normalisation after each hidden layer (with no hidden layer: on the "
                 "pooled features)",
    "head.pool": "avg | max | token (token: transformers' class token); null = model.global_pool, else the "
                 "model's default",
    "head.activation": "regression: none | sigmoid | clamp: the output squashed (sigmoid) or clipped (clamp, "
                       "no gradient outside) into head.range",
    "head.range": "regression: [low, high] for sigmoid/clamp; null = [0, 1]",
    "head.embed_dim": "embedding: size of the projection head's output (L2-normalised)",
    "data.dataset": "digits | fashion_mnist | fake | synthetic_regression | imagefolder:<path>",
    "data.root": "folder holding the dataset's files (fashion_mnist's idx .gz files); null = the default",
    "data.img_size": "image size: an int (square) or [height, width]",
    "data.channels": "1 (greyscale) or 3 (RGB); null = the dataset's own",
    "data.batch_size": "training batch size",
    "data.eval_batch_size": "validation batch size; null = batch_size",
    "data.workers": "data loader worker processes; null = auto (prepared pipeline: the cores available to the "
                    "process; else 0 for in-memory data without per-image augmentation, else up to 8)",
    "data.pin_memory": "pin host memory for GPU copies; null = on with CUDA",
    "data.fraction": "fraction of the training set to use (0 < f <= 1), stratified by class (regression: a "
                     "seeded random subset)",
    "data.val_split": "validation fraction for datasets without their own split (digits, imagefolder)",
    "data.fake_samples": "fake dataset: number of training images (validation: a quarter of it)",
    "data.mean": "normalisation mean per channel (0..1); null = the model's pretrained config's (else ImageNet's)",
    "data.std": "normalisation std per channel (0..1); null = the model's pretrained config's (else ImageNet's)",
    "data.augment": "augmentations by name: a probability, true, or a mapping of parameters",
    "data.sampler": "class mix of training batches: none (the data's own) | balanced (equal classes) | sqrt "
                    "(shares ~ sqrt of class counts) | weights (shares ~ data.sampler_weights)",
    "data.sampler_weights": "sampler: weights: one relative share per class, in class order, e.g. [1, 1, 4]",
    "data.imbalance.ratio": "keep this fraction (0 < r <= 1) of the training images of data.imbalance.classes; "
                            "null = off",
    "data.imbalance.classes": "classes (names or indices) cut to the ratio; null = a long tail: class i keeps "
                              "ratio^(i/(C-1))",
    "data.imbalance.seed": "which images the subset keeps (independent of train.seed)",
    "data.features": "input channels computed on the device: a list of " + " | ".join(FEATURES)
                     + "; null = the image as loaded",
    "data.folds": "k-fold cross-validation: split the training set into K stratified folds (seed-independent); "
                  "null = off. The dataset's own validation/test split is never in a fold",
    "data.fold": "with data.folds: which fold (0..K-1) is this run's validation set; the other folds train",
    "data.bootstrap": "bagging: train on a bootstrap sample of the training set drawn with this seed (with "
                      "replacement, same size); out-of-bag indices go to the run's split.json. null = off",
    "data.targets": "regression with imagefolder:<path>: the CSV of targets (columns path, target...; paths "
                    "relative to the folder); null = <path>/targets.csv, else <path>.csv beside the folder",
    "data.pipeline": "imagefolder: prepared (decode once into a memory-mapped cache, crop and augment per batch "
                     "on the device; docs/trainer-data.md) | files (decode and squash every file each epoch)",
    "data.crop_resize": "prepared pipeline: where crops are resized to img_size: auto (device with a GPU, else "
                        "workers) | device | workers",
    "data.stored_size": "prepared pipeline: short side of the cached images; null = floor(img_size / crop_pct) "
                        "(256 for 224, 1.14x); every image is resized to it, aspect kept",
    "data.crop_pct": "prepared pipeline, evaluation: resize the short side to img_size / crop_pct, then "
                     "centre-crop (timm's 0.875)",
    "data.cache_dir": "prepared pipeline: cache folder; null = $EDNAQUERY_TRAINER_CACHE or "
                      "$XDG_CACHE_HOME/ednaquery/trainer (~/.cache/...)",
    "data.cache_max_gb": "prepared pipeline: size cap of the cache folder (least recently used caches evicted); "
                         "null = 100",
    "optimizer.name": "optimizer name (see `trainer optimizers`); sgd = momentum SGD, nesterov only if asked",
    "optimizer.lr": "learning rate",
    "optimizer.weight_decay": "weight decay (not applied to biases and norm layers)",
    "optimizer.momentum": "momentum (optimizers that have one)",
    "optimizer.nesterov": "sgd: use Nesterov momentum",
    "optimizer.betas": "Adam-like betas; null = the optimizer's default",
    "optimizer.eps": "epsilon; null = the optimizer's default",
    "optimizer.layer_decay": "layer-wise lr decay (ViT-like models); null = off",
    "optimizer.filter_bias_and_bn": "exempt biases and norm layers from weight decay",
    "optimizer.clip_grad": "gradient clipping threshold; null = off",
    "optimizer.clip_mode": "norm | value | agc",
    "optimizer.accumulate_steps": "gradient accumulation: one optimizer step every N batches",
    "optimizer.kwargs": "extra keyword arguments for the optimizer class",
    "scheduler.name": " | ".join(SCHEDULERS),
    "scheduler.interval": "auto | epoch | step: when the schedule advances; auto = per step for cosine, "
                          "cosine_restarts, linear, cyclic and onecycle, per epoch for the others",
    "scheduler.warmup_epochs": "epochs of linear warmup from warmup_lr to optimizer.lr; cosine and linear "
                               "decay over the epochs after it",
    "scheduler.warmup_lr": "lr at the start of warmup",
    "scheduler.min_lr": "lowest lr (cosine, cosine_restarts, linear, plateau); cyclic: the lower bound",
    "scheduler.decay_epochs": "step: decay every N epochs; null = a third of the epochs",
    "scheduler.decay_rate": "step/multistep/plateau factor (null = 0.1); exponential: per-epoch factor "
                            "(null = 0.9)",
    "scheduler.milestones": "multistep: the lr drops once this many epochs are done (torch's meaning); "
                            "null = [1/2, 3/4 of the epochs]",
    "scheduler.cycle_epochs": "cosine_restarts and cyclic: cycle length in epochs; null = a third of the epochs",
    "scheduler.cycle_mul": "cosine_restarts: cycle length multiplier",
    "scheduler.cycle_limit": "cosine_restarts: number of cycles; null = enough to cover the epochs",
    "scheduler.max_lr": "cyclic/onecycle: peak lr; null = optimizer.lr",
    "scheduler.cyclic_mode": "cyclic: triangular | triangular2 | exp_range",
    "scheduler.pct_start": "onecycle: fraction of the steps spent increasing the lr",
    "scheduler.metric": f"plateau: metric to watch ({_METRICS}; any name train.best_metric takes)",
    "scheduler.mode": "plateau: min | max | auto (max for accuracies, min for losses)",
    "scheduler.patience": "plateau: evaluations without improvement before the lr is cut",
    "scheduler.threshold": "plateau: relative improvement that counts",
    "loss.name": "classification: ce | focal; regression: mse | l1 | huber; embedding: contrastive | triplet "
                 "| supcon; the task's first (ce, mse) or supcon when not given",
    "loss.label_smoothing": "label smoothing (0 = off; ce and focal)",
    "loss.class_weights": "per-class loss weights: a list, 'balanced' (inverse class frequency), or null "
                          "(ce and focal)",
    "loss.gamma": "focal: focusing exponent; 0 = cross-entropy",
    "loss.alpha": "focal: a number (scales the loss) or one weight per class; null = 1",
    "loss.huber_delta": "huber: where the loss turns from quadratic to linear",
    "loss.margin": "triplet and contrastive: margin on the distance of L2-normalised embeddings; null = 0.2 "
                   "(triplet), 0.5 (contrastive)",
    "loss.temperature": "supcon: softmax temperature",
    "loss.terms": "a weighted sum of losses instead of loss.name: [{name: ce, weight: 1.0}, {name: focal, "
                  "weight: 0.5}]; each term is also logged alone (train_loss_<name>, val_loss_<name>); terms "
                  "share the section's parameters",
    "train.epochs": "number of epochs",
    "train.seed": "random seed (model init, shuffling, augmentation)",
    "train.device": "auto | cpu | cuda | cuda:N (auto = the GPU where there is one)",
    "train.threads": "CPU threads for torch (0 = torch's default); 1 is safe on a busy machine",
    "train.amp": "auto | bf16 | fp16 | true | false (auto = bf16 on CUDA, off on CPU)",
    "train.channels_last": "channels-last memory format; null = on with CUDA",
    "train.compile": "torch.compile the model",
    "train.deterministic": "ask torch for deterministic algorithms (slower on GPU)",
    "train.eval_every": "evaluate every N epochs (the last epoch is always evaluated)",
    "train.checkpoint_every": "write last.pt every N epochs (0 = only at the end or on interrupt)",
    "train.best_metric": f"metric that decides best.pt ({_METRICS}, val_balanced_acc, val_macro_f1; "
                         "regression: val_r2 (its default), val_mae, val_rmse, val_loss; embedding: val_knn_acc "
                         "(its default), val_loss; with loss.terms also train_loss_<term>, val_loss_<term>)",
    "train.log_every_steps": "also write a metrics line every N optimizer steps (0 = per epoch only)",
    "train.max_steps_per_epoch": "cap the batches per epoch (smoke tests, benchmarks); null = all",
    "train.per_class_metrics": "classification: log val_recall_<class> and val_precision_<class> when there "
                               "are at most this many classes (0 = never); balanced accuracy and macro-F1 "
                               "are always logged",
    "train.knn_k": "embedding: neighbours of the k-NN accuracy (val_knn_acc, leave-one-out on the validation "
                   "set)",
    "train.early_stopping.patience": "evaluations without improvement before stopping; null = off",
    "train.early_stopping.metric": f"metric to watch ({_METRICS}; any name train.best_metric takes)",
    "train.early_stopping.min_delta": "smallest change that counts as an improvement",
}
"""One line of documentation for every leaf key of the schema (docs/trainer-config.md mirrors it)."""


# ------------------------------------------------------------------ schema introspection


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def schema_keys(cls: type = TrainerConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, sections included (``model``, ``model.name``...)."""
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        keys.append(key)
        tp = _hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(schema_keys(tp, key + "."))
    return keys


def schema_docs(cls: type = TrainerConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, description) for every leaf key: the documentation table."""
    rows: list[tuple[str, str, Any, str]] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            rows.extend(schema_docs(tp, key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore
        rows.append((key, _type_name(tp), default, DOCS.get(key, "")))
    return rows


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        (arg,) = typing.get_args(tp)
        return f"list of {_type_name(arg)}"
    if origin is dict or tp is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):  # list entries such as loss.terms' {name, weight}
        return "{" + ", ".join(f.name for f in dataclasses.fields(tp)) + "}"
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(tp, getattr(tp, "__name__",
                                                                                              str(tp)))


# ------------------------------------------------------------------ validation


class _Mismatch(Exception):
    pass


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; return it converted (int -> float, '1e-3' -> 0.001)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except _Mismatch:
                continue
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        return _build(tp, value, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            return float(value)
        # YAML 1.1 reads "1e-3" (no dot) as a string: accept what the one number rule calls a number.
        if isinstance(value, str) and (n := parse_number(value)) is not None:
            return float(n)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is list:
        (arg,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [_coerce(v, arg, key) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return copy.deepcopy(dict(value))
    raise TypeError(f"unsupported schema type {tp!r} for {key}")  # a bug in the schema, not the config


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown_key_error(key: str, section_prefix: str, cls: type) -> ConfigError:
    local = [f.name for f in dataclasses.fields(cls)]
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, local, n=1, cutoff=0.5)
    if close:
        hint = f"; did you mean {section_prefix + close[0]!r}?"
    else:
        everywhere = schema_keys()
        by_leaf = [k for k in everywhere if k.rsplit(".", 1)[-1] == name]
        if by_leaf:
            hint = f"; did you mean {by_leaf[0]!r}?"
        else:
            hint = _suggest(key, everywhere) or _suggest(name, everywhere)
            if not hint:
                hint = f"; valid keys here: {', '.join(local)}"
    return ConfigError(f"unknown key {key!r} in trainer config{hint}")


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"key {prefix}{key!r} must be a string")
        if key not in names:
            raise _unknown_key_error(prefix + key, prefix, cls)
    kwargs = {}
    for name, value in raw.items():
        tp = hints[name]
        key = prefix + name
        try:
            kwargs[name] = _coerce(value, tp, key)
        except _Mismatch:
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_show(value)} "
                              f"({type(value).__name__})") from None
    return cls(**kwargs)


def _check_positive(key: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero) or (isinstance(value, float) and math.isnan(value)):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _check_choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}{_suggest(value, list(choices))}")


def normalize_augment(augment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``data.augment`` with every enabled augmentation as a full parameter mapping.

    ``hflip: 0.5`` -> ``{"p": 0.5}``; ``mixup: true`` -> the defaults; ``false``/``0`` drops it.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, spec in augment.items():
        key = f"data.augment.{name}"
        if name not in AUGMENTATIONS:
            hint = _suggest(str(name), list(AUGMENTATIONS)) or f"; known: {', '.join(AUGMENTATIONS)}"
            raise ConfigError(f"unknown augmentation {key!r}{hint}")
        defaults = AUGMENTATIONS[name]
        if spec is None or spec is False:
            continue
        if spec is True:
            params = dict(defaults)
        elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
            params = dict(defaults, p=float(spec))
        elif isinstance(spec, dict):
            params = dict(defaults)
            for pname, pval in spec.items():
                if pname not in defaults:
                    raise ConfigError(f"unknown parameter {key}.{pname}{_suggest(str(pname), list(defaults))}; "
                                      f"{name} takes {', '.join(defaults)}")
                want = defaults[pname]
                try:
                    if isinstance(want, list):
                        pval = [_coerce(v, float, key) for v in pval]
                        if len(pval) != len(want):
                            raise _Mismatch
                        if all(isinstance(v, int) for v in want):
                            pval = [int(v) for v in pval]
                    elif isinstance(want, int) and not isinstance(want, bool):
                        pval = _coerce(pval, int, key)
                    else:
                        pval = _coerce(pval, float, key)
                except (_Mismatch, TypeError):
                    expected = f"a list of {len(want)} numbers" if isinstance(want, list) else "a number"
                    raise ConfigError(f"{key}.{pname}: expected {expected}, got {_show(pval)}") from None
                params[pname] = pval
        else:
            raise ConfigError(f"{key}: expected a probability, true/false or a mapping of parameters, "
                              f"got {_show(spec)}")
        p = params["p"]
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{key}: probability must be between 0 and 1, got {p}")
        if p > 0:
            out[name] = params
    return out


def parse_device(device: str) -> str:
    """Validate ``train.device``; returns it unchanged (auto, cpu, cuda, cuda:N)."""
    if device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", device):
        return device
    raise ConfigError(f"train.device: {device!r} is not auto, cpu, cuda or cuda:N")


def _validate_inputs(d: DataConfig) -> None:
    """data.sampler, data.sampler_weights, data.imbalance and data.features."""
    _check_choice("data.sampler", d.sampler, SAMPLERS)
    if d.sampler == "weights":
        w = d.sampler_weights
        if not w or any(v < 0 or math.isnan(v) for v in w) or sum(w) <= 0:
            raise ConfigError(f"data.sampler_weights: sampler: weights needs a list of non-negative per-class "
                              f"shares with a positive sum, e.g. [1, 1, 4]; got {_show(w)}")
    elif d.sampler_weights is not None:
        raise ConfigError(f"data.sampler_weights: only used with data.sampler: weights "
                          f"(data.sampler is {d.sampler!r})")
    im = d.imbalance
    if im.ratio is not None and not 0.0 < im.ratio <= 1.0:
        raise ConfigError(f"data.imbalance.ratio: must be in (0, 1], got {im.ratio}")
    if im.classes is not None:
        if im.ratio is None:
            raise ConfigError("data.imbalance.classes: set data.imbalance.ratio too (e.g. ratio: 0.05)")
        if not im.classes:
            raise ConfigError("data.imbalance.classes: an empty list; name classes or use null (a long tail)")
        for c in im.classes:
            if isinstance(c, int) and c < 0:
                raise ConfigError(f"data.imbalance.classes: class index must be >= 0, got {c}")
    if d.features is not None:
        if not d.features:
            raise ConfigError(f"data.features: an empty list; use null (the image) or some of "
                              f"{', '.join(FEATURES)}")
        for name in d.features:
            _check_choice("data.features", name, list(FEATURES))
        dup = sorted({n for n in d.features if d.features.count(n) > 1})
        if dup:
            raise ConfigError(f"data.features: {', '.join(dup)} listed twice")
def _check_resampling(d: DataConfig) -> None:
    """``data.folds``/``data.fold`` go together (fold in 0..K-1); ``data.bootstrap`` is a seed >= 0."""
    if d.folds is not None and d.folds < 2:
        raise ConfigError(f"data.folds: k-fold needs at least 2 folds, got {d.folds}")
    if d.folds is not None and d.fold is None:
        raise ConfigError(f"data.fold: data.folds is {d.folds}, so data.fold must say which fold validates "
                          f"(0..{d.folds - 1}); `trainer cv` queues them all")
    if d.fold is not None and d.folds is None:
        raise ConfigError("data.fold: needs data.folds (the number of folds), e.g. data.folds: 5")
    if d.folds is not None and d.fold is not None and not 0 <= d.fold < d.folds:
        raise ConfigError(f"data.fold: must be in 0..{d.folds - 1} for data.folds: {d.folds}, got {d.fold}")
    _check_positive("data.bootstrap", d.bootstrap, allow_zero=True)


def task_metrics(cfg: TrainerConfig) -> tuple[str, ...]:
    """The epoch metrics a run of this config logs and may select on (best.pt, plateau, early stopping)."""
    terms = loss_term_keys(cfg.loss)
    return (*TASK_METRICS[cfg.task], *(f"{split}_loss_{k}" for split in ("train", "val") for k in terms))


def loss_term_keys(loss: LossConfig) -> list[str]:
    """Metric suffixes of ``loss.terms`` (``train_loss_<key>``): each term's name, numbered on repeats (focal_2)."""
    keys: list[str] = []
    for term in loss.terms:
        key, n = term.name, 1
        while key in keys:
            n += 1
            key = f"{term.name}_{n}"
        keys.append(key)
    return keys


def _validate_task(cfg: TrainerConfig, given: frozenset[str]) -> None:
    """``task``, ``loss`` and ``head``: choices per task, and the task's defaults for keys the config leaves out."""
    task, loss, head, t = cfg.task, cfg.loss, cfg.head, cfg.train
    _check_choice("task", task, TASKS)
    allowed = TASK_LOSSES[task]
    if "loss.name" not in given and loss.name == "ce":
        loss.name = DEFAULT_LOSS[task]
    if "train.best_metric" not in given and t.best_metric == "val_acc":
        t.best_metric = DEFAULT_BEST_METRIC[task]
    if loss.name not in allowed:
        everything = [n for names in TASK_LOSSES.values() for n in names]
        if loss.name in everything:
            raise ConfigError(f"loss.name: {loss.name!r} is not a {task} loss; use one of {', '.join(allowed)}")
        _check_choice("loss.name", loss.name, allowed)
    for i, term in enumerate(loss.terms):
        key = f"loss.terms[{i}]"
        if not term.name:
            raise ConfigError(f"{key}.name: missing; one of {', '.join(allowed)}")
        if term.name not in allowed:
            raise ConfigError(f"{key}.name: {term.name!r} is not one of {', '.join(allowed)}"
                              f"{_suggest(term.name, list(allowed))}")
        if not math.isfinite(term.weight) or term.weight < 0:
            raise ConfigError(f"{key}.weight: must be a number >= 0, got {term.weight}")
    _check_positive("loss.gamma", loss.gamma, allow_zero=True)
    if isinstance(loss.alpha, float):
        _check_positive("loss.alpha", loss.alpha)
    elif isinstance(loss.alpha, list) and any(a < 0 for a in loss.alpha):
        raise ConfigError(f"loss.alpha: per-class weights must be >= 0, got {loss.alpha!r}")
    _check_positive("loss.huber_delta", loss.huber_delta)
    _check_positive("loss.margin", loss.margin)
    _check_positive("loss.temperature", loss.temperature)
    if task != "classification":
        if loss.label_smoothing:
            raise ConfigError(f"loss.label_smoothing: only for classification, not {task}")
        if loss.class_weights is not None:
            raise ConfigError(f"loss.class_weights: only for classification, not {task}")
        mixing = [n for n in BATCH_AUGMENTATIONS if n in normalize_augment(cfg.data.augment)]
        if mixing:
            raise ConfigError(f"data.augment.{mixing[0]}: mixes labels, so only for classification, not {task}")
    if cfg.data.dataset == "synthetic_regression" and task != "regression":
        raise ConfigError("data.dataset: synthetic_regression has numeric targets; set task: regression")
    if task == "regression" and not (cfg.data.dataset == "synthetic_regression"
                                     or cfg.data.dataset.startswith("imagefolder:")):
        raise ConfigError(f"data.dataset: regression needs numeric targets: synthetic_regression or "
                          f"imagefolder:<path> with a targets CSV, not {cfg.data.dataset!r}")
    if cfg.data.targets is not None and not (task == "regression" and cfg.data.dataset.startswith("imagefolder:")):
        raise ConfigError("data.targets: a targets CSV is for task: regression with data.dataset: imagefolder:<path>")
    if task == "regression" and cfg.data.sampler != "none":
        raise ConfigError(f"data.sampler: {cfg.data.sampler} balances classes; regression has none (use none)")
    if task == "regression" and cfg.data.imbalance.ratio is not None:
        raise ConfigError("data.imbalance: cuts classes; regression has none (leave data.imbalance.ratio null)")

    if any(w < 1 for w in head.hidden):
        raise ConfigError(f"head.hidden: layer widths must be >= 1, got {head.hidden!r}")
    _check_choice("head.norm", head.norm, HEAD_NORMS)
    if head.pool is not None:
        _check_choice("head.pool", head.pool, HEAD_POOLS)
        if cfg.model.global_pool is not None and cfg.model.global_pool != head.pool:
            raise ConfigError(f"head.pool: {head.pool!r} contradicts model.global_pool "
                              f"{cfg.model.global_pool!r}; set one of them")
    _check_choice("head.activation", head.activation, HEAD_ACTIVATIONS)
    if head.activation != "none" and task != "regression":
        raise ConfigError(f"head.activation: {head.activation} bounds regression outputs; {task} needs none")
    if head.range is not None:
        if len(head.range) != 2 or not head.range[0] < head.range[1]:
            raise ConfigError(f"head.range: expected [low, high] with low < high, got {head.range!r}")
        if head.activation == "none":
            raise ConfigError("head.range: needs head.activation sigmoid or clamp")
    _check_positive("head.embed_dim", head.embed_dim)
    _check_positive("train.per_class_metrics", t.per_class_metrics, allow_zero=True)
    _check_positive("train.knn_k", t.knn_k)


def _validate(cfg: TrainerConfig, given: frozenset[str] = frozenset()) -> None:
    if cfg.version > SCHEMA_VERSION or cfg.version < 1:
        raise ConfigError(f"version: this trainer reads config version {SCHEMA_VERSION}, got {cfg.version}")
    m, d, o, s, loss, t = cfg.model, cfg.data, cfg.optimizer, cfg.scheduler, cfg.loss, cfg.train
    if not m.name.strip():
        raise ConfigError("model.name: must name a timm model, e.g. resnet18")
    if m.pretrained is True:
        raise ConfigError("model.pretrained: no model hub here: pass a local weights file "
                          "(model.pretrained: /path/to/weights.safetensors)")
    if m.pretrained is False:
        m.pretrained = None
    _check_positive("model.num_classes", m.num_classes)
    _check_positive("model.patch_size", m.patch_size)
    _check_positive("model.drop_rate", m.drop_rate, allow_zero=True)
    _check_positive("model.drop_path_rate", m.drop_path_rate, allow_zero=True)

    if not (d.dataset in BUILTIN_DATASETS or d.dataset.startswith("imagefolder:")):
        raise ConfigError(f"data.dataset: {d.dataset!r} is not one of {', '.join(BUILTIN_DATASETS)} or "
                          f"imagefolder:<path>{_suggest(d.dataset, list(BUILTIN_DATASETS) + ['imagefolder:'])}")
    if d.dataset.startswith("imagefolder:") and not d.dataset[len("imagefolder:"):].strip():
        raise ConfigError("data.dataset: imagefolder needs a path, e.g. imagefolder:/data/pets")
    size = [d.img_size] if isinstance(d.img_size, int) else d.img_size
    if len(size) not in (1, 2) or any(v < 1 for v in size):
        raise ConfigError(f"data.img_size: expected a positive int or [height, width], got {d.img_size!r}")
    if len(size) == 1:
        d.img_size = size[0]
    if d.channels not in (None, 1, 3):
        raise ConfigError(f"data.channels: expected 1 (greyscale) or 3 (RGB), got {d.channels!r}")
    _check_positive("data.batch_size", d.batch_size)
    _check_positive("data.eval_batch_size", d.eval_batch_size)
    _check_positive("data.workers", d.workers, allow_zero=True)
    _check_positive("data.fake_samples", d.fake_samples)
    if not 0.0 < d.fraction <= 1.0:
        raise ConfigError(f"data.fraction: must be in (0, 1], got {d.fraction}")
    if not 0.0 < d.val_split < 1.0:
        raise ConfigError(f"data.val_split: must be in (0, 1), got {d.val_split}")
    for key, vec in (("data.mean", d.mean), ("data.std", d.std)):
        if vec is not None and len(vec) not in (1, 3):
            raise ConfigError(f"{key}: expected 1 or 3 values, got {vec!r}")
    _check_resampling(d)
    _check_choice("data.pipeline", d.pipeline, ("prepared", "files"))
    _check_choice("data.crop_resize", d.crop_resize, ("auto", "device", "workers"))
    _check_positive("data.stored_size", d.stored_size)
    _check_positive("data.cache_max_gb", d.cache_max_gb)
    if not 0.0 < d.crop_pct <= 1.0:
        raise ConfigError(f"data.crop_pct: must be in (0, 1], got {d.crop_pct}")
    aug = normalize_augment(d.augment)
    if ("mixup" in aug or "cutmix" in aug) and d.batch_size % 2:
        raise ConfigError(f"data.batch_size: mixup/cutmix need an even batch size, got {d.batch_size}")
    _validate_inputs(d)
    if d.channels == 1:
        for name in RGB_ONLY_AUGMENTATIONS:
            if name in aug:
                raise ConfigError(f"data.augment.{name}: needs RGB images; set data.channels: 3")

    _check_positive("optimizer.lr", o.lr)
    _check_positive("optimizer.weight_decay", o.weight_decay, allow_zero=True)
    _check_positive("optimizer.momentum", o.momentum, allow_zero=True)
    _check_positive("optimizer.clip_grad", o.clip_grad)
    _check_choice("optimizer.clip_mode", o.clip_mode, ("norm", "value", "agc"))
    _check_positive("optimizer.accumulate_steps", o.accumulate_steps)
    if o.betas is not None and len(o.betas) not in (2, 3):
        raise ConfigError(f"optimizer.betas: expected 2 or 3 numbers, got {o.betas!r}")

    _check_choice("scheduler.name", s.name, SCHEDULERS)
    _check_choice("scheduler.interval", s.interval, ("auto", "epoch", "step"))
    if s.name == "plateau" and s.interval == "step":
        raise ConfigError("scheduler.interval: plateau steps once per evaluation; use interval: epoch or auto")
    _check_positive("scheduler.warmup_epochs", s.warmup_epochs, allow_zero=True)
    _check_positive("scheduler.min_lr", s.min_lr, allow_zero=True)
    _check_positive("scheduler.decay_epochs", s.decay_epochs)
    _check_positive("scheduler.decay_rate", s.decay_rate)
    _check_positive("scheduler.cycle_epochs", s.cycle_epochs)
    _check_positive("scheduler.cycle_limit", s.cycle_limit)
    _check_positive("scheduler.max_lr", s.max_lr)
    _check_choice("scheduler.cyclic_mode", s.cyclic_mode, ("triangular", "triangular2", "exp_range"))
    if not 0.0 < s.pct_start < 1.0:
        raise ConfigError(f"scheduler.pct_start: must be in (0, 1), got {s.pct_start}")
    _check_choice("scheduler.mode", s.mode, ("auto", "min", "max"))

    if not 0.0 <= loss.label_smoothing < 1.0:
        raise ConfigError(f"loss.label_smoothing: must be in [0, 1), got {loss.label_smoothing}")
    if isinstance(loss.class_weights, str) and loss.class_weights != "balanced":
        raise ConfigError(f"loss.class_weights: expected a list of numbers or 'balanced', "
                          f"got {loss.class_weights!r}")

    _check_positive("train.epochs", t.epochs)
    _check_positive("train.threads", t.threads, allow_zero=True)
    parse_device(t.device)
    if isinstance(t.amp, str):
        _check_choice("train.amp", t.amp, ("auto", "bf16", "fp16"))
    _check_positive("train.eval_every", t.eval_every)
    _check_positive("train.checkpoint_every", t.checkpoint_every, allow_zero=True)
    _check_positive("train.log_every_steps", t.log_every_steps, allow_zero=True)
    _check_positive("train.max_steps_per_epoch", t.max_steps_per_epoch)
    _validate_task(cfg, given)
    metrics = task_metrics(cfg)
    _check_choice("scheduler.metric", s.metric, metrics)
    _check_choice("train.best_metric", t.best_metric, metrics)
    _check_choice("train.early_stopping.metric", t.early_stopping.metric, metrics)
    _check_positive("train.early_stopping.patience", t.early_stopping.patience)


def load_config(raw: Any) -> TrainerConfig:
    """Validate a parsed config mapping; return it with every default filled in.

    Raises :class:`ConfigError` with a one-line message naming the offending key.
    """
    if isinstance(raw, TrainerConfig):
        return copy.deepcopy(raw)
    if not isinstance(raw, dict):
        raise ConfigError(f"not a trainer config: expected a mapping, got {type(raw).__name__}")
    model = raw.get("model")
    if isinstance(model, str):  # ``model: resnet18`` is shorthand for ``model: {name: resnet18}``
        raw = dict(raw, model={"name": model})
        model = raw["model"]
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ConfigError("not a trainer config: missing model.name")
    cfg = _build(TrainerConfig, raw, "")
    _validate(cfg, frozenset(_dotted(raw)))
    return cfg


def to_dict(cfg: TrainerConfig) -> dict[str, Any]:
    """The fully resolved config (every key, defaults filled in) as plain data."""
    return dataclasses.asdict(cfg)


def _dotted(value: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, dict) and v:
            out.update(_dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def default_keys(resolved: dict[str, Any]) -> list[str]:
    """The dotted keys of a resolved config that hold the schema's default value.

    Written to run.json so that ``ednaquery diff RUN CONFIG`` can tell a key the config leaves
    out (its effective value is the default) from a real difference.
    """
    defaults = _dotted(to_dict(TrainerConfig()))
    return [k for k, v in _dotted(resolved).items() if k in defaults and defaults[k] == v
            and type(defaults[k]) is type(v)]


# ------------------------------------------------------------------ overrides


def parse_value(text: str) -> Any:
    """An override's value: YAML scalars and flow collections (``[32, 48]``), numbers like ``3e-4``."""
    import yaml

    stripped = text.strip()
    number = parse_number(stripped)  # the one number rule (ednaquery.documents), as the loader's
    if number is not None:
        return number
    try:
        value = yaml.safe_load(stripped) if stripped else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse override value {text!r}: {str(exc).splitlines()[0]}") from None
    return value


def resolve_key(key: str) -> str:
    """Expand a shorthand override key (``epochs`` -> ``train.epochs``) and check it exists."""
    key = SHORTHANDS.get(key, key)
    if key.startswith("data.augment."):
        return key  # augmentation names are checked when the config is validated
    valid = schema_keys()
    if key in valid:
        return key
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):  # free-form mappings (model.kwargs.foo) take any key below
        head = ".".join(parts[:i])
        if head in ("model.kwargs", "optimizer.kwargs", "data.augment"):
            return key
    # the deepest schema section the key lies in decides the suggestion
    cls: Any = TrainerConfig
    prefix = ""
    for part in parts[:-1]:
        sub = _hints(cls).get(part) if dataclasses.is_dataclass(cls) else None
        if not dataclasses.is_dataclass(sub):
            break
        cls, prefix = sub, prefix + part + "."
    if prefix:
        raise _unknown_key_error(key, prefix, cls)
    shorthand = difflib.get_close_matches(key, list(SHORTHANDS), n=1, cutoff=0.6)
    hint = f"; did you mean {shorthand[0]!r}?" if shorthand else (_suggest(key, valid) or
                                                                 _suggest(parts[-1], valid))
    raise ConfigError(f"unknown key {key!r} in override{hint}")


def apply_overrides(raw: dict, overrides: list[str] | dict[str, Any]) -> dict:
    """A new config mapping with dotted overrides applied (the input is not modified).

    ``overrides`` is ``["optimizer.lr=3e-4", "epochs=5"]`` or ``{"optimizer.lr": 3e-4}``.
    A scalar for a named section sets its name: ``model=convnext_atto``.
    """
    out = copy.deepcopy(raw) if raw else {}
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value (e.g. optimizer.lr=3e-4)")
            key, _, value = item.partition("=")
            items.append((key.strip(), parse_value(value)))
    for key, value in items:
        if key in NAMED_SECTIONS and not isinstance(value, dict):
            key = f"{key}.name"
        path = resolve_key(key).split(".")
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part in NAMED_SECTIONS:
                child = {"name": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {part!r} holds {_show(child)}, not a mapping")
            node[part] = child = dict(child)
            node = child
        node[path[-1]] = value
    return out
