"""Datasets and data loaders: digits, fashion_mnist, imagefolder:<path>, fake.

Every dataset becomes a source of uint8 image batches ``[B, C, H, W]`` at the
configured size and channel count, plus integer labels and class names:

- ``digits``: scikit-learn's bundled 8x8 digits (1797 images), upscaled; a fixed
  stratified train/val split (``data.val_split``, independent of the run's seed).
- ``fashion_mnist``: the real 60k/10k Fashion-MNIST read straight from the idx .gz
  files of Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist);
  nothing is ever downloaded.
- ``imagefolder:<path>``: ``<path>/train/<class>/*`` and ``<path>/val/<class>/*``, or one
  folder of class sub-folders split by ``data.val_split``.
- ``fake``: synthetic, learnable images (a noisy pattern per class), for smoke tests
  and throughput.

Small datasets are resized once and kept in memory; a batch is then a single tensor
index (as fast as a hand-written loop). Batches are drawn by :class:`EpochBatchSampler`,
whose order is a pure function of (seed, epoch), and each batch carries its own
augmentation seed, so a resumed run sees the same batches, augmented the same way,
whatever the number of loader workers.
Normalisation happens on the device (uint8 crosses the bus, 4x fewer bytes).
"""
from __future__ import annotations

import gzip
import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from trainer.engine.augment import build_mixup, build_transform
from trainer.engine.cache import available_cores
from trainer.engine.config import TrainerConfig
from trainer.engine.filters import LUMA
from trainer.engine.prepared import Prepared, applies, open_prepared
from trainer.engine.sampling import imbalance_subset, weighted_draw
from trainer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_LIMIT_BYTES = 1 << 30  # resized in-memory copies up to 1 GiB; larger ones resize per batch
DEVICE_CACHE_LIMIT_BYTES = 2 << 30  # in-memory datasets up to 2 GiB live on the GPU (no loading at all)
SPLIT_SEED = 0  # validation splits and training fractions do not depend on the run's seed
HOLDOUT_SIZE = 16


# ------------------------------------------------------------------ image sources


def resize_uint8(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 batch ``[B, C, h, w]`` to ``hw`` (bilinear, antialiased)."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    y = F.interpolate(x.float(), size=hw, mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Greyscale <-> RGB for a uint8 batch ``[B, C, H, W]``."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA).view(1, 3, 1, 1)
        return (x.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(f"cannot convert {c}-channel images to {channels} channels")


class TensorSource:
    """In-memory uint8 images, served at the target size and channel count."""

    def __init__(self, images: torch.Tensor, hw: tuple[int, int], channels: int) -> None:
        self.hw, self.channels = hw, channels
        n = images.shape[0]
        if n * channels * hw[0] * hw[1] <= CACHE_LIMIT_BYTES:
            chunks = [self._convert(images[i:i + 2048]) for i in range(0, n, 2048)]
            self.images = torch.cat(chunks) if chunks else images.new_zeros((0, channels, *hw))
            self.cached = True
        else:
            self.images = images
            self.cached = False

    def _convert(self, x: torch.Tensor) -> torch.Tensor:
        return convert_channels(resize_uint8(x, self.hw), self.channels)

    def __len__(self) -> int:
        return self.images.shape[0]

    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size()

    def to(self, device: torch.device) -> TensorSource:
        """Keep the (resized) images on ``device``: batches are then sliced where they are used."""
        self.images = self.images.to(device)
        return self

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.images[idx.to(self.images.device)]
        return x if self.cached else self._convert(x)


def read_image(path: Path, hw: tuple[int, int], channels: int) -> torch.Tensor:
    """One image file squashed to ``hw`` (bilinear), uint8 ``[C, H, W]``: the ``data.pipeline: files`` read."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB").resize((hw[1], hw[0]), Image.BILINEAR)
        arr = np.array(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


class FileSource:
    """Images decoded from files on demand (folders too large to keep in memory)."""

    def __init__(self, paths: list[Path], hw: tuple[int, int], channels: int) -> None:
        self.paths, self.hw, self.channels = paths, hw, channels
        self.cached = False

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.stack([read_image(self.paths[int(i)], self.hw, self.channels) for i in idx])


# ------------------------------------------------------------------ datasets


class BatchDataset(Dataset):
    """A dataset indexed by a whole batch: ``ds[(batch_seed, [3, 17, 5])] -> (images, labels)``.

    Per-image augmentation draws from a generator seeded with the batch's own seed (the
    caller's RNG state is left untouched), so a batch is augmented identically whichever
    process loads it and whenever: resumed runs and any number of workers agree.
    """

    def __init__(self, source: Any, labels: torch.Tensor, transform: Any = None) -> None:
        self.source, self.labels, self.transform = source, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, list[int]] | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        seed, indices = key if isinstance(key, tuple) else (0, key)
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.source.get(idx)
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                x = torch.stack([self.transform(img) for img in x])
        return x, self.labels[idx.to(self.labels.device)]


class EpochBatchSampler(Sampler[tuple[int, list[int]]]):
    """(batch seed, indices) pairs whose order depends only on (seed, epoch); can start mid-epoch.

    With ``world_size > 1`` (DDP) each rank gets its own shard of the epoch, cut by
    :class:`torch.utils.data.DistributedSampler` from the same permutation a single process
    would use: ``even=True`` (training) pads the shards to equal length so every rank runs
    the same number of batches; ``even=False`` (validation) splits exactly, so the ranks
    together see every image once. Batch seeds differ between ranks. With ``draw`` (a weighted
    ``data.sampler``, :mod:`trainer.engine.sampling`) the epoch's order is ``draw(epoch, count)``
    instead, one order for all ranks, of which rank r takes the r-th contiguous block.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int,
                 max_batches: int | None = None, rank: int = 0, world_size: int = 1, even: bool = True,
                 draw: Callable[[int, int], list[int]] | None = None) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.draw = draw  # data.sampler (trainer.engine.sampling): draw(epoch, count) -> the epoch's order
        self.rank, self.world_size, self.even = rank, world_size, even
        if world_size == 1:
            self.local_n = n
        else:
            self.local_n = -(-n // world_size) if even else len(range(rank, n, world_size))
        self.drop_last = drop_last and self.local_n >= batch_size
        self.max_batches = max_batches
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first ``start_batch`` batches (resume mid-epoch)."""
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        """Batches this rank runs per epoch (the same on every rank for training)."""
        n = self.local_n
        full = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return min(full, self.max_batches) if self.max_batches else full

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start_batch)

    def _order(self, epoch: int) -> list[int]:
        """The whole epoch's order, as a single process sees it."""
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def _shard(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``, in order."""
        if self.draw is not None:  # weighted: one order for all ranks, rank r takes its r-th block
            size = self.local_n
            return self.draw(epoch, size * self.world_size)[self.rank * size:(self.rank + 1) * size]
        if self.world_size == 1:
            return self._order(epoch)
        if not self.even:  # exact split: rank r takes items r, r+W, r+2W... of the order
            return self._order(epoch)[self.rank::self.world_size]
        from torch.utils.data import DistributedSampler

        # DistributedSampler permutes with seed + epoch: the same permutation as _order's
        sampler = DistributedSampler(range(self.n), num_replicas=self.world_size, rank=self.rank,
                                     shuffle=self.shuffle, seed=self.seed * 100_003, drop_last=False)
        sampler.set_epoch(epoch)
        return list(sampler)

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        order = self._shard(self.epoch)
        bs, w = self.batch_size, self.world_size
        base = (self.seed * 1_000_003 + self.epoch) * 100_003
        for b in range(self.start_batch, self.batches_per_epoch()):
            yield ((base + b) * w + self.rank) % 2**62, order[b * bs:(b + 1) * bs]


# ------------------------------------------------------------------ raw loaders


@dataclass
class RawSplit:
    """One split as loaded: native-size uint8 images (or file paths) and labels."""

    images: torch.Tensor | None
    paths: list[Path] | None
    labels: torch.Tensor


def _stratified_split(labels: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(SPLIT_SEED)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = max(1, round(len(idx) * val_fraction)) if len(idx) > 1 else 0
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def stratified_fraction(labels: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of a class-stratified ``fraction`` of the samples (nested: 25% is inside 50%)."""
    if fraction >= 1.0:
        return torch.arange(len(labels))
    rng = np.random.RandomState(SPLIT_SEED + 1)
    if labels.is_floating_point():  # regression targets: a seeded random subset, nested the same way
        order = rng.permutation(len(labels))
        return torch.as_tensor(np.sort(order[:max(1, round(len(labels) * fraction))]).astype(np.int64))
    lab = labels.numpy()
    keep = []
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        rng.shuffle(idx)
        keep.extend(idx[:max(1, round(len(idx) * fraction))])
    return torch.as_tensor(np.sort(np.array(keep, dtype=np.int64)))


def _subset(split: RawSplit, idx: np.ndarray) -> RawSplit:
    """The images ``idx`` (repeats allowed) of a split."""
    t = torch.as_tensor(idx, dtype=torch.long)
    return RawSplit(split.images[t] if split.images is not None else None,
                    [split.paths[i] for i in idx.tolist()] if split.paths is not None else None, split.labels[t])


def resample_training(train: RawSplit, val: RawSplit, d: Any, *, origin: torch.Tensor | None = None
                      ) -> tuple[RawSplit, RawSplit, dict | None]:
    """``data.folds``/``data.fold`` and ``data.bootstrap`` applied to the training split
    (:mod:`trainer.engine.folds`): a fold's validation images replace ``val``, never the other way.

    Returns the new (train, val) and the ``split.json`` record, whose indices are positions in
    the dataset's training split before ``data.fraction`` (``origin`` maps them back); None
    without folds or bootstrap.
    """
    from trainer.engine.folds import select

    try:
        sel = select(train.labels.numpy(), folds=d.folds, fold=d.fold, bootstrap=d.bootstrap)
    except ValueError as exc:
        raise ConfigError(f"data.folds: {exc}") from None
    if sel is None:
        return train, val, None
    new_val = _subset(train, sel.val) if sel.val is not None else val
    new_train = _subset(train, sel.train)
    if origin is not None and len(origin) == len(train.labels):
        back = origin.numpy()
        sel.train, sel.val = back[sel.train], back[sel.val] if sel.val is not None else None
        sel.oob = back[sel.oob] if sel.oob is not None else None
    about = {"dataset": d.dataset, "fraction": d.fraction,
             "indices": "positions in the dataset's training split, before data.fraction"}
    return new_train, new_val, sel.record(len(train.labels), about)


def load_digits(val_split: float) -> tuple[RawSplit, RawSplit, list[str]]:
    """scikit-learn's 8x8 digits as uint8, split into train/val."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    tr, va = _stratified_split(labels, val_split)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    return (RawSplit(x[tr], None, y[tr]), RawSplit(x[va], None, y[va]), [str(i) for i in range(10)])


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an idx file")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise DataError(f"{path}: only unsigned-byte idx files are supported (type 0x{dtype_code:02x})")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    expected = int(np.prod(dims)) if dims else 0
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != expected:
        raise DataError(f"{path}: truncated idx file ({payload.size} of {expected} values)")
    return payload.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(root: str | None) -> tuple[RawSplit, RawSplit, list[str]]:
    """The 60k/10k Fashion-MNIST from idx .gz files (Debian's dataset-fashion-mnist)."""
    folder = Path(root) if root else FASHION_MNIST_DIR
    parts = {}
    for key, stem in (("xtr", "train-images-idx3-ubyte"), ("ytr", "train-labels-idx1-ubyte"),
                      ("xva", "t10k-images-idx3-ubyte"), ("yva", "t10k-labels-idx1-ubyte")):
        path = _find(folder, stem)
        if path is None:
            hint = ("install it with `apt-get install dataset-fashion-mnist`" if not root
                    else "point data.root at the folder holding the four idx .gz files")
            raise DataError(f"Fashion-MNIST not found: {folder / (stem + '.gz')} is missing; {hint} "
                            f"(nothing is downloaded)")
        parts[key] = read_idx(path)

    def split(x: np.ndarray, y: np.ndarray) -> RawSplit:
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"Fashion-MNIST files in {folder} have unexpected shapes {x.shape}, {y.shape}")
        return RawSplit(torch.from_numpy(x.copy())[:, None], None, torch.from_numpy(y.astype(np.int64)))

    return split(parts["xtr"], parts["ytr"]), split(parts["xva"], parts["yva"]), list(FASHION_MNIST_CLASSES)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def scan_classes(folder: Path) -> dict[str, list[Path]]:
    """``<folder>/<class>/`` image files by class name (sorted; hidden folders and empty classes left out)."""
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _image_files(sub)
        if files:
            classes[sub.name] = files
    return classes


def load_imagefolder(path: str, val_split: float) -> tuple[RawSplit, RawSplit, list[str]]:
    """``<path>/train`` + ``<path>/val`` (or ``valid``/``validation``), or one folder split by class."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a folder")
    val_dir = next((root / n for n in ("val", "valid", "validation") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        train_classes = scan_classes(root / "train")
        val_classes = scan_classes(val_dir)
        names = sorted(train_classes)
        unknown = sorted(set(val_classes) - set(train_classes))
        if unknown:
            raise DataError(f"imagefolder: {val_dir} has classes not in {root / 'train'}: {', '.join(unknown)}")
        index = {n: i for i, n in enumerate(names)}

        def split(classes: dict[str, list[Path]]) -> RawSplit:
            paths = [p for n in sorted(classes) for p in classes[n]]
            labels = [index[n] for n in sorted(classes) for _ in classes[n]]
            return RawSplit(None, paths, torch.tensor(labels, dtype=torch.long))

        train, val = split(train_classes), split(val_classes)
    else:
        classes = scan_classes(root)
        names = sorted(classes)
        paths = [p for n in names for p in classes[n]]
        labels = np.array([i for i, n in enumerate(names) for _ in classes[n]], dtype=np.int64)
        tr, va = _stratified_split(labels, val_split)
        y = torch.from_numpy(labels)
        train = RawSplit(None, [paths[i] for i in tr], y[tr])
        val = RawSplit(None, [paths[i] for i in va], y[va])
    if len(names) < 2:
        raise DataError(f"imagefolder: {root} needs at least two class folders with images "
                        f"(<path>/<class>/*.jpg or <path>/train/<class>/*.jpg)")
    if len(train.labels) == 0 or len(val.labels) == 0:
        raise DataError(f"imagefolder: {root} has no images for training or for validation")
    return train, val, names


def make_fake(n_train: int, num_classes: int, hw: tuple[int, int], channels: int
              ) -> tuple[RawSplit, RawSplit, list[str]]:
    """Synthetic images that can be learnt: a smooth random pattern per class plus noise."""
    g = torch.Generator().manual_seed(1234)
    protos = torch.rand(num_classes, channels, 4, 4, generator=g)
    protos = F.interpolate(protos, size=hw, mode="bilinear", align_corners=False)

    def split(n: int) -> RawSplit:
        labels = torch.randint(0, num_classes, (n,), generator=g)
        noise = torch.rand(n, channels, *hw, generator=g)
        x = (0.6 * protos[labels] + 0.4 * noise) * 255.0
        return RawSplit(x.round_().clamp_(0, 255).to(torch.uint8), None, labels)

    return split(n_train), split(max(num_classes, n_train // 4)), [f"class{i}" for i in range(num_classes)]


# ------------------------------------------------------------------ regression targets


def make_synthetic_regression(n_train: int, hw: tuple[int, int], channels: int
                              ) -> tuple[RawSplit, RawSplit, list[str]]:
    """Synthetic regression: each image blends two fixed smooth patterns by its target t in [0, 1], plus noise."""
    g = torch.Generator().manual_seed(4321)
    a, b = F.interpolate(torch.rand(2, channels, 4, 4, generator=g), size=hw, mode="bilinear",
                         align_corners=False)

    def split(n: int) -> RawSplit:
        t = torch.rand(n, generator=g)
        noise = torch.rand(n, channels, *hw, generator=g)
        x = (0.8 * (t.view(-1, 1, 1, 1) * a + (1 - t.view(-1, 1, 1, 1)) * b) + 0.2 * noise) * 255.0
        return RawSplit(x.round_().clamp_(0, 255).to(torch.uint8), None, t.view(-1, 1))

    return split(n_train), split(max(8, n_train // 4)), ["target"]


def find_targets_csv(folder: Path, targets: str | None) -> Path:
    """``data.targets``, else ``<folder>/targets.csv``, else ``<folder>.csv`` beside the folder."""
    if targets:
        path = Path(targets).expanduser()
        if not path.is_file():
            raise DataError(f"data.targets: {path} not found")
        return path
    for path in (folder / "targets.csv", folder.with_name(folder.name + ".csv")):
        if path.is_file():
            return path
    raise DataError(f"regression: no targets CSV for {folder}: put targets.csv (columns path, target...) in it, "
                    f"{folder.name}.csv beside it, or set data.targets")


def load_regression_folder(path: str, targets: str | None, val_split: float
                           ) -> tuple[RawSplit, RawSplit, list[str]]:
    """Images of a folder with numeric targets from a CSV: ``path,target...`` (paths relative to the folder).

    The header names the targets (one output each). A ``split`` column (train/val) fixes the split;
    without it a seeded random ``val_split`` of the rows is held out.
    """
    import csv

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a folder")
    csv_path = find_targets_csv(root, targets)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataError(f"{csv_path}: expected a header (path, target...) and at least one row")
    header = [h.strip() for h in rows[0]]
    split_col = header.index("split") if "split" in header else None
    target_cols = [i for i in range(1, len(header)) if i != split_col]
    if not target_cols:
        raise DataError(f"{csv_path}: no target column after the path column")
    paths: list[Path] = []
    values: list[list[float]] = []
    is_val: list[bool] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise DataError(f"{csv_path}:{line}: {len(row)} fields, the header has {len(header)}")
        file = root / row[0].strip()
        if not file.is_file():
            raise DataError(f"{csv_path}:{line}: image {file} not found")
        try:
            values.append([float(row[i]) for i in target_cols])
        except ValueError:
            raise DataError(f"{csv_path}:{line}: targets must be numbers, got {[row[i] for i in target_cols]}"
                            ) from None
        paths.append(file)
        if split_col is not None:
            kind = row[split_col].strip().lower()
            if kind not in ("train", "val", "valid", "validation"):
                raise DataError(f"{csv_path}:{line}: split must be train or val, got {row[split_col]!r}")
            is_val.append(kind != "train")
    y = torch.tensor(values, dtype=torch.float32)
    if split_col is not None:
        va = np.flatnonzero(np.array(is_val))
        tr = np.flatnonzero(~np.array(is_val))
    else:
        order = np.random.RandomState(SPLIT_SEED).permutation(len(paths))
        n_val = max(1, round(len(paths) * val_split))
        va, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(tr) == 0 or len(va) == 0:
        raise DataError(f"{csv_path}: no images for training or for validation")
    return (RawSplit(None, [paths[i] for i in tr], y[tr]), RawSplit(None, [paths[i] for i in va], y[va]),
            [header[i] for i in target_cols])


# ------------------------------------------------------------------ the bundle


@dataclass
class DataBundle:
    """What the training loop needs from the data side."""

    train_loader: DataLoader
    val_loader: DataLoader
    train_sampler: EpochBatchSampler
    num_classes: int
    class_names: list[str]
    channels: int
    img_size: tuple[int, int]
    train_size: int
    val_size: int
    train_labels: torch.Tensor
    holdout_images: torch.Tensor
    holdout_labels: torch.Tensor
    mixup: Any
    workers: int
    pin_memory: bool
    in_memory: bool
    on_device: bool = False
    #: ``split.json`` for a k-fold or bootstrap run (:func:`resample_training`), else None
    split: dict | None = None
    #: prepared pipeline: validation is timm's resize + centre crop at this crop_pct (else None: squashed)
    eval_crop_pct: float | None = None

    @property
    def steps_per_epoch(self) -> int:
        """Batches per training epoch."""
        return self.train_sampler.batches_per_epoch()


def _native(cfg: TrainerConfig) -> tuple[RawSplit, RawSplit, list[str], int]:
    d = cfg.data
    if d.dataset == "synthetic_regression":
        channels = d.channels or 3
        tr, va, names = make_synthetic_regression(d.fake_samples, cfg.img_hw, channels)
        return tr, va, names, channels
    if cfg.task == "regression" and d.dataset.startswith("imagefolder:"):
        tr, va, names = load_regression_folder(d.dataset[len("imagefolder:"):], d.targets, d.val_split)
        return tr, va, names, 3
    if d.dataset == "digits":
        tr, va, names = load_digits(d.val_split)
        return tr, va, names, 1
    if d.dataset == "fashion_mnist":
        tr, va, names = load_fashion_mnist(d.root)
        return tr, va, names, 1
    if d.dataset == "fake":
        channels = d.channels or 3
        tr, va, names = make_fake(d.fake_samples, cfg.model.num_classes or 10, cfg.img_hw, channels)
        return tr, va, names, channels
    if d.dataset.startswith("imagefolder:"):
        tr, va, names = load_imagefolder(d.dataset[len("imagefolder:"):], d.val_split)
        return tr, va, names, 3
    raise ConfigError(f"data.dataset: unknown dataset {d.dataset!r}")


def auto_workers(in_memory: bool, per_image_work: bool, world_size: int = 1) -> int:
    """Loader processes when ``data.workers`` is null: none when a batch is just a tensor index.

    With DDP each of the ``world_size`` training processes gets its share of the CPUs.
    """
    if in_memory and not per_image_work:
        return 0
    return min(8, max(1, available_cores() // max(1, world_size) - 1))


def _source(split: RawSplit, hw: tuple[int, int], channels: int) -> Any:
    if split.images is not None:
        return TensorSource(split.images, hw, channels)
    assert split.paths is not None
    n = len(split.paths)
    if n * channels * hw[0] * hw[1] <= CACHE_LIMIT_BYTES // 4 and n <= 50_000:
        log.info("decoding %d images into memory", n)
        images = FileSource(split.paths, hw, channels).get(torch.arange(n))
        return TensorSource(images, hw, channels)
    return FileSource(split.paths, hw, channels)


def build_data(cfg: TrainerConfig, *, device_type: str = "cpu", device: torch.device | None = None,
               rank: int = 0, world_size: int = 1, say: Callable[[str], None] | None = None) -> DataBundle:
    """Load the configured dataset and build the train/val loaders.

    With a CUDA ``device``, an in-memory dataset that needs no per-image work (and fits in
    2 GiB) is moved to the GPU once: a batch is then a slice of GPU memory, with no copy and
    no loader wait. With ``world_size > 1`` (DDP) the loaders serve rank ``rank``'s shard of
    each epoch and of the validation set; ``data.batch_size`` is per process, and the
    sizes in the bundle (``train_size``, ``val_size``) are the whole dataset's. ``say`` hears how
    the prepared cache's build goes (an image folder's first use).
    """
    if device is not None:
        device_type = device.type
    d = cfg.data
    train, val, names, native_channels = _native(cfg)
    channels = d.channels or native_channels
    hw = cfg.img_hw
    num_classes = len(names)
    if cfg.model.num_classes is not None and cfg.model.num_classes < num_classes:
        raise ConfigError(f"model.num_classes: {cfg.model.num_classes} is fewer than the "
                          f"{num_classes} classes of {d.dataset}")
    if not train.labels.is_floating_point() and (int(train.labels.max()) >= num_classes
                                                 or int(val.labels.max()) >= num_classes):
        raise DataError(f"{d.dataset}: labels outside 0..{num_classes - 1}")
    # --- prepared pipeline hook (trainer.engine.prepared): the whole folder's cache, before any subset
    prep: Prepared | None = None
    if applies(cfg):
        paths = list(train.paths or []) + list(val.paths or [])
        classes = [-1] * len(paths) if train.labels.is_floating_point() else torch.cat([train.labels, val.labels])
        prep = open_prepared(cfg, paths, [int(c) for c in classes], channels, device_type=device_type, say=say)

    keep = stratified_fraction(train.labels, d.fraction)
    keep = keep[imbalance_subset(train.labels[keep], d.imbalance, names)]  # data.imbalance (sampling.py)
    if len(keep) < len(train.labels):
        train = RawSplit(train.images[keep] if train.images is not None else None,
                         [train.paths[i] for i in keep.tolist()] if train.paths is not None else None,
                         train.labels[keep])
    train, val, split = resample_training(train, val, d, origin=keep)

    transform = None if prep else build_transform(d.augment, size=hw, channels=channels)
    mixup = build_mixup(d.augment, num_classes=cfg.model.num_classes or num_classes,
                        label_smoothing=cfg.loss.label_smoothing)
    if prep is None:
        train_src, val_src = _source(train, hw, channels), _source(val, hw, channels)
        in_memory = bool(train_src.cached and val_src.cached)
        workers = d.workers if d.workers is not None else auto_workers(in_memory, transform is not None, world_size)
    else:  # prepared pipeline: batches are sliced from the cache by the workers
        train_src = val_src = None
        in_memory = False
        workers = d.workers if d.workers is not None else prep.workers(world_size)
    pin = d.pin_memory if d.pin_memory is not None else device_type == "cuda"
    k = min(HOLDOUT_SIZE, len(val.labels))
    holdout = prep.eval_images(val.paths[:k]) if prep else val_src.get(torch.arange(k))
    on_device = (device is not None and device.type == "cuda" and in_memory and transform is None
                 and workers == 0 and d.pin_memory is None
                 and train_src.nbytes() + val_src.nbytes() <= DEVICE_CACHE_LIMIT_BYTES)
    train_y, val_y = train.labels, val.labels
    if on_device:
        train_src, val_src = train_src.to(device), val_src.to(device)
        train_y, val_y = train_y.to(device), val_y.to(device)
        pin = False
        log.info("dataset kept on %s (%.1f MB)", device, (train_src.nbytes() + val_src.nbytes()) / 2**20)

    train_sampler = EpochBatchSampler(len(train.labels), d.batch_size, shuffle=True, drop_last=True,
                                      seed=cfg.train.seed, max_batches=cfg.train.max_steps_per_epoch,
                                      rank=rank, world_size=world_size, even=True,
                                      draw=weighted_draw(d, train.labels, num_classes, cfg.train.seed))
    val_sampler = EpochBatchSampler(len(val.labels), d.eval_batch_size or d.batch_size, shuffle=False,
                                    drop_last=False, seed=0, rank=rank, world_size=world_size, even=False)

    def loader(ds: Dataset, sampler: EpochBatchSampler, seed: int) -> DataLoader:
        return DataLoader(ds, batch_size=None, sampler=sampler, num_workers=workers, pin_memory=pin,
                          persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                          generator=torch.Generator().manual_seed(seed))

    if prep is None:
        train_ds, val_ds = BatchDataset(train_src, train_y, transform), BatchDataset(val_src, val_y)
    else:
        train_ds, val_ds = prep.dataset(train.paths, train_y, train=True), prep.dataset(val.paths, val_y, train=False)
    bundle = DataBundle(
        train_loader=loader(train_ds, train_sampler, cfg.train.seed),
        val_loader=loader(val_ds, val_sampler, 0),
        train_sampler=train_sampler,
        num_classes=num_classes,
        class_names=names,
        channels=channels,
        img_size=hw,
        train_size=len(train.labels),
        val_size=len(val.labels),
        train_labels=train.labels,
        holdout_images=holdout,
        holdout_labels=val.labels[:k].clone(),
        mixup=mixup,
        workers=workers,
        pin_memory=pin,
        in_memory=in_memory,
        on_device=on_device,
        split=split,
        eval_crop_pct=d.crop_pct if prep is not None else None,
    )
    if prep is not None:  # batches arrive cropped, resized and augmented on the device
        bundle.train_loader = prep.wrap(bundle.train_loader, device)  # type: ignore[assignment]
        bundle.val_loader = prep.wrap(bundle.val_loader, device)  # type: ignore[assignment]
    if bundle.steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size: {d.batch_size} leaves no training batch "
                          f"({bundle.train_size} training images)")
    return bundle


def class_weights(spec: list[float] | str | None, labels: torch.Tensor, num_classes: int) -> torch.Tensor | None:
    """``loss.class_weights`` as a tensor: a given list, or 'balanced' (inverse frequency)."""
    if spec is None:
        return None
    if spec == "balanced":
        counts = torch.bincount(labels, minlength=num_classes).float()
        return counts.sum() / (num_classes * counts.clamp(min=1))
    weights = torch.tensor(spec, dtype=torch.float32)
    if len(weights) != num_classes:
        raise ConfigError(f"loss.class_weights: {len(weights)} weights for {num_classes} classes")
    return weights


def normalization(mean: list[float] | tuple[float, ...] | None, std: list[float] | tuple[float, ...] | None,
                  channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std (0..1 scale) for ``channels``: given, or ImageNet's (averaged for greyscale)."""
    mean = tuple(mean) if mean else IMAGENET_MEAN
    std = tuple(std) if std else IMAGENET_STD

    def fit(v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) == channels:
            return v
        if len(v) == 1:
            return v * channels
        if channels == 1:
            return (sum(v) / len(v),)
        raise ConfigError(f"data.mean/std: {len(v)} values for {channels} channels")

    return fit(mean), fit(std)
