"""Inputs of a run: weighted samplers, imbalanced subsets, engineered features, CLAHE and median blur."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from trainer.engine.augment import build_transform
from trainer.engine.config import FEATURES, apply_overrides, load_config
from trainer.engine.data import EpochBatchSampler, build_data
from trainer.engine.features import FeatureStack, feature_channels
from trainer.engine.filters import clahe, median_blur
from trainer.engine.loop import load_checkpoint
from trainer.engine.runner import run_training
from trainer.engine.runs import read_metrics
from trainer.engine.sampling import WeightedDraw, class_shares, imbalance_subset
from trainer.errors import ConfigError

IMBALANCED = {"ratio": 0.05, "classes": [1, "3", 5]}  # digits 1, 3 and 5 keep 5% of their images


def cfg(**data) -> object:
    return load_config({"model": {"name": "test_resnet"}, "data": {"dataset": "digits", "img_size": 8, **data},
                        "train": {"seed": 3}})


def epoch_batches(bundle, epoch: int = 0) -> list[torch.Tensor]:
    bundle.train_sampler.set_epoch(epoch)
    return [y for _, y in bundle.train_loader]


# ------------------------------------------------------------------ samplers


def test_balanced_sampler_evens_out_the_classes_of_an_imbalanced_subset() -> None:
    plain = build_data(cfg(batch_size=20, imbalance=IMBALANCED))
    counts = torch.bincount(plain.train_labels, minlength=10)
    assert counts[[1, 3, 5]].tolist() == [7, 7, 7] and counts.min() < counts.max() // 15
    balanced = build_data(cfg(batch_size=20, imbalance=IMBALANCED, sampler="balanced"))
    assert balanced.steps_per_epoch == plain.steps_per_epoch  # an epoch still draws len(train) images
    for y in epoch_batches(balanced):
        per_class = torch.bincount(y, minlength=10)
        assert per_class.max() - per_class.min() <= 2, per_class.tolist()  # 2 per class, give or take
    seen = torch.bincount(torch.cat(epoch_batches(balanced)), minlength=10)
    assert seen.max() - seen.min() <= 2  # minority classes repeat, majority ones are subsampled
    rare = torch.bincount(torch.cat(epoch_batches(plain)), minlength=10)[[1, 3, 5]]
    assert rare.max() <= 7  # without the sampler the rare classes stay rare


def test_sqrt_and_weights_samplers_draw_their_shares() -> None:
    labels = torch.tensor([0] * 400 + [1] * 100 + [2] * 25)
    assert class_shares(labels, 3, "sqrt").tolist() == pytest.approx([20 / 35, 10 / 35, 5 / 35])
    for mode, weights, expected in (("sqrt", None, [300, 150, 75]), ("weights", [0, 1, 4], [0, 105, 420])):
        draw = WeightedDraw(labels, class_shares(labels, 3, mode, weights), seed=0)
        order = torch.tensor(draw(0, 525))
        assert torch.bincount(labels[order], minlength=3).tolist() == expected
    with pytest.raises(ConfigError, match="2 weights for 3 classes"):
        class_shares(labels, 3, "weights", [1, 1])


def test_weighted_order_is_a_function_of_seed_and_epoch_and_resumes_mid_epoch() -> None:
    labels = torch.arange(300) % 3
    labels[labels == 2] = torch.tensor([2] * 10 + [0] * 90)  # class 2 has 10 images

    def sampler(seed: int = 1, **kw) -> EpochBatchSampler:
        draw = WeightedDraw(labels, class_shares(labels, 3, "balanced"), seed)
        return EpochBatchSampler(300, 30, shuffle=True, drop_last=True, seed=seed, draw=draw, **kw)

    def batches(s: EpochBatchSampler, epoch: int, start: int = 0) -> list[list[int]]:
        s.set_epoch(epoch, start_batch=start)
        return [b for _, b in s]

    a = batches(sampler(), 0)
    assert a == batches(sampler(), 0) and a != batches(sampler(), 1) and a != batches(sampler(seed=2), 0)
    assert batches(sampler(), 0, start=4) == a[4:]  # a resumed epoch continues with the same batches
    # DDP: two ranks take the two halves of one draw, the same number of balanced batches each
    ranks = [batches(sampler(rank=r, world_size=2), 0) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 5
    whole = WeightedDraw(labels, class_shares(labels, 3, "balanced"), 1)(0, 300)
    assert [i for b in ranks[0] + ranks[1] for i in b] == whole
    for b in ranks[0] + ranks[1]:
        per_class = torch.bincount(labels[b], minlength=3)
        assert per_class.max() - per_class.min() <= 2, per_class.tolist()


# ------------------------------------------------------------------ imbalanced subsets


def test_imbalance_subset_is_reproducible_nested_and_leaves_validation_alone() -> None:
    full = build_data(cfg(batch_size=32))
    a = build_data(cfg(batch_size=32, imbalance=IMBALANCED))
    b = build_data(cfg(batch_size=32, imbalance=IMBALANCED))
    assert torch.equal(a.train_labels, b.train_labels)
    labels = full.train_labels
    names = full.class_names
    same = imbalance_subset(labels, load_config({"model": "m", "data": {"imbalance": IMBALANCED}}).data.imbalance,
                            names)
    again = imbalance_subset(labels, cfg(imbalance=IMBALANCED).data.imbalance, names)
    other = imbalance_subset(labels, cfg(imbalance=dict(IMBALANCED, seed=1)).data.imbalance, names)
    assert torch.equal(same, again) and not torch.equal(same, other)
    wider = imbalance_subset(labels, cfg(imbalance=dict(IMBALANCED, ratio=0.2)).data.imbalance, names)
    assert set(same.tolist()) < set(wider.tolist())  # ratio 0.05 lies inside ratio 0.2
    counts = torch.bincount(labels[same], minlength=10)
    full_counts = torch.bincount(labels, minlength=10)
    assert counts[[0, 2, 4, 6, 7, 8, 9]].tolist() == full_counts[[0, 2, 4, 6, 7, 8, 9]].tolist()
    assert counts[[1, 3, 5]].tolist() == [round(n * 0.05) for n in full_counts[[1, 3, 5]].tolist()]
    # validation is the same set of images, whatever the training subset
    assert a.val_size == full.val_size
    full.val_loader.sampler.set_epoch(0)
    a.val_loader.sampler.set_epoch(0)
    for (xf, yf), (xa, ya) in zip(full.val_loader, a.val_loader, strict=True):
        assert torch.equal(xf, xa) and torch.equal(yf, ya)


def test_imbalance_without_classes_is_a_long_tail() -> None:
    labels = torch.arange(1000) % 5
    kept = imbalance_subset(labels, cfg(imbalance={"ratio": 0.01}).data.imbalance, [str(i) for i in range(5)])
    assert torch.bincount(labels[kept]).tolist() == [200, round(200 * 0.01 ** 0.25), 20,
                                                     round(200 * 0.01 ** 0.75), 2]


def test_imbalance_names_an_unknown_class() -> None:
    with pytest.raises(ConfigError, match=r"no class 'kat'; did you mean 'cat'"):
        imbalance_subset(torch.tensor([0, 1]), cfg(imbalance={"ratio": 0.5, "classes": ["kat"]}).data.imbalance,
                         ["cat", "dog"])


def test_input_options_from_overrides() -> None:
    raw = apply_overrides({"model": {"name": "test_resnet"}},
                          ["data.sampler=weights", "data.sampler_weights=[1, 2]", "data.features=[rgb, sobel]",
                           "data.imbalance.ratio=0.1", "data.imbalance.classes=[cat]"])
    d = load_config(raw).data
    assert (d.sampler, d.sampler_weights, d.features) == ("weights", [1.0, 2.0], ["rgb", "sobel"])
    assert (d.imbalance.ratio, d.imbalance.classes, d.imbalance.seed) == (0.1, ["cat"], 0)


@pytest.mark.parametrize("data, fragment", [
    ({"sampler": "balance"}, "did you mean 'balanced'"),
    ({"sampler": "weights"}, "data.sampler_weights: sampler: weights needs"),
    ({"sampler_weights": [1, 2]}, "only used with data.sampler: weights"),
    ({"imbalance": {"ratio": 1.5}}, "data.imbalance.ratio: must be in (0, 1]"),
    ({"imbalance": {"ratoi": 0.1}}, "did you mean 'data.imbalance.ratio'"),
    ({"imbalance": {"classes": [1]}}, "set data.imbalance.ratio too"),
    ({"features": ["rgb", "sobol"]}, "did you mean 'sobel'"),
    ({"features": ["fft", "fft"]}, "fft listed twice"),
    ({"features": []}, "an empty list"),
    ({"augment": {"median_blur": {"kernel": 3}}}, "did you mean 'kernel_size'"),
])
def test_input_options_have_one_line_errors(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        cfg(**data)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


# ------------------------------------------------------------------ features

DOCUMENTED_CHANNELS = {"rgb": 3, "gray": 1, "sobel": 1, "sobel_xy": 2, "fft": 1, "wavelet": 4, "scalespace": 3}
STACKS = [["rgb"], ["gray"], ["rgb", "sobel"], ["sobel_xy"], ["fft"], ["rgb", "fft"], ["wavelet"],
          ["gray", "scalespace"]]


def test_each_feature_has_its_documented_channel_count_and_is_normalised() -> None:
    assert FEATURES == DOCUMENTED_CHANNELS
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 12, 10), dtype=torch.uint8).float()
    for name, channels in DOCUMENTED_CHANNELS.items():
        out = FeatureStack([name], None, None, torch.device("cpu"))(x)
        assert out.shape == (4, channels, 12, 10) and torch.isfinite(out).all(), name
        if name not in ("rgb", "gray"):  # derived features: standardised per image and channel
            assert out.mean(dim=(-2, -1)).abs().max() < 1e-4, name
            assert (out.std(dim=(-2, -1), unbiased=False) - 1).abs().max() < 1e-3, name
    stack = FeatureStack(list(DOCUMENTED_CHANNELS), None, None)
    exported = torch.export.export(stack, (x,)).module()  # it can sit in front of an exported model
    assert torch.allclose(exported(x.flip(0)), stack(x.flip(0)))
    grey = FeatureStack(["rgb", "gray"], [0.5], [0.25], torch.device("cpu"))(torch.full((1, 1, 4, 4), 255.0))
    assert torch.allclose(grey, torch.full((1, 4, 4, 4), 2.0))  # (1 - 0.5) / 0.25, greyscale repeated for rgb


def test_features_measure_what_they_say() -> None:
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 255.0  # a vertical edge between columns 3 and 4
    from trainer.engine.features import fft_log_magnitude, haar, sobel_xy

    d = sobel_xy(step / 255)
    assert d[0, 1].abs().max() == 0 and d[0, 0, :, 3:5].min() == 4 and d[0, 0, :, :3].abs().max() == 0
    flat = fft_log_magnitude(torch.ones(1, 1, 8, 8))
    assert flat[0, 0, 4, 4] == flat.max() and flat.sum() == flat[0, 0, 4, 4]  # DC only, at the centre
    bands = haar(torch.ones(1, 1, 5, 7))
    assert bands.shape == (1, 4, 5, 7) and torch.all(bands[:, 0] == 2) and torch.all(bands[:, 1:] == 0)


@pytest.mark.parametrize("stack", STACKS, ids=["+".join(s) for s in STACKS])
def test_each_feature_stack_trains(tmp_path: Path, stack: list[str]) -> None:
    config = {"model": {"name": "test_resnet"},
              "data": {"dataset": "digits", "img_size": 8, "batch_size": 16, "fraction": 0.25, "features": stack},
              "train": {"epochs": 1, "device": "cpu", "max_steps_per_epoch": 3}}
    result = run_training(config, tmp_path / "run", quiet=True, plots=False)
    assert result.status == "completed", result.error
    weights = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    first_conv = next(w for w in weights.values() if w.ndim == 4)
    assert first_conv.shape[1] == feature_channels(stack, 1) == sum(DOCUMENTED_CHANNELS[f] for f in stack)
    [row] = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert row["train_loss"] == row["train_loss"] and 0.0 <= row["val_acc"] <= 1.0  # finite, evaluated


def test_balanced_sampler_with_features_resumes_bit_exactly(tmp_path: Path) -> None:
    config = {"model": {"name": "test_resnet"},
              "data": {"dataset": "digits", "img_size": 8, "batch_size": 16, "fraction": 0.5,
                       "sampler": "balanced", "imbalance": IMBALANCED, "features": ["gray", "sobel"],
                       "augment": {"median_blur": 0.5, "clahe": 0.5}},
              "train": {"epochs": 2, "device": "cpu", "seed": 5, "max_steps_per_epoch": 4}}
    whole = run_training(config, tmp_path / "whole", quiet=True, plots=False)
    stop = threading.Event()
    first = run_training(config, tmp_path / "parts", quiet=True, plots=False, stop=stop,
                         on_step=lambda step: stop.set() if step == 3 else None)
    assert whole.status == "completed" and first.status == "interrupted"
    second = run_training(config, tmp_path / "parts", quiet=True, plots=False, resume_from=tmp_path / "parts")
    assert second.status == "completed"
    a = load_checkpoint(tmp_path / "whole" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "parts" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ clahe and median_blur


def test_median_blur_removes_salt_and_pepper_noise_and_keeps_edges() -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.zeros(3, 32, 32, dtype=torch.uint8)
    clean[:, :, 16:] = 200  # a sharp edge
    noisy = clean.clone()
    spots = torch.rand(32, 32, generator=g) < 0.08
    noisy[:, spots] = (torch.rand(int(spots.sum()), generator=g) < 0.5).to(torch.uint8) * 255
    out = build_transform({"median_blur": 1.0}, size=(32, 32), channels=3)(noisy)
    assert out.dtype == torch.uint8 and out.shape == (3, 32, 32)
    err_before = (noisy.float() - clean.float()).abs().mean()
    err_after = (out.float() - clean.float()).abs().mean()
    assert err_after < err_before / 5
    assert torch.equal(median_blur(clean, 3), clean) and torch.equal(median_blur(clean, 5), clean)  # edge kept
    batch = noisy[None].expand(2, -1, -1, -1)
    assert torch.equal(median_blur(batch, 3), out[None].expand(2, -1, -1, -1))  # batched = per image


def _local_contrast(img: torch.Tensor) -> float:
    tiles = img.float().unfold(-2, 8, 8).unfold(-2, 8, 8)  # 8x8 tiles
    return float(tiles.std(dim=(-2, -1)).mean())


def test_clahe_raises_local_contrast_and_keeps_dtype_shape_and_hue() -> None:
    texture = torch.randint(0, 16, (64, 64), generator=torch.Generator().manual_seed(0))  # faint texture ...
    base = torch.where(torch.arange(64) < 32, 40, 180).expand(64, 64)  # ... on a dark and a bright half
    grey = (base + texture).to(torch.uint8)[None]
    out = clahe(grey, clip_limit=4.0, tile_grid=2)
    assert out.dtype == torch.uint8 and out.shape == grey.shape
    assert _local_contrast(out) > 2 * _local_contrast(grey)
    rgb = torch.stack([grey[0], grey[0] // 2, grey[0] // 4])
    out_rgb = build_transform({"clahe": {"p": 1.0, "clip_limit": [4.0, 4.0], "tile_grid": 2}}, size=(64, 64),
                              channels=3)(rgb)
    assert out_rgb.shape == (3, 64, 64) and out_rgb.dtype == torch.uint8
    assert _local_contrast(out_rgb) > 2 * _local_contrast(rgb)
    spread = out_rgb.float().amax(0) - out_rgb.float().amin(0)  # the luma moves; R-G-B differences stay
    unclipped = (out_rgb.amax(0) < 255) & (out_rgb.amin(0) > 0)
    assert ((spread - (rgb.float().amax(0) - rgb.float().amin(0))).abs()[unclipped] <= 1).all()
    flat = torch.full((1, 16, 16), 90, dtype=torch.uint8)
    assert clahe(flat).unique().numel() == 1  # a flat image stays flat
