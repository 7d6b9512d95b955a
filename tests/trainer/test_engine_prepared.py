"""The prepared pipeline: the image cache, crop boxes, device augmentation, eval crops, training on it."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.images import make_folder
from trainer.engine import cache as cache_mod
from trainer.engine.cache import CacheSpec, decode_stored, list_caches, open_cache, stored_dims
from trainer.engine.config import load_config
from trainer.engine.data import build_data
from trainer.engine.device_augment import apply_params, sample_crop_boxes, sample_params
from trainer.errors import ConfigError, DataError


def spec_for(root: Path, short: int = 32) -> CacheSpec:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return CacheSpec(root, files, [0] * len(files), short, 3)


def slow_decoding(monkeypatch: pytest.MonkeyPatch, delay: float) -> tuple[list[str], threading.Event]:
    """Every decode of a cache build takes ``delay`` s longer; returns (the files decoded, set at the first)."""
    calls: list[str] = []
    started = threading.Event()
    real = cache_mod.decode_stored

    def slow(*a):
        calls.append(a[0])
        started.set()
        time.sleep(delay)
        return real(*a)

    monkeypatch.setattr(cache_mod, "decode_stored", slow)
    return calls, started


def pil_reference(path: Path, short: int) -> np.ndarray:
    """The documented resize: decoded by PIL, antialiased bicubic to torchvision's Resize(short) size."""
    with Image.open(path) as im:
        arr = np.array(im.convert("RGB"))
    th, tw = stored_dims(arr.shape[0], arr.shape[1], short)
    if (th, tw) == arr.shape[:2]:
        return arr
    x = torch.from_numpy(arr).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(x, size=(th, tw), mode="bicubic", antialias=True)[0].permute(1, 2, 0).numpy()


def pil_resize(path: Path, short: int) -> np.ndarray:
    """What timm's eval Resize does: PIL's bicubic."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        th, tw = stored_dims(im.size[1], im.size[0], short)
        return np.asarray(im.resize((tw, th), Image.BICUBIC))


# ------------------------------------------------------------------ the cache


@pytest.mark.parametrize("writeback", [None, 1])
def test_cache_round_trips_the_pixels_aspect_preserved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       writeback: int | None) -> None:
    if writeback is not None:  # the disk writes started after every image: the same pixels at the same offsets
        monkeypatch.setattr("trainer.engine.cache.WRITEBACK_BYTES", writeback)
    make_folder(tmp_path / "imgs", fmt="png")
    spec = spec_for(tmp_path / "imgs", short=32)
    images = open_cache(spec, tmp_path / "cache", workers=2)
    assert len(images) == len(spec.files)
    for i, path in enumerate(spec.files):
        stored = images[i]
        ref = pil_reference(path, 32)
        assert stored.dtype == np.uint8 and stored.shape == ref.shape
        assert np.array_equal(stored, ref), path
        assert np.abs(stored.astype(int) - pil_resize(path, 32)).mean() < 0.5  # and PIL's bicubic, nearly
        h, w = stored.shape[:2]
        with Image.open(path) as im:
            ow, oh = im.size
        assert min(h, w) == 32  # short side at the stored size
        assert abs(w / h - ow / oh) < 0.05  # aspect ratio kept


def test_large_jpegs_use_dct_scaling_within_a_grey_level(tmp_path: Path) -> None:
    rng = np.random.RandomState(1)
    base = rng.randint(0, 256, (40, 50, 3)).astype(np.uint8)
    big = np.asarray(Image.fromarray(base).resize((500, 400), Image.BILINEAR))  # smooth: JPEG-friendly
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=95)
    stored = decode_stored(path, 64, 3)
    ref = pil_reference(path, 64)
    assert stored.shape == ref.shape == (64, 80, 3)
    assert np.abs(stored.astype(int) - ref).mean() < 2.0


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path: Path) -> None:
    paths = make_folder(tmp_path / "imgs", fmt="png")
    cache_dir = tmp_path / "cache"
    first = open_cache(spec_for(tmp_path / "imgs"), cache_dir, workers=1)
    again = open_cache(spec_for(tmp_path / "imgs"), cache_dir, workers=1)
    assert first.folder == again.folder and len(list_caches(cache_dir)) == 1
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(paths[0])  # new content
    st = paths[0].stat()
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rebuilt = open_cache(spec_for(tmp_path / "imgs"), cache_dir, workers=1)
    assert rebuilt.folder != first.folder
    row = rebuilt.relpaths.index(paths[0].relative_to(tmp_path / "imgs").as_posix())
    assert rebuilt[row].max() == 0
    assert not np.array_equal(first[row], rebuilt[row])


def test_size_settings_change_the_key(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    assert spec_for(tmp_path / "imgs", 32).key() != spec_for(tmp_path / "imgs", 48).key()


BUILD_SLOWLY = """
import sys, time
from pathlib import Path
from trainer.engine import cache
real = cache.decode_stored
def slow(*a):
    time.sleep(0.05)
    return real(*a)
cache.decode_stored = slow
root = Path(sys.argv[1])
files = sorted(p for p in root.rglob("*") if p.is_file())
cache.open_cache(cache.CacheSpec(root, files, [0] * len(files), 32, 3), Path(sys.argv[2]), workers=1)
"""


def test_a_killed_build_is_never_trusted_and_the_next_run_rebuilds(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs", classes=2, per_class=30, fmt="png")
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", BUILD_SLOWLY, str(tmp_path / "imgs"), str(cache_dir)], env=env)
    deadline = time.time() + 60
    shard = None
    while time.time() < deadline and proc.poll() is None:
        shards = list(cache_dir.glob(".tmp-*/part000-000.bin"))
        if shards and shards[0].stat().st_size > 0:
            shard = shards[0]
            break
        time.sleep(0.02)
    assert shard is not None, "the build never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    spec = spec_for(tmp_path / "imgs")
    assert not (cache_dir / spec.key()).exists() and list_caches(cache_dir) == []  # nothing published
    images = open_cache(spec, cache_dir, workers=1)  # rebuilds
    assert not list(cache_dir.glob(".tmp-*"))  # the leftovers are gone
    for i in (0, len(spec.files) // 2, len(spec.files) - 1):
        assert np.array_equal(images[i], pil_reference(spec.files[i], 32))


def test_a_folder_without_its_marker_is_rebuilt(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs", fmt="png")
    spec = spec_for(tmp_path / "imgs")
    images = open_cache(spec, tmp_path / "cache", workers=1)
    images.close()
    (images.folder / cache_mod.MARKER).unlink()
    (images.folder / "part000-000.bin").write_bytes(b"\0" * 10)  # garbage that must not be read
    again = open_cache(spec, tmp_path / "cache", workers=1)
    assert np.array_equal(again[0], pil_reference(spec.files[0], 32))


def test_concurrent_openers_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "imgs", fmt="png")
    spec = spec_for(tmp_path / "imgs")
    calls, _ = slow_decoding(monkeypatch, 0.01)
    results = []
    threads = [threading.Thread(target=lambda: results.append(open_cache(spec, tmp_path / "cache", workers=1)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(calls) == len(spec.files)  # one build; the others waited and reused it
    assert len({r.folder for r in results}) == 1


def test_lru_eviction_keeps_the_cap_and_spares_caches_in_use(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    opened = []
    for k in range(3):
        make_folder(tmp_path / f"imgs{k}", seed=k, fmt="png")
        img = open_cache(spec_for(tmp_path / f"imgs{k}"), cache_dir, workers=1)
        os.utime(img.folder / cache_mod.LAST_USED, (1000 + k, 1000 + k))
        opened.append(img)
    opened[1].close()
    opened[2].close()
    one = list_caches(cache_dir)[0].bytes
    removed = cache_mod.evict(cache_dir, max_bytes=int(one * 2.5))
    assert removed == [opened[1].folder.name]  # the least recently used one not in use: then it fits
    removed = cache_mod.evict(cache_dir, max_bytes=int(one * 0.5))
    assert removed == [opened[2].folder.name]
    left = [e.key for e in list_caches(cache_dir)]
    assert left == [opened[0].folder.name]  # the oldest, but in use (its shared lock is held)
    opened[0].close()
    assert cache_mod.evict(cache_dir, max_bytes=0) == left


# ------------------------------------------------------------------ crop boxes


def test_crop_boxes_follow_torchvisions_scale_and_ratio_distributions() -> None:
    from scipy.stats import ks_2samp, kstest
    from torchvision.transforms import RandomResizedCrop

    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    n, h, w = 4000, 300, 400
    boxes = sample_crop_boxes(np.full(n, h), np.full(n, w), scale, ratio, np.random.default_rng(0))
    torch.manual_seed(0)
    ref = np.array([RandomResizedCrop.get_params(torch.empty(1, h, w), list(scale), list(ratio)) for _ in range(n)])
    for b in (boxes, ref):
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 0] + b[:, 2] <= h).all() and (b[:, 1] + b[:, 3] <= w).all()
    area = boxes[:, 2] * boxes[:, 3] / (h * w)
    log_ratio = np.log(boxes[:, 3] / boxes[:, 2])
    ref_area = ref[:, 2] * ref[:, 3] / (h * w)
    ref_log_ratio = np.log(ref[:, 3] / ref[:, 2])
    assert ks_2samp(area, ref_area).pvalue > 0.01
    assert ks_2samp(log_ratio, ref_log_ratio).pvalue > 0.01
    assert area.min() >= 0.07 and area.max() <= 1.0 and np.abs(log_ratio).max() <= math.log(4 / 3) + 0.02
    assert abs(log_ratio.mean()) < 0.03  # symmetric in log ratio
    # where every try fits (a square image, ratio 1), the area fraction is the uniform law itself
    sq = sample_crop_boxes(np.full(n, 400), np.full(n, 400), scale, (1.0, 1.0), np.random.default_rng(1))
    assert kstest(sq[:, 2] * sq[:, 3] / 400**2, "uniform", args=(0.08, 0.92)).pvalue > 0.01
    centre_left = boxes[:, 1] + boxes[:, 3] / 2
    assert abs(centre_left.mean() - w / 2) < 5  # placed uniformly: centred on average


def test_crop_box_fallback_is_torchvisions_centre_crop() -> None:
    from torchvision.transforms import RandomResizedCrop

    for h, w in ((10, 400), (400, 10)):  # no try can fit: clamp the ratio and centre
        ours = sample_crop_boxes(np.array([h]), np.array([w]), (0.9, 1.0), (3 / 4, 4 / 3), np.random.default_rng(0))
        ref = RandomResizedCrop.get_params(torch.empty(1, h, w), [0.9, 1.0], [3 / 4, 4 / 3])
        assert tuple(ours[0]) == tuple(ref)


def test_device_augmentations_are_batched_and_follow_the_batch_seed() -> None:
    from trainer.engine.config import normalize_augment

    aug = normalize_augment({"hflip": 0.5, "vflip": 0.5, "color_jitter": 1.0, "gamma": 0.5, "rgb_shift": 0.5,
                             "channel_shuffle": 0.5, "blur": 0.5, "noise": 0.5, "random_erase": 0.5,
                             "brightness": 0.5, "contrast": 0.5, "hue_saturation": 0.5})
    x = torch.rand(8, 3, 16, 16) * 255
    outs = [apply_params(x, sample_params(aug, 8, 3, (16, 16), np.random.default_rng(s)), aug) for s in (5, 5, 6)]
    assert outs[0].shape == x.shape and outs[0].dtype == torch.float32
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    assert outs[0].min() >= 0 and outs[0].max() <= 255
    flip = normalize_augment({"hflip": 1.0})
    assert torch.equal(apply_params(x, sample_params(flip, 8, 3, (16, 16), np.random.default_rng(0)), flip),
                       x.flip(3))


def test_colour_jitter_matches_torchvision_per_image() -> None:
    from torchvision.transforms.v2 import functional as TF

    from trainer.engine.device_augment import _jitter

    g = torch.Generator().manual_seed(0)
    x = 100 + torch.rand(3, 3, 8, 8, generator=g) * 50  # mid-range: no step clips
    f = torch.tensor([[1.2, 0.8, 1.3, 0.05], [0.7, 1.1, 0.6, -0.08], [1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    steps = [lambda im, v: TF.adjust_brightness(im, v), lambda im, v: TF.adjust_contrast(im, v),
             lambda im, v: TF.adjust_saturation(im, v), lambda im, v: TF.adjust_hue(im, v)]
    for order, layout in (([0, 1, 2, 3], torch.channels_last), ([2, 3, 1, 0], torch.contiguous_format),
                          ([1, 0, 3, 2], torch.channels_last), ([1, 2, 0, 3], torch.contiguous_format)):
        ours = _jitter(x.contiguous(memory_format=layout), f, order) / 255
        for i in range(3):
            ref = x[i] / 255
            for k in order:
                ref = steps[k](ref, float(f[i, k]))
            assert torch.allclose(ours[i], ref, atol=1e-4), (order, layout, i)
    wild = _jitter(torch.rand(2, 3, 8, 8, generator=g) * 255, torch.tensor([[1.4, 1.4, 1.4, 0.1]] * 2), [0, 1, 2, 3])
    assert wild.min() >= 0 and wild.max() <= 255


def test_cpu_workers_jitter_uint8_images_like_the_batched_path_to_rounding() -> None:
    """Training on the CPU, workers jitter uint8 channels-last crops (OpenCV): the batched path's colours
    to within a grey level (uint8 rounding and OpenCV's fixed-point matrix), for RGB and for one channel."""
    from trainer.engine.device_augment import jitter_uint8

    for c in (3, 1):
        aug = {"color_jitter": {"p": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.0},
               "gamma": {"p": 1.0, "gamma": [0.8, 1.25]}}
        x = torch.randint(0, 256, (6, c, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        p = sample_params(aug, 6, c, (12, 10), np.random.default_rng(3))
        batched = apply_params(x.float(), {k: v for k, v in p.items() if k != "gamma"}, aug)
        hwc = x.permute(0, 2, 3, 1).numpy().copy()  # C order (for one channel the view is x itself)
        rest = jitter_uint8(hwc, dict(p))
        y = torch.from_numpy(hwc).permute(0, 3, 1, 2)
        assert set(rest) == {"gamma"}  # what the worker did not do is left for the batched path
        err = (y.float() - batched).abs()
        assert err.max() <= 1.0 and err.mean() <= 0.3, (c, err.max(), err.mean())  # OpenCV's fixed point
        assert not torch.equal(y, x)  # it did jitter, in place
    hue = sample_params({"color_jitter": {**aug["color_jitter"], "hue": 0.1}}, 6, 3, (12, 10),
                        np.random.default_rng(3))
    z = np.ascontiguousarray(np.random.default_rng(0).integers(0, 256, (6, 12, 10, 3), dtype=np.uint8))
    before = z.copy()
    assert set(jitter_uint8(z, dict(hue))) == set(hue) and np.array_equal(z, before)  # hue via HSV: batched


def test_worker_crops_are_resized_and_flipped_in_place_like_torch() -> None:
    """The workers' OpenCV resize and flips write into the batch: close to torch's antialiased bicubic
    (what the device path and evaluation use), flipped exactly, for RGB and one channel."""
    from trainer.engine.cache import resize
    from trainer.engine.prepared import _flip, fit_crop

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(base).permute(2, 0, 1)[None], size=(90, 120),
                                             mode="bilinear")[0].permute(1, 2, 0).round().to(torch.uint8).numpy()
    for c in (3, 1):
        img = np.ascontiguousarray(smooth[..., :c])
        for box, out_hw in (((5, 7, 40, 50), (64, 64)), ((0, 0, 90, 120), (48, 40)), ((3, 2, 70, 30), (50, 50))):
            t, left, h, w = box
            crop = img[t:t + h, left:left + w]  # a strided view, as sliced from the memory map
            out = np.zeros((*out_hw, c), np.uint8)
            fit_crop(crop, out)
            ref = resize(torch.from_numpy(np.array(crop)).permute(2, 0, 1)[None], out_hw)[0].permute(1, 2, 0)
            assert np.abs(out.astype(float) - ref.numpy()).mean() < 1.5, (c, box)
            exact = np.zeros_like(out)
            fit_crop(crop, exact, exact=True)
            assert np.array_equal(exact, ref.numpy())
            flipped = out.copy()
            _flip(flipped, 1)
            assert np.array_equal(flipped, out[:, ::-1])
            _flip(flipped, 0)
            assert np.array_equal(flipped, out[::-1, ::-1])


# ------------------------------------------------------------------ through build_data


def cfg(root: Path, **data) -> object:
    base = {"dataset": f"imagefolder:{root}", "img_size": 24, "batch_size": 4, "workers": 0}
    return load_config({"model": {"name": "test_resnet"}, "data": {**base, **data}, "train": {"seed": 0}})


def test_eval_transform_matches_timm_within_one_grey_level(tmp_path: Path) -> None:
    from timm.data import create_transform, resolve_data_config

    root = tmp_path / "imgs"
    make_folder(root / "train", classes=2, per_class=3)
    make_folder(root / "val", classes=2, per_class=6, seed=3)
    b = build_data(cfg(root, img_size=32))
    dc = resolve_data_config({"input_size": (3, 32, 32)})
    assert dc["crop_pct"] == 0.875
    tf = create_transform(**dc, is_training=False)
    mean = torch.tensor(dc["mean"]).view(3, 1, 1)
    std = torch.tensor(dc["std"]).view(3, 1, 1)
    val_paths = sorted((root / "val").rglob("*.jpg"))
    ours = torch.cat([x for x, _ in b.val_loader]) / 255.0
    refs = []
    for p in val_paths:
        with Image.open(p) as im:
            refs.append(tf(im.convert("RGB")) * std + mean)
    ref = torch.stack(refs)
    assert ours.shape == ref.shape == (12, 3, 32, 32)
    diff = (ours - ref).abs().mean().item()
    assert diff <= 1 / 255, diff
    assert torch.equal(b.holdout_images.float() / 255, (ours[:len(b.holdout_images)] * 255).round() / 255)
    # predict/eval/export read single files the same way (trainer.ops.restore.read_images)
    from trainer.engine.prepared import eval_image

    one = torch.stack([eval_image(p, (32, 32), 3, 0.875) for p in val_paths]).float() / 255
    assert torch.equal(one, (ours * 255).round() / 255)


def test_train_batches_are_full_resolution_crops_of_the_right_size(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs", classes=2, per_class=8)
    aug = {"random_resized_crop": 1.0, "hflip": 0.5, "color_jitter": 0.8}
    for mode in ("device", "workers"):
        b = build_data(cfg(tmp_path / "imgs", augment=aug, crop_resize=mode))
        b.train_sampler.set_epoch(0)
        x, y = next(iter(b.train_loader))
        assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32 and y.shape == (4,)
        b.train_sampler.set_epoch(0)
        x2, _ = next(iter(b.train_loader))
        assert torch.equal(x, x2)  # the batch's seed fixes its augmentation
        b.train_sampler.set_epoch(1)
        assert not torch.equal(x, next(iter(b.train_loader))[0])


def test_workers_default_to_the_available_cores(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    b = build_data(cfg(tmp_path / "imgs", workers=None))
    assert b.workers == len(os.sched_getaffinity(0))


def test_augmentations_without_a_batched_form_are_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    with pytest.raises(ConfigError, match=r"data.augment.jpeg: not available with data.pipeline: prepared"):
        build_data(cfg(tmp_path / "imgs", augment={"jpeg": 0.5}))
    b = build_data(cfg(tmp_path / "imgs", augment={"jpeg": 0.5}, pipeline="files"))  # the per-file path has it
    assert b.train_size > 0


def test_files_pipeline_is_the_old_squashing_path(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    b = build_data(cfg(tmp_path / "imgs", pipeline="files"))
    b.train_sampler.set_epoch(0)
    x, _ = next(iter(b.train_loader))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 24, 24)
    with pytest.raises(ConfigError, match="data.pipeline"):
        cfg(tmp_path / "imgs", pipeline="fast")


def test_a_short_training_run_on_a_generated_folder_learns(tmp_path: Path) -> None:
    from trainer.engine.runner import run_training

    make_folder(tmp_path / "imgs", classes=3, per_class=24, seed=7)
    config = {"model": {"name": "test_resnet"},
              "data": {"dataset": f"imagefolder:{tmp_path / 'imgs'}", "img_size": 24, "batch_size": 16,
                       "val_split": 0.25, "workers": 1,
                       "augment": {"random_resized_crop": {"scale": [0.35, 1.0]}, "hflip": 0.5,
                                   "color_jitter": {"p": 0.5, "hue": 0.02}}},
              "optimizer": {"name": "adamw", "lr": 3e-3}, "scheduler": {"name": "cosine"},
              "train": {"epochs": 3, "seed": 0, "device": "cpu"}}
    result = run_training(config, tmp_path / "run", quiet=True)
    assert result.status == "completed", result.error
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    accs = [r["val_acc"] for r in rows if r.get("scope") == "epoch" and "val_acc" in r]
    assert accs[-1] >= 0.8  # three colours: chance is 1/3
    # predict/eval/export see images as validation did: the checkpoint says to centre-crop
    from trainer.ops.restore import read_images, restore_run

    run = restore_run(tmp_path / "run")
    assert run.preprocess.crop_pct == 0.875
    files = sorted((tmp_path / "imgs").rglob("*.jpg"))[:4]
    from trainer.engine.prepared import eval_image

    assert torch.equal(read_images(files, run.preprocess), torch.stack([eval_image(f, (24, 24), 3, 0.875)
                                                                          for f in files]))


# ------------------------------------------------------------------ trainer cache ls / rm


def test_cache_ls_and_rm(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trainer import cli as trainer_cli

    cache_dir = tmp_path / "cache"
    make_folder(tmp_path / "a", fmt="png")
    make_folder(tmp_path / "b", fmt="png", seed=1)
    kept = open_cache(spec_for(tmp_path / "a"), cache_dir, workers=1)  # stays open: in use
    other = open_cache(spec_for(tmp_path / "b"), cache_dir, workers=1)
    other.close()
    run = CliRunner().invoke
    res = run(trainer_cli.main, ["cache", "ls", "--dir", str(cache_dir), "--json"])
    assert res.exit_code == 0
    listed = json.loads(res.output)
    assert {e["key"] for e in listed} == {kept.folder.name, other.folder.name}
    assert all(e["images"] == 12 and e["bytes"] > 0 for e in listed)
    res = run(trainer_cli.main, ["cache", "rm", "--dir", str(cache_dir)])
    assert res.exit_code == 2 and "--all" in res.output
    res = run(trainer_cli.main, ["cache", "rm", "--dir", str(cache_dir), other.folder.name[:8]])
    assert res.exit_code == 0 and f"removed {other.folder.name}" in res.output
    res = run(trainer_cli.main, ["cache", "rm", "--dir", str(cache_dir), "--all"])
    assert res.exit_code == 1 and "in use" in res.output  # the open cache is left alone
    assert [e.key for e in list_caches(cache_dir)] == [kept.folder.name]
    kept.close()
    res = run(trainer_cli.main, ["cache", "rm", "--dir", str(cache_dir), "--all"])
    assert res.exit_code == 0 and list_caches(cache_dir) == []
    assert "no prepared caches" in run(trainer_cli.main, ["cache", "ls", "--dir", str(cache_dir)]).output


def test_an_undecodable_file_is_one_clear_error(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs", fmt="png")
    (tmp_path / "imgs" / "c0" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode .*broken.png"):
        open_cache(spec_for(tmp_path / "imgs"), tmp_path / "cache", workers=2)
    assert list_caches(tmp_path / "cache") == [] and not list((tmp_path / "cache").glob(".tmp-*"))


def test_a_failing_slice_stops_the_others_at_their_next_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One bad file ends the whole build soon: the other threads do not decode the rest of their slice."""
    make_folder(tmp_path / "imgs", classes=2, per_class=20, fmt="png")
    first = min((tmp_path / "imgs").rglob("*.png"))
    first.write_bytes(b"not an image")  # the first file of the first slice
    calls, _ = slow_decoding(monkeypatch, 0.02)
    with pytest.raises(DataError, match="cannot decode"):
        open_cache(spec_for(tmp_path / "imgs"), tmp_path / "cache", workers=2)
    assert len(calls) < 10  # of 40: the second slice stopped within a few images
    assert list_caches(tmp_path / "cache") == [] and not list((tmp_path / "cache").glob(".tmp-*"))


def test_a_build_says_how_it_goes_and_a_second_opener_says_it_waits(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "imgs", classes=2, per_class=20, fmt="png")
    _, started = slow_decoding(monkeypatch, 0.02)
    monkeypatch.setattr(cache_mod, "PROGRESS_S", 0.05)
    spec = spec_for(tmp_path / "imgs")
    heard: list[str] = []
    waiter: list[str] = []
    builder = threading.Thread(target=lambda: open_cache(spec, tmp_path / "cache", workers=2, say=heard.append))
    builder.start()
    assert started.wait(10)
    second = open_cache(spec, tmp_path / "cache", workers=2, say=waiter.append)  # blocks until it is built
    builder.join()
    assert heard[0].startswith(f"preparing 40 images of {tmp_path / 'imgs'} into {tmp_path / 'cache'}")
    done = [int(m.group(1)) for line in heard[1:-1] if (m := re.match(r"prepared (\d+) of 40 images \(", line))]
    assert len(done) >= 2 and done == sorted(done) and all(0 <= d <= 40 for d in done), heard
    assert re.match(r"prepared 40 images in \d+\.\d s \(\d+\.\d MB\)", heard[-1]), heard[-1]
    assert waiter == [f"waiting for another process to finish preparing {second.folder}"]
    assert len(second) == 40


def test_a_disk_without_room_for_the_cache_is_one_clear_error_before_any_work(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "imgs", classes=2, per_class=20)
    spec = spec_for(tmp_path / "imgs")
    need = cache_mod.estimate_bytes(spec)
    assert need == sum(h * w * 3 for h, w in (stored_dims(*reversed(Image.open(f).size), 32) for f in spec.files))
    calls, _ = slow_decoding(monkeypatch, 0.0)
    real = cache_mod.shutil.disk_usage
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: real(p)._replace(free=need // 2))
    with pytest.raises(DataError, match=r"preparing 40 images of .*imgs needs about 0\.0 GB in .*cache, which has "
                                        r"0\.0 GB free: free some space, set data.cache_dir to a larger disk"):
        open_cache(spec, tmp_path / "cache", workers=2)
    assert calls == [] and list_caches(tmp_path / "cache") == [] and not list((tmp_path / "cache").glob(".tmp-*"))
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", real)
    built = open_cache(spec, tmp_path / "cache", workers=2)  # with the room it builds, and the estimate was right
    assert sum(int(np.prod(built.shapes[i])) for i in range(len(built))) == need


def test_the_gpu_script_runs_in_smoke_mode_on_the_cpu() -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, str(repo / "bench" / "gpu_pipeline.py"), "--smoke"], check=False, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    table = [line for line in res.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 8 and "images/s" in table[0] and "share of ceiling" in table[0]
    assert any("crop_resize device, epoch 2" in line for line in table)
