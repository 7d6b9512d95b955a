"""Augmentations by name: the per-image transform pipeline and the batch-level mixup/cutmix.

``data.augment`` names augmentations with a probability or a mapping of parameters
(see :data:`trainer.engine.config.AUGMENTATIONS` for the names and their defaults). Per-image
augmentations run on uint8 CHW tensors (torchvision.transforms.v2) in the data loader,
in a fixed order: geometry first (crop, flips), then colour (jitter, brightness,
contrast, hue/saturation, gamma, RGB shift, channel shuffle, CLAHE), then degradations (blur,
median blur, JPEG, noise) and random erasing last. Mixup and cutmix act on whole batches on the
device (timm's ``Mixup``) and turn the targets into soft labels.

Per-image randomness comes from a generator seeded per batch (see
:class:`trainer.engine.data.BatchDataset`), mixup's from numpy's global one, saved in checkpoints:
a run with a fixed seed augments identically when it is resumed.
"""
from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import v2

from trainer.engine.config import BATCH_AUGMENTATIONS, RGB_ONLY_AUGMENTATIONS, normalize_augment
from trainer.engine.filters import MedianBlur, RandomCLAHE
from trainer.errors import ConfigError

ORDER = ("random_resized_crop", "hflip", "vflip", "color_jitter", "brightness", "contrast", "hue_saturation",
         "gamma", "rgb_shift", "channel_shuffle", "clahe", "blur", "median_blur", "jpeg", "noise", "random_erase")


class RandomGamma:
    """Gamma correction with a gamma drawn uniformly from ``gamma`` (a [low, high] range)."""

    def __init__(self, gamma: tuple[float, float]) -> None:
        self.low, self.high = gamma

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        g = self.low + (self.high - self.low) * float(torch.rand(()))
        return v2.functional.adjust_gamma(img, g)


class RandomRGBShift:
    """Add a random offset in [-shift, shift] (0..255 units) to each channel."""

    def __init__(self, shift: int) -> None:
        self.shift = int(shift)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        offsets = torch.randint(-self.shift, self.shift + 1, (img.shape[0], 1, 1))
        return (img.to(torch.int16) + offsets).clamp_(0, 255).to(torch.uint8)


class RandomNoise:
    """Additive Gaussian noise with standard deviation ``std`` (a fraction of the 0..255 range)."""

    def __init__(self, std: float) -> None:
        self.std = float(std) * 255.0

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        noisy = img.to(torch.float32) + torch.randn(img.shape) * self.std
        return noisy.round_().clamp_(0, 255).to(torch.uint8)


class RandomJPEG:
    """JPEG round trip (Pillow) at a quality drawn uniformly from ``quality`` ([low, high])."""

    def __init__(self, quality: tuple[int, int]) -> None:
        self.low, self.high = quality

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        import io

        import numpy as np
        from PIL import Image

        q = int(torch.randint(self.low, self.high + 1, ()))
        arr = img.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out = np.array(decoded.convert(pil.mode), dtype=np.uint8)
        if out.ndim == 2:
            out = out[:, :, None]
        return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def _maybe(p: float, t: Any) -> Any:
    return t if p >= 1.0 else v2.RandomApply([t], p=p)


def _one(name: str, a: dict[str, Any], size: tuple[int, int]) -> Any:
    p = a["p"]
    if name == "random_resized_crop":
        crop = v2.RandomResizedCrop(size, scale=tuple(a["scale"]), ratio=tuple(a["ratio"]), antialias=True)
        return _maybe(p, crop)
    if name == "hflip":
        return v2.RandomHorizontalFlip(p)
    if name == "vflip":
        return v2.RandomVerticalFlip(p)
    if name == "color_jitter":
        return _maybe(p, v2.ColorJitter(a["brightness"], a["contrast"], a["saturation"], a["hue"]))
    if name == "brightness":
        return _maybe(p, v2.ColorJitter(brightness=a["brightness"]))
    if name == "contrast":
        return _maybe(p, v2.ColorJitter(contrast=a["contrast"]))
    if name == "hue_saturation":
        return _maybe(p, v2.ColorJitter(saturation=a["saturation"], hue=a["hue"]))
    if name == "gamma":
        return _maybe(p, RandomGamma(tuple(a["gamma"])))
    if name == "rgb_shift":
        return _maybe(p, RandomRGBShift(a["shift"]))
    if name == "channel_shuffle":
        return _maybe(p, v2.RandomChannelPermutation())
    if name == "blur":
        k = int(a["kernel_size"])
        if k < 1 or k % 2 == 0:
            raise ConfigError(f"data.augment.blur.kernel_size: must be an odd positive integer, got {k}")
        return _maybe(p, v2.GaussianBlur(k, sigma=tuple(a["sigma"])))
    if name == "jpeg":
        lo, hi = (int(q) for q in a["quality"])
        if not 1 <= lo <= hi <= 100:
            raise ConfigError(f"data.augment.jpeg.quality: expected 1 <= low <= high <= 100, got {[lo, hi]}")
        return _maybe(p, RandomJPEG((lo, hi)))
    if name == "noise":
        return _maybe(p, RandomNoise(a["std"]))
    if name == "random_erase":
        return v2.RandomErasing(p=p, scale=tuple(a["scale"]))
    if name == "clahe":  # filters.py: torch CLAHE (RGB: on the luma)
        lo, hi = a["clip_limit"]
        if not 0 < lo <= hi or int(a["tile_grid"]) < 1:
            raise ConfigError(f"data.augment.clahe: expected 0 < clip_limit low <= high and tile_grid >= 1, "
                              f"got clip_limit {[lo, hi]}, tile_grid {a['tile_grid']}")
        return _maybe(p, RandomCLAHE((lo, hi), a["tile_grid"]))
    if name == "median_blur":
        k = int(a["kernel_size"])
        if k < 1 or k % 2 == 0:
            raise ConfigError(f"data.augment.median_blur.kernel_size: must be an odd positive integer, got {k}")
        return _maybe(p, MedianBlur(k))
    raise AssertionError(name)  # every name in ORDER is handled above


def build_transform(augment: dict[str, Any], *, size: tuple[int, int], channels: int) -> Any | None:
    """The per-image training transform for ``data.augment`` (uint8 CHW in and out), or None."""
    aug = normalize_augment(augment)
    if channels == 1:
        for name in RGB_ONLY_AUGMENTATIONS:
            if name in aug:
                raise ConfigError(f"data.augment.{name}: needs RGB images, but this dataset is greyscale; "
                                  f"set data.channels: 3")
    steps = [_one(name, aug[name], size) for name in ORDER if name in aug]
    if not steps:
        return None
    return v2.Compose(steps)


def build_mixup(augment: dict[str, Any], *, num_classes: int, label_smoothing: float) -> Any | None:
    """timm's ``Mixup`` for the batch-level augmentations in ``data.augment``, or None."""
    aug = normalize_augment(augment)
    enabled = {k: v for k, v in aug.items() if k in BATCH_AUGMENTATIONS}
    if not enabled:
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=enabled["mixup"]["alpha"] if "mixup" in enabled else 0.0,
        cutmix_alpha=enabled["cutmix"]["alpha"] if "cutmix" in enabled else 0.0,
        prob=max(v["p"] for v in enabled.values()),
        switch_prob=0.5,
        mode="batch",
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )
