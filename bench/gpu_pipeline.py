"""GPU check of issue 17: does the trainer feed the GPU on a real image folder? (at most ~8 minutes)

1. Generates a folder of 13,000 JPEGs (about 300-500 x 250-450 px, 10 classes).
2. The ceiling: model-only training throughput with synthetic data on the GPU, measured as timm's
   ``benchmark.py --bench train`` does (the installed timm package ships no benchmark.py/train.py,
   so this reimplements it with timm's API: create_model, SGD, bf16 autocast, channels-last).
3. timm's way: a minimal ``train.py`` loop, ``create_loader`` over the folder (ImageFolder,
   random-resized-crop + flip + colour jitter 0.4, its GPU prefetcher), the same model and settings.
4. Our trainer on the same folder (``data.pipeline: prepared``, the default), 3 epochs, once with
   crops resized on the GPU (``data.crop_resize: device``, the default there) and once in the loader
   workers (``workers``); the first run builds the cache (its own row), the second reuses it.

``nvidia-smi`` utilisation is sampled every 0.5 s during each; one table is printed: images/s,
utilisation mean, data-wait fraction, share of the ceiling.

    python bench/gpu_pipeline.py                  # resnet50, 224 px, batch 256, on the GPU
    python bench/gpu_pipeline.py --smoke          # CPU, a tiny folder and model: checks the script runs
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loader_throughput import IMAGENET_MEAN, IMAGENET_STD, make_folder
from trainer.engine.stats import synchronize


class UtilSampler:
    """``nvidia-smi`` GPU utilisation every 0.5 s, in a thread; ``mean(t0, t1)`` over a window."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc: subprocess.Popen | None = None
        if shutil.which("nvidia-smi") and torch.cuda.is_available():
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "500", "-i", "0"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.samples.append((time.time(), float(line.strip())))
            except ValueError:
                pass

    def mean(self, t0: float, t1: float) -> float | None:
        vals = [u for t, u in self.samples if t0 <= t <= t1]
        return sum(vals) / len(vals) if vals else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, amp: bool) -> None:
    """One training step as timm's train.py takes it (bf16 autocast when ``amp``)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def model_only(args: argparse.Namespace, device: torch.device) -> dict:
    """timm benchmark.py --bench train: synthetic batches already on the device, forward + backward + step."""
    import timm

    model = timm.create_model(args.model, num_classes=10).to(device, memory_format=args.memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device).contiguous(
        memory_format=args.memory_format)
    y = torch.randint(0, 10, (args.batch_size,), device=device)

    for _ in range(args.warmup):
        _step(model, opt, x, y, args.amp)
    synchronize(device)
    t0 = time.time()
    for _ in range(args.steps):
        _step(model, opt, x, y, args.amp)
    synchronize(device)
    t1 = time.time()
    return {"name": "timm benchmark (model only, synthetic)", "ips": args.steps * args.batch_size / (t1 - t0),
            "t0": t0, "t1": t1, "wait": None}


def timm_train(folder: Path, args: argparse.Namespace, device: torch.device) -> dict:
    """A minimal timm train.py: create_dataset + create_loader (workers, GPU prefetcher), bf16, channels-last."""
    import timm
    from timm.data import create_dataset, create_loader

    ds = create_dataset("", root=str(folder), split="train", is_training=True)
    loader = create_loader(ds, input_size=(3, args.img_size, args.img_size), batch_size=args.batch_size,
                           is_training=True, use_prefetcher=device.type == "cuda", device=device,
                           num_workers=args.workers, color_jitter=0.4, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                           persistent_workers=True, pin_memory=device.type == "cuda")
    model = timm.create_model(args.model, num_classes=10).to(device, memory_format=args.memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    best = None
    for epoch in range(args.timm_epochs):
        seen, wait = 0, 0.0
        synchronize(device)
        t0 = time.time()
        t_wait = time.perf_counter()
        for x, y in loader:
            wait += time.perf_counter() - t_wait
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            _step(model, opt, x.contiguous(memory_format=args.memory_format), y, args.amp)
            seen += y.shape[0]
            t_wait = time.perf_counter()
        synchronize(device)
        t1 = time.time()
        row = {"name": f"timm train loop, create_loader, epoch {epoch + 1}", "ips": seen / (t1 - t0), "t0": t0,
               "t1": t1, "wait": wait / (t1 - t0)}
        print(f"  {row['name']}: {row['ips']:.0f} img/s", flush=True)
        best = row
    return best


def ours(folder: Path, args: argparse.Namespace, device: torch.device, tmp: Path, crop_resize: str) -> list[dict]:
    """Our trainer, ``data.pipeline: prepared``, crops resized on the device or in the workers."""
    from trainer.engine.cache import list_caches
    from trainer.engine.runner import run_training

    built = {e.key for e in list_caches(tmp / "cache")}

    aug = {"random_resized_crop": 1.0, "hflip": 0.5,
           "color_jitter": {"p": 1.0, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.0}}
    config = {"model": {"name": args.model},
              "data": {"dataset": f"imagefolder:{folder}", "img_size": args.img_size, "batch_size": args.batch_size,
                       "val_split": 0.02, "augment": aug, "cache_dir": str(tmp / "cache"),
                       "workers": args.workers, "crop_resize": crop_resize},
              "optimizer": {"name": "sgd", "lr": 0.01}, "scheduler": {"name": "none"},
              "train": {"epochs": args.our_epochs, "device": str(device), "seed": 0, "eval_every": 1000,
                        "checkpoint_every": 0, "amp": args.amp}}
    run_dir = tmp / f"run-{crop_resize}"
    result = run_training(config, run_dir, quiet=True)
    if result.status != "completed":
        raise SystemExit(f"our trainer failed: {result.error}")
    rows = []
    for e in list_caches(tmp / "cache"):
        if e.key not in built:  # this run built it: the first epoch's decoding, timed on its own
            meta = json.loads((e.path / "COMPLETE").read_text())
            rows.append({"name": f"our cache build ({meta['images']} images, {meta['threads']} threads)",
                         "ips": meta["images"] / meta["build_s"], "t0": meta["created"] - meta["build_s"],
                         "t1": meta["created"], "wait": None})
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("scope") != "epoch":
            continue
        rows.append({"name": f"our trainer, crop_resize {crop_resize}, epoch {r['epoch']}",
                     "ips": r["images_per_s"], "t0": r["time"] - r["epoch_time_s"], "t1": r["time"],
                     "wait": r["data_wait_frac"]})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU, 60 small JPEGs, test_resnet at 32 px: runs anywhere")
    p.add_argument("--images", type=int, default=13000)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--steps", type=int, default=40, help="timed steps of the model-only benchmark")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--timm-epochs", type=int, default=2)
    p.add_argument("--our-epochs", type=int, default=3)
    p.add_argument("--crop-resize", nargs="+", default=["device", "workers"], choices=("device", "workers"),
                   help="data.crop_resize values to run our trainer with (default: both)")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.smoke:
        args.images, args.model, args.img_size, args.batch_size = 60, "test_resnet", 32, 16
        args.steps, args.warmup, args.timm_epochs, args.our_epochs = 3, 1, 1, 2
        args.workers = min(args.workers, 2)
    args.amp = device.type == "cuda"
    args.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    tmp = Path(tempfile.mkdtemp(prefix="gpu-pipeline-"))
    sampler = UtilSampler()
    started = time.time()
    try:
        folder = make_folder(tmp / "images", args.images, workers=args.workers)
        print(f"{args.images} JPEGs in {time.time() - started:.0f}s; device {device}, model {args.model}, "
              f"{args.img_size}px, batch {args.batch_size}, workers {args.workers}", flush=True)
        rows = [model_only(args, device)]
        print(f"  ceiling: {rows[0]['ips']:.0f} img/s", flush=True)
        rows.append(timm_train(folder, args, device))
        for crop_resize in args.crop_resize:  # the second run reuses the cache the first one built
            rows.extend(ours(folder, args, device, tmp, crop_resize))
    finally:
        sampler.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    ceiling = rows[0]["ips"]
    print(f"\n| {args.model}, {args.img_size} px, batch {args.batch_size}, {device} | images/s | GPU util mean | "
          f"data-wait fraction | share of ceiling |")
    print("|---|---|---|---|---|")
    for r in rows:
        util = sampler.mean(r["t0"], r["t1"])
        wait = "-" if r["wait"] is None else f"{r['wait']:.2f}"
        print(f"| {r['name']} | {r['ips']:,.0f} | {'n/a' if util is None else f'{util:.0f}%'} | {wait} | "
              f"{r['ips'] / ceiling:.0%} |")
    print(f"\ntotal {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
