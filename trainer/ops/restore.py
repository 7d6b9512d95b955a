"""A trained run back in memory: its config, model, class list and preprocessing, from a run folder.

The one place that turns a run folder's checkpoint into a model ready for inference;
``trainer eval``, ``predict`` and ``export`` (and any other reader of a run's model) use it::

    run = restore_run("runs/20261122-221530-3fa9")          # best.pt on the CPU
    probs = run.probabilities(read_images(paths, run.preprocess))   # [N, classes], rows sum to 1
    run.class_names[int(probs[0].argmax())]

The class list is the one saved with the checkpoint (``class_names``): index ``i`` of the
model's output is ``class_names[i]``, whatever order the class folders were found in.
The preprocessing (image size, channels, mean/std) is saved with every checkpoint too; a
checkpoint from before it was (no ``preprocess``) gets it rebuilt from its config the way
training computed it.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ednaquery.errors import NotFound, UsageError

__all__ = ["Normalize", "Preprocess", "RestoredRun", "image_files", "read_images", "resolve_run", "restore_run"]

#: the native channel count of the datasets that are not folders of colour images
_NATIVE_CHANNELS = {"digits": 1, "fashion_mnist": 1}


def _floats(values: Any) -> tuple[float, ...] | None:
    return tuple(float(v) for v in values) if values else None


class Normalize(torch.nn.Module):
    """0..255 pixels -> ``(x / 255 - mean) / std`` per channel (mean/std as buffers: exportable)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes model input: resize to ``img_size``, ``channels`` (1 grey, 3 RGB), then
    ``(x / 255 - mean) / std`` per channel, or, for a ``data.features`` run, its feature stack
    (:class:`trainer.engine.features.FeatureStack` with the mean/std training gave it)."""

    img_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    features: tuple[str, ...] | None = None
    feature_mean: tuple[float, ...] | None = None
    feature_std: tuple[float, ...] | None = None
    crop_pct: float | None = None  # prepared pipeline: timm's eval resize + centre crop (trainer.engine.prepared)

    @property
    def in_chans(self) -> int:
        """The model's input channels (the feature stack's, else the images')."""
        from trainer.engine.features import feature_channels

        return feature_channels(list(self.features) if self.features else None, self.channels)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (checkpoints, sidecar files)."""
        d: dict[str, Any] = {"img_size": list(self.img_size), "channels": self.channels, "mean": list(self.mean),
                             "std": list(self.std)}
        if self.features:
            d.update(features=list(self.features), feature_mean=list(self.feature_mean or []) or None,
                     feature_std=list(self.feature_std or []) or None)
        if self.crop_pct is not None:
            d["crop_pct"] = self.crop_pct
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        """The inverse of :meth:`as_dict`."""
        size = d["img_size"]
        hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        features = tuple(str(f) for f in d["features"]) if d.get("features") else None
        return cls(hw, int(d["channels"]), _floats(d["mean"]) or (), _floats(d["std"]) or (), features,
                   _floats(d.get("feature_mean")), _floats(d.get("feature_std")),
                   float(d["crop_pct"]) if d.get("crop_pct") is not None else None)

    def input_module(self) -> torch.nn.Module:
        """A module: float pixels 0..255 ``[B, channels, H, W]`` -> the model's input ``[B, in_chans, H, W]``."""
        if self.features:
            from trainer.engine.features import FeatureStack

            return FeatureStack(list(self.features), self.feature_mean, self.feature_std)
        return Normalize(self.mean, self.std)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0..255 float) ``[B, C, H, W]`` -> the input the model was trained on."""
        return self.input_module().to(images.device)(images.float())


@dataclass
class RestoredRun:
    """A run's trained model (eval mode) with what it needs to be used correctly."""

    run_dir: Path
    run_id: str
    cfg: Any  # TrainerConfig
    model: torch.nn.Module
    class_names: list[str]
    preprocess: Preprocess
    device: torch.device
    checkpoint: str = "best.pt"
    best: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Model outputs for uint8 images ``[N, C, H, W]`` (already at the preprocessing size), on the CPU."""
        outs = []
        prepare = self.preprocess.input_module().to(self.device)
        for i in range(0, images.shape[0], batch_size):
            x = prepare(images[i:i + batch_size].to(self.device).float())
            outs.append(self.model(x).float()[:, :len(self.class_names)].cpu())  # model.num_classes may be more
        if not outs:
            return torch.zeros((0, len(self.class_names)))
        return torch.cat(outs)

    def probabilities(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Softmax probabilities ``[N, classes]`` for uint8 images; column ``i`` is ``class_names[i]``."""
        return self.logits(images, batch_size).softmax(1)


# ------------------------------------------------------------------ finding the run


def resolve_run(run: str, store: Any = None) -> Path:
    """A run folder from a folder path or a run id (prefix, through ``store``); UsageError (exit 2) if none."""
    from trainer.ops.launch import find_run_folder

    if os.path.isdir(run) and not (Path(run) / "run.json").is_file():
        raise UsageError(f"{run} is not a run folder (no run.json)")
    try:
        return find_run_folder(store, run)
    except NotFound:
        raise UsageError(f"no run {run!r}: give a run id from `trainer ls` or a run folder") from None


# ------------------------------------------------------------------ restoring the model


def _load(path: Path) -> dict[str, Any]:
    from trainer.engine.loop import load_checkpoint
    from trainer.errors import TrainingError

    if not path.is_file():
        raise UsageError(f"run {path.parent.name} has no {path.name} (it saves one after its first evaluation)")
    try:
        state = load_checkpoint(path)
    except TrainingError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UsageError(f"{path} is not a trainer checkpoint")
    return state


def _channels(cfg: Any) -> int:
    return cfg.data.channels or _NATIVE_CHANNELS.get(cfg.data.dataset, 3)


def _rebuilt_preprocess(cfg: Any, model: torch.nn.Module) -> Preprocess:
    """The preprocessing of a checkpoint saved without one, computed as the Trainer computes it."""
    from trainer.engine.data import normalization
    from trainer.engine.model import model_mean_std

    d = cfg.data
    channels = _channels(cfg)
    mean_std = None if d.mean or d.std else model_mean_std(model)
    mean, std = mean_std or normalization(d.mean, d.std, channels)
    mean, std = normalization(mean, std, channels)
    features = d.features
    raw_mean, raw_std = mean_std or (d.mean, d.std)
    return Preprocess(tuple(cfg.img_hw), channels, tuple(mean), tuple(std),
                      tuple(features) if features else None, _floats(raw_mean) if features else None,
                      _floats(raw_std) if features else None)


def restore_run(run_dir: str | os.PathLike[str], *, checkpoint: str = "best.pt",
                device: str | torch.device = "cpu") -> RestoredRun:
    """Load ``checkpoint`` of the run in ``run_dir``: config, model (eval mode, on ``device``), classes,
    preprocessing. Raises UsageError (one line, exit 2) for a missing or unreadable checkpoint."""
    from trainer.engine.config import load_config
    from trainer.engine.heads import build_task_model
    from trainer.engine.prepared import applies as prepared_applies
    from trainer.errors import ConfigError

    run_dir = Path(run_dir)
    state = _load(run_dir / checkpoint)
    try:
        cfg = load_config(state["config"])
    except ConfigError as exc:
        raise UsageError(f"{run_dir / checkpoint}: its config no longer validates: {exc}") from None
    if cfg.task != "classification":
        raise UsageError(f"run {run_dir.name} is a {cfg.task} run; eval, predict and export handle classification")
    class_names = [str(c) for c in state.get("class_names") or []]
    if not class_names:
        raise UsageError(f"{run_dir / checkpoint} holds no class list; it cannot name its predictions")
    built = copy.deepcopy(cfg)
    built.model.pretrained = None  # the checkpoint has the weights; the original file may be elsewhere
    saved = Preprocess.from_dict(state["preprocess"]) if state.get("preprocess") else None
    if saved is not None:
        in_chans, hw = saved.in_chans, saved.img_size
    else:
        from trainer.engine.features import feature_channels

        in_chans, hw = feature_channels(cfg.data.features, _channels(cfg)), tuple(cfg.img_hw)
    model = build_task_model(built, num_classes=len(class_names), in_chans=in_chans, img_size=hw)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise UsageError(f"{run_dir / checkpoint}: the weights do not fit {cfg.model.name}: "
                         f"{str(exc).splitlines()[0]}") from None
    preprocess = saved if saved is not None else _rebuilt_preprocess(cfg, model)
    raw_data = (state.get("config") or {}).get("data") or {}
    if saved is None and "pipeline" in raw_data and prepared_applies(cfg):  # trained on the prepared pipeline
        preprocess = dataclasses.replace(preprocess, crop_pct=cfg.data.crop_pct)
    dev = torch.device(device)
    model = model.to(dev).eval()
    run_id = run_dir.name
    run_json = run_dir / "run.json"
    if run_json.is_file():
        import json

        try:
            run_id = str(json.loads(run_json.read_text()).get("run_id") or run_id)
        except (OSError, ValueError):
            pass
    return RestoredRun(run_dir=run_dir, run_id=run_id, cfg=cfg, model=model, class_names=class_names,
                       preprocess=preprocess, device=dev, checkpoint=checkpoint, best=dict(state.get("best") or {}))


# ------------------------------------------------------------------ images


def image_files(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` itself (a file), or every image file under it (a folder), sorted."""
    from trainer.engine.data import IMAGE_EXTENSIONS

    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        raise UsageError(f"{path}: no such file or folder")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UsageError(f"{path}: no image files in this folder")
    return files


def read_images(paths: Sequence[Path], preprocess: Preprocess) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` at the preprocessing size and channels; UsageError naming an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    from trainer.engine.data import read_image
    from trainer.engine.prepared import eval_image
    from trainer.errors import DataError

    out = []
    for p in paths:
        try:
            if preprocess.crop_pct is not None:  # as validation saw them: resize the short side, centre-crop
                out.append(eval_image(Path(p), preprocess.img_size, preprocess.channels, preprocess.crop_pct))
            else:
                out.append(read_image(Path(p), preprocess.img_size, preprocess.channels))
        except DataError as exc:
            raise UsageError(f"cannot read image {p}: {str(exc).split(': ', 1)[-1]}") from None
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"cannot read image {p}: {reason}") from None
    if not out:
        h, w = preprocess.img_size
        return torch.zeros((0, preprocess.channels, h, w), dtype=torch.uint8)
    return torch.stack(out)
