"""The prepared pipeline for ``imagefolder:`` (``data.pipeline: prepared``, the default).

1. :func:`open_prepared` opens the folder's cache (:mod:`trainer.engine.cache`), building it first
   if needed: every image decoded once, stored aspect-preserving with short side
   ``data.stored_size`` (null = ``floor(img_size / data.crop_pct)``, 256 for 224: 1.143 x).
2. A loader worker (:class:`PreparedDataset`) turns a batch of indices into crop boxes
   (random-resized-crop for training, timm's centre crop for evaluation) and every other random
   choice (:func:`~trainer.engine.device_augment.sample_params`), and slices the boxes out of the
   memory-mapped cache, packed end to end into one uint8 buffer (no padding).
3. :class:`DeviceLoader`, in the training process, moves the buffer to the device, resizes each crop
   to ``img_size`` there (antialiased bicubic, as timm) and applies the rest of the augmentation batched
   (:func:`~trainer.engine.device_augment.apply_params`). With ``data.crop_resize: workers`` (the
   default on a CPU-only machine) the workers resize and flip instead (:func:`fit_crop`: OpenCV on
   channels-last uint8, read straight from the memory map) and, training on a CPU, jitter the colours
   too, so the main process keeps its cores for the model and the batch crosses processes at its
   final size, as a channels-last uint8 ``[B, C, H, W]`` view.

Batches come out in 0..255 on the device (float, or uint8 when nothing is left to apply); the loop
converts them into the model's layout and normalises them.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainer.engine.cache import (
    DEFAULT_MAX_GB,
    CacheSpec,
    PreparedImages,
    available_cores,
    decode_stored,
    default_cache_dir,
    open_cache,
    resize,
    to_hwc,
)
from trainer.engine.config import TrainerConfig, normalize_augment
from trainer.engine.device_augment import (
    DEVICE_AUGMENTATIONS,
    apply_params,
    eval_boxes,
    jitter_uint8,
    sample_crop_boxes,
    sample_params,
)
from trainer.errors import ConfigError, DataError


def applies(cfg: TrainerConfig) -> bool:
    """The prepared pipeline serves this config: an image folder, and ``data.pipeline`` is ``prepared``."""
    return cfg.data.dataset.startswith("imagefolder:") and cfg.data.pipeline == "prepared"


def stored_size(cfg: TrainerConfig) -> int:
    """Short side of the stored images: ``data.stored_size``, or ``floor(max(img_size) / crop_pct)``."""
    d = cfg.data
    return d.stored_size or math.floor(max(cfg.img_hw) / d.crop_pct)


def check_augment(augment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``data.augment`` for the prepared pipeline; one-line error for an augmentation it cannot run."""
    aug = normalize_augment(augment)
    for name in aug:
        if name not in DEVICE_AUGMENTATIONS:
            raise ConfigError(f"data.augment.{name}: not available with data.pipeline: prepared (no batched form); "
                              f"use data.pipeline: files, or drop it")
    return aug


def resolve_crop_resize(spec: str, device_type: str) -> str:
    """``data.crop_resize``: where crops are resized; auto = on a GPU, else in the loader workers."""
    if spec == "auto":
        return "device" if device_type == "cuda" else "workers"
    return spec


def eval_image(path: Path, out_hw: tuple[int, int], channels: int, crop_pct: float) -> torch.Tensor:
    """One image file through the evaluation transform (timm's: short side to ``floor(size / crop_pct)``,
    centre crop), uint8 ``[C, H, W]``: what predict/eval/export show a model validated on a prepared cache."""
    arr = decode_stored(path, math.floor(max(out_hw) / crop_pct), channels)
    t, l, h, w = eval_boxes(np.array([arr.shape[0]]), np.array([arr.shape[1]]), tuple(out_hw), crop_pct)[0].tolist()
    crop = torch.from_numpy(np.array(arr[t:t + h, l:l + w])).permute(2, 0, 1)[None]
    return resize(crop, tuple(out_hw))[0].contiguous()


def fit_crop(crop: np.ndarray, out: np.ndarray, *, exact: bool = False) -> None:
    """Resize an ``[h, w, C]`` crop (a view of the cache) into ``out`` (``[H, W, C]`` uint8, in place).

    Training crops go through OpenCV, read straight from the memory map: area averaging when the crop
    shrinks on both axes (antialiased), else bicubic; 0.08-0.19 ms, against 0.19-0.5 ms for torch's
    antialiased bicubic. ``exact`` (evaluation) keeps torch's antialiased bicubic, timm's resize to
    within 0.01 grey level.
    """
    h, w = crop.shape[:2]
    oh, ow = out.shape[:2]
    if (h, w) == (oh, ow):
        out[...] = crop
    elif exact:
        c = torch.from_numpy(np.array(crop)).permute(2, 0, 1)[None]  # channels-last: torch's fast uint8 path
        out[...] = to_hwc(resize(c, (oh, ow))[0])
    else:
        dst = out[..., 0] if out.shape[2] == 1 else out  # one channel: OpenCV wants it without the axis
        src = crop[..., 0] if crop.shape[2] == 1 else crop
        mode = cv2.INTER_AREA if h > oh and w > ow else cv2.INTER_CUBIC
        cv2.resize(src, (ow, oh), dst=dst, interpolation=mode)


def _flip(img: np.ndarray, axis: int) -> None:
    """Flip an ``[H, W, C]`` uint8 image in place (OpenCV: 1 = left-right, 0 = up-down)."""
    view = img[..., 0] if img.shape[2] == 1 else img
    cv2.flip(view, axis, dst=view)


# ------------------------------------------------------------------ batches


class PreparedBatch:
    """What a worker hands over: crops (packed, or resized) plus the batch's augmentation choices."""

    def __init__(self, pixels: torch.Tensor, sizes: torch.Tensor, resized: bool, params: dict[str, torch.Tensor],
                 channels: int) -> None:
        self.pixels, self.sizes, self.resized, self.params, self.channels = pixels, sizes, resized, params, channels

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    def pin_memory(self) -> PreparedBatch:
        """The DataLoader's pin-memory thread calls this: the pixels go to page-locked memory."""
        self.pixels = self.pixels.pin_memory()
        return self

    def crops_on(self, device: torch.device, out_hw: tuple[int, int]) -> torch.Tensor:
        """``[B, C, H, W]`` (0..255) on ``device``, the crops resized there if needed: float where device
        augmentations are left to apply, else the uint8 crops as they are (Trainer.prepare converts once)."""
        if self.resized:
            x = self.pixels.to(device, non_blocking=True)
            return x.float() if self.params else x
        flat = self.pixels.to(device, non_blocking=True)
        b, c = len(self), self.channels
        out = torch.empty((b, c, *out_hw), device=device, dtype=torch.float32, memory_format=torch.channels_last)
        pos = 0
        for i, (h, w) in enumerate(self.sizes.tolist()):
            img = flat[pos:pos + h * w * c].view(1, h, w, c).permute(0, 3, 1, 2).float()
            pos += h * w * c
            out[i] = resize(img, out_hw)[0]
        return out


class PreparedDataset(Dataset):
    """``ds[(batch_seed, indices)] -> (PreparedBatch, labels)`` from a prepared cache."""

    def __init__(self, images: PreparedImages, rows: np.ndarray, labels: torch.Tensor, *, train: bool,
                 aug: dict[str, dict[str, Any]], out_hw: tuple[int, int], crop_pct: float, resize_in_worker: bool,
                 channels: int, augment_in_worker: bool = False) -> None:
        self.images, self.rows, self.labels = images, rows, labels
        self.augment_in_worker = augment_in_worker and resize_in_worker
        self.train, self.aug, self.out_hw, self.crop_pct = train, aug, tuple(out_hw), crop_pct
        self.resize_in_worker, self.channels = resize_in_worker, channels

    def __len__(self) -> int:
        return len(self.rows)

    def boxes(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Crop boxes (top, left, height, width) in stored pixels: random-resized-crop or timm's centre crop."""
        shapes = self.images.shapes[rows]
        h, w = shapes[:, 0], shapes[:, 1]
        centre = eval_boxes(h, w, self.out_hw, self.crop_pct)
        rrc = self.aug.get("random_resized_crop") if self.train else None
        if rrc is None:
            return centre
        random = sample_crop_boxes(h, w, tuple(rrc["scale"]), tuple(rrc["ratio"]), rng)
        on = rng.random(len(rows)) < rrc["p"]
        return np.where(on[:, None], random, centre)

    def __getitem__(self, key: tuple[int, list[int]] | list[int]) -> tuple[PreparedBatch, torch.Tensor]:
        seed, indices = key if isinstance(key, tuple) else (0, key)
        if cv2.getNumThreads() != 1:  # one image at a time per worker: OpenCV's own threads only contend
            cv2.setNumThreads(1)
        idx = np.asarray(indices, dtype=np.int64)
        rows = self.rows[idx]
        rng = np.random.default_rng(seed)
        boxes = self.boxes(rows, rng)
        params = sample_params(self.aug, len(rows), self.channels, self.out_hw, rng) if self.train else {}
        crops = [self.images[int(r)][t:t + h, l:l + w] for r, (t, l, h, w) in zip(rows, boxes.tolist())]
        sizes = torch.from_numpy(boxes[:, 2:].copy())
        if self.resize_in_worker:  # the whole geometry here: crop, resize, flips
            hflip, vflip = params.pop("hflip", None), params.pop("vflip", None)
            out = torch.empty((len(crops), *self.out_hw, self.channels), dtype=torch.uint8)  # channels-last
            pixels = out.numpy()
            for i, crop in enumerate(crops):
                fit_crop(crop, pixels[i], exact=not self.train)
                if hflip is not None and hflip[i]:
                    _flip(pixels[i], 1)
                if vflip is not None and vflip[i]:
                    _flip(pixels[i], 0)
            if self.augment_in_worker:  # training on the CPU: the colour jitter is the worker's too
                params = jitter_uint8(pixels, params)
            return (PreparedBatch(out.permute(0, 3, 1, 2), sizes, True, params, self.channels),
                    self.labels[torch.from_numpy(idx)])
        total = sum(c.size for c in crops)
        flat = np.empty(total, np.uint8)
        pos = 0
        for crop in crops:
            flat[pos:pos + crop.size].reshape(crop.shape)[...] = crop
            pos += crop.size
        return (PreparedBatch(torch.from_numpy(flat), sizes, False, params, self.channels),
                self.labels[torch.from_numpy(idx)])


class DeviceLoader:
    """A DataLoader of :class:`PreparedBatch` whose batches come out augmented on ``device``."""

    def __init__(self, loader: DataLoader, device: torch.device, aug: dict[str, dict[str, Any]],
                 out_hw: tuple[int, int]) -> None:
        self.loader, self.device, self.aug, self.out_hw = loader, device, aug, tuple(out_hw)

    @property
    def sampler(self) -> Any:
        return self.loader.sampler

    @property
    def generator(self) -> torch.Generator | None:
        return self.loader.generator

    @property
    def num_workers(self) -> int:
        return self.loader.num_workers

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch, y in self.loader:
            x = batch.crops_on(self.device, self.out_hw)
            if batch.params:
                x = apply_params(x, batch.params, self.aug)
            yield x, y


# ------------------------------------------------------------------ opening


@dataclass
class Prepared:
    """An opened cache plus what the datasets need from the config."""

    images: PreparedImages
    aug: dict[str, dict[str, Any]]
    out_hw: tuple[int, int]
    crop_pct: float
    channels: int
    resize_in_worker: bool
    row_of: dict[str, int]
    root: Path
    #: training on the CPU: workers also apply the colour augmentations (the main process has no spare device)
    augment_in_worker: bool = False

    def rows(self, paths: Sequence[Path]) -> np.ndarray:
        """Cache rows of these files of the folder."""
        try:
            return np.array([self.row_of[p.relative_to(self.root).as_posix()] for p in paths], dtype=np.int64)
        except KeyError as exc:  # the folder changed between listing and opening
            raise DataError(f"imagefolder: {exc.args[0]} is not in the prepared cache; run again") from None

    def dataset(self, paths: Sequence[Path], labels: torch.Tensor, *, train: bool) -> PreparedDataset:
        """A batch dataset over ``paths`` (training: augmented; validation: timm's eval crop)."""
        return PreparedDataset(self.images, self.rows(paths), labels, train=train, aug=self.aug, out_hw=self.out_hw,
                               crop_pct=self.crop_pct, resize_in_worker=self.resize_in_worker,
                               channels=self.channels, augment_in_worker=self.augment_in_worker)

    def eval_images(self, paths: Sequence[Path]) -> torch.Tensor:
        """uint8 ``[N, C, H, W]``: these files through the eval transform, on the CPU (the holdout images)."""
        ds = PreparedDataset(self.images, self.rows(paths), torch.zeros(len(paths), dtype=torch.long), train=False,
                             aug={}, out_hw=self.out_hw, crop_pct=self.crop_pct, resize_in_worker=True,
                             channels=self.channels)
        return ds[list(range(len(paths)))][0].pixels.contiguous()

    def wrap(self, loader: DataLoader, device: torch.device | None) -> DeviceLoader:
        """The loader whose batches arrive augmented on ``device`` (the CPU when None)."""
        return DeviceLoader(loader, device or torch.device("cpu"), self.aug, self.out_hw)

    def workers(self, world_size: int) -> int:
        """Default loader processes: the cores available to this process, shared among the DDP ranks."""
        return max(1, available_cores() // max(1, world_size))


def open_prepared(cfg: TrainerConfig, paths: Sequence[Path], labels: Sequence[int], channels: int, *,
                  device_type: str = "cpu", say: Callable[[str], None] | None = None) -> Prepared:
    """Open (building once, whoever asks first) the prepared cache of the folder's ``paths``; ``say``
    hears how a build goes."""
    d = cfg.data
    aug = check_augment(d.augment)
    root = Path(d.dataset[len("imagefolder:"):]).expanduser()
    order = sorted(range(len(paths)), key=lambda i: paths[i].relative_to(root).as_posix())
    spec = CacheSpec(root, [paths[i] for i in order], [int(labels[i]) for i in order], stored_size(cfg), channels)
    cache_dir = Path(d.cache_dir).expanduser() if d.cache_dir else default_cache_dir()
    max_gb = d.cache_max_gb if d.cache_max_gb is not None else DEFAULT_MAX_GB
    images = open_cache(spec, cache_dir, max_bytes=int(max_gb * 2**30), say=say)
    row_of = {p: i for i, p in enumerate(images.relpaths)}
    mode = resolve_crop_resize(d.crop_resize, device_type)
    return Prepared(images, aug, cfg.img_hw, d.crop_pct, channels, mode == "workers", row_of, root,
                    augment_in_worker=device_type == "cpu")
