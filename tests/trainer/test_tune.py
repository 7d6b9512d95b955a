"""``trainer tune lr`` (range test) and ``trainer tune batch-size`` (with a faked memory limit)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from ednaquery.errors import UsageError
from ednaquery.query.parser import parse
from ednaquery.store.base import FindOptions
from ednaquery.store.sqlite import SQLiteStore
from tests.support.configs import tiny_config
from tests.support.settings import clean_settings
from trainer.cli import main
from trainer.engine.runner import run_training
from trainer.ops.tune import BatchTrial, search_batch_size, suggest_lr

TINY = tiny_config(data={"batch_size": 64, "fraction": 0.25}, optimizer={"lr": 1e-3})
LIMIT = 40  # the faked device fits batches up to this size


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    clean_settings(tmp_path, monkeypatch)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return {"tmp": tmp_path, "config": path, "db": str(tmp_path / "index.db")}


def limited(limit: int):
    """A probe that fits up to ``limit``, as a real device would report it."""
    def probe(b: int) -> BatchTrial:
        return BatchTrial(b, True, 100.0 * b) if b <= limit else BatchTrial(b, False, error="out of memory")
    return probe


def test_the_search_doubles_then_bisects_to_the_largest_fit() -> None:
    found = search_batch_size(limited(37), start=2, max_batch=4096, margin=0.1)
    sizes = [t.batch_size for t in found.trials]
    assert sizes[:6] == [2, 4, 8, 16, 32, 64]  # doubling until the first failure
    assert found.largest_fit == 37 and found.first_failure == 38 and not found.hit_max
    assert found.suggestion == 32  # 37 less 10% is 33.3, rounded down to a multiple of 8
    assert all(t.images_per_s for t in found.trials if t.fits)
    capped = search_batch_size(limited(10_000), start=4, max_batch=100, margin=0.1)
    assert capped.hit_max and capped.largest_fit == 100 and capped.suggestion == 100  # no limit seen: no margin
    with pytest.raises(UsageError, match="even a batch of 64 does not fit"):
        search_batch_size(limited(37), start=64)


def test_lr_suggestion_rules_on_a_known_curve() -> None:
    lrs = [10 ** (-6 + 0.1 * i) for i in range(60)]  # 1e-6 .. ~1
    # flat, then falling fastest around 1e-3, lowest at 1e-2, then diverging
    loss = [2.0 - 1.5 / (1 + 10 ** (-(i - 30) / 3)) for i in range(41)] + [0.6 + 0.3 * k for k in range(19)]
    best, at_min = suggest_lr(lrs, loss, "steepest")
    assert at_min == lrs[40] and lrs[27] <= best <= lrs[33]
    assert suggest_lr(lrs, loss, "min10") == (pytest.approx(lrs[40] / 10), lrs[40])
    assert suggest_lr(lrs, [1.0 + i for i in range(60)], "steepest")[0] is None  # never fell


def _oom_above(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every timm model created from now on raises torch.OutOfMemoryError on a batch larger than ``limit``."""
    import timm

    real = timm.create_model

    def create(*args, **kwargs):
        model = real(*args, **kwargs)

        def check(_module, inputs):
            if inputs[0].shape[0] > limit:
                raise torch.OutOfMemoryError(f"CUDA out of memory (faked: batch {inputs[0].shape[0]} > {limit})")

        model.register_forward_pre_hook(check)
        return model

    monkeypatch.setattr(timm, "create_model", create)  # build_model looks it up at every call


def test_the_batch_size_answer_trains_without_running_out_of_memory(env, monkeypatch) -> None:
    _oom_above(LIMIT, monkeypatch)
    res = CliRunner().invoke(main, ["--store", env["db"], "tune", "batch-size", str(env["config"]), "--max", "256",
                                    "--steps", "1", "--apply", "--output", str(env["tmp"] / "tuned.yaml")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "batch     64: out of memory" in res.output and "batch     32: fits" in res.output
    assert re.search(r"largest batch that fits on cpu: 40\b", res.output), res.output
    answer = int(re.search(r"suggested data.batch_size (\d+)", res.output).group(1))
    assert answer == 32
    tuned = yaml.safe_load((env["tmp"] / "tuned.yaml").read_text())
    assert tuned["data"]["batch_size"] == answer and tuned["model"] == TINY["model"]
    store = SQLiteStore(env["db"])
    derived = store.find(parse(["tags=derived"]), FindOptions(kinds=("config",)))
    assert [d["derived_from"] is not None for d in derived] == [True]
    assert derived[0]["overrides"] == [f"data.batch_size={answer}"]

    cfg = {**TINY, "data": {**TINY["data"], "batch_size": answer}}
    ok = run_training(cfg, env["tmp"] / "ok", quiet=True, plots=False, handle_signals=False)
    assert ok.status == "completed", ok.error
    too_big = {**TINY, "data": {**TINY["data"], "batch_size": LIMIT + 8}}
    failed = run_training(too_big, env["tmp"] / "oom", quiet=True, plots=False, handle_signals=False)
    assert failed.status == "failed" and "out of GPU memory" in failed.error  # the fake limit is real to training


def test_the_lr_range_test_suggests_an_lr_where_the_loss_falls(env) -> None:
    plot = env["tmp"] / "lr.png"
    res = CliRunner().invoke(main, ["--store", env["db"], "tune", "lr", str(env["config"]), "--start-lr", "1e-5",
                                    "--end-lr", "10", "--steps", "60", "--plot", str(plot), "--json", "--apply",
                                    "--output", str(env["tmp"] / "lr.yaml")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    found = json.loads(res.output.splitlines()[0])
    lrs, smoothed, lr = found["lrs"], found["smoothed"], found["suggestion"]
    assert 1e-5 <= lrs[0] < lr < found["min_loss_lr"]
    i = lrs.index(lr)
    i_min = lrs.index(found["min_loss_lr"])
    assert min(smoothed) < smoothed[0] - 0.3  # the loss fell during the sweep...
    assert smoothed[i_min] < smoothed[i] < smoothed[max(0, i - 5)]  # ...and is falling at the suggestion
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert yaml.safe_load((env["tmp"] / "lr.yaml").read_text())["optimizer"]["lr"] == float(f"{lr:.3g}")
    assert res.output.strip().splitlines()[-1].startswith("config ")  # the derived config, indexed


def test_tune_refuses_an_unknown_config(env) -> None:
    res = CliRunner().invoke(main, ["--store", env["db"], "tune", "lr", "nosuchid"], catch_exceptions=False)
    assert res.exit_code != 0 and res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("over", [{"data": {**TINY["data"], "features": ["gray", "sobel", "fft"]}},
                                  {"task": "regression", "data": {"dataset": "synthetic_regression", "channels": 1,
                                                                   "fake_samples": 64, "img_size": 16}}])
def test_the_batch_probe_trains_features_and_other_tasks(over: dict) -> None:
    from trainer.engine.config import load_config
    from trainer.ops.tune import TrainStepProbe

    trial = TrainStepProbe(load_config({**TINY, **over}), steps=1)(4)
    assert trial.fits and trial.images_per_s > 0
