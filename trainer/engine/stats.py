"""Honest run statistics: loader wait, device sampling (NVML), inference latency, FLOPs.

The training loop (:mod:`trainer.engine.loop`) and the runner use these helpers so that
every number a run reports measures what its name says:

- :class:`LoaderWait` times how long the device waited for the data loader. On the CPU
  that is the host time spent in ``next(loader)``. On CUDA the host runs ahead of the GPU,
  so host time in ``next()`` would count GPU work still queued from the previous step
  (an 11% "data wait" with the data already on the GPU); instead a CUDA event is recorded
  when a step's work has been queued and another when the next batch is ready, and the
  GPU-timeline gap between them is the time the GPU sat idle waiting for the loader.
- :class:`DeviceMonitor` samples GPU utilisation and memory through NVML (``pynvml``, from
  the ``nvidia-ml-py`` package) in a background thread, plus this process's RSS, and reports
  per-epoch mean and max. Without NVML or a GPU the GPU fields are absent, never invented.
- :func:`measure_latency` gives the milliseconds per image of a forward pass at a batch
  size (synchronised on CUDA), :func:`count_flops` the forward FLOPs of one image
  (``torch.utils.flop_counter``: a multiply-add counts 2).
"""
from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["DeviceMonitor", "LoaderWait", "count_flops", "cpu_rss_mb", "inference_stats", "measure_latency",
           "nvml_handle", "synchronize"]

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 0.2


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_rss_mb() -> float:
    """Resident memory of this process now (MB); peak RSS where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------ loader wait


class LoaderWait:
    """Seconds the device waited for the loader during one epoch (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.host_s = 0.0
        self._pairs: list[tuple[Any, Any]] = []
        self._step_end: Any = None

    def begin(self) -> float:
        """Call just before ``next(loader)``."""
        return time.perf_counter()

    def got_batch(self, t0: float) -> None:
        """Call when ``next(loader)`` returned a batch (before it is moved or used)."""
        if not self.cuda or self._step_end is None:  # CPU, or the epoch's first batch: the device was idle
            self.host_s += time.perf_counter() - t0
            return
        ready = torch.cuda.Event(enable_timing=True)
        ready.record(torch.cuda.current_stream(self.device))  # the training device's stream, not cuda:0's
        self._pairs.append((self._step_end, ready))

    def step_queued(self) -> None:
        """Call when a step's work has been queued on the device."""
        if self.cuda:
            self._step_end = torch.cuda.Event(enable_timing=True)
            self._step_end.record(torch.cuda.current_stream(self.device))

    def total_s(self) -> float:
        """The epoch's wait so far; on CUDA this synchronises (call it once, at the epoch's end)."""
        if self._pairs:
            self._pairs[-1][1].synchronize()
            self.host_s += sum(a.elapsed_time(b) for a, b in self._pairs) / 1000.0
            self._pairs.clear()
        return self.host_s


# ------------------------------------------------------------------ NVML sampling


def nvml_handle(device: torch.device) -> tuple[Any, Any] | None:
    """``(pynvml module, handle)`` for a CUDA device, or None without NVML (absent fields, never guesses)."""
    if device.type != "cuda":
        return None
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError subclasses: library or driver missing
        log.info("NVML unavailable (%s): no GPU utilisation figures", exc)
        return None
    try:  # CUDA_VISIBLE_DEVICES renumbers devices: find ours by UUID, else by index
        uuid = str(torch.cuda.get_device_properties(device).uuid)
        try:
            return pynvml, pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        except Exception:  # noqa: BLE001
            return pynvml, pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
    except Exception as exc:  # noqa: BLE001
        log.info("NVML cannot find %s (%s): no GPU utilisation figures", device, exc)
        return None


class DeviceMonitor:
    """Background sampling of GPU utilisation/memory (NVML) and process RSS; per-window mean and max.

    ``window()`` returns the statistics since the previous call (or since ``start``) and starts
    a new window: ``gpu_util_mean``/``gpu_util_max`` (percent), ``gpu_mem_mean_mb``/``gpu_mem_max_mb``
    (device memory in use, all processes), ``cpu_rss_max_mb``. GPU keys are absent without NVML.
    """

    def __init__(self, device: torch.device, every_s: float = SAMPLE_EVERY_S,
                 probe: Callable[[], dict[str, float]] | None = None) -> None:
        self.every_s = every_s
        self._probe = probe or self._default_probe(device)
        self._samples: list[dict[str, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _default_probe(device: torch.device) -> Callable[[], dict[str, float]]:
        nv = nvml_handle(device)

        def probe() -> dict[str, float]:
            out = {"cpu_rss_mb": cpu_rss_mb()}
            if nv is not None:
                pynvml, handle = nv
                try:
                    out["gpu_util"] = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                    out["gpu_mem_mb"] = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
                except Exception as exc:  # noqa: BLE001 - a failed read is a missing sample, not a zero
                    log.debug("NVML read failed: %s", exc)
            return out

        return probe

    def sample(self) -> None:
        """Take one sample now."""
        s = self._probe()
        with self._lock:
            self._samples.append(s)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def start(self) -> DeviceMonitor:
        """Start sampling in a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self.sample()
            self._thread = threading.Thread(target=self._run, name="device-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def window(self) -> dict[str, float]:
        """Mean and max of the samples since the last call; a new window starts."""
        self.sample()
        with self._lock:
            samples, self._samples = self._samples, []
        out: dict[str, float] = {}
        for key, name in (("gpu_util", "gpu_util"), ("gpu_mem_mb", "gpu_mem"), ("cpu_rss_mb", "cpu_rss")):
            values = [s[key] for s in samples if key in s]
            if not values:
                continue
            unit = "" if key == "gpu_util" else "_mb"
            if key != "cpu_rss_mb":  # the current RSS is cpu_rss_mb already; its peak is new
                out[f"{name}_mean{unit}"] = sum(values) / len(values)
            out[f"{name}_max{unit}"] = max(values)
        return out


# ------------------------------------------------------------------ latency and FLOPs


def measure_latency(forward: Callable[[torch.Tensor], Any], make_batch: Callable[[int], torch.Tensor],
                    batch_size: int, device: torch.device, *, warmup: int = 2, budget_s: float = 0.5,
                    max_iters: int = 20) -> float:
    """Milliseconds per image of ``forward(make_batch(batch_size))`` (median-free mean over timed repeats).

    Runs ``warmup`` untimed passes, then repeats until ``budget_s`` is spent or ``max_iters``
    passes are done (at least one), synchronising the device around the timed region.
    """
    x = make_batch(batch_size)
    with torch.no_grad():
        for _ in range(warmup):
            forward(x)
        synchronize(device)
        n, t0 = 0, time.perf_counter()
        while True:
            forward(x)
            n += 1
            synchronize(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= budget_s or n >= max_iters:
                break
    return elapsed / n / batch_size * 1000.0


def count_flops(model: torch.nn.Module, example: torch.Tensor) -> int | None:
    """Forward FLOPs of ``model`` on ``example`` divided by its batch size; None if they cannot be counted."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(example)
        total = int(counter.get_total_flops())
    except Exception as exc:  # noqa: BLE001 - some ops have no formula; the count is then unknown
        log.info("cannot count FLOPs: %s", exc)
        return None
    finally:
        model.train(was_training)
    return total // max(1, example.shape[0]) if total > 0 else None


def inference_stats(trainer: Any, *, budget_s: float = 0.5) -> dict[str, Any]:
    """End-of-run figures of a :class:`trainer.engine.loop.Trainer`'s model on its own device.

    ``latency_ms`` (ms per image at batch 1), ``latency_batch_ms`` (ms per image at the eval batch
    size, ``latency_batch_size``), both including normalisation on the device, and ``flops`` (forward
    FLOPs per image). The model is put in eval mode for the measurement and back afterwards. Never
    raises: a measurement that fails is left out (and logged), it does not fail the run.
    """
    device = trainer.device
    h, w = trainer.preprocess["img_size"]
    channels = trainer.preprocess["channels"]
    eval_batch = int(trainer.cfg.data.eval_batch_size or trainer.cfg.data.batch_size)
    net = trainer.eval_net

    def make_batch(n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, channels, h, w), dtype=torch.uint8, generator=g)

    def forward(x: torch.Tensor) -> Any:
        with trainer.autocast():
            return net(trainer.prepare(x))

    out: dict[str, Any] = {}
    was_training = net.training
    net.eval()
    try:
        out["latency_ms"] = measure_latency(forward, make_batch, 1, device, budget_s=budget_s)
        out["latency_batch_ms"] = measure_latency(forward, make_batch, eval_batch, device, budget_s=budget_s,
                                                  warmup=1)
        out["latency_batch_size"] = eval_batch
        flops = count_flops(trainer.model, trainer.prepare(make_batch(1)))
        if flops is not None:
            out["flops"] = flops
    except Exception as exc:  # noqa: BLE001 - statistics must never fail a finished run
        log.warning("could not measure inference latency: %s: %s", type(exc).__name__, exc)
    finally:
        net.train(was_training)
    return out
