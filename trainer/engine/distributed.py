"""DistributedDataParallel plumbing: which process am I, and the few collectives the loop needs.

``trainer launch --gpus N`` (see :mod:`trainer.ddp.launch`) starts N processes through
torch.distributed's elastic launcher (what ``torchrun`` runs), which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Each process calls
:func:`init_from_env`: it takes GPU ``cuda:LOCAL_RANK`` with the ``nccl`` backend, or the
CPU with ``gloo`` (``--device cpu``: N CPU processes, for testing), and joins the group.

The loop talks to a :class:`DistContext`. A single process uses :data:`SINGLE` (world size
1), for which every helper is a no-op returning its input, so training has one code path.
Flags that every rank must agree on (stop now? diverged?) travel over a small ``gloo``
group of CPU tensors, so voting never waits for the GPU.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch

from trainer.errors import ConfigError

#: the environment variables the elastic launcher (torchrun) sets for every process
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
#: how long a collective may wait for a slow rank before the group gives up
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass
class DistContext:
    """Rank, world size and device of this process; ``world_size == 1`` means no DDP."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device | None = None
    control: Any = field(default=None, repr=False)  # gloo group for CPU-side votes (None: the default group)

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder and indexes the run."""
        return self.rank == 0

    # ------------------------------------------------------------ collectives (no-ops when alone)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce ``tensor`` in place (sum over ranks); returns it."""
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def vote(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag OR-ed over all ranks (a blocking CPU all-reduce)."""
        if not self.enabled:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([float(f) for f in flags])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX, group=self.control)
        return tuple(bool(v > 0) for v in t.tolist())

    def vote_async(self, *flags: bool) -> Any:
        """Start :meth:`vote` without waiting; ``PendingVote.result()`` waits for it."""
        return PendingVote(self, flags)

    def reduce_stats(self, stats: dict[str, float], *, maximum: tuple[str, ...] = ()) -> dict[str, float]:
        """Sum ``stats`` over ranks (the keys in ``maximum``: their maximum), as plain floats."""
        if not self.enabled:
            return dict(stats)
        keys = sorted(stats)
        summed = torch.tensor([0.0 if k in maximum else float(stats[k]) for k in keys], dtype=torch.float64)
        maxed = torch.tensor([float(stats[k]) if k in maximum else 0.0 for k in keys], dtype=torch.float64)
        torch.distributed.all_reduce(summed, op=torch.distributed.ReduceOp.SUM, group=self.control)
        torch.distributed.all_reduce(maxed, op=torch.distributed.ReduceOp.MAX, group=self.control)
        return {k: float(maxed[i] if k in maximum else summed[i]) for i, k in enumerate(keys)}

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (a list in rank order), None on the others; ``[obj]`` alone.

        ``obj`` is plain data and CPU tensors (what ``torch.save`` writes and ``weights_only``
        loads back): it travels as ``torch.save`` bytes, since pickling tensors themselves
        through ``gather_object`` fails in this torch.
        """
        if not self.enabled:
            return [obj]
        buf = io.BytesIO()
        torch.save(obj, buf)
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(buf.getvalue(), out, dst=0, group=self.control)
        if out is None:
            return None
        return [torch.load(io.BytesIO(b), map_location="cpu", weights_only=True) for b in out]

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics drift apart between ranks)."""
        if self.enabled:
            for buf in module.buffers():
                torch.distributed.broadcast(buf, src=0)


class PendingVote:
    """An all-reduce of flags in flight: started after one optimizer update, read after the next.

    The loop learns the result one update late, but every rank learns the same result at the
    same update, which is what keeps them in step; and the latency hides behind a whole step.
    """

    def __init__(self, ctx: DistContext, flags: tuple[bool, ...]) -> None:
        self.ctx = ctx
        self.tensor = torch.tensor([float(f) for f in flags])
        self.work = None
        if ctx.enabled:
            self.work = torch.distributed.all_reduce(self.tensor, op=torch.distributed.ReduceOp.MAX,
                                                     group=ctx.control, async_op=True)

    def result(self) -> tuple[bool, ...]:
        """Wait for the vote; each flag OR-ed over ranks."""
        if self.work is not None:
            self.work.wait()
            self.work = None
        return tuple(bool(v > 0) for v in self.tensor.tolist())


SINGLE = DistContext()


def env_rank() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from the launcher's environment, or None outside one."""
    if not all(v in os.environ for v in ENV_VARS):
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])


def init_from_env(device_spec: str = "auto") -> DistContext:
    """Join the process group the launcher set up; pick this rank's device and backend.

    ``device_spec`` is ``train.device``: ``cpu`` gives gloo on the CPU; ``auto``/``cuda`` give
    nccl on ``cuda:LOCAL_RANK`` (``auto`` falls back to gloo on the CPU without GPUs).
    """
    where = env_rank()
    if where is None:
        raise ConfigError("not started by torch.distributed (RANK, WORLD_SIZE, LOCAL_RANK are not set); "
                          "use `trainer launch ID --gpus N`")
    rank, world, local = where
    if device_spec.startswith("cuda:"):
        raise ConfigError(f"train.device: {device_spec} names one GPU, but DDP gives each process its own; "
                          "use cuda or auto (and CUDA_VISIBLE_DEVICES to choose the GPUs)")
    use_cuda = device_spec != "cpu" and torch.cuda.is_available()
    if device_spec == "cuda" and not use_cuda:
        raise ConfigError("train.device: cuda asked for, but no GPU is visible here; use --device cpu")
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise ConfigError(f"process {local} has no GPU: only {torch.cuda.device_count()} are visible")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    kwargs: dict[str, Any] = {"backend": backend, "timeout": COLLECTIVE_TIMEOUT}
    if use_cuda:
        kwargs["device_id"] = device  # binds the communicator to this GPU (no guessing, no extra contexts)
    torch.distributed.init_process_group(**kwargs)
    control = torch.distributed.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT) if backend != "gloo" else None
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend, device=device,
                       control=control)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (safe to call when it was never joined)."""
    if ctx.enabled and torch.distributed.is_initialized():
        # a peer that died first must not turn a clean exit into a crash
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()
