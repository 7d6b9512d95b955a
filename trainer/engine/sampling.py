"""Class mix of the training data: weighted batch order (``data.sampler``) and imbalanced subsets.

``data.sampler`` decides each class's share of the images an epoch draws: ``balanced``
gives every class the same share, ``sqrt`` a share proportional to the square root of
its image count, ``weights`` the shares listed in ``data.sampler_weights`` (relative, in
class order). An epoch still draws as many images as the training set holds; a class's
quota is its share of them (largest-remainder rounding), filled from fresh permutations
of its images (a minority class repeats, a majority class is subsampled, and which images
changes every epoch). The quotas are then interleaved by jittered stratification (the
j-th of a class's k draws sits at a random point of the j-th k-th of the epoch), so every
run of consecutive draws, each batch included, holds each class close to its share.

The order is a pure function of (``train.seed``, epoch), as for unweighted shuffling, so a
resumed run draws the same batches. With DDP one order is drawn for all ranks and rank r
takes its r-th contiguous block, so each rank's batches are balanced too.

``data.imbalance`` keeps ``ratio`` of the training images of some classes (or a long tail
over all of them) for imbalance experiments; the kept images depend only on
``data.imbalance.seed`` and the subsets are nested (ratio 0.05 lies inside ratio 0.1).
Validation is never touched.
"""
from __future__ import annotations

import difflib
import logging

import numpy as np
import torch

from trainer.engine.config import DataConfig, ImbalanceConfig
from trainer.errors import ConfigError

__all__ = ["WeightedDraw", "class_shares", "imbalance_subset", "quotas", "weighted_draw"]

log = logging.getLogger(__name__)

DRAW_SALT = 7_777  # weighted orders differ from the unweighted permutation of the same (seed, epoch)


def class_shares(labels: torch.Tensor, num_classes: int, mode: str,
                 weights: list[float] | None = None) -> torch.Tensor:
    """Each class's share (summing to 1) of the drawn images for ``data.sampler`` ``mode``.

    Classes without training images get no share (there is nothing to draw).
    """
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    present = (counts > 0).double()
    if mode == "none":
        raw = counts
    elif mode == "balanced":
        raw = present
    elif mode == "sqrt":
        raw = counts.sqrt()
    elif mode == "weights":
        if weights is None or len(weights) != num_classes:
            n = 0 if weights is None else len(weights)
            raise ConfigError(f"data.sampler_weights: {n} weights for {num_classes} classes")
        raw = torch.tensor(weights, dtype=torch.float64) * present
    else:
        raise ConfigError(f"data.sampler: unknown sampler {mode!r}")
    if float(raw.sum()) <= 0:
        raise ConfigError("data.sampler_weights: every class that has training images has weight 0")
    return raw / raw.sum()


def quotas(shares: torch.Tensor, count: int) -> list[int]:
    """``count`` split by ``shares`` into integers (largest remainder; ties go to the lower class)."""
    exact = shares.double() * count
    base = exact.floor().long()
    rest = count - int(base.sum())
    if rest > 0:
        frac = (exact - base.double()).tolist()
        for c in sorted(range(len(frac)), key=lambda i: (-frac[i], i))[:rest]:
            base[c] += 1
    return base.tolist()


class WeightedDraw:
    """``draw(epoch, count)``: an epoch's order of ``count`` indices with the classes mixed by ``shares``."""

    def __init__(self, labels: torch.Tensor, shares: torch.Tensor, seed: int) -> None:
        lab = labels.cpu()
        self.members = [torch.nonzero(lab == c).flatten() for c in range(len(shares))]
        self.shares, self.seed = shares, seed

    def __call__(self, epoch: int, count: int) -> list[int]:
        g = torch.Generator().manual_seed((self.seed * 100_003 + epoch) * 31 + DRAW_SALT)
        picks, positions = [], []
        for members, k in zip(self.members, quotas(self.shares, count)):
            if k == 0 or len(members) == 0:
                continue
            rounds = -(-k // len(members))
            chosen = torch.cat([members[torch.randperm(len(members), generator=g)] for _ in range(rounds)])[:k]
            picks.append(chosen)
            # jittered stratification: draw j of k lies in [j/k, (j+1)/k) of the epoch
            positions.append((torch.arange(k, dtype=torch.float64) + torch.rand(k, generator=g,
                                                                                 dtype=torch.float64)) / k)
        order = torch.cat(picks)[torch.argsort(torch.cat(positions), stable=True)]
        return order.tolist()


def weighted_draw(d: DataConfig, labels: torch.Tensor, num_classes: int, seed: int) -> WeightedDraw | None:
    """The training order's draw for ``data.sampler`` (None for ``none``: plain shuffling)."""
    if d.sampler == "none":
        return None
    shares = class_shares(labels, num_classes, d.sampler, d.sampler_weights)
    log.info("sampler %s: class shares %s", d.sampler, " ".join(f"{s:.3f}" for s in shares.tolist()))
    return WeightedDraw(labels, shares, seed)


def _class_index(spec: int | str, names: list[str]) -> int:
    if isinstance(spec, str):
        if spec in names:
            return names.index(spec)
        close = difflib.get_close_matches(spec, names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; the classes are {', '.join(names[:12])}" + (
            "..." if len(names) > 12 else "")
        raise ConfigError(f"data.imbalance.classes: no class {spec!r}{hint}")
    if not 0 <= spec < len(names):
        raise ConfigError(f"data.imbalance.classes: class index {spec} is outside 0..{len(names) - 1}")
    return spec


def imbalance_subset(labels: torch.Tensor, cfg: ImbalanceConfig, names: list[str]) -> torch.Tensor:
    """Sorted indices (into ``labels``) of the training images that ``data.imbalance`` keeps.

    Each named class keeps ``max(1, round(n * ratio))`` of its ``n`` images; without
    ``classes``, class i keeps ``ratio ** (i / (C - 1))`` of them (a long tail: the first
    class keeps all, the last ``ratio``). Off (``ratio: null``): every index.
    """
    if cfg.ratio is None:
        return torch.arange(len(labels))
    c_total = len(names)
    if cfg.classes is None:
        keep_frac = [cfg.ratio ** (i / max(1, c_total - 1)) for i in range(c_total)]
    else:
        cut = {_class_index(c, names) for c in cfg.classes}
        keep_frac = [cfg.ratio if i in cut else 1.0 for i in range(c_total)]
    rng = np.random.RandomState(cfg.seed)
    lab = labels.cpu().numpy()
    keep: list[np.ndarray] = []
    for c in range(c_total):
        idx = rng.permutation(np.flatnonzero(lab == c))  # drawn for every class: subsets are nested
        if len(idx):
            keep.append(idx[:max(1, round(len(idx) * keep_frac[c]))])
    kept = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return torch.as_tensor(kept, dtype=torch.long)
