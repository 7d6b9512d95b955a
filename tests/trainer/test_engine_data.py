"""Datasets, splits, fractions, image sizes, augmentations and batch determinism."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.engine.augment import build_mixup, build_transform
from trainer.engine.config import AUGMENTATIONS, BATCH_AUGMENTATIONS, load_config
from trainer.engine.data import (
    EpochBatchSampler,
    build_data,
    load_fashion_mnist,
    read_idx,
    stratified_fraction,
)
from trainer.errors import ConfigError, DataError


def cfg(**data) -> object:
    return load_config({"model": {"name": "test_resnet"}, "data": data, "train": {"seed": 0}})


def first_batch(bundle) -> tuple[torch.Tensor, torch.Tensor]:
    bundle.train_sampler.set_epoch(0)
    return next(iter(bundle.train_loader))


def test_digits_upscaled_split_and_deterministic() -> None:
    b = build_data(cfg(dataset="digits", img_size=16, batch_size=32))
    assert (b.num_classes, b.channels, b.img_size) == (10, 1, (16, 16))
    assert b.train_size + b.val_size == 1797 and 300 < b.val_size < 400
    assert b.class_names == [str(i) for i in range(10)]
    x, y = first_batch(b)
    assert x.dtype == torch.uint8 and x.shape == (32, 1, 16, 16) and y.shape == (32,)
    x2, y2 = first_batch(build_data(cfg(dataset="digits", img_size=16, batch_size=32)))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert b.holdout_images.shape == (16, 1, 16, 16)


def test_non_square_rgb_and_fraction() -> None:
    b = build_data(cfg(dataset="digits", img_size=[12, 20], channels=3, fraction=0.25, batch_size=16))
    x, _ = first_batch(b)
    assert x.shape == (16, 3, 12, 20)
    assert torch.equal(x[:, 0], x[:, 1])  # greyscale expanded to RGB
    full = build_data(cfg(dataset="digits", img_size=8))
    assert abs(b.train_size - 0.25 * full.train_size) < 10
    assert torch.bincount(b.train_labels).min() >= 30  # stratified: every class keeps its share


def test_fractions_are_nested_and_stratified() -> None:
    labels = torch.arange(1000) % 4
    quarter = set(stratified_fraction(labels, 0.25).tolist())
    half = set(stratified_fraction(labels, 0.5).tolist())
    assert quarter < half and len(half) == 500
    assert torch.bincount(labels[list(quarter)]).tolist() == [62, 62, 62, 62] or \
        torch.bincount(labels[list(quarter)]).tolist() == [63, 63, 63, 63]


def test_sampler_order_depends_on_seed_and_epoch_and_can_skip() -> None:
    s = EpochBatchSampler(10, 3, shuffle=True, drop_last=True, seed=1)
    s.set_epoch(0)
    e0 = list(s)
    assert len(e0) == 3 and all(len(idx) == 3 for _, idx in e0)
    s.set_epoch(1)
    assert [i for _, i in s] != [i for _, i in e0]
    s.set_epoch(0, start_batch=2)
    assert list(s) == e0[2:] and len(s) == 1


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_gz_files(tmp_path: Path) -> None:
    rng = np.random.RandomState(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.randint(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    train, val, names = load_fashion_mnist(str(tmp_path))
    assert train.images.shape == (40, 1, 28, 28) and val.labels.tolist() == [i % 10 for i in range(20)]
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    b = build_data(cfg(dataset="fashion_mnist", root=str(tmp_path), img_size=32, batch_size=8))
    assert b.train_size == 40 and b.val_size == 20 and first_batch(b)[0].shape == (8, 1, 32, 32)
    assert read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz").shape == (20,)


def test_fashion_mnist_missing_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(str(tmp_path))
    assert "nothing is downloaded" in str(exc.value)
    import trainer.engine.data as data_mod

    original = data_mod.FASHION_MNIST_DIR
    data_mod.FASHION_MNIST_DIR = tmp_path / "nowhere"
    try:
        with pytest.raises(DataError) as exc:
            load_fashion_mnist(None)
    finally:
        data_mod.FASHION_MNIST_DIR = original
    assert "apt-get install dataset-fashion-mnist" in str(exc.value)


def make_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (10, 14)) -> None:
    from PIL import Image

    rng = np.random.RandomState(0)
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.randint(0, 256, (*size, 3)).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")


def test_imagefolder_with_train_and_val(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", {"cat": 6, "dog": 4})
    make_folder(tmp_path / "val", {"cat": 2, "dog": 2})
    b = build_data(cfg(dataset=f"imagefolder:{tmp_path}", img_size=8, batch_size=4))
    assert b.class_names == ["cat", "dog"] and (b.train_size, b.val_size) == (10, 4)
    assert first_batch(b)[0].shape == (4, 3, 8, 8)


def test_imagefolder_split_and_greyscale(tmp_path: Path) -> None:
    make_folder(tmp_path, {"a": 5, "b": 5, "c": 5})
    b = build_data(cfg(dataset=f"imagefolder:{tmp_path}", img_size=8, batch_size=4, channels=1, val_split=0.2))
    assert b.num_classes == 3 and b.val_size == 3 and b.train_size == 12
    assert first_batch(b)[0].shape == (4, 1, 8, 8)


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        build_data(cfg(dataset=f"imagefolder:{tmp_path / 'missing'}"))
    make_folder(tmp_path / "only", {"one": 3})
    with pytest.raises(DataError, match="at least two class folders"):
        build_data(cfg(dataset=f"imagefolder:{tmp_path / 'only'}"))


def test_fake_dataset_is_learnable_shape() -> None:
    b = build_data(load_config({"model": {"name": "test_resnet", "num_classes": 5},
                                "data": {"dataset": "fake", "img_size": 12, "fake_samples": 64, "batch_size": 16}}))
    assert (b.num_classes, b.channels, b.train_size, b.val_size) == (5, 3, 64, 16)


@pytest.mark.parametrize("name", [n for n in AUGMENTATIONS if n not in BATCH_AUGMENTATIONS])
def test_each_augmentation_keeps_shape_and_dtype(name: str) -> None:
    t = build_transform({name: 1.0}, size=(12, 16), channels=3)
    img = torch.randint(0, 256, (3, 12, 16), dtype=torch.uint8)
    out = t(img)
    assert out.shape == (3, 12, 16) and out.dtype == torch.uint8


def test_rgb_only_augmentation_on_greyscale_is_an_error() -> None:
    with pytest.raises(ConfigError, match="needs RGB"):
        build_transform({"channel_shuffle": 0.5}, size=(8, 8), channels=1)


def test_augmented_batches_repeat_exactly_whatever_loads_them() -> None:
    def batch(workers: int) -> torch.Tensor:
        b = build_data(cfg(dataset="digits", img_size=16, batch_size=8, workers=workers,
                           augment={"random_resized_crop": 1.0, "hflip": 0.5, "noise": 0.5}))
        return first_batch(b)[0]

    plain = build_data(cfg(dataset="digits", img_size=16, batch_size=8))
    a, b = batch(0), batch(1)
    assert torch.equal(a, b)  # same augmentation in the main process and in a worker
    assert not torch.equal(a, first_batch(plain)[0])  # and it did augment


def test_mixup_mixes_targets() -> None:
    mix = build_mixup({"mixup": 1.0}, num_classes=4, label_smoothing=0.0)
    x = torch.randn(6, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    _, target = mix(x, y)
    assert target.shape == (6, 4) and torch.allclose(target.sum(1), torch.ones(6))
    assert build_mixup({"hflip": 0.5}, num_classes=4, label_smoothing=0.0) is None


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package() -> None:
    b = build_data(cfg(dataset="fashion_mnist", img_size=28, batch_size=256))
    assert (b.train_size, b.val_size, b.num_classes, b.channels) == (60000, 10000, 10, 1)
    assert torch.bincount(b.train_labels).tolist() == [6000] * 10
    x, _ = first_batch(b)
    assert x.shape == (256, 1, 28, 28) and x.float().mean() > 10
