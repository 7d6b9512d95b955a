"""Run statistics that measure what their names say: epoch wall time, images/s, loader wait, device samples."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import trainer.engine.data as data_module
from trainer.engine.runner import run_training
from trainer.engine.runs import read_metrics
from trainer.engine.stats import DeviceMonitor, LoaderWait, count_flops, measure_latency, nvml_handle

DELAY = 0.03  # seconds the slow loader sleeps per batch


def tiny() -> dict:
    return {"model": {"name": "test_resnet"},
            "data": {"dataset": "digits", "img_size": 16, "batch_size": 32, "fraction": 0.5},
            "optimizer": {"name": "adamw", "lr": 3e-3}, "scheduler": {"name": "cosine"},
            "train": {"epochs": 3, "device": "cpu", "max_steps_per_epoch": 6}}


class SlowLoader:
    """The real training loader, but every batch takes DELAY seconds longer to arrive."""

    def __init__(self, inner) -> None:
        self.inner, self.generator = inner, inner.generator

    def __iter__(self):
        for batch in self.inner:
            time.sleep(DELAY)
            yield batch


def test_images_per_s_agrees_with_the_epoch_wall_time_and_wait_is_the_loader(tmp_path: Path, monkeypatch) -> None:
    real = data_module.build_data

    def slow_data(*args, **kwargs):
        bundle = real(*args, **kwargs)
        bundle.train_loader = SlowLoader(bundle.train_loader)
        return bundle

    monkeypatch.setattr(data_module, "build_data", slow_data)
    stamps: list[float] = []
    result = run_training(tiny(), tmp_path / "run", quiet=True, plots=False, handle_signals=False,
                          on_epoch=lambda _snap: stamps.append(time.perf_counter()))
    assert result.status == "completed", result.error
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == len(stamps) == 3
    for k in (1, 2):  # the wall time between two epochs' reports, measured from outside
        row, wall = rows[k], stamps[k] - stamps[k - 1]
        assert abs(row["epoch_time_s"] - wall) <= 0.02 * wall + 0.03, (row["epoch_time_s"], wall)
        images = 6 * 32
        assert row["images_per_s"] == pytest.approx(images / row["epoch_time_s"])
        # the epoch's time is its training plus its evaluation (and the previous epoch's bookkeeping)
        assert row["epoch_time_s"] >= row["train_time_s"] + row["eval_time_s"] - 1e-6
        assert row["train_images_per_s"] == pytest.approx(images / row["train_time_s"])
        # the loader's own sleep is in the wait, and the wait is no more than the loader plus loop overhead
        wait = row["data_wait_frac"] * row["train_time_s"]
        assert 6 * DELAY * 0.95 <= wait < row["train_time_s"]
    # epoch times add up to the wall time: nothing between two epochs is left out
    assert sum(r["epoch_time_s"] for r in rows[1:]) == pytest.approx(stamps[-1] - stamps[0], rel=0.02, abs=0.05)


def test_loader_wait_counts_only_the_time_in_next() -> None:
    wait = LoaderWait(torch.device("cpu"))
    for _ in range(3):
        t0 = wait.begin()
        time.sleep(0.02)  # the loader
        wait.got_batch(t0)
        time.sleep(0.05)  # the step: not waiting for data
        wait.step_queued()
    assert 0.06 <= wait.total_s() < 0.06 + 0.1


def test_device_monitor_reports_mean_and_max_per_window_and_absent_fields_without_nvml() -> None:
    values = iter([{"gpu_util": 10.0, "gpu_mem_mb": 100.0, "cpu_rss_mb": 5.0},
                   {"gpu_util": 90.0, "gpu_mem_mb": 300.0, "cpu_rss_mb": 7.0},
                   {"cpu_rss_mb": 6.0}])  # a failed NVML read is a missing sample, not a zero
    mon = DeviceMonitor(torch.device("cpu"), probe=lambda: next(values))
    mon.sample()
    mon.sample()
    w = mon.window()
    assert w == {"gpu_util_mean": 50.0, "gpu_util_max": 90.0, "gpu_mem_mean_mb": 200.0, "gpu_mem_max_mb": 300.0,
                 "cpu_rss_max_mb": 7.0}
    assert nvml_handle(torch.device("cpu")) is None
    cpu = DeviceMonitor(torch.device("cpu")).start()
    try:
        w = cpu.window()
    finally:
        cpu.stop()
    assert set(w) == {"cpu_rss_max_mb"} and w["cpu_rss_max_mb"] > 0


def test_flops_and_latency() -> None:
    conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    assert count_flops(conv, torch.zeros(2, 1, 8, 8)) == 2 * 4 * 9 * 8 * 8  # per image, a multiply-add is 2

    def forward(x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.01)
        return x

    ms = measure_latency(forward, lambda n: torch.zeros(n, 1), 2, torch.device("cpu"), warmup=1, max_iters=3)
    assert ms >= 5.0  # 10 ms per call of 2 images
