"""What ``run.log`` costs a training loop: microseconds per call, and the loop's slowdown, as ratios.

Run by hand: ``.venv/bin/python bench/log_overhead.py [STEPS]``. Writes into a temporary
folder. Prints

* µs per ``run.log`` call (four metrics, step and epoch, with the background flusher running),
  and that as a ratio of the 1 ms budget;
* a small training loop (a NumPy MLP's forward and backward on a 64-image batch, else pure
  Python, one BLAS thread) timed with logging off and on, every step logged, in alternating
  rounds on the same machine: the ratio of the fastest rounds (the ones least disturbed by
  other work) is the slowdown (1.00 = none), meaningful on a busy machine where seconds are not.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from ednaquery.tracking import start_run

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before NumPy loads
    os.environ.setdefault(_var, "1")


def per_call_us(root: str, calls: int) -> float:
    """Median µs per ``run.log`` call over 5 batches of ``calls // 5``."""
    batch = max(1, calls // 5)
    out = []
    with start_run(config={"bench": "log_overhead"}, root=root, name="per-call") as run:
        for b in range(5):
            t0 = time.perf_counter()
            for i in range(batch):
                run.log({"train_loss": 0.5, "train_acc": 0.9, "lr": 1e-3, "grad_norm": 1.2}, step=b * batch + i,
                        epoch=b)
            out.append((time.perf_counter() - t0) / batch * 1e6)
    return statistics.median(out)


def make_step() -> Callable[[], float]:
    """One training step of a small model: NumPy when installed, else a pure-Python stand-in."""
    try:
        import numpy as np
    except ImportError:
        def py_step() -> float:
            return sum(i * i for i in range(2000)) * 1e-9
        return py_step
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 256), dtype=np.float32)
    w1 = rng.standard_normal((256, 128), dtype=np.float32) * 0.05
    w2 = rng.standard_normal((128, 10), dtype=np.float32) * 0.05

    def np_step() -> float:
        nonlocal w1, w2
        h = np.maximum(x @ w1, 0)
        out = h @ w2
        g = out - out.mean(axis=0)
        w2 = w2 - 1e-4 * (h.T @ g)
        w1 = w1 - 1e-4 * (x.T @ ((g @ w2.T) * (h > 0)))
        return float((g * g).mean())

    return np_step


def loop_seconds(steps: int, root: str | None) -> float:
    """Seconds for ``steps`` training steps, logging every step when ``root`` is given (the run's
    start and end, once per run, are not counted; the background flushes are)."""
    step = make_step()
    if root is None:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        return time.perf_counter() - t0
    with start_run(config={"bench": "loop"}, root=root, name="loop") as run:  # set-up and end: once per run
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step()
            run.log({"train_loss": loss, "lr": 1e-3}, step=i, epoch=i // 100)
        return time.perf_counter() - t0


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as root:
        us = per_call_us(root, max(steps * 20, 5000))
        off: list[float] = []
        on: list[float] = []
        for _ in range(7):  # alternating rounds: the machine's load hits both alike
            off.append(loop_seconds(steps, None))
            on.append(loop_seconds(steps, root))
    step_us = min(off) / steps * 1e6
    ratio = min(on) / min(off)
    print(f"run.log: {us:.2f} µs per call ({us / 1000:.4f} of the 1 ms budget)")
    print(f"training loop ({steps} steps of {step_us:.0f} µs, every step logged): "
          f"{ratio:.3f}x the time without logging")


if __name__ == "__main__":
    main()
