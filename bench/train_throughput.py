"""Training throughput: the trainer engine against hand-written PyTorch loops.

Prints images/s of ``trainer.engine.runner.run_training`` and of a plain PyTorch loop over the
same model, data (the trainer's own digits tensors), batch size and optimizer, as a
ratio (target >= 0.95x). On a GPU it also runs a hand-tuned loop (bf16 autocast,
channels-last, pinned memory, loader workers, uint8 batches normalised on the GPU,
as timm's reference train script does it; target >= 1.0x) and reports the trainer's
data-loading wait as a fraction of step time (target <= 5%).

Runs are interleaved (plain, trainer, plain, trainer...) so that load from other
processes hits both alike; the median of the repeats is compared. Each measurement
is one timed epoch of ``--steps`` updates after an untimed warm-up epoch. On a shared,
busy CPU the epoch rates swing with other processes' load, so the bench also times
every optimizer step (the trainer's through its ``on_step`` hook: data loading, the
step and all of the trainer's bookkeeping between two updates) and compares the
median step times, which load spikes barely move.

    .venv/bin/python bench/train_throughput.py                       # resnet18, digits 32px, batch 64
    .venv/bin/python bench/train_throughput.py --model test_resnet --steps 40
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from trainer.engine.stats import synchronize


def trainer_config(args: argparse.Namespace, device: str) -> dict:
    return {
        "model": {"name": args.model},
        "data": {"dataset": args.dataset, "img_size": args.img_size, "batch_size": args.batch_size},
        "optimizer": {"name": "adamw", "lr": 1e-3},
        "scheduler": {"name": "none"},
        "train": {"epochs": 2, "device": device, "threads": args.threads, "seed": 0,
                  "max_steps_per_epoch": args.steps, "checkpoint_every": 0, "eval_every": 1000},
    }


def load_tensors(args: argparse.Namespace, device: str) -> tuple[torch.Tensor, torch.Tensor, int, tuple]:
    """The trainer's own training images (uint8), labels, class count and normalisation."""
    from trainer.engine.config import load_config
    from trainer.engine.data import build_data, normalization

    cfg = load_config(trainer_config(args, device))
    data = build_data(cfg, device_type="cpu")
    ds = data.train_loader.dataset
    x = ds.source.get(torch.arange(len(ds)))
    return x, ds.labels, data.num_classes, normalization(None, None, data.channels)


def make_model(args: argparse.Namespace, num_classes: int, in_chans: int, device: torch.device,
               channels_last: bool = False) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    model = timm.create_model(args.model, num_classes=num_classes, in_chans=in_chans)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def plain_loop(args: argparse.Namespace, x8: torch.Tensor, y: torch.Tensor, num_classes: int, norm: tuple,
               device: torch.device) -> tuple[float, float]:
    """What a user writes first: float tensors, TensorDataset, DataLoader(shuffle=True), AdamW."""
    mean = torch.tensor(norm[0]).view(1, -1, 1, 1) * 255
    std = torch.tensor(norm[1]).view(1, -1, 1, 1) * 255
    x = (x8.float() - mean) / std
    model = make_model(args, num_classes, x.shape[1], device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True, drop_last=True)

    stamps: list[float] = []

    def epoch() -> int:
        seen = 0
        for step, (xb, yb) in enumerate(loader):
            if step == args.steps:
                break
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(yb)
            stamps.append(time.perf_counter())
        return seen

    epoch()  # warm-up
    synchronize(device)
    stamps.clear()
    t0 = time.perf_counter()
    seen = epoch()
    synchronize(device)
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    return seen / (time.perf_counter() - t0), args.batch_size / statistics.median(steps)


def tuned_loop(args: argparse.Namespace, x8: torch.Tensor, y: torch.Tensor, num_classes: int, norm: tuple,
               device: torch.device) -> float:
    """Hand-tuned GPU loop: uint8 pinned batches, workers, non-blocking copies, GPU normalisation,
    channels-last, bf16 autocast (timm train.py style)."""
    mean = torch.tensor(norm[0], device=device).view(1, -1, 1, 1) * 255
    std = torch.tensor(norm[1], device=device).view(1, -1, 1, 1) * 255
    model = make_model(args, num_classes, x8.shape[1], device, channels_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    loader = DataLoader(TensorDataset(x8, y), batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=4, pin_memory=True, persistent_workers=True, prefetch_factor=4)

    def epoch() -> int:
        seen = 0
        for step, (xb, yb) in enumerate(loader):
            if step == args.steps:
                break
            xb = xb.to(device, non_blocking=True).float().sub_(mean).div_(std)
            xb = xb.contiguous(memory_format=torch.channels_last)
            yb = yb.to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(yb)
        return seen

    epoch()
    synchronize(device)
    t0 = time.perf_counter()
    seen = epoch()
    synchronize(device)
    return seen / (time.perf_counter() - t0)


def trainer_run(args: argparse.Namespace, device: str) -> tuple[float, float, float]:
    """Second-epoch images/s (epoch wall clock, median step) and data-wait fraction of the trainer."""
    from trainer.engine.runner import run_training
    from trainer.engine.runs import read_metrics

    stamps: dict[int, float] = {}

    def on_step(step: int) -> None:
        stamps[step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        result = run_training(trainer_config(args, device), Path(tmp) / "run", quiet=True, plots=False,
                              handle_signals=False, on_step=on_step)
        if result.status != "completed":
            raise SystemExit(f"trainer run {result.status}: {result.error}")
        row = read_metrics(Path(tmp) / "run" / "metrics.jsonl")[-1]
    # steps inside epoch 2 only (the first one would include the end of epoch 1)
    steps = [stamps[s] - stamps[s - 1] for s in range(args.steps + 2, 2 * args.steps + 1)]
    return row["train_images_per_s"], args.batch_size / statistics.median(steps), row["data_wait_frac"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=15, help="timed optimizer steps per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (both loops)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if args.device == "auto" else args.device))
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    x8, y, num_classes, norm = load_tensors(args, str(device))
    args.steps = min(args.steps, len(y) // args.batch_size)  # one epoch's worth at most
    print(f"{args.model} on {args.dataset} {args.img_size}px, batch {args.batch_size}, {args.steps} timed steps, "
          f"{dev_name}, {torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats")

    plain, ours, tuned, waits, plain_step, ours_step = [], [], [], [], [], []
    for r in range(args.repeats):
        wall, per_step = plain_loop(args, x8, y, num_classes, norm, device)
        plain.append(wall)
        plain_step.append(per_step)
        ips, per_step, wait = trainer_run(args, str(device))
        ours.append(ips)
        ours_step.append(per_step)
        waits.append(wait)
        line = (f"  repeat {r + 1}: plain {plain[-1]:8.1f} img/s (median step {plain_step[-1]:7.1f})   "
                f"trainer {ours[-1]:8.1f} img/s (median step {ours_step[-1]:7.1f})")
        if device.type == "cuda":
            tuned.append(tuned_loop(args, x8, y, num_classes, norm, device))
            line += f"   tuned {tuned[-1]:8.1f} img/s"
        print(line, flush=True)
        torch.set_num_threads(args.threads)  # the trainer sets it too; keep both loops alike

    med = statistics.median
    print(f"plain loop      {med(plain):10.1f} img/s")
    print(f"trainer         {med(ours):10.1f} img/s")
    print(f"trainer / plain {med(ours) / med(plain):10.3f}x   epoch wall clock (target >= 0.95x)")
    print(f"trainer / plain {med(ours_step) / med(plain_step):10.3f}x   median step time (target >= 0.95x)")
    if tuned:
        print(f"tuned loop      {med(tuned):10.1f} img/s")
        print(f"trainer / tuned {med(ours) / med(tuned):10.3f}x   (target >= 1.0x)")
    print(f"data wait       {100 * med(waits):10.2f} %  of step time (target <= 5%)")


if __name__ == "__main__":
    main()
