"""k-fold and bootstrap selections (data.folds/data.fold, data.bootstrap): no training needed."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.engine.config import load_config
from trainer.engine.data import build_data, load_digits
from trainer.engine.folds import (
    bootstrap_sample,
    fold_assignment,
    fold_indices,
    read_split,
    select,
    write_split,
)
from trainer.errors import ConfigError


def cfg(seed: int = 0, **data) -> object:
    return load_config({"model": {"name": "test_resnet"}, "data": {"img_size": 8, "batch_size": 16, **data},
                        "train": {"seed": seed}})


def digits_train_labels() -> np.ndarray:
    train, _, _ = load_digits(0.2)
    return train.labels.numpy()


def test_k_folds_partition_the_training_set_exactly_and_are_stratified() -> None:
    labels = digits_train_labels()
    k = 5
    vals = [fold_indices(labels, k, i)[1] for i in range(k)]
    everything = np.concatenate(vals)
    assert len(everything) == len(labels) and set(everything.tolist()) == set(range(len(labels)))  # no overlap
    for i in range(k):
        train, val = fold_indices(labels, k, i)
        assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
        assert not set(train.tolist()) & set(val.tolist())
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    for c in np.unique(labels):  # every class spread evenly over the folds
        per_fold = [int((labels[v] == c).sum()) for v in vals]
        assert max(per_fold) - min(per_fold) <= 1


def test_folds_do_not_depend_on_the_run_seed() -> None:
    a = build_data(cfg(seed=0, folds=4, fold=1))
    b = build_data(cfg(seed=123, folds=4, fold=1))
    assert a.split == b.split and a.split["val"] and a.split["fold"] == 1
    assert a.val_size == len(a.split["val"]) and a.train_size + a.val_size == len(digits_train_labels())
    assert torch.equal(a.train_labels, b.train_labels)


def test_fold_bundle_validates_on_its_fold_and_never_on_the_dataset_validation_split() -> None:
    train, _, _ = load_digits(0.2)
    b = build_data(cfg(folds=3, fold=2))
    expected = fold_indices(train.labels.numpy(), 3, 2)[1]
    assert b.split["val"] == expected.tolist()
    seen = torch.cat([lbl for _, lbl in b.val_loader])
    assert torch.equal(seen, train.labels[torch.as_tensor(expected)])
    assert b.val_size == len(expected) and b.train_size == len(train.labels) - len(expected)


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.asarray(array, dtype=np.uint8)
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def test_fashion_mnist_folds_never_use_its_test_set(tmp_path: Path) -> None:
    rng = np.random.RandomState(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.randint(0, 200, (60, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(60) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.full((20, 28, 28), 250))  # marked: all 250
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    for i in range(3):
        b = build_data(cfg(dataset="fashion_mnist", root=str(tmp_path), img_size=28, batch_size=8, folds=3, fold=i))
        assert (b.train_size, b.val_size) == (40, 20)
        for loader in (b.train_loader, b.val_loader):
            if loader is b.train_loader:
                b.train_sampler.set_epoch(0)
            for x, _ in loader:
                assert not (x.flatten(1) == 250).all(dim=1).any()  # no test image in a fold


def test_bootstrap_samples_are_reproducible_by_seed() -> None:
    labels = digits_train_labels()
    a, b, c = (select(labels, bootstrap=s) for s in (7, 7, 8))
    assert np.array_equal(a.train, b.train) and np.array_equal(a.oob, b.oob)
    assert not np.array_equal(a.train, c.train)
    n = len(labels)
    assert len(a.train) == n and len(set(a.train.tolist())) < n  # same size, with replacement
    assert sorted(set(a.oob.tolist()) | set(a.train.tolist())) == list(range(n))
    assert not set(a.oob.tolist()) & set(a.train.tolist())
    assert np.array_equal(bootstrap_sample(100, 3), bootstrap_sample(100, 3))


def test_bootstrap_run_records_its_out_of_bag_indices(tmp_path: Path) -> None:
    b = build_data(cfg(bootstrap=5, fraction=0.5))
    rec = b.split
    assert rec["bootstrap"] == 5 and len(rec["sample"]) == b.train_size
    assert b.val_size > 300  # bagging keeps the dataset's validation split
    assert set(rec["oob"]).isdisjoint(rec["sample"])
    # positions in digits' training split before data.fraction: the sampled labels match them
    train, _, _ = load_digits(0.2)
    assert torch.equal(b.train_labels, train.labels[torch.as_tensor(rec["sample"])])
    write_split(tmp_path, rec)
    assert read_split(tmp_path) == rec
    assert read_split(tmp_path / "nothing") is None
    assert build_data(cfg(bootstrap=5, fraction=0.5)).split == rec


def test_fold_and_bootstrap_together_sample_the_fold_training_part() -> None:
    labels = digits_train_labels()
    sel = select(labels, folds=5, fold=0, bootstrap=1)
    train, val = fold_indices(labels, 5, 0)
    assert set(sel.train.tolist()) <= set(train.tolist()) and len(sel.train) == len(train)
    assert np.array_equal(sel.val, val)
    assert set(sel.oob.tolist()) == set(train.tolist()) - set(sel.train.tolist())


@pytest.mark.parametrize(("data", "message"), [
    ({"folds": 5}, "data.fold: data.folds is 5, so data.fold must say which fold"),
    ({"fold": 1}, "data.fold: needs data.folds"),
    ({"folds": 5, "fold": 5}, "data.fold: must be in 0..4"),
    ({"folds": 1, "fold": 0}, "data.folds: k-fold needs at least 2 folds"),
    ({"bootstrap": -1}, "data.bootstrap: must be >= 0"),
    ({"bootstrp": 1}, "did you mean 'data.bootstrap'?"),
])
def test_bad_fold_and_bootstrap_keys_are_one_line_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        cfg(**data)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_too_few_images_for_the_folds_is_a_config_error() -> None:
    with pytest.raises(ValueError):
        fold_assignment(np.arange(3), 5)
    with pytest.raises(ConfigError, match="cannot make 50 folds"):
        build_data(cfg(dataset="fake", fake_samples=20, folds=50, fold=0))
