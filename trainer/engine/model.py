"""Model creation: any timm model by name, sized for the dataset.

``timm.create_model`` gets the number of classes (from the dataset unless
``model.num_classes`` says otherwise), the input channels, dropout and stochastic
depth, and, for models that take one (ViT-like), the image size, so non-square
``[h, w]`` works wherever the architecture allows it. Pretrained weights come only
from a local file (timm's ``pretrained_cfg_overlay=dict(file=...)``): there is no
model hub here, and asking for weights by name says so.
"""
from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import torch

from trainer.engine.config import ModelConfig
from trainer.errors import ConfigError

log = logging.getLogger(__name__)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_name(name: str) -> None:
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models() for the names"
    raise ConfigError(f"model.name: unknown timm model {name!r}{hint}")


def _weights_file(pretrained: str | bool | None) -> str | None:
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True or not str(pretrained).strip():
        raise ConfigError("model.pretrained: no model hub here: pass a local weights file "
                          "(model.pretrained: /path/to/weights.safetensors)")
    path = Path(str(pretrained)).expanduser()
    if not path.is_file():
        looks_like_name = "/" not in str(pretrained) and path.suffix == ""
        if looks_like_name:
            raise ConfigError(f"model.pretrained: {pretrained!r} is not a file; no model hub here: "
                              f"pass a local weights file")
        raise ConfigError(f"model.pretrained: weights file {path} not found")
    return str(path)


def _classes_in_file(weights: str, name: str) -> int | None:
    """How many classes the classifier in a weights file has (None when it cannot tell).

    timm keeps a file's classifier only when the pretrained config's class count equals the
    model's; telling it the file's real count lets weights trained here (10 classes) load whole,
    while ImageNet weights (1000) still get a fresh head.
    """
    from timm.models import get_pretrained_cfg
    from timm.models._helpers import load_state_dict

    pcfg = get_pretrained_cfg(name)
    classifier = getattr(pcfg, "classifier", None) if pcfg is not None else None
    if not classifier:
        return None
    first = classifier if isinstance(classifier, str) else classifier[0]
    try:
        state = load_state_dict(weights)
    except Exception as exc:  # noqa: BLE001 - unreadable files get one clear message
        raise ConfigError(f"model.pretrained: cannot read weights from {weights}: {_first_line(exc)}") from None
    w = state.get(f"{first}.weight")
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.ndim >= 1 else None


def _patch_size(model: torch.nn.Module) -> tuple[int, int] | None:
    embed = getattr(model, "patch_embed", None)
    ps = getattr(embed, "patch_size", None)
    if ps is None:
        return None
    return (ps, ps) if isinstance(ps, int) else (int(ps[0]), int(ps[1]))


def build_model(cfg: ModelConfig, *, num_classes: int, in_chans: int, img_size: tuple[int, int]) -> torch.nn.Module:
    """Create the timm model ``cfg.name`` for ``num_classes`` classes and ``in_chans``x``img_size`` inputs."""
    import timm

    _check_name(cfg.name)
    weights = _weights_file(cfg.pretrained)
    kwargs: dict[str, Any] = {"num_classes": cfg.num_classes or num_classes, "in_chans": in_chans,
                                  "drop_rate": cfg.drop_rate}
    if cfg.drop_path_rate is not None:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if cfg.global_pool is not None:
        kwargs["global_pool"] = cfg.global_pool
    if cfg.patch_size is not None:
        kwargs["patch_size"] = cfg.patch_size
    kwargs.update(cfg.kwargs)
    if weights:
        overlay: dict[str, Any] = {"file": weights}
        file_classes = _classes_in_file(weights, cfg.name)
        if file_classes is not None:
            overlay["num_classes"] = file_classes
        kwargs.update(pretrained=True, pretrained_cfg_overlay=overlay)

    def create(with_size: bool) -> torch.nn.Module:
        extra = {"img_size": tuple(img_size)} if with_size and "img_size" not in kwargs else {}
        return timm.create_model(cfg.name, **kwargs, **extra)

    try:
        try:
            model = create(with_size=True)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            model = create(with_size=False)  # CNNs take any size and have no img_size argument
    except TypeError as exc:
        msg = _first_line(exc)
        for key in ("patch_size", "drop_path_rate", "global_pool"):
            if f"'{key}'" in msg:
                raise ConfigError(f"model.{key}: {cfg.name} has no {key} option") from None
        raise ConfigError(f"model.kwargs: {cfg.name} rejects its arguments: {msg}") from None
    except (FileNotFoundError, RuntimeError, KeyError, ValueError, AssertionError) as exc:
        if weights:
            raise ConfigError(f"model.pretrained: cannot load weights from {weights} into {cfg.name}: "
                              f"{_first_line(exc)}") from None
        raise ConfigError(f"model: cannot create {cfg.name}: {_first_line(exc)}") from None

    ps = _patch_size(model)
    if ps is not None and (img_size[0] % ps[0] or img_size[1] % ps[1]):
        h, w = img_size
        up = [-(-h // ps[0]) * ps[0], -(-w // ps[1]) * ps[1]]
        raise ConfigError(f"data.img_size: {h}x{w} is not a multiple of {cfg.name}'s patch size "
                          f"{ps[0]}x{ps[1]}; use e.g. {up if up[0] != up[1] else up[0]}, or set model.patch_size")
    return model


def check_forward(model: torch.nn.Module, *, in_chans: int, img_size: tuple[int, int], name: str) -> None:
    """One tiny forward pass on CPU in eval mode: a clear error when the model cannot take these images."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, *img_size))
    except Exception as exc:  # noqa: BLE001 - any failure here means the size/model combination is unusable
        raise ConfigError(f"data.img_size: {name} cannot run on {img_size[0]}x{img_size[1]} images: "
                          f"{_first_line(exc)}") from None
    finally:
        model.train(was_training)


def param_count(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def model_mean_std(model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The normalisation the model's pretrained config expects, if it names one."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean and std:
        return tuple(mean), tuple(std)
    return None
