"""``trainer launch --gpus N``: DistributedDataParallel, tested on the CPU (gloo, 2 processes).

Two tests start real processes through torch.distributed's elastic launcher (what torchrun
runs): a whole run on scikit-learn's digits with timm's tiny ``test_resnet``, and a run
stopped by SIGTERM sent to one rank only, then resumed in a single process. The rest are
fast: sharding, device planning, signal forwarding and the launcher's bookkeeping.
What needs GPUs (nccl, one process per GPU) is covered by the device planning tests only.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.documents import make_config_document
from ednaquery.errors import UsageError
from ednaquery.query.parser import parse
from ednaquery.store.base import FileState, FindOptions, PathUpdate
from ednaquery.store.sqlite import SQLiteStore
from tests.support.configs import tiny_config
from tests.support.settings import clean_settings
from trainer.engine.data import EpochBatchSampler

pytest.importorskip("timm")

DIGITS_VAL = 359  # digits' validation split (odd: an even split across 2 ranks would pad it to 360)
TINY = tiny_config()


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    clean_settings(tmp_path, monkeypatch)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # the launcher's control folder goes here

    def index(config: dict, name: str = "tiny.yaml") -> str:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        st = path.stat()
        doc = make_config_document(config, path=str(path), format="yaml", size=st.st_size, mtime=st.st_mtime)
        store.apply([PathUpdate(str(path), [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino))])
        return doc["_id"]

    store = SQLiteStore(tmp_path / "index.db")
    yield {"tmp": tmp_path, "store": store, "db": str(tmp_path / "index.db"), "runs": tmp_path / "runs",
           "index": index, "private_tmp": private_tmp}
    store.close()


def _runs(store) -> list[dict]:
    return store.find(parse("kind=run"), FindOptions())


def _epoch_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("scope", "epoch") == "epoch"]


# ------------------------------------------------------------------ real DDP runs (gloo on the CPU)


@pytest.mark.slow
class _ArgvWatch:
    """Collect every process's argv (``/proc/PID/cmdline``, readable by every local user) while inside."""

    def __init__(self) -> None:
        import threading

        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            for p in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.seen.add(p.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    continue

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_two_gloo_processes_train_one_run_and_index_it_once(env):
    import torch

    from trainer.cli import main

    cfg_id = env["index"](TINY)
    with _ArgvWatch() as argv:  # the store URI (it may hold a password) reaches the ranks in a 0600 file only
        res = CliRunner().invoke(main, ["--store", env["db"], "launch", cfg_id[:8], "--gpus", "2", "--device",
                                        "cpu", "--runs-root", str(env["runs"]), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "completed" in res.output
    assert any("trainer.ddp.entry" in c for c in argv.seen)  # the ranks were seen
    assert not [c for c in argv.seen if env["db"] in c]

    [run_dir] = list(env["runs"].iterdir())  # one run folder, written by rank 0 alone
    for name in ("config.yaml", "run.json", "metrics.jsonl", "summary.json", "last.pt", "best.pt", "curves.png"):
        assert (run_dir / name).is_file(), name
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["config_id"] == cfg_id and run["run_id"] == run_dir.name
    assert run["world_size"] == 2 and run["ddp_backend"] == "gloo" and run["global_batch_size"] == 32
    assert run["steps_per_epoch"] == 1438 // 2 // 16  # each rank trains on its half: 44 steps, not 89

    rows = _epoch_rows(run_dir)
    assert [r["epoch"] for r in rows] == [1]  # one line per epoch, not one per rank
    assert rows[0]["val_acc"] > 0.5, f"val_acc {rows[0]['val_acc']} is not well above chance (0.1)"
    # validation is all-reduced: the whole validation set was counted once, not rank 0's half
    confusion = json.loads((run_dir / "val_confusion.json").read_text())["matrix"]
    assert sum(map(sum, confusion)) == run["val_size"] == DIGITS_VAL

    # the checkpoint holds the bare model (no DDP "module." prefix) and every rank's RNG state
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    import timm

    timm.create_model("test_resnet", num_classes=10, in_chans=1).load_state_dict(state["model"])

    [doc] = _runs(env["store"])  # one run document
    assert doc["_id"] == run_dir.name and doc["status"] == "completed"
    assert doc["metrics"]["val_acc"]["last"] == pytest.approx(rows[0]["val_acc"])
    assert list(env["private_tmp"].iterdir()) == []  # the launcher's control folder is cleaned up


@pytest.mark.slow
def test_two_ranks_on_an_image_folder_build_its_cache_once_and_train_their_shards(env):
    """The prepared pipeline under DDP: one rank builds the folder's cache (the other waits for it, never
    rebuilds it), each rank trains on its half, and validation counts every image once."""
    from tests.support.images import make_folder
    from trainer.engine.cache import list_caches

    make_folder(env["tmp"] / "imgs", classes=4, per_class=20)
    cache = env["tmp"] / "cache"
    cfg_id = env["index"](tiny_config(data={"dataset": f"imagefolder:{env['tmp'] / 'imgs'}", "img_size": 24,
                                            "batch_size": 4, "val_split": 0.25, "workers": 0,
                                            "cache_dir": str(cache)}))
    exe = Path(sys.executable).with_name("trainer")
    res = subprocess.run([str(exe), "--store", env["db"], "launch", cfg_id[:8], "--gpus", "2", "--device", "cpu",
                          "--runs-root", str(env["runs"])], check=False, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TMPDIR": str(env["private_tmp"])})
    out = res.stdout + res.stderr  # both ranks' lines: they share the launcher's terminal
    assert res.returncode == 0, out[-2000:]
    assert out.count("preparing 80 images of") == 1, out[-2000:]  # built once, by whichever rank came first
    assert out.count("prepared 80 images in") == 1
    [entry] = list_caches(cache)
    assert entry.images == 80 and not list(cache.glob(".tmp-*"))

    [run_dir] = list(env["runs"].iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["world_size"] == 2
    assert run["train_size"] == 60 and run["val_size"] == 20
    assert run["steps_per_epoch"] == 60 // 2 // 4  # each rank its own half of the 60 training images
    confusion = json.loads((run_dir / "val_confusion.json").read_text())["matrix"]
    assert sum(map(sum, confusion)) == 20  # both ranks' validation shards, each image once


def _rank_pid(marker: str, rank: int, timeout: float = 60.0) -> int:
    """The pid of DDP rank ``rank`` of the launch whose environment carries ``marker``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if b"trainer.ddp.entry" not in (proc / "cmdline").read_bytes():
                    continue
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"DDP_TEST_MARK={marker}".encode() in environ and f"RANK={rank}".encode() in environ:
                return int(proc.name)
        time.sleep(0.2)
    raise AssertionError(f"rank {rank} never started")


def _wait_for_a_step(runs: Path, timeout: float = 120.0) -> None:
    """Until rank 0 has written a step row (training is under way)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for metrics in runs.glob("*/metrics.jsonl"):
            try:
                if '"scope": "step"' in metrics.read_text():
                    return
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError("training never started")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_sigterm_to_one_rank_stops_every_rank_and_the_run_resumes_without_ddp(env):
    from trainer.cli import main

    cfg = {**TINY, "train": {**TINY["train"], "epochs": 2, "log_every_steps": 1}}
    cfg_id = env["index"](cfg)
    marker = str(env["tmp"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer.cli", "--store", env["db"], "launch", cfg_id[:8], "--gpus", "2",
         "--device", "cpu", "--runs-root", str(env["runs"]), "-q"],
        env={**os.environ, "DDP_TEST_MARK": marker}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        rank1 = _rank_pid(marker, 1)
        _wait_for_a_step(env["runs"])
        os.kill(rank1, signal.SIGTERM)  # one rank only: the others learn it through the stop vote
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    [run_dir] = list(env["runs"].iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted", run
    assert (run_dir / "last.pt").is_file()
    assert _epoch_rows(run_dir) == []  # stopped inside the first epoch
    [doc] = _runs(env["store"])
    assert doc["status"] == "interrupted"

    # the checkpoint is the bare model's: a single process continues it to the end
    res = CliRunner().invoke(main, ["--store", env["db"], "resume", run_dir.name, "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["attempts"] == 2
    assert run["world_size"] == 1 and run["ddp_backend"] is None and run["global_batch_size"] == 16
    rows = _epoch_rows(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["val_acc"] > 0.5
    [doc] = _runs(env["store"])
    assert doc["status"] == "completed"


# ------------------------------------------------------------------ sharding


@pytest.mark.parametrize("n", [103, 104])
def test_training_shards_are_equal_cover_the_epoch_and_follow_the_single_process_order(n):
    single = EpochBatchSampler(n, 8, shuffle=True, drop_last=True, seed=5)
    ranks = [EpochBatchSampler(n, 8, shuffle=True, drop_last=True, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for epoch in (0, 1):
        for s in (single, *ranks):
            s.set_epoch(epoch)
        shards = [r._shard(epoch) for r in ranks]
        assert len(shards[0]) == len(shards[1]) == -(-n // 2)  # padded: every rank runs the same batches
        assert set(shards[0]) | set(shards[1]) == set(range(n))
        order = single._order(epoch)
        assert shards[0][:10] == order[0:20:2] and shards[1][:10] == order[1:20:2]  # DistributedSampler's cut
        batches = [list(r) for r in ranks]
        assert len(batches[0]) == len(batches[1]) == ranks[0].batches_per_epoch() == (-(-n // 2)) // 8
        assert {s for s, _ in batches[0]}.isdisjoint({s for s, _ in batches[1]})  # own augmentation seeds
    assert ranks[0]._shard(0) != ranks[0]._shard(1)  # set_epoch reshuffles


def test_validation_shards_split_exactly():
    ranks = [EpochBatchSampler(DIGITS_VAL, 64, shuffle=False, drop_last=False, seed=0, rank=r, world_size=2,
                               even=False) for r in (0, 1)]
    seen = [i for r in ranks for _, idx in r for i in idx]
    assert sorted(seen) == list(range(DIGITS_VAL))  # every image once: nothing padded, nothing dropped


def test_one_process_is_unchanged():
    a = EpochBatchSampler(50, 8, shuffle=True, drop_last=True, seed=3)
    b = EpochBatchSampler(50, 8, shuffle=True, drop_last=True, seed=3, rank=0, world_size=1)
    a.set_epoch(2, start_batch=1)
    b.set_epoch(2, start_batch=1)
    assert list(a) == list(b) and len(a) == 5


# ------------------------------------------------------------------ devices and errors


def test_gpus_without_gpus_is_one_clear_line_and_starts_nothing(env, monkeypatch):
    import torch

    from trainer.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg_id = env["index"]({**TINY, "train": {**TINY["train"], "device": "auto"}})
    res = CliRunner().invoke(main, ["--store", env["db"], "launch", cfg_id[:8], "--gpus", "2",
                                    "--runs-root", str(env["runs"])])
    assert res.exit_code == 2, res.output
    assert "no GPU is visible" in res.output and "--device cpu" in res.output
    assert len(res.output.strip().splitlines()) == 2 and "Traceback" not in res.output  # "config ..." + the error
    assert not env["runs"].exists() and _runs(env["store"]) == []


def test_device_planning(monkeypatch):
    import torch

    from trainer.ddp.launch import plan_backend

    assert plan_backend("cpu", 2) == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert plan_backend("auto", 2) == plan_backend("cuda", 2) == "nccl"
    with pytest.raises(UsageError, match=r"only 2 GPU\(s\) are visible.*--gpus 2 or fewer"):
        plan_backend("auto", 4)
    with pytest.raises(UsageError, match="CUDA_VISIBLE_DEVICES"):
        plan_backend("cuda:1", 2)
    with pytest.raises(UsageError, match="at least 2"):
        plan_backend("cpu", 1)


def test_a_rank_needs_the_launcher_environment(monkeypatch):
    from trainer.engine.distributed import init_from_env
    from trainer.errors import ConfigError

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="--gpus N"):
        init_from_env("cpu")


# ------------------------------------------------------------------ the launching process's bookkeeping


def test_stop_requests_reach_every_rank(tmp_path):
    from trainer.ddp.control import STOP_FILE, pid_file
    from trainer.ddp.launch import _Forwarder

    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:
        for rank, child in enumerate(children):
            pid_file(tmp_path, rank).write_text(str(child.pid))
        said = []
        _Forwarder(tmp_path, said.append).on_signal(signal.SIGINT, None)
        assert [c.wait(timeout=10) for c in children] == [-signal.SIGTERM, -signal.SIGTERM]
        assert (tmp_path / STOP_FILE).exists()  # a rank still starting up stops as soon as it listens
        assert "stopping all processes" in said[0]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()


def _running_folder(tmp_path: Path) -> Path:
    from trainer.engine.runs import RunWriter

    run_dir = tmp_path / "run"
    RunWriter(run_dir).update(run_id="r1", config_id="c1", status="running", started_at=1.0)
    return run_dir


def test_a_rank_that_crashed_leaves_a_failed_run_with_its_message(tmp_path):
    from trainer.ddp.control import error_file
    from trainer.ddp.launch import _finish_run

    control = tmp_path / "control"
    control.mkdir()
    error_file(control, 1).write_text(json.dumps({"rank": 1, "time": 2.0, "message": "out of memory"}))
    error_file(control, 0).write_text(json.dumps({"rank": 0, "time": 3.0, "message": "Connection closed by peer"}))
    run_dir = _running_folder(tmp_path)
    _finish_run(run_dir, run_id="r1", config={"model": {"name": "x"}}, config_id="c1", control=control,
                launch_error="rank 1 exited with status 1", stop_requested=False)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == "rank 1: out of memory" and run["ended_at"]
    assert (run_dir / "config.yaml").is_file()


def test_a_killed_group_after_a_stop_request_is_interrupted(tmp_path):
    from trainer.ddp.launch import _describe_exit, _finish_run

    control = tmp_path / "control"
    control.mkdir()
    run_dir = _running_folder(tmp_path)
    _finish_run(run_dir, run_id="r1", config={}, config_id="c1", control=control,
                launch_error=f"rank 0 {_describe_exit(-signal.SIGKILL)}", stop_requested=True)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert _describe_exit(-signal.SIGKILL) == "was killed by SIGKILL (out of memory?)"
