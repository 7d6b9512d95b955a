"""The model for a task: a timm backbone and, where the config asks for one, a head of our own.

A plain classification config (no ``head.hidden``, ``head.norm: none``) gets timm's model
unchanged, classifier included, as before. Otherwise the backbone is built with
``num_classes=0`` (timm's pooled features, ``head.pool`` as its ``global_pool``; dropout
``model.drop_rate`` still applies to them) and :class:`TaskHead` sits on top:

- ``head.hidden: [512, 256]``: Linear, norm (``head.norm``), ReLU, dropout for each width;
  with no hidden layer, ``head.norm`` normalises the pooled features;
- then a Linear to the outputs: the classes, the regression targets, or ``head.embed_dim``;
- regression: ``head.activation`` ``sigmoid`` maps into ``head.range`` (default [0, 1]) as
  ``low + (high - low) * sigmoid(z)``, ``clamp`` clips into it (no gradient outside);
- embedding: the output is L2-normalised (a projection head).

The weights live under ``backbone.*`` and ``head.*`` in a checkpoint: load one with the model
that :func:`build_task_model` makes from the run's config.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from trainer.engine.config import TrainerConfig
from trainer.engine.data import DataBundle
from trainer.engine.features import feature_channels
from trainer.engine.model import build_model, model_mean_std

__all__ = ["HeadModel", "TaskHead", "build_task_model", "needs_head", "num_outputs"]


class TaskHead(nn.Module):
    """MLP head on pooled features: hidden layers, output layer, output activation or L2 normalisation."""

    def __init__(self, in_features: int, out_features: int, *, hidden: list[int], norm: str = "none",
                 dropout: float = 0.0, activation: str = "none", value_range: tuple[float, float] = (0.0, 1.0),
                 normalize: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        if not hidden and norm != "none":
            layers.append(_norm(norm, width))
        for h in hidden:
            layers += [nn.Linear(width, h), _norm(norm, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width, out_features)
        self.activation = activation
        self.low, self.high = float(value_range[0]), float(value_range[1])
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.out(self.mlp(x))
        if self.activation == "sigmoid":
            z = self.low + (self.high - self.low) * torch.sigmoid(z)
        elif self.activation == "clamp":
            z = z.clamp(self.low, self.high)
        if self.normalize:
            z = F.normalize(z.float(), dim=1)
        return z


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class HeadModel(nn.Module):
    """A timm backbone (``num_classes=0``: pooled features) followed by a :class:`TaskHead`."""

    def __init__(self, backbone: nn.Module, head: TaskHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.pretrained_cfg = getattr(backbone, "pretrained_cfg", None)  # normalisation (model_mean_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def needs_head(cfg: TrainerConfig) -> bool:
    """True unless the task is classification with timm's own classifier (no hidden layers, no norm)."""
    return cfg.task != "classification" or bool(cfg.head.hidden) or cfg.head.norm != "none"


def num_outputs(cfg: TrainerConfig, num_classes: int) -> int:
    """Width of the model's output: classes, regression targets, or the embedding size."""
    if cfg.task == "embedding":
        return cfg.head.embed_dim
    if cfg.task == "regression":
        return num_classes  # the data's number of targets
    return cfg.model.num_classes or num_classes


def build_task_model(cfg: TrainerConfig, *, num_classes: int, in_chans: int, img_size: tuple[int, int]
                     ) -> nn.Module:
    """The model ``cfg`` trains: timm's classifier as is, or a backbone with a :class:`TaskHead`.

    ``num_classes`` is the dataset's: classes, or targets for regression.
    """
    model_cfg = cfg.model
    if cfg.head.pool is not None:
        model_cfg = dataclasses.replace(model_cfg, global_pool=cfg.head.pool)
    if not needs_head(cfg):
        return build_model(model_cfg, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
    backbone = build_model(dataclasses.replace(model_cfg, num_classes=None), num_classes=0, in_chans=in_chans,
                           img_size=img_size)
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():  # the pooled width (num_features is not it for every model)
        features = int(backbone(torch.zeros(1, in_chans, *img_size)).flatten(1).shape[1])
    backbone.train(was_training)
    head = cfg.head
    rng = (head.range[0], head.range[1]) if head.range is not None else (0.0, 1.0)
    return HeadModel(backbone, TaskHead(features, num_outputs(cfg, num_classes), hidden=list(head.hidden),
                                        norm=head.norm, dropout=cfg.model.drop_rate, activation=head.activation,
                                        value_range=rng, normalize=cfg.task == "embedding"))


def model_for(cfg: TrainerConfig, data: DataBundle) -> tuple[nn.Module, int, tuple[tuple[float, ...], ...] | None]:
    """(the model ``cfg`` trains on ``data``, its input channels after ``data.features``, the pretrained
    mean/std to normalise with, or None when ``data.mean``/``data.std`` are set): one recipe for runs and
    the finders."""
    in_chans = feature_channels(cfg.data.features, data.channels)
    model = build_task_model(cfg, num_classes=data.num_classes, in_chans=in_chans, img_size=data.img_size)
    mean_std = None if cfg.data.mean or cfg.data.std else model_mean_std(model)
    return model, in_chans, mean_std
